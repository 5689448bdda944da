/*
 * domusd's shared-memory regions (src/ctl/shm.c) and their ivshmem server
 * (src/ctl/shm_server.c), against a client written from QEMU's
 * ivshmem-spec.txt over real Unix sockets in a temporary directory: every
 * message and descriptor a peer is sent, the memory shared, the doorbells
 * both ways, departures, ID reuse, and peers that flood, never read or
 * come too many.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/shm.h"
#include "lib/unix_socket.h"

enum { K_LISTEN = 1, K_PEER = 2 };

/* ---- a loop for the servers: every descriptor they watch, polled here ---- */

#define MAX_WATCHED 512
static struct {
	int fd;
	struct watch *w;
} watched[MAX_WATCHED];
static unsigned nwatched;

static void loop_add(int fd, struct watch *w)
{
	assert_true(nwatched < MAX_WATCHED);
	watched[nwatched].fd = fd;
	watched[nwatched++].w = w;
}

static void loop_del(int fd)
{
	for (unsigned i = 0; i < nwatched; i++)
		if (watched[i].fd == fd) {
			watched[i] = watched[--nwatched];
			return;
		}
}

static const struct watch_loop test_loop = {.add = loop_add, .del = loop_del};

/* Hands the servers what is ready until nothing is (as domusd's loop: one event at a time). */
static void pump(void)
{
	for (int rounds = 0; rounds < 100000; rounds++) {
		struct pollfd p[MAX_WATCHED];
		int n;

		for (unsigned i = 0; i < nwatched; i++)
			p[i] = (struct pollfd){.fd = watched[i].fd, .events = POLLIN};
		n = poll(p, nwatched, 0);
		assert_true(n >= 0);
		if (n == 0)
			return;
		for (unsigned i = 0; i < nwatched; i++)
			if (p[i].revents) {
				struct watch *w = watched[i].w;
				if (w->kind == K_LISTEN)
					shm_server_accept(w->ptr);
				else
					shm_server_peer_readable(w->ptr);
				break;
			}
	}
	fail_msg("the servers never settled");
}

static char dir[64];
static struct shm_registry reg;

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_shm.XXXXXX");
	assert_non_null(mkdtemp(dir));
	strcat(dir, "/shm");
	nwatched = 0;
	assert_int_equal(shm_registry_init(&reg, dir, &test_loop, K_LISTEN, K_PEER), 0);
	return 0;
}

static int teardown(void **state)
{
	char parent[64];

	(void)state;
	shm_registry_free(&reg);
	assert_int_equal(nwatched, 0); /* every descriptor given back to the loop */
	rmdir(dir);
	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = 0;
	rmdir(parent);
	return 0;
}

/* ---- the client, from the spec ---- */

/* One message: 1 with *value and *fd (-1: none), 0 at the end of the stream, -1 if none waits in
 * ms. */
static int recv_msg(int sock, int64_t *value, int *fd, int ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	uint64_t le;
	struct iovec iov = {.iov_base = &le, .iov_len = sizeof(le)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct pollfd p = {.fd = sock, .events = POLLIN};
	struct cmsghdr *c;
	ssize_t n;

	*fd = -1;
	if (poll(&p, 1, ms) != 1)
		return -1;
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	assert_int_equal(n, 8);
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(int)));
			memcpy(fd, CMSG_DATA(c), sizeof(int));
		}
	*value = (int64_t)le64toh(le);
	return 1;
}

static void expect_msg(int sock, int64_t value, bool with_fd, int *fd_out)
{
	int64_t v;
	int fd;

	assert_int_equal(recv_msg(sock, &v, &fd, 1000), 1);
	assert_int_equal(v, value);
	if (with_fd)
		assert_true(fd >= 0);
	else
		assert_int_equal(fd, -1);
	if (fd_out)
		*fd_out = fd;
	else if (fd >= 0)
		close(fd);
}

static void expect_nothing(int sock)
{
	int64_t v;
	int fd;

	assert_int_equal(recv_msg(sock, &v, &fd, 0), -1);
}

#define VECS 3

struct client {
	int sock;
	int64_t id;
	int memfd;
	void *mem;
	size_t size;
	int own[SHM_VECTORS_MAX];     /* its eventfds, by vector */
	int peer[4][SHM_VECTORS_MAX]; /* another peer's, by its ID and vector; -1 if not known */
};

static void client_init(struct client *c)
{
	memset(c, 0, sizeof(*c));
	memset(c->own, -1, sizeof(c->own));
	memset(c->peer, -1, sizeof(c->peer));
	c->memfd = -1;
	c->sock = -1;
}

/* Connects to region r as its next peer, which must get ID want_id, with others the IDs already
 * there. */
static void client_connect(struct client *c, struct shm_region *r, int64_t want_id,
			   const int64_t *others, unsigned nothers)
{
	struct stat st;

	client_init(c);
	c->sock = unix_connect(r->server.path, SOCK_STREAM);
	assert_true(c->sock >= 0);
	pump();
	expect_msg(c->sock, 0, false, NULL); /* the protocol's version */
	assert_int_equal(recv_msg(c->sock, &c->id, &c->memfd, 1000), 1);
	assert_int_equal(c->id, want_id);
	assert_int_equal(c->memfd, -1); /* the ID comes alone */
	expect_msg(c->sock, -1, true, &c->memfd);
	assert_int_equal(fstat(c->memfd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, r->size);
	/* Sealed at its size: no peer can shrink or grow it under the others. */
	assert_int_equal(fcntl(c->memfd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_true(ftruncate(c->memfd, (off_t)r->size * 2) < 0);
	c->size = r->size;
	c->mem = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
	assert_true(c->mem != MAP_FAILED);
	for (unsigned o = 0; o < nothers; o++)
		for (unsigned v = 0; v < r->vectors; v++)
			expect_msg(c->sock, others[o], true, &c->peer[others[o]][v]);
	for (unsigned v = 0; v < r->vectors; v++)
		expect_msg(c->sock, c->id, true, &c->own[v]);
	expect_nothing(c->sock);
}

/* c hears that peer id came, with its eventfds. */
static void client_hears_join(struct client *c, unsigned vectors, int64_t id)
{
	for (unsigned v = 0; v < vectors; v++)
		expect_msg(c->sock, id, true, &c->peer[id][v]);
	expect_nothing(c->sock);
}

static void client_close(struct client *c)
{
	if (c->sock >= 0)
		close(c->sock);
	if (c->mem && c->mem != MAP_FAILED)
		munmap(c->mem, c->size);
	if (c->memfd >= 0)
		close(c->memfd);
	for (unsigned v = 0; v < SHM_VECTORS_MAX; v++) {
		if (c->own[v] >= 0)
			close(c->own[v]);
		for (unsigned p = 0; p < 4; p++)
			if (c->peer[p][v] >= 0)
				close(c->peer[p][v]);
	}
	client_init(c);
}

/* Rings: 1 written to the eventfd from, read back (the count) from to, which must be the same
 * object. */
static void ring(int from, int to)
{
	uint64_t one = 1, got = 0;
	struct pollfd p = {.fd = to, .events = POLLIN};

	assert_int_equal(write(from, &one, 8), 8);
	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_int_equal(read(to, &got, 8), 8);
	assert_int_equal(got, 1);
}

/* ---- the rules ---- */

static void test_names_sizes_entries(void **state)
{
	struct shm_config s;
	char err[256], text[256];
	uint64_t b;

	(void)state;
	assert_int_equal(shm_name_check("chan0", err, sizeof(err)), 0);
	assert_int_equal(shm_name_check("a.b_c-D9", err, sizeof(err)), 0);
	assert_int_equal(shm_name_check("", err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_name_check("..", err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_name_check(".hidden", err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_name_check("a/b", err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_name_check("a b", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "only letters"));
	memset(text, 'x', 64);
	text[64] = 0;
	assert_int_equal(shm_name_check(text, err, sizeof(err)), -EINVAL);
	text[63] = 0;
	assert_int_equal(shm_name_check(text, err, sizeof(err)), 0);

	assert_int_equal(shm_size_parse("4096", &b), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(shm_size_parse("64K", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(shm_size_parse("4m", &b), 0);
	assert_int_equal(b, 4u << 20);
	assert_int_equal(shm_size_parse("1G", &b), 0);
	assert_int_equal(b, 1u << 30);
	assert_int_equal(shm_size_parse("2MiB", &b), 0);
	assert_int_equal(b, 2u << 20);
	assert_int_equal(shm_size_parse("", &b), -EINVAL);
	assert_int_equal(shm_size_parse("-4M", &b), -EINVAL);
	assert_int_equal(shm_size_parse("4T", &b), -EINVAL);
	assert_int_equal(shm_size_parse("4M4", &b), -EINVAL);
	assert_int_equal(shm_size_parse("99999999999999999999G", &b), -EINVAL);

	assert_int_equal(shm_check(4096, 1, true, err, sizeof(err)), 0);
	assert_int_equal(shm_check(1u << 30, 64, true, err, sizeof(err)), 0);
	assert_int_equal(shm_check(2048, 1, true, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_check(3u << 20, 1, true, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "power of two"));
	assert_int_equal(shm_check(2u << 30, 1, true, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_check(4096, 0, true, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_check(4096, 65, true, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_check(4096, 0, false, err, sizeof(err)), 0);
	assert_int_equal(shm_check(4096, 2, false, err, sizeof(err)), -EINVAL);

	assert_int_equal(
	    shm_spec_parse("name=chan0,size=4M,doorbell=1,vectors=2", &s, err, sizeof(err)), 0);
	assert_string_equal(s.name, "chan0");
	assert_int_equal(s.size, 4u << 20);
	assert_true(s.doorbell);
	assert_int_equal(s.vectors, 2);
	assert_string_equal(s.path, "");
	shm_spec_format(&s, text, sizeof(text));
	assert_string_equal(text, "name=chan0,size=4M,doorbell=1,vectors=2");
	/* Defaults: a doorbell with one vector. */
	assert_int_equal(shm_spec_parse("size=64K, name=x", &s, err, sizeof(err)), 0);
	assert_true(s.doorbell);
	assert_int_equal(s.vectors, 1);
	assert_int_equal(shm_spec_parse("name=p,size=8K,doorbell=0", &s, err, sizeof(err)), 0);
	assert_false(s.doorbell);
	assert_int_equal(s.vectors, 0);
	/* path= last, commas and all. */
	assert_int_equal(shm_spec_parse("name=q,size=8K,path=/run/a,b.sock", &s, err, sizeof(err)),
			 0);
	assert_string_equal(s.path, "/run/a,b.sock");
	shm_spec_format(&s, text, sizeof(text));
	assert_string_equal(text, "name=q,size=8K,doorbell=1,vectors=1,path=/run/a,b.sock");

	assert_int_equal(shm_spec_parse("size=4M", &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no name="));
	assert_int_equal(shm_spec_parse("name=c", &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no size="));
	assert_int_equal(shm_spec_parse("name=c,size=3M", &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "shm 'name=c,size=3M'"));
	assert_non_null(strstr(err, "power of two"));
	assert_int_equal(shm_spec_parse("name=c,size=4M,vectors=65", &s, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(shm_spec_parse("name=c,size=4M,vectors=x", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(
	    shm_spec_parse("name=c,size=4M,doorbell=0,vectors=2", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_spec_parse("name=c,size=4M,doorbell=yes", &s, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(shm_spec_parse("name=c,size=4M,colour=red", &s, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "unknown key 'colour'"));
	assert_int_equal(shm_spec_parse("name=../x,size=4M", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_spec_parse("name=c,size=4M,novalue", &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_spec_parse("name=c,size=4M,path=", &s, err, sizeof(err)), -EINVAL);
}

static void test_registry(void **state)
{
	struct shm_region *r, *r2;
	struct shm_config s;
	struct stat st;
	char err[512];

	(void)state;
	assert_int_equal(
	    shm_create(&reg, "chan0", 1 << 20, 2, true, 1234, 1234, &r, err, sizeof(err)), 0);
	assert_ptr_equal(shm_find(&reg, "chan0"), r);
	assert_null(shm_find(&reg, "chan1"));
	assert_int_equal(r->vectors, 2);
	/* Its socket: the owner's, mode 0600, in the 0711 directory. */
	assert_int_equal(stat(r->server.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid() == 0 ? 1234 : geteuid());
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	/* The memory: zero, sealed, its size. */
	assert_int_equal(fstat(r->memfd, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	assert_int_equal(fcntl(r->memfd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);

	assert_int_equal(
	    shm_create(&reg, "chan0", 4096, 1, true, 1234, 1234, &r2, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "exists already"));
	assert_int_equal(shm_create(&reg, "odd", 5000, 1, true, 0, 0, &r2, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "power of two"));
	assert_int_equal(shm_create(&reg, "a/b", 4096, 1, true, 0, 0, &r2, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(shm_create(&reg, "many", 4096, 65, true, 0, 0, &r2, err, sizeof(err)),
			 -EINVAL);
	assert_null(shm_find(&reg, "odd"));

	/* Owners: the uid that made it and root. */
	assert_true(shm_may_use(r, 1234));
	assert_true(shm_may_use(r, 0));
	assert_false(shm_may_use(r, 1235));

	/* A domain's entry: matched, refused, or made. */
	assert_int_equal(shm_spec_parse("name=chan0,size=1M,vectors=2", &s, err, sizeof(err)), 0);
	assert_int_equal(shm_attach_spec(&reg, &s, 1234, 1234, &r2, err, sizeof(err)), 0);
	assert_ptr_equal(r2, r);
	assert_int_equal(shm_attach_spec(&reg, &s, 0, 0, &r2, err, sizeof(err)), 0);
	assert_int_equal(shm_attach_spec(&reg, &s, 999, 999, &r2, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "belongs to uid 1234"));
	assert_int_equal(shm_spec_parse("name=chan0,size=2M,vectors=2", &s, err, sizeof(err)), 0);
	assert_int_equal(shm_attach_spec(&reg, &s, 1234, 1234, &r2, err, sizeof(err)), -EEXIST);
	assert_non_null(
	    strstr(err, "exists as size=1M,doorbell=1,vectors=2; the domain asks for size=2M"));
	assert_int_equal(shm_spec_parse("name=chan0,size=1M,vectors=1", &s, err, sizeof(err)), 0);
	assert_int_equal(shm_attach_spec(&reg, &s, 1234, 1234, &r2, err, sizeof(err)), -EEXIST);
	assert_int_equal(shm_spec_parse("name=chan0,size=1M,doorbell=0", &s, err, sizeof(err)), 0);
	assert_int_equal(shm_attach_spec(&reg, &s, 1234, 1234, &r2, err, sizeof(err)), -EEXIST);
	assert_int_equal(shm_spec_parse("name=fresh,size=8K,doorbell=0", &s, err, sizeof(err)), 0);
	assert_int_equal(shm_attach_spec(&reg, &s, 77, 77, &r2, err, sizeof(err)), 0);
	assert_ptr_equal(shm_find(&reg, "fresh"), r2);
	assert_int_equal(r2->owner_uid, 77);
	assert_false(r2->doorbell);
	assert_int_equal(r2->vectors, 0);

	/* Listed in name order. */
	assert_string_equal(reg.regions->name, "chan0");
	assert_string_equal(reg.regions->next->name, "fresh");
	assert_int_equal(reg.nregions, 2);

	/* Destroyed: its socket goes. */
	{
		char path[SHM_SOCKET_PATH_MAX];
		snprintf(path, sizeof(path), "%s", r2->server.path);
		assert_int_equal(shm_destroy(&reg, r2, false, err, sizeof(err)), 0);
		assert_int_equal(access(path, F_OK), -1);
		assert_null(shm_find(&reg, "fresh"));
	}
	/* At most SHM_MAX_REGIONS. */
	for (unsigned i = reg.nregions; i < SHM_MAX_REGIONS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "r%u", i);
		assert_int_equal(shm_create(&reg, name, 4096, 1, true, 0, 0, &r2, err, sizeof(err)),
				 0);
	}
	assert_int_equal(shm_create(&reg, "onemore", 4096, 1, true, 0, 0, &r2, err, sizeof(err)),
			 -ENOSPC);
	assert_non_null(strstr(err, "at most 256"));
}

static void test_two_peers(void **state)
{
	struct shm_region *r;
	struct client a, b, c;
	char err[512];
	int64_t ids[2];

	(void)state;
	assert_int_equal(shm_create(&reg, "chan", 64 << 10, VECS, true, geteuid(), getegid(), &r,
				    err, sizeof(err)),
			 0);
	client_connect(&a, r, 0, NULL, 0);
	ids[0] = 0;
	client_connect(&b, r, 1, ids, 1);
	client_hears_join(&a, VECS, 1);
	assert_int_equal(r->server.npeers, 2);
	assert_int_equal(r->server.peers[1]->pid, getpid());

	/* The same memory: written through one mapping, read through the other. */
	strcpy(a.mem, "from a");
	strcpy((char *)b.mem + 4096, "from b");
	assert_string_equal(b.mem, "from a");
	assert_string_equal((char *)a.mem + 4096, "from b");

	/* Doorbells: a's eventfd for b's vector v is b's own for v, and the other way round. */
	for (unsigned v = 0; v < VECS; v++) {
		ring(a.peer[1][v], b.own[v]);
		ring(b.peer[0][v], a.own[v]);
	}
	/* Different vectors are different eventfds. */
	{
		uint64_t one = 1, got;
		struct pollfd p = {.fd = b.own[1], .events = POLLIN};
		assert_int_equal(write(a.peer[1][0], &one, 8), 8);
		assert_int_equal(poll(&p, 1, 0), 0);
		assert_int_equal(read(b.own[0], &got, 8), 8);
	}

	/* b goes: a hears its ID without a descriptor; the region and a stay. */
	client_close(&b);
	pump();
	expect_msg(a.sock, 1, false, NULL);
	expect_nothing(a.sock);
	assert_int_equal(r->server.npeers, 1);
	/* A newcomer takes the lowest free ID again: b's. */
	client_connect(&c, r, 1, ids, 1);
	client_hears_join(&a, VECS, 1);
	ring(a.peer[1][2], c.own[2]);
	ring(c.peer[0][2], a.own[2]);
	assert_string_equal(c.mem, "from a");
	/* a goes: ID 0 is free, the next takes it and learns of c. */
	client_close(&a);
	pump();
	expect_msg(c.sock, 0, false, NULL);
	ids[0] = 1;
	client_connect(&a, r, 0, ids, 1);
	client_hears_join(&c, VECS, 0);

	/* A forced destroy drops both; they keep the memory they mapped. */
	assert_int_equal(shm_destroy(&reg, r, false, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "2 peer(s) attached"));
	assert_int_equal(shm_destroy(&reg, r, true, err, sizeof(err)), 0);
	{
		int64_t v;
		int fd;
		assert_int_equal(recv_msg(a.sock, &v, &fd, 1000), 0);
	}
	strcpy(c.mem, "still mapped");
	assert_string_equal(a.mem, "still mapped");
	client_close(&a);
	client_close(&c);
}

static void test_plain_region(void **state)
{
	struct shm_region *r;
	struct client a, b;
	char err[512];
	int64_t ids[1] = {0};

	(void)state;
	assert_int_equal(
	    shm_create(&reg, "plain", 4096, 0, false, geteuid(), getegid(), &r, err, sizeof(err)),
	    0);
	/* No eventfds: version, ID, memory, and nothing of the others. */
	client_connect(&a, r, 0, NULL, 0);
	client_connect(&b, r, 1, ids, 1);
	expect_nothing(a.sock);
	strcpy(a.mem, "plain");
	assert_string_equal(b.mem, "plain");
	client_close(&a);
	pump();
	expect_msg(b.sock, 0, false, NULL);
	client_close(&b);
}

static void test_hostile_peers(void **state)
{
	struct shm_region *r;
	struct client a, b;
	char err[512], junk[65536];
	int64_t ids[1] = {0};
	int flooder, silent, silent_gone = 0;

	(void)state;
	assert_int_equal(shm_create(&reg, "hostile", 4096, SHM_VECTORS_MAX, true, geteuid(),
				    getegid(), &r, err, sizeof(err)),
			 0);
	/* A peer that floods the server with bytes: read and dropped, the others unharmed. */
	client_connect(&a, r, 0, NULL, 0);
	memset(junk, 0xa5, sizeof(junk));
	flooder = a.sock;
	fcntl(flooder, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 64; i++) {
		if (write(flooder, junk, sizeof(junk)) < 0)
			break;
		pump();
	}
	pump();
	assert_int_equal(r->server.npeers, 1);
	fcntl(flooder, F_SETFL, 0);
	client_connect(&b, r, 1, ids, 1);
	client_hears_join(&a, SHM_VECTORS_MAX, 1);
	client_close(&b);
	pump();
	expect_msg(a.sock, 1, false, NULL);

	/* A peer that never reads: its socket fills with others' comings and goings, and it is
	 * dropped. */
	silent = unix_connect(r->server.path, SOCK_STREAM);
	assert_true(silent >= 0);
	pump();
	assert_int_equal(r->server.npeers, 2);
	for (int i = 0; i < 2000 && r->server.npeers == 2; i++) {
		int s = unix_connect(r->server.path, SOCK_STREAM);
		assert_true(s >= 0);
		pump();
		close(s);
		pump();
		/* a reads what it is sent: it keeps up, and stays; it hears the silent one (ID 1)
		 * go once. */
		for (;;) {
			int64_t v;
			int fd;
			if (recv_msg(a.sock, &v, &fd, 0) != 1)
				break;
			if (fd >= 0)
				close(fd);
			else if (v == 1)
				silent_gone++;
		}
	}
	assert_int_equal(silent_gone, 1);
	assert_int_equal(r->server.npeers, 1);
	assert_true(r->server.dropped >= 1);
	assert_non_null(r->server.peers[0]);
	assert_int_equal(r->server.peers[0]->pid, getpid());
	close(silent);
	pump();
	expect_nothing(a.sock); /* dropped already: nothing more of it */
	client_close(&a);
	pump();
	assert_int_equal(r->server.npeers, 0);
}

static void test_peer_limit(void **state)
{
	struct shm_region *r;
	int socks[SHM_MAX_PEERS + 1];
	char err[512], buf[64];

	(void)state;
	assert_int_equal(
	    shm_create(&reg, "crowd", 4096, 1, true, geteuid(), getegid(), &r, err, sizeof(err)),
	    0);
	for (unsigned i = 0; i < SHM_MAX_PEERS; i++) {
		socks[i] = unix_connect(r->server.path, SOCK_STREAM);
		assert_true(socks[i] >= 0);
		pump();
		/* Each takes what it is sent, as a well-behaved peer. */
		fcntl(socks[i], F_SETFL, O_NONBLOCK);
		for (unsigned j = 0; j <= i; j++) {
			int64_t v;
			int fd;
			while (recv_msg(socks[j], &v, &fd, 0) == 1)
				if (fd >= 0)
					close(fd);
		}
	}
	assert_int_equal(r->server.npeers, SHM_MAX_PEERS);
	assert_non_null(r->server.peers[SHM_MAX_PEERS - 1]);
	socks[SHM_MAX_PEERS] = unix_connect(r->server.path, SOCK_STREAM);
	assert_true(socks[SHM_MAX_PEERS] >= 0);
	pump();
	/* Turned away: its connection ends without a word. */
	{
		struct pollfd p = {.fd = socks[SHM_MAX_PEERS], .events = POLLIN};
		assert_int_equal(poll(&p, 1, 1000), 1);
		assert_int_equal(read(socks[SHM_MAX_PEERS], buf, sizeof(buf)), 0);
	}
	assert_int_equal(r->server.refused, 1);
	assert_int_equal(r->server.npeers, SHM_MAX_PEERS);
	for (unsigned i = 0; i <= SHM_MAX_PEERS; i++)
		close(socks[i]);
	pump();
	assert_int_equal(r->server.npeers, 0);
}

static void test_region_json(void **state)
{
	struct shm_region *r;
	struct client a;
	char err[512];
	json_t *o;

	(void)state;
	assert_int_equal(
	    shm_create(&reg, "j", 8192, 2, true, geteuid(), getegid(), &r, err, sizeof(err)), 0);
	client_connect(&a, r, 0, NULL, 0);
	o = shm_region_json(r);
	assert_string_equal(json_string_value(json_object_get(o, "name")), "j");
	assert_int_equal(json_integer_value(json_object_get(o, "size")), 8192);
	assert_int_equal(json_integer_value(json_object_get(o, "vectors")), 2);
	assert_true(json_is_true(json_object_get(o, "doorbell")));
	assert_string_equal(json_string_value(json_object_get(o, "socket")), r->server.path);
	assert_int_equal(json_array_size(json_object_get(o, "peers")), 1);
	assert_int_equal(json_integer_value(json_object_get(
			     json_array_get(json_object_get(o, "peers"), 0), "pid")),
			 getpid());
	json_decref(o);
	client_close(&a);
	pump();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_sizes_entries),
	    cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_peers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plain_region, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_peers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_region_json, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
