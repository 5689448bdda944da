/*
 * domus disk-qos ...: a domain's disk QoS (the disk scheduler's), shown and
 * changed live; domus blk-sched ...: the scheduler's host-wide settings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/cli.h"
#include "ctl/client.h"

static const char disk_qos_usage[] =
	"usage: domus disk-qos DOMAIN [VDEV] [KEY=VALUE...]   (no KEY: show; VDEV: that disk alone)\n"
	"       domus disk-qos DOMAIN [VDEV] reset            (VDEV: back with the domain's disks)\n"
	"keys: reserve-iops reserve-bps weight limit-iops limit-bps burst-iops burst-bps burst-ms\n"
	"      class=interactive|batch deadline-ms (0 or none clears a rate; bytes take k, m, g)\n";

static double field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : 0;
}

static void print_groups(const json_t *reply)
{
	const json_t *g;
	size_t i;

	printf("%-10s %-16s %-40s %10s %10s %9s %7s %7s %9s %9s %8s\n", "GROUP", "DISKS", "QOS", "REQUESTS",
	       "MIB", "THROTTLED", "WAITING", "RES-MET", "RES-PHASE", "WT-PHASE", "LIMITED");
	json_array_foreach(json_object_get(reply, "groups"), i, g) {
		const json_t *st = json_object_get(g, "stats"), *disk, *met = json_object_get(st, "reserve_met_percent");
		char disks[64] = "", metbuf[16] = "-";
		size_t j, n = 0;

		json_array_foreach(json_object_get(g, "disks"), j, disk)
			if (n < sizeof(disks))
				n += (size_t)snprintf(disks + n, sizeof(disks) - n, "%s%s", j ? "," : "",
						      json_string_value(disk));
		if (json_is_integer(met))
			snprintf(metbuf, sizeof(metbuf), "%lld%%", json_integer_value(met));
		printf("%-10s %-16s %-40s %10.0f %10.1f %8.1fs %7.0f %7s %9.0f %9.0f %8.0f\n",
		       json_string_value(json_object_get(g, "group")), disks,
		       *json_string_value(json_object_get(g, "qos")) ? json_string_value(json_object_get(g, "qos"))
								      : "(defaults)",
		       field(st, "served_ops"), field(st, "served_bytes") / 1048576.0, field(st, "throttled_seconds"),
		       field(st, "waiting"), metbuf, field(st, "reserve_ops"), field(st, "weight_ops"),
		       field(st, "limited"));
	}
}

int cli_request_and_print(const char *path, json_t *body, void (*print)(const json_t *reply))
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_t *reply = NULL;
	int status;

	json_decref(body);
	status = client_request(cli_client(), text ? "PUT" : "GET", path, text ? "application/json" : NULL, text,
				text ? strlen(text) : 0, &reply, NULL);
	free(text);
	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status >= 300)
		return cli_refused(reply, status);
	if (cli_want_json()) {
		char *out = json_dumps(reply, JSON_INDENT(2));
		if (out)
			puts(out);
		free(out);
	} else {
		print(reply);
	}
	json_decref(reply);
	return 0;
}

int cmd_disk_qos(int argc, char **argv)
{
	const char *domain, *vdev = NULL;
	char path[160], set[1024] = "";
	bool reset = false;
	json_t *body = NULL;
	size_t n = 0;

	if (argc < 2 || argv[1][0] == '-') {
		fputs(disk_qos_usage, stderr);
		return EXIT_USAGE;
	}
	domain = argv[1];
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "reset")) {
			reset = true;
		} else if (strchr(argv[i], '=')) {
			if (n + strlen(argv[i]) + 2 > sizeof(set)) {
				fprintf(stderr, "domus disk-qos: too many settings\n");
				return EXIT_USAGE;
			}
			n += (size_t)snprintf(set + n, sizeof(set) - n, "%s%s", n ? "," : "", argv[i]);
		} else if (!vdev && i == 2) {
			vdev = argv[i];
		} else {
			fprintf(stderr, "domus disk-qos: '%s' is not KEY=VALUE\n%s", argv[i], disk_qos_usage);
			return EXIT_USAGE;
		}
	}
	if (reset && n) {
		fprintf(stderr, "domus disk-qos: reset takes no settings\n");
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/domains/%.64s/disk-qos", domain);
	if (reset || n) {
		body = json_object();
		if (vdev)
			json_object_set_new(body, "vdev", json_string(vdev));
		if (reset)
			json_object_set_new(body, "reset", json_true());
		else
			json_object_set_new(body, "set", json_string(set));
	} else if (vdev) {
		fprintf(stderr, "domus disk-qos: %s: give KEY=VALUE settings or reset\n%s", vdev, disk_qos_usage);
		return EXIT_USAGE;
	}
	return cli_request_and_print(path, body, print_groups);
}

static const char blk_sched_usage[] =
	"usage: domus blk-sched [KEY=VALUE...]   (no KEY: show)\n"
	"keys: op-ns byte-ps (the cost model: bench/blk-qos measures it), capacity-pct (the share of\n"
	"      the disk reservations may take), depth (requests in flight), delay-us (a slow disk)\n";

static void print_settings(const json_t *reply)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)reply, key, v)
		printf("%-13s: %lld\n", key, json_is_integer(v) ? json_integer_value(v) : 0);
}

int cmd_blk_sched(int argc, char **argv)
{
	char set[512] = "";
	size_t n = 0;

	for (int i = 1; i < argc; i++) {
		if (!strchr(argv[i], '=') || n + strlen(argv[i]) + 2 > sizeof(set)) {
			fprintf(stderr, "domus blk-sched: '%s' is not KEY=VALUE\n%s", argv[i], blk_sched_usage);
			return EXIT_USAGE;
		}
		n += (size_t)snprintf(set + n, sizeof(set) - n, "%s%s", n ? "," : "", argv[i]);
	}
	return cli_request_and_print("/v1/host/blk-sched", n ? json_pack("{s:s}", "set", set) : NULL,
				 print_settings);
}
