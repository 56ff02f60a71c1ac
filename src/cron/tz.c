/*
 * tz.c -- time zones as spans of constant UTC offset, built from the bytes of a TZif file (tzfile(5),
 * RFC 8536) and the POSIX TZ rule of its footer. Pure: no I/O (tzfile.c reads the files), no globals, no
 * TZ/tzset(); a cx_tz_t is immutable once built.
 *
 * Only the UTC offset matters to the cron engine, so transitions that change nothing but the
 * abbreviation or the DST flag are merged away at load time. Instants before the first transition have
 * the offset of time type 0 (RFC 8536 section 3.2); instants after the last one follow the footer rule,
 * or keep the last offset when there is none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/tz.h"
#include "civil.h"
#include "msg.h"

/* A rule date of a POSIX TZ string: Jn (1-365, February 29th never counted), n (0-365) or Mm.w.d, and
 * the local time of day of the change in seconds (may be negative or past 24 h in version 3 strings). */
typedef struct {
    char kind; /* 'J', 'D' (plain n) or 'M' */
    int a, b, c;
    int32_t secs;
} rule_date_t;

typedef struct {
    int32_t std, dst; /* seconds east of UTC */
    int has_dst;
    rule_date_t start, end; /* DST starts at start (standard local time), ends at end (DST local time) */
} rule_t;

struct cx_tz {
    char *name;
    size_t n;     /* transitions, ascending, each one changing the offset */
    int64_t *at;  /* transition instants */
    int32_t *off; /* off[i]: the offset from at[i] on */
    int32_t off0; /* the offset before at[0] (or always, with no transitions and no rule) */
    int has_rule;
    rule_t rule;
};

/* Offsets beyond a day are nonsense in any real zone; RFC 8536 bounds them to -89999..93599. */
#define OFF_MIN (-89999)
#define OFF_MAX 93599
#define MAX_TRANSITIONS 100000
/* Instants this far out (about 34,800 years) are clamped before calendar arithmetic on rules. */
#define RULE_T_MAX ((int64_t)1 << 40)

int cx_tz_check_name(const char *name, char *err, size_t errlen)
{
    char b[CX_TZ_NAME_MAX * 4 + 4];
    size_t len = name == NULL ? 0 : strlen(name);
    if (len == 0)
        return msg(err, errlen, "empty zone name");
    if (len > CX_TZ_NAME_MAX)
        return msg(err, errlen, "zone name \"%s\" is longer than %d bytes", quote(b, name, len, 20), CX_TZ_NAME_MAX);
    /* Each component: non-empty, not "." or "..", made of [A-Za-z0-9_+.-]. */
    for (const char *c = name; *c != '\0';) {
        const char *e = c;
        while (*e != '\0' && *e != '/')
            e++;
        size_t n = (size_t)(e - c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            goto bad;
        for (const char *p = c; p < e; p++) {
            unsigned char ch = (unsigned char)*p;
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '+' ||
                  ch == '-' || ch == '.'))
                goto bad;
        }
        c = *e == '/' ? e + 1 : e;
        if (*e == '/' && *c == '\0')
            goto bad;
    }
    return 0;
bad:
    return msg(err, errlen, "\"%s\" is not a zone name", quote(b, name, len, CX_TZ_NAME_MAX));
}

const char *cx_tz_name(const cx_tz_t *z)
{
    return z == NULL ? "UTC" : z->name;
}

void cx_tz_free(cx_tz_t *z)
{
    if (z == NULL)
        return;
    free(z->name);
    free(z->at);
    free(z->off);
    free(z);
}

/* ---- POSIX TZ strings (the footer of a TZif file) ---- */

/* tz_name -- skip a zone abbreviation: <...> quoted, or at least three letters. */
static const char *tz_name(const char *s)
{
    const char *p = s;
    if (*p == '<') {
        for (p++; *p != '>'; p++)
            if (*p == '\0')
                return NULL;
        return p - s >= 4 ? p + 1 : NULL; /* at least three characters between the brackets */
    }
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    return p - s >= 3 ? p : NULL;
}

/* tz_num -- a decimal number of at most `digits` digits in [0, max]. */
static const char *tz_num(const char *s, int max, int *out)
{
    int v = 0, n = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        if (++n > 3 || v > max)
            return NULL;
    }
    if (n == 0)
        return NULL;
    *out = v;
    return s;
}

/* tz_time -- [+-]hh[:mm[:ss]] into seconds; hours up to max_h (24 for offsets, 167 for rule times). */
static const char *tz_time(const char *s, int max_h, int32_t *out)
{
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if ((s = tz_num(s, max_h, &h)) == NULL)
        return NULL;
    if (*s == ':') {
        if ((s = tz_num(s + 1, 59, &m)) == NULL)
            return NULL;
        if (*s == ':' && (s = tz_num(s + 1, 59, &sec)) == NULL)
            return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return s;
}

/* tz_date -- a rule date "Jn", "n" or "Mm.w.d", then an optional "/time" (default 02:00:00). */
static const char *tz_date(const char *s, rule_date_t *d)
{
    memset(d, 0, sizeof(*d));
    if (*s == 'J') {
        d->kind = 'J';
        if ((s = tz_num(s + 1, 365, &d->a)) == NULL || d->a < 1)
            return NULL;
    } else if (*s == 'M') {
        d->kind = 'M';
        if ((s = tz_num(s + 1, 12, &d->a)) == NULL || d->a < 1 || *s != '.')
            return NULL;
        if ((s = tz_num(s + 1, 5, &d->b)) == NULL || d->b < 1 || *s != '.')
            return NULL;
        if ((s = tz_num(s + 1, 6, &d->c)) == NULL)
            return NULL;
    } else {
        d->kind = 'D';
        if ((s = tz_num(s, 365, &d->a)) == NULL)
            return NULL;
    }
    d->secs = 7200;
    if (*s == '/')
        s = tz_time(s + 1, 167, &d->secs);
    return s;
}

/* tzstring_parse -- a POSIX TZ string into r; -1 if it is not one. Without rules a zone with DST gets the
 * US rules, as in glibc; zic always writes them. */
static int tzstring_parse(const char *s, rule_t *r)
{
    int32_t v;
    memset(r, 0, sizeof(*r));
    if ((s = tz_name(s)) == NULL || (s = tz_time(s, 24, &v)) == NULL)
        return -1;
    r->std = r->dst = -v;
    if (*s == '\0')
        return 0;
    if ((s = tz_name(s)) == NULL)
        return -1;
    r->has_dst = 1;
    r->dst = r->std + 3600;
    if (*s != ',' && *s != '\0') {
        if ((s = tz_time(s, 24, &v)) == NULL)
            return -1;
        r->dst = -v;
    }
    if (*s == '\0') {
        r->start = (rule_date_t){'M', 3, 2, 0, 7200};
        r->end = (rule_date_t){'M', 11, 1, 0, 7200};
        return 0;
    }
    if (*s != ',' || (s = tz_date(s + 1, &r->start)) == NULL || *s != ',' || (s = tz_date(s + 1, &r->end)) == NULL)
        return -1;
    return *s == '\0' ? 0 : -1;
}

/* rule_day -- days since 1970-01-01 of rule date d in year y. */
static int64_t rule_day(const rule_date_t *d, int64_t y)
{
    switch (d->kind) {
    case 'J': /* 1-365, February 29th is never counted */
        return civil_days(y, 1, 1) + d->a - 1 + (civil_leap(y) && d->a >= 60);
    case 'D': /* 0-365, February 29th counted */
        return civil_days(y, 1, 1) + d->a;
    default: { /* day d->c of week d->b (5 = the last) of month d->a */
        int64_t first = civil_days(y, d->a, 1);
        int day = 1 + (d->c - civil_wday(first) + 7) % 7 + (d->b - 1) * 7;
        while (day > civil_mdays(y, d->a))
            day -= 7;
        return first + day - 1;
    }
    }
}

typedef struct {
    int64_t at;
    int32_t off;
} change_t;

/* Years of rule changes looked at around an instant: enough to hold changes before and after it in any
 * rule that changes every year, and a whole leap-year cycle. */
#define RULE_YEARS 4

/* rule_changes -- the changes of years y-RULE_YEARS .. y+RULE_YEARS, sorted; of two changes at one instant
 * only the later one counts (DST all year: one year's DST ends when the next year's starts, so the year
 * after the window is computed too, for its ties only). */
static int rule_changes(const rule_t *r, int64_t t, change_t *ch)
{
    int64_t ct = t < -RULE_T_MAX ? -RULE_T_MAX : t > RULE_T_MAX ? RULE_T_MAX : t, y0, last = INT64_MIN;
    int m, d, n = 0;
    civil_date(civil_div(ct, CIVIL_DAY), &y0, &m, &d);
    for (int64_t y = y0 - RULE_YEARS; y <= y0 + RULE_YEARS + 1; y++) {
        change_t c[2] = {{rule_day(&r->start, y) * CIVIL_DAY + r->start.secs - r->std, r->dst},
                         {rule_day(&r->end, y) * CIVIL_DAY + r->end.secs - r->dst, r->std}};
        for (int k = 0; k < 2; k++) { /* insertion sort, stable for equal instants */
            if (y <= y0 + RULE_YEARS && c[k].at > last)
                last = c[k].at;
            int i = n++;
            while (i > 0 && ch[i - 1].at > c[k].at) {
                ch[i] = ch[i - 1];
                i--;
            }
            ch[i] = c[k];
        }
    }
    int k = 0;
    for (int i = 0; i < n && ch[i].at <= last; i++) {
        if (k > 0 && ch[k - 1].at == ch[i].at)
            k--;
        ch[k++] = ch[i];
    }
    return k;
}

/* rule_span -- the span containing t, for t at or after `base` (the last transition of the table, or
 * INT64_MIN), where the offset is base_off and was base_prev before base. Within the window of years
 * around t the rule's state is known from its own changes; a change that keeps the offset is none. When
 * the table ends inside the window, the state from base on is base_off until the rule changes it. */
static void rule_span(const rule_t *r, int64_t base, int32_t base_off, int32_t base_prev, int64_t t, cx_tz_span_t *out)
{
    change_t ch[4 * RULE_YEARS + 4];
    *out = (cx_tz_span_t){base, INT64_MAX, base_off, base_prev};
    if (!r->has_dst || r->dst == r->std)
        return;
    int n = rule_changes(r, t, ch), i = 0;
    if (n == 0) /* never: each year of the window has two changes; the table's state then holds */
        return;
    int known = base >= ch[0].at;
    int32_t cur = known ? base_off : ch[i++].off; /* before the window: the rule's own state */
    for (; i < n; i++) {
        if (ch[i].at <= base || ch[i].off == cur)
            continue;
        if (ch[i].at > t) {
            out->end = ch[i].at;
            break;
        }
        out->prev_offset = cur;
        out->start = ch[i].at;
        cur = ch[i].off;
        known = 1;
    }
    out->offset = cur;
    if (known || cur == base_off)
        return;
    /* The rule keeps one offset for years (DST all year) and the table ended long before: the rule's
     * offset took over at its first change after base that differs from base_off. */
    if (base == INT64_MIN) {
        out->prev_offset = cur;
        return;
    }
    n = rule_changes(r, base, ch);
    for (i = 0; i < n && (ch[i].at <= base || ch[i].off == base_off); i++)
        ;
    if (i == n || ch[i].at > t)
        *out = (cx_tz_span_t){base, i == n ? INT64_MAX : ch[i].at, base_off, base_prev};
    else
        out->start = ch[i].at, out->prev_offset = base_off;
}

void cx_tz_span(const cx_tz_t *z, int64_t t, cx_tz_span_t *out)
{
    if (z == NULL || (z->n == 0 && !z->has_rule)) {
        int32_t off = z == NULL ? 0 : z->off0;
        *out = (cx_tz_span_t){INT64_MIN, INT64_MAX, off, off};
        return;
    }
    if (z->n == 0) {
        rule_span(&z->rule, INT64_MIN, z->off0, z->off0, t, out);
        return;
    }
    if (t < z->at[0]) {
        *out = (cx_tz_span_t){INT64_MIN, z->at[0], z->off0, z->off0};
        return;
    }
    size_t lo = 0, hi = z->n; /* the last transition at or before t is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    int32_t prev = lo > 0 ? z->off[lo - 1] : z->off0;
    if (lo + 1 < z->n) {
        *out = (cx_tz_span_t){z->at[lo], z->at[lo + 1], z->off[lo], prev};
        return;
    }
    if (z->has_rule)
        rule_span(&z->rule, z->at[lo], z->off[lo], prev, t, out);
    else
        *out = (cx_tz_span_t){z->at[lo], INT64_MAX, z->off[lo], prev};
}

int32_t cx_tz_offset(const cx_tz_t *z, int64_t t)
{
    cx_tz_span_t s;
    cx_tz_span(z, t, &s);
    return s.offset;
}

/* ---- TZif ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static cx_tz_t *tz_new(const char *name)
{
    cx_tz_t *z = cx_calloc(1, sizeof(*z));
    z->name = cx_strdup(name);
    return z;
}

cx_tz_t *cx_tz_posix(const char *name, const char *tzstring, char *err, size_t errlen)
{
    rule_t r;
    if (tzstring == NULL || tzstring_parse(tzstring, &r) < 0 || r.std < OFF_MIN || r.std > OFF_MAX || r.dst < OFF_MIN ||
        r.dst > OFF_MAX) {
        char b[40 * 4 + 4];
        const char *s = tzstring ? tzstring : "";
        msg(err, errlen, "time zone %s: \"%s\" is not a POSIX TZ string", name, quote(b, s, strlen(s), 40));
        return NULL;
    }
    cx_tz_t *z = tz_new(name);
    z->off0 = r.std;
    z->has_rule = r.has_dst;
    z->rule = r;
    return z;
}

/* Header fields of a TZif file (RFC 8536 section 3.1). */
enum { ISUTCNT, ISSTDCNT, LEAPCNT, TIMECNT, TYPECNT, CHARCNT };
#define HEADER 44

static void counts(const unsigned char *h, uint64_t c[6])
{
    for (int i = 0; i < 6; i++)
        c[i] = be32(h + 20 + (size_t)4 * i);
}

/* block_size -- bytes of the data block after a header, with transition times of tsize bytes. */
static uint64_t block_size(const uint64_t c[6], int tsize)
{
    return c[TIMECNT] * (uint64_t)(tsize + 1) + c[TYPECNT] * 6 + c[CHARCNT] + c[LEAPCNT] * (uint64_t)(tsize + 4) + c[ISSTDCNT] +
           c[ISUTCNT];
}

cx_tz_t *cx_tz_parse(const char *name, const void *data, size_t len, char *err, size_t errlen)
{
    const unsigned char *p = data, *end = p + len;
    const char *why = "not a TZif file";
    uint64_t c[6];
    int tsize = 4;
    cx_tz_t *z = NULL;

    if (len < HEADER || memcmp(p, "TZif", 4) != 0)
        goto bad;
    counts(p, c);
    if (p[4] >= '2') { /* skip the 32-bit block: the 64-bit one follows its own header */
        uint64_t skip = HEADER + block_size(c, 4);
        if (skip + HEADER > len || memcmp(p + skip, "TZif", 4) != 0)
            goto bad;
        p += skip;
        counts(p, c);
        tsize = 8;
    }
    p += HEADER;
    why = "truncated or corrupt TZif file";
    if (c[TIMECNT] > MAX_TRANSITIONS || c[TYPECNT] == 0 || c[TYPECNT] > 256 || c[CHARCNT] > 65536 || c[LEAPCNT] > MAX_TRANSITIONS ||
        (c[ISSTDCNT] != 0 && c[ISSTDCNT] != c[TYPECNT]) || (c[ISUTCNT] != 0 && c[ISUTCNT] != c[TYPECNT]) ||
        block_size(c, tsize) > (uint64_t)(end - p))
        goto bad;
    if (c[LEAPCNT] != 0) {
        why = "leap-second zones are not supported";
        goto bad;
    }
    const unsigned char *times = p, *idx = p + c[TIMECNT] * tsize, *types = idx + c[TIMECNT];
    int32_t offs[256];
    for (uint64_t i = 0; i < c[TYPECNT]; i++) {
        offs[i] = (int32_t)be32(types + 6 * i);
        if (offs[i] < OFF_MIN || offs[i] > OFF_MAX)
            goto bad;
    }
    z = tz_new(name);
    // cppcheck-suppress uninitvar ; c[TYPECNT] >= 1 was checked above, so the loop set offs[0]
    z->off0 = offs[0];
    z->at = cx_malloc((c[TIMECNT] ? c[TIMECNT] : 1) * sizeof(*z->at));
    z->off = cx_malloc((c[TIMECNT] ? c[TIMECNT] : 1) * sizeof(*z->off));
    int32_t cur = z->off0;
    int64_t last = INT64_MIN;
    for (uint64_t i = 0; i < c[TIMECNT]; i++) {
        int64_t at = tsize == 8 ? be64(times + 8 * i) : (int64_t)(int32_t)be32(times + 4 * i);
        if ((i > 0 && at <= last) || idx[i] >= c[TYPECNT])
            goto bad;
        last = at;
        if (offs[idx[i]] == cur)
            continue;
        cur = offs[idx[i]];
        z->at[z->n] = at;
        z->off[z->n++] = cur;
    }
    if (tsize == 8) { /* the footer: "\n" POSIX-TZ-string "\n" */
        const unsigned char *f = p + block_size(c, tsize);
        if (f >= end || *f != '\n')
            goto bad;
        const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
        if (nl == NULL || nl - f - 1 > 255)
            goto bad;
        char tzs[256];
        memcpy(tzs, f + 1, (size_t)(nl - f - 1));
        tzs[nl - f - 1] = '\0';
        if (tzs[0] != '\0') {
            why = "bad POSIX TZ string in the footer";
            if (tzstring_parse(tzs, &z->rule) < 0 || z->rule.std < OFF_MIN || z->rule.std > OFF_MAX || z->rule.dst < OFF_MIN ||
                z->rule.dst > OFF_MAX)
                goto bad;
            z->has_rule = z->rule.has_dst;
            if (z->n == 0 && !z->has_rule)
                z->off0 = z->rule.std;
        }
    }
    return z;
bad:
    cx_tz_free(z);
    msg(err, errlen, "time zone %s: %s", name, why);
    return NULL;
}
