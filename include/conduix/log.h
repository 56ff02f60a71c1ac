/*
 * log.h -- one log line per event, JSON (default) or text, to stderr or a file reopened on SIGUSR1.
 * cx_log_warn appends strerror(errno); the x variants do not (OpenBSD log.c).
 */
#ifndef CONDUIX_LOG_H
#define CONDUIX_LOG_H

enum { CX_LOG_DEBUG = 0, CX_LOG_INFO, CX_LOG_WARN, CX_LOG_ERROR };

/* cx_log_init -- level "debug|info|warn|error", format "json|text", file "" for stderr. 0 or -1. */
int cx_log_init(const char *level, const char *format, const char *file);
int cx_log_reopen(void);
/* cx_log_set_proc -- the process kind written in every line ("master", "worker", …). */
void cx_log_set_proc(const char *kind);
int cx_log_enabled(int level);

void cx_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cx_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cx_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cx_log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cx_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cx_log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cx_log_raw -- write one preformatted line (the access log); a newline is added. */
void cx_log_raw(const char *line, size_t len);

#endif
