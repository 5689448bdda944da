#include "ctl/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int shm_registry_init(struct shm_registry *r, const char *dir, const struct watch_loop *loop,
		      int listen_kind, int peer_kind)
{
	struct stat st;

	memset(r, 0, sizeof(*r));
	if (strlen(dir) >= sizeof(r->dir))
		return -ENAMETOOLONG;
	strcpy(r->dir, dir);
	r->loop = loop;
	r->listen_kind = listen_kind;
	r->peer_kind = peer_kind;
	if (mkdir(dir, 0711) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* Searchable, not listable: one may reach a region's socket, not see the others' names. */
	return chmod(dir, 0711) < 0 ? -errno : 0;
}

struct shm_region *shm_find(struct shm_registry *r, const char *name)
{
	for (struct shm_region *reg = r->regions; reg; reg = reg->next)
		if (!strcmp(reg->name, name))
			return reg;
	return NULL;
}

bool shm_may_use(const struct shm_region *reg, uid_t uid)
{
	return uid == 0 || uid == reg->owner_uid;
}

static void region_free(struct shm_region *reg)
{
	shm_server_stop(&reg->server);
	if (reg->memfd >= 0)
		close(reg->memfd);
	free(reg);
}

int shm_create(struct shm_registry *r, const char *name, uint64_t size, unsigned vectors,
	       bool doorbell, uid_t uid, gid_t gid, struct shm_region **out, char *err,
	       size_t errlen)
{
	char memfd_name[SHM_NAME_MAX + 16], path[SHM_SOCKET_PATH_MAX];
	struct shm_region *reg, **p;
	int ret;

	if (shm_name_check(name, err, errlen) < 0 ||
	    shm_check(size, vectors, doorbell, err, errlen) < 0)
		return -EINVAL;
	if (shm_find(r, name)) {
		snprintf(err, errlen, "a region named '%s' exists already", name);
		return -EEXIST;
	}
	if (r->nregions >= SHM_MAX_REGIONS) {
		snprintf(err, errlen, "domusd keeps at most %d regions", SHM_MAX_REGIONS);
		return -ENOSPC;
	}
	reg = calloc(1, sizeof(*reg));
	if (!reg) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	reg->server.listen_fd = -1;
	snprintf(reg->name, sizeof(reg->name), "%s", name);
	reg->size = size;
	reg->vectors = doorbell ? vectors : 0;
	reg->doorbell = doorbell;
	reg->owner_uid = uid;
	reg->owner_gid = gid;
	reg->created = time(NULL);
	/* Named so the host sees whose it is in /proc/PID/fd and /proc/PID/maps. */
	snprintf(memfd_name, sizeof(memfd_name), "domus-shm:%s", name);
	reg->memfd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (reg->memfd < 0 || ftruncate(reg->memfd, (off_t)size) < 0 ||
	    /* Its size is the peers' BAR: no one may change it under them. */
	    fcntl(reg->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		ret = -errno;
		snprintf(err, errlen, "region '%s': its memory: %s", name, strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s.sock", r->dir, name);
	ret = shm_server_start(&reg->server, path, reg->memfd, reg->vectors, uid, gid, r->loop,
			       r->listen_kind, r->peer_kind);
	if (ret < 0) {
		snprintf(err, errlen, "region '%s': its socket %s: %s", name, path, strerror(-ret));
		goto fail;
	}
	for (p = &r->regions; *p && strcmp((*p)->name, name) < 0; p = &(*p)->next)
		;
	reg->next = *p;
	*p = reg;
	r->nregions++;
	*out = reg;
	return 0;
fail:
	region_free(reg);
	return ret;
}

int shm_destroy(struct shm_registry *r, struct shm_region *reg, bool force, char *err,
		size_t errlen)
{
	if (reg->server.npeers && !force) {
		size_t n = (size_t)snprintf(err, errlen, "region '%s' has %u peer(s) attached (pid",
					    reg->name, reg->server.npeers);
		for (unsigned id = 0; id < SHM_MAX_PEERS && n < errlen; id++)
			if (reg->server.peers[id])
				n += (size_t)snprintf(err + n, errlen - n, " %d",
						      (int)reg->server.peers[id]->pid);
		if (n < errlen)
			snprintf(err + n, errlen - n,
				 "); force (shm-destroy --force, ?force=1) drops them");
		return -EBUSY;
	}
	for (struct shm_region **p = &r->regions; *p; p = &(*p)->next)
		if (*p == reg) {
			*p = reg->next;
			r->nregions--;
			break;
		}
	region_free(reg);
	return 0;
}

void shm_registry_free(struct shm_registry *r)
{
	while (r->regions) {
		struct shm_region *reg = r->regions;
		r->regions = reg->next;
		region_free(reg);
	}
	r->nregions = 0;
}

int shm_attach_spec(struct shm_registry *r, const struct shm_config *s, uid_t uid, gid_t gid,
		    struct shm_region **out, char *err, size_t errlen)
{
	struct shm_region *reg = shm_find(r, s->name);

	if (!reg)
		return shm_create(r, s->name, s->size, s->vectors, s->doorbell, uid, gid, out, err,
				  errlen);
	if (!shm_may_use(reg, uid)) {
		snprintf(err, errlen,
			 "region '%s' belongs to uid %u; a domain of uid %u may not attach to it",
			 reg->name, (unsigned)reg->owner_uid, (unsigned)uid);
		return -EACCES;
	}
	if (reg->size != s->size || reg->doorbell != s->doorbell || reg->vectors != s->vectors) {
		char have[32], want[32];
		shm_size_format(reg->size, have, sizeof(have));
		shm_size_format(s->size, want, sizeof(want));
		snprintf(
		    err, errlen,
		    "region '%s' exists as size=%s,doorbell=%d,vectors=%u; the domain asks for "
		    "size=%s,doorbell=%d,vectors=%u",
		    reg->name, have, reg->doorbell, reg->vectors, want, s->doorbell, s->vectors);
		return -EEXIST;
	}
	*out = reg;
	return 0;
}

json_t *shm_region_json(const struct shm_region *reg)
{
	json_t *peers = json_array();
	json_t *o;

	for (unsigned id = 0; id < SHM_MAX_PEERS; id++) {
		const struct shm_peer *p = reg->server.peers[id];
		if (p)
			json_array_append_new(peers,
					      json_pack("{s:i,s:i,s:i}", "id", (int)p->id, "pid",
							(int)p->pid, "uid", (int)p->uid));
	}
	o = json_pack("{s:s,s:I,s:b,s:i,s:i,s:I,s:s,s:I,s:I,s:o}", "name", reg->name, "size",
		      (json_int_t)reg->size, "doorbell", reg->doorbell, "vectors",
		      (int)reg->vectors, "owner", (int)reg->owner_uid, "created",
		      (json_int_t)reg->created, "socket", reg->server.path, "refused",
		      (json_int_t)reg->server.refused, "dropped", (json_int_t)reg->server.dropped,
		      "peers", peers);
	return o;
}
