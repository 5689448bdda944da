#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_tag = "domus";
static int log_verbose;
static _Thread_local char log_last[1280];

const char *log_last_warning(void)
{
	return log_last;
}

void log_init(const char *tag, int verbose)
{
	log_tag = tag;
	log_verbose = verbose;
}

static void log_vline(const char *fmt, va_list ap, const char *suffix)
	__attribute__((format(printf, 1, 0)));

static void log_vline(const char *fmt, va_list ap, const char *suffix)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	snprintf(log_last, sizeof(log_last), "%s%s%s", buf, suffix ? ": " : "", suffix ? suffix : "");
	if (suffix)
		fprintf(stderr, "%s: %s: %s\n", log_tag, buf, suffix);
	else
		fprintf(stderr, "%s: %s\n", log_tag, buf);
}

void log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void log_errno(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, strerror(err < 0 ? -err : err));
	va_end(ap);
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, NULL);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;
	char keep[sizeof(log_last)];

	memcpy(keep, log_last, sizeof(keep)); /* only warnings are remembered */
	va_start(ap, fmt);
	log_vline(fmt, ap, NULL);
	va_end(ap);
	memcpy(log_last, keep, sizeof(keep));
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	char keep[sizeof(log_last)];

	if (!log_verbose)
		return;
	memcpy(keep, log_last, sizeof(keep));
	va_start(ap, fmt);
	log_vline(fmt, ap, NULL);
	va_end(ap);
	memcpy(log_last, keep, sizeof(keep));
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
