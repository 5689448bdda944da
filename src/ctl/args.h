#ifndef DOMUS_ARGS_H
#define DOMUS_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "domain/domcfg.h"
#include "vmm/config.h"

/*
 * Parses the options of `domus run` (argv[0] is the verb) into spec->vm;
 * with --config FILE, the file's settings come first and the other options
 * override them. Returns 0, or -EINVAL with a message naming the bad
 * argument in err, or 1 when --help was asked for.
 */
int run_args_parse(int argc, char **argv, struct domain_spec *spec, char *err, size_t errlen);
/* Parses "PATH[,ro|,rw]". Returns 0 or -EINVAL. */
int disk_arg_parse(const char *arg, struct disk_config *d, char *err, size_t errlen);
/*
 * A memory size as `xl mem-set` takes it: MiB, or a number with a suffix
 * b, k, m, g or t (case ignored), in whole MiB. 0 or -EINVAL.
 */
int mem_size_parse(const char *s, uint64_t *mib);
extern const char run_usage[];

#endif
