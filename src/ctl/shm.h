/*
 * domusd's shared-memory regions (docs/domusd.md): each a named memfd the
 * host can see (/proc/PID/fd of domusd, memfd:domus-shm:NAME), sealed at
 * its size, served to its peers by an ivshmem server of its own
 * (shm_server.h) on SOCKET_DIR/NAME.sock. A region lives until destroyed,
 * across its peers' restarts; not across domusd's (they live in its memory).
 *
 * Owners follow domains': a region belongs to the uid that created it (or
 * whose domain created it); that uid and root may see, attach to and
 * destroy it, no one else.
 */
#ifndef DOMUS_SHM_H
#define DOMUS_SHM_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "ctl/shm_server.h"
#include "domain/shm_spec.h"

#define SHM_MAX_REGIONS 256

struct shm_region {
	struct shm_region *next;
	char name[SHM_NAME_MAX];
	uint64_t size;
	unsigned vectors; /* 0 for a plain region */
	bool doorbell;
	uid_t owner_uid;
	gid_t owner_gid;
	time_t created;
	int memfd;
	struct shm_server server;
};

struct shm_registry {
	struct shm_region *regions; /* in name order */
	unsigned nregions;
	char dir[SHM_SOCKET_PATH_MAX - SHM_NAME_MAX - 6]; /* the sockets' directory */
	const struct watch_loop *loop;
	int listen_kind, peer_kind;
};

/*
 * An empty registry whose sockets go in dir (made 0711 if missing: anyone
 * may reach a socket whose name they know, only its mode admits them);
 * the servers' sockets are watched in loop with listen_kind and peer_kind.
 * 0 or -errno (dir too long, or not made).
 */
int shm_registry_init(struct shm_registry *r, const char *dir, const struct watch_loop *loop,
		      int listen_kind, int peer_kind) __attribute__((warn_unused_result));
/* Every region destroyed, peers dropped, sockets removed (domusd's stop). */
void shm_registry_free(struct shm_registry *r);

struct shm_region *shm_find(struct shm_registry *r, const char *name);
/* Whether uid may see, attach to and destroy reg: its owner and root may. */
bool shm_may_use(const struct shm_region *reg, uid_t uid);
/*
 * A new region: name, size and vectors as shm_check() has them, owned by
 * uid:gid, its memory zero, its server listening. 0 with *out, or -errno
 * with why in err: -EINVAL bad settings, -EEXIST the name is taken,
 * -ENOSPC SHM_MAX_REGIONS already, others from the system.
 */
int shm_create(struct shm_registry *r, const char *name, uint64_t size, unsigned vectors,
	       bool doorbell, uid_t uid, gid_t gid, struct shm_region **out, char *err,
	       size_t errlen) __attribute__((warn_unused_result));
/*
 * Ends reg: its peers are dropped (they keep the memory they mapped and
 * the doorbells they hold, but hear of no one new), its socket removed,
 * its memfd closed. Without force a region with peers is kept: -EBUSY
 * with who is attached in err. 0 or -EBUSY.
 */
int shm_destroy(struct shm_registry *r, struct shm_region *reg, bool force, char *err,
		size_t errlen);
/*
 * A domain's entry s (owned by uid:gid) against the registry: an existing
 * region must match its size, doorbell and vectors and be uid's (or uid
 * root); a missing one is created. 0 with *out; -EEXIST (a mismatch),
 * -EACCES (another's region), or shm_create's errors; why in err.
 */
int shm_attach_spec(struct shm_registry *r, const struct shm_config *s, uid_t uid, gid_t gid,
		    struct shm_region **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/*
 * reg as JSON: {"name", "size", "doorbell", "vectors", "owner", "created",
 * "socket", "refused", "dropped", "peers": [{"id", "pid", "uid"}]}.
 */
json_t *shm_region_json(const struct shm_region *reg);

#endif
