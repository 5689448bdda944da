/* domus-vmm's foreground configuration (vmm/config_json.h): any JSON, checked field by field. */
#include <stdint.h>
#include <stdlib.h>

#include "vmm/config_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vm_config cfg;
	static struct vm_config_strings strings;
	json_error_t jerr;
	json_t *j = json_loadb((const char *)data, size, JSON_ALLOW_NUL, &jerr);
	char err[512];

	if (j && vm_config_from_json(j, &cfg, &strings, err, sizeof(err)) == 0) {
		/* What was read writes out again, as the front would. */
		json_t *again = vm_config_to_json(&cfg);
		json_decref(again);
	}
	json_decref(j);
	return 0;
}
