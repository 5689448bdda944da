/* The supervisor's end of domus-net's control socket (net/netctl.h), on lib/ctlproc. */
#include "net/netctl.h"

#include "lib/ctlproc.h"

int netctl_spawn(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		 size_t errlen)
{
	return ctlproc_spawn(program, "domus-net", verbose, pid, ctl_fd, err, errlen);
}

int netctl_request(int ctl_fd, const char *text, const int *fds, unsigned nfds, char *reply,
		   size_t replylen, char *err, size_t errlen)
{
	char none[1];

	/* The text after "ok" is always wanted here: a caller that does not keep it gives none. */
	return ctlproc_request(ctl_fd, "domus-net", text, fds, nfds, NETCTL_REPLY_MS,
			       reply ? reply : none, reply ? replylen : sizeof(none), err, errlen);
}

void netctl_find_program(char *out, size_t len, const char *near)
{
	ctlproc_find_program(out, len, "DOMUS_NET", "domus-net", "../net", near);
}
