#include "ctl/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "lib/small_file.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static int write_text(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* The whole of dir/file into buf (at most len - 1 bytes). */
static int read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	return small_file_read(path, buf, len);
}

/* The first line of dir/file. */
static int read_text(const char *dir, const char *file, char *buf, size_t len)
{
	int ret = read_file(dir, file, buf, len);

	if (ret == 0)
		buf[strcspn(buf, "\n")] = 0;
	return ret;
}

/* Our own cgroup, from /proc/self/cgroup's "0::PATH" line. */
static int own_cgroup(char *out, size_t len)
{
	char buf[PATH_MAX + 8], *p;

	if (read_text("/proc/self", "cgroup", buf, sizeof(buf)) < 0)
		return -ENOENT;
	p = strstr(buf, "0::");
	if (p != buf)
		return -ENOENT; /* a hybrid or v1 host: its v2 tree is not ours to use */
	snprintf(out, len, "%.2000s", p + 3);
	return 0;
}

/* Makes dir's children get the memory controller (and cpu, where the kernel has it). */
static int delegate(const char *dir, char *err, size_t errlen)
{
	int ret = write_text(dir, "cgroup.subtree_control", "+memory");

	if (ret < 0) {
		snprintf(err, errlen, "enabling the memory controller in %s: %s", dir, strerror(-ret));
		return ret;
	}
	write_text(dir, "cgroup.subtree_control", "+cpu"); /* the CPU's weights; optional here */
	write_text(dir, "cgroup.subtree_control", "+cpuset"); /* whole cores per domain, where needed */
	return 0;
}

int cgroup_init(struct cgroups *cg, const char *mount, char *err, size_t errlen)
{
	char own[2048], path[PATH_MAX];
	struct statfs sf;
	int ret;

	memset(cg, 0, sizeof(*cg));
	if (statfs(mount, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
		snprintf(err, errlen, "no cgroup2 file system at %s", mount);
		return -ENOENT;
	}
	if ((ret = own_cgroup(own, sizeof(own))) < 0) {
		snprintf(err, errlen, "/proc/self/cgroup has no cgroup2 path");
		return ret;
	}
	if (!strcmp(own, "/")) {
		/* The root: domains go to a tree of our own beside everyone else's. */
		if ((ret = delegate(mount, err, errlen)) < 0)
			return ret;
		snprintf(cg->base, sizeof(cg->base), "%.1000s/domus", mount);
		if (mkdir(cg->base, 0755) < 0 && errno != EEXIST) {
			ret = -errno;
			snprintf(err, errlen, "mkdir %s: %s", cg->base, strerror(errno));
			return ret;
		}
	} else {
		/* systemd's cgroup for us (Delegate=yes): we move to daemon/, domains beside it. */
		size_t n = strlen(own);
		if (n > 7 && !strcmp(own + n - 7, "/daemon"))
			own[n - 7] = 0; /* a restarted domusd's parent put it back where the last one went */
		snprintf(cg->base, sizeof(cg->base), "%.1000s%s", mount, own);
		snprintf(path, sizeof(path), "%s/daemon", cg->base);
		if ((mkdir(path, 0755) < 0 && errno != EEXIST) ||
		    (ret = write_text(path, "cgroup.procs", "0")) < 0) {
			ret = errno ? -errno : ret;
			snprintf(err, errlen, "moving domusd to %s: %s (is the unit's Delegate=yes?)", path,
				 strerror(-ret));
			return ret;
		}
	}
	if ((ret = delegate(cg->base, err, errlen)) < 0)
		return ret;
	cg->enabled = true;
	return 0;
}

void cgroup_domain_name(char *out, size_t len, unsigned domid)
{
	snprintf(out, len, "dom-%u", domid);
}

int cgroup_make(const struct cgroups *cg, const char *name, uint64_t memory_max, char *err,
		size_t errlen)
{
	char path[PATH_MAX], text[32];
	int ret;

	if (!cg->enabled)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", cg->base, name);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
		return ret;
	}
	if (!memory_max)
		return 0;
	snprintf(text, sizeof(text), "%" PRIu64, memory_max);
	if ((ret = write_text(path, "memory.max", text)) < 0) {
		snprintf(err, errlen, "%s/memory.max: %s", path, strerror(-ret));
		return ret;
	}
	/* A guest over its limit is the kernel's to reclaim from, not swap for the host. */
	write_text(path, "memory.swap.max", "0");
	return 0;
}

int cgroup_open(const struct cgroups *cg, const char *name)
{
	char path[PATH_MAX];

	if (!cg->enabled)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", cg->base, name);
	return open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
}

static int read_u64(const char *dir, const char *file, uint64_t *out)
{
	char buf[64], *end;
	int ret = read_text(dir, file, buf, sizeof(buf));

	if (ret < 0)
		return ret;
	if (!strcmp(buf, "max")) {
		*out = UINT64_MAX;
		return 0;
	}
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return errno || end == buf ? -EINVAL : 0;
}

int cgroup_memory(const struct cgroups *cg, const char *name, uint64_t *current, uint64_t *max)
{
	char path[PATH_MAX];
	int ret;

	if (!cg->enabled)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s", cg->base, name);
	if ((ret = read_u64(path, "memory.current", current)) < 0)
		return ret;
	return max ? read_u64(path, "memory.max", max) : 0;
}

int cgroup_memory_resident(const struct cgroups *cg, const char *name, uint64_t *bytes)
{
	char path[PATH_MAX], buf[8192], *line, *save = NULL;
	unsigned found = 0;
	int ret;

	if (!cg->enabled)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s", cg->base, name);
	if ((ret = read_file(path, "memory.stat", buf, sizeof(buf))) < 0)
		return ret;
	*bytes = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long v;
		if (sscanf(line, "anon %llu", &v) == 1 || sscanf(line, "shmem %llu", &v) == 1) {
			*bytes += v;
			found++;
		}
	}
	return found == 2 ? 0 : -EPROTO;
}

unsigned cgroup_cpu_weight_from_xen(unsigned weight)
{
	unsigned long w = ((unsigned long)weight * 100 + 128) / 256;

	return w < 1 ? 1 : w > 10000 ? 10000 : (unsigned)w;
}

void cgroup_cpu_max_text(unsigned cap, char *out, size_t len)
{
	/* A period of 100 ms, as Xen's credit scheduler accounts in 30 ms slices: near enough. */
	if (cap)
		snprintf(out, len, "%llu 100000", (unsigned long long)cap * 1000);
	else
		snprintf(out, len, "max 100000");
}

int cgroup_set_cpu(const struct cgroups *cg, const char *name, unsigned weight, unsigned cap,
		   char *err, size_t errlen)
{
	char dir[PATH_MAX], text[32];
	int ret;

	if (!cg->enabled) {
		snprintf(err, errlen, "the host has no cgroup v2 for domusd: cpu_weight and cap cannot apply");
		return -ENOTSUP;
	}
	snprintf(dir, sizeof(dir), "%s/%s", cg->base, name);
	snprintf(text, sizeof(text), "%u", cgroup_cpu_weight_from_xen(weight));
	ret = write_text(dir, "cpu.weight", text);
	if (ret == 0) {
		cgroup_cpu_max_text(cap, text, sizeof(text));
		ret = write_text(dir, "cpu.max", text);
	}
	if (ret == -ENOENT) {
		snprintf(err, errlen, "%s has no cpu controller (cgroup v2's cpu not delegated to domusd)", dir);
		return -ENOTSUP;
	}
	if (ret < 0)
		snprintf(err, errlen, "%s: cpu.weight, cpu.max: %s", dir, strerror(-ret));
	return ret;
}

int cgroup_get_cpu(const struct cgroups *cg, const char *name, unsigned *weight, char *max,
		   size_t maxlen)
{
	char dir[PATH_MAX], text[32];
	int ret;

	if (!cg->enabled)
		return -ENOTSUP;
	snprintf(dir, sizeof(dir), "%s/%s", cg->base, name);
	if ((ret = read_text(dir, "cpu.weight", text, sizeof(text))) < 0 ||
	    (ret = read_text(dir, "cpu.max", max, maxlen)) < 0)
		return ret;
	*weight = (unsigned)strtoul(text, NULL, 10);
	return 0;
}

int cgroup_read(const struct cgroups *cg, const char *name, const char *file, char *buf, size_t len)
{
	char dir[PATH_MAX];

	if (!cg->enabled)
		return -ENOTSUP;
	snprintf(dir, sizeof(dir), "%s/%s", cg->base, name);
	return read_text(dir, file, buf, len);
}

int cgroup_write(const struct cgroups *cg, const char *name, const char *file, const char *text, char *err,
		 size_t errlen)
{
	char dir[PATH_MAX];
	int ret;

	if (!cg->enabled) {
		snprintf(err, errlen, "the host has no cgroup v2 for domusd");
		return -ENOTSUP;
	}
	snprintf(dir, sizeof(dir), "%s/%s", cg->base, name);
	if ((ret = write_text(dir, file, text)) < 0)
		snprintf(err, errlen, "%s/%s: %s", dir, file, strerror(-ret));
	return ret;
}

int cgroup_remove(const struct cgroups *cg, const char *name)
{
	char path[PATH_MAX];

	if (!cg->enabled)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", cg->base, name);
	return rmdir(path) < 0 && errno != ENOENT ? -errno : 0;
}
