/*
 * A vCPU's CPUID, made from what KVM supports without KVM: its APIC ids,
 * and KVM_HINTS_REALTIME in KVM's leaf only for a domain whose vCPUs own
 * their CPUs (cpu_dedicated).
 */
#include <linux/kvm_para.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "vmm/cpu.h"

#define FEATURES (1u << KVM_FEATURE_PV_UNHALT | 1u << KVM_FEATURE_STEAL_TIME)

/* What KVM_GET_SUPPORTED_CPUID gives, in the leaves set_cpuid changes. */
static struct kvm_cpuid2 *supported(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 3 * sizeof(struct kvm_cpuid_entry2));

	assert_non_null(c);
	c->nent = 3;
	c->entries[0].function = 1;
	c->entries[0].ebx = 0x00000800; /* CLFLUSH size, kept */
	c->entries[1].function = KVM_CPUID_SIGNATURE;
	c->entries[1].eax = KVM_CPUID_FEATURES;
	c->entries[2].function = KVM_CPUID_FEATURES;
	c->entries[2].eax = FEATURES;
	return c;
}

static void test_realtime_hint(void **state)
{
	struct kvm_cpuid2 *c = supported();

	(void)state;
	/* Shared vCPUs: KVM's features as they are, no hint. */
	cpu_cpuid_for_vcpu(c, 1, 2, &(struct cpu_pv){0});
	assert_int_equal(c->entries[2].edx, 0);
	assert_int_equal(c->entries[2].eax, FEATURES);
	assert_int_equal(c->entries[0].ebx, 0x01020800); /* APIC id 1 of 2 */
	free(c);
	/* Dedicated: the hint, and the features still offered (steal time stays useful). */
	c = supported();
	cpu_cpuid_for_vcpu(c, 0, 1, &(struct cpu_pv){.realtime = true});
	assert_int_equal(c->entries[2].edx, 1u << KVM_HINTS_REALTIME);
	assert_int_equal(c->entries[2].eax, FEATURES);
	assert_int_equal(c->entries[1].edx, 0); /* the signature leaf is not the hints' */
	free(c);
}

/* pv_mp = 0: the features about preempted siblings left out, the others kept, no hint. */
static void test_pv_mp_hidden(void **state)
{
	uint32_t all = 1u << KVM_FEATURE_CLOCKSOURCE2 | 1u << KVM_FEATURE_PV_EOI |
		       1u << KVM_FEATURE_PV_UNHALT | 1u << KVM_FEATURE_PV_TLB_FLUSH |
		       1u << KVM_FEATURE_PV_SEND_IPI | 1u << KVM_FEATURE_PV_SCHED_YIELD |
		       1u << KVM_FEATURE_STEAL_TIME | 1u << KVM_FEATURE_POLL_CONTROL;
	struct kvm_cpuid2 *c = supported();

	(void)state;
	c->entries[2].eax = all;
	cpu_cpuid_for_vcpu(c, 0, 2, &(struct cpu_pv){.mp_hidden = true});
	assert_int_equal(c->entries[2].eax, 1u << KVM_FEATURE_CLOCKSOURCE2 | 1u << KVM_FEATURE_PV_EOI |
						    1u << KVM_FEATURE_POLL_CONTROL);
	assert_int_equal(c->entries[2].edx, 0);
	assert_int_equal(c->entries[1].eax, KVM_CPUID_FEATURES); /* the signature leaf untouched */
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_realtime_hint),
		cmocka_unit_test(test_pv_mp_hidden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
