/* Logging: every line is tagged by process role, errors carry strerror. */
#ifndef DOMUS_LOG_H
#define DOMUS_LOG_H

#include <stdarg.h>

void log_init(const char *tag, int verbose);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs "msg: strerror(-err)"; for the -errno convention. */
void log_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last warning logged by this thread, "" if none: for reporting errors to a caller. */
const char *log_last_warning(void);
/* Only during start-up, from main. */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
