/*
 * domus-blk: a disk backend in its own process, serving one image to one
 * vhost-user front-end at a time (domus's VMM, or QEMU's vhost-user-blk).
 *
 *   domus-blk --socket PATH --image FILE [--format raw|qcow2] [--readonly]
 *             [--request-delay-us N] [-v]
 *
 * --request-delay-us holds every request that long between taking it and
 * completing it, as a slow disk would: it widens the window in which a
 * killed back-end leaves requests unfinished, for recovery tests.
 * It listens on PATH; when a front-end goes, the next one may connect.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "blk/image.h"
#include "lib/log.h"
#include "vhost/backend.h"

#define SECTOR 512
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_F_VERSION_1 32
#define NUM_QUEUES 4
#define QUEUE_SIZE 256

struct disk {
	struct image *img;
	unsigned delay_us;
	char id[21];
	unsigned long long requests, errors;
};

struct blk_req_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* Moves len bytes between the image at pos and the chain's iovecs from byte skip. */
static int transfer(struct disk *d, const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
		    uint64_t pos, bool write)
{
	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;
		uint8_t *p = iov[i].iov_base;
		int ret;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p += skip;
		l -= skip;
		skip = 0;
		if (l > len)
			l = len;
		ret = write ? image_write(d->img, p, l, pos) : image_read(d->img, p, l, pos);
		if (ret < 0)
			return ret;
		pos += l;
		len -= l;
	}
	return len ? -EIO : 0;
}

static uint8_t blk_request(struct disk *d, const struct virtq_chain *c, uint32_t *written)
{
	struct blk_req_header h;
	uint64_t len, sectors = d->img->size / SECTOR;

	*written = 0;
	if (c->in_len < 1 || virtq_chain_read(c, 0, &h, sizeof(h)) != sizeof(h))
		return VIRTIO_BLK_S_IOERR;
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		len = h.type == VIRTIO_BLK_T_IN ? c->in_len - 1 : c->out_len - sizeof(h);
		if (len % SECTOR || h.sector > sectors || len / SECTOR > sectors - h.sector)
			return VIRTIO_BLK_S_IOERR;
		if (h.type == VIRTIO_BLK_T_OUT) {
			if (d->img->readonly ||
			    transfer(d, c->iov, c->nout, sizeof(h), len, h.sector * SECTOR, true) < 0)
				return VIRTIO_BLK_S_IOERR;
			return VIRTIO_BLK_S_OK;
		}
		if (transfer(d, c->iov + c->nout, c->nin, 0, len, h.sector * SECTOR, false) < 0)
			return VIRTIO_BLK_S_IOERR;
		*written = (uint32_t)len;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return image_flush(d->img) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		*written = (uint32_t)virtq_chain_write(c, 0, d->id,
						       c->in_len - 1 < 20 ? c->in_len - 1 : 20);
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static void queue_kicked(void *dev, struct vhost_backend *b, unsigned q)
{
	struct disk *d = dev;
	static struct virtq_chain c;
	int got;

	while ((got = vhost_backend_pop(b, q, &c)) > 0) {
		uint32_t written;
		uint8_t status = blk_request(d, &c, &written);

		if (d->delay_us)
			usleep(d->delay_us);
		d->requests++;
		d->errors += status != VIRTIO_BLK_S_OK;
		/* The status byte is the last writable byte. */
		virtq_chain_write(&c, c.in_len - 1, &status, 1);
		vhost_backend_push(b, q, c.head, written + 1);
	}
	if (got < 0)
		log_warnx("queue %u: the driver broke the ring's rules; the queue stops", q);
	vhost_backend_notify(b, q);
}

static struct disk D;

static int get_config(void *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct disk *d = dev;
	uint8_t cfg[60] = {0};
	uint64_t capacity = d->img->size / SECTOR;
	uint32_t seg_max = 128 - 2, blk_size = SECTOR;
	uint16_t nq = NUM_QUEUES;

	memcpy(cfg + 0, &capacity, 8);
	memcpy(cfg + 12, &seg_max, 4);
	memcpy(cfg + 20, &blk_size, 4);
	memcpy(cfg + 34, &nq, 2);
	if (off > sizeof(cfg) || len > sizeof(cfg) - off)
		return -EINVAL;
	memcpy(buf, cfg + off, len);
	return 0;
}

static struct vhost_device_ops blk_ops = {
	.features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		    (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
		    (1ULL << VIRTIO_BLK_F_MQ),
	.num_queues = NUM_QUEUES,
	.queue_size = QUEUE_SIZE,
	.get_config = get_config,
	.queue_kicked = queue_kicked,
};

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"image", required_argument, NULL, 'i'},
		{"format", required_argument, NULL, 'f'}, {"readonly", no_argument, NULL, 'r'},
		{"verbose", no_argument, NULL, 'v'},     {"request-delay-us", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	const char *sock_path = NULL, *image = NULL;
	enum image_format format = IMAGE_RAW;
	bool readonly = false;
	int opt, verbose = 0, lfd;
	char err[512];
	struct sigaction sa = {.sa_handler = on_signal};

	while ((opt = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sock_path = optarg; break;
		case 'i': image = optarg; break;
		case 'f':
			if (image_format_parse(optarg, &format) < 0) {
				fprintf(stderr, "domus-blk: --format %s: raw or qcow2\n", optarg);
				return 2;
			}
			break;
		case 'r': readonly = true; break;
		case 'd': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v > 1000000) {
				fprintf(stderr, "domus-blk: --request-delay-us %s: 0 to 1000000\n", optarg);
				return 2;
			}
			D.delay_us = (unsigned)v;
			break;
		}
		case 'v': verbose = 1; break;
		default: goto usage;
		}
	}
	if (!sock_path || !image || optind != argc)
		goto usage;
	log_init("domus-blk", verbose);
	if (image_open_path(image, format, readonly, &D.img, err, sizeof(err)) < 0) {
		log_warnx("%s: %s", image, err);
		return 2;
	}
	if (readonly)
		blk_ops.features |= 1ULL << VIRTIO_BLK_F_RO;
	snprintf(D.id, sizeof(D.id), "domus-blk");
	lfd = listen_on(sock_path);
	if (lfd < 0) {
		log_errno(lfd, "listening on %s", sock_path);
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("serving %s (%s, %llu bytes%s) on %s", image, format == IMAGE_QCOW2 ? "qcow2" : "raw",
		 (unsigned long long)D.img->size, readonly ? ", read-only" : "", sock_path);
	while (!stopping) {
		struct vhost_backend b;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			log_warn("accept");
			break;
		}
		vhost_backend_init(&b, fd, &blk_ops, &D);
		log_debug("a front-end connected");
		while (!stopping) {
			struct pollfd p[1 + NUM_QUEUES];
			unsigned n = vhost_backend_poll_fds(&b, p, 1 + NUM_QUEUES);
			if (poll(p, n, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (vhost_backend_poll_ready(&b, p, n) < 0) {
				log_info("front-end dropped: %s", b.err);
				break;
			}
		}
		image_flush(D.img);
		vhost_backend_close(&b);
	}
	log_info("%llu requests served, %llu failed", D.requests, D.errors);
	image_flush(D.img);
	image_close(D.img);
	unlink(sock_path);
	return 0;
usage:
	fprintf(stderr, "usage: domus-blk --socket PATH --image FILE [--format raw|qcow2] [--readonly]\n"
			"                 [--request-delay-us N] [-v]\n");
	return 2;
}
