/* The xl.cfg parser and the domain keys on hostile config files. */
#include <stdint.h>
#include <stdlib.h>

#include "domain/domcfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct domain_spec spec;
	struct xl_config xl;
	char err[512];

	if (xl_parse((const char *)data, size, "fuzz.cfg", &xl, err, sizeof(err)) == 0) {
		(void)domain_spec_from_xl(&xl, "fuzz.cfg", &spec, err, sizeof(err));
		xl_free(&xl);
	}
	return 0;
}
