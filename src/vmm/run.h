#ifndef DOMUS_RUN_H
#define DOMUS_RUN_H

#include "vmm/config.h"

/* Exit statuses of `domus run`, documented in docs/cli.md. */
#define RUN_EXIT_OK 0
#define RUN_EXIT_ERROR 1
#define RUN_EXIT_BAD_INPUT 2
#define RUN_EXIT_PANIC 3
#define RUN_EXIT_TRIPLE_FAULT 4

#include "blk/counters.h"
#include "vmm/boot.h"
#include "vmm/vm.h"

/* What a domain's process holds across boots: its config, boot files and open disks. */
struct vmm_domain {
	const struct vm_config *cfg;
	struct vm_config served; /* its own copy of the config, which it may point at its files */
	struct kernel_image kernel;
	struct vm_resources res;
	unsigned boots;
};

/* Checks cfg, reads the boot files and opens the disks; logs what is wrong. */
int vmm_domain_open(struct vmm_domain *d, const struct vm_config *cfg);
/* Boots the domain once and runs it until it stops (see vm_run_once). */
enum vm_stop vmm_domain_boot(struct vmm_domain *d, const struct vm_frontend *fe, char *detail,
			     size_t detail_len);
void vmm_domain_close(struct vmm_domain *d);

/*
 * Runs an opened domain in the foreground, its console on the terminal,
 * booting it again after a guest reboot unless on_reboot says exit;
 * returns `domus run`'s exit status (RUN_EXIT_*).
 */
int vmm_domain_run(struct vmm_domain *d);

#endif
