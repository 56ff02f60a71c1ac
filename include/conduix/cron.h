/*
 * cron.h -- the cron expression engine: robfig/cron v3's standard syntax (5 fields, names, ranges, steps,
 * lists, "?", @yearly ... @hourly, @every <duration>, an optional CRON_TZ=/TZ= prefix), and the next fire
 * time of an expression in any IANA time zone, DST-correct. Pure: no I/O, no globals, no allocation.
 * docs/schedules.md is the user's description of the syntax and of the DST rules.
 *
 * Parse once, keep the compiled cx_cron_t (a small plain struct, fine in an array), load the zone once
 * (tz.h), then ask for next fire times as often as needed:
 *
 *     cx_cron_t c;
 *     char err[160];
 *     if (cx_cron_parse(&c, "CRON_TZ=Europe/London 30 1 * * *", err, sizeof(err)) < 0)
 *         -> 400 naming err ("minute: 61 is out of range 0-59")
 *     zone = cx_cron_zone(&c) ? cx_cron_zone(&c) : schedule_timezone;    (the prefix wins)
 *     tz = cached_or(cx_tz_load(zone, err, sizeof(err)));                 (NULL + err: unknown zone)
 *     next = cx_cron_next(&c, tz, now);                                   (Unix seconds, > now)
 *
 * A next time costs a few hundred nanoseconds to a few microseconds: it jumps field by field (month,
 * day, hour, minute) through the calendar instead of stepping minutes, and asks the zone only for the
 * spans of constant UTC offset it crosses.
 */
#ifndef CONDUIX_CRON_H
#define CONDUIX_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "conduix/tz.h"

/* cx_cron_next has no answer (the next fire would be after year 9999, or `after` is out of range). */
#define CX_CRON_NONE INT64_MIN

/* The range of instants the engine answers for: 0001-01-01 to 9999-12-31T23:59:59Z. */
#define CX_CRON_MIN_TIME (-62135596800LL)
#define CX_CRON_MAX_TIME 253402300799LL

/* flags */
#define CX_CRON_EVERY 1u    /* @every: fires every `every` seconds of elapsed time; the fields are unused */
#define CX_CRON_DOM_STAR 2u /* the day-of-month field has a "*" or "?" (without a step above 1) */
#define CX_CRON_DOW_STAR 4u /* the same for day of week; with either, a day must match both fields */
#define CX_CRON_WILD 8u     /* the minute or hour field has a "*" or "?": DST shifts follow elapsed time */

/* cx_cron_t -- a compiled expression. Treat as read-only; its fields are public so tests and fuzzers
 * can check a fire time against them. */
typedef struct {
    uint64_t minute;               /* bit n: minute n (0-59) */
    uint32_t hour;                 /* bit n: hour n (0-23) */
    uint32_t dom;                  /* bit n: day of month n (1-31) */
    uint16_t month;                /* bit n: month n (1-12) */
    uint8_t dow;                   /* bit n: day of week n (0 = Sunday - 6) */
    uint8_t flags;                 /* CX_CRON_* */
    int64_t every;                 /* @every: the interval in whole seconds (at least 1) */
    char zone[CX_TZ_NAME_MAX + 1]; /* the CRON_TZ=/TZ= zone name, "" when there is none */
} cx_cron_t;

/* cx_cron_parse -- compile expr into c. 0, or CX_INVALID with a message in err naming the field and the
 * reason ("minute: 61 is out of range 0-59", "expected 5 fields, got 4", "day of week: unknown name
 * \"SUNDAY\"", "@every: duration must be at least 1s", "can never fire: day of month 30 does not occur in
 * February"). Messages are ASCII: bytes outside printable ASCII are shown as \xNN. The zone name of a
 * prefix is only checked for its shape here; loading it is the caller's (cx_tz_load). */
int cx_cron_parse(cx_cron_t *c, const char *expr, char *err, size_t errlen);

/* cx_cron_zone -- the zone named by the expression's CRON_TZ=/TZ= prefix, or NULL. */
const char *cx_cron_zone(const cx_cron_t *c);

/* cx_cron_next -- the first fire time strictly after `after` (Unix seconds), evaluated in zone tz (NULL:
 * UTC), or CX_CRON_NONE. Wall-clock times skipped by a DST change fire once at the end of the gap, and a
 * repeated wall-clock time fires once (its first occurrence), unless the minute or hour field is a
 * wildcard (CX_CRON_WILD): such a schedule follows elapsed time, like Vixie cron and cronie. */
int64_t cx_cron_next(const cx_cron_t *c, const cx_tz_t *tz, int64_t after);

/* cx_cron_upcoming -- the next n fire times after `after` into out; returns how many were found (fewer
 * than n only past year 9999). */
int cx_cron_upcoming(const cx_cron_t *c, const cx_tz_t *tz, int64_t after, int64_t *out, int n);

#endif
