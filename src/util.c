/*
 * util.c -- the small helpers every module shares (include/conduix/cx.h): allocation that aborts on
 * failure, clocks, the process id, random bytes and UUIDs, RFC 3339 time stamps, and the parsers for
 * durations ("1h30m") and sizes ("1MiB") used by the configuration and the API.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uuid.h>

#include "conduix/cx.h"

/* oom -- the one place allocation failure ends up.
 * Nothing sensible can be done without memory: say so on stderr (the logger may itself need memory)
 * and abort, so the supervisor restarts the process (docs/architecture.md, "Processes"). */
static void __attribute__((noreturn)) oom(const char *what, size_t n)
{
    fprintf(stderr, "conduix-cp: out of memory (%s of %zu bytes)\n", what, n);
    abort();
}

void *cx_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom("malloc", n);
    return p;
}

void *cx_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom("calloc", n * size);
    return p;
}

void *cx_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom("realloc", n);
    return q;
}

/* cx_strdup -- strdup that aborts on failure; NULL in, NULL out (convenient for optional fields). */
char *cx_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        oom("strdup", strlen(s) + 1);
    return d;
}

char *cx_strndup(const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *d = strndup(s, n);
    if (d == NULL)
        oom("strndup", n + 1);
    return d;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cx_now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t cx_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

/* The process id and a buffer of random bytes, both per process: a child forgets the parent's at fork
 * (pthread_atfork), so it never reports the parent's pid nor hands out the parent's UUIDs. */
static pid_t self_pid;
static struct {
    unsigned char b[4096];
    size_t at; /* bytes of b used; sizeof(b): empty */
} rnd = {.at = sizeof(rnd.b)};
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    self_pid = 0;
    rnd.at = sizeof(rnd.b);
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

int cx_pid(void)
{
    if (self_pid == 0) {
        pthread_once(&fork_once, watch_forks);
        self_pid = getpid();
    }
    return (int)self_pid;
}

/* cx_random -- n bytes from the kernel's CSPRNG, taken from the buffer (refilled with one getrandom(2)
 * of 4 KiB when spent): a UUID costs a copy, not a system call. */
void cx_random(void *out, size_t n)
{
    unsigned char *o = out;

    while (n > 0) {
        if (rnd.at == sizeof(rnd.b)) {
            size_t got = 0;
            pthread_once(&fork_once, watch_forks);
            while (got < sizeof(rnd.b)) {
                ssize_t k = getrandom(rnd.b + got, sizeof(rnd.b) - got, 0);
                if (k < 0 && errno != EINTR) {
                    fprintf(stderr, "conduix-cp: getrandom: %s\n", strerror(errno));
                    abort(); /* no randomness: no ids nor tokens can be made safely */
                }
                got += k > 0 ? (size_t)k : 0;
            }
            rnd.at = 0;
        }
        size_t k = sizeof(rnd.b) - rnd.at < n ? sizeof(rnd.b) - rnd.at : n;
        // cppcheck-suppress uninitvar ; o is the caller's buffer, which this fills (it may hold anything)
        memcpy(o, rnd.b + rnd.at, k);
        memset(rnd.b + rnd.at, 0, k); /* a byte is handed out once */
        rnd.at += k;
        o += k;
        n -= k;
    }
}

/* unparse -- the 16 bytes of u in libuuid's lower-case form (uuid_unparse_lower formats them with
 * sprintf, a visible cost on every request's id). */
static void unparse(const unsigned char *u, char out[37])
{
    for (size_t i = 0, o = 0; i < 16; i++) {
        static const char hex[] = "0123456789abcdef";
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 0x0f];
    }
    out[36] = '\0';
}

/* cx_uuid -- RFC 9562 version 4 (122 random bits). libuuid's own uuid_generate_random costs five system
 * calls a UUID (getrandom, and getpid, getppid, getuid and gettid to reseed its fallback generator), so
 * the bytes come from cx_random. */
void cx_uuid(char out[37])
{
    uuid_t u;

    // cppcheck-suppress uninitvar ; cx_random fills u, it does not read it
    cx_random(u, sizeof(u));
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* variant 10 */
    unparse(u, out);
}

/* cx_uuid_v7 -- RFC 9562 version 7: the Unix time in milliseconds in the first 48 bits, big-endian, then
 * 74 random bits. Debian 12's libuuid (util-linux 2.38) has no version 7, hence this. Its text sorts by
 * time, so the rows keyed by it (pipelines, runs, commands, schedules) are appended at the right edge of
 * InnoDB's clustered index and of every secondary index that ends with the key, instead of each landing
 * on a random page: a burst of fires touches a few hot pages, not thousands. */
void cx_uuid_v7(char out[37])
{
    uuid_t u;
    uint64_t ms = (uint64_t)cx_wall_ms();

    // cppcheck-suppress uninitvar ; cx_random fills u, it does not read it
    cx_random(u, sizeof(u));
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x70); /* version 7 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* variant 10 */
    unparse(u, out);
}

/* two -- n (0..99) as two digits at p. */
static void two(char *p, int n)
{
    p[0] = (char)('0' + n / 10);
    p[1] = (char)('0' + n % 10);
}

/* stamp -- "YYYY-MM-DDTHH:MM:SS" of a Unix time into out (19 bytes; no NUL); -1 outside years 0..9999.
 * Written digit by digit: strftime, locale and all, was a visible part of every page of a list. */
static int stamp(int64_t unix_s, char *out)
{
    time_t t = (time_t)unix_s;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return -1;
    two(out, (tm.tm_year + 1900) / 100);
    two(out + 2, (tm.tm_year + 1900) % 100);
    out[4] = '-';
    two(out + 5, tm.tm_mon + 1);
    out[7] = '-';
    two(out + 8, tm.tm_mday);
    out[10] = 'T';
    two(out + 11, tm.tm_hour);
    out[13] = ':';
    two(out + 14, tm.tm_min);
    out[16] = ':';
    two(out + 17, tm.tm_sec);
    return 0;
}

void cx_time_format(int64_t unix_s, char out[32])
{
    if (stamp(unix_s, out) != 0)
        memcpy(out, "1970-01-01T00:00:00", 19);
    memcpy(out + 19, "Z", 2);
}

void cx_time_format_ms(int64_t ms, char out[32])
{
    if (ms < 0)
        ms = 0;
    if (stamp(ms / 1000, out) != 0)
        memcpy(out, "1970-01-01T00:00:00", 19);
    out[19] = '.';
    out[20] = (char)('0' + (ms % 1000) / 100);
    two(out + 21, (int)(ms % 100));
    memcpy(out + 23, "Z", 2);
}

/* digits -- read exactly n decimal digits at *p; -1 if any is missing. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

/* days_from_civil -- days since 1970-01-01 of a proleptic Gregorian date.
 * Computed by hand rather than with timegm() so the result never depends on TZ or the C library. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* cx_time_parse -- RFC 3339 date-time into Unix milliseconds.
 * Accepts "T", "t" or a space between date and time, an optional fraction of 1 to 9 digits (truncated to
 * milliseconds), and "Z", "z" or a numeric offset. A leap second (:60) is accepted and counts as the next
 * second. Times before 1970 are refused like malformed input, so -1 is never a valid answer. */
int64_t cx_time_parse(const char *s)
{
    if (s == NULL)
        return -1;
    const char *p = s;
    int y, mo, d, h, mi, sec, ms = 0, off = 0;
    if ((y = digits(&p, 4)) < 0 || *p++ != '-' || (mo = digits(&p, 2)) < 0 || *p++ != '-' || (d = digits(&p, 2)) < 0)
        return -1;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -1;
    p++;
    if ((h = digits(&p, 2)) < 0 || *p++ != ':' || (mi = digits(&p, 2)) < 0 || *p++ != ':' || (sec = digits(&p, 2)) < 0)
        return -1;
    if (*p == '.') {
        p++;
        int n = 0;
        while (p[n] >= '0' && p[n] <= '9')
            n++;
        if (n == 0 || n > 9)
            return -1;
        for (int i = 0; i < 3; i++)
            ms = ms * 10 + (i < n ? p[i] - '0' : 0);
        p += n;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if ((oh = digits(&p, 2)) < 0 || *p++ != ':' || (om = digits(&p, 2)) < 0 || oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - (int64_t)off * 60;
    if (t < 0)
        return -1;
    return t * 1000 + ms;
}

/* cx_duration_parse -- a Go-style duration: one or more <number><unit> with units ms, s, m, h, e.g.
 * "250ms", "1h30m", "1.5s". A bare "0" is the only number without a unit. Fractions below a millisecond
 * are dropped. Signs, spaces, overflow and anything else give -1. */
int64_t cx_duration_parse(const char *s)
{
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"ms", 1}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    if (s == NULL || *s == '\0')
        return -1;
    if (strcmp(s, "0") == 0)
        return 0;
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        int64_t whole = 0;
        int nwhole = 0, nfrac = 0;
        char frac[10] = "";
        while (*p >= '0' && *p <= '9') {
            if (whole > (INT64_MAX - 9) / 10)
                return -1;
            whole = whole * 10 + (*p++ - '0');
            nwhole++;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                if (nfrac < 9)
                    frac[nfrac] = *p;
                nfrac++;
                p++;
            }
            if (nfrac == 0)
                return -1;
        }
        if (nwhole == 0 && nfrac == 0)
            return -1;
        size_t i;
        for (i = 0; i < CX_ARRAY_SIZE(units); i++)
            if (strncmp(p, units[i].name, strlen(units[i].name)) == 0)
                break;
        if (i == CX_ARRAY_SIZE(units))
            return -1;
        p += strlen(units[i].name);
        int64_t u = units[i].ms;
        if (whole > INT64_MAX / u)
            return -1;
        int64_t v = whole * u;
        /* the fraction, at most 9 digits, times a unit of at most 3.6e6 fits easily in 64 bits */
        int64_t f = 0, scale = 1;
        for (int k = 0; k < nfrac && k < 9; k++) {
            f = f * 10 + (frac[k] - '0');
            scale *= 10;
        }
        v += f * u / scale;
        if (v > INT64_MAX - total)
            return -1;
        total += v;
    }
    return total;
}

/* cx_size_parse -- a byte count with an optional unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB,
 * GiB, TiB (powers of 1024), case-insensitive, optionally separated from the number by spaces.
 * Only whole numbers; -1 on anything else or on overflow. */
int64_t cx_size_parse(const char *s)
{
    static const struct {
        const char *name;
        int64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"kb", 1000LL},
        {"mb", 1000LL * 1000},
        {"gb", 1000LL * 1000 * 1000},
        {"tb", 1000LL * 1000 * 1000 * 1000},
        {"kib", 1LL << 10},
        {"mib", 1LL << 20},
        {"gib", 1LL << 30},
        {"tib", 1LL << 40},
    };
    if (s == NULL)
        return -1;
    const char *p = s;
    int64_t v = 0;
    int n = 0;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p++ - '0');
        n++;
    }
    if (n == 0)
        return -1;
    while (*p == ' ')
        p++;
    for (size_t i = 0; i < CX_ARRAY_SIZE(units); i++) {
        if (strcasecmp(p, units[i].name) == 0) {
            if (units[i].name[0] == '\0' && p != s + n)
                return -1; /* "12 " */
            if (v > INT64_MAX / units[i].mult)
                return -1;
            return v * units[i].mult;
        }
    }
    return -1;
}
