/*
 * domusd's HTTP side on libmicrohttpd: who may connect (peer credentials),
 * request bodies, the API's replies, the event stream (suspended while
 * there is nothing new), and the console (an HTTP upgrade spliced to the
 * domain's console socket).
 */
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
#include "lib/unix_socket.h"
#include "domain/vmmproto.h"
#include "lib/log.h"

void wake_subscribers(void *ctx)
{
	for (struct subscriber *s = D.subs; s; s = s->next)
		if (s->suspended) {
			s->suspended = false;
			MHD_resume_connection(s->conn);
		}
}
/* ---- the console proxy ---- */

static int console_connect(struct domain *d, char *err, size_t errlen, unsigned *status,
			   const char **code)
{
	char path[PATH_MAX];
	json_t *msg = json_pack("{s:s}", "op", "console"), *reply = NULL;
	int fd, ret;

	*status = 502;
	*code = "domain_unreachable";
	path_for(path, sizeof(path), d->domid, "sock");
	fd = unix_connect(path, SOCK_SEQPACKET);
	if (fd < 0) {
		snprintf(err, errlen, "cannot reach the console of '%s': %s", d->spec.name,
			 strerror(-fd));
		json_decref(msg);
		return fd;
	}
	ret = vmmproto_send(fd, msg);
	json_decref(msg);
	if (!ret)
		ret = task_wait_fd(fd, POLLIN, REQUEST_TIMEOUT_MS);
	if (!ret)
		ret = vmmproto_recv(fd, 0, &reply);
	if (ret < 0) {
		snprintf(err, errlen, "the console of '%s' did not answer", d->spec.name);
		close(fd);
		return ret;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		*status = 409;
		*code = "console_busy";
		snprintf(err, errlen, "someone is attached to the console of '%s' already",
			 d->spec.name);
		json_decref(reply);
		close(fd);
		return -EBUSY;
	}
	json_decref(reply);
	return fd;
}

void proxy_close(struct proxy *p)
{
	for (struct proxy **pp = &D.proxies; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	watch_del(p->client_fd);
	watch_del(p->vmm_fd);
	close(p->vmm_fd);
	if (p->out_fd >= 0) {
		watch_del(p->out_fd);
		close(p->out_fd);
	}
	MHD_upgrade_action(p->urh, MHD_UPGRADE_ACTION_CLOSE);
	free(p);
}

static void upgrade_done(void *cls, struct MHD_Connection *conn, void *req_cls,
			 const char *extra_in, size_t extra_in_size, MHD_socket sock,
			 struct MHD_UpgradeResponseHandle *urh)
{
	struct proxy *p = cls;

	p->client_fd = sock;
	p->urh = urh;
	/*
	 * A console is read at a person's pace: a small buffer toward its
	 * reader bounds what a reader that stops pins in the kernel. Bursts
	 * wait in the domain's process's socket toward domusd (the kernel's
	 * default size) and its console ring keeps everything recent.
	 */
	setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &(int){CONSOLE_CLIENT_SNDBUF}, sizeof(int));
	p->wc = (struct watch){W_PROXY_CLIENT, p};
	p->wv = (struct watch){W_PROXY_VMM, p};
	p->wo = (struct watch){W_PROXY_CLIENT_OUT, p};
	p->out_fd = -1;
	p->next = D.proxies;
	D.proxies = p;
	if (extra_in_size)
		send(p->vmm_fd, extra_in, extra_in_size, MSG_NOSIGNAL | MSG_DONTWAIT);
	watch_add(p->client_fd, &p->wc);
	watch_add(p->vmm_fd, &p->wv);
}

void proxy_client_readable(struct proxy *p)
{
	char buf[4096];
	ssize_t n = recv(p->client_fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || send(p->vmm_fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
		proxy_close(p);
}

/* Sends what is pending; true when all of it went, false when the reader is full or gone. */
static bool flush_pending(struct proxy *p)
{
	while (p->pending_off < p->pending_len) {
		ssize_t w = send(p->client_fd, p->pending + p->pending_off,
				 p->pending_len - p->pending_off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w <= 0)
			return false;
		p->pending_off += (size_t)w;
	}
	p->pending_off = p->pending_len = 0;
	return true;
}

void proxy_vmm_readable(struct proxy *p)
{
	ssize_t n = recv(p->vmm_fd, p->pending, sizeof(p->pending), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		proxy_close(p);
		return;
	}
	p->pending_off = 0;
	p->pending_len = (size_t)n;
	if (flush_pending(p))
		return;
	if (errno != EAGAIN) {
		proxy_close(p);
		return;
	}
	/*
	 * A reader that does not keep up costs itself only: its domain's side
	 * waits (the domain's console ring keeps what comes meanwhile) until
	 * its socket has room, and the daemon goes on.
	 */
	p->out_fd = fcntl(p->client_fd, F_DUPFD_CLOEXEC, 0);
	if (p->out_fd < 0) {
		proxy_close(p);
		return;
	}
	watch_del(p->vmm_fd);
	watch_add_out(p->out_fd, &p->wo);
}

void proxy_client_writable(struct proxy *p)
{
	if (!flush_pending(p)) {
		if (errno != EAGAIN)
			proxy_close(p);
		return;
	}
	watch_del(p->out_fd);
	close(p->out_fd);
	p->out_fd = -1;
	watch_add(p->vmm_fd, &p->wv);
}

/* ---- HTTP ---- */

/* Root, domusd's own user, and members of the domus group may use the API. */
static bool peer_allowed(const struct caller *c)
{
	if (c->uid == 0 || c->uid == geteuid())
		return true;
	if (!D.have_group)
		return false;
	if (c->gid == D.group)
		return true;
	for (unsigned i = 0; i < c->ngroups; i++)
		if (c->groups[i] == D.group)
			return true;
	return false;
}

static enum MHD_Result queue_body(struct MHD_Connection *conn, unsigned status, char *body,
				  const char *content_type)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!body)
		body = strdup("");
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_error(struct MHD_Connection *conn, unsigned status, const char *code,
				   const char *msg)
{
	json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	char *body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(j);
	return queue_body(conn, status, body, "application/json");
}

static ssize_t events_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct subscriber *s = cls;
	size_t n = 0;

	while (s->seq < D.api.event_seq) {
		const char *line = api_event_line(&D.api, s->seq, &s->caller);
		size_t len = line ? strlen(line) : 0;

		if (!line || len + 1 > max) {
			s->seq++; /* no longer kept, or larger than a chunk: skipped */
			continue;
		}
		if (n + len + 1 > max)
			break;
		memcpy(buf + n, line, len);
		buf[n + len] = '\n';
		n += len + 1;
		s->seq++;
	}
	if (n == 0) {
		/* Nothing new: park the connection until api_event wakes it. */
		s->suspended = true;
		MHD_suspend_connection(s->conn);
	}
	return (ssize_t)n;
}

static void events_free(void *cls)
{
	struct subscriber *s = cls;

	for (struct subscriber **pp = &D.subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s);
}

static enum MHD_Result queue_events(struct MHD_Connection *conn, unsigned long long since,
				    const struct caller *c)
{
	struct subscriber *s = calloc(1, sizeof(*s));
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!s)
		return MHD_NO;
	s->conn = conn;
	s->seq = since;
	s->caller = *c;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, events_reader, s,
						 events_free);
	if (!resp) {
		free(s);
		return MHD_NO;
	}
	s->next = D.subs;
	D.subs = s;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_console(struct MHD_Connection *conn, struct request_ctx *rc,
				     unsigned domid)
{
	struct proxy *p;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (rc->console_fd < 0)
		return queue_error(conn, rc->console_status, rc->console_code, rc->console_err);
	p = calloc(1, sizeof(*p));
	if (!p)
		return MHD_NO;
	p->domid = domid;
	p->vmm_fd = rc->console_fd;
	rc->console_fd = -1;
	resp = MHD_create_response_for_upgrade(upgrade_done, p);
	if (!resp) {
		close(p->vmm_fd);
		free(p);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "domus-console");
	ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* In the request's task: the API's answer, and a console's connection, which may wait. */
static void handle_request(void *arg)
{
	struct request_ctx *rc = arg;

	api_handle(&D.api, &rc->req, &rc->resp);
	if (rc->resp.stream == API_STREAM_CONSOLE) {
		rc->console_domid = rc->resp.domain->domid;
		rc->console_fd = console_connect(rc->resp.domain, rc->console_err,
						 sizeof(rc->console_err), &rc->console_status,
						 &rc->console_code);
	}
	rc->phase = REQUEST_DONE;
}

/* The task ended after waiting: its connection goes on, and on_request answers. */
static void request_done(void *arg)
{
	struct request_ctx *rc = arg;

	for (struct request_ctx **p = &D.waiting; *p; p = &(*p)->next_waiting)
		if (*p == rc) {
			*p = rc->next_waiting;
			break;
		}
	if (rc->suspended) {
		rc->suspended = false;
		MHD_resume_connection(rc->conn);
	}
}

void requests_abandon(void)
{
	while (D.waiting) {
		struct request_ctx *rc = D.waiting;
		D.waiting = rc->next_waiting;
		rc->suspended = false;
		MHD_resume_connection(rc->conn);
	}
}

static bool header_has(struct MHD_Connection *conn, const char *name, const char *token)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

	return v && strcasestr(v, token);
}

enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct request_ctx *rc = *con_cls;
	enum MHD_Result ret;

	if (!rc) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		rc = calloc(1, sizeof(*rc));
		if (!rc)
			return MHD_NO;
		rc->console_fd = -1;
		rc->denied = !ci || caller_from_socket(ci->connect_fd, &rc->caller) < 0 ||
			     !peer_allowed(&rc->caller);
		*con_cls = rc;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (!rc->denied && !rc->too_large) {
			if (rc->len + n > API_MAX_BODY) {
				rc->too_large = true;
				free(rc->body);
				rc->body = NULL;
				rc->len = 0;
			} else {
				char *nb = realloc(rc->body, rc->len + n + 1);
				if (!nb)
					return MHD_NO;
				memcpy(nb + rc->len, upload_data, n);
				rc->body = nb;
				rc->len += n;
				rc->body[rc->len] = 0;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rc->denied)
		return queue_error(conn, MHD_HTTP_FORBIDDEN, "forbidden",
				   "only root and members of the domus group may use domusd");
	if (rc->phase == REQUEST_NEW) {
		int started;

		rc->req = (struct api_request){
			.method = method,
			.path = url,
			.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
								    MHD_HTTP_HEADER_CONTENT_TYPE),
			.source = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "source"),
			.since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since"),
			.force = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "force"),
			.body = rc->body,
			.body_len = rc->len,
			.too_large = rc->too_large,
			.upgrade_console = header_has(conn, MHD_HTTP_HEADER_UPGRADE, "domus-console") &&
					   header_has(conn, MHD_HTTP_HEADER_CONNECTION, "upgrade"),
			.caller = &rc->caller,
		};
		rc->conn = conn;
		rc->phase = REQUEST_RUNNING;
		started = task_run(handle_request, request_done, rc);
		if (started < 0) {
			rc->phase = REQUEST_DONE;
			return queue_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
					   "domusd cannot take another request now (out of memory)");
		}
		if (started == 0) {
			rc->suspended = true;
			rc->next_waiting = D.waiting;
			D.waiting = rc;
			MHD_suspend_connection(conn);
			return MHD_YES;
		}
	}
	if (rc->phase == REQUEST_RUNNING) /* resumed by requests_abandon */
		return queue_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping",
				   "domusd is stopping; the request's outcome is not known");
	switch (rc->resp.stream) {
	case API_STREAM_EVENTS:
		ret = queue_events(conn, rc->resp.since, &rc->caller);
		break;
	case API_STREAM_CONSOLE:
		ret = queue_console(conn, rc, rc->console_domid);
		break;
	default:
		ret = queue_body(conn, rc->resp.status, rc->resp.body, rc->resp.content_type);
		rc->resp.body = NULL;
		break;
	}
	api_response_free(&rc->resp);
	rc->resp = (struct api_response){0};
	return ret;
}

void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request_ctx *rc = *con_cls;

	if (rc) {
		if (rc->phase == REQUEST_RUNNING) {
			/* Its task still holds it (domusd is stopping): not ours to free. */
			*con_cls = NULL;
			return;
		}
		if (rc->console_fd >= 0)
			close(rc->console_fd);
		api_response_free(&rc->resp);
		free(rc->body);
		free(rc);
	}
	*con_cls = NULL;
}

void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	if (!D.verbose)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_debug("http: %s", buf);
}
