/*
 * A domain's configuration from xl.cfg settings: which keys domus knows,
 * what values they take, and how they become a vm_config. Unknown keys are
 * errors naming the key and its line, never silently ignored.
 */
#ifndef DOMUS_DOMCFG_H
#define DOMUS_DOMCFG_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "blk/qos.h"
#include "domain/xlcfg.h"
#include "vmm/config.h"

#define DOMAIN_NAME_MAX 64
#define DOMAIN_MAX_VIFS 8

enum domain_action {
	ACTION_DESTROY,
	ACTION_RESTART,
	ACTION_PRESERVE,
};

enum vif_backend {
	VIF_DOMUS_NET = 0, /* a port of domus-net, the firewall-router (domusd only) */
	VIF_VMM,	   /* backendtype=vmm: the in-VMM device on TAP vifname */
	VIF_VHOST_USER,	   /* backendtype=vhost-user: any back-end listening at socket */
};

struct vif_config {
	char mac[18];	 /* "" when the backend chooses */
	char bridge[64]; /* the network to join */
	char ip[64];
	enum vif_backend backend;
	char vifname[16]; /* VIF_VMM: the TAP interface */
	char socket[108]; /* VIF_VHOST_USER */
	char rsip[16];	  /* VIF_DOMUS_NET on an RSIP network: the slice "START-END" asked for */
};

#define DOMAIN_CPUS_MAX 64 /* one vCPU's affinity in the list form of cpus */

struct domain_spec {
	char name[DOMAIN_NAME_MAX];
	char uuid[37];
	char kernel[DISK_PATH_MAX];
	char ramdisk[DISK_PATH_MAX];
	char cmdline[2048];
	struct vm_config vm; /* kernel/initrd/cmdline point into the buffers above */
	unsigned maxvcpus;
	enum domain_action on_poweroff, on_reboot, on_crash;
	char cpus[256];      /* vCPU affinity, xl's syntax ("0-3,5"), "" for any */
	/*
	 * cpus = ["0", "2-3"]: one affinity per vCPU (vCPU i: vcpu_cpus[i]; a
	 * vCPU past the list runs anywhere), cpus then "". 0: cpus is for all.
	 */
	unsigned nvcpu_cpus;
	char vcpu_cpus[VM_MAX_VCPUS][DOMAIN_CPUS_MAX];
	unsigned cpu_weight; /* credit scheduler weight, default 256 */
	unsigned cap;        /* percent of one CPU, 0 for none */
	/*
	 * gang = 1: the VMM co-schedules the vCPUs (vmm/gang.h), holding one
	 * that runs gang_skew_ms ahead of the slowest; -1: the host's default
	 * (domusd --gang). spec.vm.gang_skew_us follows from both.
	 */
	int gang;
	unsigned gang_skew_ms;
	/*
	 * cpu_dedicated = 1: the user promises the vCPUs their host CPUs, so
	 * the guest is told it never waits for one (spec.vm.cpu_dedicated).
	 * Holds only with every vCPU pinned to one CPU, no two on the same
	 * (domain_spec_check_dedicated).
	 */
	bool cpu_dedicated;
	/*
	 * pv_mp = 0: the guest is not offered KVM's features for MP guests on
	 * a shared host (spec.vm.pv_mp_hidden, vmm/cpu.c); 1, the default, offers them.
	 */
	bool pv_mp;
	unsigned nvifs;
	struct vif_config vifs[DOMAIN_MAX_VIFS];
	/*
	 * Disk QoS (blk/qos.h, canonical text, "" for the defaults): the
	 * domain's disks share disk_qos as one group, except those given one
	 * of their own (disk_qos = ["VDEV: SPEC"]).
	 */
	char disk_qos[BLK_QOS_TEXT_MAX];
	bool disk_qos_own[VM_MAX_DISKS];
	char disk_qos_disk[VM_MAX_DISKS][BLK_QOS_TEXT_MAX];
};

/* A domain with nothing set: the vm_config defaults, destroy/restart/destroy, weight 256. */
void domain_spec_defaults(struct domain_spec *spec);
/* Fills spec from parsed settings; `file` names the source in messages. */
int domain_spec_from_xl(const struct xl_config *xl, const char *file, struct domain_spec *spec,
			char *err, size_t errlen) __attribute__((warn_unused_result));
/* Reads and parses an xl.cfg file into spec. */
int domain_spec_load(const char *path, struct domain_spec *spec, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* One entry of disk = [...] in xl-disk-configuration(5) syntax, key=value or positional. */
int disk_spec_parse(const char *spec, struct disk_config *d, char *err, size_t errlen);
/*
 * One entry of disk_qos = [...]: "SPEC" for the domain's disks together,
 * "VDEV: SPEC" for one disk alone. Sets *vdev ("" for the domain) and the
 * canonical spec in out. 0 or -EINVAL with why in err.
 */
int disk_qos_entry_parse(const char *entry, char *vdev, size_t vdevlen, char *out, size_t outlen,
			 char *err, size_t errlen);
/* The index of the disk called vdev in spec, or -1. */
int domain_spec_find_disk(const struct domain_spec *spec, const char *vdev);
/* One entry of vif = [...]: comma-separated key=value pairs. */
int vif_spec_parse(const char *spec, struct vif_config *v, char *err, size_t errlen);
/*
 * The VMM's view of vif index: its MAC (or 52:54:00:12:34:5N), its TAP or
 * socket; a domus-net vif has neither until domusd gives it its port.
 */
void vif_to_nic(const struct vif_config *v, unsigned index, struct nic_config *n);
const char *domain_action_name(enum domain_action a);
/*
 * xl's CPU list ("0-3,5"): 1 with the CPUs in set and the highest in
 * *highest, 0 for "all" or "", -EINVAL if malformed or beyond CPU_SETSIZE.
 */
int cpulist_parse(const char *s, cpu_set_t *set, unsigned *highest);
/* Sets spec->vm.gang_skew_us from gang, or host_default (0 or 1) where the domain did not say. */
void domain_spec_gang(struct domain_spec *spec, int host_default);
/* vCPU vcpu's affinity as the config gives it: a CPU list, or "" for any CPU. */
const char *domain_vcpu_cpus(const struct domain_spec *spec, unsigned vcpu);
/*
 * Pins vCPU vcpu (-1: every vCPU) to cpus ("all" or "": any CPU) in spec,
 * moving to the list form when one vCPU differs; a dedicated domain's vCPUs
 * keep a CPU each. 0, or -EINVAL with why (spec then unchanged).
 */
int domain_spec_pin(struct domain_spec *spec, int vcpu, const char *cpus, char *err, size_t errlen);
/*
 * What cpu_dedicated = 1 needs: each of the domain's vCPUs (maxvcpus)
 * pinned to one host CPU, no two to the same. 0 (also for a domain that is
 * not dedicated), or -EINVAL with why in err.
 */
int domain_spec_check_dedicated(const struct domain_spec *spec, char *err, size_t errlen);
/* A host CPU both dedicated domains own, or -1 (always -1 unless both are dedicated). */
int domain_spec_dedicated_overlap(const struct domain_spec *a, const struct domain_spec *b);
/* Prints the resolved configuration, one `key = value` per line (the dry-run output). */
void domain_spec_print(const struct domain_spec *spec, FILE *f);

#endif
