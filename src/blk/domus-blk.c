/*
 * domus-blk: a disk backend in its own process, serving images to
 * vhost-user front-ends (domus's VMM, or QEMU's vhost-user-blk), one
 * front-end per disk at a time.
 *
 *   domus-blk --disk SOCKET=IMAGE[,ro][,format=raw|qcow2]... [--ready-fd N]
 *             [--request-delay-us N] [-v]
 *   domus-blk --socket PATH --image FILE [--format raw|qcow2] [--readonly] ...
 *
 * IMAGE is a path, or fd:N for an image its supervisor opened and passed
 * (then domus-blk never needs the path). With --ready-fd, "ready" or the
 * error is written there once every disk is open and listening. Then it
 * drops to user nobody and a seccomp allow-list (blk/sandbox.c) unless
 * --no-sandbox says not to.
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
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "blk/image.h"
#include "blk/sandbox.h"
#include "lib/log.h"
#include "lib/unix_socket.h"
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

/* Per-disk counters, in a memfd the supervisor passes (--stats-fd) and reads. */
struct blk_counters {
	_Atomic uint64_t read_ops, write_ops, read_bytes, write_bytes;
};

struct disk {
	struct image *img;
	char id[21];
	unsigned long long requests, errors;
	struct blk_counters *stats; /* NULL without --stats-fd */
	struct vhost_device_ops ops; /* per disk: read-only disks say so */
	const char *socket;
	int listen_fd;
	bool connected;
	struct vhost_backend b;
};

#define MAX_DISKS 16
static struct disk disks[MAX_DISKS];
static unsigned ndisks;
static unsigned delay_us;
static bool quiet; /* under a supervisor: only what goes wrong */

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
			if (d->stats) {
				atomic_fetch_add(&d->stats->write_ops, 1);
				atomic_fetch_add(&d->stats->write_bytes, len);
			}
			return VIRTIO_BLK_S_OK;
		}
		if (transfer(d, c->iov + c->nout, c->nin, 0, len, h.sector * SECTOR, false) < 0)
			return VIRTIO_BLK_S_IOERR;
		if (d->stats) {
			atomic_fetch_add(&d->stats->read_ops, 1);
			atomic_fetch_add(&d->stats->read_bytes, len);
		}
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

		if (delay_us)
			usleep(delay_us);
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

static const struct vhost_device_ops blk_ops = {
	.features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		    (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
		    (1ULL << VIRTIO_BLK_F_MQ),
	.num_queues = NUM_QUEUES,
	.queue_size = QUEUE_SIZE,
	.get_config = get_config,
	.queue_kicked = queue_kicked,
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = 1;
}

/* SOCKET=IMAGE[,ro][,format=F] */
static int add_disk(const char *spec, bool readonly, enum image_format format, char *err,
		    size_t errlen)
{
	char buf[4200], *eq, *opt, *save = NULL, *image;
	struct disk *d;
	int ret;

	if (ndisks == MAX_DISKS || strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "--disk %.60s: too many disks or too long", spec);
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
	while ((opt = strtok_r(NULL, ",", &save))) {
		if (!strcmp(opt, "ro"))
			readonly = true;
		else if (!strncmp(opt, "format=", 7) && image_format_parse(opt + 7, &format) == 0)
			;
		else {
			snprintf(err, errlen, "--disk %.60s: unknown option '%s'", spec, opt);
			return -EINVAL;
		}
	}
	if (!image) {
		snprintf(err, errlen, "--disk %.60s: no image", spec);
		return -EINVAL;
	}
	d = &disks[ndisks];
	if (!strncmp(image, "fd:", 3)) {
		char *end;
		long fd = strtol(image + 3, &end, 10);
		if (!image[3] || *end || fd < 3 || fd > 1023) {
			snprintf(err, errlen, "--disk %.60s: bad descriptor", spec);
			return -EINVAL;
		}
		/* Backing files are opened by name: an image passed by descriptor has none. */
		ret = image_open((int)fd, format, readonly, NULL, NULL, &d->img, err, errlen);
	} else {
		ret = image_open_path(image, format, readonly, &d->img, err, errlen);
	}
	if (ret < 0)
		return ret;
	d->socket = strdup(buf);
	d->ops = blk_ops;
	if (readonly)
		d->ops.features |= 1ULL << VIRTIO_BLK_F_RO;
	snprintf(d->id, sizeof(d->id), "domus-blk-%u", ndisks);
	d->listen_fd = unix_listen(d->socket, SOCK_STREAM, 1);
	if (d->listen_fd < 0) {
		snprintf(err, errlen, "listening on %s: %s", d->socket, strerror(-d->listen_fd));
		image_close(d->img);
		return d->listen_fd;
	}
	if (!quiet)
		log_info("serving %s (%s, %llu bytes%s) on %s", image, format == IMAGE_QCOW2 ? "qcow2" : "raw",
		 (unsigned long long)d->img->size, readonly ? ", read-only" : "", d->socket);
	ndisks++;
	return 0;
}

static void say_ready(int fd, const char *what)
{
	if (fd >= 0) {
		dprintf(fd, "%s\n", what);
		close(fd);
	}
}

static void drop(struct disk *d)
{
	image_flush(d->img);
	vhost_backend_close(&d->b);
	d->connected = false;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},   {"image", required_argument, NULL, 'i'},
		{"format", required_argument, NULL, 'f'},   {"readonly", no_argument, NULL, 'r'},
		{"verbose", no_argument, NULL, 'v'},        {"request-delay-us", required_argument, NULL, 'd'},
		{"disk", required_argument, NULL, 'D'},     {"ready-fd", required_argument, NULL, 'R'},
		{"stats-fd", required_argument, NULL, 'S'}, {"quiet", no_argument, NULL, 'q'},
		{"no-sandbox", no_argument, NULL, 'N'},
		{NULL, 0, NULL, 0},
	};
	const char *sock_path = NULL, *image = NULL, *specs[MAX_DISKS];
	unsigned nspecs = 0;
	enum image_format format = IMAGE_RAW;
	bool readonly = false;
	int opt, verbose = 0, ready_fd = -1, stats_fd = -1, ret;
	bool no_sandbox = false;
	char err[512];
	struct sigaction sa = {.sa_handler = on_signal};

	while ((opt = getopt_long(argc, argv, "vq", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

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
		case 'd':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v > 1000000) {
				fprintf(stderr, "domus-blk: --request-delay-us %s: 0 to 1000000\n", optarg);
				return 2;
			}
			delay_us = (unsigned)v;
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
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v < 3 || v > 1023)
				goto usage;
			*(opt == 'R' ? &ready_fd : &stats_fd) = (int)v;
			break;
		case 'v': verbose = 1; break;
		case 'q': quiet = true; break;
		case 'N': no_sandbox = true; break;
		default: goto usage;
		}
	}
	if (optind != argc || (!!sock_path != !!image) || (!sock_path && !nspecs))
		goto usage;
	log_init("domus-blk", verbose);
	signal(SIGPIPE, SIG_IGN);
	if (sock_path) {
		char spec[4200];
		snprintf(spec, sizeof(spec), "%s=%s", sock_path, image);
		if (add_disk(spec, readonly, format, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			return 2;
		}
	}
	for (unsigned i = 0; i < nspecs; i++)
		if (add_disk(specs[i], readonly, format, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			say_ready(ready_fd, err);
			return 2;
		}
	if (stats_fd >= 0) {
		struct blk_counters *c = mmap(NULL, MAX_DISKS * sizeof(*c), PROT_READ | PROT_WRITE,
					      MAP_SHARED, stats_fd, 0);
		close(stats_fd);
		for (unsigned i = 0; c != MAP_FAILED && i < ndisks; i++)
			disks[i].stats = &c[i];
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!no_sandbox && blk_sandbox_enter(err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		say_ready(ready_fd, err);
		return 1;
	}
	say_ready(ready_fd, "ready");
	while (!stopping) {
		struct pollfd p[MAX_DISKS * (1 + NUM_QUEUES)];
		unsigned first[MAX_DISKS], count[MAX_DISKS], n = 0;

		for (unsigned i = 0; i < ndisks; i++) {
			struct disk *d = &disks[i];
			first[i] = n;
			if (d->connected) {
				count[i] = vhost_backend_poll_fds(&d->b, p + n, 1 + NUM_QUEUES);
			} else {
				p[n] = (struct pollfd){.fd = d->listen_fd, .events = POLLIN};
				count[i] = 1;
			}
			n += count[i];
		}
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			break;
		}
		for (unsigned i = 0; i < ndisks; i++) {
			struct disk *d = &disks[i];
			if (!d->connected) {
				int fd;
				if (!(p[first[i]].revents & POLLIN))
					continue;
				fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd < 0)
					continue;
				vhost_backend_init(&d->b, fd, &d->ops, d);
				d->connected = true;
				log_debug("%s: a front-end connected", d->socket);
			} else if ((ret = vhost_backend_poll_ready(&d->b, p + first[i], count[i])) < 0) {
				if (ret == -EPIPE)
					log_debug("%s: %s", d->socket, d->b.err);
				else
					log_warnx("%s: front-end dropped: %s", d->socket, d->b.err);
				drop(d);
			}
		}
	}
	for (unsigned i = 0; i < ndisks; i++) {
		struct disk *d = &disks[i];
		if (d->connected)
			drop(d);
		if (!quiet || d->errors)
			log_info("%s: %llu requests served, %llu failed", d->socket, d->requests, d->errors);
		image_close(d->img);
		close(d->listen_fd);
		unlink(d->socket);
	}
	return 0;
usage:
	fprintf(stderr, "usage: domus-blk --disk SOCKET=IMAGE[,ro][,format=raw|qcow2]... [--ready-fd N]\n"
			"                 [--request-delay-us N] [--no-sandbox] [-q] [-v]\n"
			"       domus-blk --socket PATH --image FILE [--format raw|qcow2] [--readonly] ...\n");
	return 2;
}
