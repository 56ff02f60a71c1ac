/*
 * cx.h -- what every module of conduix-cp shares: return codes, allocation that aborts on failure,
 * and a few small helpers.
 */
#ifndef CONDUIX_CX_H
#define CONDUIX_CX_H

#include <stddef.h>
#include <stdint.h>

/* One return convention: 0 ok, negative error kinds. */
#define CX_OK 0
#define CX_ERR (-1)      /* generic failure, already logged */
#define CX_NOTFOUND (-2) /* no such row / key */
#define CX_CONFLICT (-3) /* unique key or version conflict */
#define CX_INVALID (-4)  /* bad input */
#define CX_UNAVAIL (-5)  /* a backing service (MySQL, Redis) is down */
#define CX_STATE (-6)    /* illegal state transition */
#define CX_EXPIRED (-7)  /* token or command expired */
#define CX_DENIED (-8)   /* not allowed */

#define CX_VERSION PACKAGE_VERSION

#define CX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure aborts: the supervisor restarts the process (Redis zmalloc). */
void *cx_malloc(size_t n);
void *cx_calloc(size_t n, size_t size);
void *cx_realloc(void *p, size_t n);
char *cx_strdup(const char *s);
char *cx_strndup(const char *s, size_t n);

/* Monotonic and wall clocks in milliseconds. */
int64_t cx_now_ms(void);
int64_t cx_wall_ms(void);

/* cx_uuid -- a new random UUID (version 4), 36 characters and a NUL, into out[37]. */
void cx_uuid(char out[37]);
/* cx_uuid_v7 -- a new time-ordered UUID (version 7: Unix milliseconds, then 74 random bits), for the
 * primary keys of stored rows: their text sorts by creation time. */
void cx_uuid_v7(char out[37]);

/* cx_random -- n bytes from the kernel's CSPRNG (getrandom(2), read 4 KiB at a time); a child process
 * never gets its parent's bytes. Aborts when the kernel gives none. */
void cx_random(void *out, size_t n);

/* cx_pid -- getpid(), cached per process (reset in a child at fork). */
int cx_pid(void);

/* cx_time_format -- RFC 3339 UTC ("2026-11-25T21:00:00Z") of a Unix time in seconds, into out[32]. */
void cx_time_format(int64_t unix_s, char out[32]);

/* cx_time_format_ms -- RFC 3339 UTC with milliseconds ("2026-11-25T21:00:00.123Z") of Unix milliseconds,
 * into out[32]. */
void cx_time_format_ms(int64_t ms, char out[32]);

/* cx_time_parse -- parse RFC 3339 with optional fraction and any offset; Unix milliseconds or -1. */
int64_t cx_time_parse(const char *s);

/* cx_duration_parse -- "250ms", "30s", "5m", "24h", "1h30m" into milliseconds; -1 if malformed. */
int64_t cx_duration_parse(const char *s);

/* cx_size_parse -- "1MiB", "512KiB", "1048576", "2MB" into bytes; -1 if malformed. */
int64_t cx_size_parse(const char *s);

#endif
