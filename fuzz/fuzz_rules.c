/*
 * The VFR's rule parser on hostile text: whatever parses prints to text
 * that parses back to the same rule and prints the same again; then the
 * rule is matched against a packet and checked against itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[VFR_RULE_TEXT_MAX + 1], out[VFR_RULE_TEXT_MAX], again[VFR_RULE_TEXT_MAX];
	char err[128];
	struct vfr_rule r, back;
	struct vfr_match_input in = {.dir = VFR_DIR_IN,
				     .proto = 6,
				     .src = 0x0a000105,
				     .dst = 0x0a000207,
				     .has_ports = true,
				     .sport = 1024,
				     .dport = 80};

	if (size > VFR_RULE_TEXT_MAX)
		size = VFR_RULE_TEXT_MAX;
	memcpy(text, data, size);
	text[size] = 0;
	if (vfr_rule_parse(text, &r, err, sizeof(err))) {
		if (!err[0])
			abort(); /* every error says what is wrong */
		return 0;
	}
	if (vfr_rule_print(&r, out, sizeof(out)) >= sizeof(out))
		abort();
	if (vfr_rule_parse(out, &back, err, sizeof(err)) || !vfr_rule_equal(&r, &back))
		abort();
	vfr_rule_print(&back, again, sizeof(again));
	if (strcmp(out, again))
		abort();
	if (!vfr_rule_covers(&r, &back))
		abort(); /* a rule covers itself */
	(void)vfr_rule_matches(&r, &in);
	return 0;
}
