/* What a domain is made of: filled by the CLI or the config parser, checked by vm_config_check(). */
#ifndef DOMUS_CONFIG_H
#define DOMUS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/vfr.h"

#define VM_MAX_VCPUS 64
#define VM_GANG_SKEW_MAX_US 1000000 /* gang scheduling's bound at most 1 s */
#define VM_GANG_SKEW_DEFAULT_US 5000
#define VM_MAX_DISKS 16
#define VM_MAX_MEMORY_MIB (1024ULL * 1024) /* 1 TiB */
#define VM_DEFAULT_MEMORY_MIB 512
#define VM_DEFAULT_CMDLINE "console=ttyS0"

enum on_reboot { ON_REBOOT_RESTART, ON_REBOOT_EXIT };
enum console_input { CONSOLE_SERIAL, CONSOLE_VIRTIO };

#define DISK_PATH_MAX 4096

struct disk_config {
	char path[DISK_PATH_MAX]; /* an image, or a vhost-user back-end's socket */
	bool readonly;
	bool vhost_user; /* served by the vhost-user back-end listening at path */
	bool in_vmm;     /* served inside the VMM, not by a domus-blk process */
	bool qcow2;      /* a qcow2 image (domus-blk only); raw otherwise */
	bool direct;       /* domus-blk reads and writes it with O_DIRECT (cache=none, directsync) */
	bool writethrough; /* every write durable before it completes (cache=writethrough, directsync) */
	char vdev[16];     /* the name xl.cfg gave it (vdev=), or xvda, xvdb, ... by position */
	/*
	 * virtio-blk queues (queues=N, 1 to VM_MAX_DISK_QUEUES; 1: no
	 * multiqueue); 0: one per vCPU up to the cap (disk_queue_count).
	 */
	unsigned queues;
};

#define VM_MAX_DISK_QUEUES 16

/*
 * A virtio-pmem device: a file the guest sees as persistent memory, mapped
 * straight into its physical address space (DAX). Read-only unless given
 * with rw: sharing one base image between domains is what it is for.
 */
#define VM_MAX_PMEM 4

struct pmem_config {
	char path[DISK_PATH_MAX];
	bool readonly;
};

/*
 * "PATH[,ro|,rw]": the spec of --pmem and of an xl.cfg pmem entry. Returns 0,
 * or -EINVAL with why in err (the message names the spec, no prefix).
 */
int pmem_spec_parse(const char *spec, struct pmem_config *p, char *err, size_t errlen);

/*
 * A network interface: virtio-net on a vhost-user back-end's socket
 * (domus-net's port, under domusd or `domus run`'s own), or in the VMM on
 * a TAP interface.
 */
#define VM_MAX_NICS 8

/* `--net vfr`: the domain's own domus-net, one network with one port, the domain's. */
struct nic_vfr_config {
	uint32_t addr; /* the guest's, handed out by DHCP (host order) */
	uint8_t prefix;
	enum vfr_uplink_mode mode;
	enum vfr_action default_action;
	bool have_uplink;
	char uplink_tap[16];
	struct vfr_uplink_config uplink;
};

struct nic_config {
	uint8_t mac[6];
	char socket[108]; /* vhost-user; "" for the in-VMM device */
	char tap[16];     /* the in-VMM device's TAP interface */
	bool vfr;	  /* a port of `domus run`'s domus-net: socket is filled when it starts */
	struct nic_vfr_config v;
};

#define NIC_VFR_DEFAULT_IP "10.0.2.15/24"

/*
 * "tap=IFNAME[,mac=MAC]", "vhost-user:SOCKET[,mac=MAC]" or
 * "vfr[,ip=A.B.C.D/N][,mac=MAC][,uplink=TAP:ADDR/PREFIX[:GATEWAY]]
 * [,mode=none|routed|nat][,default=accept|drop|reject]": the spec of
 * --net. Without mac= one is made from index (52:54:00:12:34:5N, N the
 * index). vfr: ip= NIC_VFR_DEFAULT_IP unless given, mode nat with an
 * uplink, none without. 0, or -EINVAL with why in err.
 */
int nic_spec_parse(const char *spec, unsigned index, struct nic_config *n, char *err, size_t errlen);
/* "aa:bb:cc:dd:ee:ff" into mac; 0 or -EINVAL (not six hex pairs, or multicast). */
int mac_parse(const char *text, uint8_t mac[6]);

/*
 * An ivshmem device (QEMU's ivshmem spec): memory shared with other domains
 * or processes. Doorbell: path is an ivshmem server's Unix socket, which
 * hands over the memory (a memfd) and one eventfd per vector and peer; the
 * size is the server's. Plain: path is a file (or /dev/shm object) mapped
 * whole, size bytes (0: the file's size), no interrupts.
 */
#define VM_MAX_SHM 4
#define SHM_NAME_MAX 64

struct shm_config {
	char name[SHM_NAME_MAX]; /* the region's name, for messages and `domus shm-list` */
	char path[DISK_PATH_MAX];
	uint64_t size;
	bool doorbell;
	unsigned vectors; /* doorbell: interrupt vectors the device offers (1..) */
};

/*
 * "path=P[,name=N][,size=S][,doorbell=0|1][,vectors=N]": the spec of
 * `domus run --shm`. S takes a K, M or G suffix (binary); vectors (1..64,
 * default 1) only with doorbell=1; name defaults to "shmI", I the index.
 * 0, or -EINVAL with why in err (the message names the spec, no prefix).
 */
int shm_option_parse(const char *spec, unsigned index, struct shm_config *s, char *err,
		   size_t errlen);

/*
 * virtio-vsock. Hybrid (Firecracker's): the guest's connections to the host
 * (CID 2) port P go to the Unix socket "SOCKET_P"; a host program connects
 * to SOCKET and writes "CONNECT P\n" to reach the guest's port P. vhost:
 * the host kernel's vhost_vsock serves the device, host programs use AF_VSOCK.
 */
struct vsock_config {
	uint32_t cid;       /* the guest's context ID, 3 or more; 0: no vsock device */
	char socket[108];   /* hybrid: the host-side Unix socket */
	bool vhost;         /* served by /dev/vhost-vsock instead */
};

#define VSOCK_CID_MIN 3          /* 0 and 1 are reserved, 2 is the host */
#define VSOCK_CID_MAX 0xfffffffeu /* 2^32-1 is VMADDR_CID_ANY */
/* "_4294967295": what the guest-initiated connections add to the socket's path. */
#define VSOCK_PORT_SUFFIX_MAX 11

/*
 * "cid=N,socket=PATH", "cid=N,vhost" or "cid=N,backend=vhost|hybrid"
 * (hybrid needs socket=): the spec of --vsock and of xl.cfg's vsock key.
 * 0, or -EINVAL with why in err (the message names the spec, no prefix).
 */
int vsock_spec_parse(const char *spec, struct vsock_config *v, char *err, size_t errlen);
/* A vsock setting in range (cid 0: none); -EINVAL with why in err. */
int vm_config_check_vsock(const struct vsock_config *v, char *err, size_t errlen);

/* The cache=MODE of a disk: writeback, writethrough, none or directsync; -EINVAL otherwise. */
int disk_cache_parse(const char *mode, struct disk_config *d);
/* The name of a disk's cache mode. */
const char *disk_cache_name(const struct disk_config *d);
/* The N of queues=N: 1 to VM_MAX_DISK_QUEUES into d->queues; -EINVAL otherwise. */
int disk_queues_parse(const char *text, struct disk_config *d);
/* How many queues disk d of a domain with vcpus vCPUs has: its queues=, else a vCPU's each, capped. */
unsigned disk_queue_count(const struct disk_config *d, unsigned vcpus);

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	uint64_t memory_mib; /* what the domain starts with: its balloon holds the rest of maxmem */
	uint64_t maxmem_mib; /* its RAM; 0 (domus run without --maxmem): memory_mib */
	uint64_t minmem_mib; /* the balloon never leaves it less; 0: vm_config_minmem() */
	bool balloon;        /* a virtio-balloon device */
	bool balloon_deflate_on_oom; /* the guest may deflate by itself when it runs out */
	unsigned vcpus;
	unsigned gang_skew_us; /* gang scheduling's bound on a vCPU's lead (vmm/gang.h), 0: off */
	/*
	 * The vCPUs own their host CPUs (xl.cfg cpu_dedicated, under domusd):
	 * CPUID gives the guest KVM_HINTS_REALTIME (vmm/cpu.c).
	 */
	bool cpu_dedicated;
	/* xl.cfg pv_mp = 0: CPUID hides KVM's features for MP guests (vmm/cpu.c). */
	bool pv_mp_hidden;
	struct disk_config disks[VM_MAX_DISKS];
	unsigned ndisks;
	struct pmem_config pmems[VM_MAX_PMEM];
	unsigned npmems;
	struct nic_config nics[VM_MAX_NICS];
	unsigned nnics;
	struct shm_config shms[VM_MAX_SHM];
	unsigned nshms;
	struct vsock_config vsock;
	enum on_reboot on_reboot;
	enum console_input console;
	int verbose;
	bool dry_run; /* check and print the configuration, boot nothing */
};

void vm_config_defaults(struct vm_config *cfg);
/* The domain's RAM in MiB: maxmem when a balloon holds the difference, memory otherwise. */
uint64_t vm_config_ram_mib(const struct vm_config *cfg);
/* The least memory the balloon may leave: minmem, or by default a quarter of memory, at least 64 MiB. */
uint64_t vm_config_minmem(const struct vm_config *cfg);
/* memory, maxmem and minmem in range and in order; -EINVAL with why in err. */
int vm_config_check_memory(const struct vm_config *cfg, char *err, size_t errlen);

#endif
