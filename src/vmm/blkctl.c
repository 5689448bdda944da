#include "vmm/blkctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/cache.h"
#include "blk/image.h"
#include "lib/ctlproc.h"

#define REPLY_TIMEOUT_MS 10000

static void close_all(struct blkctl_disk *d)
{
	for (unsigned i = 0; i < d->nfds; i++)
		if (d->fds[i] >= 0)
			close(d->fds[i]);
	d->nfds = 0;
}

int blkctl_image_open(const struct disk_config *dc, struct blkctl_image *img, char *err,
		      size_t errlen)
{
	struct stat st;
	int ret;

	img->image = img->direct = -1;
	img->nbacking = 0;
	ret = image_open_chain(dc->path, dc->qcow2 ? IMAGE_QCOW2 : IMAGE_RAW, dc->readonly, &img->image,
			       img->backing, img->names, &img->nbacking, err, errlen);
	if (ret < 0)
		return ret;
	/* Root may write a file nobody may write; a user who marked an image read-only meant it. */
	if (!dc->readonly && fstat(img->image, &st) == 0 && S_ISREG(st.st_mode) && !(st.st_mode & 0222)) {
		snprintf(err, errlen, "the image is read-only (mode %04o); add ,ro (access=ro) to attach "
			 "it read-only", st.st_mode & 07777);
		blkctl_image_close(img);
		return -EACCES;
	}
	if (dc->direct) {
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", img->image);
		img->direct = open(self, (dc->readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
		if (img->direct < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: cannot open it with O_DIRECT (cache=%s): %s", dc->path,
				 disk_cache_name(dc), strerror(errno));
			blkctl_image_close(img);
			return ret;
		}
	}
	return 0;
}

void blkctl_image_close(struct blkctl_image *img)
{
	if (img->image >= 0)
		close(img->image);
	if (img->direct >= 0)
		close(img->direct);
	for (unsigned i = 0; i < img->nbacking; i++)
		close(img->backing[i]);
	img->image = img->direct = -1;
	img->nbacking = 0;
}

int blkctl_disk_open(struct blkctl_disk *d, const char *id, const struct disk_config *dc,
		     const char *socket, int stats_fd, unsigned slot, struct blkctl_image *opened,
		     char *err, size_t errlen)
{
	static struct blkctl_image own;
	struct blkctl_image *img = opened ? opened : &own;
	int ret = 0;
	size_t len;
	char *p;

	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", id);
	if (strlen(socket) >= sizeof(d->socket)) {
		snprintf(err, errlen, "socket path %s is too long", socket);
		if (opened)
			blkctl_image_close(opened);
		return -ENAMETOOLONG;
	}
	snprintf(d->socket, sizeof(d->socket), "%s", socket);
	if (!opened && (ret = blkctl_image_open(dc, &own, err, errlen)) < 0)
		return ret;
	/* Descriptors in the order domus-blk takes them: socket, image, O_DIRECT twin, stats, chain. */
	d->fds[d->nfds++] = unix_listen(d->socket, SOCK_STREAM, 4);
	d->fds[d->nfds++] = img->image;
	if (d->fds[0] < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", d->socket, strerror(-d->fds[0]));
		ret = d->fds[0];
		d->fds[0] = -1;
	}
	if (img->direct >= 0)
		d->fds[d->nfds++] = img->direct;
	if (ret == 0 && stats_fd >= 0 && (d->fds[d->nfds] = fcntl(stats_fd, F_DUPFD_CLOEXEC, 3)) >= 0)
		d->nfds++;
	else
		stats_fd = -1;
	for (unsigned i = 0; i < img->nbacking; i++)
		d->fds[d->nfds++] = img->backing[i];
	/* The disk holds them now. */
	img->image = img->direct = -1;
	len = 96 + img->nbacking * IMAGE_NAME_MAX;
	d->text = p = ret == 0 ? malloc(len) : NULL;
	if (ret == 0 && !d->text)
		ret = -ENOMEM;
	if (ret < 0) {
		bool bound = d->fds[0] >= 0;
		img->nbacking = 0;
		close_all(d);
		if (bound)
			unlink(d->socket);
		return ret;
	}
	p += snprintf(p, len, "add\n%s\nformat=%s,cache=%s%s", d->id, dc->qcow2 ? "qcow2" : "raw",
		      disk_cache_name(dc), dc->readonly ? ",ro" : "");
	if (stats_fd >= 0)
		p += sprintf(p, ",stats=%u", slot);
	for (unsigned i = 0; i < img->nbacking; i++)
		p += sprintf(p, "\n%s", img->names[i]);
	img->nbacking = 0;
	return 0;
}

void blkctl_disk_close(struct blkctl_disk *d, bool remove_socket)
{
	close_all(d);
	if (remove_socket && d->socket[0])
		unlink(d->socket);
	free(d->text);
	d->text = NULL;
}

int blkctl_spawn(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		 size_t errlen)
{
	return ctlproc_spawn(program, "domus-blk", verbose, pid, ctl_fd, err, errlen);
}

/* Sends text (and fds) and reads the answer: "ok[ DETAIL]" (DETAIL into detail, if asked). */
static int request(int ctl_fd, const char *text, const int *fds, unsigned nfds, char *detail,
		   size_t detail_len, char *err, size_t errlen)
{
	return ctlproc_request(ctl_fd, "domus-blk", text, fds, nfds, REPLY_TIMEOUT_MS, detail,
			       detail_len, err, errlen);
}

int blkctl_add(int ctl_fd, const struct blkctl_disk *d, char *err, size_t errlen)
{
	return request(ctl_fd, d->text, d->fds, d->nfds, NULL, 0, err, errlen);
}

int blkctl_remove(int ctl_fd, const char *id, char *err, size_t errlen)
{
	char text[64];

	snprintf(text, sizeof(text), "remove\n%s", id);
	return request(ctl_fd, text, NULL, 0, NULL, 0, err, errlen);
}

int blkctl_cache_limit(int ctl_fd, uint64_t bytes, char *err, size_t errlen)
{
	char text[64];

	snprintf(text, sizeof(text), "cache-limit\n%" PRIu64, bytes);
	return request(ctl_fd, text, NULL, 0, NULL, 0, err, errlen);
}

int blkctl_cache_stats(int ctl_fd, struct blk_cache_stats *out, char *err, size_t errlen)
{
	char detail[600];
	int ret = request(ctl_fd, "cache-stats", NULL, 0, detail, sizeof(detail), err, errlen);

	if (ret < 0)
		return ret;
	if (blk_cache_stats_parse(detail, out) < 0) {
		snprintf(err, errlen, "domus-blk's cache statistics are unreadable: '%.80s'", detail);
		return -EPROTO;
	}
	return 0;
}

int blkctl_qos(int ctl_fd, const char *id, const char *group, const char *spec, char *err, size_t errlen)
{
	char text[64 + BLK_SCHED_NAME_MAX + BLK_QOS_TEXT_MAX];

	snprintf(text, sizeof(text), "qos\n%.31s\n%.39s\n%.255s", id, group, spec);
	return request(ctl_fd, text, NULL, 0, NULL, 0, err, errlen);
}

int blkctl_qos_stats(int ctl_fd, const char *group, struct blk_sched_stats *out, int *reserve_met,
		     char *err, size_t errlen)
{
	char text[64], detail[600];
	unsigned long long v[8];
	int ret;

	snprintf(text, sizeof(text), "qos-stats\n%.39s", group);
	if ((ret = request(ctl_fd, text, NULL, 0, detail, sizeof(detail), err, errlen)) < 0)
		return ret;
	memset(out, 0, sizeof(*out));
	if (sscanf(detail, "served_ops=%llu served_bytes=%llu reserve_ops=%llu weight_ops=%llu limited=%llu "
		   "throttled_ns=%llu backlog_ns=%llu deadline_missed=%llu waiting=%u inflight=%u "
		   "reserve_met=%d", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &out->waiting,
		   &out->inflight, reserve_met) != 11) {
		snprintf(err, errlen, "domus-blk's scheduler counters are unreadable: '%.80s'", detail);
		return -EPROTO;
	}
	out->served_ops = v[0], out->served_bytes = v[1], out->reserve_ops = v[2], out->weight_ops = v[3];
	out->limited = v[4], out->throttled_ns = v[5], out->backlog_ns = v[6], out->deadline_missed = v[7];
	return 0;
}

int blkctl_sched(int ctl_fd, const char *settings, char *err, size_t errlen)
{
	char text[256];

	snprintf(text, sizeof(text), "sched\n%.240s", settings);
	return request(ctl_fd, text, NULL, 0, NULL, 0, err, errlen);
}

void blkctl_find_program(char *out, size_t len, const char *near)
{
	ctlproc_find_program(out, len, "DOMUS_BLK", "domus-blk", "../blk", near);
}
