/*
 * The supervisor's end of domus-net's control socket (SOCK_SEQPACKET, one
 * message per request, descriptors attached with SCM_RIGHTS), for domusd
 * (src/ctl/nethost.c). domusd keeps every descriptor and message it sent
 * and hands them all again, in the same order, to each domus-net started
 * after a death: the state memfd first, then the uplink, networks, ports
 * and rules. The protocol (docs/net.md) is lines of text:
 *
 *   state [capacity=N]         fds: the state memfd (vfr_state_size(N) bytes at least;
 *                              N flows, NETCTL_CT_CAPACITY if not said)
 *                              answer: "ok fresh" or "ok restored N flows"
 *   uplink MAC ADDR/PREFIX GATEWAY    fds: the TAP device
 *   net NAME ID SUBNET/PREFIX GATEWAY mode=none|routed|nat|rsip default=accept|drop|reject [dns=A]
 *       [frag=drop|first|allow]
 *   port ID NAME NET MAC ADDR [slice=START-END] [rate=PPS]   (NET: a network's name or id)
 *                              fds: the port's listening vhost-user socket
 *   unport ID
 *   rule add POS [id=N] TEXT   answer: "ok ID" (N: the supervisor's id, kept across restarts) (POS: 0 first, -1 or end: append)
 *   rule remove ID
 *   rules                      answer: "ok" then one "ID TEXT" line per rule ("ok\nID TEXT\n...")
 *   flows                      fds: a JSON-lines file (append), [a connected UDP socket for IPFIX]
 *                              (no fds: flow output off)
 *   capture ID                 fds: a file the pcap capture of port ID is written to (0: uplink)
 *   uncapture ID
 *   stats                      answer: "ok" then a JSON object ("ok\n{...}", docs/net.md)
 *
 * Every request is answered "ok[ ...]" or "error REASON".
 */
#ifndef DOMUS_NETCTL_H
#define DOMUS_NETCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define NETCTL_MSG_MAX 65536
#define NETCTL_REPLY_MS 10000
#define NETCTL_CT_CAPACITY 65536 /* flows in a state region whose `state` message says none */

/* Starts `program --control-fd 3`; its end of the socket in *ctl_fd. 0 or -errno with err. */
int netctl_spawn(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		 size_t errlen);
/*
 * Sends one request (text, fds) and waits NETCTL_REPLY_MS at most for the
 * answer; its text after "ok" (possibly empty) in reply. 0, or -errno with
 * err: the REASON of an "error" answer, or what went wrong on the socket.
 */
int netctl_request(int ctl_fd, const char *text, const int *fds, unsigned nfds, char *reply,
		   size_t replylen, char *err, size_t errlen);
/* DOMUS_NET, else domus-net beside program `near` (installed), else in the build tree. */
void netctl_find_program(char *out, size_t len, const char *near);

#endif
