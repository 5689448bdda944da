#include "ctl/caller.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/task.h"
#include "lib/unix_socket.h"

int caller_from_socket(int fd, struct caller *c)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	gid_t groups[CALLER_MAX_GROUPS];
	socklen_t glen = sizeof(groups);

	memset(c, 0, sizeof(*c));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	c->uid = uc.uid;
	c->gid = uc.gid;
	c->pid = uc.pid;
	/* More groups than we keep: refuse rather than judge by some of them. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0)
		return errno == ERANGE ? -E2BIG : -errno;
	c->ngroups = glen / sizeof(gid_t);
	memcpy(c->groups, groups, c->ngroups * sizeof(gid_t));
	return 0;
}

void caller_root(struct caller *c)
{
	memset(c, 0, sizeof(*c));
	c->pid = getpid();
}

void caller_files_init(struct caller_files *f)
{
	f->kernel = f->ramdisk = -1;
	for (unsigned i = 0; i < VM_MAX_PMEM; i++)
		f->pmems[i] = -1;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++) {
		f->disks[i].image = f->disks[i].direct = -1;
		f->disks[i].nbacking = 0;
	}
	for (unsigned i = 0; i < DOMAIN_MAX_VIFS; i++)
		f->vif_sockets[i] = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void caller_files_close(struct caller_files *f)
{
	close_fd(&f->kernel);
	close_fd(&f->ramdisk);
	for (unsigned i = 0; i < VM_MAX_PMEM; i++)
		close_fd(&f->pmems[i]);
	for (unsigned i = 0; i < VM_MAX_DISKS; i++) {
		close_fd(&f->disks[i].image);
		close_fd(&f->disks[i].direct);
		for (unsigned j = 0; j < f->disks[i].nbacking; j++)
			close_fd(&f->disks[i].backing[j]);
		f->disks[i].nbacking = 0;
	}
	for (unsigned i = 0; i < DOMAIN_MAX_VIFS; i++)
		close_fd(&f->vif_sockets[i]);
}

/* What the child sends back, one message per file, the last one ITEM_DONE. */
enum item { ITEM_KERNEL, ITEM_RAMDISK, ITEM_PMEM, ITEM_DISK, ITEM_VIF, ITEM_DONE };

struct reply {
	int item;
	unsigned index;
	int status; /* 0 or -errno */
	unsigned nbacking;
	char err[2048];
	char names[IMAGE_MAX_CHAIN][IMAGE_NAME_MAX];
};

static const char *item_name(int item)
{
	static const char *names[] = {"kernel", "ramdisk", "pmem", "disk", "vif socket", ""};
	return names[item];
}

/* The reason an open as the caller failed, naming the file. */
static int open_failed(struct reply *r, const struct caller *c, const char *path, int error)
{
	if (error == EACCES || error == EPERM)
		snprintf(r->err, sizeof(r->err), "%s '%.900s': permission denied for uid %u",
			 item_name(r->item), path, (unsigned)c->uid);
	else
		snprintf(r->err, sizeof(r->err), "%s '%.900s': %s", item_name(r->item), path,
			 strerror(error));
	return -error;
}

/*
 * Opens path without waiting on a FIFO or a device, and checks its type: a
 * regular file; a block device too if block_ok (root's disks only).
 */
static int open_file(struct reply *r, const struct caller *c, const char *path, bool writable,
		     bool block_ok)
{
	struct stat st;
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return open_failed(r, c, path, errno);
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || (block_ok && S_ISBLK(st.st_mode)))) {
		close(fd);
		snprintf(r->err, sizeof(r->err), "%s '%.900s' is not a regular file%s", item_name(r->item),
			 path, caller_is_root(c) ? "" : " (device files are root's only)");
		return -EINVAL;
	}
	/* Root may open a file nobody may write; a user who marked an image read-only meant it. */
	if (writable && S_ISREG(st.st_mode) && !(st.st_mode & 0222)) {
		close(fd);
		snprintf(r->err, sizeof(r->err), "%s '%.900s' is read-only (mode %04o); add ,ro to attach "
			 "it read-only", item_name(r->item), path, st.st_mode & 07777);
		return -EACCES;
	}
	if (fcntl(fd, F_SETFL, 0) < 0) {
		close(fd);
		return open_failed(r, c, path, errno);
	}
	return fd;
}

static int connect_socket(struct reply *r, const struct caller *c, const char *path)
{
	int fd = unix_connect(path, SOCK_STREAM);

	return fd < 0 ? open_failed(r, c, path, -fd) : fd;
}

/* One disk: its socket, its file, or its image with the O_DIRECT twin and the backing chain. */
static unsigned open_disk(struct reply *r, const struct caller *c, const struct disk_config *dc,
			  int fds[UNIX_MAX_FDS])
{
	static struct blkctl_image img;
	unsigned n = 0;
	char why[900];
	int fd;

	if (dc->vhost_user) {
		fd = connect_socket(r, c, dc->path);
		if (fd >= 0)
			fds[n++] = fd;
		else
			r->status = fd;
		return n;
	}
	/* The file itself first: its type and rights, with the caller's name for a refusal. */
	fd = open_file(r, c, dc->path, !dc->readonly, caller_is_root(c));
	if (fd < 0) {
		r->status = fd;
		return 0;
	}
	if (dc->in_vmm) {
		fds[n++] = fd;
		return n;
	}
	close(fd);
	r->status = blkctl_image_open(dc, &img, why, sizeof(why));
	if (r->status < 0) {
		snprintf(r->err, sizeof(r->err), "disk '%.900s': %s", dc->path, why);
		if (r->status == -EACCES || r->status == -EPERM)
			snprintf(r->err + strlen(r->err), sizeof(r->err) - strlen(r->err), " (as uid %u)",
				 (unsigned)c->uid);
		return 0;
	}
	/* The image was opened again, and its backing files: each must be a regular file too. */
	for (unsigned i = 0; !caller_is_root(c) && i <= img.nbacking; i++) {
		struct stat st;
		if (fstat(i ? img.backing[i - 1] : img.image, &st) < 0 || !S_ISREG(st.st_mode)) {
			snprintf(r->err, sizeof(r->err), "disk '%.900s': %s%.200s%s is not a regular file "
				 "(device files are root's only)", dc->path, i ? "backing file '" : "",
				 i ? img.names[i - 1] : "", i ? "'" : "");
			r->status = -EINVAL;
			blkctl_image_close(&img);
			return 0;
		}
	}
	fds[n++] = img.image;
	if (img.direct >= 0)
		fds[n++] = img.direct;
	for (unsigned i = 0; i < img.nbacking; i++) {
		fds[n++] = img.backing[i];
		memcpy(r->names[i], img.names[i], IMAGE_NAME_MAX);
	}
	r->nbacking = img.nbacking;
	return n;
}

static int send_reply(int sock, struct reply *r, int *fds, unsigned n)
{
	int ret = unix_send_fds(sock, r, sizeof(*r), fds, n);

	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	return ret;
}

/* The child: becomes the caller, opens each file, sends each back. Returns its exit status. */
static int open_as_caller(int sock, const struct caller *c, const struct domain_spec *s,
			  bool blk_disks_only)
{
	static struct reply r;
	int fds[UNIX_MAX_FDS];
	unsigned n;

	/* Nothing of domusd's stays open: /proc/self/fd/N names nothing but the reply socket. */
	if (sock != 3 && (dup2(sock, 3) < 0 || close(sock) < 0))
		return 1;
	sock = 3;
	syscall(SYS_close_range, 4, ~0U, 0);
	if (!caller_is_root(c) &&
	    (setgroups(c->ngroups, c->groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	     setresuid(c->uid, c->uid, c->uid) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0))
		return 1;
	for (int item = ITEM_KERNEL; item <= ITEM_DONE; item++) {
		unsigned count = item == ITEM_PMEM ? s->vm.npmems : item == ITEM_DISK ? s->vm.ndisks
								 : item == ITEM_VIF ? s->nvifs : 1;
		for (unsigned i = 0; i < count; i++) {
			int fd = -1;
			if (blk_disks_only && item != ITEM_DONE &&
			    (item != ITEM_DISK || s->vm.disks[i].vhost_user || s->vm.disks[i].in_vmm))
				continue;
			memset(&r, 0, sizeof(r));
			r.item = item;
			r.index = i;
			n = 0;
			switch (item) {
			case ITEM_KERNEL:
				fd = open_file(&r, c, s->kernel, false, false);
				break;
			case ITEM_RAMDISK:
				if (!s->ramdisk[0])
					continue;
				fd = open_file(&r, c, s->ramdisk, false, false);
				break;
			case ITEM_PMEM:
				fd = open_file(&r, c, s->vm.pmems[i].path, !s->vm.pmems[i].readonly, false);
				break;
			case ITEM_DISK:
				n = open_disk(&r, c, &s->vm.disks[i], fds);
				break;
			case ITEM_VIF:
				if (s->vifs[i].backend != VIF_VHOST_USER)
					continue;
				fd = connect_socket(&r, c, s->vifs[i].socket);
				break;
			}
			if (item != ITEM_DISK && item != ITEM_DONE) {
				if (fd >= 0)
					fds[n++] = fd;
				else
					r.status = fd;
			}
			if (send_reply(sock, &r, fds, n) < 0)
				return 1;
			if (r.status < 0)
				return 0;
		}
	}
	return 0;
}

/* Files the domain names that a caller other than root may not have at all. */
static int check_root_only(const struct caller *c, const struct domain_spec *s, char *err,
			   size_t errlen)
{
	if (caller_is_root(c))
		return 0;
	for (unsigned i = 0; i < s->nvifs; i++)
		if (s->vifs[i].backend == VIF_VMM) {
			snprintf(err, errlen, "vif %u: the TAP interface '%s' is root's only (uid %u may use "
				 "domus-net's networks)", i, s->vifs[i].vifname, (unsigned)c->uid);
			return -EPERM;
		}
	/*
	 * The VMM makes the hybrid socket itself, as root before it confines
	 * itself (replacing a stale socket at the path): not on a user's word.
	 */
	if (s->vm.vsock.cid && !s->vm.vsock.vhost) {
		snprintf(err, errlen, "vsock: the hybrid socket '%s' is root's only (uid %u may use "
			 "backend=vhost)", s->vm.vsock.socket, (unsigned)c->uid);
		return -EPERM;
	}
	return 0;
}

/* Takes one reply's descriptors into out. */
static int take(struct caller_files *out, const struct reply *r, int *fds, unsigned n)
{
	struct blkctl_image *d;
	int *slot = NULL;

	switch (r->item) {
	case ITEM_KERNEL: slot = &out->kernel; break;
	case ITEM_RAMDISK: slot = &out->ramdisk; break;
	case ITEM_PMEM: slot = r->index < VM_MAX_PMEM ? &out->pmems[r->index] : NULL; break;
	case ITEM_VIF: slot = r->index < DOMAIN_MAX_VIFS ? &out->vif_sockets[r->index] : NULL; break;
	case ITEM_DISK:
		if (r->index >= VM_MAX_DISKS || n == 0 || r->nbacking > IMAGE_MAX_CHAIN ||
		    r->nbacking > n - 1)
			return -EPROTO;
		d = &out->disks[r->index];
		d->image = fds[0];
		d->direct = n - 1 > r->nbacking ? fds[1] : -1;
		d->nbacking = r->nbacking;
		for (unsigned j = 0; j < r->nbacking; j++) {
			d->backing[j] = fds[n - r->nbacking + j];
			snprintf(d->names[j], IMAGE_NAME_MAX, "%s", r->names[j]);
		}
		return 0;
	}
	if (!slot || n != 1)
		return -EPROTO;
	*slot = fds[0];
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_files(const struct caller *c, const struct domain_spec *spec, bool blk_disks_only,
		      struct caller_files *out, char *err, size_t errlen)
{
	static struct reply r;
	int sp[2], ret, status;
	long long deadline = now_ms() + CALLER_OPEN_TIMEOUT_MS;
	pid_t pid;

	caller_files_init(out);
	if ((ret = check_root_only(c, spec, err, errlen)) < 0)
		return ret;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		ret = -errno;
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return ret;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return ret;
	}
	if (pid == 0) {
		close(sp[0]);
		_exit(open_as_caller(sp[1], c, spec, blk_disks_only));
	}
	close(sp[1]);
	for (;;) {
		int fds[UNIX_MAX_FDS];
		unsigned n = 0;
		long long left = deadline - now_ms();
		ssize_t got;

		/* In domusd's request task the wait gives its loop back (lib/task.h). */
		if (left <= 0 || task_wait_fd(sp[0], POLLIN, (int)left) == -ETIMEDOUT) {
			snprintf(err, errlen, "opening the domain's files took over %d s (a FIFO, or a "
				 "file on a mount that does not answer?)", CALLER_OPEN_TIMEOUT_MS / 1000);
			ret = -ETIMEDOUT;
			break;
		}
		got = unix_recv_fds(sp[0], &r, sizeof(r), fds, UNIX_MAX_FDS, &n);
		if (got == -EINTR)
			continue;
		if (got != (ssize_t)sizeof(r) || r.item < ITEM_KERNEL || r.item > ITEM_DONE) {
			for (unsigned i = 0; i < n; i++)
				close(fds[i]);
			snprintf(err, errlen, "the process opening the domain's files as uid %u failed",
				 (unsigned)c->uid);
			ret = -EIO;
			break;
		}
		if (r.status < 0) {
			r.err[sizeof(r.err) - 1] = 0;
			snprintf(err, errlen, "%s", r.err);
			ret = r.status;
			break;
		}
		if (r.item == ITEM_DONE) {
			ret = 0;
			break;
		}
		if (take(out, &r, fds, n) < 0) {
			for (unsigned i = 0; i < n; i++)
				close(fds[i]);
			snprintf(err, errlen, "the process opening the domain's files sent a bad reply");
			ret = -EPROTO;
			break;
		}
	}
	close(sp[0]);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret < 0)
		caller_files_close(out);
	return ret;
}

int caller_open_files(const struct caller *c, const struct domain_spec *spec,
		      struct caller_files *out, char *err, size_t errlen)
{
	return open_files(c, spec, false, out, err, errlen);
}

int caller_open_blk_disks(const struct caller *c, const struct domain_spec *spec,
			  struct caller_files *out, char *err, size_t errlen)
{
	return open_files(c, spec, true, out, err, errlen);
}

json_t *caller_to_json(const struct caller *c)
{
	json_t *groups = json_array();

	for (unsigned i = 0; i < c->ngroups; i++)
		json_array_append_new(groups, json_integer(c->groups[i]));
	return json_pack("{s:I,s:I,s:o}", "uid", (json_int_t)c->uid, "gid", (json_int_t)c->gid,
			 "groups", groups);
}

void caller_from_json(const json_t *j, struct caller *c)
{
	const json_t *groups = json_object_get(j, "groups");
	json_int_t uid = json_integer_value(json_object_get(j, "uid"));
	json_int_t gid = json_integer_value(json_object_get(j, "gid"));

	caller_root(c);
	/* A record without an owner, or one out of range, is root's: the record is root's file. */
	if (!json_is_object(j) || uid <= 0 || uid > 0xfffffffe || gid < 0 || gid > 0xfffffffe)
		return;
	c->uid = (uid_t)uid;
	c->gid = (gid_t)gid;
	c->pid = 0;
	for (size_t i = 0; i < json_array_size(groups) && c->ngroups < CALLER_MAX_GROUPS; i++) {
		json_int_t g = json_integer_value(json_array_get(groups, i));
		if (g >= 0 && g <= 0xfffffffe)
			c->groups[c->ngroups++] = (gid_t)g;
	}
}
