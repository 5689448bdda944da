/*
 * domusd's cgroups (v2): one per domain, holding its domus-vmm with
 * memory.max set from maxmem plus the VMM's own overhead, and one each for
 * domus-blk and domus-net. What the kernel counts there (memory.current)
 * is what a domain holds; the guest's word (its balloon's `actual`) is
 * not. Layout, under BASE:
 *
 *   BASE/dom-ID     a domain's domus-vmm (and nothing else)
 *   BASE/domus-blk  the host's disk back-end
 *   BASE/domus-net  the host's network back-end
 *   BASE/daemon     domusd itself, when BASE is the cgroup systemd gave it
 *
 * BASE is domusd's own cgroup when that is not the root (systemd's
 * Delegate=yes: domusd moves itself to BASE/daemon, as a cgroup with
 * children may hold no processes), else /domus.
 */
#ifndef DOMUS_CGROUP_H
#define DOMUS_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A domain's process beside the guest's RAM: the anonymous memory the VMM
 * holds itself (0.6 MiB measured for a 512 MiB domain, docs/domusd.md),
 * rounded up, and the margin its memory.max gives on top of maxmem
 * (memory.current ran 3 MiB above the guest's pages: KVM's structures and
 * page tables, which grow with the guest).
 */
#define CGROUP_VMM_BASE_MIB 1
#define CGROUP_VMM_OVERHEAD_MIB 64

struct cgroups {
	bool enabled;
	char base[PATH_MAX - 64]; /* absolute path under the cgroup2 mount */
};

/* Finds cgroup2 at mount (normally /sys/fs/cgroup) and makes BASE. 0, or -errno with why. */
int cgroup_init(struct cgroups *cg, const char *mount, char *err, size_t errlen);
/* Makes BASE/NAME (or keeps it); memory.max in bytes unless 0. 0, or -errno with why. */
int cgroup_make(const struct cgroups *cg, const char *name, uint64_t memory_max, char *err,
		size_t errlen);
/* A descriptor of BASE/NAME's directory, for a child to join before exec (ctlproc_join_cgroup). */
int cgroup_open(const struct cgroups *cg, const char *name);
/* BASE/NAME's memory.current and memory.max in bytes (max: UINT64_MAX for "max"). 0 or -errno. */
int cgroup_memory(const struct cgroups *cg, const char *name, uint64_t *current, uint64_t *max);
/*
 * BASE/NAME's resident memory that is no file's page cache (memory.stat's
 * anon and shmem: a domain's guest RAM is its memfd's shmem), in bytes.
 * 0 or -errno.
 */
int cgroup_memory_resident(const struct cgroups *cg, const char *name, uint64_t *bytes);
/*
 * CPU shares (docs/sched.md). Xen's credit weight (1-65535, default 256)
 * as cgroup v2's cpu.weight (1-10000, default 100): weight x 100 / 256,
 * rounded, clamped (weights above 25600 all map to 10000).
 */
unsigned cgroup_cpu_weight_from_xen(unsigned weight);
/* Xen's cap (percent of one CPU, 0 for none) as cpu.max's text: "max 100000" or "QUOTA 100000". */
void cgroup_cpu_max_text(unsigned cap, char *out, size_t len);
/*
 * Sets BASE/NAME's cpu.weight and cpu.max from Xen's weight and cap. 0;
 * -ENOTSUP without cgroup v2's cpu controller there; -errno. Why in err.
 */
int cgroup_set_cpu(const struct cgroups *cg, const char *name, unsigned weight, unsigned cap,
		   char *err, size_t errlen);
/* BASE/NAME's cpu.weight and cpu.max as the kernel has them. 0 or -errno. */
int cgroup_get_cpu(const struct cgroups *cg, const char *name, unsigned *weight, char *max,
		   size_t maxlen);
/* BASE/NAME/FILE's first line into buf. 0 or -errno (-ENOTSUP without cgroup v2). */
int cgroup_read(const struct cgroups *cg, const char *name, const char *file, char *buf, size_t len);
/* text into BASE/NAME/FILE. 0, or -errno with why in err. */
int cgroup_write(const struct cgroups *cg, const char *name, const char *file, const char *text, char *err,
		 size_t errlen);
/* Removes BASE/NAME once it holds no process. 0 or -errno. */
int cgroup_remove(const struct cgroups *cg, const char *name);
/* The name of domain domid's cgroup. */
void cgroup_domain_name(char *out, size_t len, unsigned domid);

#endif
