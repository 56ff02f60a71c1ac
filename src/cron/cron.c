/*
 * cron.c -- the cron expression engine: parse robfig/cron v3's standard syntax into bit sets, and find
 * the next fire time in a time zone. Pure: no I/O, no globals, no allocation (the zone comes in as an
 * immutable cx_tz_t, see tz.h).
 *
 * Parsing follows robfig/cron v3.0.1's ParseStandard (parser.go) so that every expression the original
 * service accepted means the same here, with a few deliberate refusals where robfig silently accepts
 * nonsense (docs/schedules.md, "Differences from robfig/cron"): an empty list element, "*-5", an
 * expression that can never fire, @every below one second, an empty or missing zone name.
 *
 * Next fire times are computed on wall-clock time, span by span of constant UTC offset (tz.c): within a
 * span local time is UTC plus a constant, so the first matching wall-clock minute of the span is found by
 * jumping through the calendar with the bit sets; at a span boundary the DST rules decide (cx_cron_next).
 */
#include <stdio.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/cron.h"
#include "civil.h"
#include "msg.h"

typedef struct {
    const char *name;
    int min, max;
    const char *const *names; /* names[v - min], lowercase, or NULL */
} field_t;

static const char *const month_names[12] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const month_long[12] = {"January", "February", "March",     "April",   "May",      "June",
                                           "July",    "August",   "September", "October", "November", "December"};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, NFIELDS };
static const field_t fields[NFIELDS] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL}, {"day of month", 1, 31, NULL}, {"month", 1, 12, month_names},
    {"day of week", 0, 6, dow_names},
};

/* Longest piece of the user's input quoted in a message. */
#define SHOW_MAX 40

/* show -- a piece of the user's input for a message (msg.h). */
static const char *show(char out[SHOW_MAX * 4 + 4], const char *s, size_t len)
{
    return quote(out, s, len, SHOW_MAX);
}

/* parse_uint -- Go's strconv.Atoi restricted to what robfig lets through (an optional "+", then decimal
 * digits): 0 with the value, -1 if it is not a number, -2 if it is above INT64_MAX. */
static int parse_uint(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    if (len > 0 && s[0] == '+')
        i++;
    if (i == len)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (uint64_t)INT64_MAX / 10 || v * 10 + (uint64_t)(s[i] - '0') > (uint64_t)INT64_MAX) {
            for (i++; i < len; i++) /* a longer run of digits is still "too large", junk is "not a number" */
                if (s[i] < '0' || s[i] > '9')
                    return -1;
            return -2;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* parse_value -- one number or name of field f. */
static int parse_value(const field_t *f, const char *s, size_t len, const char *elem, size_t elen, int *out, char *err,
                       size_t errlen)
{
    char b1[SHOW_MAX * 4 + 4];
    uint64_t v;
    if (len == 0)
        return msg(err, errlen, "%s: missing number in \"%s\"", f->name, show(b1, elem, elen));
    if (f->names != NULL && is_alpha(s[0])) {
        for (int i = 0; len == 3 && i <= f->max - f->min; i++) {
            const char *n = f->names[i];
            if ((s[0] | 0x20) == n[0] && (s[1] | 0x20) == n[1] && (s[2] | 0x20) == n[2]) {
                *out = f->min + i;
                return 0;
            }
        }
        return msg(err, errlen, "%s: unknown name \"%s\"", f->name, show(b1, s, len));
    }
    int r = parse_uint(s, len, &v);
    if (r == -1)
        return msg(err, errlen, "%s: \"%s\" is not a number", f->name, show(b1, s, len));
    if (r == -2 || v < (uint64_t)f->min || v > (uint64_t)f->max)
        return msg(err, errlen, "%s: %s is out of range %d-%d%s", f->name, show(b1, s, len), f->min, f->max,
                   f->max == 6 && r == 0 && v == 7 ? " (Sunday is 0)" : "");
    *out = (int)v;
    return 0;
}

/* parse_elem -- one list element: "*", "?", "n", "a-b", each with an optional "/step" ("a/step" is
 * "a-max/step"). Sets the bits, *star for robfig's star bit ("*" or "?" with no step above 1, which
 * switches the day-of-month/day-of-week rule to "both must match"), *wild for any "*" or "?". */
static int parse_elem(const field_t *f, const char *s, size_t len, uint64_t *bits, int *star, int *wild, char *err, size_t errlen)
{
    char b1[SHOW_MAX * 4 + 4];
    const char *slash = memchr(s, '/', len);
    size_t rlen = slash != NULL ? (size_t)(slash - s) : len;
    int lo = 0, hi = 0, is_star = 0; /* set below on every path that reaches the range check */
    uint64_t step = 1;

    if (slash != NULL && memchr(slash + 1, '/', len - rlen - 1) != NULL)
        return msg(err, errlen, "%s: \"%s\" has more than one \"/\"", f->name, show(b1, s, len));
    if (rlen >= 1 && (s[0] == '*' || s[0] == '?') && (rlen == 1 || s[1] == '-')) {
        if (rlen > 1) /* robfig ignores whatever follows "*-" */
            return msg(err, errlen, "%s: \"%s\": a range cannot start with \"%c\"", f->name, show(b1, s, len), s[0]);
        lo = f->min;
        hi = f->max;
        is_star = 1;
    } else {
        const char *dash = memchr(s, '-', rlen);
        size_t l1 = dash != NULL ? (size_t)(dash - s) : rlen;
        if (dash != NULL && memchr(dash + 1, '-', rlen - l1 - 1) != NULL)
            return msg(err, errlen, "%s: \"%s\" has more than one \"-\"", f->name, show(b1, s, len));
        if (parse_value(f, s, l1, s, len, &lo, err, errlen) < 0)
            return CX_INVALID;
        if (dash != NULL) {
            if (parse_value(f, dash + 1, rlen - l1 - 1, s, len, &hi, err, errlen) < 0)
                return CX_INVALID;
        } else {
            hi = slash != NULL ? f->max : lo;
        }
    }
    if (slash != NULL) {
        const char *st = slash + 1;
        size_t sl = len - rlen - 1;
        int r = parse_uint(st, sl, &step);
        if (r == -1)
            return msg(err, errlen, "%s: step \"%s\" is not a number", f->name, show(b1, st, sl));
        if (r == -2)
            return msg(err, errlen, "%s: step %s is too large", f->name, show(b1, st, sl));
        if (step == 0)
            return msg(err, errlen, "%s: step must be at least 1 in \"%s\"", f->name, show(b1, s, len));
    }
    if (lo > hi)
        return msg(err, errlen, "%s: range \"%s\" is backwards (%d is after %d)", f->name, show(b1, s, rlen), lo, hi);
    for (uint64_t v = (uint64_t)lo;; v += step) {
        *bits |= (uint64_t)1 << v;
        if ((uint64_t)hi - v < step)
            break;
    }
    *star |= is_star && step == 1;
    *wild |= is_star;
    return 0;
}

/* parse_field -- a comma-separated list of elements. */
static int parse_field(const field_t *f, const char *s, size_t len, uint64_t *bits, int *star, int *wild, char *err, size_t errlen)
{
    char b1[SHOW_MAX * 4 + 4];
    const char *end = s + len;
    *bits = 0;
    for (const char *p = s;; p++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma != NULL ? comma : end;
        if (e == p) /* robfig drops empty elements; "," alone would then be a field that never matches */
            return msg(err, errlen, "%s: empty list element in \"%s\"", f->name, show(b1, s, len));
        if (parse_elem(f, p, (size_t)(e - p), bits, star, wild, err, errlen) < 0)
            return CX_INVALID;
        if (comma == NULL)
            return 0;
        p = comma;
    }
}

/* go_duration -- Go's time.ParseDuration (Go 1.19), to the nanosecond and with its overflow checks, so
 * that "@every" accepts exactly what robfig accepts: [-+]?([0-9]*(\.[0-9]*)?unit)+ or "0", units ns, us,
 * µs, μs, ms, s, m, h. 0 with the value, or -1. */
static int go_duration(const char *s, size_t len, int64_t *out)
{
    static const struct {
        const char *u;
        uint64_t ns;
    } units[] = {{"ns", 1},       {"us", 1000},         {"\xc2\xb5s", 1000},   {"\xce\xbcs", 1000},
                 {"ms", 1000000}, {"s", 1000000000ULL}, {"m", 60000000000ULL}, {"h", 3600000000000ULL}};
    const uint64_t top = (uint64_t)1 << 63;
    const char *end = s + len;
    uint64_t d = 0;
    int neg = 0;

    if (s < end && (*s == '-' || *s == '+'))
        neg = *s++ == '-';
    if (end - s == 1 && *s == '0') {
        *out = 0;
        return 0;
    }
    if (s == end)
        return -1;
    while (s < end) {
        uint64_t v = 0, f = 0, unit = 0;
        double scale = 1;
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            return -1;
        const char *p = s;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
            if (v > top / 10)
                return -1;
            v = v * 10 + (uint64_t)(*s - '0');
            if (v > top)
                return -1;
        }
        int pre = s != p, post = 0;
        if (s < end && *s == '.') {
            int overflow = 0;
            p = ++s;
            for (; s < end && *s >= '0' && *s <= '9'; s++) {
                if (overflow)
                    continue;
                if (f > (top - 1) / 10) {
                    overflow = 1;
                    continue;
                }
                uint64_t y = f * 10 + (uint64_t)(*s - '0');
                if (y > top) {
                    overflow = 1;
                    continue;
                }
                f = y;
                scale *= 10;
            }
            post = s != p;
        }
        if (!pre && !post)
            return -1;
        for (p = s; s < end && *s != '.' && !(*s >= '0' && *s <= '9'); s++)
            ;
        for (size_t i = 0; i < CX_ARRAY_SIZE(units); i++)
            if (strlen(units[i].u) == (size_t)(s - p) && memcmp(units[i].u, p, (size_t)(s - p)) == 0)
                unit = units[i].ns;
        if (unit == 0 || v > top / unit)
            return -1;
        v *= unit;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)unit / scale));
            if (v > top)
                return -1;
        }
        d += v; /* wraps like Go's uint64 when two terms of 2^63 add up */
        if (d > top)
            return -1;
    }
    if (neg)
        *out = d == top ? INT64_MIN : -(int64_t)d;
    else if (d > (uint64_t)INT64_MAX)
        return -1;
    else
        *out = (int64_t)d;
    return 0;
}

/* descriptor -- @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>. As
 * in robfig the name is matched exactly (lowercase, nothing after it). */
static int descriptor(cx_cron_t *c, const char *s, size_t len, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        uint32_t hour, dom;
        uint16_t month;
        uint8_t dow, flags;
    } named[] = {
        {"@yearly", 1, 1u << 1, 1u << 1, 0x7f, CX_CRON_DOW_STAR},
        {"@annually", 1, 1u << 1, 1u << 1, 0x7f, CX_CRON_DOW_STAR},
        {"@monthly", 1, 1u << 1, 0x1ffe, 0x7f, CX_CRON_DOW_STAR},
        {"@weekly", 1, 0xfffffffe, 0x1ffe, 1, CX_CRON_DOM_STAR},
        {"@daily", 1, 0xfffffffe, 0x1ffe, 0x7f, CX_CRON_DOM_STAR | CX_CRON_DOW_STAR},
        {"@midnight", 1, 0xfffffffe, 0x1ffe, 0x7f, CX_CRON_DOM_STAR | CX_CRON_DOW_STAR},
        {"@hourly", 0xffffff, 0xfffffffe, 0x1ffe, 0x7f, CX_CRON_DOM_STAR | CX_CRON_DOW_STAR | CX_CRON_WILD},
    };
    char b1[SHOW_MAX * 4 + 4];
    for (size_t i = 0; i < CX_ARRAY_SIZE(named); i++) {
        if (strlen(named[i].name) == len && memcmp(s, named[i].name, len) == 0) {
            c->minute = 1;
            c->hour = named[i].hour;
            c->dom = named[i].dom;
            c->month = named[i].month;
            c->dow = named[i].dow;
            c->flags |= named[i].flags;
            return 0;
        }
    }
    if (len >= 7 && memcmp(s, "@every ", 7) == 0) {
        int64_t ns;
        if (go_duration(s + 7, len - 7, &ns) < 0)
            return msg(err, errlen, "@every: \"%s\" is not a duration (like 90s, 10m or 1h30m)", show(b1, s + 7, len - 7));
        if (ns < 1000000000)
            return msg(err, errlen, "@every: duration must be at least 1s");
        c->every = ns / 1000000000; /* whole seconds, the rest dropped (robfig's Every) */
        c->flags |= CX_CRON_EVERY;
        return 0;
    }
    return msg(err, errlen,
               "unknown descriptor \"%s\" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or "
               "@every <duration>)",
               show(b1, s, len));
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

/* never_fires -- a message when no date can match: the day of month is "both must match" with a "*" day
 * of week, and every selected day is past the end of every selected month ("0 0 30 2 *"). */
static int never_fires(const cx_cron_t *c, char *err, size_t errlen)
{
    if (!(c->flags & CX_CRON_DOW_STAR) || (c->flags & CX_CRON_DOM_STAR))
        return 0;
    int longest = 0, first = __builtin_ctz(c->dom);
    for (int m = 1; m <= 12; m++)
        if ((c->month >> m & 1) && (m == 2 ? 29 : civil_mdays(2001, m)) > longest)
            longest = m == 2 ? 29 : civil_mdays(2001, m);
    if (first <= longest)
        return 0;
    char months[128];
    size_t o = 0;
    int n = __builtin_popcount(c->month), k = 0;
    for (int m = 1; m <= 12; m++)
        if (c->month >> m & 1)
            o += (size_t)snprintf(months + o, sizeof(months) - o, "%s%s",
                                  k++ == 0 ? ""
                                  : k == n ? " or "
                                           : ", ",
                                  month_long[m - 1]);
    return msg(err, errlen, "can never fire: day of month %d does not occur in %s", first, months);
}

int cx_cron_parse(cx_cron_t *c, const char *expr, char *err, size_t errlen)
{
    const char *s = expr, *end;

    memset(c, 0, sizeof(*c));
    if (s == NULL || *s == '\0')
        return msg(err, errlen, "empty expression");
    end = s + strlen(s);
    if (strncmp(s, "TZ=", 3) == 0 || strncmp(s, "CRON_TZ=", 8) == 0) {
        const char *eq = strchr(s, '='), *sp = strchr(s, ' ');
        if (sp == NULL) /* robfig panics here */
            return msg(err, errlen, "time zone: \"%.*s\" must be followed by a space and the schedule", (int)(eq - s + 1), s);
        size_t n = (size_t)(sp - eq - 1);
        char zone[CX_TZ_NAME_MAX + 2], why[200];
        if (n > CX_TZ_NAME_MAX + 1)
            n = CX_TZ_NAME_MAX + 1; /* too long either way: cx_tz_check_name says so */
        memcpy(zone, eq + 1, n);
        zone[n] = '\0';
        if (cx_tz_check_name(zone, why, sizeof(why)) < 0)
            return msg(err, errlen, "time zone: %s", why);
        memcpy(c->zone, zone, n + 1);
        for (s = sp; s < end && is_space(*s); s++) /* robfig trims what follows the prefix */
            ;
        while (end > s && is_space(end[-1]))
            end--;
    }
    if (s < end && *s == '@')
        return descriptor(c, s, (size_t)(end - s), err, errlen);

    const char *start[NFIELDS];
    size_t len[NFIELDS];
    int n = 0;
    for (const char *p = s; p < end;) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            break;
        const char *q = p;
        while (q < end && !is_space(*q))
            q++;
        if (n < NFIELDS) {
            start[n] = p;
            len[n] = (size_t)(q - p);
        }
        n++;
        p = q;
    }
    if (n != NFIELDS)
        return msg(err, errlen, "expected 5 fields, got %d", n);
    uint64_t bits[NFIELDS];
    int star[NFIELDS] = {0}, wild[NFIELDS] = {0};
    for (int i = 0; i < NFIELDS; i++)
        if (parse_field(&fields[i], start[i], len[i], &bits[i], &star[i], &wild[i], err, errlen) < 0)
            return CX_INVALID;
    c->minute = bits[F_MINUTE];
    c->hour = (uint32_t)bits[F_HOUR];
    c->dom = (uint32_t)bits[F_DOM];
    c->month = (uint16_t)bits[F_MONTH];
    c->dow = (uint8_t)bits[F_DOW];
    c->flags = (uint8_t)((star[F_DOM] ? CX_CRON_DOM_STAR : 0) | (star[F_DOW] ? CX_CRON_DOW_STAR : 0) |
                         (wild[F_MINUTE] || wild[F_HOUR] ? CX_CRON_WILD : 0));
    return never_fires(c, err, errlen);
}

const char *cx_cron_zone(const cx_cron_t *c)
{
    return c->zone[0] != '\0' ? c->zone : NULL;
}

/* ---- next fire time ---- */

/* day_mask -- bit d set for each day d of month m of year y on which the schedule may fire. */
static uint32_t day_mask(const cx_cron_t *c, int64_t y, int m)
{
    uint32_t valid = (uint32_t)(((uint64_t)1 << (civil_mdays(y, m) + 1)) - 2); /* bits 1..days */
    int w1 = civil_wday(civil_days(y, m, 1));
    uint64_t wm = 0;
    for (int k = 0; k < 7; k++) /* days 1+k, 8+k, 15+k, 22+k, 29+k share a weekday */
        if (c->dow >> ((w1 + k) % 7) & 1)
            wm |= (uint64_t)0x10204081 << (1 + k);
    uint32_t dm = c->dom & valid, wd = (uint32_t)wm & valid;
    return (c->flags & (CX_CRON_DOM_STAR | CX_CRON_DOW_STAR)) ? dm & wd : dm | wd;
}

static void next_day(int64_t *y, int *m, int *d)
{
    if (++*d > civil_mdays(*y, *m)) {
        *d = 1;
        if (++*m > 12)
            ++*y, *m = 1;
    }
}

/* match -- the first wall-clock minute at or after lo that matches the fields, if it is before hi; else
 * CX_CRON_NONE. Wall-clock times are "local seconds": seconds since 1970-01-01 00:00 on the local
 * calendar. Each step moves to the next candidate month, day, hour or minute, so the loop runs a few
 * times per month crossed at most. */
static int64_t match(const cx_cron_t *c, int64_t lo, int64_t hi)
{
    lo = civil_div(lo + 59, 60) * 60;
    int64_t days = civil_div(lo, CIVIL_DAY), y;
    int sod = (int)(lo - days * CIVIL_DAY), m, d, h = sod / 3600, mi = sod % 3600 / 60;
    civil_date(days, &y, &m, &d);
    for (;;) {
        int64_t w = civil_days(y, m, d) * CIVIL_DAY + (int64_t)h * 3600 + (int64_t)mi * 60;
        if (w >= hi)
            return CX_CRON_NONE;
        if (!(c->month >> m & 1)) { /* the next selected month, day 1, 00:00 */
            uint32_t later = (uint32_t)c->month & ~((2u << m) - 1);
            if (later != 0) {
                m = __builtin_ctz(later);
            } else {
                y++;
                m = __builtin_ctz(c->month);
            }
            d = 1, h = 0, mi = 0;
            continue;
        }
        uint32_t dm = day_mask(c, y, m) & ~((1u << d) - 1);
        if (dm == 0) { /* no day left in this month */
            if (++m > 12)
                y++, m = 1;
            d = 1, h = 0, mi = 0;
            continue;
        }
        if (__builtin_ctz(dm) != d)
            d = __builtin_ctz(dm), h = 0, mi = 0;
        uint32_t hm = c->hour & ~((1u << h) - 1);
        if (hm == 0) { /* no hour left today: tomorrow */
            next_day(&y, &m, &d);
            h = 0, mi = 0;
            continue;
        }
        if (__builtin_ctz(hm) != h)
            h = __builtin_ctz(hm), mi = 0;
        uint64_t mm = c->minute & ~(((uint64_t)1 << mi) - 1);
        if (mm == 0) { /* no minute left in this hour: the next hour */
            if (++h == 24) {
                next_day(&y, &m, &d);
                h = 0;
            }
            mi = 0;
            continue;
        }
        mi = __builtin_ctzll(mm);
        w = civil_days(y, m, d) * CIVIL_DAY + (int64_t)h * 3600 + (int64_t)mi * 60;
        return w < hi ? w : CX_CRON_NONE;
    }
}

/* How far ahead cx_cron_next looks: the rarest date a parsed expression can ask for, February 29th, can be
 * eight years away (2096 to 2104). */
#define HORIZON ((int64_t)11 * 366 * CIVIL_DAY)

/* cx_cron_next -- see cron.h. Span by span of constant offset from `after` on:
 *  - a fixed-time schedule (no "*" in minute or hour) whose wall-clock time falls in the gap a
 *    spring-forward leaves at the start of a span fires once, at the first instant after the gap;
 *  - after a fall-back a fixed-time schedule skips the wall-clock times the previous span already had,
 *    so a repeated time fires once, at its first occurrence;
 *  - a wildcard schedule ("*" or "?" in minute or hour, CX_CRON_WILD) fires at every instant whose wall
 *    clock matches: nothing for the missing times of a gap, both occurrences of a repeated hour;
 *  - @every adds whole seconds of elapsed time and ignores the zone. */
int64_t cx_cron_next(const cx_cron_t *c, const cx_tz_t *tz, int64_t after)
{
    if (after < CX_CRON_MIN_TIME || after >= CX_CRON_MAX_TIME)
        return CX_CRON_NONE;
    if (c->flags & CX_CRON_EVERY)
        return c->every > 0 && c->every <= CX_CRON_MAX_TIME - after ? after + c->every : CX_CRON_NONE;
    if (c->minute == 0 || c->hour == 0 || c->dom == 0 || c->month == 0 || c->dow == 0)
        return CX_CRON_NONE; /* not a parsed expression */

    int fixed = !(c->flags & CX_CRON_WILD);
    int64_t limit = after + HORIZON;
    cx_tz_span_t s;
    cx_tz_span(tz, after, &s);
    for (;;) {
        if (fixed && s.start > after && s.offset > s.prev_offset &&
            match(c, s.start + s.prev_offset, s.start + s.offset) != CX_CRON_NONE)
            return s.start;
        int64_t from = s.start > after ? s.start : after + 1;
        int64_t lo = from + s.offset;
        if (fixed && s.offset < s.prev_offset && s.start != INT64_MIN && lo < s.start + s.prev_offset)
            lo = s.start + s.prev_offset;
        int64_t hi = (s.end > limit ? limit : s.end) + s.offset;
        int64_t w = match(c, lo, hi);
        if (w != CX_CRON_NONE)
            return w - s.offset <= CX_CRON_MAX_TIME ? w - s.offset : CX_CRON_NONE;
        if (s.end >= limit)
            return CX_CRON_NONE;
        cx_tz_span(tz, s.end, &s);
    }
}

int cx_cron_upcoming(const cx_cron_t *c, const cx_tz_t *tz, int64_t after, int64_t *out, int n)
{
    int k = 0;
    for (; k < n; k++) {
        int64_t t = cx_cron_next(c, tz, after);
        if (t == CX_CRON_NONE)
            break;
        out[k] = after = t;
    }
    return k;
}
