#include "ctl/blk_supervisor.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log.h"

/* Hands a (new) domus-blk every disk. */
static int serve(struct backend_proc *p, bool again, char *err, size_t errlen)
{
	struct blk_supervisor *s = (struct blk_supervisor *)((char *)p - offsetof(struct blk_supervisor, proc));
	int ret = 0;

	for (unsigned i = 0; ret == 0 && i < VM_MAX_DISKS; i++)
		if (s->served[i])
			ret = blkctl_add(p->ctl_fd, &s->disks[i], err, errlen);
	if (ret == 0 && again)
		log_info("domus-blk started again (pid %d)", (int)p->pid);
	return ret;
}

int blk_supervisor_start(struct blk_supervisor *s, struct vm_config *cfg, const bool *served,
			 const struct watch_loop *loop, int pid_kind, int timer_kind)
{
	char err[768];
	int ret;

	memset(s, 0, sizeof(*s));
	backend_proc_init(&s->proc, "domus-blk", "", blkctl_spawn, serve, loop, pid_kind, timer_kind);
	s->proc.verbose = cfg->verbose > 0;
	s->stats_fd = -1;
	/* The counters outlive each domus-blk: every one started gets the same memory. */
	s->stats_fd = memfd_create("domus-blk-stats", MFD_CLOEXEC);
	if (s->stats_fd < 0 || ftruncate(s->stats_fd, 16 * sizeof(struct blk_counters)) < 0)
		return -errno;
	s->stats = mmap(NULL, 16 * sizeof(struct blk_counters), PROT_READ | PROT_WRITE, MAP_SHARED,
			s->stats_fd, 0);
	if (s->stats == MAP_FAILED) {
		s->stats = NULL;
		return -errno;
	}
	if (backend_proc_find(&s->proc, blkctl_find_program) < 0) {
		log_warnx("domus-blk not found beside this program (set DOMUS_BLK, or add ,in-vmm "
			  "to a disk)");
		blk_supervisor_stop(s);
		return -ENOENT;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/domus-blk.XXXXXX");
	if (!mkdtemp(s->dir)) {
		log_warn("mkdtemp");
		s->dir[0] = 0;
		blk_supervisor_stop(s);
		return -EIO;
	}
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char id[16], sock[128];
		if (!served[i])
			continue;
		snprintf(id, sizeof(id), "disk%u", i);
		snprintf(sock, sizeof(sock), "%s/disk%u.sock", s->dir, i);
		ret = blkctl_disk_open(&s->disks[i], id, &cfg->disks[i], sock, s->stats_fd, i, NULL, err,
				       sizeof(err));
		if (ret < 0) {
			log_warnx("disk %s: %s", cfg->disks[i].path, err);
			blk_supervisor_stop(s);
			return ret;
		}
		s->served[i] = true;
	}
	if ((ret = backend_proc_ensure(&s->proc, err, sizeof(err))) < 0) {
		log_warnx("domus-blk: %s", err);
		blk_supervisor_stop(s);
		return ret;
	}
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (s->served[i]) {
			snprintf(cfg->disks[i].path, sizeof(cfg->disks[i].path), "%s",
				 s->disks[i].socket);
			cfg->disks[i].vhost_user = true;
		}
	return 0;
}

struct blk_counters *blk_supervisor_counters(struct blk_supervisor *s, unsigned i)
{
	return i < VM_MAX_DISKS && s->stats && s->served[i] ? &s->stats[i] : NULL;
}

void blk_supervisor_stop(struct blk_supervisor *s)
{
	backend_proc_stop(&s->proc);
	if (s->stats)
		munmap(s->stats, 16 * sizeof(struct blk_counters));
	s->stats = NULL;
	if (s->stats_fd >= 0)
		close(s->stats_fd);
	s->stats_fd = -1;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (s->served[i]) {
			blkctl_disk_close(&s->disks[i], true);
			s->served[i] = false;
		}
	if (s->dir[0]) {
		rmdir(s->dir);
		s->dir[0] = 0;
	}
}
