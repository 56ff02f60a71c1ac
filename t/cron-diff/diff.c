/*
 * diff.c -- the differential test of the cron engine against robfig/cron v3.0.1, the library of the
 * original service (t/cron-diff/oracle.go, built with Debian's Go against Debian's
 * golang-github-robfig-cron-dev).
 *
 * Generates several thousand expressions (random fields, steps, ranges, lists, names in any case,
 * descriptors, @every, CRON_TZ=/TZ= prefixes, and malformed ones) with a zone and a start instant (often
 * just before a DST change), asks both engines for the accept/refuse verdict and a chain of next fire
 * times, and compares. A difference is either one of the documented, deliberate deviations
 * (docs/schedules.md), each recognised by a specific check and counted by kind, or a failure.
 *
 * TAP output; environment: CX_CRON_ORACLE (the oracle binary; default $CX_BUILDDIR/t/cron-diff/
 * robfig-oracle), CX_CRON_DIFF_N (cases, default 6000), CX_CRON_DIFF_SEED (default fixed), CX_CRON_DIFF_V=1
 * prints every excused case.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conduix/cron.h"
#include "conduix/cx.h"

#define CHAIN 5
#define EXPR_MAX 512

static const char *const zones[] = {
    "UTC",           "America/New_York",    "Europe/London",   "Australia/Sydney", "Asia/Seoul",
    "Europe/Dublin", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata",     "America/St_Johns",
    "Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo",      "Pacific/Auckland",
};
#define NZONES (int)(sizeof(zones) / sizeof(zones[0]))

/* ---- a small deterministic generator (splitmix64) ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* below -- uniform in [0, n). */
static int below(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

/* chance -- true with probability pct percent. */
static int chance(int pct)
{
    return below(100) < pct;
}

typedef struct {
    char *p;
    size_t n;
} buf_t;

static void put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, EXPR_MAX - b->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        b->n = b->n + (size_t)k < EXPR_MAX ? b->n + (size_t)k : EXPR_MAX - 1;
}

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const int fmin[5] = {0, 0, 1, 1, 0}, fmax[5] = {59, 23, 31, 12, 6};

/* value -- a value of field f: a number, sometimes a name in random case, rarely out of range. */
static void value(buf_t *b, int f, int v)
{
    if ((f == 3 || f == 4) && v >= fmin[f] && v <= fmax[f] && chance(35)) {
        const char *n = f == 3 ? month_names[v - 1] : dow_names[v];
        for (int i = 0; i < 3; i++)
            put(b, "%c", chance(50) ? n[i] - 32 : n[i]);
        return;
    }
    if (chance(3))
        put(b, chance(50) ? "0%d" : "+%d", v);
    else
        put(b, "%d", v);
}

static int pick(int f)
{
    if (chance(2)) /* out of range: just above the top, or 0 for day of month and month */
        return chance(50) ? fmax[f] + 1 : (fmin[f] > 0 ? 0 : fmax[f] + 1 + below(5));
    return fmin[f] + below(fmax[f] - fmin[f] + 1);
}

static void elem(buf_t *b, int f)
{
    int r = below(100), lo = pick(f), hi = pick(f), step = 1 + below(fmax[f] / 2 + 2);
    if (lo > hi && chance(90)) {
        int t = lo;
        lo = hi, hi = t;
    }
    if (chance(2))
        step = 0;
    if (r < 18)
        put(b, chance(85) ? "*" : "?");
    else if (r < 45)
        value(b, f, lo);
    else if (r < 63)
        value(b, f, lo), put(b, "-"), value(b, f, hi);
    else if (r < 76)
        put(b, "%s/%d", chance(85) ? "*" : "?", chance(10) ? 1 : step);
    else if (r < 88)
        value(b, f, lo), put(b, "-"), value(b, f, hi), put(b, "/%d", step);
    else if (r < 96)
        value(b, f, lo), put(b, "/%d", step);
    else { /* malformed */
        static const char *const junk[] = {"*-5",
                                           "?-1",
                                           "1-2-3",
                                           "1/2/3",
                                           "x",
                                           "-5",
                                           "5-",
                                           "/5",
                                           "*/",
                                           "1,",
                                           ",",
                                           "**",
                                           "99999999999999999999",
                                           "*/99999999999999999999",
                                           "*/+2",
                                           "1-",
                                           "monday",
                                           "sunday",
                                           "7",
                                           "L",
                                           "1#2",
                                           "5L",
                                           "*/-1"};
        put(b, "%s", junk[below((int)(sizeof(junk) / sizeof(junk[0])))]);
    }
}

static void field(buf_t *b, int f)
{
    int n = chance(75) ? 1 : 2 + below(3);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            put(b, chance(2) ? ",," : ",");
        elem(b, f);
    }
}

static void duration(buf_t *b)
{
    static const char *const fixed[] = {"1s",  "90s",    "1h30m",    "10m",          "1.5s",          "500ms",       "0",
                                        "-5s", "0.5h",   "1e3s",     "1500000000ns", "1m30.5s",       "2h",          "24h",
                                        "1",   "s",      ".5m",      "1.s",          "36h",           "10\xc2\xb5s", "+90s",
                                        "00",  "1h1h",   "2562047h", "2562048h",     "1.0000000001s", "59s",         "60s",
                                        "1d",  "1h 30m", "5m0s",     "0.999999999s"};
    if (chance(50))
        put(b, "%s", fixed[below((int)(sizeof(fixed) / sizeof(fixed[0])))]);
    else
        put(b, "%dm%ds", below(200), below(60));
}

static void zone_prefix(buf_t *b)
{
    static const char *const odd[] = {"", "Local", "Nope/Zone", "America//New_York", "./UTC", "UTC", "Etc/GMT+5"};
    put(b, chance(50) ? "CRON_TZ=" : "TZ=");
    put(b, "%s", chance(85) ? zones[below(NZONES)] : odd[below((int)(sizeof(odd) / sizeof(odd[0])))]);
    if (!chance(3)) /* without the space robfig panics */
        put(b, " ");
}

/* targeted -- a schedule aimed at the wall-clock hour just before an offset change (the hour a
 * spring-forward skips or a fall-back repeats), fixed or wildcard. */
static void targeted(buf_t *b, int hour)
{
    static const char *const minutes[] = {"0", "30", "15", "45", "59", "1", "*/15", "*", "0,30", "10-20"};
    const char *mi = minutes[below((int)(sizeof(minutes) / sizeof(minutes[0])))];
    switch (below(4)) {
    case 0:
        put(b, "%s %d * * *", mi, hour);
        break;
    case 1:
        put(b, "%s %d,%d * * *", mi, hour, (hour + 1) % 24);
        break;
    case 2:
        put(b, "%s * * * *", mi);
        break;
    default:
        put(b, "%s %d-%d * * %s", mi, hour > 0 ? hour - 1 : 0, hour, chance(50) ? "*" : "0");
    }
}

static void expression(char *out, int dst_hour)
{
    buf_t b = {out, 0};
    out[0] = '\0';
    if (dst_hour >= 0 && chance(35)) {
        targeted(&b, dst_hour);
        return;
    }
    if (chance(8))
        zone_prefix(&b);
    int r = below(100);
    if (r < 7) {
        static const char *const d[] = {"@yearly", "@annually", "@monthly", "@weekly", "@daily",  "@midnight",
                                        "@hourly", "@Daily",    "@daily ",  "@every",  "@reboot", "@HOURLY"};
        put(&b, "%s", d[below((int)(sizeof(d) / sizeof(d[0])))]);
    } else if (r < 13) {
        put(&b, "@every ");
        duration(&b);
    } else if (r < 15) { /* a date that rarely or never exists */
        static const char *const d[] = {"0 0 30 2 *",
                                        "0 0 31 4,6 *",
                                        "0 0 29 2 *",
                                        "0 0 31 2,4 ?",
                                        "0 0 31 */2 *",
                                        "0 0 30,31 feb *",
                                        "0 12 31 apr,jun,sep,nov *",
                                        "0 0 29 2 mon"};
        put(&b, "%s", d[below((int)(sizeof(d) / sizeof(d[0])))]);
    } else {
        int n = chance(3) ? (chance(50) ? 4 : 6) : 5;
        for (int i = 0; i < n; i++) {
            if (i > 0)
                put(&b, "%s", chance(95) ? " " : chance(50) ? "\t" : chance(50) ? "  " : "\xc2\xa0");
            field(&b, i < 5 ? i : 0);
        }
    }
}

/* start -- an instant between 2000 and 2037, in four cases of ten at most three days before an offset
 * change; then *dst_hour is the wall-clock hour just before the change (else -1). */
static int64_t start_time(const cx_tz_t *z, int *dst_hour)
{
    int64_t t = 946684800 + (int64_t)(rnd() % (uint64_t)(38LL * 365 * 86400));
    *dst_hour = -1;
    if (chance(40)) {
        cx_tz_span_t s;
        cx_tz_span(z, t, &s);
        if (s.end != INT64_MAX) {
            *dst_hour = (int)(((s.end - 1 + s.offset) % 86400 + 86400) % 86400 / 3600);
            t = s.end - (int64_t)(rnd() % (3 * 86400));
        }
    }
    if (chance(50))
        t -= t % 60;
    return t;
}

/* ---- comparison ---- */

enum {
    K_EMPTY_ELEM,
    K_STAR_RANGE,
    K_NEVER,
    K_EVERY_MIN,
    K_TZ_EMPTY,
    K_TZ_LOCAL,
    K_TZ_NAME,
    K_UNICODE_SPACE,
    K_DST_GAP,
    K_DST_REPEAT,
    K_ROBFIG_ODD,
    K_ROBFIG_BAD,
    NKINDS
};
static const char *const kind_names[NKINDS] = {"empty list element refused",
                                               "\"*-n\" refused",
                                               "never-firing expression refused",
                                               "@every below 1s refused",
                                               "empty zone name refused",
                                               "zone \"Local\" refused",
                                               "zone name with an empty/./.. component refused",
                                               "Unicode space is not a separator",
                                               "DST gap: fixed time fires at the end of the gap",
                                               "DST repeat: fixed time fires once",
                                               "robfig skips a fire after a change off the hour",
                                               "robfig answers a time that does not match or advance"};

typedef struct {
    long cases, both_refused, both_accepted, chains_equal, fails;
    long excused[NKINDS];
} stats_t;

/* has_unicode_space -- robfig's strings.Fields also splits on U+0085, U+00A0 and the other Unicode spaces. */
static int has_unicode_space(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++)
        if ((p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0)) || (p[0] == 0xe2 && p[1] == 0x80) || (p[0] == 0xe1 && p[1] == 0x9a) ||
            (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80))
            return 1;
    return 0;
}

static void hexenc(const char *s, char *out)
{
    for (; *s; s++, out += 2)
        sprintf(out, "%02x", (unsigned char)*s);
    *out = '\0';
}

static int verbose;

static void note(const char *what, const char *zone, int64_t start, const char *expr, const char *detail)
{
    printf("# %s: zone %s start %lld expr \"%s\": %s\n", what, zone, (long long)start, expr, detail);
}

/* verdict_excuse -- the kind of a refusal of ours that robfig accepts, or -1 if it is not a known one. */
static int verdict_excuse(const char *expr, const char *err, const char *oracle, int64_t start)
{
    if (has_unicode_space(expr))
        return K_UNICODE_SPACE;
    if (strstr(err, "empty list element"))
        return K_EMPTY_ELEM;
    if (strstr(err, "a range cannot start with"))
        return K_STAR_RANGE;
    if (strstr(err, "can never fire"))
        return strcmp(oracle, "ok never") == 0 ? K_NEVER : -1;
    if (strstr(err, "@every: duration must be at least 1s")) {
        char want[64];
        snprintf(want, sizeof(want), "ok %lld ", (long long)start + 1); /* robfig rounds up to 1s */
        return strncmp(oracle, want, strlen(want)) == 0 ? K_EVERY_MIN : -1;
    }
    if (strstr(err, "empty zone name"))
        return K_TZ_EMPTY;
    if (strstr(err, "unknown time zone \"Local\""))
        return K_TZ_LOCAL;
    if (strstr(err, "is not a zone name") && (strstr(expr, "//") || strstr(expr, "./")))
        return K_TZ_NAME;
    return -1;
}

/* wall_matches -- whether the wall clock at instant t in zone z matches the fields; checked with the C
 * library's gmtime_r, not with the engine's calendar code. */
static int wall_matches(const cx_cron_t *c, const cx_tz_t *z, int64_t t)
{
    time_t w = (time_t)(t + cx_tz_offset(z, t));
    struct tm tm;
    gmtime_r(&w, &tm);
    int dom = (c->dom >> tm.tm_mday) & 1, dow = (c->dow >> tm.tm_wday) & 1;
    int day = (c->flags & (CX_CRON_DOM_STAR | CX_CRON_DOW_STAR)) ? dom && dow : dom || dow;
    return tm.tm_sec == 0 && ((c->minute >> tm.tm_min) & 1) && ((c->hour >> tm.tm_hour) & 1) &&
           ((c->month >> (tm.tm_mon + 1)) & 1) && day;
}

/* odd_change -- whether an offset change in (from, to] is not a whole number of hours or does not happen
 * on the hour: robfig steps hours in elapsed time, so after such a change its hour loop lands at hh:30
 * (Lord Howe's 30-minute DST) or hh:01 (St. John's before 2011) and skips the fires of that hour. */
static int odd_change(const cx_tz_t *z, int64_t from, int64_t to)
{
    cx_tz_span_t s;
    for (cx_tz_span(z, from, &s); s.end != INT64_MAX && s.end <= to; cx_tz_span(z, s.end, &s)) {
        int32_t before = s.offset;
        cx_tz_span(z, s.end, &s);
        if ((s.offset - before) % 3600 != 0 || (s.start + before) % 3600 != 0)
            return 1;
        cx_tz_span(z, s.start - 1, &s);
    }
    return 0;
}

/* repeat -- whether t's wall-clock time already existed in the span before (t is in the second
 * occurrence of a repeated hour). */
static int repeat(const cx_tz_t *z, int64_t t)
{
    cx_tz_span_t s;
    cx_tz_span(z, t, &s);
    return s.start != INT64_MIN && s.offset < s.prev_offset && t + s.offset < s.start + s.prev_offset;
}

/* gap_fire -- whether t is the end of a spring-forward gap that holds a matching wall-clock minute. */
static int gap_fire(const cx_cron_t *c, const cx_tz_t *z, int64_t t)
{
    cx_tz_span_t s;
    cx_tz_span(z, t, &s);
    if (s.start != t || s.offset <= s.prev_offset)
        return 0;
    for (int64_t w = t + s.prev_offset; w < t + s.offset; w += 60) { /* the missing wall-clock minutes */
        time_t tw = (time_t)w;
        struct tm tm;
        gmtime_r(&tw, &tm);
        int dom = (c->dom >> tm.tm_mday) & 1, dow = (c->dow >> tm.tm_wday) & 1;
        int day = (c->flags & (CX_CRON_DOM_STAR | CX_CRON_DOW_STAR)) ? dom && dow : dom || dow;
        if (((c->minute >> tm.tm_min) & 1) && ((c->hour >> tm.tm_hour) & 1) && ((c->month >> (tm.tm_mon + 1)) & 1) && day)
            return 1;
    }
    return 0;
}

/* valid -- whether instant t is a fire time under our DST rules (docs/schedules.md), decided minute by
 * minute from the fields alone: the reference the engine's answer is checked against. */
static int valid(const cx_cron_t *c, const cx_tz_t *z, int64_t t)
{
    if (c->flags & CX_CRON_WILD)
        return wall_matches(c, z, t);
    return (wall_matches(c, z, t) && !repeat(z, t)) || gap_fire(c, z, t);
}

/* first_valid -- whether t is valid and no instant in (prev, t) is (a linear scan, minute by minute:
 * the zones of the test change offsets on whole minutes). */
static int first_valid(const cx_cron_t *c, const cx_tz_t *z, int64_t prev, int64_t t)
{
    if (t <= prev || t - prev > 10LL * 366 * 86400 || !valid(c, z, t))
        return 0;
    for (int64_t u = prev - ((prev % 60) + 60) % 60 + 60; u < t; u += 60)
        if (valid(c, z, u))
            return 0;
    return 1;
}

/* time_excuse -- the kind of the first difference between our chain and robfig's, or -1. Our answer must
 * first pass the minute-by-minute reference (first_valid); then robfig's is explained:
 *  - it does not match the fields at all, or does not come after the previous fire (robfig bugs after
 *    offset changes that are not on the hour: St. John's 00:01, Chatham's 02:45, Lord Howe's 30 minutes);
 *  - it is the second occurrence of a repeated wall-clock time of a fixed-time schedule (DST repeat);
 *  - it is later than ours, and ours is the end of a gap holding the schedule's time (DST gap), or an
 *    offset change off the hour made robfig's hour loop skip ours. */
static int time_excuse(const cx_cron_t *c, const cx_tz_t *z, int64_t prev, int64_t ours, int64_t theirs)
{
    if ((c->flags & CX_CRON_EVERY) || ours == CX_CRON_NONE || !first_valid(c, z, prev, ours))
        return -1;
    if (theirs <= prev || !wall_matches(c, z, theirs))
        return K_ROBFIG_BAD;
    if (!(c->flags & CX_CRON_WILD) && repeat(z, theirs))
        return K_DST_REPEAT;
    if (theirs < ours)
        return -1;
    if (!(c->flags & CX_CRON_WILD) && gap_fire(c, z, ours))
        return K_DST_GAP;
    if (odd_change(z, prev, theirs))
        return K_ROBFIG_ODD;
    return -1;
}

static void compare(stats_t *st, const char *zone, int64_t start, const char *expr, const char *oracle)
{
    char err[256] = "", detail[8192];
    cx_cron_t c;
    cx_tz_t *z = NULL;
    int ours_ok = cx_cron_parse(&c, expr, err, sizeof(err)) == 0;
    if (ours_ok) {
        const char *zn = cx_cron_zone(&c) ? cx_cron_zone(&c) : zone;
        if ((z = cx_tz_load(zn, err, sizeof(err))) == NULL)
            ours_ok = 0;
    }
    int theirs_ok = strncmp(oracle, "ok", 2) == 0;
    st->cases++;
    if (!ours_ok && !theirs_ok) {
        st->both_refused++;
        goto out;
    }
    if (ours_ok != theirs_ok) {
        int k = ours_ok ? -1 : verdict_excuse(expr, err, oracle, start);
        if (k >= 0) {
            st->excused[k]++;
            if (verbose)
                note(kind_names[k], zone, start, expr, oracle);
        } else {
            snprintf(detail, sizeof(detail), "we %s (%s), robfig: %s", ours_ok ? "accept" : "refuse", err, oracle);
            note("VERDICT DIFFERS", zone, start, expr, detail);
            st->fails++;
        }
        goto out;
    }
    st->both_accepted++;
    int64_t prev = start;
    const char *p = oracle + 2;
    for (int i = 0; i < CHAIN; i++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        int never = strncmp(p, "never", 5) == 0;
        int64_t theirs = never ? CX_CRON_NONE : strtoll(p, (char **)&p, 10);
        int64_t ours = cx_cron_next(&c, z, prev);
        if (ours == theirs) {
            if (never)
                break;
            prev = ours;
            continue;
        }
        int k = never ? -1 : time_excuse(&c, z, prev, ours, theirs);
        if (k >= 0) {
            st->excused[k]++;
            if (verbose)
                note(kind_names[k], zone, start, expr, oracle);
        } else {
            snprintf(detail, sizeof(detail), "fire %d after %lld: ours %lld, robfig %lld (%s)", i + 1, (long long)prev,
                     (long long)ours, (long long)theirs, oracle);
            note("TIMES DIFFER", zone, start, expr, detail);
            st->fails++;
        }
        goto out;
    }
    st->chains_equal++;
out:
    cx_tz_free(z);
}

int main(void)
{
    const char *n_env = getenv("CX_CRON_DIFF_N"), *seed_env = getenv("CX_CRON_DIFF_SEED");
    const char *oracle = getenv("CX_CRON_ORACLE"), *builddir = getenv("CX_BUILDDIR");
    long n = n_env ? atol(n_env) : 6000;
    char path[4096], cmd[8192], in_path[] = "/tmp/cx-cron-diff-XXXXXX";
    verbose = getenv("CX_CRON_DIFF_V") != NULL;
    rng_state = seed_env ? strtoull(seed_env, NULL, 0) : 20240310;
    if (oracle == NULL) {
        snprintf(path, sizeof(path), "%s/t/cron-diff/robfig-oracle", builddir ? builddir : ".");
        oracle = path;
    }
    printf("1..3\n");
    if (access(oracle, X_OK) != 0) {
        printf("not ok 1 - the robfig/cron oracle %s is missing: make check builds it with Go "
               "(Debian: golang-go golang-github-robfig-cron-dev, see scripts/deps)\n",
               oracle);
        return 1;
    }

    /* The cases, to a file for the oracle. */
    int fd = mkstemp(in_path);
    FILE *in = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (in == NULL) {
        printf("not ok 1 - cannot create %s\n", in_path);
        return 1;
    }
    char(*exprs)[EXPR_MAX] = cx_malloc((size_t)n * EXPR_MAX);
    int *zi = cx_malloc((size_t)n * sizeof(int));
    int64_t *starts = cx_malloc((size_t)n * sizeof(int64_t));
    cx_tz_t *loaded[NZONES];
    for (int i = 0; i < NZONES; i++) {
        char err[256];
        if ((loaded[i] = cx_tz_load(zones[i], err, sizeof(err))) == NULL) {
            printf("not ok 1 - %s (is tzdata installed?)\n", err);
            return 1;
        }
    }
    char hex[EXPR_MAX * 2 + 1];
    for (long i = 0; i < n; i++) {
        zi[i] = below(NZONES);
        int dst_hour;
        starts[i] = start_time(loaded[zi[i]], &dst_hour);
        expression(exprs[i], dst_hour);
        hexenc(exprs[i], hex);
        fprintf(in, "%s\t%lld\t%s\n", zones[zi[i]], (long long)starts[i], hex);
    }
    fclose(in);

    snprintf(cmd, sizeof(cmd), "TZ=UTC '%s' -n %d < '%s'", oracle, CHAIN, in_path);
    FILE *out = popen(cmd, "r");
    stats_t st = {0};
    char line[4096];
    long got = 0;
    while (out != NULL && got < n && fgets(line, sizeof(line), out) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        compare(&st, zones[zi[got]], starts[got], exprs[got], line);
        got++;
    }
    int rc = out != NULL ? pclose(out) : -1;
    unlink(in_path);
    printf("%s 1 - the robfig/cron oracle answered %ld of %ld cases (exit %d)\n", got == n && rc == 0 ? "ok" : "not ok", got, n,
           rc);

    long excused = 0;
    for (int k = 0; k < NKINDS; k++)
        excused += st.excused[k];
    printf("# %ld cases: %ld refused by both, %ld accepted by both, %ld fire-time chains of %d equal, %ld excused "
           "differences, %ld failures\n",
           st.cases, st.both_refused, st.both_accepted, st.chains_equal, CHAIN, excused, st.fails);
    for (int k = 0; k < NKINDS; k++)
        printf("# excused: %-50s %ld\n", kind_names[k], st.excused[k]);
    printf("%s 2 - every difference is a documented deviation (%ld excused, %ld not)\n", st.fails == 0 ? "ok" : "not ok", excused,
           st.fails);
    /* The generator must reach both verdicts, the DST cases and most deviations, or the test proves little. */
    int covered = st.both_refused > n / 20 && st.chains_equal > n / 2 && st.excused[K_DST_GAP] > 0 &&
                  st.excused[K_DST_REPEAT] > 0 && st.excused[K_NEVER] > 0 && st.excused[K_EVERY_MIN] > 0;
    printf("%s 3 - the cases cover refusals, equal chains and the DST and parser deviations\n", covered ? "ok" : "not ok");
    for (int i = 0; i < NZONES; i++)
        cx_tz_free(loaded[i]);
    free(exprs);
    free(zi);
    free(starts);
    return 0;
}
