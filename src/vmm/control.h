/*
 * domus-vmm's side of the control socket: serves domusd's requests and
 * the domain's console (a bounded ring of its output, replayed on attach)
 * while the domain runs, and while a preserved domain waits.
 */
#ifndef DOMUS_CONTROL_H
#define DOMUS_CONTROL_H

#include <jansson.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>

#include "domain/domcfg.h"
#include "vmm/vm.h"

#define CONSOLE_RING_SIZE (64 * 1024)
/* A domain's console log (domusd --console-log) stops growing here. */
#define CONSOLE_LOG_MAX (16ULL << 20)

struct vmm_control {
	int listen_fd;  /* the domain's socket, for domusd to reconnect to */
	int ctl_fd;     /* domusd's connection, -1 while there is none */
	int con_fd;     /* an attached console, -1 */
	int pending_fd; /* accepted, first message not read yet */
	int out_rd, out_wr; /* the devices write console output into this pipe */
	unsigned char ring[CONSOLE_RING_SIZE];
	size_t ring_start, ring_len;
	int log_fd;              /* the console log domusd opened, -1 without one */
	unsigned long long log_bytes; /* written to it so far, up to CONSOLE_LOG_MAX */
	struct vm *vm;  /* the running boot's VM, NULL between boots */
	const struct domain_spec *spec;
	unsigned domid;
	const char *state; /* running, paused, crashed, shutdown */
	bool started;      /* the first boot's VM ran: the domain exists */
	bool destroy;      /* domusd asked for the domain to go */
	bool reset;        /* domusd asked for a reset */
	bool holding;
	/* Each vCPU's affinity (domain_vcpu_cpus), kept across reboots; "" runs anywhere. */
	char vcpu_cpus[VM_MAX_VCPUS][DOMAIN_CPUS_MAX];
	uint64_t balloon_target_mib; /* the last target domusd set, kept across reboots */
	int stats_timer_fd;          /* asks the balloon for statistics, -1 without one */
};

int vmm_control_init(struct vmm_control *c, int listen_fd, int ctl_fd,
		     const struct domain_spec *spec, unsigned domid);
void vmm_control_frontend(struct vmm_control *c, struct vm_frontend *fe);
/* Sends an event to domusd if it is connected; consumes ev. */
void vmm_control_event(struct vmm_control *c, json_t *ev);
/* What to do after a boot ended for reason: on_poweroff/on_reboot/on_crash, or domusd's word. */
enum domain_action vmm_control_action(const struct vmm_control *c, enum vm_stop reason);
const char *vm_stop_name(enum vm_stop reason);

#endif
