/* virtio-balloon: see virtio_balloon.h. */
#include "devices/virtio_balloon.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/confine.h"
#include "vmm/vm.h"

#define BALLOON_QUEUE_SIZE 128
#define BALLOON_BATCHES_PER_PASS 8 /* batches per wake-up of the worker; then it wakes itself */
#define PAGE_SHIFT 12
#define PAGE_SIZE (1ULL << PAGE_SHIFT)
#define STAT_ENTRY_SIZE 10 /* le16 tag, le64 value, packed */
#define PFN_BATCH 1024
#define BALLOON_MAX_PFNS 4096 /* page numbers taken from one buffer */

enum balloon_queue { Q_INFLATE, Q_DEFLATE, Q_STATS, Q_REPORTING, Q_NONE };

struct balloon_config {
	uint32_t num_pages;
	uint32_t actual;
	uint32_t free_page_hint_cmd_id;
	uint32_t poison_val;
};

int balloon_stats_parse(const uint8_t *buf, size_t len, uint64_t ram_bytes, struct balloon_stats *out,
			char *err, size_t errlen)
{
	struct balloon_stats st = {0};
	static const enum balloon_stat memory_tags[] = {BALLOON_STAT_FREE, BALLOON_STAT_TOTAL,
							BALLOON_STAT_AVAILABLE, BALLOON_STAT_CACHES};

	if (len % STAT_ENTRY_SIZE) {
		snprintf(err, errlen, "statistics of %zu bytes: not a whole number of entries", len);
		return -EINVAL;
	}
	for (size_t off = 0; off < len; off += STAT_ENTRY_SIZE) {
		uint16_t tag;
		uint64_t val;

		memcpy(&tag, buf + off, 2);
		memcpy(&val, buf + off + 2, 8);
		tag = le16toh(tag);
		if (tag >= BALLOON_STAT_COUNT)
			continue; /* a newer driver's statistic */
		st.val[tag] = le64toh(val);
		st.have |= 1u << tag;
	}
	for (size_t i = 0; i < sizeof(memory_tags) / sizeof(memory_tags[0]); i++) {
		enum balloon_stat t = memory_tags[i];
		if ((st.have & (1u << t)) && st.val[t] > ram_bytes) {
			snprintf(err, errlen, "statistic %d is %llu bytes, more than the domain's %llu of RAM",
				 (int)t, (unsigned long long)st.val[t], (unsigned long long)ram_bytes);
			return -EINVAL;
		}
	}
	if ((st.have & (1u << BALLOON_STAT_FREE)) && (st.have & (1u << BALLOON_STAT_TOTAL)) &&
	    st.val[BALLOON_STAT_FREE] > st.val[BALLOON_STAT_TOTAL]) {
		snprintf(err, errlen, "free memory %llu is more than total memory %llu",
			 (unsigned long long)st.val[BALLOON_STAT_FREE],
			 (unsigned long long)st.val[BALLOON_STAT_TOTAL]);
		return -EINVAL;
	}
	*out = st;
	return 0;
}

unsigned balloon_pfn_ranges(const struct guest_mem *mem, const uint8_t *pfns, unsigned n,
			    struct balloon_range *out, unsigned max, unsigned *bad)
{
	unsigned nr = 0;

	for (unsigned i = 0; i < n; i++) {
		uint32_t pfn;
		uint64_t gpa;

		memcpy(&pfn, pfns + 4 * i, 4);
		gpa = (uint64_t)le32toh(pfn) << PAGE_SHIFT;
		if (!gmem_ptr(mem, gpa, PAGE_SIZE)) {
			(*bad)++;
			continue;
		}
		/* Extend the last run only if the page follows it in the same region. */
		if (nr && out[nr - 1].gpa + out[nr - 1].len == gpa &&
		    gmem_ptr(mem, out[nr - 1].gpa, out[nr - 1].len + PAGE_SIZE)) {
			out[nr - 1].len += PAGE_SIZE;
			continue;
		}
		if (nr == max)
			break;
		out[nr++] = (struct balloon_range){.gpa = gpa, .len = PAGE_SIZE};
	}
	return nr;
}

static struct virtio_balloon *to_balloon(struct virtio_dev *vd)
{
	return vd->priv;
}

static bool negotiated(const struct virtio_dev *vd, unsigned bit)
{
	return vd->driver_features & (1ULL << bit);
}

/* Queues the driver did not negotiate are left out of the numbering (virtio 1.2, 5.5.2). */
static enum balloon_queue queue_kind(const struct virtio_dev *vd, unsigned q)
{
	unsigned stats = negotiated(vd, VIRTIO_BALLOON_F_STATS_VQ);

	if (q < 2)
		return (enum balloon_queue)q;
	if (stats && q == 2)
		return Q_STATS;
	if (negotiated(vd, VIRTIO_BALLOON_F_REPORTING) && q == 2 + stats)
		return Q_REPORTING;
	return Q_NONE;
}

static void signal_event(struct virtio_balloon *b)
{
	uint64_t one = 1;

	if (b->event_fd >= 0 && write(b->event_fd, &one, sizeof(one)) < 0)
		log_debug("balloon event");
}

static void note_error(struct virtio_balloon *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note_error(struct virtio_balloon *b, const char *fmt, ...)
{
	char msg[sizeof(b->last_error)];
	unsigned kind = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(b->last_error, sizeof(b->last_error), "%s", msg);
	/*
	 * A guest that keeps sending junk is logged once per kind, not once per
	 * buffer: the kind is the format, since the numbers in the message change
	 * from buffer to buffer, and one buffer with two faults alternates two
	 * messages. The log is on the host's disk; the counts and the latest
	 * message are in the domain's balloon information.
	 */
	while (kind < BALLOON_ERROR_KINDS && b->logged_errors[kind] &&
	       b->logged_errors[kind] != fmt)
		kind++;
	if (kind == BALLOON_ERROR_KINDS || b->logged_errors[kind])
		return;
	b->logged_errors[kind] = fmt;
	log_warnx("virtio-balloon: %s (logged once)", msg);
}

static void handle_stats(struct virtio_balloon *b, const struct virtq_chain *c, unsigned q)
{
	uint8_t buf[STAT_ENTRY_SIZE * 64];
	uint64_t len = c->out_len < sizeof(buf) ? c->out_len : sizeof(buf);
	char err[128];

	virtq_chain_read(c, 0, buf, len);
	if (c->out_len > sizeof(buf))
		len -= len % STAT_ENTRY_SIZE; /* what was cut is the driver's excess, not a partial entry */
	if (balloon_stats_parse(buf, (size_t)len, b->ram_pages << PAGE_SHIFT, &b->stats, err,
				sizeof(err)) < 0) {
		note_error(b, "nonsense statistics ignored: %s", err);
	} else {
		clock_gettime(CLOCK_MONOTONIC, &b->stats_time);
	}
	/* The driver gets its buffer back when we want the next statistics. */
	if (b->stats_held && virtq_push_used(&b->vd.vqs[q], b->stats_head, 0) == 0)
		virtio_queue_interrupt(&b->vd, q);
	b->stats_held = true;
	b->stats_head = c->head;
	signal_event(b);
}

/*
 * A page list's runs of pages, at out (room for BALLOON_MAX_PFNS at least).
 * Lists past BALLOON_MAX_PFNS are cut there: Linux sends 256 page numbers
 * a buffer, and what one buffer may cost the device stays bounded whatever
 * its size (the rest is the guest's loss: its pages stay its own). Returns
 * the number of runs; *pages counts the pages in them.
 */
static unsigned chain_pfn_runs(struct virtio_balloon *b, const struct virtq_chain *c,
			       struct balloon_range *out, uint64_t *pages)
{
	uint8_t pfns[PFN_BATCH * 4];
	uint64_t total = c->out_len / 4;
	unsigned bad = 0, nr = 0;

	if (total > BALLOON_MAX_PFNS) {
		note_error(b, "a page list of %llu entries; only the first %u are taken",
			   (unsigned long long)total, BALLOON_MAX_PFNS);
		total = BALLOON_MAX_PFNS;
	}
	for (uint64_t done = 0; done < total;) {
		unsigned n = total - done < PFN_BATCH ? (unsigned)(total - done) : PFN_BATCH;

		virtq_chain_read(c, done * 4, pfns, (uint64_t)n * 4);
		nr += balloon_pfn_ranges(b->mem, pfns, n, out + nr, BALLOON_MAX_PFNS - nr, &bad);
		done += n;
	}
	for (unsigned i = 0; i < nr; i++)
		*pages += out[i].len >> PAGE_SHIFT;
	if (bad) {
		b->bad_pfns += bad;
		note_error(b, "the driver sent %llu page numbers outside the domain's RAM; ignored",
			   (unsigned long long)bad);
	}
	return nr;
}

/*
 * Free page reporting: each device-writable buffer is a free range of guest
 * RAM; its whole pages become runs at out (room for VIRTQ_MAX_CHAIN).
 */
static unsigned chain_report_runs(struct virtio_balloon *b, const struct virtq_chain *c,
				  struct balloon_range *out, uint64_t *bytes)
{
	unsigned nr = 0;

	for (unsigned i = c->nout; i < c->nout + c->nin; i++) {
		uint64_t len = c->iov[i].iov_len, start, end;
		int64_t gpa = gmem_gpa_of(b->mem, c->iov[i].iov_base, len);

		if (gpa < 0)
			continue; /* the queue mapped it, so it is RAM; but never trust twice */
		start = ((uint64_t)gpa + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		end = ((uint64_t)gpa + len) & ~(PAGE_SIZE - 1);
		if (end <= start)
			continue;
		out[nr++] = (struct balloon_range){.gpa = start, .len = end - start};
		*bytes += end - start;
	}
	return nr;
}

/*
 * In-place heapsort by address. Not qsort(): glibc's asks the kernel for the
 * machine's memory (sysinfo) to size its buffer, a call the confined
 * worker's filter does not allow; and this needs no memory at all.
 */
static void sift_down(struct balloon_range *r, unsigned root, unsigned n)
{
	for (;;) {
		unsigned child = 2 * root + 1;
		struct balloon_range t;

		if (child >= n)
			return;
		if (child + 1 < n && r[child + 1].gpa > r[child].gpa)
			child++;
		if (r[root].gpa >= r[child].gpa)
			return;
		t = r[root];
		r[root] = r[child];
		r[child] = t;
		root = child;
	}
}

static void sort_runs(struct balloon_range *r, unsigned n)
{
	for (unsigned i = n / 2; i-- > 0;)
		sift_down(r, i, n);
	for (unsigned end = n; end-- > 1;) {
		struct balloon_range t = r[0];

		r[0] = r[end];
		r[end] = t;
		sift_down(r, 0, end);
	}
}

unsigned balloon_coalesce(const struct guest_mem *mem, struct balloon_range *r, unsigned n,
			  uint64_t *dup_bytes)
{
	unsigned last = 0;

	if (n == 0)
		return 0;
	sort_runs(r, n);
	for (unsigned i = 1; i < n; i++) {
		struct balloon_range *cur = &r[last];
		/* Runs are inside RAM (checked when they were taken): no sum wraps. */
		uint64_t end = cur->gpa + cur->len, rend = r[i].gpa + r[i].len;

		if (r[i].gpa <= end) {
			*dup_bytes += (rend < end ? rend : end) - r[i].gpa;
			if (rend <= end)
				continue; /* wholly inside the run already */
			/* Overlapping runs share a region; touching ones may not. */
			if (r[i].gpa < end || gmem_ptr(mem, cur->gpa, rend - cur->gpa)) {
				cur->len = rend - cur->gpa;
				continue;
			}
		}
		r[++last] = r[i];
	}
	return last + 1;
}

static void wake(struct virtio_balloon *b)
{
	uint64_t one = 1;

	if (write(b->wake_fd, &one, sizeof(one)) < 0)
		log_warn("virtio-balloon: waking the worker");
}

/*
 * One batch (vd.lock held, released while it punches): takes every
 * available buffer of every queue, as long as the batch has room for what
 * the next may hold and at most a queue's size from each; punches the
 * inflated and reported pages, sorted and merged into runs, one call a run;
 * then returns the buffers, one interrupt per queue. Statistics are served
 * as they come. Returns whether it took any buffer.
 */
static bool serve_batch(struct virtio_balloon *b)
{
	enum { CHAIN_MAX_RUNS = BALLOON_MAX_PFNS > VIRTQ_MAX_CHAIN ? BALLOON_MAX_PFNS : VIRTQ_MAX_CHAIN };
	struct virtio_dev *vd = &b->vd;
	uint16_t heads[4][BALLOON_QUEUE_SIZE];
	unsigned nheads[4] = {0}, nr = 0, punched;
	uint64_t inflated = 0, deflated = 0, reported = 0, dup = 0;
	uint32_t gen = atomic_load(&b->reset_gen);
	bool took = false;
	int err = 0;

	if (!virtio_driver_ready(vd))
		return false;
	for (unsigned q = 0; q < vd->nqueues; q++) {
		enum balloon_queue kind = queue_kind(vd, q);
		struct virtq *vq = &vd->vqs[q];
		unsigned served = 0;
		struct virtq_chain c;
		int r = 0;

		if (kind == Q_NONE || !vq->enabled || vq->broken)
			continue;
		while (served < BALLOON_QUEUE_SIZE && BALLOON_BATCH_RANGES - nr >= CHAIN_MAX_RUNS &&
		       (r = virtq_pop_avail(vq, &c)) == 1) {
			served++;
			took = true;
			if (kind == Q_STATS) {
				handle_stats(b, &c, q);
				continue;
			}
			if (kind == Q_INFLATE)
				nr += chain_pfn_runs(b, &c, b->batch + nr, &inflated);
			else if (kind == Q_REPORTING)
				nr += chain_report_runs(b, &c, b->batch + nr, &reported);
			else /* deflate: counted, nothing to do (a touched page comes back zeroed) */
				(void)chain_pfn_runs(b, &c, b->batch + nr, &deflated);
			heads[q][nheads[q]++] = c.head;
		}
		if (r < 0)
			virtio_needs_reset(vd, "malformed balloon queue");
	}
	if (!nheads[Q_INFLATE] && !nheads[Q_DEFLATE] && !nheads[2] && !nheads[3])
		return took;

	/* The punching, with the lock released: the vCPUs' accesses to the device do not wait on it. */
	b->in_batch = true;
	b->batch_gen = gen;
	pthread_mutex_unlock(&vd->lock);
	nr = balloon_coalesce(b->mem, b->batch, nr, &dup);
	for (punched = 0; punched < nr && atomic_load(&b->reset_gen) == gen; punched++) {
		int r = gmem_discard(b->mem, b->batch[punched].gpa, b->batch[punched].len);
		if (r < 0 && !err)
			err = r;
	}
	pthread_mutex_lock(&vd->lock);
	b->in_batch = false;
	pthread_cond_broadcast(&b->idle);
	b->batches++;
	b->punches += punched;
	if (atomic_load(&b->reset_gen) != gen)
		return took; /* the driver reset the device: these buffers are no longer its queues' */

	b->inflated += inflated;
	b->deflated += deflated;
	b->reported_bytes += reported;
	if (err)
		note_error(b, "cannot return pages to the host: %s", strerror(-err));
	if (dup) {
		b->dup_pages += dup >> PAGE_SHIFT;
		note_error(b, "the driver gave %llu pages more than once in one batch; punched once",
			   (unsigned long long)(dup >> PAGE_SHIFT));
	}
	for (unsigned q = 0; q < vd->nqueues; q++) {
		unsigned pushed = 0;

		while (pushed < nheads[q] && virtq_push_used(&vd->vqs[q], heads[q][pushed], 0) == 0)
			pushed++;
		if (pushed)
			virtio_queue_interrupt(vd, q);
	}
	return took;
}

void virtio_balloon_serve(struct virtio_balloon *b)
{
	/*
	 * A guest that refills its queues as fast as they empty keeps a worker
	 * busy for a few batches, then the worker wakes itself and reads its
	 * eventfd again, so stop is heard; between batches vd.lock is free.
	 */
	for (unsigned n = 0; n < BALLOON_BATCHES_PER_PASS; n++) {
		if (b->stopping || !serve_batch(b))
			return;
	}
	if (b->worker_running)
		wake(b);
}

static void balloon_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_balloon *b = to_balloon(vd);

	(void)q;
	if (b->worker_running)
		wake(b);
	else
		virtio_balloon_serve(b); /* tests and fuzz targets: no worker, the notify serves */
}

/*
 * Linux's driver queues its first statistics and kicks before it sets
 * DRIVER_OK, when the transport still ignores kicks: catch up here.
 */
static void balloon_driver_ok(struct virtio_dev *vd)
{
	for (unsigned q = 0; q < vd->nqueues; q++)
		if (vd->vqs[q].enabled)
			balloon_queue_notify(vd, q);
}

static void balloon_config_read(struct virtio_dev *vd, unsigned offset, void *data, unsigned len)
{
	struct virtio_balloon *b = to_balloon(vd);
	struct balloon_config cfg = {
		.num_pages = htole32(atomic_load(&b->target_pages)),
		.actual = htole32(atomic_load(&b->actual_pages)),
	};

	memcpy(data, (uint8_t *)&cfg + offset, len);
}

static void balloon_config_write(struct virtio_dev *vd, unsigned offset, const void *data, unsigned len)
{
	struct virtio_balloon *b = to_balloon(vd);
	uint32_t actual;

	/* Only `actual` is the driver's to write, and only whole. */
	if (offset != offsetof(struct balloon_config, actual) || len != 4)
		return;
	memcpy(&actual, data, 4);
	actual = le32toh(actual);
	if (actual > b->ram_pages) {
		note_error(b, "the driver claims a balloon of %u pages, more than the domain's RAM",
			   actual);
		actual = (uint32_t)b->ram_pages;
	}
	if (atomic_exchange(&b->actual_pages, actual) != actual)
		signal_event(b);
}

static void balloon_reset(struct virtio_dev *vd)
{
	struct virtio_balloon *b = to_balloon(vd);
	uint32_t gen = atomic_fetch_add(&b->reset_gen, 1) + 1;

	/* A driver that resets holds no pages any more: they are its RAM again. */
	atomic_store(&b->actual_pages, 0);
	b->stats_held = false;
	/*
	 * So none may be punched after this returns: a batch that started before
	 * the reset stops punching (it sees the generation move) and we wait for
	 * it to say so; one that starts after has nothing from before.
	 */
	while (b->in_batch && (int32_t)(b->batch_gen - gen) < 0)
		pthread_cond_wait(&b->idle, &vd->lock);
	signal_event(b);
}

const struct virtio_device_ops virtio_balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.pci_class = 0x058000, /* memory controller, other */
	.nqueues = 4,
	.queue_size = BALLOON_QUEUE_SIZE,
	.config_size = sizeof(struct balloon_config),
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.queue_notify = balloon_queue_notify,
	.driver_ok = balloon_driver_ok,
	.reset = balloon_reset,
};

int virtio_balloon_set_target(struct virtio_balloon *b, uint64_t bytes)
{
	uint64_t pages = bytes >> PAGE_SHIFT;

	if (pages > b->ram_pages)
		return -ERANGE;
	pthread_mutex_lock(&b->vd.lock);
	atomic_store(&b->target_pages, (uint32_t)(b->ram_pages - pages));
	virtio_config_changed(&b->vd);
	pthread_mutex_unlock(&b->vd.lock);
	return 0;
}

void virtio_balloon_request_stats(struct virtio_balloon *b)
{
	unsigned q = 2;

	pthread_mutex_lock(&b->vd.lock);
	if (b->stats_held && queue_kind(&b->vd, q) == Q_STATS) {
		b->stats_held = false;
		if (virtq_push_used(&b->vd.vqs[q], b->stats_head, 0) == 0)
			virtio_queue_signal(&b->vd, q);
	}
	pthread_mutex_unlock(&b->vd.lock);
}

void virtio_balloon_info(struct virtio_balloon *b, struct balloon_info *info)
{
	struct timespec now;

	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&b->vd.lock);
	info->ram_bytes = b->ram_pages << PAGE_SHIFT;
	info->target_bytes = (b->ram_pages - atomic_load(&b->target_pages)) << PAGE_SHIFT;
	info->actual_bytes = (b->ram_pages - atomic_load(&b->actual_pages)) << PAGE_SHIFT;
	info->inflated_pages = b->inflated;
	info->deflated_pages = b->deflated;
	info->reported_bytes = b->reported_bytes;
	info->bad_pfns = b->bad_pfns;
	info->deflate_on_oom = b->deflate_on_oom;
	info->have_stats = b->stats_time.tv_sec || b->stats_time.tv_nsec;
	if (info->have_stats) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		info->stats_age = (double)(now.tv_sec - b->stats_time.tv_sec) +
				  (double)(now.tv_nsec - b->stats_time.tv_nsec) / 1e9;
		info->stats = b->stats;
	}
	snprintf(info->last_error, sizeof(info->last_error), "%s", b->last_error);
	pthread_mutex_unlock(&b->vd.lock);
}

int virtio_balloon_add(struct vm *vm, struct virtio_balloon *b, bool deflate_on_oom,
		       uint64_t target_bytes)
{
	uint64_t features = (1ULL << VIRTIO_BALLOON_F_STATS_VQ) | (1ULL << VIRTIO_BALLOON_F_REPORTING);

	b->mem = &vm->mem;
	b->ram_pages = vm->mem.size >> PAGE_SHIFT;
	b->deflate_on_oom = deflate_on_oom;
	b->wake_fd = -1;
	pthread_cond_init(&b->idle, NULL);
	b->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->event_fd < 0)
		return -errno;
	if (b->ram_pages > UINT32_MAX)
		return -E2BIG; /* num_pages is 32 bits: 16 TiB, far above VM_MAX_MEMORY_MIB */
	if (target_bytes > vm->mem.size)
		return -ERANGE;
	atomic_store(&b->target_pages, (uint32_t)(b->ram_pages - (target_bytes >> PAGE_SHIFT)));
	if (deflate_on_oom)
		features |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	return virtio_pci_add(vm, &b->vd, &virtio_balloon_ops, b, features);
}

static void *balloon_worker(void *arg)
{
	struct virtio_balloon *b = arg;

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		log_warnx("virtio-balloon: cannot load the worker's system-call filter");
		return NULL;
	}
	for (;;) {
		uint64_t val;

		/* Blocking: the eventfd is the worker's alone to read. */
		if (read(b->wake_fd, &val, sizeof(val)) < 0 && errno != EINTR) {
			log_warn("virtio-balloon: worker");
			return NULL;
		}
		pthread_mutex_lock(&b->vd.lock);
		if (b->stopping) {
			pthread_mutex_unlock(&b->vd.lock);
			return NULL;
		}
		virtio_balloon_serve(b);
		pthread_mutex_unlock(&b->vd.lock);
	}
}

int virtio_balloon_start(struct virtio_balloon *b)
{
	b->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (b->wake_fd < 0)
		return -errno;
	/* Before the thread exists: a notify that sees it running must find it waking. */
	b->worker_running = true;
	if (pthread_create(&b->worker, NULL, balloon_worker, b) != 0) {
		b->worker_running = false;
		return -EAGAIN;
	}
	return 0;
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	if (b->worker_running) {
		pthread_mutex_lock(&b->vd.lock);
		b->stopping = true;
		pthread_mutex_unlock(&b->vd.lock);
		wake(b);
		pthread_join(b->worker, NULL);
		b->worker_running = false;
	}
	if (b->wake_fd > 0)
		close(b->wake_fd);
	b->wake_fd = -1;
	if (b->event_fd > 0)
		close(b->event_fd);
	b->event_fd = -1;
}
