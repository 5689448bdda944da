#include "ctl/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl/args.h"
#include "ctl/client.h"

/* Exit statuses: 0 done, 1 domusd refused, 2 bad usage, 3 domusd unreachable (cli.h). */

const char cli_usage[] =
	"  create CFG [-c]       create a domain from an xl.cfg file (-c: attach its console)\n"
	"  list [-l] [--json]    list domains (-l: with their configuration)\n"
	"  info [--json]         the host: CPUs, memory for domains, domains running\n"
	"  destroy DOMAIN        end a domain at once\n"
	"  shutdown [-w] DOMAIN  press the domain's power button (-w: wait until it is gone)\n"
	"  reboot DOMAIN         reset the domain; it boots again\n"
	"  pause DOMAIN          stop the domain's vCPUs and its clock\n"
	"  unpause DOMAIN        let a paused domain run again\n"
	"  console DOMAIN        attach to the domain's console (Ctrl-] detaches)\n"
	"  mem-set [-w] DOMAIN SIZE\n"
	"                        set the domain's memory (MiB, or with k/m/g); -w: wait for the guest\n"
	"  disk-qos DOMAIN [VDEV] [KEY=VALUE...|reset]\n"
	"                        show or change the disk scheduler's QoS of a domain's disks, live\n"
	"  blk-sched [KEY=VALUE...]\n"
	"                        show or change the disk scheduler's host-wide settings, live\n"
	"  sched-credit [-d DOMAIN [-w WEIGHT] [-c CAP]]\n"
	"                        show or change domains' CPU weights (256 default) and caps (% of a CPU)\n"
	"  vcpu-pin DOMAIN VCPU|all CPUS\n"
	"                        pin a domain's vCPU (or all) to host CPUs (\"all\": anywhere), live\n"
	"  vcpu-list [DOMAIN]    each vCPU's host CPU, state, CPU time, steal time and affinity\n"
	"  top [-d SECS] [-n N] [-b] [--json]\n"
	"                        live CPU, memory, disk and network use per domain\n"
	"  events [--json]       follow domain events (started, stopped, crashed, ...)\n"
	"  shm-create NAME SIZE [--vectors N] [--plain]\n"
	"                        a shared-memory region (ivshmem) domains and QEMUs attach to\n"
	"  shm-list [--json]     the regions, their sizes, owners and peers\n"
	"  shm-destroy NAME [--force]\n"
	"                        end a region (--force: though peers are attached)\n"
	"  vfr networks | net-add NAME CIDR [mode=..] [default=..] | rules | add [-p POS] RULE...\n"
	"      | remove ID | stats | capture DOMAIN FILE | uncapture DOMAIN\n"
	"                        the firewall-router: networks, rules (live), counters, pcap\n"
	"options for all: --socket PATH (or DOMUS_SOCKET; default " DOMUS_DEFAULT_SOCKET ")\n";

static struct client C;
static bool want_json;

static int refused(json_t *reply, int status)
{
	client_print_error(reply, status);
	json_decref(reply);
	return EXIT_REFUSED;
}

struct client *cli_client(void)
{
	return &C;
}

bool cli_want_json(void)
{
	return want_json;
}

int cli_refused(json_t *reply, int status)
{
	return refused(reply, status);
}

/* A request whose reply we only check; prints the error if there is one. */
static int simple(const char *method, const char *path, json_t **out)
{
	json_t *reply;
	int status = client_request(&C, method, path, NULL, NULL, 0, &reply, NULL);

	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status >= 300)
		return refused(reply, status);
	if (out)
		*out = reply;
	else
		json_decref(reply);
	return 0;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));

	if (s)
		puts(s);
	free(s);
}

static int read_file(const char *path, char **text, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
		fprintf(stderr, "domus: cannot read %s: %s\n", path,
			fd < 0 ? strerror(errno) : "not a regular file of at most 1 MiB");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*text = malloc((size_t)st.st_size + 1);
	n = *text ? read(fd, *text, (size_t)st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		fprintf(stderr, "domus: cannot read %s\n", path);
		free(*text);
		return -1;
	}
	(*text)[n] = 0;
	*len = (size_t)n;
	return 0;
}

static int cmd_create(int argc, char **argv)
{
	bool console = false;
	const char *file = NULL;
	char path[512], *text;
	size_t len;
	json_t *reply, *w;
	size_t wi;
	int status;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-c"))
			console = true;
		else if (!file && argv[i][0] != '-')
			file = argv[i];
		else {
			fprintf(stderr, "domus create: unexpected '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!file) {
		fprintf(stderr, "usage: domus create CFG [-c]\n");
		return EXIT_USAGE;
	}
	if (read_file(file, &text, &len) < 0)
		return EXIT_USAGE;
	/* The file's name, for domusd's messages: "web.cfg:3:9: ...". */
	{
		char *q = client_escape(file);
		snprintf(path, sizeof(path), "/v1/domains?source=%s", q ? q : "config");
		free(q);
	}
	status = client_request(&C, "POST", path, "text/plain", text, len, &reply, NULL);
	free(text);
	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status != 201)
		return refused(reply, status);
	json_array_foreach(json_object_get(reply, "warnings"), wi, w)
		fprintf(stderr, "domus: warning: %s\n", json_string_value(w));
	if (want_json)
		print_json(reply);
	else
		printf("Created domain %s (id %lld)\n",
		       json_string_value(json_object_get(reply, "name")),
		       json_integer_value(json_object_get(reply, "domid")));
	fflush(stdout);
	if (console) {
		char name[128];
		snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(reply, "name")));
		json_decref(reply);
		return client_console(&C, name) < 0 ? EXIT_REFUSED : 0;
	}
	json_decref(reply);
	return 0;
}

static double num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static int cmd_list(int argc, char **argv)
{
	bool longform = argc > 1 && !strcmp(argv[1], "-l");
	json_t *reply, *d;
	size_t i;
	int ret;

	if (argc > 2 || (argc == 2 && !longform)) {
		fprintf(stderr, "usage: domus list [-l] [--json]\n");
		return EXIT_USAGE;
	}
	ret = simple("GET", "/v1/domains", &reply);
	if (ret)
		return ret;
	if (longform) {
		/* As xl list -l: every domain with its configuration. */
		json_t *full = json_array();
		json_array_foreach(json_object_get(reply, "domains"), i, d) {
			char path[128];
			json_t *one;
			snprintf(path, sizeof(path), "/v1/domains/%lld",
				 json_integer_value(json_object_get(d, "domid")));
			if (simple("GET", path, &one) == 0)
				json_array_append_new(full, one);
		}
		print_json(full);
		json_decref(full);
	} else if (want_json) {
		print_json(json_object_get(reply, "domains"));
	} else {
		/* As xl list, Mem is what the domain has now; Target is what it was asked to have. */
		printf("%-32s %5s %7s %7s %5s %-9s %9s\n", "Name", "ID", "Mem", "Target", "VCPUs",
		       "State", "Time(s)");
		json_array_foreach(json_object_get(reply, "domains"), i, d)
			printf("%-32.32s %5.0f %7.0f %7.0f %5.0f %-9s %9.1f\n", str(d, "name"),
			       num(d, "domid"), num(d, "actual_mib"), num(d, "target_mib"),
			       num(d, "vcpus"), str(d, "state"), num(d, "cpu_seconds"));
	}
	json_decref(reply);
	return 0;
}

static int cmd_info(int argc, char **argv)
{
	json_t *h;
	int ret = simple("GET", "/v1/host", &h);

	if (ret)
		return ret;
	if (want_json) {
		print_json(h);
	} else {
		printf("nr_cpus                : %.0f\n", num(h, "cpus"));
		printf("total_memory           : %.0f\n", num(h, "memory_total_mib"));
		printf("domain_memory          : %.0f\n", num(h, "memory_capacity_mib"));
		printf("free_memory            : %.0f\n", num(h, "memory_free_mib"));
		printf("nr_domains             : %.0f\n", num(h, "domains"));
		printf("nr_vcpus               : %.0f\n", num(h, "vcpus"));
		{
			json_t *c = json_object_get(h, "blk_cache");
			if (c) {
				printf("blk_cache              : %.1f MiB of %.0f MiB\n",
				       num(c, "size_bytes") / 1048576, num(c, "limit_bytes") / 1048576);
				printf("blk_cache_hits         : %.0f of %.0f reads, %.1f%% of %.1f MiB\n",
				       num(c, "hits"), num(c, "hits") + num(c, "misses"),
				       num(c, "hit_ratio") * 100,
				       (num(c, "hit_bytes") + num(c, "miss_bytes")) / 1048576);
			}
		}
		printf("domusd_socket          : %s\n", C.socket);
	}
	json_decref(h);
	return 0;
}

static int domain_verb(int argc, char **argv, const char *method, const char *action)
{
	char path[256];

	if (argc != 2) {
		fprintf(stderr, "usage: domus %s DOMAIN\n", argv[0]);
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/domains/%s%s%s", argv[1], action ? "/" : "",
		 action ? action : "");
	return simple(method, path, NULL);
}

/*
 * Polls GET /v1/domains/NAME every 200 ms until done() says the wait is
 * over (-1 to go on, or the exit status); reply is NULL once it is gone.
 */
static int poll_domain(const char *name, int (*done)(const char *name, json_t *reply))
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/domains/%s", name);
	for (;;) {
		json_t *reply;
		int status = client_request(&C, "GET", path, NULL, NULL, 0, &reply, NULL), ret;

		if (status < 0)
			return EXIT_UNREACHABLE;
		if (status >= 300 && status != 404)
			return refused(reply, status);
		if (status == 404) {
			json_decref(reply);
			reply = NULL;
		}
		ret = done(name, reply);
		json_decref(reply);
		if (ret >= 0)
			return ret;
		poll(NULL, 0, 200);
	}
}

/* Gone, or stopped and preserved. */
static int gone_or_stopped(const char *name, json_t *reply)
{
	const char *state = json_string_value(json_object_get(reply, "state"));

	return !reply || (state && (!strcmp(state, "shutdown") || !strcmp(state, "crashed"))) ? 0 : -1;
}

static int wait_gone(const char *name)
{
	return poll_domain(name, gone_or_stopped);
}

static int cmd_shutdown(int argc, char **argv)
{
	bool wait = false;
	const char *name = NULL;
	char path[256];
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-w"))
			wait = true;
		else if (!name)
			name = argv[i];
		else
			name = NULL, i = argc;
	}
	if (!name) {
		fprintf(stderr, "usage: domus shutdown [-w] DOMAIN\n");
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/domains/%s/shutdown", name);
	ret = simple("POST", path, NULL);
	if (ret || !wait)
		return ret;
	return wait_gone(name);
}

static int cmd_console(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: domus console DOMAIN\n");
		return EXIT_USAGE;
	}
	return client_console(&C, argv[1]) < 0 ? EXIT_REFUSED : 0;
}

/* ---- top ---- */

struct sample {
	char name[64];
	double cpu_seconds;
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double previous_cpu(const struct sample *prev, size_t nprev, const char *name, double fallback)
{
	for (size_t i = 0; i < nprev; i++)
		if (!strcmp(prev[i].name, name))
			return prev[i].cpu_seconds;
	return fallback;
}

static double disk_sum(const json_t *d, const char *key)
{
	double v = 0;
	size_t i;
	json_t *disk;

	json_array_foreach(json_object_get(d, "disks"), i, disk)
		v += num(disk, key);
	return v;
}

/* One refresh: every domain's stats, with CPU use since the last refresh. */
static json_t *top_sample(struct sample **prev, size_t *nprev, double *last, json_t *host)
{
	json_t *list, *d, *rows = json_array();
	double t = now_seconds(), dt = *last > 0 ? t - *last : 0;
	struct sample *cur;
	size_t i, n = 0;

	if (simple("GET", "/v1/domains", &list))
		return NULL;
	cur = calloc(json_array_size(json_object_get(list, "domains")) + 1, sizeof(*cur));
	json_array_foreach(json_object_get(list, "domains"), i, d) {
		char path[128];
		json_t *st;
		double cpu, before, pct;

		snprintf(path, sizeof(path), "/v1/domains/%lld/stats",
			 json_integer_value(json_object_get(d, "domid")));
		if (client_request(&C, "GET", path, NULL, NULL, 0, &st, NULL) != 200) {
			json_decref(st);
			continue; /* gone meanwhile */
		}
		cpu = num(st, "cpu_seconds");
		before = previous_cpu(*prev, *nprev, str(st, "name"), cpu);
		pct = dt > 0 ? (cpu - before) / dt * 100.0 : 0;
		json_object_set_new(st, "cpu_percent", json_real(round(pct * 10) / 10));
		json_object_set_new(st, "memory_percent",
				    json_real(round(num(st, "memory_rss_kib") / 1024.0 /
						    (num(host, "memory_total_mib") ?: 1) * 1000) / 10));
		snprintf(cur[n].name, sizeof(cur[n].name), "%s", str(st, "name"));
		cur[n++].cpu_seconds = cpu;
		json_array_append_new(rows, st);
	}
	json_decref(list);
	free(*prev);
	*prev = cur;
	*nprev = n;
	*last = t;
	return rows;
}

/* The disk scheduler's word on a domain: requests waiting, seconds throttled, the worst reservation met. */
static void disk_qos_sums(const json_t *d, double *waiting, double *throttled, char *met, size_t metlen)
{
	const json_t *g;
	long long worst = -1;
	size_t i;

	*waiting = *throttled = 0;
	json_array_foreach(json_object_get(d, "disk_qos"), i, g) {
		const json_t *st = json_object_get(g, "stats"), *m = json_object_get(st, "reserve_met_percent");
		*waiting += num(st, "waiting");
		*throttled += num(st, "throttled_seconds");
		if (json_is_integer(m) && (worst < 0 || json_integer_value(m) < worst))
			worst = json_integer_value(m);
	}
	if (worst < 0)
		snprintf(met, metlen, "-");
	else
		snprintf(met, metlen, "%lld", worst);
}

static void top_print(json_t *rows, json_t *host, bool batch, unsigned winrows)
{
	size_t i;
	json_t *d;
	unsigned shown = 0;

	if (!batch)
		fputs("\033[H\033[2J", stdout);
	printf("domus top - %zu domains, %.0f CPUs, %.0f of %.0f MiB for domains free%s\n",
	       json_array_size(rows), num(host, "cpus"), num(host, "memory_free_mib"),
	       num(host, "memory_capacity_mib"), batch ? "" : "   (q quits)");
	printf("%-20s %4s %-8s %9s %6s %9s %5s %5s %9s %9s %9s %9s %7s %9s %5s %6s %6s\n", "NAME", "ID", "STATE",
	       "CPU(sec)", "CPU(%)", "MEM(k)", "MEM%", "VCPUS", "RD_REQ", "WR_REQ", "RD(k)", "WR(k)",
	       "DSK_WAIT", "THROTTLED", "RES%", "NETS", "NET_TX");
	json_array_foreach(rows, i, d) {
		double waiting, throttled;
		char met[24];

		if (!batch && winrows && shown + 4 > winrows)
			break;
		disk_qos_sums(d, &waiting, &throttled, met, sizeof(met));
		printf("%-20.20s %4.0f %-8.8s %9.1f %6.1f %9.0f %5.1f %5.0f %9.0f %9.0f %9.0f %9.0f %7.0f %8.1fs %5s %6zu %6s\n",
		       str(d, "name"), num(d, "domid"), str(d, "state"), num(d, "cpu_seconds"),
		       num(d, "cpu_percent"), num(d, "memory_rss_kib"), num(d, "memory_percent"),
		       num(d, "vcpus"), disk_sum(d, "read_ops"), disk_sum(d, "write_ops"),
		       disk_sum(d, "read_bytes") / 1024, disk_sum(d, "write_bytes") / 1024, waiting, throttled, met,
		       json_array_size(json_object_get(d, "networks")), "-");
		shown++;
	}
	fflush(stdout);
}

static int cmd_top(int argc, char **argv)
{
	double delay = 1.0, last = 0;
	long iterations = 0; /* 0: until q */
	bool batch = false;
	struct sample *prev = NULL;
	size_t nprev = 0;
	struct termios saved, raw;
	int tty = 0, ret = 0;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-b")) {
			batch = true;
		} else if ((!strcmp(argv[i], "-d") || !strcmp(argv[i], "-n")) && i + 1 < argc) {
			double v = strtod(argv[i + 1], &end);
			if (*end || v <= 0 || v > 86400) {
				fprintf(stderr, "domus top: %s '%s' is not a positive number\n", argv[i],
					argv[i + 1]);
				return EXIT_USAGE;
			}
			if (argv[i][1] == 'd')
				delay = v;
			else
				iterations = (long)v;
			i++;
		} else {
			fprintf(stderr, "usage: domus top [-d SECS] [-n ITERATIONS] [-b] [--json]\n");
			return EXIT_USAGE;
		}
	}
	if (want_json)
		batch = true;
	if (batch && !iterations)
		iterations = want_json ? 2 : 1; /* CPU use needs two samples */
	if (!batch && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST | ONLCR;
		tty = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
	}
	for (long it = 0; !iterations || it < iterations; it++) {
		json_t *host, *rows;
		struct winsize ws = {0};
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};

		if (simple("GET", "/v1/host", &host)) {
			ret = EXIT_UNREACHABLE;
			break;
		}
		rows = top_sample(&prev, &nprev, &last, host);
		if (!rows) {
			json_decref(host);
			ret = EXIT_UNREACHABLE;
			break;
		}
		if (want_json) {
			if (it + 1 == iterations || iterations == 1) {
				json_t *o = json_pack("{s:O,s:O}", "host", host, "domains", rows);
				print_json(o);
				json_decref(o);
			}
		} else {
			ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
			top_print(rows, host, batch, ws.ws_row);
		}
		json_decref(rows);
		json_decref(host);
		if (iterations && it + 1 >= iterations)
			break;
		if (tty) {
			if (poll(&p, 1, (int)(delay * 1000)) == 1) {
				char c = 0;
				if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 3))
					break;
			}
		} else {
			poll(NULL, 0, (int)(delay * 1000));
		}
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	free(prev);
	return ret;
}

/* The balloon has done what it can with the target. */
static int balloon_settled(const char *name, json_t *reply)
{
	const char *state = json_string_value(json_object_get(json_object_get(reply, "balloon"), "state"));

	if (!reply) {
		fprintf(stderr, "domus: domain %s is gone\n", name);
		return EXIT_REFUSED;
	}
	if (!state || !strcmp(state, "reached"))
		return 0;
	if (!strcmp(state, "timed out") || !strcmp(state, "deflated by the guest")) {
		fprintf(stderr, "domus: domain %s: balloon %s at %.0f MiB of a %.0f MiB target\n", name,
			state, num(reply, "actual_mib"), num(reply, "target_mib"));
		return EXIT_REFUSED;
	}
	return -1;
}

static int cmd_mem_set(int argc, char **argv)
{
	bool wait = argc > 1 && !strcmp(argv[1], "-w");
	char path[256], body[64];
	uint64_t mib;
	json_t *reply;
	int status;

	if (argc != 3 + wait) {
		fprintf(stderr, "usage: domus mem-set [-w] DOMAIN SIZE\n");
		return EXIT_USAGE;
	}
	if (mem_size_parse(argv[2 + wait], &mib) < 0) {
		fprintf(stderr, "domus: mem-set: '%s' is not a size (MiB, or a number with k, m, g or t)\n",
			argv[2 + wait]);
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/domains/%s/memory", argv[1 + wait]);
	snprintf(body, sizeof(body), "{\"target_mib\":%llu}", (unsigned long long)mib);
	status = client_request(&C, "PUT", path, "application/json", body, strlen(body), &reply, NULL);
	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status >= 300)
		return refused(reply, status);
	json_decref(reply);
	return wait ? poll_domain(argv[1 + wait], balloon_settled) : 0;
}

static int cmd_events(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "domus events: follow with: curl --unix-socket %s -N http://domusd/v1/events\n",
		C.socket);
	return EXIT_USAGE;
}

int cli_run(int argc, char **argv)
{
	static const struct {
		const char *verb;
		int (*fn)(int, char **);
		const char *method, *action;
	} verbs[] = {
		{"create", cmd_create, NULL, NULL},
		{"list", cmd_list, NULL, NULL},
		{"info", cmd_info, NULL, NULL},
		{"destroy", NULL, "DELETE", NULL},
		{"shutdown", cmd_shutdown, NULL, NULL},
		{"reboot", NULL, "POST", "reboot"},
		{"pause", NULL, "POST", "pause"},
		{"unpause", NULL, "POST", "unpause"},
		{"console", cmd_console, NULL, NULL},
		{"mem-set", cmd_mem_set, NULL, NULL},
		{"disk-qos", cmd_disk_qos, NULL, NULL},
		{"blk-sched", cmd_blk_sched, NULL, NULL},
		{"sched-credit", cmd_sched_credit, NULL, NULL},
		{"vcpu-pin", cmd_vcpu_pin, NULL, NULL},
		{"vcpu-list", cmd_vcpu_list, NULL, NULL},
		{"top", cmd_top, NULL, NULL},
		{"events", cmd_events, NULL, NULL},
		{"vfr", cmd_vfr, NULL, NULL},
		{"shm-create", cmd_shm_create, NULL, NULL},
		{"shm-list", cmd_shm_list, NULL, NULL},
		{"shm-destroy", cmd_shm_destroy, NULL, NULL},
	};
	char *args[64];
	int n = 0;

	C.socket = getenv("DOMUS_SOCKET");
	if (!C.socket || !*C.socket)
		C.socket = DOMUS_DEFAULT_SOCKET;
	/* --socket and --json may come anywhere after the verb. */
	for (int i = 0; i < argc && n < 63; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			C.socket = argv[++i];
		else if (!strncmp(argv[i], "--socket=", 9))
			C.socket = argv[i] + 9;
		else if (!strcmp(argv[i], "--json"))
			want_json = true;
		else
			args[n++] = argv[i];
	}
	args[n] = NULL;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(args[0], verbs[i].verb))
			continue;
		if (verbs[i].fn)
			return verbs[i].fn(n, args);
		return domain_verb(n, args, verbs[i].method, verbs[i].action);
	}
	return -1;
}
