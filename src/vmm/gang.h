#ifndef DOMUS_VMM_GANG_H
#define DOMUS_VMM_GANG_H

/*
 * Relaxed co-scheduling of a domain's vCPUs (gang = 1; docs/sched.md).
 *
 * A vCPU's progress is the time it ran (its thread's CPU time) plus the time
 * it chose to wait (halted in KVM). A vCPU that the host keeps off a CPU
 * while it could run makes no progress, and its siblings run ahead of it:
 * the spinlock holder, the target of a TLB-shootdown IPI. When one runs
 * ahead of the slowest runnable sibling by more than the bound, it is held
 * out of guest mode until the others are within half the bound, so the host
 * CPU goes to the ones behind. A vCPU halted in KVM is never the one
 * behind, nor does it get ahead: it is idle by its own choice.
 *
 * Strict (a domain whose vCPUs own their CPUs, cpu_dedicated = 1): when one
 * runnable vCPU leads by more than the bound, every sibling more than half
 * the bound ahead of the slowest stops at once (a co-stop), and they all
 * start again together (a co-start) once none of them is more than half the
 * bound ahead: the guest sees its vCPUs stop and go as one, never one CPU
 * stalled under the others.
 */

#include <stdbool.h>
#include <stdint.h>

#include "vmm/config.h"

#define GANG_SKEW_BUCKETS 6 /* leads of < 1, < 2, < 5, < 10, < 50 ms and more */

struct gang_sample {
	uint64_t progress_ns; /* CPU time plus time halted, since the vCPU started */
	bool blocked;         /* halted in KVM (or waiting for its start-up IPI) right now */
};

struct gang_vcpu_stats {
	uint64_t holds;                          /* times it was held */
	uint64_t lead_max_ns;                    /* its largest lead over the slowest sibling */
	uint64_t lead_hist[GANG_SKEW_BUCKETS];   /* its lead, once a period */
};

struct gang_controller {
	unsigned nvcpus;
	uint64_t bound_ns;
	bool strict;    /* co-stop and co-start the whole gang (above) */
	bool costopped; /* strict: the leaders are stopped, waiting for the slowest */
	uint64_t costops; /* strict: how many co-stops so far */
	bool held[VM_MAX_VCPUS];
	bool started;
	uint64_t last[VM_MAX_VCPUS]; /* progress at the last period */
	uint64_t lead[VM_MAX_VCPUS]; /* how far each ran ahead of the slowest */
	struct gang_vcpu_stats stats[VM_MAX_VCPUS];
};

void gang_controller_init(struct gang_controller *g, unsigned nvcpus, uint64_t bound_ns);
/* One period: decides from the samples which vCPUs to hold (g->held); returns how many. */
unsigned gang_controller_step(struct gang_controller *g, const struct gang_sample *s);
/* The bucket a lead falls in. */
unsigned gang_skew_bucket(uint64_t lead_ns);
/* The upper bound of bucket i, in ms (0 for the last, which has none). */
unsigned gang_skew_bucket_ms(unsigned i);

/*
 * KVM's binary statistics of a vCPU (KVM_GET_STATS_FD): where the value
 * NAME lies in the file, from its header and descriptors in buf. 0, or
 * -ENOENT when the kernel does not have it, -EINVAL when buf is malformed.
 */
int kvm_stats_find(const void *buf, size_t len, const char *name, uint64_t *offset);

struct vm;
/* Starts the controller thread when the domain asks for it; 0 or -errno. */
int gang_start(struct vm *vm, char *err, size_t errlen);
void gang_stop(struct vm *vm);
/* vCPU i's figures; zeros where the domain has no gang scheduling. */
void gang_vcpu_stats(struct vm *vm, unsigned i, struct gang_vcpu_stats *out);
/* Whether the domain's gang is strict, and its co-stops so far (0 when relaxed or off). */
bool gang_strict(struct vm *vm, uint64_t *costops);

#endif
