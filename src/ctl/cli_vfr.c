/* domus vfr ...: the firewall-router's networks, rules, counters and captures, through domusd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/cli.h"
#include "ctl/client.h"

static const char vfr_usage[] =
	"usage: domus vfr networks\n"
	"       domus vfr net-add NAME CIDR [mode=none|routed|nat|rsip] [default=accept|drop|reject] [dns=ADDR]\n"
	"       domus vfr rules\n"
	"       domus vfr add [-p POSITION] RULE...   (e.g. drop in proto tcp to domain web port 22)\n"
	"       domus vfr remove ID\n"
	"       domus vfr stats\n"
	"       domus vfr capture DOMAIN FILE        (a pcap of the domain's port, until uncapture)\n"
	"       domus vfr uncapture DOMAIN\n";

/* One request with an optional JSON body; the reply in *out (may be NULL). */
static int call(const char *method, const char *path, json_t *body, json_t **out)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_t *reply = NULL;
	int status;

	json_decref(body);
	status = client_request(cli_client(), method, path, text ? "application/json" : NULL, text,
				text ? strlen(text) : 0, &reply, NULL);
	free(text);
	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status >= 300)
		return cli_refused(reply, status);
	if (out)
		*out = reply;
	else
		json_decref(reply);
	return 0;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));

	if (s)
		puts(s);
	free(s);
}

static void print_rules(json_t *rules)
{
	size_t i;
	json_t *r;

	if (!json_array_size(rules)) {
		puts("no rules: each network's default policy decides");
		return;
	}
	printf("%-5s %-4s %s\n", "ID", "Pos", "Rule");
	json_array_foreach(rules, i, r)
		printf("%-5d %-4d %s\n", (int)json_integer_value(json_object_get(r, "id")),
		       (int)json_integer_value(json_object_get(r, "position")),
		       json_string_value(json_object_get(r, "rule")));
}

static void print_networks(json_t *nets)
{
	size_t i;
	json_t *n;

	printf("%-16s %-18s %-15s %-7s %-8s %s\n", "Name", "Subnet", "Gateway", "Mode", "Default",
	       "Ports");
	json_array_foreach(nets, i, n)
		printf("%-16s %-18s %-15s %-7s %-8s %d\n", json_string_value(json_object_get(n, "name")),
		       json_string_value(json_object_get(n, "subnet")),
		       json_string_value(json_object_get(n, "gateway")),
		       json_string_value(json_object_get(n, "mode")),
		       json_string_value(json_object_get(n, "default")),
		       (int)json_integer_value(json_object_get(n, "ports")));
}

static int net_add(int argc, char **argv)
{
	json_t *body = json_pack("{s:s,s:s}", "name", argv[0], "subnet", argv[1]);

	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq || (strncmp(argv[i], "mode=", 5) && strncmp(argv[i], "default=", 8) &&
			    strncmp(argv[i], "dns=", 4))) {
			fprintf(stderr, "domus vfr net-add: '%s': expected mode=, default= or dns=\n",
				argv[i]);
			json_decref(body);
			return EXIT_USAGE;
		}
		*eq = 0;
		json_object_set_new(body, argv[i], json_string(eq + 1));
		*eq = '=';
	}
	return call("POST", "/v1/vfr/networks", body, NULL);
}

static int rule_add(int argc, char **argv)
{
	char text[1024] = "", *end;
	json_t *body, *reply;
	long pos = -1;
	size_t len = 0;
	int first = 0, ret;

	if (argc > 1 && !strcmp(argv[0], "-p")) {
		pos = strtol(argv[1], &end, 10);
		if (!*argv[1] || *end || pos < 0) {
			fprintf(stderr, "domus vfr add: -p '%s': a position from 0\n", argv[1]);
			return EXIT_USAGE;
		}
		first = 2;
	}
	if (first >= argc) {
		fputs(vfr_usage, stderr);
		return EXIT_USAGE;
	}
	/* The rule's words, given unquoted or as one argument, make one line. */
	for (int i = first; i < argc; i++) {
		int n = snprintf(text + len, sizeof(text) - len, "%s%s", i > first ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(text) - len) {
			fprintf(stderr, "domus vfr add: the rule is longer than %zu bytes\n", sizeof(text) - 1);
			return EXIT_USAGE;
		}
		len += (size_t)n;
	}
	body = json_pack("{s:s}", "rule", text);
	if (pos >= 0)
		json_object_set_new(body, "position", json_integer(pos));
	if ((ret = call("POST", "/v1/vfr/rules", body, &reply)) != 0)
		return ret;
	if (cli_want_json())
		print_json(reply);
	else
		printf("rule %d added\n", (int)json_integer_value(json_object_get(reply, "id")));
	json_decref(reply);
	return 0;
}

int cmd_vfr(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	char path[256];
	json_t *reply;
	int ret;

	if (!strcmp(sub, "networks") && argc == 2) {
		if ((ret = call("GET", "/v1/vfr/networks", NULL, &reply)) != 0)
			return ret;
		cli_want_json() ? print_json(reply) : print_networks(reply);
	} else if (!strcmp(sub, "rules") && argc == 2) {
		if ((ret = call("GET", "/v1/vfr/rules", NULL, &reply)) != 0)
			return ret;
		cli_want_json() ? print_json(reply) : print_rules(reply);
	} else if (!strcmp(sub, "stats") && argc == 2) {
		if ((ret = call("GET", "/v1/vfr/stats", NULL, &reply)) != 0)
			return ret;
		print_json(reply);
	} else if (!strcmp(sub, "net-add") && argc >= 4) {
		return net_add(argc - 2, argv + 2);
	} else if (!strcmp(sub, "add") && argc >= 3) {
		return rule_add(argc - 2, argv + 2);
	} else if (!strcmp(sub, "remove") && argc == 3) {
		snprintf(path, sizeof(path), "/v1/vfr/rules/%.64s", argv[2]);
		return call("DELETE", path, NULL, NULL);
	} else if (!strcmp(sub, "capture") && argc == 4) {
		char abs[4096];
		if (!realpath(argv[3], abs)) {
			/* Not there yet: domusd makes it, beside what is. */
			if (argv[3][0] == '/' || !getcwd(abs, sizeof(abs) - 256))
				snprintf(abs, sizeof(abs), "%.4000s", argv[3]);
			else
				snprintf(abs + strlen(abs), sizeof(abs) - strlen(abs), "/%.200s", argv[3]);
		}
		return call("POST", "/v1/vfr/captures",
			    json_pack("{s:s,s:s}", "domain", argv[2], "file", abs), NULL);
	} else if (!strcmp(sub, "uncapture") && argc == 3) {
		snprintf(path, sizeof(path), "/v1/vfr/captures/%.64s", argv[2]);
		return call("DELETE", path, NULL, NULL);
	} else {
		fputs(vfr_usage, stderr);
		return EXIT_USAGE;
	}
	json_decref(reply);
	return 0;
}
