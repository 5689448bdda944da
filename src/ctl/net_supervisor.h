/*
 * The network driver domain of `domus run --net vfr`: a domus-net child
 * with one network ("run", id 1) and one port (the domain's, id 1),
 * optionally routed or NATed out of an uplink TAP, a child of the front
 * (ctl/run_front.c) started again by lib/backend_proc.h when it dies. Everything it is
 * handed is kept here and handed again in the same order to each one
 * started: the state memfd (so the flows and NAT bindings survive), the
 * uplink's TAP, the port's listening vhost-user socket, on which the
 * VMM's vhost-user-net device reconnects by itself.
 */
#ifndef DOMUS_NET_SUPERVISOR_H
#define DOMUS_NET_SUPERVISOR_H

#include <stdbool.h>

#include "lib/backend_proc.h"
#include "vmm/config.h"

struct net_supervisor {
	char dir[64];		       /* private directory of the port's socket */
	char socket[108];	       /* the port's vhost-user socket */
	struct backend_proc proc;      /* domus-net */
	int state_fd, tap_fd, listen_fd;
	char uplink_msg[128], net_msg[256], port_msg[256];
};

/*
 * Starts domus-net for the --net vfr interface nic (verbose: its -v) and
 * points nic at its port's socket. 0, or -errno with the reason (a TAP
 * that cannot be opened, domus-net's own answer) logged.
 */
int net_supervisor_start(struct net_supervisor *s, struct nic_config *nic, bool verbose,
			 const struct watch_loop *loop, int pid_kind, int timer_kind);
/* Stops supervising, ends domus-net and removes its socket. */
void net_supervisor_stop(struct net_supervisor *s);

#endif
