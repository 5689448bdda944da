/*
 * domus-vmm: one domain's process. Under domusd it reads the domain's
 * configuration (JSON, written by domusd), boots it, applies the domain's
 * on_poweroff/on_reboot/on_crash actions itself, so they happen even while
 * domusd restarts, and reports to domusd over its control socket. Under
 * `domus run` (--foreground) it reads a vm_config (vmm/config_json.h) and
 * runs the domain with its console on the terminal, exiting with `domus
 * run`'s status. Started as root, it confines itself either way
 * (vmm/confine.h) once its files are open.
 *
 *   domus-vmm --config FILE --domid N --listen-fd FD --control-fd FD
 *             [--console-log-fd FD] [-v]
 *   domus-vmm --foreground --config FILE [--domid N] [--blk-disks MASK --blk-stats-fd FD]
 *             [--broker-fd FD]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/mman.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domain/spec_json.h"
#include "lib/log.h"
#include "lib/passed_fd.h"
#include "blk/counters.h"
#include "vmm/config_json.h"
#include "vmm/confine.h"
#include "vmm/control.h"
#include "vmm/run.h"

static int parse_number(const char *s, long max)
{
	char *end;
	long v = strtol(s, &end, 10);

	return (*s && !*end && v >= 0 && v <= max) ? (int)v : -1;
}

static int parse_fd(const char *s)
{
	return parse_number(s, 65535);
}

static int load_spec(const char *path, struct domain_spec *spec, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	int ret;

	if (!j) {
		snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	ret = domain_spec_from_json(j, path, spec, err, errlen);
	json_decref(j);
	return ret;
}

/* Counters of the disks the host's domus-blk serves for us (mask), one slot per disk. */
static void map_blk_counters(struct vmm_domain *dom, const struct vm_config *cfg, int mask, int fd)
{
	if (fd >= 0 && mask > 0) {
		struct blk_counters *c = mmap(NULL, VM_MAX_DISKS * sizeof(*c), PROT_READ | PROT_WRITE,
					      MAP_SHARED, fd, 0);
		for (unsigned i = 0; c != MAP_FAILED && i < cfg->ndisks; i++)
			if (mask & (1 << i))
				dom->res.disk_counters[i] = &c[i];
	}
	if (fd >= 0)
		close(fd);
}

/*
 * Holds kernel and initrd open and names them by descriptor: a confined
 * process reads them again at a reboot without reaching the host's tree.
 */
static int pin_boot_file(const char **path, char *buf, size_t size)
{
	int fd;

	if (!*path || passed_fd(*path) >= 0)
		return 0;
	if ((fd = open(*path, O_RDONLY | O_CLOEXEC)) < 0) {
		log_warn("%s", *path);
		return -errno;
	}
	snprintf(buf, size, "/dev/fd/%d", fd);
	*path = buf;
	return 0;
}

/* `domus run`'s domain: config is a vm_config; returns its exit status. */
static int run_foreground(const char *config, int domid, int blk_disks, int blk_stats_fd,
			  int broker_fd)
{
	static struct vm_config cfg;
	static struct vm_config_strings strings;
	static char kernel[32], initrd[32];
	struct vmm_domain dom;
	json_error_t jerr;
	json_t *j = json_load_file(config, 0, &jerr);
	char err[1024] = "";
	int status;

	if (!j) {
		log_warnx("%s:%d: %s", config, jerr.line, jerr.text);
		return RUN_EXIT_ERROR;
	}
	if (vm_config_from_json(j, &cfg, &strings, err, sizeof(err)) < 0) {
		json_decref(j);
		log_warnx("%s", err);
		return RUN_EXIT_ERROR;
	}
	json_decref(j);
	if (passed_fd(config) >= 0)
		close(passed_fd(config));
	log_init("domus", cfg.verbose);
	if (vmm_domain_open(&dom, &cfg) < 0) {
		vmm_domain_close(&dom);
		return RUN_EXIT_BAD_INPUT;
	}
	map_blk_counters(&dom, &cfg, blk_disks, blk_stats_fd);
	if (geteuid() == 0 && domid >= 0) {
		if (pin_boot_file(&dom.served.kernel, kernel, sizeof(kernel)) < 0 ||
		    pin_boot_file(&dom.served.initrd, initrd, sizeof(initrd)) < 0 ||
		    vmm_confine(&dom.served, (unsigned)domid, err, sizeof(err)) < 0 ||
		    vmm_confine_calls(err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			vmm_domain_close(&dom);
			return RUN_EXIT_ERROR;
		}
		/* Confined, it reaches back-ends' sockets through the front, which may. */
		if (broker_fd >= 0)
			vmm_confine_broker(broker_fd);
	}
	status = vmm_domain_run(&dom);
	vmm_domain_close(&dom);
	return status;
}

static void fail(struct vmm_control *c, const char *why)
{
	log_warnx("%s", why);
	vmm_control_event(c, json_pack("{s:s,s:s}", "event", "failed", "error", why));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"domid", required_argument, NULL, 'd'},
		{"listen-fd", required_argument, NULL, 'l'},
		{"control-fd", required_argument, NULL, 'f'},
		{"blk-disks", required_argument, NULL, 'b'},
		{"blk-stats-fd", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},
		{"foreground", no_argument, NULL, 'F'},
		{"broker-fd", required_argument, NULL, 'B'},
		{"console-log-fd", required_argument, NULL, 'L'},
		{NULL, 0, NULL, 0},
	};
	static struct domain_spec spec;
	static struct vmm_control ctl;
	struct vmm_domain dom;
	struct vm_frontend fe;
	const char *config = NULL;
	int listen_fd = -1, ctl_fd = -1, verbose = 0, opt, domid = -1, status = 1;
	int blk_disks = 0, blk_stats_fd = -1;
	bool foreground = false;
	int broker_fd = -1, console_log_fd = -1;
	char err[1024], detail[256];

	while ((opt = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'd': domid = parse_number(optarg, VMM_RUN_DOMID_BASE + (1 << 22)); break;
		case 'l': listen_fd = parse_fd(optarg); break;
		case 'f': ctl_fd = parse_fd(optarg); break;
		case 'b': blk_disks = parse_fd(optarg); break;
		case 's': blk_stats_fd = parse_fd(optarg); break;
		case 'v': verbose = 1; break;
		case 'F': foreground = true; break;
		case 'B': broker_fd = parse_fd(optarg); break;
		case 'L': console_log_fd = parse_fd(optarg); break;
		default:
			fprintf(stderr, "domus-vmm is started by domusd\n");
			return 2;
		}
	}
	if (foreground && config)
		return run_foreground(config, domid, blk_disks, blk_stats_fd, broker_fd);
	if (!config || domid < 0 || listen_fd < 0 || ctl_fd < 0) {
		fprintf(stderr, "usage: domus-vmm --config FILE --domid N --listen-fd FD --control-fd FD\n");
		return 2;
	}
	snprintf(err, sizeof(err), "domus-vmm[%d]", domid);
	log_init(strdup(err), verbose);
	if (load_spec(config, &spec, err, sizeof(err)) < 0) {
		struct domain_spec none;
		domain_spec_defaults(&none);
		if (vmm_control_init(&ctl, listen_fd, ctl_fd, &none, (unsigned)domid) == 0)
			fail(&ctl, err);
		return 2;
	}
	if (vmm_control_init(&ctl, listen_fd, ctl_fd, &spec, (unsigned)domid) < 0) {
		log_warn("console pipe");
		return 1;
	}
	ctl.log_fd = console_log_fd;
	if (vmm_domain_open(&dom, &spec.vm) < 0) {
		fail(&ctl, log_last_warning());
		vmm_domain_close(&dom);
		return 2;
	}
	map_blk_counters(&dom, &spec.vm, blk_disks, blk_stats_fd);
	/* Everything it opens by itself is open: from here on it is the domain's user, and alone. */
	if (geteuid() == 0 && (vmm_confine(&spec.vm, (unsigned)domid, err, sizeof(err)) < 0 ||
			       vmm_confine_calls(err, sizeof(err)) < 0)) {
		fail(&ctl, err);
		vmm_domain_close(&dom);
		return 2;
	}
	vmm_control_frontend(&ctl, &fe);
	for (;;) {
		enum vm_stop reason = vmm_domain_boot(&dom, &fe, detail, sizeof(detail));
		enum domain_action action = vmm_control_action(&ctl, reason);

		if (!ctl.started) {
			/* The first boot failed before the guest ran: creating the domain failed. */
			fail(&ctl, detail[0] ? detail : "the domain failed to start");
			status = 2;
			break;
		}
		if (action == ACTION_RESTART) {
			log_info("%s; restarting the domain (boot %u)", detail, dom.boots + 1);
			ctl.reset = false;
			ctl.state = "running";
			vmm_control_event(&ctl, json_pack("{s:s,s:s,s:s}", "event", "rebooted", "reason",
							  vm_stop_name(reason), "detail", detail));
			continue;
		}
		log_info("%s; the domain is gone", detail);
		ctl.state = "stopped";
		vmm_control_event(&ctl, json_pack("{s:s,s:s,s:s}", "event", "stopped", "reason",
						  ctl.destroy ? "destroyed" : vm_stop_name(reason),
						  "detail", detail));
		status = reason == VM_POWEROFF || ctl.destroy ? 0 : 3;
		break;
	}
	vmm_domain_close(&dom);
	return status;
}
