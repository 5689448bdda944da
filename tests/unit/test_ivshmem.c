/*
 * ivshmem: the register model (QEMU's ivshmem-spec.txt, revision 1), INTx
 * and MSI-X, BAR2 following the guest, and the server protocol's client
 * against a fake server written from the spec over a socketpair.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/ivshmem.h"
#include "vmm/config.h"
#include "vmm/vm.h"

#define MEM_SIZE 0x10000

static _Atomic int irq_levels[24]; /* the doorbell thread sets them too */

static void record_irq(void *opaque, unsigned gsi, int level)
{
	assert_true(gsi < 24);
	irq_levels[gsi] = level;
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* The fake server's side: one message, the value little-endian, with fd if >= 0. */
static void send_msg(int sock, int64_t value, int fd)
{
	uint8_t buf[8];
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = 8};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)((uint64_t)value >> (8 * i));
	if (fd >= 0) {
		struct cmsghdr *cm;
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.b;
		msg.msg_controllen = sizeof(control.b);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &msg, 0), 8);
}

static int memfd_of(uint64_t size)
{
	int fd = memfd_create("ivshmem-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

struct fake {
	int server; /* the server's end */
	struct ivshmem_client c;
	int peer_fds[2]; /* the server's copies of peer 1's vectors */
	int own_fds[2];  /* and of the client's own */
};

/* A client with ID 3 and 2 vectors; peer 1 (2 vectors) was there before it. */
static void fake_join(struct fake *f)
{
	int sv[2], mem;
	char err[256];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->server = sv[0];
	ivshmem_client_init(&f->c, sv[1], 2);
	mem = memfd_of(MEM_SIZE);
	send_msg(f->server, 0, -1);
	send_msg(f->server, 3, -1);
	send_msg(f->server, -1, mem);
	close(mem);
	for (int i = 0; i < 2; i++) {
		f->peer_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		send_msg(f->server, 1, f->peer_fds[i]);
	}
	for (int i = 0; i < 2; i++) {
		f->own_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		send_msg(f->server, 3, f->own_fds[i]);
	}
	assert_int_equal(ivshmem_client_handshake(&f->c, 2000, err, sizeof(err)), 0);
	assert_int_equal(f->c.state, IVSHMEM_READY);
	assert_int_equal(f->c.id, 3);
	assert_int_equal(f->c.mem_size, MEM_SIZE);
	/* The rest as the device thread would read it. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(ivshmem_client_read(&f->c, err, sizeof(err)), 0);
}

static void fake_destroy(struct fake *f)
{
	ivshmem_client_destroy(&f->c);
	if (f->server >= 0)
		close(f->server);
	for (int i = 0; i < 2; i++) {
		close(f->peer_fds[i]);
		close(f->own_fds[i]);
	}
}

static uint64_t eventfd_take(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static void test_protocol_join_and_leave(void **state)
{
	unsigned fds_before = open_fds();
	struct fake f;
	char err[256];
	int extra;

	fake_join(&f);
	assert_int_equal(f.c.nown, 2);
	/* Ringing peer 1's vectors writes the eventfds the server gave out. */
	assert_int_equal(ivshmem_client_ring(&f.c, 1, 1), 0);
	assert_int_equal(eventfd_take(f.peer_fds[1]), 1);
	assert_int_equal(eventfd_take(f.peer_fds[0]), 0);
	/* The own ID rings this client. */
	assert_int_equal(ivshmem_client_ring(&f.c, 3, 0), 0);
	assert_int_equal(eventfd_take(f.own_fds[0]), 1);
	/* No such peer, no such vector: ignored. */
	assert_int_equal(ivshmem_client_ring(&f.c, 2, 0), -ENOENT);
	assert_int_equal(ivshmem_client_ring(&f.c, 1, 2), -ENOENT);
	assert_int_equal(ivshmem_client_ring(&f.c, 65535, 0xffff), -ENOENT);
	/* A vector past the configured ones is closed, as the spec says. */
	extra = eventfd(0, EFD_CLOEXEC);
	send_msg(f.server, 1, extra);
	close(extra);
	assert_int_equal(ivshmem_client_read(&f.c, err, sizeof(err)), 0);
	assert_int_equal(ivshmem_client_ring(&f.c, 1, 2), -ENOENT);
	/* A new peer joins, with one vector. */
	extra = eventfd(0, EFD_CLOEXEC);
	send_msg(f.server, 7, extra);
	assert_int_equal(ivshmem_client_read(&f.c, err, sizeof(err)), 0);
	assert_int_equal(ivshmem_client_ring(&f.c, 7, 0), 0);
	assert_int_equal(eventfd_take(extra), 1);
	close(extra);
	/* Peer 1 leaves; an unknown peer leaving is nothing. */
	send_msg(f.server, 1, -1);
	send_msg(f.server, 42, -1);
	assert_int_equal(ivshmem_client_read(&f.c, err, sizeof(err)), 0);
	assert_int_equal(ivshmem_client_read(&f.c, err, sizeof(err)), 0);
	assert_int_equal(ivshmem_client_ring(&f.c, 1, 0), -ENOENT);
	assert_int_equal(ivshmem_client_ring(&f.c, 7, 0), 0);
	/* Nothing more there: no error, no wait. */
	assert_int_equal(ivshmem_client_read(&f.c, err, sizeof(err)), 0);
	/* The server goes away: the connection ends, the memory stays. */
	close(f.server);
	f.server = -1;
	assert_int_equal(ivshmem_client_read(&f.c, err, sizeof(err)), -EPIPE);
	assert_non_null(strstr(err, "closed the connection"));
	ivshmem_client_close(&f.c);
	assert_true(f.c.mem_fd >= 0);
	assert_int_equal(ivshmem_client_ring(&f.c, 7, 0), -ENOENT);
	fake_destroy(&f);
	assert_int_equal(open_fds(), fds_before);
}

/* Byte by byte: a stream may split messages anywhere. */
static void test_protocol_split_messages(void **state)
{
	struct ivshmem_client c;
	int sv[2], mem = memfd_of(MEM_SIZE);
	char err[256];
	uint8_t zeros[8] = {0}, id[8] = {5};

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ivshmem_client_init(&c, sv[1], 1);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(write(sv[0], zeros + i, 1), 1);
		assert_int_equal(ivshmem_client_read(&c, err, sizeof(err)), 0);
	}
	assert_int_equal(c.state, IVSHMEM_WANT_ID);
	assert_int_equal(write(sv[0], id, 3), 3);
	assert_int_equal(ivshmem_client_read(&c, err, sizeof(err)), 0);
	assert_int_equal(write(sv[0], id + 3, 5), 5);
	assert_int_equal(ivshmem_client_read(&c, err, sizeof(err)), 0);
	assert_int_equal(c.id, 5);
	send_msg(sv[0], -1, mem);
	assert_int_equal(ivshmem_client_handshake(&c, 2000, err, sizeof(err)), 0);
	close(mem);
	close(sv[0]);
	ivshmem_client_destroy(&c);
}

/* A hostile server: every kind of wrong message ends the connection with a clear error. */
struct hostile_case {
	const char *what;
	int64_t values[4];
	int fdkinds[4]; /* 0 none, 1 memfd, 2 eventfd, 3 pipe, 4 empty memfd, 5 two eventfds */
	unsigned n;
	int ret;
	const char *msg;
};

static int fd_of_kind(int kind, int *second)
{
	int p[2], fd;

	*second = -1;
	switch (kind) {
	case 1:
		return memfd_of(MEM_SIZE);
	case 2:
		return eventfd(0, EFD_CLOEXEC);
	case 3:
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		close(p[0]);
		return p[1];
	case 4:
		return memfd_of(0);
	case 5:
		fd = eventfd(0, EFD_CLOEXEC);
		*second = eventfd(0, EFD_CLOEXEC);
		return fd;
	default:
		return -1;
	}
}

static void send_two(int sock, int64_t value, int a, int b)
{
	uint8_t buf[8] = {0};
	int fds[2] = {a, b};
	union {
		struct cmsghdr align;
		char c[CMSG_SPACE(2 * sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = 8};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.c,
			     .msg_controllen = sizeof(control.c)};
	struct cmsghdr *cm;

	memset(&control, 0, sizeof(control));
	memcpy(buf, &value, 8);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	assert_int_equal(sendmsg(sock, &msg, 0), 8);
}

static void test_protocol_hostile(void **state)
{
	static const struct hostile_case cases[] = {
		{"version 1", {1}, {0}, 1, -EPROTONOSUPPORT, "protocol version 1, not 0"},
		{"version with an fd", {0}, {2}, 1, -EPROTO, "carries a descriptor"},
		{"ID out of range", {0, 65536}, {0}, 2, -EPROTO, "own ID 65536 is out of range"},
		{"negative ID", {0, -2}, {0}, 2, -EPROTO, "out of range"},
		{"ID with an fd", {0, 1}, {0, 2}, 2, -EPROTO, "carries a descriptor"},
		{"memory without fd", {0, 1, -1}, {0}, 3, -EPROTO, "expected -1 with the shared memory"},
		{"memory with a wrong value", {0, 1, 7}, {0, 0, 1}, 3, -EPROTO, "expected -1"},
		{"memory that is a pipe", {0, 1, -1}, {0, 0, 3}, 3, -EPROTO, "not a non-empty file"},
		{"memory that is empty", {0, 1, -1}, {0, 0, 4}, 3, -EPROTO, "not a non-empty file"},
		{"memory that is an eventfd", {0, 1, -1}, {0, 0, 2}, 3, -EPROTO, "not a non-empty file"},
		{"peer fd that is a pipe", {0, 1, -1, 2}, {0, 0, 1, 3}, 4, -EPROTO, "not an eventfd"},
		{"peer fd that is a memfd", {0, 1, -1, 2}, {0, 0, 1, 1}, 4, -EPROTO, "not an eventfd"},
		{"peer ID out of range", {0, 1, -1, 70000}, {0, 0, 1, 2}, 4, -EPROTO, "peer ID 70000"},
		{"a second memory", {0, 1, -1, -1}, {0, 0, 1, 1}, 4, -EPROTO, "peer ID -1"},
		{"told it left itself", {0, 1, -1, 1}, {0, 0, 1, 0}, 4, -EPROTO, "that it left"},
		{"two fds at once", {0, 1, -1, 2}, {0, 0, 1, 5}, 4, -EPROTO, "2 descriptors"},
	};
	unsigned fds_before = open_fds();

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct hostile_case *hc = &cases[k];
		struct ivshmem_client c;
		int sv[2], ret = 0;
		char err[256] = "";

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		ivshmem_client_init(&c, sv[1], 1);
		for (unsigned i = 0; i < hc->n; i++) {
			int second, fd = fd_of_kind(hc->fdkinds[i], &second);
			if (second >= 0)
				send_two(sv[0], hc->values[i], fd, second);
			else
				send_msg(sv[0], hc->values[i], fd);
			if (fd >= 0)
				close(fd);
			if (second >= 0)
				close(second);
		}
		for (unsigned i = 0; i < hc->n && ret == 0; i++)
			ret = ivshmem_client_read(&c, err, sizeof(err));
		if (ret != hc->ret || !strstr(err, hc->msg))
			fail_msg("%s: got %d '%s', wanted %d '%s'", hc->what, ret, err, hc->ret, hc->msg);
		ivshmem_client_close(&c);
		ivshmem_client_destroy(&c);
		close(sv[0]);
	}
	/* Every descriptor a hostile server sent was closed. */
	assert_int_equal(open_fds(), fds_before);
}

static void test_protocol_disconnects(void **state)
{
	struct ivshmem_client c;
	int sv[2];
	char err[256];
	uint8_t half[3] = {0};

	/* Midway through a message. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ivshmem_client_init(&c, sv[1], 1);
	assert_int_equal(write(sv[0], half, 3), 3);
	close(sv[0]);
	assert_int_equal(ivshmem_client_read(&c, err, sizeof(err)), 0);
	assert_int_equal(ivshmem_client_read(&c, err, sizeof(err)), -EPIPE);
	assert_non_null(strstr(err, "in the middle of a message"));
	ivshmem_client_destroy(&c);

	/* Before the memory came: the handshake fails, it does not hang. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ivshmem_client_init(&c, sv[1], 1);
	send_msg(sv[0], 0, -1);
	close(sv[0]);
	assert_int_equal(ivshmem_client_handshake(&c, 2000, err, sizeof(err)), -EPIPE);
	ivshmem_client_destroy(&c);

	/* A silent server: the handshake gives up in time. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ivshmem_client_init(&c, sv[1], 1);
	assert_int_equal(ivshmem_client_handshake(&c, 50, err, sizeof(err)), -ETIMEDOUT);
	assert_non_null(strstr(err, "no shared memory within 50 ms"));
	ivshmem_client_destroy(&c);
	close(sv[0]);
}

/* More peers than the table holds: the extra ones are ignored, the others still work. */
static void test_protocol_too_many_peers(void **state)
{
	struct fake f;
	char err[256];

	fake_join(&f);
	for (int id = 100; id < 100 + IVSHMEM_MAX_PEERS; id++) {
		int fd = eventfd(0, EFD_CLOEXEC);
		send_msg(f.server, id, fd);
		close(fd);
		err[0] = 0;
		assert_int_equal(ivshmem_client_read(&f.c, err, sizeof(err)), 0);
	}
	assert_non_null(strstr(err, "more than 64 peers"));
	assert_int_equal(ivshmem_client_ring(&f.c, 1, 0), 0);
	assert_int_equal(ivshmem_client_ring(&f.c, 100 + IVSHMEM_MAX_PEERS - 1, 0), -ENOENT);
	fake_destroy(&f);
}

/* A VM without KVM: the PCI bus, and an interrupt controller that records levels. */
struct rig {
	struct vm vm;
	struct pci_bus pci;
	struct ivshmem dev;
	uint8_t *mem;
};

static void rig_init(struct rig *r, struct ivshmem_client *client)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 24; i++)
		irq_levels[i] = 0;
	r->vm.vm_fd = -1;
	r->vm.pci = &r->pci;
	assert_int_equal(pci_bus_init(&r->pci, &r->vm.pio, &r->vm.mmio), 0);
	r->pci.set_irq = record_irq;
	r->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(r->mem != MAP_FAILED);
	assert_int_equal(ivshmem_add(&r->vm, &r->dev, "test", r->mem, MEM_SIZE, client), 0);
}

static void rig_destroy(struct rig *r)
{
	ivshmem_destroy(&r->dev);
	munmap(r->mem, MEM_SIZE);
}

static uint32_t reg_read(struct rig *r, unsigned off)
{
	uint32_t v = 0xdeadbeef;

	r->dev.pdev.ops->bar_read(&r->dev.pdev, IVSHMEM_REGS_BAR, off, &v, 4);
	return v;
}

static void reg_write(struct rig *r, unsigned off, uint32_t v)
{
	r->dev.pdev.ops->bar_write(&r->dev.pdev, IVSHMEM_REGS_BAR, off, &v, 4);
}

static unsigned gsi_of(struct rig *r)
{
	return pci_intx_gsi(r->dev.pdev.slot, 1);
}

static void test_plain_identity(void **state)
{
	struct rig r;
	struct pci_device *p;

	rig_init(&r, NULL);
	p = &r.dev.pdev;
	assert_int_equal(pci_config_read(p, PCI_VENDOR_ID, 4), 0x11101af4);
	assert_int_equal(pci_config_read(p, PCI_REVISION_ID, 1), 1);
	assert_int_equal(pci_config_read(p, PCI_REVISION_ID, 4) >> 8, 0x050000);
	assert_int_equal(pci_config_read(p, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
	assert_int_equal(pci_config_read(p, PCI_INTERRUPT_PIN, 1), 1);
	/* BAR0 32-bit memory, no BAR1 (no MSI-X), BAR2 64-bit prefetchable of the region's size. */
	assert_int_equal(pci_config_read(p, PCI_BAR0, 4) & 0xf, 0);
	assert_int_equal(pci_config_read(p, PCI_BAR0 + 4, 4), 0);
	assert_int_equal(pci_config_read(p, PCI_BAR0 + 8, 4) & 0xf, 0xc);
	pci_config_write(p, PCI_BAR0 + 8, 4, 0xffffffff);
	assert_int_equal(pci_config_read(p, PCI_BAR0 + 8, 4), (uint32_t)~(MEM_SIZE - 1) | 0xc);
	assert_false(pci_config_read(p, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* IVPosition: 0 without interrupts; it is read-only. */
	assert_int_equal(reg_read(&r, IVSHMEM_REG_IV_POSITION), 0);
	reg_write(&r, IVSHMEM_REG_IV_POSITION, 9);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_IV_POSITION), 0);
	/* Doorbell of a plain device: ignored, counted. */
	reg_write(&r, IVSHMEM_REG_DOORBELL, 0x00010000);
	assert_int_equal(r.dev.ignored_doorbells, 1);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_DOORBELL), 0); /* write-only */
	/* Sizes other than a power of two of 4 KiB or more are refused. */
	{
		struct ivshmem other;
		assert_int_equal(ivshmem_add(&r.vm, &other, "bad", r.mem, 3 * 4096, NULL), -EINVAL);
		assert_int_equal(ivshmem_add(&r.vm, &other, "bad", r.mem, 2048, NULL), -EINVAL);
	}
	rig_destroy(&r);
}

static void test_intr_registers(void **state)
{
	struct rig r;
	unsigned gsi;

	rig_init(&r, NULL);
	gsi = gsi_of(&r);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_MASK), 0);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_STATUS), 0);
	/* Status without mask: no INTx. */
	reg_write(&r, IVSHMEM_REG_INTR_STATUS, 1);
	assert_int_equal(irq_levels[gsi], 0);
	/* Mask it in: asserted; PCI status bit 3 shows it. */
	reg_write(&r, IVSHMEM_REG_INTR_MASK, 0xffffffff);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_MASK), 0xffffffff);
	assert_int_equal(irq_levels[gsi], 1);
	assert_true(pci_config_read(&r.dev.pdev, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* PCI 2.3 masking (what uio_pci_generic does): Interrupt Disable drops the line only. */
	pci_config_write(&r.dev.pdev, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	assert_int_equal(irq_levels[gsi], 0);
	assert_true(pci_config_read(&r.dev.pdev, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_config_write(&r.dev.pdev, PCI_COMMAND, 2, 0);
	assert_int_equal(irq_levels[gsi], 1);
	/* Reading IntrStatus acknowledges it: the value, then 0, and the line drops. */
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_STATUS), 1);
	assert_int_equal(irq_levels[gsi], 0);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_STATUS), 0);
	/* An incoming doorbell without MSI-X sets status 1. */
	ivshmem_interrupt(&r.dev, 0);
	assert_int_equal(irq_levels[gsi], 1);
	/* Masked out: the line drops, the status stays. */
	reg_write(&r, IVSHMEM_REG_INTR_MASK, 0);
	assert_int_equal(irq_levels[gsi], 0);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_STATUS), 1);
	/* Odd widths and offsets read 0 and change nothing. */
	{
		uint16_t v16 = 0xffff;
		r.dev.pdev.ops->bar_read(&r.dev.pdev, IVSHMEM_REGS_BAR, 0, &v16, 2);
		assert_int_equal(v16, 0);
		assert_int_equal(reg_read(&r, 0x10), 0);
		assert_int_equal(reg_read(&r, 0xffc), 0);
	}
	rig_destroy(&r);
}

/* BAR2 is a memory slot that follows the BAR and memory decoding; MMIO reaches it meanwhile. */
static void test_bar2_follows(void **state)
{
	struct rig r;
	struct pci_device *p;
	uint64_t base;
	uint32_t v = 0x12345678, back = 0;

	rig_init(&r, NULL);
	p = &r.dev.pdev;
	base = pci_bar_address(p, IVSHMEM_MEM_BAR);
	assert_int_equal(r.dev.mapped_gpa, 0); /* decoding off at reset */
	pci_config_write(p, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(r.dev.mapped_gpa, base);
	/* Decoding off for sizing, as Linux does: unmapped; back on at a new place: there. */
	pci_config_write(p, PCI_COMMAND, 2, 0);
	assert_int_equal(r.dev.mapped_gpa, 0);
	pci_config_write(p, PCI_BAR0 + 8, 4, 0xe8000000);
	pci_config_write(p, PCI_BAR0 + 12, 4, 0);
	assert_int_equal(r.dev.mapped_gpa, 0);
	pci_config_write(p, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(r.dev.mapped_gpa, 0xe8000000);
	/* Moved while decoding: follows. */
	pci_config_write(p, PCI_BAR0 + 8, 4, 0xe9000000);
	assert_int_equal(r.dev.mapped_gpa, 0xe9000000);
	/* An access that exits anyway (no slot) lands in the region, bounded. */
	assert_true(bus_dispatch(&r.vm.mmio, 0xe9000000 + 0x100, &v, 4, true));
	assert_int_equal(memcmp(r.mem + 0x100, &v, 4), 0);
	r.mem[MEM_SIZE - 1] = 0x5a;
	assert_true(bus_dispatch(&r.vm.mmio, 0xe9000000 + MEM_SIZE - 1, &back, 1, false));
	assert_int_equal(back, 0x5a);
	rig_destroy(&r);
}

/* Doorbell device on the fake server: IVPosition, outgoing and incoming doorbells, MSI-X. */
static void test_doorbell_device(void **state)
{
	struct fake f;
	struct rig r;
	struct pci_device *p;
	unsigned gsi;
	uint64_t one = 1;
	uint64_t pba;

	fake_join(&f);
	rig_init(&r, &f.c);
	p = &r.dev.pdev;
	gsi = gsi_of(&r);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_IV_POSITION), 3);
	/* An MSI-X capability with 2 vectors in BAR1. */
	assert_true(r.dev.msix_cap != 0);
	assert_int_equal(pci_config_read(p, r.dev.msix_cap, 1), PCI_CAP_ID_MSIX);
	assert_int_equal(pci_config_read(p, r.dev.msix_cap + 2, 2) & 0x7ff, 1);
	assert_int_equal(pci_config_read(p, r.dev.msix_cap + 4, 4), 0 | IVSHMEM_MSIX_BAR);
	assert_int_equal(pci_config_read(p, r.dev.msix_cap + 8, 4), IVSHMEM_MSIX_PBA_OFF | 1);
	/* Outgoing: peer 1, vector 1. */
	reg_write(&r, IVSHMEM_REG_DOORBELL, (1u << 16) | 1);
	assert_int_equal(eventfd_take(f.peer_fds[1]), 1);
	reg_write(&r, IVSHMEM_REG_DOORBELL, (9u << 16) | 0); /* nobody */
	assert_int_equal(r.dev.ignored_doorbells, 1);
	/* Incoming without MSI-X: IntrStatus and INTx. */
	reg_write(&r, IVSHMEM_REG_INTR_MASK, 1);
	assert_int_equal(write(f.own_fds[1], &one, 8), 8);
	ivshmem_poll_once(&r.dev, 1000);
	assert_int_equal(irq_levels[gsi], 1);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_STATUS), 1);
	assert_int_equal(irq_levels[gsi], 0);
	/* With MSI-X on: the vector, never INTx; masked vectors wait in the PBA. */
	pci_config_write(p, r.dev.msix_cap + 3, 1, 0x80);
	assert_int_equal(write(f.own_fds[1], &one, 8), 8);
	ivshmem_poll_once(&r.dev, 1000);
	assert_int_equal(irq_levels[gsi], 0);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_STATUS), 0);
	pba = 0;
	p->ops->bar_read(p, IVSHMEM_MSIX_BAR, IVSHMEM_MSIX_PBA_OFF, &pba, 8);
	assert_int_equal(pba, 2);
	/* Unmasking vector 1 delivers it: the pending bit clears. */
	{
		uint32_t ctrl = 0;
		p->ops->bar_write(p, IVSHMEM_MSIX_BAR, 16 + 12, &ctrl, 4);
	}
	p->ops->bar_read(p, IVSHMEM_MSIX_BAR, IVSHMEM_MSIX_PBA_OFF, &pba, 8);
	assert_int_equal(pba, 0);
	/* A peer joining while the guest runs: the thread's read takes it. */
	{
		int fd = eventfd(0, EFD_CLOEXEC);
		send_msg(f.server, 12, fd);
		ivshmem_poll_once(&r.dev, 1000);
		reg_write(&r, IVSHMEM_REG_DOORBELL, 12u << 16);
		assert_int_equal(eventfd_take(fd), 1);
		close(fd);
	}
	/* The server sends garbage: the connection ends, the memory and own vectors stay. */
	send_msg(f.server, 1, f.server); /* a socket is no eventfd */
	ivshmem_poll_once(&r.dev, 1000);
	assert_int_equal(f.c.state, IVSHMEM_CLOSED);
	assert_int_equal(f.c.sock, -1);
	reg_write(&r, IVSHMEM_REG_DOORBELL, (1u << 16) | 0);
	assert_int_equal(eventfd_take(f.peer_fds[0]), 0);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_IV_POSITION), 3);
	rig_destroy(&r);
	fake_destroy(&f);
}

/* Waits (bounded, 5 s) for cond to hold; what the device thread does is seen, not assumed. */
#define WAIT_FOR(cond)                                                                             \
	do {                                                                                       \
		int tries_ = 0;                                                                    \
		while (!(cond) && tries_++ < 5000)                                                 \
			nanosleep(&(struct timespec){0, 1000000}, NULL);                             \
		assert_true(cond);                                                                 \
	} while (0)

static int ring_peer1(struct fake *f)
{
	return ivshmem_client_ring(&f->c, 1, 0);
}

/* The device's own thread: incoming doorbells, a peer leaving, the server going, a clean stop. */
static void test_doorbell_thread(void **state)
{
	struct fake f;
	struct rig r;
	unsigned gsi;
	uint64_t one = 1;

	fake_join(&f);
	rig_init(&r, &f.c);
	gsi = gsi_of(&r);
	reg_write(&r, IVSHMEM_REG_INTR_MASK, 1);
	assert_int_equal(ivshmem_start(&r.dev), 0);
	assert_int_equal(write(f.own_fds[0], &one, 8), 8);
	WAIT_FOR(irq_levels[gsi] == 1);
	assert_int_equal(reg_read(&r, IVSHMEM_REG_INTR_STATUS), 1);
	assert_int_equal(irq_levels[gsi], 0);
	send_msg(f.server, 1, -1);
	WAIT_FOR(ring_peer1(&f) == -ENOENT);
	close(f.server);
	f.server = -1;
	WAIT_FOR(f.c.sock < 0);
	/* Still interrupted through its own vectors after the server went. */
	assert_int_equal(write(f.own_fds[1], &one, 8), 8);
	WAIT_FOR(irq_levels[gsi] == 1);
	rig_destroy(&r);
	assert_false(r.dev.thread_started);
	fake_destroy(&f);
}

/* The backing: a file whose size is not a power of two, or does not match size=, is refused. */
static void test_backing_open(void **state)
{
	char path[] = "/tmp/domus-ivshmem-XXXXXX", err[512] = "";
	struct shm_config sc = {.vectors = 1};
	struct ivshmem_backing b;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	strcpy(sc.path, path);
	assert_int_equal(ftruncate(fd, 3 * 4096), 0);
	assert_int_equal(ivshmem_backing_open(&sc, &b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a power of two"));
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	sc.size = 2 << 20;
	assert_int_equal(ivshmem_backing_open(&sc, &b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "does not match"));
	sc.doorbell = true;
	sc.size = 0;
	assert_int_equal(ivshmem_backing_open(&sc, &b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "doorbell=1 needs an ivshmem server"));
	sc.doorbell = false;
	sc.size = 1 << 20;
	assert_int_equal(ivshmem_backing_open(&sc, &b, err, sizeof(err)), 0);
	assert_int_equal(b.size, 1 << 20);
	assert_null(b.client);
	ivshmem_backing_close(&b);
	strcpy(sc.path, "/nonexistent/shm");
	assert_int_equal(ivshmem_backing_open(&sc, &b, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/shm"));
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol_join_and_leave),
		cmocka_unit_test(test_protocol_split_messages),
		cmocka_unit_test(test_protocol_hostile),
		cmocka_unit_test(test_protocol_disconnects),
		cmocka_unit_test(test_protocol_too_many_peers),
		cmocka_unit_test(test_plain_identity),
		cmocka_unit_test(test_intr_registers),
		cmocka_unit_test(test_bar2_follows),
		cmocka_unit_test(test_doorbell_device),
		cmocka_unit_test(test_doorbell_thread),
		cmocka_unit_test(test_backing_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
