/*
 * domus-net's confinement (on lib/sandbox.c), entered once its control
 * socket is open and before the first message is read: everything it
 * serves later (the state memfd, the TAP, listening sockets, capture and
 * flow files) arrives as descriptors on the control socket, so it needs
 * no open(), no socket(), no exec.
 */
#ifndef DOMUS_NET_SANDBOX_H
#define DOMUS_NET_SANDBOX_H

#include <stddef.h>

/* Runs as user (NULL: domus-net, else nobody) when started as root. 0, or -errno with err. */
int net_sandbox_enter(const char *user, char *err, size_t errlen);

#endif
