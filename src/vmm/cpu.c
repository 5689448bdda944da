/*
 * vCPU state at power-on: CPUID (what KVM supports, with this vCPU's APIC
 * id), the local APIC's LINT pins wired as a PC BIOS leaves them, and for
 * the boot vCPU the register state the chosen boot protocol prescribes.
 */
#include "vmm/cpu.h"

#include <errno.h>
#include <linux/kvm_para.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/boot.h"

#define CPUID_MAX_ENTRIES 256

int cpu_fetch_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return -ENOMEM;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int err = -errno;
		free(c);
		return err;
	}
	*out = c;
	return 0;
}

/*
 * pv_mp = 0 leaves out what a guest does about a preempted sibling vCPU:
 * PV spinlocks (unhalt and kick), PV TLB flush, PV IPIs, PV sched yield
 * and the steal time the last two depend on. The clock, PV EOI, async page
 * faults and poll control stay: they are not about siblings.
 */
#define CPU_PV_MP_FEATURES                                                                         \
	(1u << KVM_FEATURE_PV_UNHALT | 1u << KVM_FEATURE_PV_TLB_FLUSH | 1u << KVM_FEATURE_PV_SEND_IPI | \
	 1u << KVM_FEATURE_PV_SCHED_YIELD | 1u << KVM_FEATURE_STEAL_TIME)

void cpu_cpuid_for_vcpu(struct kvm_cpuid2 *c, unsigned id, unsigned nvcpus, const struct cpu_pv *pv)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			/* Initial APIC id and logical processor count; we run under a hypervisor. */
			e->ebx = (e->ebx & 0xffff) | (id << 24) | ((nvcpus & 0xff) << 16);
			e->ecx |= 1u << 31;
			if (nvcpus > 1)
				e->edx |= 1u << 28; /* HTT: the count in EBX is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = id; /* x2APIC id */
			break;
		case 0x8000001e:
			e->eax = id;
			break;
		case KVM_CPUID_FEATURES:
			/*
			 * KVM's hints (EDX) are the VMM's to give: KVM offers none.
			 * REALTIME says a vCPU never waits for a host CPU, so Linux
			 * drops PV spinlocks, PV TLB flush and PV sched yield (they
			 * only help a vCPU whose sibling was preempted) and polls
			 * before it halts (cpuidle-haltpoll). True only where the
			 * vCPUs own their CPUs, which the user asked for and domusd
			 * checked the pins of (cpu_dedicated, docs/sched.md).
			 */
			if (pv->realtime)
				e->edx |= 1u << KVM_HINTS_REALTIME;
			if (pv->mp_hidden)
				e->eax &= ~(uint32_t)CPU_PV_MP_FEATURES;
			break;
		}
	}
}

static int set_cpuid(int fd, const struct kvm_cpuid2 *sup, unsigned id, unsigned nvcpus,
		     const struct cpu_pv *pv)
{
	size_t sz = sizeof(*sup) + sup->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(sz);
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, sup, sz);
	cpu_cpuid_for_vcpu(c, id, nvcpus, pv);
	if (ioctl(fd, KVM_SET_CPUID2, c) < 0)
		ret = -errno;
	free(c);
	return ret;
}

static int set_lapic(int fd)
{
	struct kvm_lapic_state l;
	uint32_t *lint0 = (uint32_t *)(l.regs + 0x350), *lint1 = (uint32_t *)(l.regs + 0x360);

	if (ioctl(fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	/* LINT0 takes the 8259's ExtINT, LINT1 the NMI: what firmware sets up. */
	*lint0 = (*lint0 & ~0x700u) | (7u << 8);
	*lint1 = (*lint1 & ~0x700u) | (4u << 8);
	if (ioctl(fd, KVM_SET_LAPIC, &l) < 0)
		return -errno;
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64;
	s->db = !code64;
}

static int set_boot_regs(int fd, const struct boot_entry *entry)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;

	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	flat_segment(&sregs.cs, BOOT_CS, 0xb, entry->long_mode);
	flat_segment(&sregs.ds, BOOT_DS, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = BOOT_TSS;
	sregs.tr.limit = 0x67;
	sregs.tr.type = 0xb; /* busy TSS */
	sregs.tr.present = 1;
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 6 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	if (entry->long_mode) {
		sregs.cr0 = 0x80050033; /* PG, AM, WP, NE, ET, MP, PE */
		sregs.cr3 = BOOT_PML4_ADDR;
		sregs.cr4 = 0x20; /* PAE */
		sregs.efer = 0x500; /* LME, LMA */
	} else {
		sregs.cr0 = 0x11; /* PE, ET: the PVH entry runs with paging off */
		sregs.cr3 = 0;
		sregs.cr4 = 0;
		sregs.efer = 0;
	}
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry->rip;
	regs.rsi = entry->rsi;
	regs.rbx = entry->rbx;
	regs.rsp = BOOT_STACK_TOP;
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

int cpu_setup(int fd, const struct kvm_cpuid2 *supported, unsigned id, unsigned nvcpus,
	      const struct cpu_pv *pv, const struct boot_entry *entry)
{
	int ret;

	ret = set_cpuid(fd, supported, id, nvcpus, pv);
	if (ret == 0)
		ret = set_lapic(fd);
	/* Application processors wait for INIT/SIPI from the guest; KVM handles that. */
	if (ret == 0 && id == 0)
		ret = set_boot_regs(fd, entry);
	return ret;
}
