/*
 * The supervisor's end of domus-net's control socket (SOCK_SEQPACKET, one
 * message per request, descriptors attached with SCM_RIGHTS), for domusd
 * (src/ctl/nethost.c) and `domus run` (src/ctl/net_supervisor.c). The
 * supervisor keeps every descriptor and message it sent and hands them all
 * again, in the same order, to each domus-net started after a death: the
 * state memfd first, then the uplink, networks, ports and rules. The protocol (docs/net.md) is lines of text:
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
#include <stdint.h>
#include <sys/types.h>

#include "net/vfr.h"

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

/* The message texts, made the same way by every supervisor. */
void netctl_uplink_msg(const struct vfr_uplink_config *u, char *buf, size_t len);
void netctl_net_msg(const struct vfr_net_config *n, char *buf, size_t len);
/* net_name: the network the port is on, by name. */
void netctl_port_msg(const struct vfr_port_config *p, const char *net_name, char *buf, size_t len);

/* What the supervisors read from their users, checked alike. */
/* "A.B.C.D" into a host-order address. 0 or -EINVAL. */
int netctl_parse_ip(const char *s, uint32_t *out);
/* "A.B.C.D/N" (N 1 to 32) into an address and prefix length. 0 or -EINVAL. */
int netctl_parse_cidr(const char *s, uint32_t *addr, uint8_t *prefix);
/* The netmask of a prefix length, host order. */
uint32_t netctl_mask(uint8_t prefix);
/* A host-order address as text, in buf (INET_ADDRSTRLEN bytes); returns buf. */
const char *netctl_ip_str(uint32_t a, char *buf);
/* A MAC as aa:bb:cc:dd:ee:ff, in buf (18 bytes); returns buf. */
const char *netctl_mac_str(const uint8_t m[6], char *buf);
/* none, routed, nat, rsip. */
const char *netctl_mode_name(enum vfr_uplink_mode m);
int netctl_parse_mode(const char *s, enum vfr_uplink_mode *m);
/* accept, drop, reject. 0 or -EINVAL. */
int netctl_parse_action(const char *s, enum vfr_action *a);
/*
 * "TAP:ADDR/PREFIX[:GATEWAY]": the uplink's TAP name (into tap, taplen
 * bytes), address and gateway (on ADDR's link), and a locally
 * administered MAC made from ADDR/PREFIX, the same on every start.
 * 0, or -EINVAL with why in err (the message quotes spec, no prefix).
 */
int netctl_parse_uplink(const char *spec, char *tap, size_t taplen, struct vfr_uplink_config *u,
			char *err, size_t errlen);

#endif
