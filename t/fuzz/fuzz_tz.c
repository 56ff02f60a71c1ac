/*
 * fuzz_tz.c -- fuzz target of the time-zone reader: input starting with "TZif" is a TZif file, anything
 * else a POSIX TZ string. A zone that is accepted must answer with consistent spans (the span of t holds
 * t, starts where the one before ends, and changes the offset), and the cron engine must work on it.
 */
#include <string.h>

#include "conduix/cron.h"
#include "conduix/cx.h"
#include "conduix/tz.h"
#include "fuzz.h"

static void check_span(const cx_tz_t *z, int64_t t)
{
    cx_tz_span_t s, n;
    cx_tz_span(z, t, &s);
    FUZZ_CHECK(s.start <= t && t < s.end);
    FUZZ_CHECK(cx_tz_offset(z, t) == s.offset);
    if (s.start != INT64_MIN) {
        FUZZ_CHECK(s.offset != s.prev_offset);
        FUZZ_CHECK(cx_tz_offset(z, s.start - 1) == s.prev_offset);
    }
    if (s.end != INT64_MAX) {
        cx_tz_span(z, s.end, &n);
        FUZZ_CHECK(n.start == s.end && n.prev_offset == s.offset);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    cx_tz_t *z;
    if (size >= 4 && memcmp(data, "TZif", 4) == 0) {
        z = cx_tz_parse("fuzz", data, size, err, sizeof(err));
    } else {
        char s[512];
        if (size >= sizeof(s))
            size = sizeof(s) - 1;
        memcpy(s, data, size);
        s[size] = '\0';
        z = cx_tz_posix("fuzz", s, err, sizeof(err));
    }
    if (z == NULL) { /* a message, printable ASCII only */
        FUZZ_CHECK(strlen(err) > 0);
        for (const char *p = err; *p != '\0'; p++)
            FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
        return 0;
    }
    static const int64_t probes[] = {INT64_MIN,        -2208988800LL, 0, 1710052200, 1730613600, 2147483647LL, 4102444800LL,
                                     CX_CRON_MAX_TIME, INT64_MAX - 1};
    for (size_t i = 0; i < CX_ARRAY_SIZE(probes); i++)
        check_span(z, probes[i]);
    static const char *const exprs[] = {"30 2 * * *", "*/7 * * * *", "0 0 29 2 *"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(exprs); i++) {
        cx_cron_t c;
        FUZZ_CHECK(cx_cron_parse(&c, exprs[i], NULL, 0) == 0);
        int64_t t = 1700000000;
        for (int k = 0; k < 3; k++) {
            int64_t n = cx_cron_next(&c, z, t);
            if (n == CX_CRON_NONE)
                break;
            FUZZ_CHECK(n > t);
            t = n;
        }
    }
    cx_tz_free(z);
    return 0;
}
