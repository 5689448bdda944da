/*
 * domusd's side of the domains' processes: starting domus-vmm, talking to
 * it over the control socket, noticing through a pidfd when it ends, the
 * record on disk that lets a restarted domusd find it again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/domusd.h"
#include "ctl/vcpu_stats.h"
#include "lib/unix_socket.h"
#include "domain/spec_json.h"
#include "domain/vmmproto.h"
#include "lib/ctlproc.h"
#include "lib/log.h"
#include "lib/backend_proc.h"
#include "lib/task.h"
#include "vmm/confine.h"


static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Field 22 of /proc/PID/stat: when the process started; tells a reused pid apart. */
static unsigned long long proc_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return 0;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p)
		v = strtoull(p + 1, NULL, 10);
	return v;
}
/* ---- domain records on disk ---- */

static int write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	int fd;
	size_t len = strlen(text);

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		int e = errno ? errno : EIO;
		close(fd);
		unlink(tmp);
		return -e;
	}
	close(fd);
	return rename(tmp, path) < 0 ? -errno : 0;
}

static int save_record(const struct domain *d)
{
	char path[PATH_MAX];
	json_t *rec = json_pack("{s:i,s:i,s:I,s:I,s:i,s:o,s:o}", "domid", d->domid, "pid", (int)d->pid,
				"starttime", (json_int_t)d->starttime, "created",
				(json_int_t)d->created, "restarts", d->restarts, "config",
				domain_spec_to_json(&d->spec), "owner", caller_to_json(&d->owner));
	char *text = rec ? json_dumps(rec, JSON_INDENT(1)) : NULL;
	int ret;

	json_decref(rec);
	if (!text)
		return -ENOMEM;
	path_for(path, sizeof(path), d->domid, "domain.json");
	ret = write_file(path, text);
	free(text);
	return ret;
}

static void remove_files(unsigned domid)
{
	static const char *suffixes[] = {"domain.json", "config.json", "sock", "blkstats"};
	char path[PATH_MAX];

	char cgroup[32];

	blkhost_detach(&D.blk, domid);
	nethost_detach(&D.net, domid);
	cgroup_domain_name(cgroup, sizeof(cgroup), domid);
	cgroup_remove(&D.cgroups, cgroup); /* fails harmlessly while its process is not reaped */
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		path_for(path, sizeof(path), domid, suffixes[i]);
		unlink(path);
	}
}
/* ---- talking to domus-vmm ---- */

static void domain_watch_fds(struct domain *d)
{
	struct domain_watch *w = calloc(1, sizeof(*w));

	d->priv = w;
	if (!w)
		return;
	w->ctl = (struct watch){W_CONTROL, d};
	w->pid = (struct watch){W_PIDFD, d};
	if (d->ctl_fd >= 0)
		watch_add(d->ctl_fd, &w->ctl);
	if (d->pidfd >= 0)
		watch_add(d->pidfd, &w->pid);
}

/* The requests waiting on d's control socket get -EPIPE: it is closed. */
static void fail_calls(struct domain *d)
{
	struct domain_watch *w = d->priv;

	while (w && w->calls) {
		struct vmm_call *c = w->calls;
		w->calls = c->next;
		c->linked = false;
		c->result = -EPIPE;
		task_event_signal(&c->done);
	}
}

static void forget_fds(struct domain *d)
{
	fail_calls(d);
	watch_del(d->ctl_fd);
	watch_del(d->pidfd);
	if (d->ctl_fd >= 0)
		close(d->ctl_fd);
	if (d->pidfd >= 0)
		close(d->pidfd);
	d->ctl_fd = d->pidfd = -1;
	free(d->priv);
	d->priv = NULL;
}

static void handle_vmm_message(struct domain *d, json_t *msg)
{
	const char *ev = json_string_value(json_object_get(msg, "event"));
	const char *detail = json_string_value(json_object_get(msg, "detail"));
	const char *reason = json_string_value(json_object_get(msg, "reason"));

	if (!ev)
		return;
	if (!strcmp(ev, "rebooted")) {
		d->restarts++;
		d->state = "running";
		save_record(d);
		api_event(&D.api, "restarted", d, detail);
	} else if (!strcmp(ev, "crashed") || !strcmp(ev, "shutdown")) {
		/* on_*=preserve: the domain stays until destroyed. */
		d->state = ev[0] == 'c' ? "crashed" : "shutdown";
		api_event(&D.api, ev, d, detail);
	} else if (!strcmp(ev, "balloon")) {
		api_mem_balloon_event(&D.api, d, json_object_get(msg, "balloon"));
	} else if (!strcmp(ev, "stopped")) {
		d->state = "stopped";
		snprintf(d->stop_reason, sizeof(d->stop_reason), "%s", reason ? reason : "");
		snprintf(d->stop_detail, sizeof(d->stop_detail), "%s", detail ? detail : "");
	}
}

/*
 * Sends msg (consumed) to d's process and waits for the reply to its op.
 * Only the loop reads the control socket (control_readable), and hands a
 * reply to the first request waiting for that op; in a task the wait gives
 * the loop back, so a domain slow to answer holds only the client that asked.
 */
static int vmm_send_request(struct domain *d, json_t *msg, json_t **reply, char *err, size_t errlen)
{
	struct domain_watch *w = d->priv;
	struct vmm_call call = {.result = 1};
	struct timespec start, now;
	int ret;

	snprintf(call.op, sizeof(call.op), "%s", msg ? json_string_value(json_object_get(msg, "op")) : "");
	if (reply)
		*reply = NULL;
	if (d->ctl_fd < 0 || !w) {
		snprintf(err, errlen, "its process is not connected");
		json_decref(msg);
		return -ENOTCONN;
	}
	ret = vmmproto_send(d->ctl_fd, msg);
	json_decref(msg);
	if (ret < 0) {
		snprintf(err, errlen, "sending '%s': %s", call.op, strerror(-ret));
		return ret;
	}
	{
		struct vmm_call **p = &w->calls;
		while (*p)
			p = &(*p)->next;
		*p = &call;
		call.linked = true;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (call.result == 1) {
		long waited;

		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= REQUEST_TIMEOUT_MS)
			break;
		if (task_in_task()) {
			task_event_wait(&call.done, (int)(REQUEST_TIMEOUT_MS - waited));
		} else if (task_wait_fd(d->ctl_fd, POLLIN, (int)(REQUEST_TIMEOUT_MS - waited)) == 0) {
			/* Outside a task (at start-up): the loop's reading, done here. */
			control_readable(d);
		}
	}
	if (call.linked) {
		for (struct vmm_call **p = &((struct domain_watch *)d->priv)->calls; *p; p = &(*p)->next)
			if (*p == &call) {
				*p = call.next;
				break;
			}
	}
	if (call.result == 1) {
		snprintf(err, errlen, "no reply to '%s' within %d s", call.op, REQUEST_TIMEOUT_MS / 1000);
		return -ETIMEDOUT;
	}
	if (call.result < 0) {
		snprintf(err, errlen, "waiting for the reply to '%s': its process closed the connection",
			 call.op);
		return call.result;
	}
	if (!json_is_true(json_object_get(call.reply, "ok"))) {
		const char *e = json_string_value(json_object_get(call.reply, "error"));
		snprintf(err, errlen, "%s", e ? e : "refused");
		json_decref(call.reply);
		return -EINVAL;
	}
	if (reply)
		*reply = call.reply;
	else
		json_decref(call.reply);
	return 0;
}

static int vmm_request(void *ctx, struct domain *d, const char *op, json_t **reply, char *err,
		       size_t errlen)
{
	return vmm_send_request(d, json_pack("{s:s}", "op", op), reply, err, errlen);
}

static int vmm_balloon_set(void *ctx, struct domain *d, uint64_t target_mib, char *err, size_t errlen)
{
	json_t *msg = json_pack("{s:s,s:I}", "op", "balloon_set", "target_mib", (json_int_t)target_mib);
	int ret;

	if (task_in_task())
		return vmm_send_request(d, msg, NULL, err, errlen);
	/*
	 * From the loop (memory handed back as a domain ends): the target is
	 * sent and the loop goes on; the reply, when it comes, has no one
	 * waiting and is dropped. A refusal cannot happen for a target within
	 * the domain's bounds, which is all the policy sets.
	 */
	ret = d->ctl_fd < 0 ? -ENOTCONN : vmmproto_send(d->ctl_fd, msg);
	json_decref(msg);
	if (ret < 0)
		snprintf(err, errlen, "sending 'balloon_set': %s", strerror(-ret));
	return ret;
}

/* Reads the domains' events, and nothing else, until done() or the time is up. */
static bool vmm_wait(void *ctx, bool (*done)(struct api *a, void *arg), void *arg, int timeout_ms)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (task_in_task() && !done(&D.api, arg)) {
		long waited;

		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= timeout_ms)
			return false;
		task_event_wait(&D.domain_events, (int)(timeout_ms - waited));
	}
	while (!done(&D.api, arg)) {
		struct pollfd p[API_MAX_DOMAINS];
		struct domain *who[API_MAX_DOMAINS];
		unsigned n = 0;
		long waited;

		for (struct domain *d = D.api.domains; d && n < API_MAX_DOMAINS; d = d->next)
			if (d->ctl_fd >= 0) {
				who[n] = d;
				p[n++] = (struct pollfd){.fd = d->ctl_fd, .events = POLLIN};
			}
		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= timeout_ms || n == 0)
			return false;
		if (poll(p, n, (int)(timeout_ms - waited)) < 0 && errno != EINTR)
			return false;
		for (unsigned i = 0; i < n; i++)
			if (p[i].revents)
				control_readable(who[i]);
	}
	return true;
}
static void reap(pid_t pid)
{
	/* Only our own children can be reaped; adopted ones are init's. */
	while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
}

/* The domain's counters file, which domus-blk fills and its domus-vmm reads. */
static int open_blk_stats(unsigned domid, bool create)
{
	char path[PATH_MAX];
	int fd;

	path_for(path, sizeof(path), domid, "blkstats");
	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	if (fd >= 0 && create && ftruncate(fd, 16 * 32) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Tells domus-blk the QoS of d's disk i as d's spec has it now. */
static int disk_qos_apply(struct domain *d, unsigned i, char *err, size_t errlen)
{
	char group[BLK_SCHED_NAME_MAX];
	bool own = d->spec.disk_qos_own[i];

	blkhost_group_name(group, sizeof(group), d->domid, own ? (int)i : -1);
	return blkhost_set_qos(&D.blk, d->domid, i, group, own ? d->spec.disk_qos_disk[i] : d->spec.disk_qos,
			       err, errlen);
}

/* Whether domus-blk serves d's disk i (not the VMM, not another back-end). */
static bool disk_on_blkhost(const struct domain *d, unsigned i)
{
	return !d->spec.vm.disks[i].vhost_user && !d->spec.vm.disks[i].in_vmm;
}

/*
 * The API changed d's disk QoS (its spec holds the new one; old the one
 * before): every disk of d goes by it, or on a refusal every disk goes
 * back to old's and the reason is in err.
 */
static int vmm_disk_qos_set(void *ctx, struct domain *d, const struct domain_spec *old, char *err,
			    size_t errlen)
{
	int ret = 0;

	(void)ctx;
	for (unsigned i = 0; i < d->spec.vm.ndisks && ret == 0; i++)
		if (disk_on_blkhost(d, i))
			ret = disk_qos_apply(d, i, err, errlen);
	if (ret < 0) {
		char why[256];
		memcpy(d->spec.disk_qos, old->disk_qos, sizeof(d->spec.disk_qos));
		memcpy(d->spec.disk_qos_own, old->disk_qos_own, sizeof(d->spec.disk_qos_own));
		memcpy(d->spec.disk_qos_disk, old->disk_qos_disk, sizeof(d->spec.disk_qos_disk));
		for (unsigned i = 0; i < d->spec.vm.ndisks; i++)
			if (disk_on_blkhost(d, i) && disk_qos_apply(d, i, why, sizeof(why)) < 0)
				log_warnx("domain %s: restoring disk %s's QoS: %s", d->spec.name,
					  d->spec.vm.disks[i].vdev, why);
		return ret;
	}
	if (save_record(d) < 0)
		log_warnx("domain %s: the new disk QoS is in force but not saved for the next domusd",
			  d->spec.name);
	return 0;
}

/* cpu_weight and cap in d's cgroup; a domain that asks for neither does without one. */
static int sched_apply(const struct domain *d, char *err, size_t errlen)
{
	char cgroup[64];
	int ret;

	cgroup_domain_name(cgroup, sizeof(cgroup), d->domid);
	ret = cgroup_set_cpu(&D.cgroups, cgroup, d->spec.cpu_weight, d->spec.cap, err, errlen);
	if (ret == -ENOTSUP && d->spec.cpu_weight == 256 && !d->spec.cap)
		return 0;
	return ret;
}

/*
 * --sched-gran core without core scheduling: whole cores of its own for a
 * domain the user did not pin (the user's pins say where it runs).
 */
static int place_on_cores(const struct domain *d, char *err, size_t errlen)
{
	unsigned others[256], n = 0;
	char why[160] = "";
	int ret;

	if (D.sched_gran.method != SCHED_GRAN_CPUSET || d->spec.cpus[0] || d->spec.nvcpu_cpus)
		return 0;
	for (const struct domain *o = D.api.domains; o && n < 256; o = o->next)
		if (o->domid != d->domid)
			others[n++] = o->domid;
	ret = sched_gran_place(&D.sched_gran, &D.cgroups, d->domid,
			       d->spec.maxvcpus > d->spec.vm.vcpus ? d->spec.maxvcpus : d->spec.vm.vcpus, others, n,
			       why, sizeof(why));
	if (ret < 0)
		snprintf(err, errlen, "sched-gran core: %s", why);
	else if (why[0])
		log_warnx("domain %s: %s", d->spec.name, why);
	return ret;
}

static int vmm_sched_set(void *ctx, struct domain *d, char *err, size_t errlen)
{
	int ret = sched_apply(d, err, errlen);

	if (ret == 0 && save_record(d) < 0)
		log_warnx("domain %s: the new weight and cap are in force but not saved for the next domusd",
			  d->spec.name);
	return ret;
}

static json_t *vmm_sched(void *ctx, const struct domain *d)
{
	char cgroup[64], max[64];
	unsigned weight;

	cgroup_domain_name(cgroup, sizeof(cgroup), d->domid);
	if (cgroup_get_cpu(&D.cgroups, cgroup, &weight, max, sizeof(max)) < 0)
		return json_null();
	return json_pack("{s:i,s:s}", "cpu_weight", weight, "cpu_max", max);
}

static int vmm_vcpu_pin(void *ctx, struct domain *d, int vcpu, const char *cpus, char *err,
			size_t errlen)
{
	int ret = vmm_send_request(d, json_pack("{s:s,s:i,s:s}", "op", "vcpu_pin", "vcpu", vcpu, "cpus", cpus),
				   NULL, err, errlen);

	if (ret == 0 && save_record(d) < 0)
		log_warnx("domain %s: the new affinity is in force but not saved for the next domusd",
			  d->spec.name);
	return ret;
}

static json_t *vmm_vcpus(void *ctx, struct domain *d, char *err, size_t errlen)
{
	json_t *reply = NULL, *list, *v, *out;
	size_t i;

	if (vmm_send_request(d, json_pack("{s:s}", "op", "vcpus"), &reply, err, errlen) < 0)
		return NULL;
	list = json_object_get(reply, "vcpus");
	out = json_array();
	json_array_foreach(list, i, v) {
		struct vcpu_stats st;
		int tid = (int)json_integer_value(json_object_get(v, "tid"));
		json_t *o = json_pack("{s:O,s:i,s:O}", "vcpu", json_object_get(v, "vcpu"), "tid", tid, "cpus",
				      json_object_get(v, "cpus"));
		if (json_object_get(v, "gang"))
			json_object_set(o, "gang", json_object_get(v, "gang"));
		if (json_is_object(json_object_get(v, "exits")))
			json_object_set(o, "exits", json_object_get(v, "exits"));
		if (tid > 0 && vcpu_stats_read("/proc", (int)d->pid, tid, &st) == 0) {
			json_object_set_new(o, "cpu", json_integer(st.cpu));
			json_object_set_new(o, "state", json_sprintf("%c", st.state));
			json_object_set_new(o, "time_s", json_real(st.time_s));
			json_object_set_new(o, "steal_s", json_real(st.steal_s));
			json_object_set_new(o, "affinity", json_string(st.affinity));
		}
		json_array_append_new(out, o);
	}
	json_decref(reply);
	return out;
}

static json_t *qos_settings_json(const struct blk_qos *q)
{
	return json_pack("{s:I,s:I,s:i,s:I,s:I,s:I,s:I,s:i,s:s,s:i}", "reserve_iops", (json_int_t)q->reserve_iops,
			 "reserve_bps", (json_int_t)q->reserve_bps, "weight", (int)q->weight, "limit_iops",
			 (json_int_t)q->limit_iops, "limit_bps", (json_int_t)q->limit_bps, "burst_iops",
			 (json_int_t)q->burst_iops, "burst_bps", (json_int_t)q->burst_bps, "burst_ms",
			 (int)q->burst_ms, "class", q->interactive ? "interactive" : "batch", "deadline_ms",
			 (int)q->deadline_ms);
}

static json_t *qos_stats_json(const struct blk_sched_stats *st, int met)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:I,s:i,s:i,s:o}", "served_ops", (json_int_t)st->served_ops,
			 "served_bytes", (json_int_t)st->served_bytes, "reserve_ops", (json_int_t)st->reserve_ops,
			 "weight_ops", (json_int_t)st->weight_ops, "limited", (json_int_t)st->limited,
			 "throttled_seconds", (double)st->throttled_ns / 1e9, "backlog_seconds",
			 (double)st->backlog_ns / 1e9, "deadline_missed", (json_int_t)st->deadline_missed,
			 "waiting", (int)st->waiting, "inflight", (int)st->inflight, "reserve_met_percent",
			 met < 0 ? json_null() : json_integer(met));
}

/* The groups of d's disks with their QoS and the scheduler's counters. */
static json_t *vmm_disk_qos(void *ctx, const struct domain *d)
{
	json_t *groups = json_array();

	(void)ctx;
	for (int own = -1; own < (int)d->spec.vm.ndisks; own++) {
		char group[BLK_SCHED_NAME_MAX], why[256];
		json_t *disks = json_array();
		struct blk_sched_stats st;
		struct blk_qos q;
		int met;

		for (unsigned i = 0; i < d->spec.vm.ndisks; i++)
			if (disk_on_blkhost(d, i) && (own < 0 ? !d->spec.disk_qos_own[i] : (int)i == own && d->spec.disk_qos_own[i]))
				json_array_append_new(disks, json_string(d->spec.vm.disks[i].vdev));
		if (!json_array_size(disks)) {
			json_decref(disks);
			continue;
		}
		blkhost_group_name(group, sizeof(group), d->domid, own);
		if (blkhost_qos_stats(&D.blk, group, &st, &met, why, sizeof(why)) < 0) {
			log_warnx("domain %s: disk group %s: %s", d->spec.name, group, why);
			memset(&st, 0, sizeof(st));
			met = -1;
		}
		blk_qos_default(&q);
		if (blk_qos_parse(own < 0 ? d->spec.disk_qos : d->spec.disk_qos_disk[own], &q, why, sizeof(why)) < 0)
			blk_qos_default(&q);
		json_array_append_new(groups, json_pack(
			"{s:s,s:o,s:s,s:o,s:o}", "group", group, "disks", disks, "qos",
			own < 0 ? d->spec.disk_qos : d->spec.disk_qos_disk[own], "settings", qos_settings_json(&q),
			"stats", qos_stats_json(&st, met)));
	}
	return groups;
}

/*
 * Hands the domain's disks that domus-blk serves, opened in files, to the
 * host's domus-blk; in vmm (when not NULL) they become vhost-user disks on
 * its sockets. Returns the mask of those disks, or -errno with the reason
 * in err.
 */
static int attach_disks(struct domain *d, int stats_fd, struct caller_files *files,
			struct domain_spec *vmm, char *err, size_t errlen)
{
	int mask = 0;

	for (unsigned i = 0; i < d->spec.vm.ndisks; i++) {
		const struct disk_config *dc = &d->spec.vm.disks[i];
		char sock[PATH_MAX], why[768];
		int ret;

		if (dc->vhost_user || dc->in_vmm)
			continue;
		ret = blkhost_attach(&D.blk, d->domid, i, dc, &files->disks[i], stats_fd, sock, sizeof(sock),
				     why, sizeof(why));
		if (ret == 0 && (ret = disk_qos_apply(d, i, why, sizeof(why))) < 0) {
			snprintf(err, errlen, "disk %s: disk_qos: %s", dc->vdev, why);
			blkhost_detach(&D.blk, d->domid);
			return ret;
		}
		if (ret < 0) {
			snprintf(err, errlen, "disk %s: %s", dc->path, why);
			blkhost_detach(&D.blk, d->domid);
			return ret;
		}
		mask |= 1 << i;
		/* Its domain's process, confined to its own user, connects there again after a restart. */
		if (chown(sock, vmm_domain_uid(d->domid), vmm_domain_uid(d->domid)) < 0 ||
		    chmod(sock, 0600) < 0)
			log_warn("domain %s: giving it %s", d->spec.name, sock);
		if (vmm) {
			struct disk_config *v = &vmm->vm.disks[i];
			snprintf(v->path, sizeof(v->path), "%s", sock);
			v->vhost_user = true;
			v->qcow2 = v->direct = v->writethrough = false;
		}
	}
	return mask;
}

/*
 * Gives the domain's domus-net interfaces their ports; in vmm (when not
 * NULL) they become vhost-user interfaces on the ports' sockets. What the
 * VFR chose (MAC, address, RSIP slice) is written into the domain's own
 * vifs, so that its record keeps it and an adopting domusd asks for the
 * same. 0, or -errno with the reason in err.
 */
static int attach_vifs(struct domain *d, struct domain_spec *vmm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < d->spec.nvifs; i++) {
		struct vif_config *v = &d->spec.vifs[i];
		char sock[108];
		uint8_t mac[6];
		json_t *port;
		int ret;

		if (v->backend != VIF_DOMUS_NET)
			continue;
		ret = nethost_attach(&D.net, d->domid, d->spec.name, i, v, sock, sizeof(sock), mac, err,
				     errlen);
		if (ret < 0) {
			nethost_detach(&D.net, d->domid);
			return ret;
		}
		if (chown(sock, vmm_domain_uid(d->domid), vmm_domain_uid(d->domid)) < 0 ||
		    chmod(sock, 0600) < 0)
			log_warn("domain %s: giving it %s", d->spec.name, sock);
		snprintf(v->mac, sizeof(v->mac), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
			 mac[3], mac[4], mac[5]);
		port = nethost_port_json(&D.net, d->domid);
		if (port && !json_object_get(port, "rsip_slice"))
			snprintf(v->ip, sizeof(v->ip), "%s",
				 json_string_value(json_object_get(port, "address")));
		else if (port)
			snprintf(v->rsip, sizeof(v->rsip), "%d-%d",
				 (int)json_integer_value(json_array_get(json_object_get(port, "rsip_slice"), 0)),
				 (int)json_integer_value(json_array_get(json_object_get(port, "rsip_slice"), 1)));
		json_decref(port);
		if (vmm) {
			struct vif_config *vv = &vmm->vifs[i];
			memset(vv, 0, sizeof(*vv));
			snprintf(vv->mac, sizeof(vv->mac), "%s", v->mac);
			vv->backend = VIF_VHOST_USER;
			snprintf(vv->socket, sizeof(vv->socket), "%s", sock);
			vif_to_nic(vv, i, &vmm->vm.nics[i]);
		}
	}
	return 0;
}

/*
 * The files domus-vmm uses itself (kernel, ramdisk, pmem, its own disks,
 * vhost-user sockets): their descriptors go in pass[], at VMM_FIRST_FD on
 * in its table, and vmm names each "/dev/fd/N". Returns how many.
 */
#define VMM_FIRST_FD 6
static unsigned pass_vmm_files(struct caller_files *f, const struct domain_spec *spec,
			       struct domain_spec *vmm, int *pass)
{
	unsigned n = 0;

#define PASS(fd, buf)                                                                   \
	do {                                                                            \
		pass[n] = (fd);                                                         \
		snprintf((buf), sizeof(buf), "/dev/fd/%u", VMM_FIRST_FD + n);           \
		n++;                                                                    \
	} while (0)
	PASS(f->kernel, vmm->kernel);
	if (f->ramdisk >= 0)
		PASS(f->ramdisk, vmm->ramdisk);
	for (unsigned i = 0; i < vmm->vm.npmems; i++)
		PASS(f->pmems[i], vmm->vm.pmems[i].path);
	/* The client's own: those domus-blk and domus-net serve are on domusd's sockets. */
	for (unsigned i = 0; i < spec->vm.ndisks; i++)
		if (spec->vm.disks[i].vhost_user || spec->vm.disks[i].in_vmm)
			PASS(f->disks[i].image, vmm->vm.disks[i].path);
	for (unsigned i = 0; i < spec->nvifs; i++)
		if (spec->vifs[i].backend == VIF_VHOST_USER)
			PASS(f->vif_sockets[i], vmm->vifs[i].socket);
#undef PASS
	return n;
}

static int vmm_start(void *ctx, struct domain *d, const struct caller *caller, char *err,
		     size_t errlen)
{
	char cfg_path[PATH_MAX], sock_path[PATH_MAX], log_path[PATH_MAX + 128], domid[16], mask_arg[16];
	int listen_fd = -1, sp[2] = {-1, -1}, log_fd = -1, ret, stats_fd = -1, mask, cgroup_fd = -1;
	static struct domain_spec vmm_spec;
	char cgroup[32];
	static struct caller_files files;
	int pass[VM_MAX_DISKS + VM_MAX_PMEM + DOMAIN_MAX_VIFS + 3];
	unsigned npass;
	char console_log_arg[16] = "-1";
	int console_log_fd = -1;
	json_t *cfg, *msg = NULL;
	char *text;
	const char *ev;
	pid_t pid;

	/* Every file as the caller first: what they may not open is refused before anything starts. */
	if ((ret = caller_open_files(caller, &d->spec, &files, err, errlen)) < 0)
		return ret;
	/* Disks next: a bad image or chain is refused here, before any process starts. */
	vmm_spec = d->spec;
	stats_fd = open_blk_stats(d->domid, true);
	mask = attach_disks(d, stats_fd, &files, &vmm_spec, err, errlen);
	if (mask < 0) {
		if (stats_fd >= 0)
			close(stats_fd);
		caller_files_close(&files);
		remove_files(d->domid);
		return mask;
	}
	if ((ret = attach_vifs(d, &vmm_spec, err, errlen)) < 0) {
		if (stats_fd >= 0)
			close(stats_fd);
		caller_files_close(&files);
		remove_files(d->domid);
		return ret;
	}
	npass = pass_vmm_files(&files, &d->spec, &vmm_spec, pass);
	if (D.console_log) {
		/* Written by the domain's process, which cannot open files itself once confined. */
		char path[PATH_MAX + 128];

		snprintf(path, sizeof(path), "%s/log/%s.console.log", D.state_dir, d->spec.name);
		console_log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
		if (console_log_fd < 0) {
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
			goto fail;
		}
		snprintf(console_log_arg, sizeof(console_log_arg), "%u", VMM_FIRST_FD + npass);
		pass[npass++] = console_log_fd;
	}
	/* Its cgroup: its RAM and what the VMM needs beside it, and no more. */
	cgroup_domain_name(cgroup, sizeof(cgroup), d->domid);
	if ((ret = cgroup_make(&D.cgroups, cgroup,
			       (vm_config_ram_mib(&d->spec.vm) + CGROUP_VMM_OVERHEAD_MIB) << 20, err,
			       errlen)) < 0)
		goto fail;
	if ((ret = sched_apply(d, err, errlen)) < 0 || (ret = place_on_cores(d, err, errlen)) < 0)
		goto fail;
	cgroup_fd = cgroup_open(&D.cgroups, cgroup);
	snprintf(mask_arg, sizeof(mask_arg), "%d", mask);
	if (vmm_spec.gang < 0)
		vmm_spec.gang = D.gang; /* the host's default, as the domain did not say */
	cfg = domain_spec_to_json(&vmm_spec);
	text = cfg ? json_dumps(cfg, JSON_INDENT(1)) : NULL;
	json_decref(cfg);
	path_for(cfg_path, sizeof(cfg_path), d->domid, "config.json");
	path_for(sock_path, sizeof(sock_path), d->domid, "sock");
	snprintf(log_path, sizeof(log_path), "%s/log/%s.log", D.state_dir, d->spec.name);
	snprintf(domid, sizeof(domid), "%u", d->domid);
	if (!text || (ret = write_file(cfg_path, text)) < 0) {
		snprintf(err, errlen, "cannot write %s", cfg_path);
		free(text);
		goto fail;
	}
	free(text);
	listen_fd = unix_listen(sock_path, SOCK_SEQPACKET, 4);
	if (listen_fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", sock_path, strerror(-listen_fd));
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (log_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", log_path, strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		/* The domain outlives this daemon: its own session, no terminal, fds 3 and 4. */
		int null_fd = open("/dev/null", O_RDWR);
		/* Out of the way of 0-4 first, so no dup2 below overwrites a source. */
		int l = fcntl(listen_fd, F_DUPFD, 10), c = fcntl(sp[1], F_DUPFD, 10);
		int lg = fcntl(log_fd, F_DUPFD, 10), nl = fcntl(null_fd, F_DUPFD, 10);
		int st = stats_fd >= 0 ? fcntl(stats_fd, F_DUPFD, 10) : -1;
		int moved[sizeof(pass) / sizeof(pass[0])];
		sigset_t all;

		/* Into its cgroup before it touches the guest's memory, which is charged there. */
		if (cgroup_fd >= 0 && ctlproc_join_cgroup(cgroup_fd) < 0)
			_exit(126);
		/* Above every target first, so no dup2 below overwrites a source. */
		for (unsigned i = 0; i < npass; i++)
			if ((moved[i] = fcntl(pass[i], F_DUPFD, 64)) < 0)
				_exit(127);

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		setsid();
		if (null_fd < 0 || l < 0 || c < 0 || lg < 0 || nl < 0 || dup2(nl, 0) < 0 ||
		    dup2(lg, 1) < 0 || dup2(lg, 2) < 0 || dup2(l, 3) < 0 || dup2(c, 4) < 0 ||
		    (st >= 0 && dup2(st, 5) < 0))
			_exit(127);
		if (st < 0)
			close(5);
		for (unsigned i = 0; i < npass; i++)
			if (dup2(moved[i], VMM_FIRST_FD + (int)i) < 0)
				_exit(127);
		syscall(SYS_close_range, VMM_FIRST_FD + npass, ~0U, 0);
		if ((ret = sched_gran_enter(&D.sched_gran)) < 0) {
			dprintf(2, "domusd: the domain's core-scheduling cookie: %s\n", strerror(-ret));
			_exit(127);
		}
		execl(D.vmm_path, "domus-vmm", "--config", cfg_path, "--domid", domid,
		      "--listen-fd", "3", "--control-fd", "4", "--blk-disks", mask_arg,
		      "--blk-stats-fd", st >= 0 ? "5" : "-1", "--console-log-fd", console_log_arg,
		      D.verbose ? "-v" : NULL, (char *)NULL);
		dprintf(2, "domusd: cannot run %s: %s\n", D.vmm_path, strerror(errno));
		_exit(127);
	}
	close(listen_fd);
	close(sp[1]);
	close(log_fd);
	if (stats_fd >= 0)
		close(stats_fd);
	if (console_log_fd >= 0)
		close(console_log_fd);
	console_log_fd = -1;
	caller_files_close(&files);
	if (cgroup_fd >= 0)
		close(cgroup_fd);
	listen_fd = sp[1] = log_fd = stats_fd = cgroup_fd = -1;
	d->pid = pid;
	d->ctl_fd = sp[0];
	ret = task_wait_fd(d->ctl_fd, POLLIN, START_TIMEOUT_MS);
	if (ret == 0)
		ret = vmmproto_recv(d->ctl_fd, 0, &msg);
	ev = msg ? json_string_value(json_object_get(msg, "event")) : NULL;
	if (ret < 0 || !ev || strcmp(ev, "hello")) {
		const char *why = msg ? json_string_value(json_object_get(msg, "error")) : NULL;
		char how[96];
		int status = 0;

		/* A process that already ended keeps its own status: this kill does not change it. */
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (ret == -ETIMEDOUT)
			snprintf(how, sizeof(how), "timed out");
		else if (WIFSIGNALED(status))
			snprintf(how, sizeof(how), "it was killed by signal %d%s", WTERMSIG(status),
				 backend_end_note(CLD_KILLED, WTERMSIG(status)));
		else
			snprintf(how, sizeof(how), "it exited with status %d", WEXITSTATUS(status));
		if (why)
			snprintf(err, errlen, "%s", why);
		else
			snprintf(err, errlen, "domus-vmm did not start the domain (%s); see %s", how,
				 log_path);
		json_decref(msg);
		close(sp[0]);
		d->ctl_fd = -1;
		remove_files(d->domid);
		return -EINVAL;
	}
	json_decref(msg);
	d->pidfd = sys_pidfd_open(pid);
	d->starttime = proc_starttime(pid);
	domain_watch_fds(d);
	if (save_record(d) < 0)
		log_warnx("domain %s: cannot save its record; a restarted domusd will not find it",
			  d->spec.name);
	return 0;
fail:
	if (listen_fd >= 0)
		close(listen_fd);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	if (log_fd >= 0)
		close(log_fd);
	if (stats_fd >= 0)
		close(stats_fd);
	if (cgroup_fd >= 0)
		close(cgroup_fd);
	if (console_log_fd >= 0)
		close(console_log_fd);
	caller_files_close(&files);
	remove_files(d->domid);
	return -EIO;
}

static bool wait_exit(int pidfd, int timeout_ms)
{
	return pidfd >= 0 && task_wait_fd(pidfd, POLLIN, timeout_ms) == 0;
}

static void vmm_destroy(void *ctx, struct domain *d)
{
	char err[256];

	/* Its end is this call's to see to, not domain_exited's. */
	watch_del(d->pidfd);
	if (vmm_request(ctx, d, "destroy", NULL, err, sizeof(err)) < 0 || !wait_exit(d->pidfd, 5000)) {
		if (d->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
		else if (d->pid > 0 && proc_starttime(d->pid) == d->starttime)
			kill(d->pid, SIGKILL);
		wait_exit(d->pidfd, 5000);
	}
	reap(d->pid);
	forget_fds(d);
	remove_files(d->domid);
}

static void vmm_usage(void *ctx, const struct domain *d, json_t *out)
{
	json_t *port = nethost_port_json(&D.net, d->domid);

	if (port)
		json_object_set_new(out, "network", port);
	char path[64], buf[2048], *p;
	unsigned long long utime = 0, stime = 0;
	long rss_kib = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)d->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	p = strrchr(buf, ')');
	/* Fields 14 and 15 after the command: user and system time of all threads. */
	for (int field = 2; field < 14 && p; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p + 1, "%llu %llu", &utime, &stime) != 2)
		utime = stime = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			p = strstr(buf, "VmRSS:");
			if (p)
				rss_kib = strtol(p + 6, NULL, 10);
		}
	}
	json_object_set_new(out, "cpu_seconds",
			    json_real((double)(utime + stime) / (double)sysconf(_SC_CLK_TCK)));
	json_object_set_new(out, "memory_rss_kib", json_integer(rss_kib));
	{
		char cgroup[32];
		uint64_t current, max;
		cgroup_domain_name(cgroup, sizeof(cgroup), d->domid);
		if (cgroup_memory(&D.cgroups, cgroup, &current, &max) == 0)
			json_object_set_new(out, "cgroup", json_pack("{s:s,s:I,s:I}", "path", cgroup,
					    "memory_current_mib", (json_int_t)(current >> 20),
					    "memory_max_mib", (json_int_t)(max >> 20)));
	}
}

/*
 * What d's cgroup says it holds, in MiB, less the VMM's own heap: the
 * guest's RAM as the kernel counts it (page cache, which the kernel takes
 * back under pressure, is not counted).
 */
static int vmm_memory_held(void *ctx, const struct domain *d, uint64_t *mib)
{
	char cgroup[32];
	uint64_t resident;
	int ret;

	cgroup_domain_name(cgroup, sizeof(cgroup), d->domid);
	if ((ret = cgroup_memory_resident(&D.cgroups, cgroup, &resident)) < 0)
		return ret;
	resident >>= 20;
	*mib = resident > CGROUP_VMM_BASE_MIB ? resident - CGROUP_VMM_BASE_MIB : 0;
	return 0;
}
/* The disk cache follows the memory domains leave idle; it shrinks before a domain starts. */
static void vmm_memory_changed(void *ctx, uint64_t free_mib)
{
	char err[256];

	if (blkhost_cache_fit(&D.blk, free_mib, NULL, err, sizeof(err)) < 0)
		log_warnx("domus-blk: fitting the cache to %llu MiB idle: %s",
			  (unsigned long long)free_mib, err);
}

static void vmm_host(void *ctx, json_t *out)
{
	json_t *cache = blkhost_cache_json(&D.blk);

	if (cache)
		json_object_set_new(out, "blk_cache", cache);
	json_object_set_new(out, "blk_sched", blkhost_sched_json(&D.blk));
	json_object_set_new(out, "sched_gran", sched_gran_json(&D.sched_gran));
	json_object_set_new(out, "backend_cpu_weight", json_integer(D.backend_weight));
	json_object_set_new(out, "gang_default", json_integer(D.gang));
}

static int vmm_blk_sched_set(void *ctx, const char *settings, char *err, size_t errlen)
{
	(void)ctx;
	return blkhost_sched(&D.blk, settings, err, errlen);
}

static bool vmm_busy(void *ctx)
{
	return task_count() > 0;
}

const struct domain_ops vmm_ops = {
	.busy = vmm_busy,
	.start = vmm_start,
	.request = vmm_request,
	.destroy = vmm_destroy,
	.usage = vmm_usage,
	.memory_held = vmm_memory_held,
	.event = wake_subscribers,
	.balloon_set = vmm_balloon_set,
	.wait = vmm_wait,
	.memory_changed = vmm_memory_changed,
	.host = vmm_host,
	.disk_qos_set = vmm_disk_qos_set,
	.disk_qos = vmm_disk_qos,
	.blk_sched_set = vmm_blk_sched_set,
	.sched_set = vmm_sched_set,
	.sched = vmm_sched,
	.vcpu_pin = vmm_vcpu_pin,
	.vcpus = vmm_vcpus,
	.vfr = api_vfr,
};
/* The domain's process ended (its pidfd is readable). */
void domain_exited(struct domain *d)
{

	/* Its last words, if any, are still queued on the control socket. */
	for (unsigned i = 0; i < 256 && d->ctl_fd >= 0; i++) {
		struct pollfd p = {.fd = d->ctl_fd, .events = POLLIN};
		if (poll(&p, 1, 0) != 1)
			break;
		control_readable(d);
	}
	/* A process that said nothing: how it ended is the detail (adopted ones are not ours to ask). */
	{
		siginfo_t si = {0};
		if (d->pidfd >= 0 && waitid(P_PIDFD, (id_t)d->pidfd, &si, WEXITED | WNOHANG) == 0 &&
		    si.si_pid && si.si_code != CLD_EXITED && !d->stop_reason[0])
			snprintf(d->stop_detail, sizeof(d->stop_detail), "domus-vmm was killed by signal %d%s",
				 si.si_status, backend_end_note(si.si_code, si.si_status));
	}
	reap(d->pid);
	forget_fds(d);
	remove_files(d->domid);
	api_domain_gone(&D.api, d);
}

void control_readable(struct domain *d)
{
	json_t *msg;
	int ret = vmmproto_recv(d->ctl_fd, 0, &msg);

	if (ret == 0) {
		const char *what = json_string_value(json_object_get(msg, "reply"));
		struct domain_watch *w = d->priv;

		if (!what) {
			handle_vmm_message(d, msg);
			json_decref(msg);
			task_event_signal(&D.domain_events);
			return;
		}
		/* The process answers in order: the first request for this op is the one. */
		for (struct vmm_call **p = w ? &w->calls : NULL; p && *p; p = &(*p)->next)
			if (!strcmp((*p)->op, what)) {
				struct vmm_call *c = *p;
				*p = c->next;
				c->linked = false;
				c->reply = msg;
				c->result = 0;
				task_event_signal(&c->done);
				return;
			}
		json_decref(msg); /* a reply nobody waits for any more */
	} else if (ret == -EPIPE || (ret < 0 && ret != -ETIMEDOUT && ret != -EBADMSG)) {
		/* The process is going; its pidfd will say when it is gone. */
		fail_calls(d);
		watch_del(d->ctl_fd);
		close(d->ctl_fd);
		d->ctl_fd = -1;
	}
}
/* ---- finding domains again after a restart ---- */

static void record_lost(unsigned domid, const char *name, const char *why)
{
	struct domain tmp = {.domid = domid};

	snprintf(tmp.spec.name, sizeof(tmp.spec.name), "%s", name);
	log_info("domain %s (%u): %s", name, domid, why);
	api_event(&D.api, "stopped", &tmp, why);
	remove_files(domid);
}

static void adopt_one(const char *file)
{
	char path[PATH_MAX], err[1024];
	json_error_t jerr;
	json_t *rec, *msg = NULL;
	struct domain *d;
	const char *ev;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", D.state_dir, file);
	rec = json_load_file(path, 0, &jerr);
	d = calloc(1, sizeof(*d));
	if (!d || !rec) {
		log_warnx("%s: %s; ignored", path, rec ? "out of memory" : jerr.text);
		goto out;
	}
	d->domid = (unsigned)json_integer_value(json_object_get(rec, "domid"));
	d->pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
	d->starttime = (unsigned long long)json_integer_value(json_object_get(rec, "starttime"));
	d->created = (time_t)json_integer_value(json_object_get(rec, "created"));
	d->restarts = (unsigned)json_integer_value(json_object_get(rec, "restarts"));
	caller_from_json(json_object_get(rec, "owner"), &d->owner);
	d->ctl_fd = d->pidfd = -1;
	if (!d->domid || domain_spec_from_json(json_object_get(rec, "config"), path, &d->spec, err,
					       sizeof(err)) < 0) {
		log_warnx("%s: not a domain record; ignored", path);
		goto out;
	}
	domain_spec_fixup(&d->spec);
	if (d->pid <= 0 || !d->starttime || proc_starttime(d->pid) != d->starttime) {
		record_lost(d->domid, d->spec.name, "ended while domusd was not running");
		goto out;
	}
	path_for(path, sizeof(path), d->domid, "sock");
	fd = unix_connect(path, SOCK_SEQPACKET);
	if (fd < 0) {
		log_warnx("domain %s: pid %d runs but %s does not answer: %s", d->spec.name,
			  (int)d->pid, path, strerror(-fd));
		goto out;
	}
	msg = json_pack("{s:s}", "op", "hello");
	ret = vmmproto_send(fd, msg);
	json_decref(msg);
	msg = NULL;
	if (!ret)
		ret = vmmproto_recv(fd, REQUEST_TIMEOUT_MS, &msg);
	ev = msg ? json_string_value(json_object_get(msg, "event")) : NULL;
	if (ret < 0 || !ev || strcmp(ev, "hello")) {
		log_warnx("domain %s: no hello on %s", d->spec.name, path);
		close(fd);
		goto out;
	}
	d->ctl_fd = fd;
	d->pidfd = sys_pidfd_open(d->pid);
	{
		const char *st = json_string_value(json_object_get(msg, "state"));
		static const char *states[] = {"running", "paused", "crashed", "shutdown", "stopped"};
		d->state = "running";
		for (size_t i = 0; st && i < sizeof(states) / sizeof(states[0]); i++)
			if (!strcmp(st, states[i]))
				d->state = states[i];
	}
	if (api_adopt(&D.api, d, err, sizeof(err)) < 0) {
		log_warnx("domain %u: %s", d->domid, err);
		close(d->ctl_fd);
		close(d->pidfd);
		goto out;
	}
	domain_watch_fds(d);
	{
		/* Its disks were served by the previous domusd's domus-blk: served again, same sockets. */
		static struct caller_files files;
		int stats_fd = open_blk_stats(d->domid, false);
		if (caller_open_blk_disks(&d->owner, &d->spec, &files, err, sizeof(err)) < 0 ||
		    attach_disks(d, stats_fd, &files, NULL, err, sizeof(err)) < 0)
			log_warnx("domain %s: %s; its disk waits", d->spec.name, err);
		caller_files_close(&files);
		if (attach_vifs(d, NULL, err, sizeof(err)) < 0)
			log_warnx("domain %s: %s; its network interface waits", d->spec.name, err);
		if (stats_fd >= 0)
			close(stats_fd);
	}
	log_info("domain %s (%u, pid %d) found running; managed again", d->spec.name, d->domid,
		 (int)d->pid);
	api_event(&D.api, "adopted", d, NULL);
	d = NULL;
out:
	json_decref(msg);
	json_decref(rec);
	free(d);
}

void adopt_domains(void)
{
	DIR *dir = opendir(D.state_dir);
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n > 12 && !strcmp(e->d_name + n - 12, ".domain.json"))
			adopt_one(e->d_name);
	}
	closedir(dir);
}
