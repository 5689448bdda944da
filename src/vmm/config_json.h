/*
 * A vm_config as JSON: how `domus run` hands domus-vmm the domain it
 * starts in the foreground (everything --help lists that the VMM itself
 * acts on; --net vfr's and domus-blk's disks arrive as vhost-user sockets,
 * their back-ends being the front's). The reader checks every field: the
 * file comes from another process.
 */
#ifndef DOMUS_CONFIG_JSON_H
#define DOMUS_CONFIG_JSON_H

#include <jansson.h>

#include "vmm/config.h"

/* Where a read config's strings live: vm_config points into it. */
struct vm_config_strings {
	char kernel[DISK_PATH_MAX];
	char initrd[DISK_PATH_MAX];
	char cmdline[4096];
};

/* NULL when out of memory, or -EINVAL-worthy: a nic still to be served by a domus-net. */
json_t *vm_config_to_json(const struct vm_config *cfg);
/* Fills cfg (its strings in s). 0, or -EINVAL with the field at fault in err. */
int vm_config_from_json(const json_t *j, struct vm_config *cfg, struct vm_config_strings *s,
			char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
