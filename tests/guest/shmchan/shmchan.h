/*
 * shmchan: a two-party message channel for guests over an ivshmem-doorbell
 * region (as libvchan is for Xen's granted pages and event channels).
 *
 * The device (PCI 1af4:1110, QEMU's ivshmem spec) gives each guest:
 *   BAR0  registers: 0x00 IntrMask, 0x04 IntrStatus (read clears),
 *         0x08 IVPosition (our peer ID), 0x0c Doorbell ((peer << 16) | vector)
 *   BAR2  the shared memory, the same bytes in every peer.
 * A doorbell reaches user space through uio_pci_generic (legacy INTx): the
 * device raises INTx when IntrStatus & IntrMask is non-zero. QEMU's own
 * ivshmem-doorbell only signals through MSI-X and has no INTx line, which
 * uio cannot take: against QEMU the channel takes MSI-X through vfio-pci
 * where the guest has an IOMMU (SHMCHAN_WAIT_VFIO), else it polls
 * (SHMCHAN_WAIT_POLL); SHMCHAN_WAIT_AUTO picks the first that works.
 *
 * Layout of the region (every field little-endian, offsets from BAR2):
 *
 *   0x0000 u32 magic       SHMCHAN_MAGIC ("SHMC"), written last by the server
 *   0x0004 u32 version     SHMCHAN_VERSION
 *   0x0008 u32 ring_size   bytes of data per ring: a power of two, >= 64,
 *                          and 0x1000 + 2 * ring_size <= the region's size
 *   0x000c u32 server_id   the server's IVPosition
 *   0x0010 u32 client_id   the client's IVPosition; SHMCHAN_NO_PEER until a
 *                          client attached
 *   0x0100 ring 0 control  server -> client
 *   0x0180 ring 1 control  client -> server
 *   0x1000 ring 0 data     [ring_size]
 *   0x1000 + ring_size     ring 1 data [ring_size]
 *
 * A ring's control block (128 bytes; each side's fields on its own cache line):
 *   +0x00 u32 prod            producer's index (free-running, mod 2^32)
 *   +0x04 u32 writer_waiting  1 while the producer sleeps for space
 *   +0x40 u32 cons            consumer's index (free-running, mod 2^32)
 *   +0x44 u32 reader_waiting  1 while the consumer sleeps for data
 * A ring holds records at (index mod ring_size): a u32 length, then that
 * many bytes, padded to a multiple of 4; a record may wrap past the end of
 * the data. prod - cons is the bytes in use. A message is at most
 * ring_size - 4 bytes; a zero-length message is allowed.
 *
 * Who is who: the server writes magic 0, fills in version, ring_size and
 * server_id, empties the rings, then stores client_id = SHMCHAN_NO_PEER
 * and the magic (both release). The client waits for the magic and a free
 * client_id, checks the header, claims client_id with its ID (compare and
 * swap from SHMCHAN_NO_PEER) and rings the server's doorbell; the server
 * waits for client_id. A header serves one session: a client finding
 * client_id taken waits for a server to lay the region out again, so a
 * server and a client can run one session after another on a region.
 *
 * Notification: after publishing prod (or cons) a side rings the peer's
 * doorbell (vector 0) when the peer's reader_waiting (or writer_waiting) is
 * set. A side that found the ring empty (or full) sets its flag, re-checks,
 * then sleeps; a full fence on both sides between the index store and the
 * flag load (and the flag store and the index load) means one of them sees
 * the other, so no wake-up is lost. A doorbell the device drops (the spec
 * allows it while a peer is setting up) costs at most SHMCHAN_RECHECK_MS.
 *
 * The peer is not trusted: every index and length read from the region is
 * read once into a local and checked before use; a side never reads back its
 * own index from the region. A broken ring gives -EPROTO, with the reason in
 * shmchan_ring.broken, and never an access outside the region.
 */
#ifndef SHMCHAN_H
#define SHMCHAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHMCHAN_MAGIC 0x434d4853u /* "SHMC" */
#define SHMCHAN_VERSION 1u
#define SHMCHAN_NO_PEER 0xffffffffu
#define SHMCHAN_DATA_OFF 0x1000u
#define SHMCHAN_RING_MIN 64u
/* The largest ring a server makes: bigger buys no throughput. */
#define SHMCHAN_RING_MAX (1u << 20)
/* How long a wait sleeps before looking at the ring again anyway. */
#define SHMCHAN_RECHECK_MS 100

struct shmchan_ring_ctrl {
	_Atomic uint32_t prod;
	_Atomic uint32_t writer_waiting;
	uint32_t pad0[14];
	_Atomic uint32_t cons;
	_Atomic uint32_t reader_waiting;
	uint32_t pad1[14];
};

struct shmchan_hdr {
	_Atomic uint32_t magic;
	uint32_t version;
	uint32_t ring_size;
	uint32_t server_id;
	_Atomic uint32_t client_id;
	uint32_t pad[59];
	struct shmchan_ring_ctrl ring[2];
};

_Static_assert(sizeof(struct shmchan_ring_ctrl) == 128, "ring control block is 128 bytes");
_Static_assert(sizeof(struct shmchan_hdr) == 0x200, "rings' control at 0x100 and 0x180");

/* One direction of the channel, as one side sees it. */
struct shmchan_ring {
	struct shmchan_ring_ctrl *ctrl; /* shared */
	uint8_t *data;                  /* shared, size bytes */
	uint32_t size;                  /* local: never re-read from the region */
	uint32_t pos;                   /* local copy of our own index */
	bool producer;
	const char *broken; /* why the peer's ring is unusable, or NULL */
};

/*
 * Ring operations on shared memory alone (no device): the unit tests run
 * them over a plain buffer.
 */
/* Sends a message: 0; -EAGAIN when it does not fit now; -EMSGSIZE when it
 * never fits; -EPROTO when the peer broke the ring. *notify says whether the
 * consumer sleeps and wants a doorbell. */
int shmchan_ring_send(struct shmchan_ring *r, const void *msg, size_t len, bool *notify);
/* Receives a message into buf: its length; -EAGAIN when the ring is empty;
 * -EMSGSIZE when it is longer than cap (it stays in the ring); -EPROTO when
 * the peer broke the ring. *notify says whether the producer sleeps and
 * wants a doorbell. */
ssize_t shmchan_ring_recv(struct shmchan_ring *r, void *buf, size_t cap, bool *notify);
/* Says (or stops saying) that this side sleeps on the ring: reader_waiting
 * for a consumer, writer_waiting for a producer. Followed by a full fence. */
void shmchan_ring_set_waiting(struct shmchan_ring *r, bool waiting);

/* Both directions and the two IDs: what a side knows of a set-up channel. */
struct shmchan_link {
	struct shmchan_hdr *hdr;
	size_t mem_size;
	uint32_t self_id, peer_id;
	bool server;
	struct shmchan_ring tx, rx;
};

/* Server: lays out the header and rings in mem (mem_size bytes) with the
 * biggest ring that fits (at most SHMCHAN_RING_MAX): 0 or -ENOSPC. */
int shmchan_link_init(struct shmchan_link *l, void *mem, size_t mem_size, uint32_t self_id);
/* Server: whether a client attached: 0 (peer_id set), -EAGAIN (not yet),
 * -EPROTO (its ID is not a peer ID, or ours). */
int shmchan_link_accept(struct shmchan_link *l);
/* Client: attaches to the header a server laid out: 0 (peer_id is the
 * server's), -EAGAIN (no magic yet, or the client slot is taken),
 * -EPROTONOSUPPORT (other version), -EPROTO (bad ring size or server ID). */
int shmchan_link_attach(struct shmchan_link *l, void *mem, size_t mem_size, uint32_t self_id);

/*
 * The device and the blocking channel.
 */
enum shmchan_wait {
	SHMCHAN_WAIT_AUTO, /* UIO with INTx, else VFIO with an IOMMU, else POLL */
	SHMCHAN_WAIT_UIO,  /* doorbells through uio_pci_generic (INTx) */
	SHMCHAN_WAIT_VFIO, /* doorbells through vfio-pci (MSI-X vector 0 as an eventfd) */
	SHMCHAN_WAIT_POLL, /* no interrupts: spin, then nap */
};

struct shmchan_opts {
	const char *bdf; /* "0000:00:04.0", or NULL: the first 1af4:1110 */
	enum shmchan_wait wait;
};

struct shmchan;

/* Finds and opens the device (binding uio_pci_generic or vfio-pci), maps its
 * registers and memory, reads its ID: 0 or -errno; *err names what failed. */
int shmchan_open(struct shmchan **out, const struct shmchan_opts *opts, const char **err)
	__attribute__((warn_unused_result));
/* Lays out the channel and waits up to timeout_ms (-1: forever) for a
 * client: 0, -ETIMEDOUT, or -errno. */
/*
 * A send or receive that waits timeout_ms (0: forever, the default) with
 * the ring not moving gives up with -ETIMEDOUT: the peer is gone or stuck.
 */
void shmchan_set_idle_timeout(struct shmchan *ch, int timeout_ms);
int shmchan_serve(struct shmchan *ch, int timeout_ms);
/* Waits up to timeout_ms (-1: forever) for a server's header, attaches and
 * rings the server: 0, -ETIMEDOUT, or -errno. */
int shmchan_connect(struct shmchan *ch, int timeout_ms);
/* Blocking send and receive: as shmchan_ring_send/recv without -EAGAIN. */
int shmchan_send(struct shmchan *ch, const void *msg, size_t len);
ssize_t shmchan_recv(struct shmchan *ch, void *buf, size_t cap);
/* Non-blocking: -EAGAIN when they would block. */
int shmchan_try_send(struct shmchan *ch, const void *msg, size_t len);
ssize_t shmchan_try_recv(struct shmchan *ch, void *buf, size_t cap);
/* The fd to poll for POLLIN (the uio device or vfio's eventfd), or -1
 * when polling; after it
 * is readable, shmchan_ack() takes the interrupt and re-enables it, then
 * try_recv/try_send. */
int shmchan_fd(const struct shmchan *ch);
int shmchan_ack(struct shmchan *ch);
/* How it waits (which way SHMCHAN_WAIT_AUTO went), the biggest message,
 * our ID, the peer's ID, why the ring broke (or NULL). */
enum shmchan_wait shmchan_wait_mode(const struct shmchan *ch);
size_t shmchan_max_msg(const struct shmchan *ch);
uint32_t shmchan_self_id(const struct shmchan *ch);
uint32_t shmchan_peer_id(const struct shmchan *ch);
const char *shmchan_broken(const struct shmchan *ch);
/* The raw region (its size in *size) and any doorbell, for tests that play
 * a hostile peer. */
void *shmchan_region(const struct shmchan *ch, size_t *size);
void shmchan_doorbell(struct shmchan *ch, uint16_t peer, uint16_t vector);
void shmchan_close(struct shmchan *ch);

#endif
