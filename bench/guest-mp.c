/*
 * The guest's side of bench/sched-mp-compare: two multiprocessor
 * workloads that suffer when the host preempts one vCPU of a domain.
 *
 *   guest-mp tlb SECONDS    one thread per CPU, each mapping a page,
 *                           touching it, write-protecting and unmapping it:
 *                           every mprotect and munmap flushes the other
 *                           CPUs' TLBs (the threads share one mm), and the
 *                           flushing CPU waits for each one's answer
 *   guest-mp lock SECONDS   one thread per CPU taking a test-and-set
 *                           spinlock around a short critical section: a
 *                           holder preempted by the host stalls every waiter
 *
 * Prints "RESULT tlb-ops N" or "RESULT lock-ops N" (operations per second, all
 * threads together), and for each thread its count, so that a starved
 * vCPU shows.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

static _Atomic int stop;
static _Atomic int lock_word;
static volatile unsigned long shared_counter;
static unsigned long counts[MAX_THREADS];

struct worker {
	int cpu;
	int lock_mode;
};

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	long page = sysconf(_SC_PAGESIZE);
	unsigned long n = 0;

	pin(w->cpu);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (w->lock_mode) {
			while (atomic_exchange_explicit(&lock_word, 1, memory_order_acquire))
				while (atomic_load_explicit(&lock_word, memory_order_relaxed))
					__builtin_ia32_pause();
			for (int i = 0; i < 200; i++)
				shared_counter++;
			atomic_store_explicit(&lock_word, 0, memory_order_release);
		} else {
			char *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				break;
			p[0] = 1;
			mprotect(p, (size_t)page, PROT_READ);
			munmap(p, (size_t)page);
		}
		n++;
	}
	counts[w->cpu] = n;
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker workers[MAX_THREADS];
	pthread_t threads[MAX_THREADS];
	unsigned long total = 0;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN), secs;

	if (argc != 3 || (strcmp(argv[1], "tlb") && strcmp(argv[1], "lock")) || (secs = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: guest-mp tlb|lock SECONDS\n");
		return 2;
	}
	if (ncpu > MAX_THREADS)
		ncpu = MAX_THREADS;
	for (int i = 0; i < ncpu; i++) {
		workers[i] = (struct worker){.cpu = i, .lock_mode = !strcmp(argv[1], "lock")};
		if (pthread_create(&threads[i], NULL, work, &workers[i]) != 0) {
			fprintf(stderr, "guest-mp: cannot start thread %d\n", i);
			return 1;
		}
	}
	sleep((unsigned)secs);
	atomic_store(&stop, 1);
	for (int i = 0; i < ncpu; i++) {
		pthread_join(threads[i], NULL);
		total += counts[i];
		printf("THREAD %d %lu\n", i, counts[i]);
	}
	printf("RESULT %s-ops %.0f\n", argv[1], (double)total / secs);
	return 0;
}
