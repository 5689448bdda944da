#include "ctl/shm_server.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/unix_socket.h"

#define SHM_ACCEPT_BATCH 16 /* connections taken per wake-up: other work is not starved */
#define SHM_READ_BATCH 16   /* reads of a chattering peer per wake-up */
/* A generous bound on one message's cost in a socket buffer (the kernel's skb, 8 bytes of data). */
#define SHM_MSG_TRUESIZE 1024

/*
 * One descriptor kept in reserve: when the process has no descriptor left,
 * a waiting connection can still be taken (and closed), rather than being
 * reported readable again and again.
 */
static int spare_fd = -1;

static void spare_take(void)
{
	if (spare_fd < 0)
		spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* One message: value, little-endian, with fd attached unless it is -1. 0, or -1 if not sent whole
 * at once. */
static int send_msg(int sock, int64_t value, int fd)
{
	uint64_t le = htole64((uint64_t)value);
	struct iovec iov = {.iov_base = &le, .iov_len = sizeof(le)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(le) ? 0 : -1;
}

/* p cannot take what it is sent: it goes at the next reap. */
static void peer_fail(struct shm_peer *p)
{
	if (!p->dead) {
		p->dead = true;
		p->srv->dropped++;
	}
}

static void peer_free(struct shm_server *srv, struct shm_peer *p)
{
	srv->peers[p->id] = NULL;
	srv->npeers--;
	if (p->fd >= 0) {
		srv->loop->del(p->fd);
		close(p->fd);
	}
	for (unsigned v = 0; v < srv->vectors; v++)
		if (p->eventfds[v] >= 0)
			close(p->eventfds[v]);
	free(p);
}

/*
 * Frees the peers marked dead and tells every other their IDs (no
 * descriptor: "gone"); a peer that cannot take that goes too, until none
 * is left to drop.
 */
static void reap(struct shm_server *srv)
{
	bool again;

	do {
		again = false;
		for (unsigned id = 0; id < SHM_MAX_PEERS; id++) {
			struct shm_peer *p = srv->peers[id];

			bool announced;

			if (!p || !p->dead)
				continue;
			announced = p->announced;
			peer_free(srv, p);
			for (unsigned q = 0; q < SHM_MAX_PEERS && announced; q++) {
				struct shm_peer *o = srv->peers[q];
				if (o && !o->dead && send_msg(o->fd, (int64_t)id, -1) < 0) {
					peer_fail(o);
					again = true;
				}
			}
		}
	} while (again);
}

/* p has its ID and eventfds: it learns the memory and the others, they learn of it. */
static void peer_join(struct shm_server *srv, struct shm_peer *p)
{
	bool ok = send_msg(p->fd, 0, -1) == 0 && send_msg(p->fd, (int64_t)p->id, -1) == 0 &&
		  send_msg(p->fd, -1, srv->memfd) == 0;

	for (unsigned q = 0; q < SHM_MAX_PEERS && ok; q++) {
		struct shm_peer *o = srv->peers[q];
		if (o && o != p && !o->dead)
			for (unsigned v = 0; v < srv->vectors && ok; v++)
				ok = send_msg(p->fd, (int64_t)o->id, o->eventfds[v]) == 0;
	}
	p->announced = ok;
	for (unsigned q = 0; q < SHM_MAX_PEERS && ok; q++) {
		struct shm_peer *o = srv->peers[q];
		if (o && o != p && !o->dead)
			for (unsigned v = 0; v < srv->vectors; v++)
				if (send_msg(o->fd, (int64_t)p->id, p->eventfds[v]) < 0) {
					peer_fail(o);
					break;
				}
	}
	for (unsigned v = 0; v < srv->vectors && ok; v++)
		ok = send_msg(p->fd, (int64_t)p->id, p->eventfds[v]) == 0;
	if (!ok)
		peer_fail(p);
	reap(srv);
}

/*
 * A socket buffer that holds everything one connection is sent at once (a
 * full region's eventfds), so that a peer that reads is never dropped for
 * being a moment late; one that never reads fills it and is dropped.
 */
static void size_send_buffer(const struct shm_server *srv, int fd)
{
	int want = (int)((3 + (uint64_t)srv->vectors * (SHM_MAX_PEERS + 1)) * SHM_MSG_TRUESIZE),
	    have = 0;
	socklen_t len = sizeof(have);

	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have >= want)
		return;
	/* Past net.core.wmem_max only with CAP_NET_ADMIN (domusd has it; a test may not). */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
}

static void take_connection(struct shm_server *srv, int fd)
{
	struct ucred cred = {0};
	socklen_t len = sizeof(cred);
	struct shm_peer *p;
	unsigned id;

	/* The socket's mode admits only its owner and root (or domusd's own user); this says so
	 * again. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != srv->owner && cred.uid != geteuid())) {
		srv->refused++;
		close(fd);
		return;
	}
	if (srv->npeers >= SHM_MAX_PEERS) {
		if (!srv->refused++)
			log_warnx("shm %s: more than %d peers; refusing the rest", srv->path,
				  SHM_MAX_PEERS);
		close(fd);
		return;
	}
	for (id = 0; id < SHM_MAX_PEERS && srv->peers[id]; id++)
		;
	p = calloc(1, sizeof(*p) + srv->vectors * sizeof(int));
	if (!p) {
		srv->refused++;
		close(fd);
		return;
	}
	p->srv = srv;
	p->fd = fd;
	p->id = id;
	p->pid = cred.pid;
	p->uid = cred.uid;
	for (unsigned v = 0; v < srv->vectors; v++)
		p->eventfds[v] = -1;
	srv->peers[id] = p;
	srv->npeers++;
	for (unsigned v = 0; v < srv->vectors; v++)
		if ((p->eventfds[v] = eventfd(0, EFD_CLOEXEC)) < 0) {
			log_warn("shm %s: eventfds for peer %u (pid %d)", srv->path, id,
				 (int)cred.pid);
			srv->refused++;
			p->fd = -1; /* not watched yet */
			peer_free(srv, p);
			close(fd);
			return;
		}
	size_send_buffer(srv, fd);
	p->w = (struct watch){srv->peer_kind, p};
	srv->loop->add(fd, &p->w);
	peer_join(srv, p);
}

void shm_server_accept(struct shm_server *srv)
{
	for (unsigned i = 0; i < SHM_ACCEPT_BATCH; i++) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
			close(spare_fd);
			spare_fd = -1;
			fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
			spare_take();
			if (!srv->refused++)
				log_warnx("shm %s: out of descriptors; refusing connections",
					  srv->path);
			return;
		}
		if (fd < 0)
			return; /* EAGAIN: none left; anything else: the next wake-up tries again */
		take_connection(srv, fd);
	}
}

void shm_server_peer_readable(struct shm_peer *p)
{
	char buf[4096];

	for (unsigned i = 0; i < SHM_READ_BATCH; i++) {
		ssize_t n = read(p->fd, buf, sizeof(buf));

		if (n > 0)
			continue; /* the protocol has peers send nothing: dropped */
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* Its end (or an error on its socket): it is gone, the others hear of it. */
		p->dead = true;
		reap(p->srv);
		return;
	}
}

int shm_server_start(struct shm_server *srv, const char *path, int memfd, unsigned vectors,
		     uid_t uid, gid_t gid, const struct watch_loop *loop, int listen_kind,
		     int peer_kind)
{
	mode_t old;
	int fd, ret;

	memset(srv, 0, sizeof(*srv));
	srv->listen_fd = -1;
	if (strlen(path) >= sizeof(srv->path))
		return -ENAMETOOLONG;
	strcpy(srv->path, path);
	srv->memfd = memfd;
	srv->vectors = vectors;
	srv->owner = uid;
	srv->loop = loop;
	srv->peer_kind = peer_kind;
	spare_take();
	/* Born 0600: no one but root can connect before it has its owner. */
	old = umask(0177);
	fd = unix_listen(path, SOCK_STREAM, SHM_MAX_PEERS);
	umask(old);
	if (fd < 0)
		return fd;
	/* Not root (a test, a user's own domusd): the socket stays the caller's, who is everyone
	 * here. */
	if ((geteuid() == 0 && chown(path, uid, gid) < 0) || chmod(path, 0600) < 0) {
		ret = -errno;
		close(fd);
		unlink(path);
		return ret;
	}
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		ret = -errno;
		close(fd);
		unlink(path);
		return ret;
	}
	srv->listen_fd = fd;
	srv->w_listen = (struct watch){listen_kind, srv};
	loop->add(fd, &srv->w_listen);
	return 0;
}

void shm_server_stop(struct shm_server *srv)
{
	for (unsigned id = 0; id < SHM_MAX_PEERS; id++)
		if (srv->peers[id])
			peer_free(srv, srv->peers[id]);
	if (srv->listen_fd >= 0) {
		srv->loop->del(srv->listen_fd);
		close(srv->listen_fd);
		unlink(srv->path);
		srv->listen_fd = -1;
	}
}
