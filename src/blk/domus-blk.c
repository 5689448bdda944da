/*
 * domus-blk: a disk backend in its own process, serving images to
 * vhost-user front-ends (domus's VMM, or QEMU's vhost-user-blk), one
 * front-end per disk at a time, requests on io_uring (blk/blk_io.c).
 *
 *   domus-blk --disk SOCKET=IMAGE[,ro][,format=raw|qcow2][,cache=MODE]... [--ready-fd N]
 *   domus-blk --socket PATH --image FILE [--format raw|qcow2] [--readonly] [--cache MODE]
 *   domus-blk --control-fd N
 *
 * IMAGE is a path, or fd:N for an image its supervisor opened and passed
 * (then domus-blk never needs the path). MODE is writeback (the default),
 * writethrough (every write durable before it completes), none (O_DIRECT)
 * or directsync (both). With --ready-fd, "ready" or the error is written
 * there once every disk is open and listening.
 *
 * With --control-fd the disks come and go at run time: the supervisor
 * (domusd, for every domain of the host) sends "add" and "remove" messages
 * on that SOCK_SEQPACKET socket with the listening socket, the image and
 * its backing files attached as descriptors (see blkctl_* in docs/blk.md);
 * domus-blk exits when the supervisor goes away. "cache-limit\nBYTES" sets
 * the shared read cache's limit (blk/cache.h; --cache-mib at the start,
 * BLK_CACHE_DEFAULT_MIB if not told, 0 for none) and "cache-stats" answers
 * "ok size=N limit=N hits=N ...".
 *
 * Then it drops to its own user (--user, default domus-blk, else nobody)
 * and a seccomp allow-list (blk/sandbox.c) unless --no-sandbox says not to.
 *
 * Threads: --threads N workers (default 1) serve the disks, each disk by
 * one worker (the one with fewest when it comes; the worker of its QoS
 * group once it joins one, so that a group is scheduled by one scheduler),
 * each worker with its own io_uring, scheduler and epoll set in which a
 * descriptor is added when it comes (a listening socket, a connection, a
 * started queue's kick) and removed when it goes, never per wake-up. The
 * main thread only reads the supervisor's messages: it changes a worker's
 * disks holding that worker's lock, which the worker holds except while it
 * sleeps in epoll_wait. The read cache is shared (blk/cache.c locks it).
 * --poll-us N: after a batch a worker polls its queues' avail rings for N
 * microseconds before it sleeps (0, the default: never), so a driver that
 * sends one request at a time finds it awake.
 * --request-delay-us holds every request that long before completing it,
 * as a slow disk would: it widens the window in which a killed back-end
 * leaves requests unfinished, for recovery tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "blk/blk_io.h"
#include "blk/image.h"
#include "blk/sandbox.h"
#include "lib/log.h"
#include "lib/unix_socket.h"
#include "lib/watch.h"

#define MAX_DISKS 256
#define STATS_SLOTS 16 /* counters per stats file: one per disk of a domain */
#define MAX_THREADS 64
#define EVENTS_MAX 64 /* epoll events taken per wake-up */

/* What an epoll event is of (struct watch's kind). */
enum { W_ENGINE = 1, W_WAKE, W_LISTEN, W_VHOST };

struct disk;

struct worker {
	unsigned index;
	pthread_t thread;
	bool started;
	int epfd;
	int wake_fd; /* eventfd: the main thread changed something; look again */
	/*
	 * Held by the worker while it serves, released only while it sleeps in
	 * epoll_wait; the main thread holds it to change the worker's disks.
	 */
	pthread_mutex_t lock;
	/*
	 * Bumped (under the lock) when a disk leaves the worker: events read
	 * before may point to it, so the worker drops them and waits again
	 * (epoll is level-triggered: what is still there comes back).
	 */
	unsigned changes;
	/*
	 * The main thread waits for the lock: the worker lets it have it before
	 * it takes it again (a busy worker would otherwise take it back at
	 * once, and its busy-poll would keep it).
	 */
	atomic_uint waiting;
	atomic_bool stop;
	struct blk_engine engine;
	struct watch engine_watch, wake_watch;
	struct disk *disks[MAX_DISKS];
	unsigned ndisks;
};

struct disk {
	struct blk_disk blk;
	char name[128]; /* the socket path, or the supervisor's id for the disk */
	int listen_fd;
	bool unlink_socket; /* we bound it: remove it on the way out */
	void *stats_map;    /* a supervisor's stats file, mapped */
	struct worker *w;   /* the worker that serves it */
	struct watch listen_watch;
};

static struct disk *disks[MAX_DISKS]; /* the main thread's: workers see only their own */
static unsigned ndisks;
static struct worker workers[MAX_THREADS];
static unsigned nworkers = 1;
static unsigned poll_us;
static struct blk_cache *cache;
static struct blk_sched_settings sched_set; /* what every worker's scheduler is told */
static bool quiet; /* under a supervisor: only what goes wrong */
static bool sandboxed; /* no paths any more: a socket bound at the start stays for its starter */

/* ---- workers ---- */

static void disk_drop_frontend(struct disk *d, bool listen_again);

/* The main thread takes a worker's lock to change what it serves. */
static void worker_lock(struct worker *w)
{
	atomic_fetch_add(&w->waiting, 1);
	pthread_mutex_lock(&w->lock);
	atomic_fetch_sub(&w->waiting, 1);
}

/* ... and wakes it, so that it recomputes its timeout and sees what changed. */
static void worker_unlock(struct worker *w)
{
	uint64_t one = 1;

	pthread_mutex_unlock(&w->lock);
	if (w->started && write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("waking worker %u", w->index);
}

static struct worker *worker_least_loaded(void)
{
	struct worker *best = &workers[0];

	for (unsigned i = 1; i < nworkers; i++)
		if (workers[i].ndisks < best->ndisks)
			best = &workers[i];
	return best;
}

/* Under w's lock: w serves d from now on (d has no front-end: its socket is watched). */
static int worker_take(struct worker *w, struct disk *d)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->listen_watch};

	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, d->listen_fd, &ev) < 0)
		return -errno;
	d->w = w;
	d->blk.engine = &w->engine;
	w->disks[w->ndisks++] = d;
	return 0;
}

/* Under w's lock: d leaves w, its front-end dropped (finishing what is in flight). */
static void worker_release(struct worker *w, struct disk *d)
{
	if (d->blk.connected)
		disk_drop_frontend(d, false);
	else
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, d->listen_fd, NULL);
	for (unsigned i = 0; i < w->ndisks; i++)
		if (w->disks[i] == d) {
			w->disks[i] = w->disks[--w->ndisks];
			break;
		}
	w->changes++;
}

/*
 * Under w's lock: d, with its front-end if it has one, moves to worker to
 * (whose lock the caller takes next). What it had in flight or waiting is
 * finished on w first: the two rings and schedulers share nothing.
 */
static void worker_hand_over(struct worker *w, struct disk *d)
{
	if (d->blk.connected) {
		vhost_backend_unwatch(&d->blk.b);
		blk_engine_drain(&d->blk);
		blk_engine_pump(&w->engine); /* the driver is told of what completed */
	} else {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, d->listen_fd, NULL);
	}
	blk_disk_leave_group(&d->blk);
	for (unsigned i = 0; i < w->ndisks; i++)
		if (w->disks[i] == d) {
			w->disks[i] = w->disks[--w->ndisks];
			break;
		}
	w->changes++;
}

/* Under to's lock: takes d from worker_hand_over into group. 0 or -errno. */
static int worker_adopt(struct worker *to, struct disk *d, const char *group)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->listen_watch};
	int ret;

	d->w = to;
	d->blk.engine = &to->engine;
	to->disks[to->ndisks++] = d;
	if ((ret = blk_disk_set_group(&d->blk, group)) < 0)
		return ret;
	if (d->blk.connected)
		ret = vhost_backend_watch(&d->blk.b, to->epfd, W_VHOST);
	else if (epoll_ctl(to->epfd, EPOLL_CTL_ADD, d->listen_fd, &ev) < 0)
		ret = -errno;
	if (ret == 0 && d->blk.connected)
		for (unsigned q = 0; q < BLK_NUM_QUEUES; q++)
			if (d->blk.b.q[q].started)
				blk_engine_kicked(&d->blk, q); /* kicks consumed on the other side */
	return ret;
}

/* The settings of the scheduler of worker w (under its lock), then what they let go. */
static void worker_apply_sched(struct worker *w)
{
	struct blk_engine *e = &w->engine;

	e->sched.op_ns = sched_set.op_ns;
	e->sched.byte_ps = sched_set.byte_ps;
	e->sched.capacity_ns = (uint64_t)sched_set.capacity_pct * 10000000;
	e->depth = sched_set.depth;
	e->delay_us = sched_set.delay_us;
	blk_engine_pump(e);
}

struct disk_options {
	enum image_format format;
	bool readonly, direct, writethrough;
};

static int parse_cache(const char *mode, struct disk_options *o)
{
	if (!strcmp(mode, "writeback"))
		o->direct = o->writethrough = false;
	else if (!strcmp(mode, "writethrough"))
		o->direct = false, o->writethrough = true;
	else if (!strcmp(mode, "none"))
		o->direct = true, o->writethrough = false;
	else if (!strcmp(mode, "directsync"))
		o->direct = o->writethrough = true;
	else
		return -EINVAL;
	return 0;
}

/* One option of a disk: ro, format=F, cache=MODE. */
static int parse_option(const char *opt, struct disk_options *o)
{
	if (!strcmp(opt, "ro"))
		o->readonly = true;
	else if (!strcmp(opt, "rw"))
		o->readonly = false;
	else if (!strncmp(opt, "format=", 7))
		return image_format_parse(opt + 7, &o->format);
	else if (!strncmp(opt, "cache=", 6))
		return parse_cache(opt + 6, o);
	else
		return -EINVAL;
	return 0;
}

/* Takes over image (and direct_fd, listen_fd) as a served disk. */
static int disk_add(const char *name, struct image *img, int direct_fd, int listen_fd,
		    bool unlink_socket, const struct disk_options *o, char *err, size_t errlen)
{
	static unsigned groups_made;
	char group[BLK_SCHED_NAME_MAX];
	struct disk *d;
	int ret;

	if (ndisks == MAX_DISKS || !(d = calloc(1, sizeof(*d)))) {
		snprintf(err, errlen, "%s: at most %d disks", name, MAX_DISKS);
		image_close(img);
		if (direct_fd >= 0)
			close(direct_fd);
		close(listen_fd);
		if (unlink_socket)
			unlink(name);
		return -ENOSPC;
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->w = worker_least_loaded();
	d->blk.img = img;
	d->blk.engine = &d->w->engine;
	d->blk.writeback = !o->writethrough;
	d->listen_fd = listen_fd;
	d->unlink_socket = unlink_socket;
	if (direct_fd >= 0)
		image_set_direct(img, direct_fd);
	/* Each disk is a group of its own until its supervisor says otherwise. */
	snprintf(group, sizeof(group), "disk%u", ++groups_made);
	worker_lock(d->w);
	ret = blk_disk_set_group(&d->blk, group);
	worker_unlock(d->w);
	if (ret < 0) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	/* A file some disk writes must not be served from the cache to another disk. */
	if (!img->readonly && cache && blk_cache_writer(cache, img->dev, img->ino, true) < 0) {
		snprintf(err, errlen, "%s: too many writable disks for the cache to track", name);
		ret = -ENOSPC;
		goto fail;
	}
	blk_disk_init_ops(&d->blk, o->readonly);
	snprintf(d->blk.id, sizeof(d->blk.id), "domus-blk-%u", ndisks);
	if (!quiet)
		log_info("serving %s (%s, %llu bytes%s%s%s)", name, img->format == IMAGE_QCOW2 ? "qcow2" : "raw",
			 (unsigned long long)img->size, o->readonly ? ", read-only" : "",
			 direct_fd >= 0 ? ", O_DIRECT" : "", o->writethrough ? ", write-through" : "");
	d->listen_watch = (struct watch){W_LISTEN, d};
	worker_lock(d->w);
	ret = worker_take(d->w, d);
	worker_unlock(d->w);
	if (ret < 0) {
		snprintf(err, errlen, "%s: adding its socket to the epoll set: %s", name, strerror(-ret));
		if (!img->readonly && cache && blk_cache_writer(cache, img->dev, img->ino, false) < 0)
			log_warnx("%s: the cache did not know it as a writer", name);
		goto fail;
	}
	disks[ndisks++] = d;
	return 0;
fail:
	worker_lock(d->w);
	blk_disk_leave_group(&d->blk);
	worker_unlock(d->w);
	image_close(img);
	close(listen_fd);
	if (unlink_socket)
		unlink(name);
	free(d);
	return ret;
}

/* The same file again with O_DIRECT, through /proc (before the sandbox). */
static int reopen_direct(int fd, bool readonly, char *err, size_t errlen)
{
	char path[64];
	int direct;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	direct = open(path, (readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
	if (direct < 0)
		snprintf(err, errlen, "cannot open the image with O_DIRECT: %s", strerror(errno));
	return direct < 0 ? -errno : direct;
}

/* --disk SOCKET=IMAGE[,options] */
static int add_disk_arg(const char *spec, struct disk_options o, char *err, size_t errlen)
{
	char buf[4200], *eq, *opt, *save = NULL, *image;
	struct image *img;
	int ret, listen_fd, direct = -1;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "--disk %.60s: too long", spec);
		return -EINVAL;
	}
	strcpy(buf, spec);
	eq = strchr(buf, '=');
	if (!eq || eq == buf) {
		snprintf(err, errlen, "--disk %.60s: expected SOCKET=IMAGE", spec);
		return -EINVAL;
	}
	*eq = 0;
	image = strtok_r(eq + 1, ",", &save);
	while ((opt = strtok_r(NULL, ",", &save)))
		if (parse_option(opt, &o) < 0) {
			snprintf(err, errlen, "--disk %.60s: unknown option '%s' (ro, format=raw|qcow2, "
				 "cache=writeback|writethrough|none|directsync)", spec, opt);
			return -EINVAL;
		}
	if (!image) {
		snprintf(err, errlen, "--disk %.60s: no image", spec);
		return -EINVAL;
	}
	if (!strncmp(image, "fd:", 3)) {
		char *end;
		long fd = strtol(image + 3, &end, 10);
		if (!image[3] || *end || fd < 3 || fd > 1023) {
			snprintf(err, errlen, "--disk %.60s: bad descriptor", spec);
			return -EINVAL;
		}
		/* Backing files are opened by name: an image passed by descriptor has none. */
		ret = image_open((int)fd, o.format, o.readonly, NULL, NULL, &img, err, errlen);
	} else {
		ret = image_open_path(image, o.format, o.readonly, &img, err, errlen);
	}
	if (ret < 0)
		return ret;
	if (o.direct && (direct = reopen_direct(img->fd, o.readonly, err, errlen)) < 0) {
		image_close(img);
		return direct;
	}
	listen_fd = unix_listen(buf, SOCK_STREAM, 1);
	if (listen_fd < 0) {
		snprintf(err, errlen, "listening on %s: %s", buf, strerror(-listen_fd));
		image_close(img);
		if (direct >= 0)
			close(direct);
		return listen_fd;
	}
	return disk_add(buf, img, direct, listen_fd, true, &o, err, errlen);
}

/* Under the worker's lock: the connection goes, the listening socket is watched again. */
static void disk_drop_frontend(struct disk *d, bool listen_again)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->listen_watch};

	image_flush(d->blk.img);
	vhost_backend_close(&d->blk.b); /* finishes what is in flight first */
	d->blk.connected = false;
	if (listen_again && epoll_ctl(d->w->epfd, EPOLL_CTL_ADD, d->listen_fd, &ev) < 0)
		log_warn("%s: watching its socket again; no front-end can connect", d->name);
}

static void disk_free(unsigned i)
{
	struct disk *d = disks[i];
	struct worker *w = d->w;

	worker_lock(w);
	worker_release(w, d);
	blk_disk_leave_group(&d->blk);
	worker_unlock(w);
	if (!quiet || d->blk.errors) {
		/* By queue, up to the last one used: a multiqueue guest's spread over its vCPUs. */
		char by_queue[BLK_NUM_QUEUES * 21 + 1] = "";
		unsigned used = 0;
		size_t n = 0;

		for (unsigned q = 0; q < BLK_NUM_QUEUES; q++)
			if (d->blk.queue_requests[q])
				used = q + 1;
		for (unsigned q = 0; q < used; q++)
			n += (size_t)snprintf(by_queue + n, sizeof(by_queue) - n, " %llu",
					      d->blk.queue_requests[q]);
		log_info("%s: %llu requests served, %llu failed; by queue:%s", d->name, d->blk.requests,
			 d->blk.errors, used ? by_queue : " none");
	}
	if (!d->blk.img->readonly && cache &&
	    blk_cache_writer(cache, d->blk.img->dev, d->blk.img->ino, false) < 0)
		log_warnx("%s: the cache did not know it as a writer", d->name);
	image_close(d->blk.img);
	close(d->listen_fd);
	if (d->unlink_socket && !sandboxed)
		unlink(d->name);
	if (d->stats_map)
		munmap(d->stats_map, STATS_SLOTS * sizeof(struct blk_counters));
	free(d);
	disks[i] = disks[--ndisks];
}

/* ---- the supervisor's messages (--control-fd) ---- */

/* Backing files the supervisor opened, by the names the images record. */
struct passed_files {
	char *names[IMAGE_MAX_CHAIN];
	int fds[IMAGE_MAX_CHAIN];
	unsigned n;
};

static int open_passed(void *opaque, const char *name, int *fd, char *err, size_t errlen)
{
	struct passed_files *p = opaque;

	for (unsigned i = 0; i < p->n; i++)
		if (p->fds[i] >= 0 && !strcmp(p->names[i], name)) {
			*fd = p->fds[i];
			p->fds[i] = -1; /* the image owns it now */
			return 0;
		}
	snprintf(err, errlen, "the supervisor did not pass it");
	return -ENOENT;
}

/*
 * "add\nID\nOPTIONS\nBACKING-NAME\n..." with descriptors: the listening
 * socket, the image, its O_DIRECT twin if OPTIONS say cache=none or
 * directsync, a stats file if they say stats=SLOT, then one per backing name.
 */
static int control_add(char *text, int *fds, unsigned nfds, char *err, size_t errlen)
{
	char *save = NULL, *id = strtok_r(text, "\n", &save), *opts = strtok_r(NULL, "\n", &save);
	char *opt, *osave = NULL, *name;
	struct disk_options o = {.format = IMAGE_RAW};
	struct passed_files passed = {.n = 0};
	unsigned next = 2, i;
	long slot = -1;
	int direct = -1, stats = -1, ret;
	struct image *img;

	if (!id || !opts || nfds < 2) {
		snprintf(err, errlen, "add: expected an id, options, a socket and an image");
		return -EINVAL;
	}
	for (i = 0; i < ndisks; i++)
		if (!strcmp(disks[i]->name, id)) {
			snprintf(err, errlen, "add %s: already served", id);
			return -EEXIST;
		}
	for (opt = strtok_r(opts, ",", &osave); opt; opt = strtok_r(NULL, ",", &osave)) {
		if (!strncmp(opt, "stats=", 6)) {
			char *end;
			slot = strtol(opt + 6, &end, 10);
			if (*end || slot < 0 || slot >= STATS_SLOTS) {
				snprintf(err, errlen, "add %s: bad stats slot '%s'", id, opt + 6);
				return -EINVAL;
			}
		} else if (strcmp(opt, "-") && parse_option(opt, &o) < 0) {
			snprintf(err, errlen, "add %s: unknown option '%s'", id, opt);
			return -EINVAL;
		}
	}
	if (nfds < 2u + o.direct + (slot >= 0)) {
		snprintf(err, errlen, "add %s: descriptors missing", id);
		return -EINVAL;
	}
	/* Every descriptor taken is cleared in fds: the caller closes what is left. */
	if (o.direct) {
		direct = fds[next];
		fds[next++] = -1;
	}
	if (slot >= 0) {
		stats = fds[next];
		fds[next++] = -1;
	}
	while ((name = strtok_r(NULL, "\n", &save)) && passed.n < IMAGE_MAX_CHAIN && next < nfds) {
		passed.names[passed.n] = name;
		passed.fds[passed.n++] = fds[next];
		fds[next++] = -1;
	}
	ret = image_open(fds[1], o.format, o.readonly, open_passed, &passed, &img, err, errlen);
	fds[1] = -1;
	for (i = 0; i < passed.n; i++)
		if (passed.fds[i] >= 0)
			close(passed.fds[i]);
	if (ret == 0 && (ret = image_check(img, err, errlen)) < 0)
		image_close(img);
	if (ret == 0) {
		ret = disk_add(id, img, direct, fds[0], false, &o, err, errlen);
		direct = -1;
		fds[0] = -1;
	}
	if (ret == 0 && stats >= 0) {
		struct disk *d = disks[ndisks - 1];
		void *map = mmap(NULL, STATS_SLOTS * sizeof(struct blk_counters), PROT_READ | PROT_WRITE,
				 MAP_SHARED, stats, 0);
		if (map != MAP_FAILED) {
			/* Its worker may be serving it already. */
			worker_lock(d->w);
			d->stats_map = map;
			d->blk.stats = (struct blk_counters *)map + slot;
			worker_unlock(d->w);
		}
	}
	if (direct >= 0)
		close(direct);
	if (stats >= 0)
		close(stats);
	return ret;
}

static int control_remove(const char *id, char *err, size_t errlen)
{
	for (unsigned i = 0; i < ndisks; i++)
		if (!strcmp(disks[i]->name, id)) {
			disk_free(i);
			return 0;
		}
	snprintf(err, errlen, "remove %.200s: no such disk", id);
	return -ENOENT;
}

/* "cache-limit\nBYTES": the cache's new limit, evicting at once if it is lower. */
static int control_cache_limit(const char *arg, char *err, size_t errlen)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (!*arg || *end || errno || arg[0] == '-') {
		snprintf(err, errlen, "cache-limit: '%.40s' is not a number of bytes", arg);
		return -EINVAL;
	}
	if (!cache) {
		snprintf(err, errlen, "cache-limit: this domus-blk has no cache (out of memory at start)");
		return -ENOMEM;
	}
	blk_cache_set_limit(cache, v);
	return 0;
}

/* "cache-stats": answered "ok size=N limit=N ..." (the reply is written here). */
static int control_cache_stats(char *reply, size_t len)
{
	struct blk_cache_stats st = {0};

	if (cache)
		blk_cache_get_stats(cache, &st);
	memcpy(reply, "ok ", 3);
	return blk_cache_stats_format(&st, reply + 3, len - 3);
}

static struct disk *disk_find(const char *id)
{
	for (unsigned i = 0; i < ndisks; i++)
		if (!strcmp(disks[i]->name, id))
			return disks[i];
	return NULL;
}

/*
 * "qos\nDISK\nGROUP\nSPEC": the disk's requests go by group GROUP (made if
 * need be, with other disks in it sharing it), whose QoS SPEC is from now on
 * (blk/qos.h; the whole of it: keys not named take their defaults). A
 * reservation the disk cannot honour with the others is refused.
 */
static int control_qos(char *text, char *err, size_t errlen)
{
	char *save = NULL, *id = strtok_r(text, "\n", &save), *group = strtok_r(NULL, "\n", &save);
	char *spec = strtok_r(NULL, "\n", &save);
	struct blk_sched_group *g;
	struct worker *w, *home = NULL;
	uint64_t elsewhere = 0;
	struct disk *d;
	struct blk_qos q;
	int ret;

	if (!id || !group) {
		snprintf(err, errlen, "qos: expected a disk, a group and a QoS");
		return -EINVAL;
	}
	if (strlen(group) >= BLK_SCHED_NAME_MAX) {
		snprintf(err, errlen, "qos %s: group name '%.60s' too long", id, group);
		return -EINVAL;
	}
	if (!(d = disk_find(id))) {
		snprintf(err, errlen, "qos %.200s: no such disk", id);
		return -ENOENT;
	}
	blk_qos_default(&q);
	if (spec && (ret = blk_qos_parse(spec, &q, err, errlen)) < 0)
		return ret;
	/* The worker whose scheduler has the group already; the others' reservations count too. */
	for (unsigned i = 0; i < nworkers && !home; i++) {
		worker_lock(&workers[i]);
		if (blk_sched_group_find(&workers[i].engine.sched, group))
			home = &workers[i];
		worker_unlock(&workers[i]);
	}
	for (unsigned i = 0; i < nworkers; i++) {
		if (&workers[i] == (home ? home : d->w))
			continue;
		worker_lock(&workers[i]);
		elsewhere += blk_sched_reserved_ns(&workers[i].engine.sched);
		worker_unlock(&workers[i]);
	}
	if (!home)
		home = d->w;
	else if (home != d->w) {
		/* The group is scheduled by one worker: the disk goes to it. */
		w = d->w;
		worker_lock(w);
		worker_hand_over(w, d);
		worker_unlock(w);
		worker_lock(home);
		ret = worker_adopt(home, d, group);
		worker_unlock(home);
		if (ret < 0) {
			snprintf(err, errlen, "qos %s: moving it to worker %u: %s", id, home->index,
				 strerror(-ret));
			return ret;
		}
	}
	w = home;
	worker_lock(w);
	g = blk_sched_group_find(&w->engine.sched, group);
	if ((ret = blk_sched_admit_also(&w->engine.sched, g, &q, elsewhere, err, errlen)) == 0 &&
	    (ret = blk_disk_set_group(&d->blk, group)) == 0) {
		blk_sched_set_qos(&w->engine.sched, d->blk.group, &q, blk_engine_now());
		blk_engine_pump(&w->engine); /* a limit raised may let requests go at once */
	}
	worker_unlock(w);
	return ret;
}

/* "qos-stats\nGROUP": answered "ok served_ops=N ..." (the reply is written here). */
static int control_qos_stats(const char *group, char *reply, size_t len, char *err, size_t errlen)
{
	struct blk_sched_stats st;
	bool found = false;
	int met = 0;

	for (unsigned i = 0; i < nworkers && !found; i++) {
		struct blk_sched_group *g;
		worker_lock(&workers[i]);
		if ((g = blk_sched_group_find(&workers[i].engine.sched, group))) {
			blk_sched_stats(g, blk_engine_now(), &st);
			met = blk_sched_reserve_met(g, &st);
			found = true;
		}
		worker_unlock(&workers[i]);
	}
	if (!found) {
		snprintf(err, errlen, "qos-stats %.200s: no such group", group);
		return -ENOENT;
	}
	snprintf(reply, len, "ok served_ops=%llu served_bytes=%llu reserve_ops=%llu weight_ops=%llu "
		 "limited=%llu throttled_ns=%llu backlog_ns=%llu deadline_missed=%llu waiting=%u "
		 "inflight=%u reserve_met=%d", (unsigned long long)st.served_ops,
		 (unsigned long long)st.served_bytes, (unsigned long long)st.reserve_ops,
		 (unsigned long long)st.weight_ops, (unsigned long long)st.limited,
		 (unsigned long long)st.throttled_ns, (unsigned long long)st.backlog_ns,
		 (unsigned long long)st.deadline_missed, st.waiting, st.inflight, met);
	return 0;
}

/*
 * "sched\nop-ns=N,byte-ps=N,capacity-pct=N,depth=N": the cost model, the
 * share of the disk's time reservations may take in sum, and how many
 * requests may be in flight at once (any of them).
 */
static int control_sched(const char *text, char *err, size_t errlen)
{
	struct blk_sched_settings set = sched_set;
	int ret = blk_sched_settings_parse(text, &set, err, errlen);

	if (ret < 0)
		return ret;
	sched_set = set;
	for (unsigned i = 0; i < nworkers; i++) {
		worker_lock(&workers[i]);
		worker_apply_sched(&workers[i]);
		worker_unlock(&workers[i]);
	}
	return 0;
}

/* One message from the supervisor; -EPIPE once it has gone. */
static int control_handle(int sock)
{
	char text[8192], err[512] = "", reply[sizeof(err) + 8];
	int fds[UNIX_MAX_FDS];
	unsigned nfds;
	ssize_t n = unix_recv_fds(sock, text, sizeof(text) - 1, fds, UNIX_MAX_FDS, &nfds);
	bool answered = false; /* the reply is written already (cache-stats) */
	int ret;

	if (n == 0 || n == -ECONNRESET)
		return -EPIPE;
	if (n < 0) {
		ret = (int)n;
		snprintf(err, sizeof(err), "a message the supervisor sent was too large");
	} else {
		text[n] = 0;
		if (!strncmp(text, "add\n", 4))
			ret = control_add(text + 4, fds, nfds, err, sizeof(err));
		else if (!strncmp(text, "remove\n", 7))
			ret = control_remove(text + 7, err, sizeof(err));
		else if (!strncmp(text, "cache-limit\n", 12))
			ret = control_cache_limit(text + 12, err, sizeof(err));
		else if (!strcmp(text, "cache-stats"))
			answered = (ret = control_cache_stats(reply, sizeof(reply))) == 0;
		else if (!strncmp(text, "qos\n", 4))
			ret = control_qos(text + 4, err, sizeof(err));
		else if (!strncmp(text, "qos-stats\n", 10))
			answered = (ret = control_qos_stats(text + 10, reply, sizeof(reply), err, sizeof(err))) == 0;
		else if (!strncmp(text, "sched\n", 6))
			ret = control_sched(text + 6, err, sizeof(err));
		else {
			snprintf(err, sizeof(err), "unknown request '%.20s'", text);
			ret = -EINVAL;
		}
		for (unsigned i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	if (ret < 0 && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-ret));
	if (ret < 0)
		log_warnx("%s", err);
	if (!answered)
		snprintf(reply, sizeof(reply), ret < 0 ? "error %s" : "ok", err);
	return unix_send_fds(sock, reply, strlen(reply), NULL, 0) < 0 ? -EPIPE : 0;
}

/* ---- the loop ---- */

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = 1;
}

static void say_ready(int fd, const char *what)
{
	if (fd >= 0) {
		dprintf(fd, "%s\n", what);
		close(fd);
	}
}

/* Under the worker's lock. */
static void accept_frontend(struct disk *d)
{
	char why[300];
	int fd, ret;

	if (d->blk.connected)
		return; /* an event from before it connected */
	fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* A worker serves many disks: the back-end never waits on a front-end (vhost_user.h). */
	/* An image that changed size under us would read wrong: it is not served. */
	if (image_check(d->blk.img, why, sizeof(why)) < 0) {
		log_warnx("%s: %s; not serving it", d->name, why);
		close(fd);
		return;
	}
	vhost_backend_init(&d->blk.b, fd, &d->blk.ops, &d->blk);
	if ((ret = vhost_backend_watch(&d->blk.b, d->w->epfd, W_VHOST)) < 0) {
		log_warnx("%s: watching the connection: %s", d->name, strerror(-ret));
		vhost_backend_close(&d->blk.b);
		return;
	}
	/* One front-end at a time: the next waits in the backlog until this one goes. */
	epoll_ctl(d->w->epfd, EPOLL_CTL_DEL, d->listen_fd, NULL);
	d->blk.connected = true;
	log_debug("%s: a front-end connected", d->name);
}

/* Under the worker's lock: one event. */
static void worker_event(struct worker *w, struct watch *ev)
{
	uint64_t v;
	int ret;

	switch (ev->kind) {
	case W_ENGINE:
		blk_engine_complete(&w->engine);
		break;
	case W_WAKE:
		if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_warn("worker %u: its wake-up eventfd", w->index);
		break;
	case W_LISTEN:
		accept_frontend(ev->ptr);
		break;
	case W_VHOST: {
		const struct vhost_watch *vw = (const struct vhost_watch *)ev;
		struct disk *d = (struct disk *)((char *)vw->b - offsetof(struct disk, blk.b));

		if (!d->blk.connected)
			break; /* dropped by an earlier event of this wake-up */
		if ((ret = vhost_backend_event(vw)) < 0) {
			if (ret == -EPIPE)
				log_debug("%s: %s", d->name, d->blk.b.err);
			else
				log_warnx("%s: front-end dropped: %s", d->name, d->blk.b.err);
			disk_drop_frontend(d, true);
		}
		break;
	}
	}
}

/*
 * --poll-us: after a batch, the avail rings of the worker's queues are
 * watched for poll_us more (from the last request found), completions
 * reaped on the way, before the worker sleeps again; a request found so is
 * taken without a kick's round through epoll.
 */
static void worker_busy_poll(struct worker *w)
{
	uint64_t until = blk_engine_now() + (uint64_t)poll_us * 1000;

	while (blk_engine_now() < until && !atomic_load(&w->stop) && !atomic_load(&w->waiting)) {
		bool found = false;

		for (unsigned i = 0; i < w->ndisks; i++) {
			struct disk *d = w->disks[i];
			if (!d->blk.connected)
				continue;
			for (unsigned q = 0; q < BLK_NUM_QUEUES; q++)
				if (vhost_backend_has_avail(&d->blk.b, q)) {
					blk_engine_kicked(&d->blk, q);
					found = true;
				}
		}
		blk_engine_reap(&w->engine);
		if (found)
			until = blk_engine_now() + (uint64_t)poll_us * 1000;
	}
}

/* epoll_pwait2 (ns timeouts, Linux 5.11), or epoll_wait with the timeout rounded up to ms. */
static int wait_events(int epfd, struct epoll_event *ev, int64_t wait_ns)
{
	static atomic_bool no_pwait2;
	struct timespec ts = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
	int n;

	if (!atomic_load(&no_pwait2)) {
		n = epoll_pwait2(epfd, ev, EVENTS_MAX, wait_ns < 0 ? NULL : &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		atomic_store(&no_pwait2, true);
	}
	return epoll_wait(epfd, ev, EVENTS_MAX, wait_ns < 0 ? -1 : (int)((wait_ns + 999999) / 1000000));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[EVENTS_MAX];

	pthread_mutex_lock(&w->lock);
	while (!atomic_load(&w->stop)) {
		int64_t wait_ns = blk_engine_timeout_ns(&w->engine);
		unsigned changes = w->changes;
		int n;

		pthread_mutex_unlock(&w->lock);
		n = wait_events(w->epfd, ev, wait_ns);
		while (atomic_load(&w->waiting))
			sched_yield(); /* until the main thread has the lock: then we wait in the mutex */
		pthread_mutex_lock(&w->lock);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("worker %u: epoll_wait", w->index);
			break;
		}
		if (w->changes != changes)
			continue; /* a disk left while we slept: its events may be among these */
		for (int i = 0; i < n; i++)
			worker_event(w, ev[i].data.ptr);
		/* Every disk's new requests are in: the scheduler chooses among them all. */
		blk_engine_pump(&w->engine);
		if (poll_us && n > 0)
			worker_busy_poll(w);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Its ring, epoll set and wake-up eventfd (before the sandbox). 0 or -errno with err. */
static int worker_init(struct worker *w, unsigned index, unsigned delay_us, char *err, size_t errlen)
{
	struct epoll_event ev = {.events = EPOLLIN};
	char why[256];

	w->index = index;
	pthread_mutex_init(&w->lock, NULL);
	if (blk_engine_init(&w->engine, why, sizeof(why)) < 0)
		log_warnx("worker %u: %s: requests are served one at a time", index, why);
	w->engine.delay_us = delay_us;
	w->engine.cache = cache;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->epfd < 0 || w->wake_fd < 0) {
		snprintf(err, errlen, "worker %u: epoll or eventfd: %s", index, strerror(errno));
		return -errno;
	}
	w->wake_watch = (struct watch){W_WAKE, w};
	w->engine_watch = (struct watch){W_ENGINE, w};
	ev.data.ptr = &w->wake_watch;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0)
		goto fail;
	ev.data.ptr = &w->engine_watch;
	if (blk_engine_fd(&w->engine) >= 0 &&
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, blk_engine_fd(&w->engine), &ev) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "worker %u: epoll_ctl: %s", index, strerror(errno));
	return -errno;
}

static void worker_stop(struct worker *w)
{
	uint64_t one = 1;

	atomic_store(&w->stop, true);
	if (write(w->wake_fd, &one, sizeof(one)) < 0)
		log_warn("waking worker %u to stop", w->index);
	pthread_join(w->thread, NULL);
	w->started = false;
}

/* The main thread: the supervisor's messages, until it goes or a signal says stop. */
static int serve(int control_fd, const sigset_t *unblocked)
{
	struct pollfd p = {.fd = control_fd, .events = POLLIN};

	while (!stopping) {
		/* Without a supervisor there is nothing to read: only a signal ends the wait. */
		if (ppoll(&p, control_fd >= 0, NULL, unblocked) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			return -errno;
		}
		if (control_handle(control_fd) < 0) {
			log_info("the supervisor has gone; stopping");
			return 0;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},   {"image", required_argument, NULL, 'i'},
		{"format", required_argument, NULL, 'f'},   {"readonly", no_argument, NULL, 'r'},
		{"verbose", no_argument, NULL, 'v'},        {"request-delay-us", required_argument, NULL, 'd'},
		{"disk", required_argument, NULL, 'D'},     {"ready-fd", required_argument, NULL, 'R'},
		{"stats-fd", required_argument, NULL, 'S'}, {"quiet", no_argument, NULL, 'q'},
		{"no-sandbox", no_argument, NULL, 'N'},     {"cache", required_argument, NULL, 'c'},
		{"control-fd", required_argument, NULL, 'C'}, {"user", required_argument, NULL, 'u'},
		{"cache-mib", required_argument, NULL, 'M'},
		{"threads", required_argument, NULL, 'T'}, {"poll-us", required_argument, NULL, 'P'},
		{NULL, 0, NULL, 0},
	};
	const char *sock_path = NULL, *image = NULL, *specs[MAX_DISKS], *user = NULL;
	unsigned nspecs = 0;
	struct disk_options o = {.format = IMAGE_RAW};
	int opt, verbose = 0, ready_fd = -1, stats_fd = -1, control_fd = -1, ret;
	bool no_sandbox = false;
	unsigned long cache_mib = BLK_CACHE_DEFAULT_MIB;
	char err[512];
	struct sigaction sa = {.sa_handler = on_signal};
	unsigned delay_us = 0;
	sigset_t stop_signals, old_mask;

	while ((opt = getopt_long(argc, argv, "vq", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (opt) {
		case 's': sock_path = optarg; break;
		case 'i': image = optarg; break;
		case 'f':
			if (image_format_parse(optarg, &o.format) < 0) {
				fprintf(stderr, "domus-blk: --format %s: raw or qcow2\n", optarg);
				return 2;
			}
			break;
		case 'c':
			if (parse_cache(optarg, &o) < 0) {
				fprintf(stderr, "domus-blk: --cache %s: writeback, writethrough, none or directsync\n",
					optarg);
				return 2;
			}
			break;
		case 'r': o.readonly = true; break;
		case 'd':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v > 1000000) {
				fprintf(stderr, "domus-blk: --request-delay-us %s: 0 to 1000000\n", optarg);
				return 2;
			}
			delay_us = (unsigned)v;
			break;
		case 'T':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v < 1 || v > MAX_THREADS) {
				fprintf(stderr, "domus-blk: --threads %s: 1 to %d\n", optarg, MAX_THREADS);
				return 2;
			}
			nworkers = (unsigned)v;
			break;
		case 'P':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v > 1000000) {
				fprintf(stderr, "domus-blk: --poll-us %s: 0 to 1000000\n", optarg);
				return 2;
			}
			poll_us = (unsigned)v;
			break;
		case 'D':
			if (nspecs == MAX_DISKS) {
				fprintf(stderr, "domus-blk: at most %d disks\n", MAX_DISKS);
				return 2;
			}
			specs[nspecs++] = optarg;
			break;
		case 'R':
		case 'S':
		case 'C':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v < 3 || v > 1023)
				goto usage;
			*(opt == 'R' ? &ready_fd : opt == 'S' ? &stats_fd : &control_fd) = (int)v;
			break;
		case 'M':
			cache_mib = strtoul(optarg, &end, 10);
			if (!*optarg || *end || cache_mib > (1ul << 30)) {
				fprintf(stderr, "domus-blk: --cache-mib %s: a number of MiB (0: no cache)\n", optarg);
				return 2;
			}
			break;
		case 'u': user = optarg; break;
		case 'v': verbose = 1; break;
		case 'q': quiet = true; break;
		case 'N': no_sandbox = true; break;
		default: goto usage;
		}
	}
	if (optind != argc || (!!sock_path != !!image) || (!sock_path && !nspecs && control_fd < 0))
		goto usage;
	log_init("domus-blk", verbose);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * One malloc arena for every thread: a worker's own arena would grow by
	 * mprotect and shrink after reading /proc/sys/vm/overcommit_memory, which
	 * the sandbox allows neither. Requests come from per-thread caches
	 * (tcache) and the engine's free list, so the shared lock is seldom taken.
	 */
	mallopt(M_ARENA_MAX, 1);
	/* Made even at 0 MiB, so that the supervisor can raise the limit later. */
	if (blk_cache_new((uint64_t)cache_mib << 20, &cache) < 0)
		log_warnx("no memory for the read cache; reads go to the files");
	for (unsigned i = 0; i < nworkers; i++)
		if (worker_init(&workers[i], i, delay_us, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			say_ready(ready_fd, err);
			return 1;
		}
	{
		const struct blk_engine *e = &workers[0].engine;
		sched_set = (struct blk_sched_settings){e->sched.op_ns, e->sched.byte_ps,
							(unsigned)(e->sched.capacity_ns / 10000000),
							e->depth, e->delay_us};
	}
	if (sock_path) {
		char spec[4200];
		snprintf(spec, sizeof(spec), "%s=%s", sock_path, image);
		if (add_disk_arg(spec, o, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			return 2;
		}
	}
	for (unsigned i = 0; i < nspecs; i++)
		if (add_disk_arg(specs[i], o, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			say_ready(ready_fd, err);
			return 2;
		}
	if (stats_fd >= 0) {
		struct blk_counters *c = mmap(NULL, STATS_SLOTS * sizeof(*c), PROT_READ | PROT_WRITE,
					      MAP_SHARED, stats_fd, 0);
		close(stats_fd);
		for (unsigned i = 0; c != MAP_FAILED && i < ndisks && i < STATS_SLOTS; i++)
			disks[i]->blk.stats = &c[i];
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/*
	 * The stop signals stay blocked but in the main thread's ppoll: workers
	 * never take them, and one that comes before ppoll is not lost.
	 */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
	/*
	 * The workers start before the sandbox (it allows no clone): each waits
	 * for its lock, held here until the filter, loaded for every thread at
	 * once (lib/sandbox.c), is in place.
	 */
	for (unsigned i = 0; i < nworkers; i++) {
		pthread_mutex_lock(&workers[i].lock);
		if ((ret = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i])) != 0) {
			snprintf(err, sizeof(err), "starting worker %u: %s", i, strerror(ret));
			log_warnx("%s", err);
			say_ready(ready_fd, err);
			return 1;
		}
		workers[i].started = true;
		{
			/* Named for top and /proc (io_uring's own workers share the process). */
			char name[32];
			snprintf(name, sizeof(name), "blk-worker-%u", i);
			name[15] = 0; /* the kernel's limit; i < MAX_THREADS fits */
			pthread_setname_np(workers[i].thread, name);
		}
	}
	if (!no_sandbox && blk_sandbox_enter(user, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		say_ready(ready_fd, err);
		return 1;
	}
	sandboxed = !no_sandbox;
	for (unsigned i = 0; i < nworkers; i++)
		pthread_mutex_unlock(&workers[i].lock);
	say_ready(ready_fd, "ready");
	ret = serve(control_fd, &old_mask);
	for (unsigned i = 0; i < nworkers; i++)
		worker_stop(&workers[i]);
	while (ndisks)
		disk_free(ndisks - 1);
	for (unsigned i = 0; i < nworkers; i++)
		blk_engine_close(&workers[i].engine);
	blk_cache_free(cache);
	return ret < 0 ? 1 : 0;
usage:
	fprintf(stderr, "usage: domus-blk --disk SOCKET=IMAGE[,ro][,format=raw|qcow2][,cache=MODE]...\n"
			"                 [--ready-fd N] [--stats-fd N] [--request-delay-us N]\n"
			"                 [--user NAME] [--no-sandbox] [--cache-mib N] [-q] [-v]\n"
			"                 [--threads N] [--poll-us N]\n"
			"       domus-blk --socket PATH --image FILE [--format raw|qcow2] [--readonly]\n"
			"                 [--cache writeback|writethrough|none|directsync] ...\n"
			"       domus-blk --control-fd N [--user NAME] ...\n");
	return 2;
}
