#ifndef DOMUS_CPU_H
#define DOMUS_CPU_H

#include <linux/kvm.h>
#include <stdbool.h>

struct boot_entry;

/* What KVM can offer a guest; *out is malloc'd. Returns 0 or -errno. */
int cpu_fetch_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
	__attribute__((warn_unused_result));
/* What a guest is told of KVM's paravirtual side (xl.cfg cpu_dedicated, pv_mp). */
struct cpu_pv {
	bool realtime;	/* KVM_HINTS_REALTIME: the vCPUs own their host CPUs */
	bool mp_hidden; /* KVM's features for MP guests on a shared host left out */
};

/*
 * Turns KVM's supported CPUID (c, in place) into vCPU `id`'s of `nvcpus`:
 * its APIC ids, and KVM's leaf 0x40000001 as pv says.
 */
void cpu_cpuid_for_vcpu(struct kvm_cpuid2 *c, unsigned id, unsigned nvcpus, const struct cpu_pv *pv);
/* Sets up vCPU `id` of `nvcpus`; the boot vCPU (0) gets the entry registers. */
int cpu_setup(int fd, const struct kvm_cpuid2 *supported, unsigned id, unsigned nvcpus,
	      const struct cpu_pv *pv, const struct boot_entry *entry) __attribute__((warn_unused_result));

#endif
