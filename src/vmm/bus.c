#include "vmm/bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	for (unsigned i = 0; i < bus->nranges; i++) {
		struct bus_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	if (bus->nranges == BUS_MAX_RANGES)
		return -ENOSPC;
	bus->ranges[bus->nranges++] =
		(struct bus_range){.base = base, .len = len, .ops = ops, .opaque = opaque};
	return 0;
}

bool bus_dispatch(struct bus *bus, uint64_t addr, void *data, unsigned len, bool is_write)
{
	for (unsigned i = 0; i < bus->nranges; i++) {
		struct bus_range *r = &bus->ranges[i];
		if (addr < r->base || addr - r->base >= r->len)
			continue;
		if (is_write) {
			if (r->ops->write)
				r->ops->write(r->opaque, addr - r->base, data, len);
		} else if (r->ops->read) {
			r->ops->read(r->opaque, addr - r->base, data, len);
		} else {
			memset(data, 0xff, len);
		}
		return true;
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
