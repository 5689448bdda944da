#include "ctl/client.h"
#include "lib/unix_socket.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define CONSOLE_ESCAPE 0x1d /* Ctrl-] */
#define MAX_REPLY (16 * 1024 * 1024)

struct buffer {
	char *data;
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *opaque)
{
	struct buffer *b = opaque;
	size_t len = size * n;
	char *nd;

	if (b->len + len > MAX_REPLY)
		return 0;
	nd = realloc(b->data, b->len + len + 1);
	if (!nd)
		return 0;
	memcpy(nd + b->len, p, len);
	b->data = nd;
	b->len += len;
	b->data[b->len] = 0;
	return len;
}

int client_request(struct client *c, const char *method, const char *path,
		   const char *content_type, const char *body, size_t body_len, json_t **reply,
		   char **text)
{
	CURL *curl = curl_easy_init();
	struct curl_slist *headers = NULL;
	struct buffer b = {0};
	char url[1024], hdr[256];
	long status = 0;
	CURLcode rc;

	*reply = NULL;
	if (text)
		*text = NULL;
	if (!curl)
		return -ENOMEM;
	snprintf(url, sizeof(url), "http://domusd%s", path);
	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
	}
	if (content_type) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", content_type);
		headers = curl_slist_append(headers, hdr);
	}
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	if (rc != CURLE_OK) {
		free(b.data);
		fprintf(stderr, "domus: cannot reach domusd at %s: %s\n", c->socket,
			curl_easy_strerror(rc));
		return -ECONNREFUSED;
	}
	if (b.data) {
		*reply = json_loadb(b.data, b.len, 0, NULL);
		if (!*reply && text) {
			*text = b.data;
			b.data = NULL;
		}
	}
	free(b.data);
	return (int)status;
}

void client_print_error(const json_t *reply, long status)
{
	const char *msg = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));

	fprintf(stderr, "domus: %s\n", msg ? msg : "domusd gave an unexpected reply");
	(void)status;
}

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * The console is an HTTP upgrade (libcurl has no raw upgrade): ask, read
 * the status and headers, and from then on the socket carries the console.
 */
static int console_handshake(int fd, const char *domain, char *extra, size_t *extra_len)
{
	char req[512], buf[8192];
	size_t got = 0;
	char *end;
	int status = 0;

	snprintf(req, sizeof(req),
		 "GET /v1/domains/%s/console HTTP/1.1\r\nHost: domusd\r\n"
		 "Connection: Upgrade\r\nUpgrade: domus-console\r\n\r\n",
		 domain);
	if (write_all(fd, req, strlen(req)) < 0)
		return -EIO;
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			return -EIO;
		got += (size_t)n;
		buf[got] = 0;
		end = strstr(buf, "\r\n\r\n");
		if (end)
			break;
		if (got == sizeof(buf) - 1)
			return -EPROTO;
	}
	sscanf(buf, "HTTP/1.%*d %d", &status);
	if (status != 101) {
		/* An error reply: its JSON body follows the headers. */
		char *body = end + 4;
		size_t have = got - (size_t)(body - buf);
		json_t *j;
		while (have < sizeof(buf) - 1 - (size_t)(body - buf)) {
			ssize_t n = read(fd, body + have, sizeof(buf) - 1 - (size_t)(body - buf) - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			body[have] = 0;
			if ((j = json_loads(body, 0, NULL))) {
				client_print_error(j, status);
				json_decref(j);
				return -EINVAL;
			}
		}
		j = json_loads(body, 0, NULL);
		client_print_error(j, status);
		json_decref(j);
		return -EINVAL;
	}
	*extra_len = got - (size_t)(end + 4 - buf);
	memcpy(extra, end + 4, *extra_len);
	return 0;
}

int client_console(struct client *c, const char *domain)
{
	char extra[8192];
	size_t extra_len = 0;
	struct termios saved, raw;
	int tty = 0, fd, ret = 0;

	fd = unix_connect(c->socket, SOCK_STREAM);
	if (fd < 0) {
		fprintf(stderr, "domus: cannot reach domusd at %s: %s\n", c->socket, strerror(-fd));
		return -ECONNREFUSED;
	}
	if (console_handshake(fd, domain, extra, &extra_len) < 0) {
		close(fd);
		return -EINVAL;
	}
	fprintf(stderr, "domus: attached to the console of %s; Ctrl-] detaches\r\n", domain);
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		tty = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
	}
	if (extra_len)
		write_all(STDOUT_FILENO, extra, extra_len);
	for (;;) {
		struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
				      {.fd = fd, .events = POLLIN}};
		char buf[4096];
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, buf, sizeof(buf));
			if (n <= 0) {
				fprintf(stderr, "\r\ndomus: the console of %s closed\r\n", domain);
				break;
			}
			write_all(STDOUT_FILENO, buf, (size_t)n);
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char *esc;
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				/* Input ended: detach, the domain keeps running. */
				break;
			}
			esc = memchr(buf, CONSOLE_ESCAPE, (size_t)n);
			if (esc) {
				write_all(fd, buf, (size_t)(esc - buf));
				fprintf(stderr, "\r\ndomus: detached from %s\r\n", domain);
				break;
			}
			if (write_all(fd, buf, (size_t)n) < 0)
				break;
		}
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	close(fd);
	return ret;
}

char *client_escape(const char *s)
{
	CURL *curl = curl_easy_init();
	char *e = curl ? curl_easy_escape(curl, s, 0) : NULL;
	char *copy = e ? strdup(e) : NULL;

	curl_free(e);
	if (curl)
		curl_easy_cleanup(curl);
	return copy;
}
