#include "ctl/blkhost.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/domusd.h"
#include "ctl/memacct.h"
#include "lib/log.h"
#include "blk/counters.h"
#include "vmm/blkctl.h"

struct blkhost_disk {
	struct blkhost_disk *next;
	unsigned domid;
	struct blkctl_disk c; /* sent again to every domus-blk started */
	char group[BLK_SCHED_NAME_MAX]; /* "" until told: domus-blk's own group for the disk */
	char qos[BLK_QOS_TEXT_MAX];
};

/* A new domus-blk starts with its own default: it gets domusd's limit, then every disk. */
static int started(struct backend_proc *p, bool again, char *why, size_t whylen)
{
	struct blkhost *h = (struct blkhost *)((char *)p - offsetof(struct blkhost, proc));
	char err[512];
	unsigned n = 0, failed = 0;

	if (h->cache_limit_set && blkctl_cache_limit(p->ctl_fd, h->cache_limit, err, sizeof(err)) < 0)
		log_warnx("domus-blk: setting the cache limit: %s", err);
	if (h->sched_set) {
		char text[BLK_SCHED_SETTINGS_TEXT_MAX];
		blk_sched_settings_format(&h->sched, text, sizeof(text));
		if (blkctl_sched(p->ctl_fd, text, err, sizeof(err)) < 0)
			log_warnx("domus-blk: the scheduler's settings: %s", err);
	}
	for (struct blkhost_disk *d = h->disks; d; d = d->next, n++)
		if (blkctl_add(p->ctl_fd, &d->c, err, sizeof(err)) < 0) {
			log_warnx("domus-blk: disk %s: %s", d->c.id, err);
			failed++;
		} else if (d->group[0] && blkctl_qos(p->ctl_fd, d->c.id, d->group, d->qos, err, sizeof(err)) < 0) {
			/* Refused now when it was taken before: the disk is served, without its QoS. */
			log_warnx("domus-blk: disk %s: its QoS: %s", d->c.id, err);
		}
	(void)why, (void)whylen; /* a disk it refuses is that disk's loss, not every other's */
	if (again)
		log_info("domus-blk started again (pid %d), serving %u disk(s)%s", (int)p->pid,
			 n - failed, failed ? "; some could not be served again" : "");
	return 0;
}

void blkhost_init(struct blkhost *h, const char *program, const char *dir)
{
	memset(h, 0, sizeof(*h));
	backend_proc_init(&h->proc, "domus-blk", program, blkctl_spawn, started, &domusd_loop,
			  W_BACKEND_PID, W_BACKEND_TIMER);
	h->proc.verbose = D.verbose;
	snprintf(h->dir, sizeof(h->dir), "%s", dir);
	h->cache_max_mib = BLK_CACHE_DEFAULT_MIB;
	blk_sched_settings_default(&h->sched);
}

int blkhost_attach(struct blkhost *h, unsigned domid, unsigned index, const struct disk_config *dc,
		   struct blkctl_image *image, int stats_fd, char *socket, size_t socklen, char *err,
		   size_t errlen)
{
	struct blkhost_disk *d = calloc(1, sizeof(*d));
	char id[32], path[PATH_MAX];
	int ret;

	if (!d) {
		blkctl_image_close(image);
		return -ENOMEM;
	}
	d->domid = domid;
	snprintf(id, sizeof(id), "%u-%u", domid, index);
	snprintf(path, sizeof(path), "%.4000s/%s.sock", h->dir, id);
	ret = blkctl_disk_open(&d->c, id, dc, path, stats_fd, index, image, err, errlen);
	if (ret < 0) {
		free(d);
		return ret;
	}
	/* Started with the first disk; while a restart is pending, the disk waits for it. */
	if ((ret = backend_proc_ensure(&h->proc, err, errlen)) < 0 ||
	    (backend_proc_running(&h->proc) && (ret = blkctl_add(h->proc.ctl_fd, &d->c, err, errlen)) < 0)) {
		blkctl_disk_close(&d->c, true);
		free(d);
		return ret;
	}
	d->next = h->disks;
	h->disks = d;
	snprintf(socket, socklen, "%s", d->c.socket);
	return 0;
}

void blkhost_group_name(char *out, size_t len, unsigned domid, int own_index)
{
	if (own_index < 0)
		snprintf(out, len, "dom%u", domid);
	else
		snprintf(out, len, "%u-%d", domid, own_index);
}

int blkhost_set_qos(struct blkhost *h, unsigned domid, unsigned index, const char *group,
		    const char *spec, char *err, size_t errlen)
{
	char id[32];
	struct blkhost_disk *d;
	int ret;

	snprintf(id, sizeof(id), "%u-%u", domid, index);
	for (d = h->disks; d && strcmp(d->c.id, id); d = d->next)
		;
	if (!d) {
		snprintf(err, errlen, "disk %u of domain %u is not served by domus-blk", index, domid);
		return -ENOENT;
	}
	if (strlen(group) >= sizeof(d->group) || strlen(spec) >= sizeof(d->qos)) {
		snprintf(err, errlen, "group or QoS too long");
		return -EINVAL;
	}
	if (backend_proc_running(&h->proc) && (ret = blkctl_qos(h->proc.ctl_fd, id, group, spec, err, errlen)) < 0)
		return ret;
	snprintf(d->group, sizeof(d->group), "%s", group);
	snprintf(d->qos, sizeof(d->qos), "%s", spec);
	return 0;
}

int blkhost_qos_stats(struct blkhost *h, const char *group, struct blk_sched_stats *out,
		      int *reserve_met, char *err, size_t errlen)
{
	if (backend_proc_running(&h->proc))
		return blkctl_qos_stats(h->proc.ctl_fd, group, out, reserve_met, err, errlen);
	memset(out, 0, sizeof(*out));
	*reserve_met = -1;
	return 0;
}

int blkhost_sched(struct blkhost *h, const char *settings, char *err, size_t errlen)
{
	struct blk_sched_settings set = h->sched;
	char text[BLK_SCHED_SETTINGS_TEXT_MAX];
	int ret = blk_sched_settings_parse(settings, &set, err, errlen);

	if (ret < 0)
		return ret;
	h->sched = set;
	h->sched_set = true;
	blk_sched_settings_format(&set, text, sizeof(text));
	if (!backend_proc_running(&h->proc))
		return 0;
	ret = blkctl_sched(h->proc.ctl_fd, text, err, errlen);
	return ret == -EINVAL ? -EIO : ret; /* taken here: what failed is domus-blk */
}

json_t *blkhost_sched_json(const struct blkhost *h)
{
	return json_pack("{s:I,s:I,s:i,s:i,s:i}", "op_ns", (json_int_t)h->sched.op_ns, "byte_ps",
			 (json_int_t)h->sched.byte_ps, "capacity_pct", (int)h->sched.capacity_pct, "depth",
			 (int)h->sched.depth, "delay_us", (int)h->sched.delay_us);
}

void blkhost_detach(struct blkhost *h, unsigned domid)
{
	struct blkhost_disk **pp = &h->disks;
	char err[256];

	while (*pp) {
		struct blkhost_disk *d = *pp;
		if (d->domid != domid) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		if (backend_proc_running(&h->proc) &&
		    blkctl_remove(h->proc.ctl_fd, d->c.id, err, sizeof(err)) < 0)
			log_warnx("domus-blk: removing disk %s: %s", d->c.id, err);
		blkctl_disk_close(&d->c, true);
		free(d);
	}
}

void blkhost_stop(struct blkhost *h)
{
	while (h->disks) {
		struct blkhost_disk *d = h->disks;
		h->disks = d->next;
		/* The sockets stay: domains keep running and the next domusd listens there again. */
		blkctl_disk_close(&d->c, false);
		free(d);
	}
	backend_proc_stop(&h->proc);
}

int blkhost_cache_limit(struct blkhost *h, uint64_t bytes, char *err, size_t errlen)
{
	h->cache_limit = bytes;
	h->cache_limit_set = true;
	return backend_proc_running(&h->proc) ? blkctl_cache_limit(h->proc.ctl_fd, bytes, err, errlen) : 0;
}

int blkhost_cache_fit(struct blkhost *h, uint64_t idle_mib, uint64_t *freed_mib, char *err,
		      size_t errlen)
{
	uint64_t mib = mem_account_cache_mib(idle_mib, h->cache_max_mib);
	struct blk_cache_stats before = {0}, after = {0};
	int ret;

	if (freed_mib && (ret = blkhost_cache_stats(h, &before, err, errlen)) < 0)
		return ret;
	if ((!h->cache_limit_set || h->cache_limit != mib << 20) &&
	    (ret = blkhost_cache_limit(h, mib << 20, err, errlen)) < 0)
		return ret;
	if (freed_mib) {
		if ((ret = blkhost_cache_stats(h, &after, err, errlen)) < 0)
			return ret;
		*freed_mib = before.size > after.size ? (before.size - after.size) >> 20 : 0;
	}
	return 0;
}

int blkhost_cache_stats(struct blkhost *h, struct blk_cache_stats *out, char *err, size_t errlen)
{
	if (backend_proc_running(&h->proc))
		return blkctl_cache_stats(h->proc.ctl_fd, out, err, errlen);
	/* Nothing is cached without a domus-blk; the next one starts with this limit. */
	memset(out, 0, sizeof(*out));
	out->limit = h->cache_limit_set ? h->cache_limit / BLK_CACHE_BLOCK * BLK_CACHE_BLOCK
					: (uint64_t)BLK_CACHE_DEFAULT_MIB << 20;
	return 0;
}

json_t *blkhost_cache_json(struct blkhost *h)
{
	struct blk_cache_stats s;
	char err[256];
	uint64_t asked;

	if (blkhost_cache_stats(h, &s, err, sizeof(err)) < 0) {
		log_warnx("domus-blk: cache statistics: %s", err);
		return NULL;
	}
	asked = s.hit_bytes + s.miss_bytes;
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "size_bytes", (json_int_t)s.size,
			 "limit_bytes", (json_int_t)s.limit, "hits", (json_int_t)s.hits, "misses",
			 (json_int_t)s.misses, "hit_bytes", (json_int_t)s.hit_bytes, "miss_bytes",
			 (json_int_t)s.miss_bytes, "insertions", (json_int_t)s.insertions,
			 "evictions", (json_int_t)s.evictions, "hit_ratio",
			 asked ? (double)s.hit_bytes / (double)asked : 0.0);
}
