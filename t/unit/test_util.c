/*
 * test_util.c -- the helpers of src/util.c: duration, size and RFC 3339 parsers, time formatting, UUIDs,
 * clocks and the allocation wrappers; the UTF-8 validator of src/utf8.c; and the data layer's
 * DATETIME text (src/db/db.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uuid.h>
#include <stdio.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/utf8.h"

static void t_duration(void **state)
{
    (void)state;
    assert_int_equal(cx_duration_parse("0"), 0);
    assert_int_equal(cx_duration_parse("250ms"), 250);
    assert_int_equal(cx_duration_parse("30s"), 30000);
    assert_int_equal(cx_duration_parse("5m"), 300000);
    assert_int_equal(cx_duration_parse("24h"), 86400000);
    assert_int_equal(cx_duration_parse("1h30m"), 5400000);
    assert_int_equal(cx_duration_parse("1h30m15s500ms"), 5415500);
    assert_int_equal(cx_duration_parse("1.5s"), 1500);
    assert_int_equal(cx_duration_parse("0s"), 0);
    assert_int_equal(cx_duration_parse("0.0001s"), 0);
    assert_int_equal(cx_duration_parse("2562047788015h"), 2562047788015LL * 3600000);
}

static void t_duration_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      "10",
                                      "-5s",
                                      "5 s",
                                      " 5s",
                                      "5s ",
                                      "s",
                                      "5x",
                                      "5sm",
                                      "1.s",
                                      ".s",
                                      "1h-",
                                      "+1s",
                                      "5S",
                                      "1d",
                                      "ms5",
                                      "99999999999999999999h",
                                      "3000000000000h"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad); i++) {
        if (cx_duration_parse(bad[i]) != -1)
            fail_msg("cx_duration_parse(\"%s\") accepted", bad[i]);
    }
    assert_int_equal(cx_duration_parse(NULL), -1);
}

static void t_size(void **state)
{
    (void)state;
    assert_int_equal(cx_size_parse("1048576"), 1048576);
    assert_int_equal(cx_size_parse("0"), 0);
    assert_int_equal(cx_size_parse("1MiB"), 1048576);
    assert_int_equal(cx_size_parse("512KiB"), 524288);
    assert_int_equal(cx_size_parse("1GiB"), 1073741824);
    assert_int_equal(cx_size_parse("2MB"), 2000000);
    assert_int_equal(cx_size_parse("3kb"), 3000);
    assert_int_equal(cx_size_parse("1mib"), 1048576);
    assert_int_equal(cx_size_parse("7B"), 7);
    assert_int_equal(cx_size_parse("5 MiB"), 5 * 1048576);
    assert_int_equal(cx_size_parse("1TiB"), 1LL << 40);
}

static void t_size_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "MiB", "-1", "1.5MiB", "1 ", "1XB", "1MiBs", " 1", "99999999999999999999", "9000000000TiB"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad); i++) {
        if (cx_size_parse(bad[i]) != -1)
            fail_msg("cx_size_parse(\"%s\") accepted", bad[i]);
    }
    assert_int_equal(cx_size_parse(NULL), -1);
}

static void t_time_parse(void **state)
{
    (void)state;
    assert_int_equal(cx_time_parse("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(cx_time_parse("2026-11-25T21:00:00Z"), 1795640400000LL);
    assert_int_equal(cx_time_parse("2026-11-25T21:00:00.123Z"), 1795640400123LL);
    assert_int_equal(cx_time_parse("2026-11-25T21:00:00.123456789Z"), 1795640400123LL);
    assert_int_equal(cx_time_parse("2026-11-25T21:00:00.5Z"), 1795640400500LL);
    /* the same instant in Seoul and in New York */
    assert_int_equal(cx_time_parse("2026-11-26T06:00:00+09:00"), 1795640400000LL);
    assert_int_equal(cx_time_parse("2026-11-25T16:00:00-05:00"), 1795640400000LL);
    assert_int_equal(cx_time_parse("2026-11-25T21:30:00+00:30"), 1795640400000LL);
    assert_int_equal(cx_time_parse("2026-11-25t21:00:00z"), 1795640400000LL);
    assert_int_equal(cx_time_parse("2026-11-25 21:00:00Z"), 1795640400000LL);
    assert_int_equal(cx_time_parse("2024-02-29T00:00:00Z"), 1709164800000LL);
    assert_int_equal(cx_time_parse("2000-03-01T00:00:00Z"), 951868800000LL);
    assert_int_equal(cx_time_parse("2016-12-31T23:59:60Z"), 1483228800000LL); /* leap second */
}

static void t_time_parse_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026-11-25",
        "2026-11-25T21:00:00",             /* no offset */
        "2026-11-25T21:00Z",               /* no seconds */
        "2026-11-25T21:00:00.Z",           /* empty fraction */
        "2026-11-25T21:00:00.1234567890Z", /* finer than nanoseconds */
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25T21:60:00Z",
        "2026-11-25T21:00:61Z",
        "2026-11-25T21:00:00+0900",
        "2026-11-25T21:00:00+24:00",
        "2026-11-25T21:00:00+09:60",
        "2026-11-25T21:00:00Zjunk",
        "2026-11-25X21:00:00Z",
        "26-11-25T21:00:00Z",
        "1969-12-31T23:59:59Z", /* before the epoch */
        "1970-01-01T00:00:00+00:01",
    };
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad); i++) {
        if (cx_time_parse(bad[i]) != -1)
            fail_msg("cx_time_parse(\"%s\") accepted", bad[i]);
    }
    assert_int_equal(cx_time_parse(NULL), -1);
}

static void t_time_format(void **state)
{
    (void)state;
    char out[32];
    cx_time_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    cx_time_format(1795640400, out);
    assert_string_equal(out, "2026-11-25T21:00:00Z");
    /* round trip */
    assert_int_equal(cx_time_parse(out), 1795640400000LL);
    /* written digit by digit: the same text as strftime, over the years 1970..9999 (leap days included) */
    srandom(42);
    for (int i = 0; i < 200000; i++) {
        int64_t t = i < 1000 ? (int64_t)i * 86400 * 366 : ((int64_t)random() << 5 ^ random()) % 253402300800LL;
        int64_t ms = t * 1000 + i % 1000;
        char want[40], wantms[40], ms_out[32];
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(wantms, sizeof(wantms), "%.19s.%03dZ", want, (int)(ms % 1000));
        cx_time_format(t, out);
        assert_string_equal(out, want);
        cx_time_format_ms(ms, ms_out);
        assert_string_equal(ms_out, wantms);
    }
}

static void t_uuid(void **state)
{
    (void)state;
    char a[37], b[37];
    cx_uuid(a);
    cx_uuid(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');           /* version 4: random */
    assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
    for (int i = 0; i < 1000; i++) {        /* written by hand: libuuid reads it back, and writes the same */
        uuid_t u;
        char again[37];
        cx_uuid(a);
        assert_int_equal(uuid_parse(a, u), 0);
        uuid_unparse_lower(u, again);
        assert_string_equal(again, a);
    }
}

/* t_uuid_v7 -- version 7: the first 48 bits are the Unix milliseconds of its making, the version and
 * variant are set, libuuid parses it, and the text of a later one sorts after an earlier one's. */
static void t_uuid_v7(void **state)
{
    (void)state;
    char a[37], b[37], again[37];
    uuid_t u;

    int64_t before = cx_wall_ms();
    cx_uuid_v7(a);
    int64_t after = cx_wall_ms();
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[13], '-');
    assert_int_equal(a[14], '7');           /* version 7 */
    assert_non_null(strchr("89ab", a[19])); /* RFC 9562 variant */
    char hex[13];
    memcpy(hex, a, 8);
    memcpy(hex + 8, a + 9, 4);
    hex[12] = '\0';
    long long ms = strtoll(hex, NULL, 16);
    assert_true(ms >= before && ms <= after);
    assert_int_equal(uuid_parse(a, u), 0);
    uuid_unparse_lower(u, again);
    assert_string_equal(again, a);
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
    cx_uuid_v7(b);
    assert_true(strcmp(a, b) < 0);   /* a later millisecond sorts after */
    for (int i = 0; i < 1000; i++) { /* within one millisecond the rest is random: never the same */
        char c[37];
        cx_uuid_v7(c);
        assert_string_not_equal(b, c);
        memcpy(b, c, sizeof(b));
    }
}

/* t_uuid_fork -- a child never hands out the parent's next UUIDs nor reports its pid (the random buffer
 * and the cached pid are the parent's memory, copied by fork). */
static void t_uuid_fork(void **state)
{
    (void)state;
    char parent[37], child[37] = "";
    int fds[2], status;
    pid_t pid;

    cx_uuid(parent); /* the buffer is filled now, and copied into the child */
    assert_int_equal(cx_pid(), getpid());
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char u[37];
        cx_uuid(u);
        ssize_t w = write(fds[1], u, sizeof(u));
        _exit(w == (ssize_t)sizeof(u) && cx_pid() == getpid() && cx_pid() != getppid() ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* the child's cx_pid is its own */
    cx_uuid(parent);                                            /* the parent's next one */
    assert_string_not_equal(parent, child);
    assert_int_equal(strlen(child), 36);
    assert_int_equal(child[14], '4');

    /* many in a row: no repeats across a refill of the buffer (4 KiB = 256 UUIDs) */
    char seen[600][37];
    for (int i = 0; i < 600; i++) {
        cx_uuid(seen[i]);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
}

static void t_clocks(void **state)
{
    (void)state;
    int64_t m1 = cx_now_ms(), w = cx_wall_ms(), m2 = cx_now_ms();
    assert_true(m2 >= m1);
    assert_true(w > 1700000000000LL); /* after 2023 */
}

static void t_alloc(void **state)
{
    (void)state;
    char *p = cx_malloc(0);
    assert_non_null(p);
    p = cx_realloc(p, 100);
    memset(p, 'x', 100);
    free(p);
    int *z = cx_calloc(10, sizeof(int));
    for (int i = 0; i < 10; i++)
        assert_int_equal(z[i], 0);
    free(z);
    char *s = cx_strdup("hello");
    assert_string_equal(s, "hello");
    free(s);
    s = cx_strndup("hello", 3);
    assert_string_equal(s, "hel");
    free(s);
    assert_null(cx_strdup(NULL));
}

static void t_time_format_ms(void **state)
{
    char out[32];
    (void)state;
    cx_time_format_ms(1709283845123LL, out);
    assert_string_equal(out, "2024-03-01T09:04:05.123Z");
    cx_time_format_ms(5, out);
    assert_string_equal(out, "1970-01-01T00:00:00.005Z");
    /* the data layer's DATETIME(3) text, both ways (db.h) */
    cx_db_time_text(1709283845123LL, out);
    assert_string_equal(out, "2024-03-01 09:04:05.123");
    assert_int_equal(cx_db_time_ms(out), 1709283845123LL);
    assert_int_equal(cx_db_time_ms("2024-03-01 09:04:05"), 1709283845000LL);
    assert_int_equal(cx_db_time_ms("2024-03-01 09:04:05.1"), 1709283845100LL);
    assert_int_equal(cx_db_time_ms(NULL), 0);
    assert_int_equal(cx_db_time_ms(""), 0);
    assert_int_equal(cx_db_time_ms("garbage"), 0);
}

static long utf8(const char *s, size_t len, unsigned *flags)
{
    *flags = 0xff;
    return cx_utf8_check(s, len, flags);
}

static void t_utf8(void **state)
{
    static const char *const bad[] = {
        "\x80",             /* a continuation byte first */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong */
        "\xf0\x80\x80\xaf", /* overlong */
        "\xed\xa0\x80",     /* U+D800, a surrogate */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* beyond */
        "\xff",             /* never in UTF-8 */
        "\xe2\x82",         /* truncated */
        "a\xc3",            /* truncated at the end */
        "\xc3\x28",         /* a bad continuation */
    };
    unsigned f;
    (void)state;

    assert_int_equal(utf8("abc", 3, &f), 3);
    assert_int_equal(f, 0);
    assert_int_equal(utf8("", 0, &f), 0);
    assert_int_equal(f, 0);
    assert_int_equal(utf8("a b", 3, &f), 3);
    assert_int_equal(f, CX_UTF8_SPACE);
    assert_int_equal(utf8("caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80", 13, &f), 7); /* 4 + space + euro + emoji */
    assert_int_equal(f, CX_UTF8_SPACE);
    assert_int_equal(utf8("\xf4\x8f\xbf\xbf", 4, &f), 1); /* U+10FFFF, the last */
    assert_int_equal(utf8("\xee\x80\x80", 3, &f), 1);     /* U+E000, after the surrogates */
    assert_int_equal(utf8("a\tb", 3, &f), 3);
    assert_int_equal(f, CX_UTF8_C0);
    assert_int_equal(utf8("a\0b", 3, &f), 3); /* length, not NUL-terminated */
    assert_int_equal(f, CX_UTF8_C0);
    assert_int_equal(utf8("\x7f", 1, &f), 1);
    assert_int_equal(f, CX_UTF8_C0);
    assert_int_equal(utf8("\xc2\x85", 2, &f), 1); /* U+0085 NEL, white space too */
    assert_int_equal(f, CX_UTF8_C1 | CX_UTF8_EDGE_SPACE);
    assert_int_equal(utf8("\xc2\xa0", 2, &f), 1); /* U+00A0: not a control character, but white space */
    assert_int_equal(f, CX_UTF8_EDGE_SPACE);
    assert_int_equal(utf8("a\xc2\xa0"
                          "b",
                          4, &f),
                     3);
    assert_int_equal(f, 0); /* inside, not at an edge */
    assert_int_equal(utf8(" a", 2, &f), 2);
    assert_int_equal(f, CX_UTF8_SPACE | CX_UTF8_EDGE_SPACE);
    assert_int_equal(utf8("a\xe3\x80\x80", 4, &f), 2); /* U+3000 last */
    assert_int_equal(f, CX_UTF8_EDGE_SPACE);
    assert_int_equal(cx_utf8_check("x", 1, NULL), 1);
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad); i++)
        if (cx_utf8_check(bad[i], strlen(bad[i]), &f) != -1)
            fail_msg("accepted bad[%zu]", i);
}

/* esc -- cx_json_escape of s[0..len) into a buffer of cap bytes. */
static const char *esc(const char *s, size_t len, size_t cap)
{
    static char out[256];
    assert_true(cap <= sizeof(out));
    size_t n = cx_json_escape(out, cap, s, len);
    assert_int_equal(n, strlen(out));
    assert_true(n < cap);
    return out;
}

static void t_json_escape(void **state)
{
    (void)state;
    assert_string_equal(esc("plain", 5, 64), "plain");
    assert_string_equal(esc("a\"b\nc", 5, 64), "a\\\"b\\nc");
    assert_string_equal(esc("x\\y", 3, 64), "x\\\\y");
    assert_string_equal(esc("\x01\x1f\x7f", 3, 64), "\\u0001\\u001f\\u007f");
    assert_string_equal(esc("a\0b", 3, 64), "a\\u0000b");
    assert_string_equal(esc("caf\xc3\xa9 \xf0\x9f\x98\x80", 10, 64), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    /* bytes that are not UTF-8 become the text \xNN */
    assert_string_equal(esc("a\xff"
                            "b",
                            3, 64),
                        "a\\\\xffb");
    assert_string_equal(esc("\xc3", 1, 64), "\\\\xc3");                       /* truncated sequence */
    assert_string_equal(esc("\xed\xa0\x80", 3, 64), "\\\\xed\\\\xa0\\\\x80"); /* surrogate */
    assert_string_equal(esc("\xc0\xaf", 2, 64), "\\\\xc0\\\\xaf");            /* overlong */
    /* whole units only when the buffer is short */
    assert_string_equal(esc("ab\"", 3, 4), "ab");
    assert_string_equal(esc("a\xc3\xa9", 3, 3), "a");
    assert_string_equal(esc("a\x01", 2, 7), "a");
    assert_string_equal(esc("abc", 3, 1), "");
    /* runs of plain text (copied at once) cut at the buffer's end, and between escapes */
    assert_string_equal(esc("abcdef", 6, 4), "abc");
    assert_string_equal(esc("abcdef", 6, 7), "abcdef");
    assert_string_equal(esc("ab\"cd\\ef\x01gh", 11, 64), "ab\\\"cd\\\\ef\\u0001gh");
    assert_string_equal(esc("ab\"cd", 5, 6), "ab\\\"c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_duration),       cmocka_unit_test(t_duration_bad), cmocka_unit_test(t_size),
        cmocka_unit_test(t_size_bad),       cmocka_unit_test(t_time_parse),   cmocka_unit_test(t_time_parse_bad),
        cmocka_unit_test(t_time_format),    cmocka_unit_test(t_uuid),         cmocka_unit_test(t_clocks),
        cmocka_unit_test(t_alloc),          cmocka_unit_test(t_utf8),         cmocka_unit_test(t_json_escape),
        cmocka_unit_test(t_time_format_ms), cmocka_unit_test(t_uuid_v7),      cmocka_unit_test(t_uuid_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
