/*
 * Port I/O and MMIO buses.  A device registers a range with an ops table;
 * the vCPU run loop dispatches exits here.
 *
 * The ranges are a sorted array searched by bisection, so a dispatch costs
 * a few comparisons whatever the number of devices. Ranges change rarely
 * (a device's registration, a guest moving a PCI BAR) and under the bus's
 * writer lock; a dispatch takes no lock at all: it reads the array under a
 * sequence count and looks again if a writer was at work meanwhile. So no
 * lock is shared by the vCPUs' exits to different devices; devices lock
 * their own state. A device unregistered a moment ago may still see one
 * access that was looked up before: devices live as long as the VM.
 */
#ifndef DOMUS_BUS_H
#define DOMUS_BUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* offset is relative to the registered base; len is 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t offset, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t offset, const void *data, unsigned len);
};

/* Fixed ranges (ports, platform devices) and every PCI BAR of up to 32 devices. */
#define BUS_MAX_RANGES 256

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

/* All zeroes is an empty bus. */
struct bus {
	pthread_mutex_t lock; /* writers only */
	_Atomic unsigned seq; /* odd while a writer changes the array */
	_Atomic unsigned nranges;
	struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base, never overlapping */
};

/* Returns 0, -EINVAL for an empty or wrapping range, -EEXIST on overlap, -ENOSPC when full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque) __attribute__((warn_unused_result));
/* Removes the range at base that opaque registered: 0, or -ENOENT. */
int bus_unregister(struct bus *bus, uint64_t base, void *opaque);
/* Finds the range holding addr: true with a copy in *out, or false. Any thread. */
bool bus_lookup(struct bus *bus, uint64_t addr, struct bus_range *out);
/* Returns false when nothing is there (reads then see all ones). */
bool bus_dispatch(struct bus *bus, uint64_t addr, void *data, unsigned len, bool is_write);

#endif
