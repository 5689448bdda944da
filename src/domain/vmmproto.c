#include "domain/vmmproto.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int vmmproto_send(int fd, const json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	ssize_t n;
	size_t len;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (len > VMMPROTO_MAX_MESSAGE) {
		free(text);
		return -EMSGSIZE;
	}
	do
		n = send(fd, text, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	free(text);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int vmmproto_recv(int fd, int timeout_ms, json_t **msg)
{
	static char buf[VMMPROTO_MAX_MESSAGE + 1];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	json_error_t jerr;
	ssize_t n;
	int r;

	*msg = NULL;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	do
		n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -EPIPE;
	*msg = json_loadb(buf, (size_t)n, 0, &jerr);
	if (!*msg || !json_is_object(*msg)) {
		json_decref(*msg);
		*msg = NULL;
		return -EBADMSG;
	}
	return 0;
}
