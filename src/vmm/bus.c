#include "vmm/bus.h"

#include <errno.h>
#include <string.h>

/* The first range whose base is above addr (0..n). Entries may be torn under a writer: n is clamped. */
static unsigned first_above(const struct bus *bus, unsigned n, uint64_t addr)
{
	unsigned lo = 0, hi = n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (__atomic_load_n(&bus->ranges[mid].base, __ATOMIC_RELAXED) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Around a writer's changes (bus->lock held): readers that overlap them look again. */
static void write_begin(struct bus *bus)
{
	atomic_fetch_add_explicit(&bus->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void write_end(struct bus *bus)
{
	atomic_fetch_add_explicit(&bus->seq, 1, memory_order_release);
}

static void store_range(struct bus_range *r, const struct bus_range *v)
{
	__atomic_store_n(&r->base, v->base, __ATOMIC_RELAXED);
	__atomic_store_n(&r->len, v->len, __ATOMIC_RELAXED);
	__atomic_store_n(&r->ops, v->ops, __ATOMIC_RELAXED);
	__atomic_store_n(&r->opaque, v->opaque, __ATOMIC_RELAXED);
}

static void load_range(const struct bus_range *r, struct bus_range *v)
{
	v->base = __atomic_load_n(&r->base, __ATOMIC_RELAXED);
	v->len = __atomic_load_n(&r->len, __ATOMIC_RELAXED);
	v->ops = __atomic_load_n(&r->ops, __ATOMIC_RELAXED);
	v->opaque = __atomic_load_n(&r->opaque, __ATOMIC_RELAXED);
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque)
{
	struct bus_range v = {.base = base, .len = len, .ops = ops, .opaque = opaque};
	unsigned n, at;
	int ret = 0;

	if (len == 0 || base + len < base)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	n = atomic_load_explicit(&bus->nranges, memory_order_relaxed);
	at = first_above(bus, n, base);
	/* Only the neighbours can overlap: the one below may reach up, the one above may start inside. */
	if ((at > 0 && base - bus->ranges[at - 1].base < bus->ranges[at - 1].len) ||
	    (at < n && bus->ranges[at].base - base < len))
		ret = -EEXIST;
	else if (n == BUS_MAX_RANGES)
		ret = -ENOSPC;
	if (ret == 0) {
		write_begin(bus);
		for (unsigned i = n; i > at; i--)
			store_range(&bus->ranges[i], &bus->ranges[i - 1]);
		store_range(&bus->ranges[at], &v);
		atomic_store_explicit(&bus->nranges, n + 1, memory_order_relaxed);
		write_end(bus);
	}
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

int bus_unregister(struct bus *bus, uint64_t base, void *opaque)
{
	unsigned n, at;

	pthread_mutex_lock(&bus->lock);
	n = atomic_load_explicit(&bus->nranges, memory_order_relaxed);
	at = first_above(bus, n, base);
	if (at == 0 || bus->ranges[at - 1].base != base || bus->ranges[at - 1].opaque != opaque) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOENT;
	}
	write_begin(bus);
	for (unsigned i = at - 1; i + 1 < n; i++)
		store_range(&bus->ranges[i], &bus->ranges[i + 1]);
	atomic_store_explicit(&bus->nranges, n - 1, memory_order_relaxed);
	write_end(bus);
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

bool bus_lookup(struct bus *bus, uint64_t addr, struct bus_range *out)
{
	unsigned seq, n, at;
	bool found;

	for (;;) {
		seq = atomic_load_explicit(&bus->seq, memory_order_acquire);
		if (seq & 1)
			continue; /* a writer is moving entries: a few stores, then it is done */
		n = atomic_load_explicit(&bus->nranges, memory_order_relaxed);
		if (n > BUS_MAX_RANGES)
			n = BUS_MAX_RANGES;
		at = first_above(bus, n, addr);
		found = at > 0;
		if (found) {
			load_range(&bus->ranges[at - 1], out);
			found = addr - out->base < out->len;
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&bus->seq, memory_order_relaxed) == seq)
			return found;
	}
}

bool bus_dispatch(struct bus *bus, uint64_t addr, void *data, unsigned len, bool is_write)
{
	struct bus_range r;

	if (!bus_lookup(bus, addr, &r)) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	if (is_write) {
		if (r.ops->write)
			r.ops->write(r.opaque, addr - r.base, data, len);
	} else if (r.ops->read) {
		r.ops->read(r.opaque, addr - r.base, data, len);
	} else {
		memset(data, 0xff, len);
	}
	return true;
}
