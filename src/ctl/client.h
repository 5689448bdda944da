/* The `domus` command's side of the API: requests to domusd over its Unix socket. */
#ifndef DOMUS_CLIENT_H
#define DOMUS_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#define DOMUS_DEFAULT_SOCKET "/run/domus/domusd.sock"

struct client {
	const char *socket;
};

/*
 * Sends one request; on a reply, returns the HTTP status with the body in
 * *reply (JSON parsed, or NULL for a non-JSON body, whose text goes to
 * *text if text is not NULL). Returns -errno when domusd cannot be reached.
 */
int client_request(struct client *c, const char *method, const char *path,
		   const char *content_type, const char *body, size_t body_len, json_t **reply,
		   char **text);
/* "domus: <the error's message>" on stderr for an error reply. */
void client_print_error(const json_t *reply, long status);
/* URL-escapes s for a query string; malloc'd, NULL on ENOMEM. */
char *client_escape(const char *s);
/* Attaches the terminal to a domain's console until Ctrl-] or the console closes. */
int client_console(struct client *c, const char *domain);

#endif
