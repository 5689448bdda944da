/*
 * What domus-blk counts per disk, in a memfd its supervisor passes
 * (--stats-fd) and the domain's VMM maps to show: the layout both sides
 * share.
 */
#ifndef DOMUS_BLK_COUNTERS_H
#define DOMUS_BLK_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

struct blk_counters {
	_Atomic uint64_t read_ops, write_ops, read_bytes, write_bytes;
};

#endif
