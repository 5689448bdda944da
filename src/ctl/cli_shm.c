/*
 * domus shm-create, shm-list, shm-destroy: domusd's shared-memory regions
 * (docs/domusd.md), which domains name in shm = [...] and QEMUs reach on
 * the region's socket with -device ivshmem-doorbell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/cli.h"
#include "ctl/client.h"
#include "domain/shm_spec.h"

/* Sends method path with body (taken; NULL: none); the reply in *out, or the refusal printed. */
static int shm_request(const char *method, const char *path, json_t *body, json_t **out)
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
	*out = reply;
	return 0;
}

static void print_reply_json(json_t *reply)
{
	char *s = json_dumps(reply, JSON_INDENT(2));

	if (s)
		puts(s);
	free(s);
}

int cmd_shm_create(int argc, char **argv)
{
	static const char usage[] =
	    "usage: domus shm-create NAME SIZE [--vectors N] [--plain]\n"
	    "       SIZE a power of two from 4K to 1G (bytes, or with K, M, G)\n";
	const char *name = NULL, *size = NULL;
	long vectors = -1;
	bool plain = false;
	uint64_t bytes;
	json_t *reply, *body;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--plain")) {
			plain = true;
		} else if (!strcmp(argv[i], "--vectors") && i + 1 < argc) {
			char *end;
			vectors = strtol(argv[++i], &end, 10);
			if (!*argv[i] || *end || vectors < 1 || vectors > SHM_VECTORS_MAX) {
				fprintf(stderr, "domus shm-create: --vectors '%s': 1 to %d\n",
					argv[i], SHM_VECTORS_MAX);
				return EXIT_USAGE;
			}
		} else if (argv[i][0] == '-' || (name && size)) {
			fputs(usage, stderr);
			return EXIT_USAGE;
		} else if (!name) {
			name = argv[i];
		} else {
			size = argv[i];
		}
	}
	if (!size || (plain && vectors >= 0)) {
		fputs(plain ? "domus shm-create: a plain region (--plain) has no vectors\n" : usage,
		      stderr);
		return EXIT_USAGE;
	}
	if (shm_size_parse(size, &bytes) < 0) {
		fprintf(stderr, "domus shm-create: size '%s': bytes, or a number with K, M or G\n",
			size);
		return EXIT_USAGE;
	}
	body =
	    json_pack("{s:s,s:I,s:b}", "name", name, "size", (json_int_t)bytes, "doorbell", !plain);
	if (vectors >= 0)
		json_object_set_new(body, "vectors", json_integer(vectors));
	if ((ret = shm_request("POST", "/v1/shm", body, &reply)))
		return ret;
	if (cli_want_json())
		print_reply_json(reply);
	else
		printf("%s\n", json_string_value(json_object_get(reply, "socket")));
	json_decref(reply);
	return 0;
}

/* "1:web(3),2:-" : each peer's ID and, where it is one, its domain. */
static void peers_text(const json_t *peers, char *buf, size_t len)
{
	const json_t *p;
	size_t i, n = 0;

	buf[0] = 0;
	json_array_foreach(peers, i, p)
	{
		const char *dom = json_string_value(json_object_get(p, "domain"));
		int w = dom ? snprintf(buf + n, len - n, "%s%lld:%s", n ? "," : "",
				       json_integer_value(json_object_get(p, "id")), dom)
			    : snprintf(buf + n, len - n, "%s%lld:pid %lld", n ? "," : "",
				       json_integer_value(json_object_get(p, "id")),
				       json_integer_value(json_object_get(p, "pid")));
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
	if (!n)
		snprintf(buf, len, "-");
}

int cmd_shm_list(int argc, char **argv)
{
	json_t *reply, *reg;
	size_t i;
	int ret;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: domus shm-list [--json]\n");
		return EXIT_USAGE;
	}
	if ((ret = shm_request("GET", "/v1/shm", NULL, &reply)))
		return ret;
	if (cli_want_json()) {
		print_reply_json(reply);
		json_decref(reply);
		return 0;
	}
	printf("%-24s %6s %5s %-8s %6s  %s\n", "Name", "Size", "Vecs", "Kind", "Owner",
	       "Peers (ID:domain)");
	json_array_foreach(json_object_get(reply, "regions"), i, reg)
	{
		char size[32], peers[1024];
		shm_size_format((uint64_t)json_integer_value(json_object_get(reg, "size")), size,
				sizeof(size));
		peers_text(json_object_get(reg, "peers"), peers, sizeof(peers));
		printf("%-24s %6s %5lld %-8s %6lld  %s\n",
		       json_string_value(json_object_get(reg, "name")), size,
		       json_integer_value(json_object_get(reg, "vectors")),
		       json_is_true(json_object_get(reg, "doorbell")) ? "doorbell" : "plain",
		       json_integer_value(json_object_get(reg, "owner")), peers);
	}
	json_decref(reply);
	return 0;
}

int cmd_shm_destroy(int argc, char **argv)
{
	char path[160];
	json_t *reply;
	bool force = argc == 3 && !strcmp(argv[2], "--force");
	int ret;

	if (argc != 2 + force) {
		fprintf(stderr, "usage: domus shm-destroy NAME [--force]   (--force: drop the "
				"peers attached)\n");
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/shm/%.64s%s", argv[1], force ? "?force=1" : "");
	if ((ret = shm_request("DELETE", path, NULL, &reply)))
		return ret;
	json_decref(reply);
	return 0;
}
