/*
 * domus-vmm's confinement under domusd, entered once the domain's files are
 * open (they came as descriptors) and before the guest runs: the domain's
 * own user, no new privileges, a mount namespace whose root is an empty
 * read-only tmpfs holding only the directories of the back-ends' sockets
 * it reconnects to, and limits. What it does then it does through
 * descriptors it holds.
 */
#ifndef DOMUS_CONFINE_H
#define DOMUS_CONFINE_H

#include <stddef.h>
#include <sys/types.h>

#include "vmm/config.h"

/*
 * A domain's processes run as uid (and gid) VMM_UID_BASE + domid: a user of
 * their own, so no domain's process can signal, trace or read another's. The
 * range is one systemd leaves unused (docs/domusd.md); no passwd entry.
 */
#define VMM_UID_BASE 1879048192u
/*
 * `domus run`'s domains have no domid: each takes VMM_RUN_DOMID_BASE plus
 * the pid of its front (below 2^22), a range domusd's domids never reach.
 */
#define VMM_RUN_DOMID_BASE 0x100000u

uid_t vmm_domain_uid(unsigned domid);
/*
 * Confines the calling process (domus-vmm of domain domid, root so far):
 * /dev/kvm opened once and used as vm_kvm_device from then on; a new mount
 * namespace with only the directories of the back-ends' sockets cfg names
 * (vhost-user paths not passed as descriptors) at their paths; uid and gid
 * of the domain, which must be able to search those directories and
 * connect to its sockets there (domusd sees to it); no_new_privs; not
 * dumpable; rlimits. 0, or -errno with what failed in err.
 */
int vmm_confine(const struct vm_config *cfg, unsigned domid, char *err, size_t errlen);

/*
 * Loads the system-call filter of the control thread (process-wide: every
 * thread made later has it too), after which each kind of thread loads its
 * own as it starts (vmm_confine_thread). Anything outside kills the
 * process. 0, or -errno with why in err.
 */
int vmm_confine_calls(char *err, size_t errlen);

/*
 * From now on connections by path (vhost-user back-ends, and reconnecting
 * to them) are asked of the front at fd, over a SOCK_SEQPACKET socket: the
 * path goes there, "ok" with the connected descriptor or "error ERRNO"
 * comes back. A confined domus-vmm under `domus run` cannot reach a
 * user's back-end's socket itself; the user's front can.
 */
void vmm_confine_broker(int fd);

enum vmm_thread {
	VMM_THREAD_VCPU,   /* KVM_RUN and the devices' work on exits: no sockets, no threads */
	VMM_THREAD_DEVICE, /* a device's I/O thread: may reconnect to its back-end */
};
/* The calling thread's filter on top, in a confined process (else nothing). 0 or -errno. */
int vmm_confine_thread(enum vmm_thread kind);

/*
 * The suite's hook (tests/vm/daemon-confined.test): with
 * DOMUS_VMM_TEST_FORBIDDEN_CALL set, a confined vCPU thread resumed after a
 * pause asks for a socket, which its filter forbids. After a pause, so that
 * the domain has been reported started before it dies, every time.
 */
void vmm_confine_test_forbidden_call(void);

#endif
