/*
 * Who asks domusd, and the files an API call names, opened with that
 * caller's rights. domusd is root; its clients are not: every path a
 * client hands over (kernel, ramdisk, disks and their backing chains,
 * pmem files, vhost-user sockets) is opened by a child that has taken the
 * client's uid, gid and groups, so the client reaches nothing it could not
 * open itself. Only the descriptors go on, to the processes that use them.
 */
#ifndef DOMUS_CALLER_H
#define DOMUS_CALLER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "domain/domcfg.h"
#include "vmm/blkctl.h"

#define CALLER_MAX_GROUPS 64

struct caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	unsigned ngroups;
	gid_t groups[CALLER_MAX_GROUPS];
};

/* The peer of a connected Unix socket (SO_PEERCRED, SO_PEERGROUPS). 0 or -errno. */
int caller_from_socket(int fd, struct caller *c);
/* domusd itself, for what it does on its own account (adopting domains at start). */
void caller_root(struct caller *c);
static inline bool caller_is_root(const struct caller *c)
{
	return c->uid == 0;
}

/* Every file of a domain, opened; -1 where the spec has none. */
struct caller_files {
	int kernel, ramdisk;
	int pmems[VM_MAX_PMEM];
	struct blkctl_image disks[VM_MAX_DISKS]; /* image: the file, or a connected vhost-user socket */
	int vif_sockets[DOMAIN_MAX_VIFS]; /* VIF_VHOST_USER: connected */
};

#define CALLER_OPEN_TIMEOUT_MS 10000

/*
 * Opens the files of spec as c would: kernel and ramdisk read-only, each
 * disk's image (and, for those domus-blk serves, its whole backing chain)
 * and pmem file as the spec says, vhost-user sockets connected. A caller
 * other than root gets regular files and sockets only: block and other
 * device files, and TAP interfaces, are root's. 0, or -errno with the
 * reason in err, naming the file (`ramdisk '/etc/shadow': permission
 * denied for uid 1001`), and nothing left open.
 */
int caller_open_files(const struct caller *c, const struct domain_spec *spec,
		      struct caller_files *out, char *err, size_t errlen);
/* The same for only the disks domus-blk serves (a restarted domusd serves them again). */
int caller_open_blk_disks(const struct caller *c, const struct domain_spec *spec,
			  struct caller_files *out, char *err, size_t errlen);
/* The caller as JSON ({"uid","gid","groups"}) for a domain's record, and back (NULL: root). */
json_t *caller_to_json(const struct caller *c);
void caller_from_json(const json_t *j, struct caller *c);
void caller_files_init(struct caller_files *f);
void caller_files_close(struct caller_files *f);

#endif
