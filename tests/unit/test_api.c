/*
 * domusd's API without HTTP or processes: requests in, statuses and JSON
 * out, against a fake set of domain operations that records what it is
 * asked and fails when told to.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/api.h"
#include "domain/spec_json.h"
#include "ctl/shm.h"
#include "lib/unix_socket.h"

#include <sys/socket.h>
#include <unistd.h>

/* Who asks: root unless a test says otherwise. */
static struct caller ROOT, *CALLER = &ROOT;

struct fake {
	int starts, destroys, events;
	const char *fail_start; /* start fails with this message */
	bool fail_request;
	char last_op[32];
	pid_t next_pid;
	bool balloons_obey;   /* fake_wait: guests follow their targets */
	unsigned balloon_sets;
	uint64_t free_seen;   /* the last memory_changed */
	int starts_at_change; /* starts done when it came: the cache shrinks before a start */
	unsigned changes;
	bool kernel_counts;   /* fake_memory_held answers, with held_mib */
	uint64_t held_mib;
	unsigned qos_sets;
	bool qos_refuse;      /* fake_disk_qos_set: the disk cannot honour it */
	unsigned sched_sets, pins;
	bool no_cpu_controller; /* fake_sched_set: the host's cgroup has no cpu */
	int last_pin_vcpu;
	char last_pin_cpus[64];
};

static int fake_start(void *ctx, struct domain *d, const struct caller *c, char *err, size_t errlen)
{
	struct fake *f = ctx;

	if (f->fail_start) {
		snprintf(err, errlen, "%s", f->fail_start);
		return -EINVAL;
	}
	f->starts++;
	d->pid = ++f->next_pid;
	return 0;
}

static int fake_request(void *ctx, struct domain *d, const char *op, json_t **reply, char *err,
			size_t errlen)
{
	struct fake *f = ctx;

	snprintf(f->last_op, sizeof(f->last_op), "%s", op);
	if (reply)
		*reply = NULL;
	if (f->fail_request) {
		snprintf(err, errlen, "no reply");
		return -ETIMEDOUT;
	}
	if (reply && !strcmp(op, "stats"))
		*reply = json_pack("{s:{s:[{s:i}],s:i}}", "stats", "disks", "read_ops", 7, "vcpu_exits", 99);
	if (reply && !strcmp(op, "console_ring"))
		*reply = json_pack("{s:s}", "console", "hello from the guest\n");
	return 0;
}

static void fake_destroy(void *ctx, struct domain *d)
{
	((struct fake *)ctx)->destroys++;
}

static void fake_event(void *ctx)
{
	((struct fake *)ctx)->events++;
}

static int fake_balloon_set(void *ctx, struct domain *d, uint64_t target_mib, char *err, size_t errlen)
{
	((struct fake *)ctx)->balloon_sets++;
	return 0;
}

static struct api A;

/* The guest's driver speaks: actual MiB, and MemAvailable in its statistics (-1: none). */
static void guest_says(struct domain *d, uint64_t actual, long available)
{
	json_t *b = json_pack("{s:I}", "actual_mib", (json_int_t)actual);

	if (available >= 0)
		json_object_set_new(b, "guest", json_pack("{s:I,s:I}", "available_bytes",
							  (json_int_t)available << 20, "total_bytes",
							  (json_int_t)actual << 20));
	api_mem_balloon_event(&A, d, b);
	json_decref(b);
}

static bool fake_wait(void *ctx, bool (*done)(struct api *a, void *arg), void *arg, int timeout_ms)
{
	struct fake *f = ctx;

	for (struct domain *d = A.domains; d && f->balloons_obey; d = d->next)
		if (d->balloon.heard)
			guest_says(d, d->balloon.target_mib, (long)d->balloon.stats_available_mib);
	return done(&A, arg);
}

static void fake_memory_changed(void *ctx, uint64_t free_mib)
{
	struct fake *f = ctx;

	f->free_seen = free_mib;
	f->starts_at_change = f->starts;
	f->changes++;
}

/* The kernel's count (a cgroup's), when the test gives one; the same for every domain. */
static int fake_memory_held(void *ctx, const struct domain *d, uint64_t *mib)
{
	struct fake *f = ctx;

	if (!f->kernel_counts)
		return -ENOENT;
	*mib = f->held_mib;
	return 0;
}

static void fake_host(void *ctx, json_t *out)
{
	json_object_set_new(out, "blk_cache", json_pack("{s:i,s:f}", "size_bytes", 65536, "hit_ratio", 0.5));
}

static int fake_disk_qos_set(void *ctx, struct domain *d, const struct domain_spec *old, char *err,
			     size_t errlen)
{
	struct fake *f = ctx;

	(void)d, (void)old;
	if (f->qos_refuse) {
		snprintf(err, errlen, "the reservation needs 80.0%% of the disk's time");
		return -ENOSPC;
	}
	f->qos_sets++;
	return 0;
}

/* One group per QoS the spec holds, as domusd would show them (without counters). */
static json_t *fake_disk_qos(void *ctx, const struct domain *d)
{
	json_t *g = json_array();

	(void)ctx;
	json_array_append_new(g, json_pack("{s:s,s:s}", "group", "domain", "qos", d->spec.disk_qos));
	for (unsigned i = 0; i < d->spec.vm.ndisks; i++)
		if (d->spec.disk_qos_own[i])
			json_array_append_new(g, json_pack("{s:s,s:s}", "group", d->spec.vm.disks[i].vdev, "qos",
							   d->spec.disk_qos_disk[i]));
	return g;
}

static int fake_sched_set(void *ctx, struct domain *d, char *err, size_t errlen)
{
	struct fake *f = ctx;

	(void)d;
	if (f->no_cpu_controller) {
		snprintf(err, errlen, "no cpu controller");
		return -ENOTSUP;
	}
	f->sched_sets++;
	return 0;
}

static int fake_vcpu_pin(void *ctx, struct domain *d, int vcpu, const char *cpus, char *err, size_t errlen)
{
	struct fake *f = ctx;

	(void)d, (void)err, (void)errlen;
	f->pins++;
	f->last_pin_vcpu = vcpu;
	snprintf(f->last_pin_cpus, sizeof(f->last_pin_cpus), "%s", cpus);
	return 0;
}

/* What the domain's spec pins each vCPU to, as the VMM would say. */
static json_t *fake_vcpus(void *ctx, struct domain *d, char *err, size_t errlen)
{
	json_t *list = json_array();

	(void)ctx, (void)err, (void)errlen;
	for (unsigned i = 0; i < d->spec.vm.vcpus; i++)
		json_array_append_new(list, json_pack("{s:i,s:s}", "vcpu", i, "cpus",
						      *domain_vcpu_cpus(&d->spec, i) ? domain_vcpu_cpus(&d->spec, i) : "all"));
	return list;
}

static const struct domain_ops fake_ops = {
	.sched_set = fake_sched_set,
	.vcpu_pin = fake_vcpu_pin,
	.vcpus = fake_vcpus,
	.disk_qos_set = fake_disk_qos_set,
	.disk_qos = fake_disk_qos,
	.start = fake_start,
	.request = fake_request,
	.destroy = fake_destroy,
	.event = fake_event,
	.balloon_set = fake_balloon_set,
	.wait = fake_wait,
	.memory_changed = fake_memory_changed,
	.host = fake_host,
	.memory_held = fake_memory_held,
};

static struct fake F;
static struct api_response R;
static json_t *J;

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	CALLER = &ROOT;
	api_init(&A, &fake_ops, &F, 2, 4096, 1000);
	J = NULL;
	memset(&R, 0, sizeof(R));
	return 0;
}

static int teardown(void **state)
{
	json_decref(J);
	api_response_free(&R);
	api_free(&A);
	return 0;
}

/* One request; the reply's JSON (if any) in J. Returns the status. */
static unsigned call(const char *method, const char *path, const char *ctype, const char *body)
{
	struct api_request req = {
		.method = method, .path = path, .content_type = ctype, .body = body,
		.body_len = body ? strlen(body) : 0, .caller = CALLER,
	};

	json_decref(J);
	J = NULL;
	api_response_free(&R);
	api_handle(&A, &req, &R);
	if (R.body && R.content_type && !strcmp(R.content_type, "application/json"))
		J = json_loads(R.body, 0, NULL);
	return R.status;
}

static const char *error_code(void)
{
	return json_string_value(json_object_get(json_object_get(J, "error"), "code"));
}

static const char *error_message(void)
{
	const char *m = json_string_value(json_object_get(json_object_get(J, "error"), "message"));
	return m ? m : "";
}

static unsigned create_json(const char *name, unsigned mib)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"kernel\":\"/boot/vmlinuz\",\"memory\":%u}",
		 name, mib);
	return call("POST", "/v1/domains", "application/json", body);
}

static uint64_t num_of(const char *path, const char *key)
{
	call("GET", path, NULL, NULL);
	return (uint64_t)json_integer_value(json_object_get(J, key));
}

static void test_mem_set(void **state)
{
	assert_int_equal(create_json("web", 512), 201);
	/* Before the driver speaks the guest may use all it started with. */
	assert_int_equal(call("PUT", "/v1/domains/web/memory", NULL, "{\"target_mib\":128}"), 200);
	assert_int_equal(F.balloon_sets, 1);
	assert_int_equal(num_of("/v1/domains/web", "target_mib"), 128);
	assert_int_equal(num_of("/v1/domains/web", "memory_accounted_mib"), 512);
	/* The account follows the guest down, not the request. */
	guest_says(api_find(&A, "web"), 300, 250);
	assert_int_equal(num_of("/v1/domains/web", "memory_accounted_mib"), 300);
	assert_string_equal(json_string_value(json_object_get(json_object_get(J, "balloon"), "state")),
			    "inflating");
	/* A guest that has not got there within the time allowed is reported so. */
	api_find(&A, "web")->balloon.target_set.tv_sec -= API_BALLOON_TIMEOUT_S + 1;
	call("GET", "/v1/domains/web", NULL, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(J, "balloon"), "state")),
			    "timed out");
	guest_says(api_find(&A, "web"), 128, 100);
	assert_int_equal(num_of("/v1/domains/web", "memory_accounted_mib"), 128);
	assert_string_equal(json_string_value(json_object_get(json_object_get(J, "balloon"), "state")),
			    "reached");
	assert_int_equal(num_of("/v1/host", "memory_used_mib"), 128);
	/* A guest that deflates by itself (OOM) is accounted for what it took. */
	guest_says(api_find(&A, "web"), 140, 0);
	assert_int_equal(num_of("/v1/domains/web", "memory_accounted_mib"), 140);
	assert_string_equal(json_string_value(json_object_get(json_object_get(J, "balloon"), "state")),
			    "deflated by the guest");
	/* A driver claiming more than the domain's RAM is held to its RAM. */
	guest_says(api_find(&A, "web"), 99999, 0);
	assert_int_equal(num_of("/v1/domains/web", "actual_mib"), 512);

	/* Out of range, malformed, too much, no balloon. */
	assert_int_equal(call("PUT", "/v1/domains/web/memory", NULL, "{\"target_mib\":64}"), 400);
	assert_non_null(strstr(error_message(), "minmem 128 to maxmem 512"));
	assert_int_equal(call("PUT", "/v1/domains/web/memory", NULL, "{\"target_mib\":513}"), 400);
	assert_int_equal(call("PUT", "/v1/domains/web/memory", NULL, "{\"target_mib\":\"1g\"}"), 400);
	assert_int_equal(call("PUT", "/v1/domains/web/memory", NULL, "{\"target_mib\":-5}"), 400);
	assert_int_equal(call("PUT", "/v1/domains/web/memory", NULL, "[1"), 400);
	assert_int_equal(call("POST", "/v1/domains/web/memory", NULL, "{\"target_mib\":200}"), 405);
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='fixed'\nkernel='/k'\nmemory=100\nballoon=0\n"), 201);
	assert_int_equal(call("PUT", "/v1/domains/fixed/memory", NULL, "{\"target_mib\":64}"), 409);
	assert_string_equal(error_code(), "no_balloon");
	/* Growing needs the host's memory: 1000 - 140 - 100 - 700 free. */
	guest_says(api_find(&A, "web"), 140, 0);
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='big'\nkernel='/k'\nmemory=700\nmaxmem=900\n"), 201);
	assert_int_equal(call("PUT", "/v1/domains/big/memory", NULL, "{\"target_mib\":900}"), 409);
	assert_string_equal(error_code(), "insufficient_memory");
}

static const char *group_qos(unsigned i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(J, "groups"), i), "qos"));
}

static void test_disk_qos(void **state)
{
	const char *path = "/v1/domains/db/disk-qos";

	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='db'\nkernel='/k'\nmemory=100\ndisk=['/a.img,xvda', '/b.img,xvdb', "
			      "'/c.img,xvdc,backendtype=vmm']\ndisk_qos='weight=200'\n"), 201);
	assert_int_equal(call("GET", path, NULL, NULL), 200);
	assert_string_equal(group_qos(0), "weight=200");
	/* The domain's disks together: a change names only what changes. */
	assert_int_equal(call("PUT", path, NULL, "{\"set\":\"limit-iops=5k\"}"), 200);
	assert_string_equal(group_qos(0), "weight=200,limit-iops=5000");
	/* One disk alone starts from the defaults. */
	assert_int_equal(call("PUT", path, NULL, "{\"vdev\":\"xvdb\",\"set\":\"reserve-iops=100,class=interactive\"}"), 200);
	assert_string_equal(group_qos(1), "reserve-iops=100,class=interactive");
	assert_int_equal(F.qos_sets, 2);
	/* Bad values name the key and the bounds, and change nothing. */
	assert_int_equal(call("PUT", path, NULL, "{\"set\":\"weight=0\"}"), 400);
	assert_string_equal(error_code(), "bad_qos");
	assert_non_null(strstr(error_message(), "weight: 0 is out of bounds (1 to 10000"));
	assert_int_equal(call("PUT", path, NULL, "{\"set\":\"speed=9\"}"), 400);
	assert_non_null(strstr(error_message(), "unknown key 'speed'"));
	assert_int_equal(call("PUT", path, NULL, "{\"vdev\":\"xvdq\",\"set\":\"weight=5\"}"), 404);
	assert_non_null(strstr(error_message(), "no disk 'xvdq' (its disks: xvda, xvdb, xvdc)"));
	assert_int_equal(call("PUT", path, NULL, "{\"vdev\":\"xvdc\",\"set\":\"weight=5\"}"), 409);
	assert_string_equal(error_code(), "not_scheduled");
	assert_int_equal(call("PUT", path, NULL, "{\"weight\":5}"), 400);
	assert_int_equal(call("PUT", path, NULL, "{\"set\":\"weight=5\",\"reset\":true}"), 400);
	/* A reservation the disk cannot honour: refused with the figures, the old QoS stays. */
	F.qos_refuse = true;
	assert_int_equal(call("PUT", path, NULL, "{\"set\":\"reserve-iops=4k\"}"), 409);
	assert_string_equal(error_code(), "insufficient_capacity");
	assert_non_null(strstr(error_message(), "80.0% of the disk's time"));
	F.qos_refuse = false;
	assert_int_equal(call("GET", path, NULL, NULL), 200);
	assert_string_equal(group_qos(0), "weight=200,limit-iops=5000");
	assert_int_equal(F.qos_sets, 2);
	/* Back with the others; the domain's back to the defaults. */
	assert_int_equal(call("PUT", path, NULL, "{\"vdev\":\"xvdb\",\"reset\":true}"), 200);
	assert_int_equal(json_array_size(json_object_get(J, "groups")), 1);
	assert_int_equal(call("PUT", path, NULL, "{\"reset\":true}"), 200);
	assert_string_equal(group_qos(0), "");
	assert_int_equal(call("DELETE", path, NULL, NULL), 405);
	/* In the configuration: an unknown disk, two entries for one. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='e'\nkernel='/k'\nmemory=100\ndisk=['/a.img']\ndisk_qos=['xvdb: weight=5']\n"), 400);
	assert_non_null(strstr(error_message(), "the domain has no disk xvdb"));
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='e'\nkernel='/k'\nmemory=100\ndisk=['/a.img']\n"
			      "disk_qos=['limit-bps=1z']\n"), 400);
	assert_non_null(strstr(error_message(), "limit-bps: '1z' is not a rate in bytes per second"));
}

static const char *vcpu_cpus(unsigned i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(J, "vcpus"), i), "cpus"));
}

static void test_sched_and_pin(void **state)
{
	const char *sched = "/v1/domains/web/sched", *vcpus = "/v1/domains/web/vcpus";

	/* The host has 2 CPUs (setup): the list form and a CPU it lacks. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='x'\nkernel='/k'\nmemory=100\nvcpus=2\ncpus=['0', '2']\n"), 400);
	assert_non_null(strstr(error_message(), "cpus '2' names CPU 2; the host has CPUs 0-1"));
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='web'\nkernel='/k'\nmemory=100\nvcpus=2\ncpu_weight=512\ncap=50\n"
			      "cpus=['1', 'all']\n"), 201);
	assert_int_equal(json_integer_value(json_object_get(J, "cpu_weight")), 512);
	assert_int_equal(call("GET", sched, NULL, NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(J, "weight")), 512);
	assert_int_equal(json_integer_value(json_object_get(J, "cap")), 50);
	/* Either or both, live. */
	assert_int_equal(call("PUT", sched, NULL, "{\"weight\":128}"), 200);
	assert_int_equal(json_integer_value(json_object_get(J, "weight")), 128);
	assert_int_equal(json_integer_value(json_object_get(J, "cap")), 50);
	assert_int_equal(call("PUT", sched, NULL, "{\"cap\":0,\"weight\":256}"), 200);
	assert_int_equal(F.sched_sets, 2);
	/* Bad values name the key and the bounds, and change nothing. */
	assert_int_equal(call("PUT", sched, NULL, "{\"weight\":0}"), 400);
	assert_string_equal(error_code(), "bad_settings");
	assert_non_null(strstr(error_message(), "weight 0 is out of range (1 to 65535)"));
	assert_int_equal(call("PUT", sched, NULL, "{\"cap\":201}"), 400);
	assert_non_null(strstr(error_message(), "cap 201 is out of range (0 to 200: 100 per vCPU, 2 vCPUs)"));
	assert_int_equal(call("PUT", sched, NULL, "{\"cap\":\"x\"}"), 400);
	assert_int_equal(call("PUT", sched, NULL, "[1]"), 400);
	F.no_cpu_controller = true;
	assert_int_equal(call("PUT", sched, NULL, "{\"cap\":20}"), 409);
	assert_string_equal(error_code(), "not_supported");
	F.no_cpu_controller = false;
	assert_int_equal(call("GET", sched, NULL, NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(J, "cap")), 0);
	assert_int_equal(F.sched_sets, 2);
	/* Pinning: the list form from the config, then one vCPU, then all. */
	assert_int_equal(call("GET", vcpus, NULL, NULL), 200);
	assert_string_equal(vcpu_cpus(0), "1");
	assert_string_equal(vcpu_cpus(1), "all");
	assert_int_equal(call("PUT", vcpus, NULL, "{\"vcpu\":1,\"cpus\":\"0\"}"), 200);
	assert_int_equal(F.last_pin_vcpu, 1);
	assert_string_equal(vcpu_cpus(0), "1");
	assert_string_equal(vcpu_cpus(1), "0");
	assert_int_equal(call("PUT", vcpus, NULL, "{\"vcpu\":\"all\",\"cpus\":\"0-1\"}"), 200);
	assert_int_equal(F.last_pin_vcpu, -1);
	assert_string_equal(F.last_pin_cpus, "0-1");
	assert_string_equal(vcpu_cpus(0), "0-1");
	assert_string_equal(vcpu_cpus(1), "0-1");
	/* A CPU the host lacks, a vCPU the domain lacks, a malformed list: refused, nothing sent. */
	assert_int_equal(call("PUT", vcpus, NULL, "{\"vcpu\":0,\"cpus\":\"7\"}"), 400);
	assert_non_null(strstr(error_message(), "cpus '7' names CPU 7; the host has CPUs 0-1"));
	assert_int_equal(call("PUT", vcpus, NULL, "{\"vcpu\":2,\"cpus\":\"0\"}"), 400);
	assert_non_null(strstr(error_message(), "vCPU 2: domain 'web' has vCPUs 0-1"));
	assert_int_equal(call("PUT", vcpus, NULL, "{\"vcpu\":0,\"cpus\":\"1-0\"}"), 400);
	assert_int_equal(call("PUT", vcpus, NULL, "{\"cpus\":\"0\"}"), 400);
	assert_int_equal(F.pins, 2);
	assert_int_equal(call("DELETE", vcpus, NULL, NULL), 405);
	/* cpu_dedicated: a host CPU is one dedicated domain's own; web shares, so it is nobody's. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='rt'\nkernel='/k'\nmemory=100\ncpus='1'\ncpu_dedicated=1\n"), 201);
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='rt2'\nkernel='/k'\nmemory=100\ncpus='1'\ncpu_dedicated=1\n"), 409);
	assert_string_equal(error_code(), "cpus_in_use");
	assert_non_null(strstr(error_message(), "cpu_dedicated = 1: CPU 1 is dedicated to domain 'rt' already"));
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='rt2'\nkernel='/k'\nmemory=100\nvcpus=2\ncpus='0'\n"
			      "cpu_dedicated=1\n"), 400);
	assert_string_equal(error_code(), "invalid_config");
	assert_non_null(strstr(error_message(), "vCPUs 0 and 1 are both on CPU 0"));
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='rt2'\nkernel='/k'\nmemory=100\ncpus='0'\ncpu_dedicated=1\n"), 201);
	/* Live: rt2 may not move onto rt's CPU, nor span two; nothing is sent. */
	assert_int_equal(call("PUT", "/v1/domains/rt2/vcpus", NULL, "{\"vcpu\":0,\"cpus\":\"1\"}"), 400);
	assert_non_null(strstr(error_message(),
			       "domain 'rt2': cpu_dedicated = 1: CPU 1 is dedicated to domain 'rt' already"));
	assert_int_equal(call("PUT", "/v1/domains/rt2/vcpus", NULL, "{\"vcpu\":\"all\",\"cpus\":\"0-1\"}"), 400);
	assert_non_null(strstr(error_message(), "cpu_dedicated = 1 keeps each vCPU on a CPU of its own: "
						"vCPU 0 has cpus '0-1', not one CPU"));
	assert_int_equal(F.pins, 2);
	assert_int_equal(call("GET", "/v1/domains/rt2/vcpus", NULL, NULL), 200);
	assert_string_equal(vcpu_cpus(0), "0");
	/* Once rt is gone its CPU is free. */
	assert_int_equal(call("DELETE", "/v1/domains/rt", NULL, NULL), 200);
	assert_int_equal(call("PUT", "/v1/domains/rt2/vcpus", NULL, "{\"vcpu\":0,\"cpus\":\"1\"}"), 200);
	assert_int_equal(F.pins, 3);
}

static void test_reclaim(void **state)
{
	F.balloons_obey = true;
	assert_int_equal(create_json("idle", 512), 201);
	guest_says(api_find(&A, "idle"), 512, 450);
	/* 488 free: idle gives 212, and b is admitted once it has. */
	assert_int_equal(create_json("b", 700), 201);
	assert_int_equal(num_of("/v1/domains/idle", "target_mib"), 300);
	assert_int_equal(num_of("/v1/domains/idle", "actual_mib"), 300);
	assert_int_equal(num_of("/v1/host", "memory_free_mib"), 0);
	/* Nothing can make 600 MiB: refused, with what could be given. */
	assert_int_equal(create_json("c", 600), 409);
	assert_string_equal(error_code(), "insufficient_memory");
	assert_non_null(strstr(error_message(), "balloons could give back only 172 MiB"));
	assert_non_null(strstr(error_message(), "idle 300 MiB (at least 128)"));
	assert_int_equal(num_of("/v1/domains/idle", "target_mib"), 300);
	/* b goes: idle gets its memory back. */
	assert_int_equal(call("DELETE", "/v1/domains/b", NULL, NULL), 200);
	assert_int_equal(num_of("/v1/domains/idle", "target_mib"), 512);
	/* A guest that does not give back: the create fails, the target is restored. */
	F.balloons_obey = false;
	guest_says(api_find(&A, "idle"), 512, 450);
	assert_int_equal(create_json("d", 600), 409);
	assert_non_null(strstr(error_message(), "did not within"));
	assert_int_equal(num_of("/v1/domains/idle", "target_mib"), 512);
	assert_int_equal(num_of("/v1/host", "memory_used_mib"), 512);
	/* With reclaim off a domain that does not fit is refused at once. */
	A.reclaim = false;
	F.balloons_obey = true;
	F.balloon_sets = 0;
	assert_int_equal(create_json("e", 600), 409);
	assert_int_equal(F.balloon_sets, 0);
}

static void test_create_and_list(void **state)
{
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name = 'web'\nkernel = '/boot/vmlinuz'\nmemory = 256\nvcpus = 2\n"),
			 201);
	assert_string_equal(json_string_value(json_object_get(J, "name")), "web");
	assert_int_equal(json_integer_value(json_object_get(J, "domid")), 1);
	assert_string_equal(json_string_value(json_object_get(J, "state")), "running");
	assert_int_equal(create_json("db", 128), 201);
	assert_int_equal(json_integer_value(json_object_get(J, "domid")), 2);
	assert_int_equal(F.starts, 2);

	assert_int_equal(call("GET", "/v1/domains", NULL, NULL), 200);
	assert_int_equal(json_array_size(json_object_get(J, "domains")), 2);
	assert_int_equal(call("GET", "/v1/domains/web", NULL, NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(J, "config"), "vcpus")), 2);
	assert_int_equal(call("GET", "/v1/domains/2", NULL, NULL), 200);
	assert_string_equal(json_string_value(json_object_get(J, "name")), "db");
	assert_int_equal(call("GET", "/v1/host", NULL, NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(J, "memory_used_mib")), 384);
	assert_int_equal(json_integer_value(json_object_get(J, "memory_free_mib")), 616);
	assert_int_equal(json_integer_value(json_object_get(J, "vcpus")), 3);
	assert_int_equal(json_integer_value(json_object_get(J, "domains")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(J, "blk_cache"), "size_bytes")),
			 65536);
	/* The memory left idle was told before the second domain started, and after it went. */
	assert_int_equal(F.changes, 2);
	assert_int_equal(F.free_seen, 616);
	assert_int_equal(F.starts_at_change, 1);
	assert_int_equal(call("DELETE", "/v1/domains/db", NULL, NULL), 200);
	assert_int_equal(F.free_seen, 744);
}

static void test_create_errors(void **state)
{
	assert_int_equal(create_json("a", 600), 201);

	assert_int_equal(create_json("a", 16), 409);
	assert_string_equal(error_code(), "name_in_use");
	assert_int_equal(create_json("b", 500), 409);
	assert_string_equal(error_code(), "insufficient_memory");
	assert_non_null(strstr(error_message(), "400 MiB free of 1000 MiB"));

	assert_int_equal(call("POST", "/v1/domains", "application/json", "{\"name\": \"x\","), 400);
	assert_string_equal(error_code(), "invalid_json");
	assert_non_null(strstr(error_message(), "request body:1:"));
	assert_int_equal(call("POST", "/v1/domains", "application/json", "[1, 2]"), 400);
	assert_string_equal(error_code(), "invalid_config");
	assert_int_equal(call("POST", "/v1/domains", "application/json",
			      "{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":\"lots\"}"),
			 400);
	assert_non_null(strstr(error_message(), "'memory' must be a number"));
	assert_int_equal(call("POST", "/v1/domains", "application/json",
			      "{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":-5}"),
			 400);
	assert_int_equal(call("POST", "/v1/domains", "application/json",
			      "{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":{\"a\":1}}"),
			 400);
	assert_int_equal(call("POST", "/v1/domains", "application/json",
			      "{\"name\":\"x\",\"name\":\"y\",\"kernel\":\"/k\"}"),
			 400);
	assert_string_equal(error_code(), "invalid_json");

	{
		struct api_request req = {.method = "POST", .path = "/v1/domains",
					  .content_type = "text/plain", .source = "web.cfg",
					  .body = "name = 'x'\nkernel = '/k'\nmemory = [1,\n", .caller = CALLER,
					  .body_len = 0};
		req.body_len = strlen(req.body);
		api_response_free(&R);
		api_handle(&A, &req, &R);
		assert_int_equal(R.status, 400);
		assert_non_null(strstr(R.body, "web.cfg:4:"));
		assert_non_null(strstr(R.body, "invalid_config"));
	}
	assert_int_equal(call("POST", "/v1/domains", "text/plain", "name='x'\nkernel='/k'\nvnc=1\n"), 400);
	assert_non_null(strstr(error_message(), "unknown setting 'vnc'"));
	assert_non_null(strstr(error_message(), ":3:"));
	assert_int_equal(call("POST", "/v1/domains", "text/plain", "name='x'\nkernel='vmlinuz'\n"), 400);
	assert_non_null(strstr(error_message(), "absolute path"));
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='x'\nkernel='/k'\ndisk=['img,raw,xvda,rw']\n"),
			 400);
	assert_int_equal(call("POST", "/v1/domains", "text/plain", "name='x'\nkernel='/k'\npmem=['base.ext4']\n"),
			 400);
	assert_non_null(strstr(error_message(), "pmem 'base.ext4' must be an absolute path"));
	assert_int_equal(call("POST", "/v1/domains", "text/plain", "name='x'\nkernel='/k'\ncpus='2'\n"), 400);
	assert_non_null(strstr(error_message(), "the host has CPUs 0-1"));
	assert_int_equal(call("POST", "/v1/domains", "image/png", "x"), 415);
	assert_string_equal(error_code(), "unsupported_media_type");
	{
		struct api_request req = {.method = "POST", .path = "/v1/domains",
					  .content_type = "application/json", .too_large = true,
					  .caller = CALLER};
		api_response_free(&R);
		api_handle(&A, &req, &R);
		assert_int_equal(R.status, 413);
		assert_non_null(strstr(R.body, "request_too_large"));
	}

	/* None of it left a domain or memory behind. */
	assert_int_equal(A.ndomains, 1);
	assert_int_equal(A.mem.used_mib, 600);
	assert_int_equal(F.starts, 1);
}

/* A vsock CID is one domain's: another create naming it is refused, naming the holder. */
static void test_vsock_cid(void **state)
{
	assert_int_equal(call("POST", "/v1/domains", "application/json",
			      "{\"name\":\"v1\",\"kernel\":\"/k\",\"memory\":16,"
			      "\"vsock\":\"cid=7,backend=vhost\"}"),
			 201);
	assert_int_equal(call("POST", "/v1/domains", "application/json",
			      "{\"name\":\"v2\",\"kernel\":\"/k\",\"memory\":16,"
			      "\"vsock\":\"cid=7,socket=/run/v2.sock\"}"),
			 409);
	assert_string_equal(error_code(), "vsock_cid_in_use");
	assert_string_equal(error_message(), "vsock CID 7 is taken by domain 'v1'");
	assert_int_equal(call("POST", "/v1/domains", "application/json",
			      "{\"name\":\"v3\",\"kernel\":\"/k\",\"memory\":16,"
			      "\"vsock\":\"cid=8,backend=vhost\"}"),
			 201);
	assert_int_equal(A.ndomains, 2);
}

static void test_start_failure(void **state)
{
	F.fail_start = "cannot open disk /nope: No such file or directory";
	assert_int_equal(create_json("a", 100), 422);
	assert_string_equal(error_code(), "start_failed");
	assert_non_null(strstr(error_message(), "/nope"));
	assert_int_equal(A.ndomains, 0);
	assert_int_equal(A.mem.used_mib, 0);
	assert_int_equal(call("GET", "/v1/domains/a", NULL, NULL), 404);
	F.fail_start = NULL;
	assert_int_equal(create_json("a", 100), 201);
	assert_int_equal(json_integer_value(json_object_get(J, "domid")), 1);
}

static void test_paths_and_methods(void **state)
{
	/* Names that would read as ids are refused; ids are plain digits. */
	assert_int_equal(create_json("42", 10), 400);
	assert_non_null(strstr(error_message(), "all digits"));
	assert_int_equal(call("GET", "/v2/domains", NULL, NULL), 404);
	assert_string_equal(error_code(), "not_found");
	assert_int_equal(call("GET", "/v1/domains/nosuch", NULL, NULL), 404);
	assert_non_null(strstr(error_message(), "nosuch"));
	assert_int_equal(call("POST", "/v1/domains/nosuch/pause", NULL, NULL), 404);
	assert_int_equal(call("PUT", "/v1/domains", NULL, NULL), 405);
	assert_string_equal(error_code(), "method_not_allowed");
	assert_int_equal(call("DELETE", "/v1/host", NULL, NULL), 405);
	assert_int_equal(create_json("a", 10), 201);
	assert_int_equal(call("POST", "/v1/domains/a/frobnicate", NULL, NULL), 404);
	assert_int_equal(call("GET", "/v1/domains/a/pause", NULL, NULL), 405);
	assert_int_equal(call("POST", "/v1/domains/a/stats", NULL, NULL), 405);
	assert_int_equal(call("GET", "/v1/domains/a/pause/x", NULL, NULL), 404);
	assert_int_equal(call("GET", "/v1/domains//", NULL, NULL), 404);
	assert_int_equal(call("GET", "/v1/domains/1", NULL, NULL), 200);
	assert_int_equal(call("GET", "/v1/domains/+1", NULL, NULL), 404);
	assert_int_equal(call("GET", "/v1/domains/01", NULL, NULL), 404);
}

static void test_lifecycle(void **state)
{
	assert_int_equal(create_json("a", 100), 201);
	assert_int_equal(call("POST", "/v1/domains/a/unpause", NULL, NULL), 409);
	assert_string_equal(error_code(), "invalid_state");
	assert_int_equal(call("POST", "/v1/domains/a/pause", NULL, NULL), 200);
	assert_string_equal(F.last_op, "pause");
	assert_string_equal(json_string_value(json_object_get(J, "state")), "paused");
	assert_int_equal(call("POST", "/v1/domains/a/pause", NULL, NULL), 409);
	assert_int_equal(call("POST", "/v1/domains/a/shutdown", NULL, NULL), 409);
	assert_int_equal(call("POST", "/v1/domains/a/unpause", NULL, NULL), 200);
	assert_string_equal(F.last_op, "unpause");
	assert_int_equal(call("POST", "/v1/domains/a/shutdown", NULL, NULL), 202);
	assert_string_equal(F.last_op, "shutdown");
	assert_int_equal(call("POST", "/v1/domains/a/reboot", NULL, NULL), 202);
	assert_string_equal(F.last_op, "reset");

	assert_int_equal(call("GET", "/v1/domains/a/stats", NULL, NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(J, "vcpu_exits")), 99);
	assert_int_equal(json_array_size(json_object_get(J, "disks")), 1);
	assert_int_equal(call("GET", "/v1/domains/a/console", NULL, NULL), 200);
	assert_string_equal(R.body, "hello from the guest\n");
	{
		struct api_request req = {.method = "GET", .path = "/v1/domains/a/console",
					  .upgrade_console = true, .caller = CALLER};
		api_response_free(&R);
		api_handle(&A, &req, &R);
		assert_int_equal(R.status, 101);
		assert_int_equal(R.stream, API_STREAM_CONSOLE);
		assert_non_null(R.domain);
	}

	F.fail_request = true;
	assert_int_equal(call("POST", "/v1/domains/a/pause", NULL, NULL), 502);
	assert_string_equal(error_code(), "domain_unreachable");
	F.fail_request = false;
	assert_int_equal(call("GET", "/v1/domains/a", NULL, NULL), 200);
	assert_string_equal(json_string_value(json_object_get(J, "state")), "running");

	assert_int_equal(call("DELETE", "/v1/domains/a", NULL, NULL), 200);
	assert_int_equal(F.destroys, 1);
	assert_int_equal(A.mem.used_mib, 0);
	assert_int_equal(call("GET", "/v1/domains/a", NULL, NULL), 404);
	/* The name is free again. */
	assert_int_equal(create_json("a", 100), 201);
	assert_int_equal(json_integer_value(json_object_get(J, "domid")), 2);
}

/* A guest that says its balloon is full while it keeps its pages is counted by its pages. */
static void test_lying_guest(void **state)
{
	assert_int_equal(create_json("liar", 512), 201);
	assert_int_equal(call("PUT", "/v1/domains/liar/memory", NULL, "{\"target_mib\":128}"), 200);
	guest_says(api_find(&A, "liar"), 128, 100);
	/* Without the kernel's count, the word is all there is. */
	assert_int_equal(num_of("/v1/domains/liar", "memory_accounted_mib"), 128);
	F.kernel_counts = true;
	F.held_mib = 480;
	assert_int_equal(num_of("/v1/domains/liar", "memory_accounted_mib"), 480);
	assert_int_equal(num_of("/v1/host", "memory_used_mib"), 480);
	/* 1000 MiB for domains, 480 held: a 600 MiB domain does not fit, whatever the balloon says. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='next'\nkernel='/k'\nmemory=600\nballoon=0\n"), 409);
	assert_string_equal(error_code(), "insufficient_memory");
	/* It gives the pages back for real: the account follows, and the domain fits. */
	F.held_mib = 100;
	assert_int_equal(num_of("/v1/domains/liar", "memory_accounted_mib"), 128);
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='next'\nkernel='/k'\nmemory=600\nballoon=0\n"), 201);
}

/* A domain is its creator's: others in the API group neither see nor touch it. */
static void test_owners(void **state)
{
	struct caller alice = {.uid = 1001, .gid = 100}, bob = {.uid = 1002, .gid = 100};
	unsigned long long first = A.event_seq;

	assert_int_equal(create_json("r", 10), 201); /* root's */
	CALLER = &alice;
	assert_int_equal(create_json("a", 10), 201);
	assert_int_equal(json_integer_value(json_object_get(J, "owner")), 1001);
	assert_int_equal(call("GET", "/v1/domains", NULL, NULL), 200);
	assert_int_equal(json_array_size(json_object_get(J, "domains")), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(J, "domains"), 0), "name")), "a");
	assert_int_equal(call("DELETE", "/v1/domains/r", NULL, NULL), 403);
	assert_string_equal(error_code(), "forbidden");
	assert_string_equal(error_message(), "domain 'r' belongs to uid 0; uid 1001 may not act on it");
	/* Its events: alice hears of her own domain, not of root's. */
	assert_null(api_event_line(&A, first, CALLER));
	assert_non_null(api_event_line(&A, first + 1, CALLER));

	CALLER = &bob;
	for (const char *const *p = (const char *const[]){"POST /v1/domains/a/pause",
			"POST /v1/domains/a/destroy", "DELETE /v1/domains/a", "GET /v1/domains/a",
			"GET /v1/domains/a/console", "GET /v1/domains/a/stats",
			"PUT /v1/domains/a/memory", NULL}; *p; p++) {
		char method[8], path[64];
		sscanf(*p, "%7s %63s", method, path);
		assert_int_equal(call(method, path, "application/json", "{\"target_mib\": 5}"), 403);
		assert_string_equal(error_code(), "forbidden");
	}
	assert_int_equal(F.destroys, 0);
	assert_int_equal(call("GET", "/v1/domains", NULL, NULL), 200);
	assert_int_equal(json_array_size(json_object_get(J, "domains")), 0);
	assert_null(api_event_line(&A, first + 1, CALLER));
	assert_int_equal(call("GET", "/v1/host", NULL, NULL), 200);

	/* Root sees and acts on every domain; alice on hers. */
	CALLER = &ROOT;
	assert_int_equal(call("GET", "/v1/domains", NULL, NULL), 200);
	assert_int_equal(json_array_size(json_object_get(J, "domains")), 2);
	assert_int_equal(call("POST", "/v1/domains/a/pause", NULL, NULL), 200);
	CALLER = &alice;
	assert_int_equal(call("POST", "/v1/domains/a/unpause", NULL, NULL), 200);
	assert_int_equal(call("DELETE", "/v1/domains/a", NULL, NULL), 200);
	assert_int_equal(F.destroys, 1);

	/* A request with no credentials is nobody's. */
	CALLER = NULL;
	assert_int_equal(call("GET", "/v1/host", NULL, NULL), 403);
}

static bool event_is(unsigned long long seq, const char *type)
{
	const char *line = api_event_line(&A, seq, CALLER);
	char want[64];

	snprintf(want, sizeof(want), "\"event\":\"%s\"", type);
	return line && strstr(line, want);
}

static void test_events(void **state)
{
	assert_int_equal(create_json("a", 10), 201);
	assert_int_equal(call("POST", "/v1/domains/a/pause", NULL, NULL), 200);
	assert_int_equal(call("DELETE", "/v1/domains/a", NULL, NULL), 200);
	assert_true(event_is(0, "started"));
	assert_true(event_is(1, "paused"));
	assert_true(event_is(2, "destroyed"));
	assert_null(api_event_line(&A, 3, CALLER));
	assert_int_equal(F.events, 3);

	assert_int_equal(call("GET", "/v1/events", NULL, NULL), 200);
	assert_int_equal(R.stream, API_STREAM_EVENTS);
	assert_int_equal(R.since, 3);
	{
		struct api_request req = {.method = "GET", .path = "/v1/events", .since = "1",
					  .caller = CALLER};
		api_response_free(&R);
		api_handle(&A, &req, &R);
		assert_int_equal(R.since, 1);
		req.since = "x1";
		api_response_free(&R);
		api_handle(&A, &req, &R);
		assert_int_equal(R.status, 400);
	}

	/* The ring keeps the newest API_EVENT_RING events. */
	for (int i = 0; i < API_EVENT_RING + 10; i++)
		api_event(&A, "test", NULL, "filler");
	assert_null(api_event_line(&A, 0, CALLER));
	assert_null(api_event_line(&A, 12, CALLER));
	assert_true(event_is(A.event_seq - 1, "test"));
	assert_true(event_is(A.event_seq - API_EVENT_RING, "test"));
	{
		struct api_request req = {.method = "GET", .path = "/v1/events", .since = "0",
					  .caller = CALLER};
		api_response_free(&R);
		api_handle(&A, &req, &R);
		assert_int_equal(R.since, A.event_seq - API_EVENT_RING);
	}
}

static void test_domain_gone(void **state)
{
	struct domain *d;

	assert_int_equal(create_json("a", 10), 201);
	d = api_find(&A, "a");
	assert_non_null(d);
	snprintf(d->stop_reason, sizeof(d->stop_reason), "panic");
	api_domain_gone(&A, d);
	assert_true(event_is(1, "crashed"));
	assert_int_equal(A.mem.used_mib, 0);
	assert_null(api_find(&A, "a"));

	assert_int_equal(create_json("b", 10), 201);
	d = api_find(&A, "b");
	snprintf(d->stop_reason, sizeof(d->stop_reason), "poweroff");
	api_domain_gone(&A, d);
	assert_true(event_is(3, "stopped"));

	/* A process that vanished without a word is a crash. */
	assert_int_equal(create_json("c", 10), 201);
	api_domain_gone(&A, api_find(&A, "c"));
	assert_true(event_is(5, "crashed"));
}

/* The JSON form of a configuration reads back into the same domain. */
static void test_spec_json_round_trip(void **state)
{
	static struct domain_spec a, b;
	struct xl_config xl;
	char err[512];
	const char *text =
		"name='d1'\nuuid='6c1a2b3c-0000-4000-8000-000000000001'\nkernel='/k'\nramdisk='/r'\n"
		"cmdline='root=/dev/vda quiet'\nmemory=256\nmaxmem=1024\nvcpus=2\nmaxvcpus=4\n"
		"on_poweroff='preserve'\non_reboot='destroy'\non_crash='restart'\ncpus='0-1,3'\n"
		"cpu_weight=512\ncap=50\nvif=['mac=00:16:3e:01:02:03,bridge=net0,ip=10.0.0.2', '']\n"
		"disk=['format=raw, vdev=xvdb, access=ro, target=/img/with,comma.img','/b.img,qcow2,xvdc,rw']\n"
		"disk_qos=['weight=300,limit-bps=8M', 'xvdc: reserve-iops=50,class=interactive']\n";
	json_t *j;

	assert_int_equal(xl_parse(text, strlen(text), "t.cfg", &xl, err, sizeof(err)), 0);
	assert_int_equal(domain_spec_from_xl(&xl, "t.cfg", &a, err, sizeof(err)), 0);
	xl_free(&xl);
	j = domain_spec_to_json(&a);
	assert_non_null(j);
	assert_int_equal(domain_spec_from_json(j, "j", &b, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(a.name, b.name);
	assert_string_equal(a.uuid, b.uuid);
	assert_string_equal(a.vm.kernel, b.vm.kernel);
	assert_string_equal(a.vm.initrd, b.vm.initrd);
	assert_string_equal(a.vm.cmdline, b.vm.cmdline);
	assert_int_equal(a.vm.memory_mib, b.vm.memory_mib);
	assert_int_equal(a.vm.maxmem_mib, b.vm.maxmem_mib);
	assert_int_equal(a.vm.vcpus, b.vm.vcpus);
	assert_int_equal(a.maxvcpus, b.maxvcpus);
	assert_int_equal(a.on_poweroff, b.on_poweroff);
	assert_int_equal(a.on_reboot, b.on_reboot);
	assert_int_equal(a.on_crash, b.on_crash);
	assert_string_equal(a.cpus, b.cpus);
	assert_int_equal(a.cpu_weight, b.cpu_weight);
	assert_int_equal(a.cap, b.cap);
	assert_int_equal(b.vm.ndisks, 2);
	assert_string_equal(b.vm.disks[0].path, "/img/with,comma.img");
	assert_true(b.vm.disks[0].readonly);
	assert_string_equal(b.vm.disks[1].path, "/b.img");
	assert_false(b.vm.disks[1].readonly);
	assert_false(b.vm.disks[0].qcow2);
	assert_true(b.vm.disks[1].qcow2);
	assert_int_equal(b.nvifs, 2);
	assert_string_equal(b.vifs[0].mac, "00:16:3e:01:02:03");
	assert_string_equal(b.vifs[0].ip, "10.0.0.2");
	assert_string_equal(b.vm.disks[0].vdev, "xvdb");
	assert_string_equal(b.vm.disks[1].vdev, "xvdc");
	assert_string_equal(b.disk_qos, "weight=300,limit-bps=8388608");
	assert_false(b.disk_qos_own[0]);
	assert_true(b.disk_qos_own[1]);
	assert_string_equal(b.disk_qos_disk[1], "reserve-iops=50,class=interactive");

	/* A copy points at its own buffers once fixed up. */
	b = a;
	domain_spec_fixup(&b);
	assert_ptr_equal(b.vm.kernel, b.kernel);
	assert_ptr_equal(b.vm.initrd, b.ramdisk);
}

static void test_cpulist(void **state)
{
	cpu_set_t set;
	unsigned hi;

	assert_int_equal(cpulist_parse("0-3,5", &set, &hi), 1);
	assert_int_equal(hi, 5);
	assert_int_equal(CPU_COUNT(&set), 5);
	assert_true(CPU_ISSET(5, &set));
	assert_false(CPU_ISSET(4, &set));
	assert_int_equal(cpulist_parse("all", &set, &hi), 0);
	assert_int_equal(cpulist_parse("", &set, &hi), 0);
	assert_int_equal(cpulist_parse("3-1", &set, &hi), -EINVAL);
	assert_int_equal(cpulist_parse("x", &set, &hi), -EINVAL);
	assert_int_equal(cpulist_parse("0-", &set, &hi), -EINVAL);
	assert_int_equal(cpulist_parse("1024", &set, &hi), -EINVAL);
	assert_int_equal(cpulist_parse("99999999999999999999", &set, &hi), -EINVAL);
}


/* ---- shared-memory regions: /v1/shm and a domain's shm = [...] ---- */

static void no_add(int fd, struct watch *w)
{
	(void)fd, (void)w;
}

static void no_del(int fd)
{
	(void)fd;
}

static const struct watch_loop no_loop = {.add = no_add, .del = no_del};
static struct shm_registry SHM;
static char shm_dir[64];

static int shm_setup(void **state)
{
	setup(state);
	snprintf(shm_dir, sizeof(shm_dir), "/tmp/test_api_shm.XXXXXX");
	assert_non_null(mkdtemp(shm_dir));
	assert_int_equal(shm_registry_init(&SHM, shm_dir, &no_loop, 1, 2), 0);
	A.shm = &SHM;
	return 0;
}

static int shm_teardown(void **state)
{
	shm_registry_free(&SHM);
	rmdir(shm_dir);
	return teardown(state);
}

static unsigned delete_forced(const char *path)
{
	struct api_request req = {.method = "DELETE", .path = path, .force = "1", .caller = CALLER};

	json_decref(J);
	api_response_free(&R);
	api_handle(&A, &req, &R);
	J = R.body ? json_loads(R.body, 0, NULL) : NULL;
	return R.status;
}

static void test_shm_api(void **state)
{
	struct caller alice = {.uid = 1001, .gid = 100}, bob = {.uid = 1002, .gid = 100};
	char sock_path[128];
	json_t *peer;
	int peer_fd;

	(void)state;
	assert_int_equal(call("GET", "/v1/shm", NULL, NULL), 200);
	assert_int_equal(json_array_size(json_object_get(J, "regions")), 0);
	assert_int_equal(call("POST", "/v1/shm", "application/json",
			      "{\"name\": \"chan0\", \"size\": \"4M\", \"vectors\": 2}"), 201);
	assert_string_equal(json_string_value(json_object_get(J, "name")), "chan0");
	assert_int_equal(json_integer_value(json_object_get(J, "size")), 4 << 20);
	assert_int_equal(json_integer_value(json_object_get(J, "vectors")), 2);
	assert_true(json_is_true(json_object_get(J, "doorbell")));
	snprintf(sock_path, sizeof(sock_path), "%s/chan0.sock", shm_dir);
	assert_string_equal(json_string_value(json_object_get(J, "socket")), sock_path);
	assert_int_equal(call("POST", "/v1/shm", "application/json",
			      "{\"name\": \"plain0\", \"size\": 65536, \"doorbell\": false}"), 201);
	assert_int_equal(json_integer_value(json_object_get(J, "vectors")), 0);

	/* Refusals, each saying what is wrong. */
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"chan0\", \"size\": 4096}"), 409);
	assert_string_equal(error_code(), "name_in_use");
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"x\", \"size\": \"3M\"}"), 400);
	assert_string_equal(error_code(), "invalid_shm");
	assert_non_null(strstr(error_message(), "power of two"));
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"x\", \"size\": \"2G\"}"), 400);
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"x\", \"size\": \"lots\"}"), 400);
	assert_int_equal(call("POST", "/v1/shm", "application/json",
			      "{\"name\": \"x\", \"size\": 4096, \"vectors\": 65}"), 400);
	assert_non_null(strstr(error_message(), "vectors 65"));
	assert_int_equal(call("POST", "/v1/shm", "application/json",
			      "{\"name\": \"x\", \"size\": 4096, \"vectors\": -1}"), 400);
	assert_int_equal(call("POST", "/v1/shm", "application/json",
			      "{\"name\": \"x\", \"size\": 4096, \"doorbell\": false, \"vectors\": 2}"), 400);
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"../x\", \"size\": 4096}"), 400);
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"x\"}"), 400);
	assert_string_equal(error_code(), "bad_request");
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"x\", \"size\": 4096, \"colour\": 1}"),
			 400);
	assert_int_equal(call("POST", "/v1/shm", "application/json", "not json"), 400);
	assert_int_equal(call("PUT", "/v1/shm", NULL, NULL), 405);
	assert_int_equal(call("GET", "/v1/shm/nope", NULL, NULL), 404);
	assert_int_equal(call("PUT", "/v1/shm/chan0", NULL, NULL), 405);
	assert_int_equal(call("GET", "/v1/shmx", NULL, NULL), 404);

	/* Owners: alice sees and destroys only hers; root all. */
	CALLER = &alice;
	assert_int_equal(call("POST", "/v1/shm", "application/json", "{\"name\": \"alices\", \"size\": \"8K\"}"), 201);
	assert_int_equal(json_integer_value(json_object_get(J, "owner")), 1001);
	/* Its event is alice's (and root's) to see, not bob's. */
	assert_non_null(strstr(api_event_line(&A, A.event_seq - 1, &alice), "\"shm_created\""));
	assert_null(api_event_line(&A, A.event_seq - 1, &bob));
	assert_non_null(api_event_line(&A, A.event_seq - 1, &ROOT));
	assert_int_equal(call("GET", "/v1/shm", NULL, NULL), 200);
	assert_int_equal(json_array_size(json_object_get(J, "regions")), 1);
	assert_int_equal(call("GET", "/v1/shm/chan0", NULL, NULL), 403);
	assert_string_equal(error_message(), "region 'chan0' belongs to uid 0; uid 1001 may not act on it");
	assert_int_equal(call("DELETE", "/v1/shm/chan0", NULL, NULL), 403);
	CALLER = &bob;
	assert_int_equal(call("DELETE", "/v1/shm/alices", NULL, NULL), 403);
	/* A domain of bob's may not attach to alice's region... */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='b'\nkernel='/k'\nshm=['name=alices,size=8K']\n"), 403);
	assert_non_null(strstr(error_message(), "shm 'alices': region 'alices' belongs to uid 1001"));
	assert_int_equal(F.starts, 0);
	CALLER = &alice;
	/* ...alice's may; its process is told the socket. */
	F.next_pid = getpid() - 1; /* the domain's "process" is this test, which connects below */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='a'\nkernel='/k'\nmemory=64\nshm=['name=alices,size=8K,vectors=1']\n"), 201);
	{
		struct domain *d = api_find(&A, "a");
		char want[128];
		snprintf(want, sizeof(want), "%s/alices.sock", shm_dir);
		assert_int_equal(d->spec.vm.nshms, 1);
		assert_string_equal(d->spec.vm.shms[0].path, want);
		assert_true(d->spec.vm.shms[0].doorbell);
	}
	/* A region named by a domain is made if missing, owned as the domain. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='a2'\nkernel='/k'\nmemory=64\nshm=['name=fresh,size=64K,doorbell=0']\n"), 201);
	assert_int_equal(call("GET", "/v1/shm/fresh", NULL, NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(J, "owner")), 1001);
	assert_false(json_is_true(json_object_get(J, "doorbell")));
	/* One that exists otherwise is refused, naming both. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='a3'\nkernel='/k'\nshm=['name=alices,size=16K']\n"), 409);
	assert_string_equal(error_code(), "shm_mismatch");
	assert_string_equal(error_message(), "shm 'alices': region 'alices' exists as size=8K,doorbell=1,vectors=1; "
					     "the domain asks for size=16K,doorbell=1,vectors=1");
	assert_null(api_find(&A, "a3"));
	/* A path is domusd's to choose. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain",
			      "name='a4'\nkernel='/k'\nshm=['name=alices,size=8K,path=/tmp/elsewhere']\n"), 400);
	assert_non_null(strstr(error_message(), "path= is domusd's to choose"));
	/* A bad entry is refused naming the key and the entry. */
	assert_int_equal(call("POST", "/v1/domains", "text/plain", "name='a5'\nkernel='/k'\nshm=['name=z,size=5K']\n"),
			 400);
	assert_non_null(strstr(error_message(), "shm 'name=z,size=5K': size 5K"));

	/* A peer connects: listed with the domain whose process it is. */
	peer_fd = unix_connect(shm_find(&SHM, "alices")->server.path, SOCK_STREAM);
	assert_true(peer_fd >= 0);
	shm_server_accept(&shm_find(&SHM, "alices")->server);
	assert_int_equal(call("GET", "/v1/shm/alices", NULL, NULL), 200);
	peer = json_array_get(json_object_get(J, "peers"), 0);
	assert_non_null(peer);
	assert_int_equal(json_integer_value(json_object_get(peer, "id")), 0);
	assert_int_equal(json_integer_value(json_object_get(peer, "pid")), getpid());
	assert_string_equal(json_string_value(json_object_get(peer, "domain")), "a");
	/* Not destroyed under its peer, unless forced. */
	assert_int_equal(call("DELETE", "/v1/shm/alices", NULL, NULL), 409);
	assert_string_equal(error_code(), "shm_in_use");
	assert_non_null(strstr(error_message(), "1 peer(s) attached"));
	assert_int_equal(delete_forced("/v1/shm/alices"), 200);
	assert_string_equal(json_string_value(json_object_get(J, "destroyed")), "alices");
	{
		/* Its messages, then the end of its connection. */
		char buf[256];
		ssize_t n;
		int reads = 0;
		while ((n = read(peer_fd, buf, sizeof(buf))) > 0 && ++reads < 100)
			;
		assert_int_equal(n, 0);
	}
	close(peer_fd);
	assert_int_equal(call("GET", "/v1/shm/alices", NULL, NULL), 404);
	assert_int_equal(call("DELETE", "/v1/shm/fresh", NULL, NULL), 200);

	/* Root sees everyone's. */
	CALLER = &ROOT;
	assert_int_equal(call("GET", "/v1/shm", NULL, NULL), 200);
	assert_int_equal(json_array_size(json_object_get(J, "regions")), 2);
	assert_int_equal(call("DELETE", "/v1/shm/chan0", NULL, NULL), 200);
	assert_int_equal(call("DELETE", "/v1/shm/plain0", NULL, NULL), 200);
}

/* Without a registry (a domusd that keeps none), the paths and the key are refused plainly. */
static void test_shm_none(void **state)
{
	(void)state;
	assert_int_equal(call("GET", "/v1/shm", NULL, NULL), 404);
	assert_int_equal(call("POST", "/v1/domains", "text/plain", "name='b'\nkernel='/k'\nshm=['name=c,size=8K']\n"),
			 400);
	assert_non_null(strstr(error_message(), "keeps no shared-memory regions"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_cid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths_and_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mem_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_qos, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_and_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reclaim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lying_guest, setup, teardown),
		cmocka_unit_test(test_spec_json_round_trip),
		cmocka_unit_test_setup_teardown(test_shm_api, shm_setup, shm_teardown),
		cmocka_unit_test_setup_teardown(test_shm_none, setup, teardown),
		cmocka_unit_test(test_cpulist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
