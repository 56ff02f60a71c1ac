/*
 * log.h -- one log line per event, JSON (default) or text, to stderr or a file reopened on SIGUSR1.
 * cx_log_warn appends strerror(errno); the x variants do not (OpenBSD log.c).
 */
#ifndef CONDUIX_LOG_H
#define CONDUIX_LOG_H

#include <stddef.h>

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

/* cx_log_raw -- write one preformatted line (the access log); a newline is added. Buffered once
 * cx_log_buffer_start was called. */
void cx_log_raw(const char *line, size_t len);

#define CX_LOG_FLUSH_MS 100 /* a buffered line is written within this long */

/* cx_log_buffer_start -- from now on this process buffers the lines of cx_log_raw (a worker's access log)
 * in its shared-memory slot and writes them in blocks of whole lines: when the buffer is full, when the
 * oldest line is CX_LOG_FLUSH_MS old (the process's loop calls cx_log_flush_due), before any other line
 * (so the order of the process's lines is kept), before a reopen, and at exit. Lines a process that
 * died had left in its slot are written by the master (cx_log_salvage). */
void cx_log_buffer_start(void);

/* cx_log_flush_in -- ms until the buffered lines must be written (0: now), or -1 when none are. */
long cx_log_flush_in(void);

/* cx_log_flush_due -- write the buffered lines when they are due; cx_log_flush writes them now. */
void cx_log_flush_due(void);
void cx_log_flush(void);

struct cx_shm_logbuf;
/* cx_log_salvage -- write the whole lines left in the buffer of a process that has exited (master). */
void cx_log_salvage(struct cx_shm_logbuf *b);

#endif
