/*
 * The balloon device's own share of an inflate: giving SIZE MiB of guest RAM
 * back to the host the way Linux's driver hands it over (lists of 256 page
 * numbers, each list in the reverse of the order the pages were allocated,
 * one list in flight at a time), punched out of a guest-RAM memfd that asks
 * for transparent huge pages, as domus-vmm's is.
 *
 *   bench/balloon-punch [SIZE_MIB]      (default 1024; run it where shmem THP
 *                                        is allowed: the emulated test host)
 *
 * Two ways, each on freshly written memory:
 *   per list, unsorted   what the device did until it batched: a run is
 *                        extended only by the page that follows it, so a
 *                        descending list is one punch a page
 *   per list, merged     what the worker does with the same list alone:
 *                        sorted and merged (balloon_coalesce), one punch a run
 * Prints the punches and the wall time of each, and the host's shmem THP
 * setting. The guest's side (allocating, the round trips) is not in it;
 * bench/balloon-reclaim measures the whole.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/virtio_balloon.h"
#include "vmm/guest_mem.h"

#define LIST_PFNS 256 /* Linux's VIRTIO_BALLOON_ARRAY_PFNS_MAX */
#define FIRST_PFN 4096 /* 16 MiB up, as if the kernel's own memory were below */

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Writes every page of [first, first + pages) so that the host holds it (in huge pages where allowed). */
static void populate(struct guest_mem *mem, uint64_t first, uint64_t pages)
{
	for (uint64_t p = first; p < first + pages; p++)
		((volatile uint8_t *)gmem_ptr(mem, p << 12, 4096))[0] = 1;
}

static int run(struct guest_mem *mem, uint64_t pages, bool merged, unsigned long *punches,
	       double *ms)
{
	static struct balloon_range runs[LIST_PFNS];
	uint8_t list[LIST_PFNS * 4];
	double t0;

	populate(mem, FIRST_PFN, pages);
	*punches = 0;
	t0 = now_ms();
	for (uint64_t done = 0; done < pages; done += LIST_PFNS) {
		unsigned bad = 0, n;

		/* Allocated ascending, listed descending (the driver pops its page list). */
		for (unsigned i = 0; i < LIST_PFNS; i++) {
			uint32_t pfn = htole32((uint32_t)(FIRST_PFN + done + LIST_PFNS - 1 - i));
			memcpy(list + 4 * i, &pfn, 4);
		}
		n = balloon_pfn_ranges(mem, list, LIST_PFNS, runs, LIST_PFNS, &bad);
		if (merged) {
			uint64_t dup = 0;
			n = balloon_coalesce(mem, runs, n, &dup);
		}
		for (unsigned i = 0; i < n; i++) {
			int r = gmem_discard(mem, runs[i].gpa, runs[i].len);
			if (r < 0) {
				fprintf(stderr, "balloon-punch: discard: %s\n", strerror(-r));
				return r;
			}
			(*punches)++;
		}
	}
	*ms = now_ms() - t0;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024, pages = mib << 8;
	char thp[128] = "unknown";
	struct guest_mem mem;
	unsigned long p1, p2;
	double t1, t2;
	FILE *f;

	if (mib == 0 || mib > 65536) {
		fprintf(stderr, "usage: balloon-punch [SIZE_MIB]\n");
		return 2;
	}
	if ((f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r"))) {
		if (!fgets(thp, sizeof(thp), f))
			snprintf(thp, sizeof(thp), "unreadable");
		thp[strcspn(thp, "\n")] = 0;
		fclose(f);
	}
	if (gmem_create(&mem, (FIRST_PFN << 12) + (mib << 20)) < 0) {
		fprintf(stderr, "balloon-punch: cannot make %llu MiB of guest RAM\n",
			(unsigned long long)mib);
		return 1;
	}
	if (run(&mem, pages, false, &p1, &t1) < 0 || run(&mem, pages, true, &p2, &t2) < 0)
		return 1;
	printf("shmem THP: %s\n", thp);
	printf("%llu MiB in lists of %u pages: per list, unsorted %lu punches %.0f ms; "
	       "per list, merged %lu punches %.0f ms\n",
	       (unsigned long long)mib, LIST_PFNS, p1, t1, p2, t2);
	gmem_destroy(&mem);
	return 0;
}
