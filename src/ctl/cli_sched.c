/*
 * domus sched-credit, vcpu-pin, vcpu-list: a domain's CPU shares and its
 * vCPUs' affinity, shown and changed live, as xl's verbs of those names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/cli.h"
#include "ctl/client.h"

static const char sched_credit_usage[] =
	"usage: domus sched-credit [-d DOMAIN [-w WEIGHT] [-c CAP]]\n"
	"       WEIGHT 1-65535 (256: the default share), CAP percent of one CPU (0: none)\n";

static void print_sched_row(const json_t *o, const char *name_key)
{
	printf("%-32s %5lld %6lld %4lld\n", json_string_value(json_object_get(o, name_key)),
	       json_integer_value(json_object_get(o, "domid")), json_integer_value(json_object_get(o, "weight")),
	       json_integer_value(json_object_get(o, "cap")));
}

static void print_sched(const json_t *reply)
{
	printf("%-32s %5s %6s %4s\n", "Name", "ID", "Weight", "Cap");
	print_sched_row(reply, "domain");
}

static void print_sched_all(const json_t *reply)
{
	const json_t *d;
	size_t i;

	printf("%-32s %5s %6s %4s\n", "Name", "ID", "Weight", "Cap");
	json_array_foreach(json_object_get(reply, "domains"), i, d)
		printf("%-32s %5lld %6lld %4lld\n", json_string_value(json_object_get(d, "name")),
		       json_integer_value(json_object_get(d, "domid")),
		       json_integer_value(json_object_get(d, "cpu_weight")),
		       json_integer_value(json_object_get(d, "cap")));
}

/* A whole decimal number, or -1. */
static long long whole(const char *s)
{
	char *end;
	long long v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 12)
		return -1;
	v = strtoll(s, &end, 10);
	return v;
}

int cmd_sched_credit(int argc, char **argv)
{
	const char *domain = NULL;
	json_t *body = json_object();
	char path[160];

	for (int i = 1; i < argc; i += 2) {
		long long v;
		if (i + 1 >= argc || (strcmp(argv[i], "-d") && strcmp(argv[i], "-w") && strcmp(argv[i], "-c")))
			goto usage;
		if (!strcmp(argv[i], "-d")) {
			domain = argv[i + 1];
			continue;
		}
		if ((v = whole(argv[i + 1])) < 0) {
			fprintf(stderr, "domus sched-credit: %s '%s': a whole number, please\n",
				argv[i][1] == 'w' ? "weight" : "cap", argv[i + 1]);
			json_decref(body);
			return EXIT_USAGE;
		}
		json_object_set_new(body, argv[i][1] == 'w' ? "weight" : "cap", json_integer(v));
	}
	if (!domain) {
		if (json_object_size(body))
			goto usage;
		json_decref(body);
		return cli_request_and_print("/v1/domains", NULL, print_sched_all);
	}
	snprintf(path, sizeof(path), "/v1/domains/%s/sched", domain);
	if (!json_object_size(body)) {
		json_decref(body);
		body = NULL;
	}
	return cli_request_and_print(path, body, print_sched);
usage:
	json_decref(body);
	fputs(sched_credit_usage, stderr);
	return EXIT_USAGE;
}

static void print_vcpus_of(const json_t *reply)
{
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(reply, "vcpus"), i, v) {
		const json_t *cpu = json_object_get(v, "cpu");
		char cpubuf[16] = "-";
		if (json_is_integer(cpu))
			snprintf(cpubuf, sizeof(cpubuf), "%lld", json_integer_value(cpu));
		printf("%-32s %5lld %5lld %5s %5s %9.1f %9.1f  %s (now %s)\n",
		       json_string_value(json_object_get(reply, "domain")),
		       json_integer_value(json_object_get(reply, "domid")),
		       json_integer_value(json_object_get(v, "vcpu")), cpubuf,
		       json_string_value(json_object_get(v, "state")) ? json_string_value(json_object_get(v, "state"))
								       : "-",
		       json_number_value(json_object_get(v, "time_s")), json_number_value(json_object_get(v, "steal_s")),
		       json_string_value(json_object_get(v, "cpus")),
		       json_string_value(json_object_get(v, "affinity")) ? json_string_value(json_object_get(v, "affinity"))
									  : "-");
	}
}

static void vcpu_list_header(void)
{
	printf("%-32s %5s %5s %5s %5s %9s %9s  %s\n", "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Steal(s)",
	       "Affinity");
}

static void print_vcpus(const json_t *reply)
{
	vcpu_list_header();
	print_vcpus_of(reply);
}

int cmd_vcpu_list(int argc, char **argv)
{
	char path[160];
	json_t *reply, *d;
	size_t i;
	int status;

	if (argc > 2) {
		fprintf(stderr, "usage: domus vcpu-list [DOMAIN]\n");
		return EXIT_USAGE;
	}
	if (argc == 2) {
		snprintf(path, sizeof(path), "/v1/domains/%s/vcpus", argv[1]);
		return cli_request_and_print(path, NULL, print_vcpus);
	}
	status = client_request(cli_client(), "GET", "/v1/domains", NULL, NULL, 0, &reply, NULL);
	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status >= 300)
		return cli_refused(reply, status);
	if (!cli_want_json())
		vcpu_list_header();
	json_array_foreach(json_object_get(reply, "domains"), i, d) {
		json_t *one = NULL;
		snprintf(path, sizeof(path), "/v1/domains/%lld/vcpus", json_integer_value(json_object_get(d, "domid")));
		/* A domain that went meanwhile, or is not running, has no vCPUs to show. */
		if (client_request(cli_client(), "GET", path, NULL, NULL, 0, &one, NULL) == 200) {
			if (cli_want_json()) {
				char *out = json_dumps(one, JSON_COMPACT);
				if (out)
					puts(out);
				free(out);
			} else {
				print_vcpus_of(one);
			}
		}
		json_decref(one);
	}
	json_decref(reply);
	return 0;
}

int cmd_vcpu_pin(int argc, char **argv)
{
	char path[160];
	long long v = -1;
	json_t *body;

	if (argc != 4) {
		fprintf(stderr, "usage: domus vcpu-pin DOMAIN VCPU|all CPUS   (CPUS: \"0-3,5\", or all)\n");
		return EXIT_USAGE;
	}
	if (strcmp(argv[2], "all") && (v = whole(argv[2])) < 0) {
		fprintf(stderr, "domus vcpu-pin: vCPU '%s': a number, or all\n", argv[2]);
		return EXIT_USAGE;
	}
	body = v < 0 ? json_pack("{s:s,s:s}", "vcpu", "all", "cpus", argv[3])
		     : json_pack("{s:I,s:s}", "vcpu", (json_int_t)v, "cpus", argv[3]);
	snprintf(path, sizeof(path), "/v1/domains/%s/vcpus", argv[1]);
	return cli_request_and_print(path, body, print_vcpus);
}
