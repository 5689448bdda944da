/*
 * The ivshmem device from guest user space: found in sysfs, its BARs mapped
 * through the resource files, its doorbell interrupt through
 * uio_pci_generic (INTx) or vfio-pci (MSI-X, shmchan_vfio.c), or none
 * (polling); and the blocking channel on top of shmchan_ring.c. One thread
 * uses a channel.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shmchan.h"
#include "shmchan_vfio.h"

#define PCI_DEVICES "/sys/bus/pci/devices"
#define UIO_DRIVER "/sys/bus/pci/drivers/uio_pci_generic"
#define PCI_COMMAND_OFFSET 4
#define PCI_COMMAND_INTX_DISABLE_BIT 0x400
#define REG_INTR_MASK 0
#define REG_INTR_STATUS 1
#define REG_IVPOSITION 2
#define REG_DOORBELL 3
/* Polling: this many spins before napping, and the nap. */
#define POLL_SPINS 20000
#define POLL_NAP_NS 50000L
/* How long binding the driver may take to give us a uio device. */
#define BIND_TIMEOUT_MS 3000

struct shmchan {
	struct shmchan_link link;
	bool linked;
	enum shmchan_wait wait;
	char bdf[64];
	volatile uint32_t *regs;
	size_t regs_size;
	void *mem;
	size_t mem_size;
	int irq_fd; /* uio's fd, vfio's eventfd, or -1 when polling */
	int config_fd; /* uio: the device's PCI config space, to unmask INTx */
	struct shmchan_vfio vfio;
	int spins; /* polling: spins since the ring last moved */
	int idle_ms; /* a send or receive gives up after this long without the ring moving; 0: never */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ns(long ns)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ns};

	nanosleep(&ts, NULL);
}

/* The first line of a sysfs file, without its newline: 0 or -errno. */
static int read_attr(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	int err = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)cap, f))
		err = ferror(f) ? -EIO : -ENODATA;
	else
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	return err;
}

static int write_attr(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		err = -errno;
	close(fd);
	return err;
}

static bool is_ivshmem(const char *bdf)
{
	char path[PATH_MAX], v[32], d[32];

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/vendor", bdf);
	if (read_attr(path, v, sizeof(v)))
		return false;
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/device", bdf);
	if (read_attr(path, d, sizeof(d)))
		return false;
	return !strcmp(v, "0x1af4") && !strcmp(d, "0x1110");
}

static int find_device(struct shmchan *ch, const char *bdf, const char **err)
{
	DIR *dir;
	struct dirent *de;

	if (bdf) {
		if (strchr(bdf, '/') || strlen(bdf) >= sizeof(ch->bdf) || !is_ivshmem(bdf)) {
			*err = "no ivshmem device (1af4:1110) at that PCI address";
			return -ENODEV;
		}
		strcpy(ch->bdf, bdf);
		return 0;
	}
	dir = opendir(PCI_DEVICES);
	if (!dir) {
		*err = "cannot read " PCI_DEVICES;
		return -errno;
	}
	/* The lowest address wins, so the choice does not depend on readdir order. */
	ch->bdf[0] = '\0';
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(ch->bdf) ||
		    !is_ivshmem(de->d_name))
			continue;
		if (!ch->bdf[0] || strcmp(de->d_name, ch->bdf) < 0)
			strcpy(ch->bdf, de->d_name);
	}
	closedir(dir);
	if (!ch->bdf[0]) {
		*err = "no ivshmem device (1af4:1110) on the PCI bus";
		return -ENODEV;
	}
	return 0;
}

/* The driver bound to the device ("" for none): 0 or -errno. */
static int bound_driver(const struct shmchan *ch, char *name, size_t cap)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *base;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/driver", ch->bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		name[0] = '\0';
		return errno == ENOENT ? 0 : -errno;
	}
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= cap)
		return -ENAMETOOLONG;
	strcpy(name, base);
	return 0;
}

/* The N of the device's uioN, or -ENOENT while it has none. */
static int uio_number(const struct shmchan *ch)
{
	char path[PATH_MAX];
	DIR *dir;
	struct dirent *de;
	int n = -ENOENT;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/uio", ch->bdf);
	dir = opendir(path);
	if (!dir)
		return -ENOENT;
	while ((de = readdir(dir)))
		if (!strncmp(de->d_name, "uio", 3) && de->d_name[3] >= '0' && de->d_name[3] <= '9')
			n = atoi(de->d_name + 3);
	closedir(dir);
	return n;
}

static int open_uio(struct shmchan *ch, const char **err)
{
	char drv[64], path[64];
	int64_t deadline;
	int r, n;

	r = bound_driver(ch, drv, sizeof(drv));
	if (r) {
		*err = "cannot read the device's driver link";
		return r;
	}
	if (drv[0] && strcmp(drv, "uio_pci_generic")) {
		*err = "the device is bound to another driver";
		return -EBUSY;
	}
	if (!drv[0]) {
		if (access(UIO_DRIVER, F_OK)) {
			*err = "uio_pci_generic is not loaded";
			return -ENOENT;
		}
		/* new_id binds every unbound ivshmem device; once the ID is
		 * known (EEXIST) a device is bound by name. */
		r = write_attr(UIO_DRIVER "/new_id", "1af4 1110");
		if (r == -EEXIST)
			r = write_attr(UIO_DRIVER "/bind", ch->bdf);
		if (r && r != -EEXIST && r != -EBUSY) {
			*err = "binding uio_pci_generic failed";
			return r;
		}
	}
	deadline = now_ms() + BIND_TIMEOUT_MS;
	for (;;) {
		n = uio_number(ch);
		if (n >= 0) {
			snprintf(path, sizeof(path), "/dev/uio%d", n);
			ch->irq_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
			if (ch->irq_fd >= 0)
				return 0;
		}
		if (now_ms() > deadline) {
			*err = n < 0 ? "uio_pci_generic gave the device no uio node (no INTx?)"
				     : "cannot open the device's /dev/uioN";
			return n < 0 ? -ENODEV : -errno;
		}
		nap_ns(10000000L);
	}
}

static int map_bar(const struct shmchan *ch, int bar, void **out, size_t *size)
{
	char path[PATH_MAX];
	struct stat st;
	void *p;
	int fd, r = 0;

	/* resource2, not resource2_wc: write-combining would let stores pass
	 * each other, which the ring's release stores rely on not happening. */
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/resource%d", ch->bdf, bar);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (st.st_size <= 0) {
		r = -ENODEV;
	} else {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			r = -errno;
		} else {
			*out = p;
			*size = (size_t)st.st_size;
		}
	}
	close(fd);
	return r;
}

/*
 * Whether uio got the device an interrupt: a device without an INTx pin
 * (QEMU's ivshmem-doorbell) has irq 0. uio_pci_generic has no irqcontrol
 * (writing /dev/uioN fails with ENOSYS): its handler masks INTx with the
 * command register's Interrupt Disable bit, and user space clears that bit
 * through the config space to take the next interrupt (uio_unmask_intx).
 */
static bool uio_has_irq(struct shmchan *ch)
{
	char path[PATH_MAX], text[32] = "";
	int fd;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/irq", ch->bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (read(fd, text, sizeof(text) - 1) < 0)
		text[0] = 0;
	close(fd);
	if (atoi(text) <= 0)
		return false;
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/config", ch->bdf);
	ch->config_fd = open(path, O_RDWR | O_CLOEXEC);
	return ch->config_fd >= 0;
}

static int uio_unmask_intx(struct shmchan *ch)
{
	uint16_t command;

	if (pread(ch->config_fd, &command, sizeof(command), PCI_COMMAND_OFFSET) != sizeof(command))
		return -EIO;
	if (!(command & PCI_COMMAND_INTX_DISABLE_BIT))
		return 0;
	command &= (uint16_t)~PCI_COMMAND_INTX_DISABLE_BIT;
	if (pwrite(ch->config_fd, &command, sizeof(command), PCI_COMMAND_OFFSET) != sizeof(command))
		return -EIO;
	return 0;
}

static bool has_iommu(const struct shmchan *ch)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/iommu_group", ch->bdf);
	return !access(path, F_OK) && !access("/sys/bus/pci/drivers/vfio-pci", F_OK);
}

/* Sets up the doorbell interrupt the options ask for; AUTO takes uio's
 * INTx, else vfio's MSI-X where there is an IOMMU, else polls. */
static int open_irq(struct shmchan *ch, const char **err)
{
	char drv[64];
	int r;

	/* An earlier run chose vfio-pci: uio would find the device taken. */
	if (ch->wait == SHMCHAN_WAIT_AUTO && !bound_driver(ch, drv, sizeof(drv)) &&
	    !strcmp(drv, "vfio-pci"))
		ch->wait = SHMCHAN_WAIT_VFIO;
	if (ch->wait == SHMCHAN_WAIT_UIO || ch->wait == SHMCHAN_WAIT_AUTO) {
		r = open_uio(ch, err);
		if (r)
			return r;
		if (uio_has_irq(ch)) {
			ch->wait = SHMCHAN_WAIT_UIO;
			return 0;
		}
		close(ch->irq_fd);
		ch->irq_fd = -1;
		if (ch->wait == SHMCHAN_WAIT_UIO) {
			*err = "the device has no INTx interrupt for uio (MSI-X only?)";
			return -ENODEV;
		}
		/* QEMU's ivshmem-doorbell: MSI-X only. */
		ch->wait = has_iommu(ch) ? SHMCHAN_WAIT_VFIO : SHMCHAN_WAIT_POLL;
		if (ch->wait == SHMCHAN_WAIT_VFIO && shmchan_vfio_open(&ch->vfio, ch->bdf, err))
			ch->wait = SHMCHAN_WAIT_POLL;
		else if (ch->wait == SHMCHAN_WAIT_VFIO)
			ch->irq_fd = ch->vfio.eventfd;
		*err = NULL;
		return 0;
	}
	if (ch->wait == SHMCHAN_WAIT_VFIO) {
		r = shmchan_vfio_open(&ch->vfio, ch->bdf, err);
		if (r)
			return r;
		ch->irq_fd = ch->vfio.eventfd;
	}
	return 0;
}

int shmchan_open(struct shmchan **out, const struct shmchan_opts *opts, const char **err)
{
	struct shmchan *ch = calloc(1, sizeof(*ch));
	char path[PATH_MAX], drv[64];
	void *regs = NULL;
	int r;

	*err = NULL;
	if (!ch) {
		*err = "out of memory";
		return -ENOMEM;
	}
	ch->irq_fd = -1;
	ch->config_fd = -1;
	ch->vfio = (struct shmchan_vfio){.container = -1, .group = -1, .device = -1, .eventfd = -1};
	ch->wait = opts->wait;
	r = find_device(ch, opts->bdf, err);
	if (!r)
		r = open_irq(ch, err);
	if (r)
		goto fail;
	if (ch->wait == SHMCHAN_WAIT_POLL && !bound_driver(ch, drv, sizeof(drv)) && !drv[0]) {
		/* No driver enabled the device: turn on its memory decoding. */
		snprintf(path, sizeof(path), PCI_DEVICES "/%s/enable", ch->bdf);
		r = write_attr(path, "1");
		if (r) {
			*err = "cannot enable the PCI device";
			goto fail;
		}
	}
	r = map_bar(ch, 0, &regs, &ch->regs_size);
	if (r || ch->regs_size < 16) {
		*err = "cannot map the registers (BAR0)";
		r = r ? r : -ENODEV;
		goto fail;
	}
	ch->regs = regs;
	r = map_bar(ch, 2, &ch->mem, &ch->mem_size);
	if (r) {
		*err = "cannot map the shared memory (BAR2)";
		goto fail;
	}
	ch->link.self_id = ch->regs[REG_IVPOSITION];
	if (ch->link.self_id > 0xffff) {
		*err = "IVPosition is not a peer ID (device not connected to a server?)";
		r = -ENODEV;
		goto fail;
	}
	if (ch->wait == SHMCHAN_WAIT_UIO) {
		/* INTx follows IntrStatus & IntrMask: unmask the peer
		 * interrupt, drop a stale one, let uio deliver. */
		ch->regs[REG_INTR_MASK] = 1;
	}
	r = shmchan_ack(ch);
	if (r) {
		*err = "cannot take the doorbell interrupt";
		goto fail;
	}
	*out = ch;
	return 0;
fail:
	shmchan_close(ch);
	return r;
}

void shmchan_close(struct shmchan *ch)
{
	if (!ch)
		return;
	if (ch->mem)
		munmap(ch->mem, ch->mem_size);
	if (ch->regs)
		munmap((void *)ch->regs, ch->regs_size);
	if (ch->wait == SHMCHAN_WAIT_VFIO)
		shmchan_vfio_close(&ch->vfio);
	else if (ch->irq_fd >= 0)
		close(ch->irq_fd);
	if (ch->config_fd >= 0)
		close(ch->config_fd);
	free(ch);
}

int shmchan_ack(struct shmchan *ch)
{
	uint64_t events;
	uint32_t count;

	if (ch->wait == SHMCHAN_WAIT_VFIO) {
		if (read(ch->irq_fd, &events, sizeof(events)) < 0 && errno != EAGAIN)
			return -errno;
		return 0;
	}
	if (ch->wait != SHMCHAN_WAIT_UIO)
		return 0;
	if (read(ch->irq_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return -errno;
	/* Reading IntrStatus clears it, lowering INTx before it is unmasked;
	 * a doorbell after this read raises it again. */
	(void)ch->regs[REG_INTR_STATUS];
	return uio_unmask_intx(ch);
}

static void ring_peer(struct shmchan *ch)
{
	ch->regs[REG_DOORBELL] = ch->link.peer_id << 16; /* vector 0 */
}

/* Waits for a doorbell or a while, whichever first: 0 or -errno. */
static int chan_wait(struct shmchan *ch, int nap_ms)
{
	struct pollfd p = {.fd = ch->irq_fd, .events = POLLIN};
	int n;

	if (ch->irq_fd < 0) {
		if (ch->spins < POLL_SPINS) {
			ch->spins++;
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause(); /* spin politely to a sibling thread */
#endif
		} else {
			nap_ns(nap_ms ? nap_ms * 1000000L : POLL_NAP_NS);
		}
		return 0;
	}
	n = poll(&p, 1, nap_ms ? nap_ms : SHMCHAN_RECHECK_MS);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n ? shmchan_ack(ch) : 0;
}

static int time_left(int64_t deadline)
{
	return deadline >= 0 && now_ms() > deadline ? -ETIMEDOUT : 0;
}

int shmchan_serve(struct shmchan *ch, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int r;

	r = shmchan_link_init(&ch->link, ch->mem, ch->mem_size, ch->link.self_id);
	if (r)
		return r;
	while ((r = shmchan_link_accept(&ch->link)) == -EAGAIN) {
		r = time_left(deadline);
		if (!r)
			r = chan_wait(ch, 10);
		if (r)
			return r;
	}
	if (r)
		return r;
	ch->linked = true;
	return 0;
}

int shmchan_connect(struct shmchan *ch, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	uint32_t self = ch->link.self_id;
	int r;

	/* The server cannot ring us before it knows our ID: look every 10 ms. */
	while ((r = shmchan_link_attach(&ch->link, ch->mem, ch->mem_size, self)) == -EAGAIN) {
		r = time_left(deadline);
		if (r)
			return r;
		nap_ns(10000000L);
	}
	if (r)
		return r;
	ch->linked = true;
	ring_peer(ch);
	return 0;
}

int shmchan_try_send(struct shmchan *ch, const void *msg, size_t len)
{
	bool notify;
	int r;

	if (!ch->linked)
		return -ENOTCONN;
	r = shmchan_ring_send(&ch->link.tx, msg, len, &notify);
	if (!r) {
		ch->spins = 0;
		if (notify)
			ring_peer(ch);
	}
	return r;
}

ssize_t shmchan_try_recv(struct shmchan *ch, void *buf, size_t cap)
{
	bool notify;
	ssize_t r;

	if (!ch->linked)
		return -ENOTCONN;
	r = shmchan_ring_recv(&ch->link.rx, buf, cap, &notify);
	if (r >= 0) {
		ch->spins = 0;
		if (notify)
			ring_peer(ch);
	}
	return r;
}

/* One attempt at a send (msg) or a receive (buf). */
static ssize_t chan_attempt(struct shmchan *ch, const void *msg, void *buf, size_t n)
{
	return msg ? shmchan_try_send(ch, msg, n) : shmchan_try_recv(ch, buf, n);
}

/* Blocks on one ring: says it sleeps (not when polling: nobody would hear
 * the doorbell), looks again, then waits. */
static ssize_t chan_block(struct shmchan *ch, struct shmchan_ring *ring, const void *msg,
			  void *buf, size_t n)
{
	int64_t deadline = ch->idle_ms > 0 ? now_ms() + ch->idle_ms : -1;
	bool waiting = false;
	ssize_t r;

	if (!ch->linked)
		return -ENOTCONN;
	while ((r = chan_attempt(ch, msg, buf, n)) == -EAGAIN) {
		if (ch->irq_fd >= 0 && !waiting) {
			shmchan_ring_set_waiting(ring, true);
			waiting = true;
			continue;
		}
		r = time_left(deadline);
		if (!r)
			r = chan_wait(ch, 0);
		if (r)
			break;
	}
	if (waiting)
		shmchan_ring_set_waiting(ring, false);
	return r;
}

void shmchan_set_idle_timeout(struct shmchan *ch, int timeout_ms)
{
	ch->idle_ms = timeout_ms > 0 ? timeout_ms : 0;
}

int shmchan_send(struct shmchan *ch, const void *msg, size_t len)
{
	static const char empty;

	/* A zero-length message still needs a non-NULL msg to mean "send". */
	return (int)chan_block(ch, &ch->link.tx, msg ? msg : &empty, NULL, len);
}

ssize_t shmchan_recv(struct shmchan *ch, void *buf, size_t cap)
{
	return chan_block(ch, &ch->link.rx, NULL, buf, cap);
}

int shmchan_fd(const struct shmchan *ch)
{
	return ch->irq_fd;
}

enum shmchan_wait shmchan_wait_mode(const struct shmchan *ch)
{
	return ch->wait;
}

size_t shmchan_max_msg(const struct shmchan *ch)
{
	return ch->linked ? ch->link.tx.size - 4 : 0;
}

uint32_t shmchan_self_id(const struct shmchan *ch)
{
	return ch->link.self_id;
}

uint32_t shmchan_peer_id(const struct shmchan *ch)
{
	return ch->link.peer_id;
}

const char *shmchan_broken(const struct shmchan *ch)
{
	return ch->link.rx.broken ? ch->link.rx.broken : ch->link.tx.broken;
}

void *shmchan_region(const struct shmchan *ch, size_t *size)
{
	*size = ch->mem_size;
	return ch->mem;
}

void shmchan_doorbell(struct shmchan *ch, uint16_t peer, uint16_t vector)
{
	ch->regs[REG_DOORBELL] = (uint32_t)peer << 16 | vector;
}
