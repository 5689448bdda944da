/*
 * Shared-memory regions as a domain's config and domusd's API name them
 * (QEMU's ivshmem, docs/config.md's shm = [...]): the rules every region
 * follows, whoever creates it, and the text of one shm entry.
 *
 *   shm = ['name=chan0,size=4M,doorbell=1,vectors=2']
 */
#ifndef DOMUS_SHM_SPEC_H
#define DOMUS_SHM_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

#define SHM_SIZE_MIN 4096ull	  /* one page */
#define SHM_SIZE_MAX (1ull << 30) /* 1 GiB: a BAR the guest maps whole */
#define SHM_VECTORS_MAX 64	  /* MSI-X vectors of one ivshmem-doorbell */
#define SHM_VECTORS_DEFAULT 1

/*
 * A region's name: 1 to SHM_NAME_MAX - 1 bytes of letters, digits, '.',
 * '_' and '-', not starting with '.' (it names a socket file), as a
 * domain's. 0 or -EINVAL with why in err.
 */
int shm_name_check(const char *name, char *err, size_t errlen);
/* "4096", "64K", "4M", "1G" (binary multiples, either case) into *bytes. 0 or -EINVAL. */
int shm_size_parse(const char *text, uint64_t *bytes);
/*
 * The rest of a region's rules: size a power of two from SHM_SIZE_MIN to
 * SHM_SIZE_MAX; a doorbell region 1 to SHM_VECTORS_MAX vectors, a plain
 * one none. 0 or -EINVAL with why in err.
 */
int shm_check(uint64_t size, unsigned vectors, bool doorbell, char *err, size_t errlen);
/*
 * One entry of shm = [...]: comma-separated name=, size= (both needed),
 * doorbell=0|1 (1 if not given), vectors=N (doorbell only; 1 if not
 * given), path= (last: the rest of the entry; the ivshmem server's socket,
 * which domusd fills in itself and refuses from its clients). 0, or
 * -EINVAL with the entry and what is wrong in err.
 */
int shm_spec_parse(const char *spec, struct shm_config *s, char *err, size_t errlen);
/* The entry back as text that shm_spec_parse reads (size with the largest exact suffix). */
void shm_spec_format(const struct shm_config *s, char *buf, size_t len);
/* "4M" for 4 MiB: the largest exact binary suffix. */
void shm_size_format(uint64_t bytes, char *buf, size_t len);

#endif
