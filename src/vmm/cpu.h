#ifndef DOMUS_CPU_H
#define DOMUS_CPU_H

#include <linux/kvm.h>

struct boot_entry;

/* What KVM can offer a guest; *out is malloc'd. Returns 0 or -errno. */
int cpu_fetch_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
	__attribute__((warn_unused_result));
/* Sets up vCPU `id` of `nvcpus`; the boot vCPU (0) gets the entry registers. */
int cpu_setup(int fd, const struct kvm_cpuid2 *supported, unsigned id, unsigned nvcpus,
	      const struct boot_entry *entry) __attribute__((warn_unused_result));

#endif
