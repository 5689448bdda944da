/* The kernel-image parser (bzImage and PVH ELF) and the fit check on hostile files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kernel_image k;
	char err[256];
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (kernel_parse(&k, copy, size, err, sizeof(err)) == 0) {
		/* kernel_parse owns the buffer now. */
		boot_check_fit(&k, size, "console=ttyS0", 256ULL << 20, err, sizeof(err));
		kernel_free(&k);
	} else {
		free(copy);
	}
	return 0;
}
