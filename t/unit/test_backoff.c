/*
 * test_backoff.c -- the exponential backoff every retry loop uses: doubling, the cap, the reset, and the
 * clamping of nonsense limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conduix/backoff.h"

static void test_doubles_to_the_cap(void **state)
{
    cx_backoff_t b;
    (void)state;
    cx_backoff_init(&b, 100, 30000);
    int64_t want[] = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(cx_backoff_next(&b), want[i]);
}

static void test_cap_not_a_power_of_two(void **state)
{
    cx_backoff_t b;
    (void)state;
    cx_backoff_init(&b, 250, 1000);
    assert_int_equal(cx_backoff_next(&b), 250);
    assert_int_equal(cx_backoff_next(&b), 500);
    assert_int_equal(cx_backoff_next(&b), 1000);
    assert_int_equal(cx_backoff_next(&b), 1000);
    cx_backoff_init(&b, 1000, 5000);
    assert_int_equal(cx_backoff_next(&b), 1000);
    assert_int_equal(cx_backoff_next(&b), 2000);
    assert_int_equal(cx_backoff_next(&b), 4000);
    assert_int_equal(cx_backoff_next(&b), 5000);
}

static void test_reset(void **state)
{
    cx_backoff_t b;
    (void)state;
    cx_backoff_init(&b, 250, 8000);
    cx_backoff_next(&b);
    cx_backoff_next(&b);
    assert_int_equal(cx_backoff_next(&b), 1000);
    cx_backoff_reset(&b);
    assert_int_equal(cx_backoff_next(&b), 250);
    assert_int_equal(cx_backoff_next(&b), 500);
}

static void test_clamps(void **state)
{
    cx_backoff_t b;
    (void)state;
    cx_backoff_init(&b, 0, -5); /* at least 1 ms, and the cap at least the start */
    assert_int_equal(cx_backoff_next(&b), 1);
    assert_int_equal(cx_backoff_next(&b), 1);
    cx_backoff_init(&b, 500, 100);
    assert_int_equal(cx_backoff_next(&b), 500);
    assert_int_equal(cx_backoff_next(&b), 500);
    cx_backoff_init(&b, INT64_MAX / 2 + 1, INT64_MAX); /* no overflow at the top */
    cx_backoff_next(&b);
    assert_int_equal(cx_backoff_next(&b), INT64_MAX);
    assert_int_equal(cx_backoff_next(&b), INT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_to_the_cap),
        cmocka_unit_test(test_cap_not_a_power_of_two),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_clamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
