/* `domus run` argument parsing: the input, split at NUL bytes, is argv. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct domain_spec spec;
	char *buf = malloc(size + 1), *argv[64] = {"run"};
	char err[256];
	int argc = 1;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	for (size_t i = 0; i <= size && argc < 63;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	run_args_parse(argc, argv, &spec, err, sizeof(err));
	free(buf);
	return 0;
}
