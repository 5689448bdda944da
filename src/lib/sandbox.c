#include "lib/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/*
 * One allowed call, its arguments held where they matter: no mapping made
 * or turned executable (code cannot be brought in), and fcntl only to read
 * and set descriptor and status flags and to duplicate (no locks, leases,
 * owners, pipe sizes or seals).
 */
int sandbox_allow(scmp_filter_ctx ctx, int nr)
{
	static const int fcntl_cmds[] = {F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC};
	int ret = 0;

	if (nr == SCMP_SYS(mmap) || nr == SCMP_SYS(mprotect))
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (nr == SCMP_SYS(fcntl)) {
		for (size_t i = 0; i < sizeof(fcntl_cmds) / sizeof(fcntl_cmds[0]) && ret == 0; i++)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					       SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i], 0));
		return ret;
	}
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

#include "lib/sanitizer.h"

#ifdef DOMUS_UNDER_ASAN
#include <sanitizer/lsan_interface.h>
/*
 * The sanitizer build's runtime (the suite's, never installed) sets up its
 * signal stack and reads its limits in every process: allowed there only.
 * Its leak check at exit stops the world with threads and ptrace, which no
 * sandbox allows: it runs once, before the filter, instead.
 */
static const int sanitizer_calls[] = {
	SCMP_SYS(sigaltstack), SCMP_SYS(prctl), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64),
	SCMP_SYS(sched_yield), SCMP_SYS(munmap), SCMP_SYS(madvise), SCMP_SYS(mprotect),
};
#endif

int sandbox_enter(const char *user, const char *default_user, const int *allowed, size_t n,
		  char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int ret;

	if (geteuid() == 0) {
		/* Root opened the files and bound the sockets; an unprivileged user serves them. */
		const char *name = user ? user : default_user;
		struct passwd *pw = getpwnam(name);
		int deathsig = 0;

		prctl(PR_GET_PDEATHSIG, &deathsig);
		/* Its own user, never a shared one: nobody may own other things worth guarding. */
		if (!pw) {
			snprintf(err, errlen, "no user '%s' to run as (tools/deps, or systemd-sysusers "
				 "with dist/sysusers.d/domus.conf, makes it)", name);
			return -ENOENT;
		}
		if (pw->pw_uid == 0 || setgroups(0, NULL) < 0 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
			snprintf(err, errlen, "dropping to user %s: %s", name,
				 pw->pw_uid == 0 ? "it is root" : strerror(errno));
			return pw->pw_uid == 0 ? -EPERM : -errno;
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
#ifdef DOMUS_UNDER_ASAN
	__lsan_do_leak_check();
#endif
	/* Anything else ends the process: a call it never makes is an attack, not an error. */
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		ret = sandbox_allow(ctx, allowed[i]);
		if (ret < 0) {
			snprintf(err, errlen, "seccomp rule %zu: %s", i, strerror(-ret));
			seccomp_release(ctx);
			return ret;
		}
	}
#ifdef DOMUS_UNDER_ASAN
	for (size_t i = 0; i < sizeof(sanitizer_calls) / sizeof(sanitizer_calls[0]); i++)
		if ((ret = sandbox_allow(ctx, sanitizer_calls[i])) < 0) {
			snprintf(err, errlen, "seccomp rule for the sanitizer: %s", strerror(-ret));
			seccomp_release(ctx);
			return ret;
		}
#endif
	/*
	 * For every thread at once: a back-end's workers start before its
	 * sandbox (which allows no clone) and are held until it is in place.
	 */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (ret == 0)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	if (ret < 0) {
		snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-ret));
		return ret;
	}
	return 0;
}
