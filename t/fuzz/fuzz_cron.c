/*
 * fuzz_cron.c -- fuzz target of the cron engine: any bytes as an expression. A refusal must come with a
 * printable ASCII message; an accepted expression, parsed twice to the same result, must give fire times
 * that strictly increase and obey the fields and the DST rules, in UTC and in zones with DST changes
 * (New York, Lord Howe's 30 minutes, Sydney, Havana's midnight changes), from starts next to changes.
 */
#include <string.h>
#include <time.h>

#include "conduix/cron.h"
#include "conduix/cx.h"
#include "fuzz.h"

static cx_tz_t *zones[5];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const names[] = {"UTC", "America/New_York", "Australia/Lord_Howe", "Australia/Sydney", "America/Havana"};
    (void)argc, (void)argv;
    for (size_t i = 0; i < CX_ARRAY_SIZE(names); i++) {
        char err[256];
        if ((zones[i] = cx_tz_load(names[i], err, sizeof(err))) == NULL) {
            fprintf(stderr, "fuzz_cron: %s\n", err);
            exit(1);
        }
    }
    return 0;
}

/* fields_match -- the wall clock at t matches the fields (checked with gmtime_r, not the engine). */
static int fields_match(const cx_cron_t *c, const cx_tz_t *z, int64_t t, int32_t off)
{
    time_t w = (time_t)(t + off);
    struct tm tm;
    (void)z;
    if (gmtime_r(&w, &tm) == NULL)
        return 0;
    int dom = (c->dom >> tm.tm_mday) & 1, dow = (c->dow >> tm.tm_wday) & 1;
    int day = (c->flags & (CX_CRON_DOM_STAR | CX_CRON_DOW_STAR)) ? dom && dow : dom || dow;
    return tm.tm_sec == 0 && ((c->minute >> tm.tm_min) & 1) && ((c->hour >> tm.tm_hour) & 1) &&
           ((c->month >> (tm.tm_mon + 1)) & 1) && day;
}

/* check_fire -- t, the first fire after `after`, is one: its wall clock matches, or (fixed-time schedule)
 * it ends a DST gap; and asking from just before it gives it again. */
static void check_fire(const cx_cron_t *c, const cx_tz_t *z, int64_t after, int64_t t)
{
    FUZZ_CHECK(t > after);
    FUZZ_CHECK(t <= CX_CRON_MAX_TIME);
    if (c->flags & CX_CRON_EVERY) {
        FUZZ_CHECK(t == after + c->every);
        return;
    }
    cx_tz_span_t s;
    cx_tz_span(z, t, &s);
    int gap_end = s.start == t && s.offset > s.prev_offset && !(c->flags & CX_CRON_WILD);
    FUZZ_CHECK(fields_match(c, z, t, s.offset) || gap_end);
    if (t - 1 > after)
        FUZZ_CHECK(cx_cron_next(c, z, t - 1) == t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char expr[4096], err[256];
    cx_cron_t c, again;
    if (size >= sizeof(expr))
        size = sizeof(expr) - 1;
    memcpy(expr, data, size);
    expr[size] = '\0';

    memset(err, 'X', sizeof(err));
    int rc = cx_cron_parse(&c, expr, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == CX_INVALID);
    if (rc != 0) {
        size_t n = strnlen(err, sizeof(err));
        FUZZ_CHECK(n > 0 && n < sizeof(err));
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(err[i] >= 0x20 && err[i] < 0x7f);
        return 0;
    }
    FUZZ_CHECK(cx_cron_parse(&again, expr, NULL, 0) == 0 && memcmp(&c, &again, sizeof(c)) == 0);
    FUZZ_CHECK((c.flags & CX_CRON_EVERY) ? c.every >= 1 : (c.minute && c.hour && c.dom && c.month && c.dow));

    /* starts: a plain day, next to New York's and Sydney's changes, and the far future */
    static const int64_t starts[] = {1718900000, 1710052199, 1730613599, 1728143999, 4102444799};
    for (size_t zi = 0; zi < CX_ARRAY_SIZE(zones); zi++)
        for (size_t si = 0; si < CX_ARRAY_SIZE(starts); si++) {
            int64_t t = starts[si];
            for (int k = 0; k < 4; k++) {
                int64_t n = cx_cron_next(&c, zones[zi], t);
                if (n == CX_CRON_NONE)
                    break;
                check_fire(&c, zones[zi], t, n);
                t = n;
            }
        }
    return 0;
}
