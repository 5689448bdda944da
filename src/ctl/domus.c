/* domus: the command line. `domus run` boots one domain in the foreground, with no daemon. */
#include <stdio.h>
#include <string.h>

#include "ctl/args.h"
#include "lib/log.h"
#include "vmm/run.h"

static int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;
	char err[512];
	int ret;

	ret = run_args_parse(argc, argv, &cfg, err, sizeof(err));
	if (ret == 1) {
		fputs(run_usage, stdout);
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, "domus: %s\n%s", err, run_usage);
		return RUN_EXIT_BAD_INPUT;
	}
	log_init("domus", cfg.verbose);
	return vmm_run(&cfg);
}

static void usage(FILE *f)
{
	fputs("usage: domus COMMAND [ARGS]\n"
	      "commands:\n"
	      "  run    boot one domain in the foreground, its console on this terminal\n"
	      "see 'domus run --help'\n",
	      f);
}

int main(int argc, char **argv)
{
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
	fprintf(stderr, "domus: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return RUN_EXIT_BAD_INPUT;
}
