#include "vmm/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "domain/vmmproto.h"
#include "devices/virtio_balloon.h"
#include "lib/log.h"
#include "vmm/gang.h"

/* Console output is never allowed to stall a vCPU: a full pipe drops bytes, as a UART would. */
#define CONSOLE_PIPE_SIZE (1 << 20)
/* How often the guest is asked for memory statistics: domusd's balloon policy reads them. */
#define BALLOON_STATS_SECONDS 2

const char *vm_stop_name(enum vm_stop reason)
{
	switch (reason) {
	case VM_RUNNING: return "running";
	case VM_POWEROFF: return "poweroff";
	case VM_REBOOT: return "reboot";
	case VM_PANIC: return "panic";
	case VM_TRIPLE_FAULT: return "triple-fault";
	case VM_ERROR: return "error";
	case VM_INTERRUPTED: return "interrupted";
	}
	return "unknown";
}

int vmm_control_init(struct vmm_control *c, int listen_fd, int ctl_fd,
		     const struct domain_spec *spec, unsigned domid)
{
	int p[2];

	memset(c, 0, sizeof(*c));
	c->listen_fd = listen_fd;
	c->ctl_fd = ctl_fd;
	c->con_fd = -1;
	c->pending_fd = -1;
	c->log_fd = -1;
	c->spec = spec;
	c->domid = domid;
	c->state = "running";
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	c->out_rd = p[0];
	c->out_wr = p[1];
	if (fcntl(c->out_wr, F_SETPIPE_SZ, CONSOLE_PIPE_SIZE) < 0)
		log_debug("console pipe stays at its default size");
	if (fcntl(listen_fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++)
		snprintf(c->vcpu_cpus[i], sizeof(c->vcpu_cpus[i]), "%s", domain_vcpu_cpus(spec, i));
	c->balloon_target_mib = spec->vm.memory_mib;
	c->stats_timer_fd = -1;
	if (spec->vm.balloon) {
		struct itimerspec every = {.it_interval = {BALLOON_STATS_SECONDS, 0},
					   .it_value = {BALLOON_STATS_SECONDS, 0}};
		c->stats_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (c->stats_timer_fd < 0 || timerfd_settime(c->stats_timer_fd, 0, &every, NULL) < 0)
			return -errno;
	}
	return 0;
}

void vmm_control_event(struct vmm_control *c, json_t *ev)
{
	if (!ev)
		return;
	json_object_set_new(ev, "domid", json_integer(c->domid));
	json_object_set_new(ev, "state", json_string(c->state));
	if (c->ctl_fd >= 0 && vmmproto_send(c->ctl_fd, ev) < 0) {
		/* domusd is gone; a new one will reconnect and ask. */
		close(c->ctl_fd);
		c->ctl_fd = -1;
	}
	json_decref(ev);
}

enum domain_action vmm_control_action(const struct vmm_control *c, enum vm_stop reason)
{
	if (c->destroy)
		return ACTION_DESTROY;
	if (c->reset)
		return ACTION_RESTART;
	switch (reason) {
	case VM_POWEROFF: return c->spec->on_poweroff;
	case VM_REBOOT: return c->spec->on_reboot;
	case VM_PANIC:
	case VM_TRIPLE_FAULT: return c->spec->on_crash;
	default: return ACTION_DESTROY;
	}
}

static void ring_append(struct vmm_control *c, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t at = (c->ring_start + c->ring_len) % CONSOLE_RING_SIZE;
		c->ring[at] = p[i];
		if (c->ring_len < CONSOLE_RING_SIZE)
			c->ring_len++;
		else
			c->ring_start = (c->ring_start + 1) % CONSOLE_RING_SIZE;
	}
}

static void close_console(struct vmm_control *c)
{
	if (c->con_fd >= 0)
		close(c->con_fd);
	c->con_fd = -1;
}

static void console_send(struct vmm_control *c, const unsigned char *p, size_t n)
{
	while (c->con_fd >= 0 && n) {
		size_t chunk = n < 4096 ? n : 4096;
		ssize_t w = send(c->con_fd, p, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return; /* a slow reader loses live output; the ring still has it */
		if (w < 0) {
			close_console(c);
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/*
 * The log is for the host's people and scripts, not the guest's: a guest
 * that talks without end fills its 16 MiB and then only its ring, and a
 * log that cannot be written is given up rather than retried.
 */
static int log_write(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static void console_log(struct vmm_control *c, const unsigned char *p, size_t n)
{
	static const char full[] = "\r\n[domus: this console log is full; the ring goes on]\r\n";
	size_t room;

	if (c->log_fd < 0)
		return;
	room = CONSOLE_LOG_MAX - c->log_bytes;
	if (n > room)
		n = room;
	if (n && log_write(c->log_fd, p, n) < 0) {
		log_warn("the console log: its writes fail; no more of it");
		close(c->log_fd);
		c->log_fd = -1;
		return;
	}
	c->log_bytes += n;
	if (c->log_bytes == CONSOLE_LOG_MAX) {
		(void)log_write(c->log_fd, full, sizeof(full) - 1);
		close(c->log_fd);
		c->log_fd = -1;
	}
}

static void drain_output(struct vmm_control *c)
{
	unsigned char buf[4096];
	ssize_t n;

	while ((n = read(c->out_rd, buf, sizeof(buf))) > 0) {
		ring_append(c, buf, (size_t)n);
		console_log(c, buf, (size_t)n);
		console_send(c, buf, (size_t)n);
	}
}

static void console_attach(struct vmm_control *c, int fd)
{
	size_t first;

	c->con_fd = fd;
	/* What the domain printed while nobody watched, oldest first. */
	first = CONSOLE_RING_SIZE - c->ring_start;
	if (first > c->ring_len)
		first = c->ring_len;
	console_send(c, c->ring + c->ring_start, first);
	console_send(c, c->ring, c->ring_len - first);
}

static void console_input(struct vmm_control *c)
{
	unsigned char buf[4096];
	ssize_t n = recv(c->con_fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_console(c);
		return;
	}
	if (c->vm)
		vm_console_input(c->vm, buf, (size_t)n);
}

static json_t *stats_json(struct vmm_control *c)
{
	json_t *o = json_object(), *disks = json_array();
	unsigned long long exits = 0, io = 0, mmio = 0, other = 0;

	if (c->vm) {
		for (unsigned i = 0; i < c->vm->ndisks; i++) {
			struct vm_disk_stats st;
			vm_disk_stats(c->vm, i, &st);
			json_array_append_new(disks, json_pack("{s:I,s:I,s:I,s:I}", "read_ops",
							       (json_int_t)st.read_ops, "write_ops",
							       (json_int_t)st.write_ops, "read_bytes",
							       (json_int_t)st.read_bytes, "write_bytes",
							       (json_int_t)st.write_bytes));
		}
		for (unsigned i = 0; i < c->vm->nvcpus; i++) {
			exits += atomic_load(&c->vm->vcpus[i].exits);
			io += atomic_load(&c->vm->vcpus[i].exits_io);
			mmio += atomic_load(&c->vm->vcpus[i].exits_mmio);
			other += atomic_load(&c->vm->vcpus[i].exits_other);
		}
	}
	json_object_set_new(o, "disks", disks);
	json_object_set_new(o, "vcpu_exits", json_integer((json_int_t)exits));
	json_object_set_new(o, "vcpu_exits_by_reason",
			    json_pack("{s:I,s:I,s:I}", "io", (json_int_t)io, "mmio", (json_int_t)mmio,
				      "other", (json_int_t)other));
	json_object_set_new(o, "console_bytes", json_integer((json_int_t)c->ring_len));
	return o;
}

static json_t *balloon_json(struct virtio_balloon *b)
{
	static const char *const names[BALLOON_STAT_COUNT] = {
		"swap_in", "swap_out", "major_faults", "minor_faults", "free_bytes", "total_bytes",
		"available_bytes", "caches_bytes", "hugetlb_allocations", "hugetlb_failures"};
	struct balloon_info in;
	json_t *o, *st;

	virtio_balloon_info(b, &in);
	o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "ram_mib", (json_int_t)(in.ram_bytes >> 20),
		      "target_mib", (json_int_t)(in.target_bytes >> 20), "actual_mib",
		      (json_int_t)(in.actual_bytes >> 20), "inflated_pages",
		      (json_int_t)in.inflated_pages, "deflated_pages", (json_int_t)in.deflated_pages,
		      "reported_free_bytes", (json_int_t)in.reported_bytes, "bad_pfns",
		      (json_int_t)in.bad_pfns, "deflate_on_oom", in.deflate_on_oom);
	if (!o)
		return NULL;
	if (in.have_stats) {
		st = json_object();
		for (unsigned i = 0; i < BALLOON_STAT_COUNT; i++)
			if (in.stats.have & (1u << i))
				json_object_set_new(st, names[i], json_integer((json_int_t)in.stats.val[i]));
		json_object_set_new(st, "age_seconds", json_real(in.stats_age));
		json_object_set_new(o, "guest", st);
	}
	if (in.last_error[0])
		json_object_set_new(o, "guest_error", json_string(in.last_error));
	return o;
}

/* The driver moved its balloon, or sent statistics: domusd hears of it. */
static void balloon_changed(struct vmm_control *c)
{
	uint64_t n;

	if (read(c->vm->balloon->event_fd, &n, sizeof(n)) < 0)
		return;
	vmm_control_event(c, json_pack("{s:s,s:o*}", "event", "balloon", "balloon",
				       balloon_json(c->vm->balloon)));
}

/* domusd checks targets too; the domain's own process never trusts a message to be checked. */
static const char *balloon_set(struct vmm_control *c, json_t *msg)
{
	const struct vm_config *cfg = &c->spec->vm;
	json_t *t = json_object_get(msg, "target_mib");
	json_int_t mib = json_integer_value(t);

	if (!cfg->balloon)
		return "the domain has no balloon (balloon = 0 in its config)";
	if (!json_is_integer(t) || mib <= 0)
		return "target_mib must be a positive number of MiB";
	if ((uint64_t)mib < vm_config_minmem(cfg) || (uint64_t)mib > vm_config_ram_mib(cfg))
		return "target_mib is outside the domain's minmem to maxmem";
	c->balloon_target_mib = (uint64_t)mib;
	/* Between boots the target waits for the next one's balloon. */
	if (c->vm && c->vm->balloon && virtio_balloon_set_target(c->vm->balloon, (uint64_t)mib << 20) < 0)
		return "target_mib is more than the domain's RAM";
	return NULL;
}

static void balloon_stats_due(struct vmm_control *c)
{
	uint64_t n;

	if (read(c->stats_timer_fd, &n, sizeof(n)) < 0)
		return;
	if (c->vm && c->vm->balloon)
		virtio_balloon_request_stats(c->vm->balloon);
}

/* Applies vCPU i's affinity to its thread, if it runs; "" lets it run on any CPU. */
static int pin_vcpu(struct vmm_control *c, unsigned i)
{
	cpu_set_t set;
	unsigned highest;

	if (!c->vm || i >= c->vm->nvcpus || !c->vm->vcpus[i].started)
		return 0;
	if (cpulist_parse(c->vcpu_cpus[i], &set, &highest) <= 0)
		for (unsigned cpu = 0; cpu < CPU_SETSIZE; cpu++)
			CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(c->vm->vcpus[i].thread, sizeof(set), &set);
}

/* {"op":"vcpu_pin","vcpu":N (-1: all),"cpus":"0-3"}: domusd checked both. */
static const char *vcpu_pin(struct vmm_control *c, json_t *msg)
{
	json_t *jv = json_object_get(msg, "vcpu"), *jc = json_object_get(msg, "cpus");
	const char *cpus = json_string_value(jc);
	json_int_t v = json_integer_value(jv);
	cpu_set_t set;
	unsigned highest;

	if (!json_is_integer(jv) || !cpus || v < -1 || v >= VM_MAX_VCPUS ||
	    strlen(cpus) >= DOMAIN_CPUS_MAX || cpulist_parse(cpus, &set, &highest) < 0)
		return "vcpu_pin wants a vCPU and a CPU list";
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++) {
		if (v >= 0 && i != (unsigned)v)
			continue;
		snprintf(c->vcpu_cpus[i], sizeof(c->vcpu_cpus[i]), "%s", strcmp(cpus, "all") ? cpus : "");
		if (pin_vcpu(c, i) < 0)
			return "the host refused that affinity";
	}
	return NULL;
}

/*
 * Gang scheduling's figures for vCPU i: the gang's mode and co-stops
 * (strict only), how often the vCPU was held and for how long, and its lead over the slowest runnable sibling, sampled once a
 * period (counts per bucket, with each bucket's upper bound in ms).
 */
static json_t *gang_json(struct vm *vm, unsigned i)
{
	struct gang_vcpu_stats st;
	json_t *hist = json_array();
	uint64_t costops;
	bool strict;

	gang_vcpu_stats(vm, i, &st);
	for (unsigned b = 0; b < GANG_SKEW_BUCKETS; b++) {
		unsigned ms = gang_skew_bucket_ms(b);
		json_array_append_new(hist, json_pack("{s:o,s:I}", "below_ms", ms ? json_integer(ms) : json_null(),
						      "samples", (json_int_t)st.lead_hist[b]));
	}
	strict = gang_strict(vm, &costops);
	return json_pack("{s:s,s:I,s:f,s:I,s:f,s:f,s:o}", "mode", strict ? "strict" : "relaxed",
			 "costops", (json_int_t)costops, "bound_ms", vm->cfg->gang_skew_us / 1000.0,
			 "holds", (json_int_t)st.holds, "held_s",
			 atomic_load(&vm->vcpus[i].gang_held_ns) / 1e9, "lead_max_ms",
			 st.lead_max_ns / 1e6, "lead", hist);
}

/* A vCPU's exits to the VMM's user space so far, by reason (vm.h). */
static json_t *vcpu_exits_json(struct vcpu *v)
{
	return json_pack("{s:I,s:I,s:I}", "io", (json_int_t)atomic_load(&v->exits_io), "mmio",
			 (json_int_t)atomic_load(&v->exits_mmio), "other",
			 (json_int_t)atomic_load(&v->exits_other));
}

/* Each vCPU's thread id (0 before it runs), affinity and exits. */
static json_t *vcpus_json(struct vmm_control *c)
{
	json_t *list = json_array();
	unsigned n = c->vm ? c->vm->nvcpus : 0;

	for (unsigned i = 0; i < n; i++) {
		json_t *o = json_pack("{s:i,s:i,s:s}", "vcpu", i, "tid",
				      c->vm->vcpus[i].started ? atomic_load(&c->vm->vcpus[i].tid) : 0,
				      "cpus", c->vcpu_cpus[i][0] ? c->vcpu_cpus[i] : "all");
		if (o && c->vm->gang)
			json_object_set_new(o, "gang", gang_json(c->vm, i));
		if (o)
			json_object_set_new(o, "exits", vcpu_exits_json(&c->vm->vcpus[i]));
		json_array_append_new(list, o);
	}
	return list;
}

static const char *control_op(struct vmm_control *c, const char *op, json_t *msg, json_t *reply)
{
	if (!strcmp(op, "hello") || !strcmp(op, "state"))
		return NULL;
	if (!strcmp(op, "console_ring")) {
		char *text = malloc(c->ring_len + 1);
		if (!text)
			return "out of memory";
		for (size_t i = 0; i < c->ring_len; i++) {
			unsigned char ch = c->ring[(c->ring_start + i) % CONSOLE_RING_SIZE];
			/* JSON strings must be UTF-8: other than text, show '?'. */
			text[i] = (ch >= 0x20 && ch < 0x7f) || ch == '\n' || ch == '\t' ? (char)ch
			                                                               : (ch == '\r' ? '\r' : '?');
		}
		text[c->ring_len] = 0;
		json_object_set_new(reply, "console", json_string(text));
		free(text);
		return NULL;
	}
	if (!strcmp(op, "stats")) {
		json_object_set_new(reply, "stats", stats_json(c));
		return NULL;
	}
	if (!strcmp(op, "vcpus")) {
		json_object_set_new(reply, "vcpus", vcpus_json(c));
		return NULL;
	}
	if (!strcmp(op, "vcpu_pin"))
		return vcpu_pin(c, msg);
	if (!strcmp(op, "balloon") && c->vm && c->vm->balloon) {
		virtio_balloon_request_stats(c->vm->balloon); /* for the next one to ask */
		json_object_set_new(reply, "balloon", balloon_json(c->vm->balloon));
		return NULL;
	}
	if (!strcmp(op, "destroy")) {
		c->destroy = true;
		if (c->vm)
			vm_request_stop(c->vm, VM_INTERRUPTED, "destroyed by the control domain");
		return NULL;
	}
	if (!strcmp(op, "reset")) {
		c->reset = true;
		if (c->vm)
			vm_request_stop(c->vm, VM_REBOOT, "reset by the control domain");
		return NULL;
	}
	if (!c->vm || c->holding)
		return "the domain is not running";
	if (!strcmp(op, "pause")) {
		if (vm_pause(c->vm) < 0)
			return "the domain stopped while being paused";
		c->state = "paused";
		return NULL;
	}
	if (!strcmp(op, "unpause")) {
		vm_unpause(c->vm);
		c->state = "running";
		return NULL;
	}
	if (!strcmp(op, "balloon_set"))
		return balloon_set(c, msg);
	if (!strcmp(op, "balloon"))
		return "the domain has no balloon (balloon = 0 in its config)";
	if (!strcmp(op, "shutdown")) {
		if (atomic_load(&c->vm->paused))
			return "the domain is paused; unpause it to let it shut down";
		vm_power_button(c->vm);
		return NULL;
	}
	return "unknown operation";
}

static void control_message(struct vmm_control *c)
{
	json_t *msg, *reply;
	const char *op, *err;
	int r = vmmproto_recv(c->ctl_fd, 0, &msg);

	if (r == -ETIMEDOUT)
		return;
	if (r == -EBADMSG) {
		log_warnx("control: a message that is not a JSON object");
		return;
	}
	if (r < 0) {
		close(c->ctl_fd);
		c->ctl_fd = -1;
		return;
	}
	op = json_string_value(json_object_get(msg, "op"));
	reply = json_object();
	json_object_set_new(reply, "reply", json_string(op ? op : ""));
	err = op ? control_op(c, op, msg, reply) : "no op";
	json_object_set_new(reply, "ok", json_boolean(!err));
	if (err)
		json_object_set_new(reply, "error", json_string(err));
	json_object_set_new(reply, "pid", json_integer(getpid()));
	vmm_control_event(c, reply);
	json_decref(msg);
}

/* A new connection says what it is in its first message. */
static void pending_message(struct vmm_control *c)
{
	json_t *msg;
	const char *op;
	int fd = c->pending_fd;
	int r = vmmproto_recv(fd, 0, &msg);

	if (r == -ETIMEDOUT)
		return;
	c->pending_fd = -1;
	if (r < 0) {
		close(fd);
		return;
	}
	op = json_string_value(json_object_get(msg, "op"));
	if (op && !strcmp(op, "console")) {
		json_t *ok = json_pack("{s:s,s:b}", "reply", "console", "ok", c->con_fd < 0);
		vmmproto_send(fd, ok);
		json_decref(ok);
		if (c->con_fd >= 0)
			close(fd); /* one console at a time */
		else
			console_attach(c, fd);
	} else if (op && !strcmp(op, "hello")) {
		/* A new domusd: it replaces the old connection. */
		if (c->ctl_fd >= 0)
			close(c->ctl_fd);
		c->ctl_fd = fd;
		vmm_control_event(c, json_pack("{s:s,s:i,s:b}", "event", "hello", "pid", getpid(),
					       "started", c->started));
	} else {
		close(fd);
	}
	json_decref(msg);
}

static void accept_connection(struct vmm_control *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (c->pending_fd >= 0)
		close(c->pending_fd); /* it said nothing in time for the next one */
	c->pending_fd = fd;
}

static unsigned control_poll_fds(void *opaque, struct pollfd *p, unsigned max)
{
	struct vmm_control *c = opaque;
	bool balloon = c->vm && c->vm->balloon && !c->holding;
	int fds[7] = {c->listen_fd, c->out_rd, c->ctl_fd, c->con_fd, c->pending_fd,
		      balloon ? c->vm->balloon->event_fd : -1, balloon ? c->stats_timer_fd : -1};
	unsigned n = 0;

	for (unsigned i = 0; i < 7 && n < max; i++)
		if (fds[i] >= 0)
			p[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
	return n;
}

static void control_poll_ready(void *opaque, struct vm *vm, struct pollfd *p, unsigned n)
{
	struct vmm_control *c = opaque;

	for (unsigned i = 0; i < n; i++) {
		if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (p[i].fd == c->out_rd)
			drain_output(c);
		else if (p[i].fd == c->listen_fd)
			accept_connection(c);
		else if (p[i].fd == c->ctl_fd)
			control_message(c);
		else if (p[i].fd == c->con_fd)
			console_input(c);
		else if (p[i].fd == c->pending_fd)
			pending_message(c);
		else if (c->vm && c->vm->balloon && p[i].fd == c->vm->balloon->event_fd)
			balloon_changed(c);
		else if (p[i].fd == c->stats_timer_fd)
			balloon_stats_due(c);
	}
}

static void control_vm_changed(void *opaque, struct vm *vm)
{
	struct vmm_control *c = opaque;

	c->vm = vm;
	if (!vm)
		return;
	/* A reboot keeps the target domusd set, not the config's. */
	if (vm->balloon && virtio_balloon_set_target(vm->balloon, c->balloon_target_mib << 20) < 0)
		log_warnx("balloon target %llu MiB is more than the domain's RAM",
			  (unsigned long long)c->balloon_target_mib);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (c->vcpu_cpus[i][0] && pin_vcpu(c, i) < 0)
			log_warnx("cpus %s: cannot pin vCPU %u", c->vcpu_cpus[i], i);
	c->state = "running";
	if (!c->started) {
		c->started = true;
		vmm_control_event(c, json_pack("{s:s,s:i,s:b}", "event", "hello", "pid", getpid(),
					       "started", 1));
	}
}

/* on_*=preserve: the domain stays, stopped, until domusd destroys or resets it. */
static void control_stopped(void *opaque, struct vm *vm, enum vm_stop reason, const char *detail)
{
	struct vmm_control *c = opaque;
	struct pollfd p[8];

	drain_output(c);
	if (vmm_control_action(c, reason) != ACTION_PRESERVE)
		return;
	c->state = reason == VM_PANIC || reason == VM_TRIPLE_FAULT ? "crashed" : "shutdown";
	c->holding = true;
	log_info("%s; preserved until destroyed", detail);
	vmm_control_event(c, json_pack("{s:s,s:s,s:s}", "event", c->state, "reason",
				       vm_stop_name(reason), "detail", detail));
	while (!c->destroy && !c->reset) {
		unsigned n = control_poll_fds(c, p, 8);
		if (poll(p, n, -1) < 0 && errno != EINTR)
			break;
		control_poll_ready(c, vm, p, n);
	}
	c->holding = false;
}

void vmm_control_frontend(struct vmm_control *c, struct vm_frontend *fe)
{
	*fe = (struct vm_frontend){
		.console_fd = c->out_wr,
		.poll_fds = control_poll_fds,
		.poll_ready = control_poll_ready,
		.vm_changed = control_vm_changed,
		.stopped = control_stopped,
		.opaque = c,
	};
}
