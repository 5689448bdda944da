/*
 * ivshmem-plain and ivshmem-doorbell (QEMU's ivshmem-spec.txt, device
 * revision 1): memory shared with other domains or processes, as a PCI
 * BAR, and for doorbell devices interrupts to and from the other peers of
 * an ivshmem server.
 *
 *   vendor 0x1af4, device 0x1110, revision 1, class 0x0500 (RAM memory),
 *   subsystem 0x1af4/0x1100, INTx pin A.
 *   BAR0 (4 KiB, the spec's 256 bytes of registers, the rest reads 0):
 *     0x00 IntrMask     read/write
 *     0x04 IntrStatus   read/write; reading clears it
 *     0x08 IVPosition   read-only: own peer ID (doorbell), 0 (plain)
 *     0x0c Doorbell     write-only: bits 31..16 peer ID, 15..0 vector
 *   BAR1 (doorbell only, 4 KiB): MSI-X table at 0, PBA at 0x800.
 *   BAR2: the shared memory, 64-bit prefetchable, a KVM memory slot that
 *     follows the BAR wherever the guest puts it.
 *
 * An incoming doorbell for vector v raises MSI-X vector v while the guest
 * has MSI-X enabled; otherwise it sets IntrStatus to 1, and INTx is
 * asserted while IntrStatus & IntrMask is non-zero (as QEMU's device).
 */
#ifndef DOMUS_IVSHMEM_H
#define DOMUS_IVSHMEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/ivshmem_proto.h"
#include "vmm/pci.h"

#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define IVSHMEM_CLASS 0x050000
#define IVSHMEM_REVISION 1

#define IVSHMEM_REG_INTR_MASK 0x00
#define IVSHMEM_REG_INTR_STATUS 0x04
#define IVSHMEM_REG_IV_POSITION 0x08
#define IVSHMEM_REG_DOORBELL 0x0c

#define IVSHMEM_REGS_BAR 0
#define IVSHMEM_MSIX_BAR 1
#define IVSHMEM_MEM_BAR 2
#define IVSHMEM_MSIX_PBA_OFF 0x800

struct vm;
struct shm_config;

struct ivshmem_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl; /* ctrl bit 0: masked */
};

struct ivshmem {
	struct pci_device pdev;
	struct vm *vm;
	char name[64];
	pthread_mutex_t lock; /* the registers and MSI-X state */
	struct ivshmem_client *client; /* doorbell: the server connection (the resources'); NULL: plain */
	uint8_t *mem;
	uint64_t size;
	uint32_t intr_mask, intr_status;
	unsigned vectors;
	struct ivshmem_msix_entry msix[IVSHMEM_MAX_VECTORS];
	uint64_t msix_pending;
	unsigned msix_cap;
	/* BAR2's memory slot: where it is mapped now (0: not mapped). Changed under the bus lock. */
	int slot;
	uint64_t mapped_gpa;
	/* Doorbell: the thread that reads the server and the own eventfds. */
	pthread_t thread;
	bool thread_started;
	int stop_fd;
	unsigned long long ignored_doorbells;
};

/*
 * What a device is made of, opened before the VMM confines itself and kept
 * across the guest's reboots: the memory's descriptor and size, and for a
 * doorbell device the server connection.
 */
struct ivshmem_backing {
	int fd;        /* the shared memory (a file, /dev/shm object or the server's memfd); -1: none */
	uint64_t size; /* a power of two, 4 KiB or more */
	struct ivshmem_client *client; /* doorbell: the server connection; NULL: plain */
};

#define IVSHMEM_HANDSHAKE_MS 5000 /* how long a server may take to hand over the memory */

/*
 * Opens sc's memory. sc->path (or the descriptor "/dev/fd/N" naming) is
 * either a Unix socket, an ivshmem server's (the memory is the server's;
 * doorbell=1 keeps the connection for interrupts, doorbell=0 only takes the
 * memory), or a regular file mapped whole (plain only). The size must be a
 * power of two of 4 KiB or more (a PCI BAR's), and sc->size, when not 0,
 * must match it. 0, or -errno with what is wrong in err.
 */
int ivshmem_backing_open(const struct shm_config *sc, struct ivshmem_backing *b, char *err,
			 size_t errlen) __attribute__((warn_unused_result));
void ivshmem_backing_close(struct ivshmem_backing *b);

/*
 * Adds the device: mem (size bytes, a power of two >= 4096) mapped
 * MAP_SHARED by the caller, which unmaps it after ivshmem_destroy.
 * client: the server connection for a doorbell device (its handshake
 * done), NULL for a plain one. 0 or -errno.
 */
int ivshmem_add(struct vm *vm, struct ivshmem *d, const char *name, void *mem, uint64_t size,
		struct ivshmem_client *client) __attribute__((warn_unused_result));
/* Starts the doorbell thread (after the vCPUs may run). 0 or -errno. */
int ivshmem_start(struct ivshmem *d) __attribute__((warn_unused_result));
/* Stops the thread; the client and the memory stay the caller's. */
void ivshmem_destroy(struct ivshmem *d);

/* An incoming doorbell on vector v (the thread calls it; tests too). */
void ivshmem_interrupt(struct ivshmem *d, unsigned vector);
/*
 * One pass of the doorbell thread's work, without waiting: the server's
 * message if one is there, and the own eventfds that rang. Tests drive it.
 */
void ivshmem_poll_once(struct ivshmem *d, int timeout_ms);

#endif
