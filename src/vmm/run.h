#ifndef DOMUS_RUN_H
#define DOMUS_RUN_H

#include "vmm/config.h"

/* Exit statuses of `domus run`, documented in docs/cli.md. */
#define RUN_EXIT_OK 0
#define RUN_EXIT_ERROR 1
#define RUN_EXIT_BAD_INPUT 2
#define RUN_EXIT_PANIC 3
#define RUN_EXIT_TRIPLE_FAULT 4

/* Checks everything a user handed us, then runs the domain; returns an exit status. */
int vmm_run(const struct vm_config *cfg);

#endif
