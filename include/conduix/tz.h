/*
 * tz.h -- IANA time zones for the cron engine, read from the system tz database (/usr/share/zoneinfo,
 * Debian's tzdata) without TZ, tzset() or any other process-wide state.
 *
 * A zone is loaded once (cx_tz_load: the only function here that does file I/O) into an immutable
 * cx_tz_t; after that every question is pure arithmetic and the zone can be shared by any number of
 * schedules. A cache of loaded zones (name -> cx_tz_t *) belongs to the caller, e.g. the scheduler.
 * NULL stands for UTC wherever a zone is taken.
 *
 * The zone is kept as spans of constant UTC offset: the transitions of the TZif file (tzfile(5), version
 * 1 or the 64-bit data of version 2+), then the POSIX TZ rule of its footer ("EST5EDT,M3.2.0,M11.1.0")
 * for instants after the table.
 */
#ifndef CONDUIX_TZ_H
#define CONDUIX_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct cx_tz cx_tz_t;

#define CX_TZ_DIR "/usr/share/zoneinfo"
#define CX_TZ_NAME_MAX 63 /* longest zone name accepted, in bytes (the longest IANA name has 32) */

/* cx_tz_span_t -- the stretch of time around an instant during which the UTC offset does not change. */
typedef struct {
    int64_t start;       /* first instant of the span, Unix seconds; INT64_MIN when it has no beginning */
    int64_t end;         /* first instant after the span; INT64_MAX when it has no end */
    int32_t offset;      /* seconds east of UTC during the span (New York in winter: -18000) */
    int32_t prev_offset; /* offset of the span before it; equal to offset when start is INT64_MIN */
} cx_tz_span_t;

/* cx_tz_check_name -- 0 when name has the shape of a zone name (letters, digits, "/_+-.", no empty, "."
 * or ".." component, no leading "/", at most CX_TZ_NAME_MAX bytes); else CX_INVALID and a message in err.
 * Pure: it says nothing about whether the zone exists. */
int cx_tz_check_name(const char *name, char *err, size_t errlen);

/* cx_tz_load -- the zone called name from CX_TZ_DIR ("UTC" needs no file); NULL and a message in err
 * (`unknown time zone "Mars/Olympus"`) when it cannot be loaded. Free with cx_tz_free. */
cx_tz_t *cx_tz_load(const char *name, char *err, size_t errlen);

/* cx_tz_load_dir -- the same from another tz database directory (tests). */
cx_tz_t *cx_tz_load_dir(const char *dir, const char *name, char *err, size_t errlen);

/* cx_tz_parse -- a zone from the bytes of a TZif file. Pure; NULL and a message in err if they are not
 * a TZif file this module understands (leap-second "right/" zones are refused). */
cx_tz_t *cx_tz_parse(const char *name, const void *data, size_t len, char *err, size_t errlen);

/* cx_tz_posix -- a zone from a POSIX TZ string alone ("CET-1CEST,M3.5.0,M10.5.0/3", "<+09>-9"). Pure. */
cx_tz_t *cx_tz_posix(const char *name, const char *tzstring, char *err, size_t errlen);

void cx_tz_free(cx_tz_t *z);

/* cx_tz_name -- the name the zone was loaded under ("UTC" for NULL). */
const char *cx_tz_name(const cx_tz_t *z);

/* cx_tz_span -- the span of constant offset that contains instant t. */
void cx_tz_span(const cx_tz_t *z, int64_t t, cx_tz_span_t *out);

/* cx_tz_offset -- seconds east of UTC at instant t. */
int32_t cx_tz_offset(const cx_tz_t *z, int64_t t);

#endif
