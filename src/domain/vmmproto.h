/*
 * The control protocol between domusd and a domain's domus-vmm: one JSON
 * object per SOCK_SEQPACKET message over the domain's Unix socket.
 *
 * domusd -> domus-vmm: {"op": "hello"|"pause"|"unpause"|"shutdown"|"reset"|
 *                      "destroy"|"stats"}; the first message on a new
 *                      connection is "hello" (a controller) or "console".
 * domus-vmm -> domusd: replies {"reply": OP, "ok": true|false, "error": ...},
 *                      and events {"event": "hello"|"failed"|"rebooted"|
 *                      "crashed"|"stopped", ...} whenever they happen.
 * A console connection carries the console's bytes, raw, both ways.
 */
#ifndef DOMUS_VMMPROTO_H
#define DOMUS_VMMPROTO_H

#include <jansson.h>

#define VMMPROTO_MAX_MESSAGE (512 * 1024) /* the console ring, escaped, fits */

/* Sends one message; 0 or -errno. */
int vmmproto_send(int fd, const json_t *msg);
/*
 * Receives one message, waiting at most timeout_ms (-1: forever). Returns
 * 0 with *msg set, -EPIPE at end of stream, -ETIMEDOUT, -EBADMSG for a
 * message that is not a JSON object, or -errno.
 */
int vmmproto_recv(int fd, int timeout_ms, json_t **msg);

#endif
