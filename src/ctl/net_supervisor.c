#include "ctl/net_supervisor.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio_net.h"
#include "lib/log.h"
#include "lib/unix_socket.h"
#include "net/netctl.h"

#define NET_ID 1
#define NET_NAME "run"
#define PORT_ID 1
#define PORT_NAME "guest"

/* Hands a (new) domus-net the state, uplink, network and port, in that order. */
static int serve(struct backend_proc *p, bool again, char *err, size_t errlen)
{
	struct net_supervisor *s = (struct net_supervisor *)((char *)p - offsetof(struct net_supervisor, proc));
	int ctl_fd = p->ctl_fd;
	char reply[128];
	int ret;

	if ((ret = netctl_request(ctl_fd, "state", &s->state_fd, 1, reply, sizeof(reply), err,
				  errlen)) < 0)
		return ret;
	log_debug("domus-net: state %s", reply);
	if (s->tap_fd >= 0 &&
	    (ret = netctl_request(ctl_fd, s->uplink_msg, &s->tap_fd, 1, NULL, 0, err, errlen)) < 0)
		return ret;
	if ((ret = netctl_request(ctl_fd, s->net_msg, NULL, 0, NULL, 0, err, errlen)) < 0)
		return ret;
	if ((ret = netctl_request(ctl_fd, s->port_msg, &s->listen_fd, 1, NULL, 0, err, errlen)) == 0 &&
	    again)
		log_info("domus-net started again (pid %d)", (int)p->pid);
	return ret;
}

/* The messages for nic, made once: every domus-net started gets the same. */
static void make_messages(struct net_supervisor *s, const struct nic_config *nic)
{
	const struct nic_vfr_config *v = &nic->v;
	uint32_t subnet = v->addr & netctl_mask(v->prefix);
	struct vfr_net_config net = {
	    .id = NET_ID,
	    .name = NET_NAME,
	    .subnet = subnet,
	    .prefix = v->prefix,
	    .gateway = subnet + 1,
	    .default_action = v->default_action,
	    .mode = v->mode,
	};
	struct vfr_port_config port = {
	    .id = PORT_ID, .name = PORT_NAME, .net = NET_ID, .addr = v->addr};

	memcpy(port.mac, nic->mac, sizeof(port.mac));
	netctl_uplink_msg(&v->uplink, s->uplink_msg, sizeof(s->uplink_msg));
	netctl_net_msg(&net, s->net_msg, sizeof(s->net_msg));
	netctl_port_msg(&port, NET_NAME, s->port_msg, sizeof(s->port_msg));
}

int net_supervisor_start(struct net_supervisor *s, struct nic_config *nic, bool verbose,
			 const struct watch_loop *loop, int pid_kind, int timer_kind)
{
	char err[512];
	int ret;

	memset(s, 0, sizeof(*s));
	backend_proc_init(&s->proc, "domus-net", "", netctl_spawn, serve, loop, pid_kind, timer_kind);
	s->proc.verbose = verbose;
	s->state_fd = s->tap_fd = s->listen_fd = -1;
	if (backend_proc_find(&s->proc, netctl_find_program) < 0) {
		log_warnx("domus-net not found beside this program (set DOMUS_NET)");
		return -ENOENT;
	}
	make_messages(s, nic);
	if (nic->v.have_uplink && (s->tap_fd = tap_open_uplink(nic->v.uplink_tap, err, sizeof(err))) < 0) {
		log_warnx("--net vfr uplink: %s", err);
		ret = -EINVAL;
		goto out;
	}
	/* The flows (NAT's bindings among them) outlive each domus-net: every one gets this memory.
	 */
	s->state_fd = memfd_create("domus-net-state", MFD_CLOEXEC);
	if (s->state_fd < 0 ||
	    ftruncate(s->state_fd, (off_t)vfr_state_size(NETCTL_CT_CAPACITY)) < 0) {
		ret = -errno;
		log_warn("domus-net's state region");
		goto out;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/domus-net.XXXXXX");
	if (!mkdtemp(s->dir)) {
		ret = -errno;
		log_warn("mkdtemp");
		s->dir[0] = 0;
		goto out;
	}
	snprintf(s->socket, sizeof(s->socket), "%s/port.sock", s->dir);
	if ((s->listen_fd = unix_listen(s->socket, SOCK_STREAM, 4)) < 0) {
		ret = s->listen_fd;
		log_warnx("cannot listen on %s: %s", s->socket, strerror(-ret));
		s->socket[0] = 0;
		goto out;
	}
	if ((ret = backend_proc_ensure(&s->proc, err, sizeof(err))) < 0) {
		log_warnx("domus-net: %s", err);
		goto out;
	}
	snprintf(nic->socket, sizeof(nic->socket), "%s", s->socket);
	return 0;
out:
	net_supervisor_stop(s);
	return ret;
}

void net_supervisor_stop(struct net_supervisor *s)
{
	backend_proc_stop(&s->proc);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->tap_fd >= 0)
		close(s->tap_fd);
	if (s->state_fd >= 0)
		close(s->state_fd);
	s->listen_fd = s->tap_fd = s->state_fd = -1;
	if (s->socket[0])
		unlink(s->socket);
	s->socket[0] = 0;
	if (s->dir[0])
		rmdir(s->dir);
	s->dir[0] = 0;
}
