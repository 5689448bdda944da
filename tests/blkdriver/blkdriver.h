/*
 * A virtio-blk driver that speaks vhost-user itself, without a VM: its
 * "guest memory" is a memfd it shares with the back-end, it lays out one
 * split ring there and builds requests as a guest kernel would. Tests use
 * it to hand domus-blk good and hostile requests and check the answers;
 * bench/blk-iops uses it to measure domus-blk's requests per second.
 */
#ifndef DOMUS_BLKDRIVER_H
#define DOMUS_BLKDRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "vhost/frontend.h"
#include "vmm/guest_mem.h"

#define BLKDRV_T_IN 0
#define BLKDRV_T_OUT 1
#define BLKDRV_T_FLUSH 4
#define BLKDRV_T_GET_ID 8
#define BLKDRV_T_DISCARD 11
#define BLKDRV_S_OK 0
#define BLKDRV_S_IOERR 1
#define BLKDRV_S_UNSUPP 2
#define BLKDRV_STATUS_NONE 0xff /* not completed */

struct blkdrv {
	struct vhost_frontend fe;
	struct guest_mem mem;
	uint16_t qsize;
	unsigned slots;     /* requests in flight at most (three descriptors each) */
	size_t max_bytes;   /* data per request at most */
	int kick_fd, call_fd;
	uint64_t capacity;  /* sectors, from the config space */
	uint8_t config[60];
	uint16_t avail_idx, last_used;
};

/*
 * Connects to the back-end at socket, negotiates (features & the device's),
 * shares memory for `slots` requests of up to max_bytes each and starts
 * queue 0 of qsize. 0 or -errno with why in err.
 */
int blkdrv_open(struct blkdrv *d, const char *socket, uint64_t features, uint16_t qsize,
		unsigned slots, size_t max_bytes, char *err, size_t errlen);
void blkdrv_close(struct blkdrv *d);
/* The data buffer of a slot (max_bytes long), where reads land and writes come from. */
uint8_t *blkdrv_data(struct blkdrv *d, unsigned slot);
/*
 * Makes a request of slot available: a header (type, sector), len bytes of
 * data (device-writable for IN and GET_ID), a status byte. Does not kick.
 */
int blkdrv_submit(struct blkdrv *d, unsigned slot, uint32_t type, uint64_t sector, uint32_t len);
/* Makes a raw chain available: the caller wrote the descriptors of slot itself (hostile tests). */
void blkdrv_submit_head(struct blkdrv *d, uint16_t head);
/* The descriptor table, for tests that forge chains. */
struct virtq_desc *blkdrv_desc(struct blkdrv *d);
int blkdrv_kick(struct blkdrv *d);
/*
 * Waits up to timeout_ms for completions and reports each: the slot, its
 * status byte and the length the device wrote. Returns how many, or -errno.
 */
int blkdrv_reap(struct blkdrv *d, int timeout_ms,
		void (*done)(void *opaque, unsigned slot, uint8_t status, uint32_t len), void *opaque);
/* Guest-physical address of a slot's parts, for forged chains. */
uint64_t blkdrv_header_gpa(unsigned slot);
uint64_t blkdrv_status_gpa(unsigned slot);
uint64_t blkdrv_data_gpa(const struct blkdrv *d, unsigned slot);

#endif
