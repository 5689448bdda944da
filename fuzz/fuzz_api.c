/*
 * domusd's API request handling on hostile requests: the input is
 * "METHOD\nPATH\nCONTENT-TYPE\nBODY". Domains accumulate across inputs, as
 * in a daemon that has served many clients, up to a bound.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_start(void *ctx, struct domain *d, const struct caller *c, char *err, size_t errlen)
{
	/* Some starts fail, as a missing kernel would make them. */
	if (d->spec.vm.memory_mib % 7 == 3) {
		snprintf(err, errlen, "cannot read kernel %s", d->spec.kernel);
		return -EINVAL;
	}
	d->pid = 1000 + (pid_t)d->domid;
	return 0;
}

static int fake_request(void *ctx, struct domain *d, const char *op, json_t **reply, char *err,
			size_t errlen)
{
	if (reply)
		*reply = NULL;
	if (d->domid % 5 == 4) {
		snprintf(err, errlen, "no reply");
		return -ETIMEDOUT;
	}
	if (reply && !strcmp(op, "stats"))
		*reply = json_pack("{s:{s:[],s:i}}", "stats", "disks", "vcpu_exits", 1);
	if (reply && !strcmp(op, "console_ring"))
		*reply = json_pack("{s:s}", "console", "ok\n");
	return 0;
}

static void fake_destroy(void *ctx, struct domain *d)
{
}

static const struct domain_ops ops = {
	.start = fake_start, .request = fake_request, .destroy = fake_destroy,
};

static char *take_line(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl ? nl : end;
	char *s = strndup(*p, (size_t)(stop - *p));

	*p = nl ? nl + 1 : end;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct api a;
	static int ready;
	static const struct caller root = {.uid = 0}, user = {.uid = 1001, .gid = 100};
	const char *p = (const char *)data, *end = p + size;
	struct api_request req = {0};
	struct api_response resp;
	char *method, *path, *ctype, *body;

	if (!ready || a.ndomains > 64) {
		if (ready)
			api_free(&a);
		api_init(&a, &ops, NULL, 4, 8192, 4096);
		ready = 1;
	}
	method = take_line(&p, end);
	path = take_line(&p, end);
	ctype = take_line(&p, end);
	body = malloc((size_t)(end - p) + 1);
	if (!method || !path || !ctype || !body)
		goto out;
	memcpy(body, p, (size_t)(end - p));
	body[end - p] = 0;
	req.method = method;
	req.path = path;
	req.content_type = *ctype ? ctype : NULL;
	req.body = body;
	req.body_len = (size_t)(end - p);
	req.upgrade_console = size % 3 == 0;
	/* Root sees everything; a user in the group is held to their own domains. */
	req.caller = size % 2 ? &root : &user;
	req.since = size % 5 == 0 ? ctype : NULL;
	api_handle(&a, &req, &resp);
	if (resp.status < 100 || resp.status > 599 || (resp.stream == API_STREAM_NONE && !resp.body))
		abort();
	api_response_free(&resp);
out:
	free(method);
	free(path);
	free(ctype);
	free(body);
	return 0;
}
