#include "devices/ivshmem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/passed_fd.h"
#include "vmm/config.h"
#include "vmm/confine.h"
#include "vmm/vm.h"

#define REGS_BAR_SIZE 0x1000 /* the spec's 256 bytes; our bus wants 4 KiB BARs */
#define MSIX_BAR_SIZE 0x1000
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000

struct __attribute__((packed)) ivshmem_msix_cap {
	uint8_t id;
	uint8_t next;
	uint16_t ctrl;
	uint32_t table; /* offset | BIR */
	uint32_t pba;
};

static uint16_t msix_ctrl(const struct ivshmem *d)
{
	if (!d->msix_cap)
		return 0;
	return (uint16_t)pci_config_read((struct pci_device *)&d->pdev, d->msix_cap + 2, 2);
}

static bool msix_enabled(const struct ivshmem *d)
{
	return (msix_ctrl(d) & MSIX_CTRL_ENABLE) != 0;
}

/* INTx follows IntrStatus & IntrMask, and is quiet while MSI-X is on. Lock held. */
static void update_intx(struct ivshmem *d)
{
	pci_set_intx(&d->pdev, (d->intr_status & d->intr_mask) != 0 && !msix_enabled(d));
}

static void msix_fire(struct ivshmem *d, unsigned vector)
{
	uint16_t ctrl = msix_ctrl(d);
	struct ivshmem_msix_entry *e;

	if (vector >= d->vectors || !(ctrl & MSIX_CTRL_ENABLE))
		return;
	e = &d->msix[vector];
	if ((ctrl & MSIX_CTRL_MASKALL) || (e->ctrl & 1)) {
		d->msix_pending |= 1ULL << vector;
		return;
	}
	d->msix_pending &= ~(1ULL << vector);
	if (vm_signal_msi(d->vm, ((uint64_t)e->addr_hi << 32) | e->addr_lo, e->data) < 0)
		log_debug("ivshmem %s: MSI of vector %u not delivered", d->name, vector);
}

void ivshmem_interrupt(struct ivshmem *d, unsigned vector)
{
	pthread_mutex_lock(&d->lock);
	if (msix_enabled(d)) {
		msix_fire(d, vector);
	} else {
		/* Without MSI-X the vector cannot be told: IntrStatus says "a peer rang". */
		d->intr_status = 1;
		update_intx(d);
	}
	pthread_mutex_unlock(&d->lock);
}

static void msix_table_access(struct ivshmem *d, uint64_t off, void *data, unsigned len, bool write)
{
	unsigned idx = (unsigned)(off / 16), word = (unsigned)(off % 16) / 4;
	uint32_t *w;

	if (idx >= d->vectors || len != 4 || (off & 3)) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	w = &((uint32_t *)&d->msix[idx])[word];
	if (!write) {
		memcpy(data, w, 4);
		return;
	}
	memcpy(w, data, 4);
	if (word == 3 && !(d->msix[idx].ctrl & 1) && (d->msix_pending & (1ULL << idx)))
		msix_fire(d, idx);
}

static void regs_read(struct ivshmem *d, uint64_t off, void *data, unsigned len)
{
	uint32_t v = 0;

	if (len != 4 || (off & 3))
		return; /* the registers are 32 bits wide; other accesses read 0 */
	switch (off) {
	case IVSHMEM_REG_INTR_MASK:
		v = d->intr_mask;
		break;
	case IVSHMEM_REG_INTR_STATUS:
		/* Reading acknowledges: the status clears and INTx drops. */
		v = d->intr_status;
		d->intr_status = 0;
		update_intx(d);
		break;
	case IVSHMEM_REG_IV_POSITION:
		v = d->client ? (uint32_t)d->client->id : 0;
		break;
	default:
		break; /* Doorbell is write-only; the rest is reserved */
	}
	memcpy(data, &v, 4);
}

static void regs_write(struct ivshmem *d, uint64_t off, uint32_t v, unsigned len)
{
	if (len != 4 || (off & 3))
		return;
	switch (off) {
	case IVSHMEM_REG_INTR_MASK:
		d->intr_mask = v;
		update_intx(d);
		break;
	case IVSHMEM_REG_INTR_STATUS:
		d->intr_status = v;
		update_intx(d);
		break;
	case IVSHMEM_REG_DOORBELL:
		/* A plain device, an unknown peer or vector: ignored, as the spec says. */
		if (!d->client || ivshmem_client_ring(d->client, v >> 16, v & 0xffff) < 0) {
			d->ignored_doorbells++;
			log_debug("ivshmem %s: doorbell to peer %u vector %u ignored (%llu so far)",
				  d->name, v >> 16, v & 0xffff, d->ignored_doorbells);
		}
		break;
	default:
		break;
	}
}

/* BAR2 is reached here only while its memory slot is not mapped (a slot KVM refused). */
static bool mem_range_ok(const struct ivshmem *d, uint64_t off, unsigned len)
{
	return len <= 8 && off < d->size && len <= d->size - off;
}

static void bar_read(struct pci_device *pdev, int bar, uint64_t off, void *data, unsigned len)
{
	struct ivshmem *d = pdev->opaque;

	memset(data, 0, len);
	if (bar == IVSHMEM_MEM_BAR) {
		if (mem_range_ok(d, off, len))
			memcpy(data, d->mem + off, len);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (bar == IVSHMEM_REGS_BAR) {
		regs_read(d, off, data, len);
	} else if (bar == IVSHMEM_MSIX_BAR && d->vectors) {
		if (off < IVSHMEM_MSIX_PBA_OFF)
			msix_table_access(d, off, data, len, false);
		else if (off - IVSHMEM_MSIX_PBA_OFF < 8 && len <= 8 - (off - IVSHMEM_MSIX_PBA_OFF))
			memcpy(data, (uint8_t *)&d->msix_pending + (off - IVSHMEM_MSIX_PBA_OFF), len);
	}
	pthread_mutex_unlock(&d->lock);
}

static void bar_write(struct pci_device *pdev, int bar, uint64_t off, const void *data,
		      unsigned len)
{
	struct ivshmem *d = pdev->opaque;
	uint32_t v = 0;

	if (bar == IVSHMEM_MEM_BAR) {
		if (mem_range_ok(d, off, len))
			memcpy(d->mem + off, data, len);
		return;
	}
	if (len <= 4)
		memcpy(&v, data, len);
	pthread_mutex_lock(&d->lock);
	if (bar == IVSHMEM_REGS_BAR)
		regs_write(d, off, v, len);
	else if (bar == IVSHMEM_MSIX_BAR && d->vectors && off < IVSHMEM_MSIX_PBA_OFF)
		msix_table_access(d, off, (void *)data, len, true);
	pthread_mutex_unlock(&d->lock);
}

static void config_written(struct pci_device *pdev, unsigned offset, unsigned len)
{
	struct ivshmem *d = pdev->opaque;

	/* MSI-X enable or function mask changed: held vectors go out, INTx yields or comes back. */
	pthread_mutex_lock(&d->lock);
	for (unsigned v = 0; v < d->vectors; v++)
		if (d->msix_pending & (1ULL << v))
			msix_fire(d, v);
	update_intx(d);
	pthread_mutex_unlock(&d->lock);
}

/* BAR2's slot follows the BAR and the command register's memory decoding. Bus lock held. */
static void bars_changed(struct pci_device *pdev)
{
	struct ivshmem *d = pdev->opaque;
	uint64_t want = 0;
	int ret;

	if (pci_config_read(pdev, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY)
		want = pci_bar_address(pdev, IVSHMEM_MEM_BAR);
	if (want == d->mapped_gpa)
		return;
	if (d->mapped_gpa) {
		ret = vm_set_memslot(d->vm, (unsigned)d->slot, d->mapped_gpa, 0, NULL);
		if (ret < 0)
			log_errno(ret, "ivshmem %s: unmapping the memory at 0x%llx", d->name,
				  (unsigned long long)d->mapped_gpa);
		d->mapped_gpa = 0;
	}
	if (!want)
		return;
	ret = vm_set_memslot(d->vm, (unsigned)d->slot, want, d->size, d->mem);
	if (ret < 0) {
		/* Accesses then exit and are served by bar_read/bar_write: slower, still right. */
		log_errno(ret, "ivshmem %s: mapping the memory at 0x%llx", d->name,
			  (unsigned long long)want);
		return;
	}
	d->mapped_gpa = want;
}

static const struct pci_device_ops ivshmem_pci_ops = {
	.bar_read = bar_read,
	.bar_write = bar_write,
	.config_written = config_written,
	.bars_changed = bars_changed,
};

void ivshmem_poll_once(struct ivshmem *d, int timeout_ms)
{
	struct ivshmem_client *c = d->client;
	struct pollfd p[IVSHMEM_MAX_VECTORS + 2];
	unsigned nown;
	char err[256];
	int ret;

	/* Only this thread changes the socket and the own eventfds: no lock to read them. */
	nown = c->nown;
	p[0] = (struct pollfd){.fd = d->stop_fd, .events = POLLIN};
	p[1] = (struct pollfd){.fd = c->sock, .events = POLLIN};
	for (unsigned i = 0; i < nown; i++)
		p[2 + i] = (struct pollfd){.fd = c->own_fds[i], .events = POLLIN};
	if (poll(p, nown + 2, timeout_ms) <= 0)
		return;
	for (unsigned i = 0; i < nown; i++) {
		uint64_t count;

		/* Drain the counter: however many rang, one interrupt tells the guest. */
		if ((p[2 + i].revents & POLLIN) && read(c->own_fds[i], &count, sizeof(count)) == 8)
			ivshmem_interrupt(d, i);
	}
	if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
		ret = ivshmem_client_read(c, err, sizeof(err));
		if (err[0] && ret == 0)
			log_warnx("ivshmem %s: %s", d->name, err); /* ignored, as the spec allows */
		if (ret < 0) {
			/* The guest keeps its memory; doorbells to peers stop until the next start. */
			log_warnx("ivshmem %s: %s; the shared memory stays, doorbells to other peers "
				  "stop",
				  d->name, err);
			ivshmem_client_close(c);
		}
	}
}

/*
 * The doorbell thread. A thread of its own, not the main loop: the server
 * and the own eventfds are served however busy the control socket is, and
 * an interrupt reaches the guest without waiting for the main thread's
 * turn. Its filter (VMM_THREAD_DEVICE) already has what it needs: poll,
 * read (eventfds), recvmsg (SCM_RIGHTS), fstat and fcntl (checking a
 * received descriptor), close, and ioctl (KVM_SIGNAL_MSI, KVM_IRQ_LINE).
 */
static void *doorbell_thread(void *arg)
{
	struct ivshmem *d = arg;
	struct pollfd stop = {.fd = d->stop_fd, .events = POLLIN};

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		log_warnx("ivshmem %s: cannot load the device thread's system-call filter", d->name);
		return NULL;
	}
	while (poll(&stop, 1, 0) == 0)
		ivshmem_poll_once(d, -1);
	return NULL;
}

int ivshmem_add(struct vm *vm, struct ivshmem *d, const char *name, void *mem, uint64_t size,
		struct ivshmem_client *client)
{
	int ret;

	memset(d, 0, sizeof(*d));
	d->stop_fd = -1;
	d->slot = -1;
	if (size < 4096 || (size & (size - 1)))
		return -EINVAL;
	d->vm = vm;
	snprintf(d->name, sizeof(d->name), "%s", name);
	pthread_mutex_init(&d->lock, NULL);
	d->mem = mem;
	d->size = size;
	d->client = client;
	d->pdev.ops = &ivshmem_pci_ops;
	d->pdev.opaque = d;
	d->pdev.intx = true;
	d->pdev.config[PCI_REVISION_ID] = IVSHMEM_REVISION;
	d->pdev.bars[IVSHMEM_REGS_BAR] = (struct pci_bar){.size = REGS_BAR_SIZE};
	d->pdev.bars[IVSHMEM_MEM_BAR] =
	    (struct pci_bar){.size = size, .is_64 = true, .prefetchable = true};
	if (client) {
		struct ivshmem_msix_cap mc = {
		    .id = PCI_CAP_ID_MSIX,
		    .ctrl = (uint16_t)(client->vectors - 1),
		    .table = 0 | IVSHMEM_MSIX_BAR,
		    .pba = IVSHMEM_MSIX_PBA_OFF | IVSHMEM_MSIX_BAR,
		};

		d->vectors = client->vectors;
		for (unsigned i = 0; i < d->vectors; i++)
			d->msix[i].ctrl = 1; /* vectors start masked */
		d->pdev.bars[IVSHMEM_MSIX_BAR] = (struct pci_bar){.size = MSIX_BAR_SIZE};
		d->msix_cap = pci_add_capability(&d->pdev, &mc, sizeof(mc));
		if (!d->msix_cap)
			return -ENOSPC;
		/* The guest may set MSI-X enable and function mask, nothing else in the capability. */
		d->pdev.wmask[d->msix_cap + 3] = 0xc0;
		d->stop_fd = eventfd(0, EFD_CLOEXEC);
		if (d->stop_fd < 0)
			return -errno;
	}
	if ((ret = vm_reserve_memslot(vm)) < 0)
		return ret;
	d->slot = ret;
	return pci_device_add(vm->pci, &d->pdev, IVSHMEM_VENDOR, IVSHMEM_DEVICE, IVSHMEM_CLASS,
			      0x1af4, 0x1100);
}

int ivshmem_start(struct ivshmem *d)
{
	if (!d->client || d->thread_started)
		return 0;
	if (pthread_create(&d->thread, NULL, doorbell_thread, d) != 0)
		return -EAGAIN;
	d->thread_started = true;
	return 0;
}

void ivshmem_destroy(struct ivshmem *d)
{
	uint64_t one = 1;

	if (d->thread_started) {
		if (write(d->stop_fd, &one, sizeof(one)) < 0)
			log_warn("ivshmem %s: stopping its thread", d->name);
		pthread_join(d->thread, NULL);
		d->thread_started = false;
	}
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	d->stop_fd = -1;
}

static int connect_server(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "shm %s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		snprintf(err, errlen, "shm %s: connecting to the ivshmem server: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

/* The memory from an ivshmem server on connected socket sock (owned). */
static int open_from_server(const struct shm_config *sc, int sock, struct ivshmem_backing *b,
			    char *err, size_t errlen)
{
	struct ivshmem_client *c = malloc(sizeof(*c));
	char why[256];
	int ret;

	if (!c) {
		close(sock);
		return -ENOMEM;
	}
	ivshmem_client_init(c, sock, sc->vectors ? sc->vectors : 1);
	ret = ivshmem_client_handshake(c, IVSHMEM_HANDSHAKE_MS, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "shm %s: %s", sc->path, why);
		goto fail;
	}
	b->size = c->mem_size;
	if (sc->doorbell) {
		b->fd = c->mem_fd; /* the client keeps it; the backing only borrows it */
		b->client = c;
		return 0;
	}
	/* A plain device on a server's region: the memory, not the connection. */
	b->fd = fcntl(c->mem_fd, F_DUPFD_CLOEXEC, 0);
	ret = b->fd < 0 ? -errno : 0;
	if (ret < 0)
		snprintf(err, errlen, "shm %s: %s", sc->path, strerror(-ret));
fail:
	ivshmem_client_destroy(c);
	free(c);
	return ret;
}

int ivshmem_backing_open(const struct shm_config *sc, struct ivshmem_backing *b, char *err,
			 size_t errlen)
{
	struct stat st;
	int fd, ret;

	*b = (struct ivshmem_backing){.fd = -1};
	if (sc->vectors > IVSHMEM_MAX_VECTORS) {
		snprintf(err, errlen, "shm %s: %u vectors, at most %u", sc->path, sc->vectors,
			 IVSHMEM_MAX_VECTORS);
		return -EINVAL;
	}
	if (passed_fd(sc->path) < 0 && stat(sc->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		fd = connect_server(sc->path, err, errlen);
		if (fd < 0)
			return fd;
	} else {
		/* A passed descriptor of a socket is a connection domusd made for the domain. */
		fd = passed_fd(sc->path) >= 0 ? passed_open(sc->path, O_RDWR)
					      : open(sc->path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "shm %s: %s", sc->path, strerror(errno));
			return ret;
		}
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "shm %s: %s", sc->path, strerror(errno));
		close(fd);
		return ret;
	}
	if (S_ISSOCK(st.st_mode)) {
		if ((ret = open_from_server(sc, fd, b, err, errlen)) < 0)
			return ret;
	} else if (S_ISREG(st.st_mode)) {
		if (sc->doorbell) {
			snprintf(err, errlen,
				 "shm %s: doorbell=1 needs an ivshmem server's socket, not a file",
				 sc->path);
			close(fd);
			return -EINVAL;
		}
		b->fd = fd;
		b->size = (uint64_t)st.st_size;
	} else {
		snprintf(err, errlen, "shm %s: neither a file nor an ivshmem server's socket", sc->path);
		close(fd);
		return -EINVAL;
	}
	ret = 0;
	if (sc->size && sc->size != b->size) {
		snprintf(err, errlen, "shm %s: size %llu does not match the memory's %llu bytes",
			 sc->path, (unsigned long long)sc->size, (unsigned long long)b->size);
		ret = -EINVAL;
	} else if (b->size < 4096 || (b->size & (b->size - 1))) {
		/* A BAR's size is a power of two; rounding up would map past the file's end. */
		snprintf(err, errlen,
			 "shm %s: %llu bytes is not a power of two of 4 KiB or more (a PCI BAR's size)",
			 sc->path, (unsigned long long)b->size);
		ret = -EINVAL;
	}
	if (ret < 0)
		ivshmem_backing_close(b);
	return ret;
}

void ivshmem_backing_close(struct ivshmem_backing *b)
{
	if (b->client) {
		ivshmem_client_destroy(b->client); /* closes the memory's fd too */
		free(b->client);
	} else if (b->fd >= 0) {
		close(b->fd);
	}
	*b = (struct ivshmem_backing){.fd = -1};
}
