/* domus: the command line. `domus run` boots one domain in the foreground, with no daemon. */
#include <stdio.h>
#include <string.h>

#include "ctl/args.h"
#include "ctl/cli.h"
#include "lib/log.h"
#include "ctl/run_front.h"
#include "vmm/run.h"

/* What a config may say that a single foreground `domus run` does not act on. */
static void warn_unapplied(struct domain_spec *spec)
{
	unsigned kept = 0;

	/* domus-net's ports are domusd's: here such a vif gives no interface. */
	for (unsigned i = 0; i < spec->vm.nnics; i++) {
		if (spec->vm.nics[i].socket[0] || spec->vm.nics[i].tap[0] || spec->vm.nics[i].vfr)
			spec->vm.nics[kept++] = spec->vm.nics[i];
		else
			log_warnx("vif %u: a domus-net port needs domusd; domus run gives it no interface "
				  "(backendtype=vmm,vifname=TAP or --net give one)", i);
	}
	spec->vm.nnics = kept;
	if (spec->cpus[0] && strcmp(spec->cpus, "all"))
		log_warnx("cpus: vCPU affinity is applied by domusd, not by domus run");
	if (spec->cpu_weight != 256 || spec->cap)
		log_warnx("cpu_weight, cap: scheduling shares are applied by domusd, not by domus run");
	if (spec->on_crash == ACTION_PRESERVE)
		log_warnx("on_crash=preserve: domus run reports a crash and exits");
}

static int cmd_run(int argc, char **argv)
{
	static struct domain_spec spec;
	struct vm_config *cfg = &spec.vm;
	char err[512];
	int ret;

	ret = run_args_parse(argc, argv, &spec, err, sizeof(err));
	if (ret == 1) {
		fputs(run_usage, stdout);
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, "domus: %s\n%s", err, run_usage);
		return RUN_EXIT_BAD_INPUT;
	}
	log_init("domus", cfg->verbose);
	if (cfg->dry_run) {
		domain_spec_print(&spec, stdout);
		return 0;
	}
	warn_unapplied(&spec);
	return run_front(cfg);
}

static void usage(FILE *f)
{
	fputs("usage: domus COMMAND [ARGS]\n"
	      "commands:\n"
	      "  run ...               boot one domain in the foreground, no daemon (see 'domus run --help')\n",
	      f);
	fputs(cli_usage, f);
}

int main(int argc, char **argv)
{
	int ret;

	if (argc < 2) {
		usage(stderr);
		return RUN_EXIT_BAD_INPUT;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	ret = cli_run(argc - 1, argv + 1);
	if (ret >= 0)
		return ret;
	fprintf(stderr, "domus: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return RUN_EXIT_BAD_INPUT;
}
