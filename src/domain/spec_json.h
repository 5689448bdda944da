/*
 * A domain's configuration as JSON: the same keys and values as xl.cfg
 * (strings, numbers, lists of strings), so one set of checks serves both.
 */
#ifndef DOMUS_SPEC_JSON_H
#define DOMUS_SPEC_JSON_H

#include <jansson.h>

#include "domain/domcfg.h"

/* Fills spec from a JSON object; `what` names the source in messages. */
int domain_spec_from_json(const json_t *obj, const char *what, struct domain_spec *spec, char *err,
			  size_t errlen) __attribute__((warn_unused_result));
/* The object domain_spec_from_json reads back into the same spec; NULL on ENOMEM. */
json_t *domain_spec_to_json(const struct domain_spec *spec);
/* Points vm.kernel/initrd/cmdline at spec's own buffers again, after a copy. */
void domain_spec_fixup(struct domain_spec *spec);

#endif
