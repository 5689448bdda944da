/*
 * Port I/O and MMIO buses.  A device registers a range with an ops table;
 * the vCPU run loop dispatches exits here.  Registration happens before
 * vCPUs start, so lookups need no lock; devices lock their own state.
 */
#ifndef DOMUS_BUS_H
#define DOMUS_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* offset is relative to the registered base; len is 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t offset, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t offset, const void *data, unsigned len);
};

#define BUS_MAX_RANGES 64

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	unsigned nranges;
	struct bus_range ranges[BUS_MAX_RANGES];
};

/* Returns 0, -EEXIST on overlap, -ENOSPC when full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque) __attribute__((warn_unused_result));
/* Returns false when nothing is there (reads then see all ones). */
bool bus_dispatch(struct bus *bus, uint64_t addr, void *data, unsigned len, bool is_write);

#endif
