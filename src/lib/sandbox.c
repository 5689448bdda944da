#include "lib/sandbox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define NOBODY 65534

int sandbox_enter(const char *user, const char *default_user, const int *allowed, size_t n,
		  char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	uid_t uid = NOBODY;
	gid_t gid = NOBODY;
	int ret;

	if (geteuid() == 0) {
		/* Root opened the files and bound the sockets; an unprivileged user serves them. */
		struct passwd *pw = getpwnam(user ? user : default_user);
		int deathsig = 0;

		prctl(PR_GET_PDEATHSIG, &deathsig);
		if (pw) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		} else if (user) {
			snprintf(err, errlen, "no user '%s' to run as", user);
			return -ENOENT;
		}
		if (uid == 0 || setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0) {
			snprintf(err, errlen, "dropping to user %s: %s",
				 pw ? pw->pw_name : "nobody",
				 uid == 0 ? "it is root" : strerror(errno));
			return uid == 0 ? -EPERM : -errno;
		}
		/* A change of user clears the parent-death signal: it must still end with its
		 * supervisor. */
		if (deathsig)
			prctl(PR_SET_PDEATHSIG, deathsig);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		return -errno;
	}
	/* Anything else fails with EPERM rather than happening. */
	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
		if (ret < 0) {
			snprintf(err, errlen, "seccomp rule %zu: %s", i, strerror(-ret));
			seccomp_release(ctx);
			return ret;
		}
	}
	ret = seccomp_load(ctx);
	seccomp_release(ctx);
	if (ret < 0) {
		snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-ret));
		return ret;
	}
	return 0;
}
