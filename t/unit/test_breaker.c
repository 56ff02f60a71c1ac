/*
 * test_breaker.c -- every transition of the circuit breaker, with an explicit clock, and the probe
 * backoff: the first probe CX_BREAKER_PROBE_MS after opening, doubling after each failed probe up to the
 * cooldown, starting over once the breaker closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "conduix/breaker.h"

#define N 3
#define COOLDOWN 1000
#define M 2
#define PROBE CX_BREAKER_PROBE_MS /* 250: the first wait */

static void fail_n(cx_breaker_t *b, int n, int64_t now)
{
    for (int i = 0; i < n; i++) {
        assert_true(cx_breaker_allow(b, now));
        cx_breaker_failure(b, now);
    }
}

static void test_init(void **state)
{
    cx_breaker_t b;

    cx_breaker_init(&b, N, COOLDOWN, M);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.max_failures, N);
    assert_int_equal(b.cooldown_ms, COOLDOWN);
    assert_int_equal(b.half_open_successes, M);
    assert_int_equal(b.opened_total, 0);
    assert_true(cx_breaker_allow(&b, 0));

    /* Nonsense settings are clamped to something that still works. */
    cx_breaker_init(&b, 0, -5, 0);
    assert_int_equal(b.max_failures, 1);
    assert_int_equal(b.cooldown_ms, 0);
    assert_int_equal(b.half_open_successes, 1);
}

static void test_closed_below_threshold(void **state)
{
    cx_breaker_t b;

    cx_breaker_init(&b, N, COOLDOWN, M);
    fail_n(&b, N - 1, 100);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    assert_int_equal(b.failures, N - 1);
    assert_true(cx_breaker_allow(&b, 100));
    assert_int_equal(b.opened_total, 0);
}

static void test_opens_at_threshold(void **state)
{
    cx_breaker_t b;

    cx_breaker_init(&b, N, COOLDOWN, M);
    fail_n(&b, N, 100);
    assert_int_equal(b.state, CX_BREAKER_OPEN);
    assert_int_equal(b.open_until, 100 + PROBE);
    assert_int_equal(b.opened_total, 1);
    assert_false(cx_breaker_allow(&b, 100));
}

static void test_success_resets_count(void **state)
{
    cx_breaker_t b;

    cx_breaker_init(&b, N, COOLDOWN, M);
    fail_n(&b, N - 1, 100);
    cx_breaker_success(&b, 101);
    assert_int_equal(b.failures, 0);
    /* Failures must be consecutive: N-1 more do not open it. */
    fail_n(&b, N - 1, 102);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    cx_breaker_failure(&b, 103);
    assert_int_equal(b.state, CX_BREAKER_OPEN);
}

static void test_open_refuses_until_cooldown(void **state)
{
    cx_breaker_t b;

    cx_breaker_init(&b, N, COOLDOWN, M);
    fail_n(&b, N, 5000);
    assert_false(cx_breaker_allow(&b, 5000));
    assert_false(cx_breaker_allow(&b, 5000 + PROBE / 2));
    assert_false(cx_breaker_allow(&b, 5000 + PROBE - 1));
    assert_int_equal(b.state, CX_BREAKER_OPEN);
    /* Outcomes of calls that were in flight when it opened change nothing. */
    cx_breaker_failure(&b, 5001);
    cx_breaker_success(&b, 5001);
    assert_int_equal(b.state, CX_BREAKER_OPEN);
    assert_int_equal(b.open_until, 5000 + PROBE);
    assert_int_equal(b.opened_total, 1);
}

static void test_half_open_after_cooldown(void **state)
{
    cx_breaker_t b;

    cx_breaker_init(&b, N, COOLDOWN, M);
    fail_n(&b, N, 5000);
    assert_true(cx_breaker_allow(&b, 5000 + PROBE));
    assert_int_equal(b.state, CX_BREAKER_HALF_OPEN);
    assert_int_equal(b.successes, 0);
    assert_true(cx_breaker_allow(&b, 5000 + PROBE + 1));
}

static void test_half_open_failure_reopens(void **state)
{
    cx_breaker_t b;
    int64_t t = 5000 + PROBE + 10;

    cx_breaker_init(&b, N, COOLDOWN, M);
    fail_n(&b, N, 5000);
    assert_true(cx_breaker_allow(&b, t));
    cx_breaker_success(&b, t);
    assert_int_equal(b.state, CX_BREAKER_HALF_OPEN);
    /* One failure in half-open is enough, and the next wait, twice as long, starts from now. */
    cx_breaker_failure(&b, t + 1);
    assert_int_equal(b.state, CX_BREAKER_OPEN);
    assert_int_equal(b.open_until, t + 1 + 2 * PROBE);
    assert_int_equal(b.opened_total, 2);
    assert_false(cx_breaker_allow(&b, t + 2 * PROBE));
    assert_true(cx_breaker_allow(&b, t + 1 + 2 * PROBE));
    assert_int_equal(b.state, CX_BREAKER_HALF_OPEN);
    assert_int_equal(b.successes, 0);
}

/* Failed probes: 250, 500, 1000 (the cooldown), 1000 … ms; once closed, the next opening waits 250 again.
 * The waits were the full cooldown each before: a Redis back after 2 s was noticed after 30. */
static void test_probe_backoff(void **state)
{
    cx_breaker_t b;
    int64_t t = 0, want[] = {PROBE, 2 * PROBE, COOLDOWN, COOLDOWN, COOLDOWN};

    cx_breaker_init(&b, N, COOLDOWN, 1);
    fail_n(&b, N, t);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(b.open_until - t, want[i]);
        assert_false(cx_breaker_allow(&b, b.open_until - 1));
        t = b.open_until;
        assert_true(cx_breaker_allow(&b, t)); /* the probe */
        cx_breaker_failure(&b, t);            /* fails */
    }
    t = b.open_until;
    assert_true(cx_breaker_allow(&b, t));
    cx_breaker_success(&b, t);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    fail_n(&b, N, t + 5);
    assert_int_equal(b.open_until, t + 5 + PROBE);

    /* a cooldown shorter than the first probe wait caps it */
    cx_breaker_init(&b, 1, 100, 1);
    fail_n(&b, 1, 0);
    assert_int_equal(b.open_until, 100);
    /* no cooldown at all: the next call is the probe */
    cx_breaker_init(&b, 1, 0, 1);
    fail_n(&b, 1, 7);
    assert_int_equal(b.open_until, 7);
    assert_true(cx_breaker_allow(&b, 7));
}

static void test_half_open_successes_close(void **state)
{
    cx_breaker_t b;
    int64_t t = 5000 + PROBE;

    cx_breaker_init(&b, N, COOLDOWN, M);
    fail_n(&b, N, 5000);
    assert_true(cx_breaker_allow(&b, t));
    for (int i = 0; i < M - 1; i++) {
        cx_breaker_success(&b, t);
        assert_int_equal(b.state, CX_BREAKER_HALF_OPEN);
        assert_true(cx_breaker_allow(&b, t));
    }
    cx_breaker_success(&b, t);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.successes, 0);
    /* Closed again: it takes N fresh failures to open it. */
    fail_n(&b, N - 1, t + 1);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    cx_breaker_failure(&b, t + 2);
    assert_int_equal(b.state, CX_BREAKER_OPEN);
    assert_int_equal(b.opened_total, 2);
}

static void test_opened_total_counts(void **state)
{
    cx_breaker_t b;
    int64_t t = 0;

    cx_breaker_init(&b, 1, COOLDOWN, 1);
    for (int i = 1; i <= 5; i++) {
        assert_true(cx_breaker_allow(&b, t));
        cx_breaker_failure(&b, t);
        assert_int_equal(b.opened_total, i);
        t += COOLDOWN;
    }
    assert_true(cx_breaker_allow(&b, t));
    cx_breaker_success(&b, t);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    assert_int_equal(b.opened_total, 5);
}

/* The MySQL breaker's settings (db.c): one failure opens it, the first probe comes at once, the waits
 * double up to the cooldown, and one success closes it. */
static void test_set_probe(void **state)
{
    cx_breaker_t b;
    int64_t t = 1000, want[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 500, 500};

    cx_breaker_init(&b, 1, 500, 1);
    cx_breaker_set_probe(&b, 1);
    cx_breaker_failure(&b, t);
    assert_int_equal(b.state, CX_BREAKER_OPEN);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(b.open_until - t, want[i]);
        t = b.open_until;
        assert_true(cx_breaker_allow(&b, t));
        assert_int_equal(b.state, CX_BREAKER_HALF_OPEN);
        cx_breaker_failure(&b, t);
    }
    t = b.open_until;
    assert_true(cx_breaker_allow(&b, t));
    cx_breaker_success(&b, t);
    assert_int_equal(b.state, CX_BREAKER_CLOSED);
    cx_breaker_failure(&b, t + 10);
    assert_int_equal(b.open_until, t + 11); /* the backoff started over */

    /* a first wait longer than the cooldown is capped by it */
    cx_breaker_init(&b, 1, 100, 1);
    cx_breaker_set_probe(&b, 5000);
    cx_breaker_failure(&b, 0);
    assert_int_equal(b.open_until, 100);
}

static void test_state_names(void **state)
{
    assert_string_equal(cx_breaker_state_name(CX_BREAKER_CLOSED), "closed");
    assert_string_equal(cx_breaker_state_name(CX_BREAKER_OPEN), "open");
    assert_string_equal(cx_breaker_state_name(CX_BREAKER_HALF_OPEN), "half-open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_closed_below_threshold),
        cmocka_unit_test(test_opens_at_threshold),
        cmocka_unit_test(test_success_resets_count),
        cmocka_unit_test(test_open_refuses_until_cooldown),
        cmocka_unit_test(test_half_open_after_cooldown),
        cmocka_unit_test(test_half_open_failure_reopens),
        cmocka_unit_test(test_half_open_successes_close),
        cmocka_unit_test(test_probe_backoff),
        cmocka_unit_test(test_opened_total_counts),
        cmocka_unit_test(test_set_probe),
        cmocka_unit_test(test_state_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
