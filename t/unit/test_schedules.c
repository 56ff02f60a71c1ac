/*
 * test_schedules.c -- the pure parts of schedules: what a due fire becomes after an outage
 * (cx_schedule_plan: the latest fire time within the deadline runs, the others are missed; @every;
 * DST; the cap on years of missed fires), next and upcoming fire times, compiling an expression with
 * its zone (which field a refusal names, the CRON_TZ= prefix winning), the API's body checks (every bad
 * field named, unknown fields refused, null timezone), and the overlap policy names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conduix/cx.h"
#include "conduix/schedules.h"

#define T0 1704067200 /* 2024-01-01T00:00:00Z, a Monday */

static cx_schedule_cron_t compile(const char *expr, const char *tz)
{
    cx_schedule_cron_t c;
    const char *field;
    char err[256];
    if (cx_schedule_compile(expr, tz, &c, &field, err, sizeof(err)) != CX_OK)
        fail_msg("%s: %s: %s", expr, field, err);
    return c;
}

static void t_plan_cron(void **state)
{
    cx_schedule_cron_t c = compile("*/5 * * * *", "UTC");
    cx_fire_plan_t p;
    (void)state;

    /* on time: the fire itself, nothing missed */
    cx_schedule_plan(&c, T0, T0, 300, &p);
    assert_int_equal(p.fire_at, T0);
    assert_int_equal(p.missed, 0);
    assert_int_equal(p.next, T0 + 300);
    /* a second late: the same */
    cx_schedule_plan(&c, T0, T0 + 1, 300, &p);
    assert_int_equal(p.fire_at, T0);
    assert_int_equal(p.next, T0 + 300);
    /* 17 min 3 s late: :00 :05 :10 missed, :15 runs (2 min 3 s old, within 5 min), next :20 */
    cx_schedule_plan(&c, T0, T0 + 17 * 60 + 3, 300, &p);
    assert_int_equal(p.fire_at, T0 + 15 * 60);
    assert_int_equal(p.missed, 3);
    assert_int_equal(p.next, T0 + 20 * 60);
    assert_int_equal(p.capped, 0);
    /* the same with a one-minute deadline: :15 is too old as well */
    cx_schedule_plan(&c, T0, T0 + 17 * 60 + 3, 60, &p);
    assert_int_equal(p.fire_at, CX_CRON_NONE);
    assert_int_equal(p.missed, 4);
    assert_int_equal(p.next, T0 + 20 * 60);
    /* deadline 0: only a fire of this very second runs */
    cx_schedule_plan(&c, T0, T0, 0, &p);
    assert_int_equal(p.fire_at, T0);
    cx_schedule_plan(&c, T0, T0 + 1, 0, &p);
    assert_int_equal(p.fire_at, CX_CRON_NONE);
    assert_int_equal(p.missed, 1);
}

static void t_plan_every(void **state)
{
    cx_schedule_cron_t c = compile("@every 90s", NULL);
    cx_fire_plan_t p;
    (void)state;

    cx_schedule_plan(&c, T0, T0 + 200, 300, &p);
    assert_int_equal(p.fire_at, T0 + 180);
    assert_int_equal(p.missed, 2);
    assert_int_equal(p.next, T0 + 270);
    cx_schedule_plan(&c, T0, T0 + 200, 10, &p);
    assert_int_equal(p.fire_at, CX_CRON_NONE);
    assert_int_equal(p.missed, 3);
    assert_int_equal(p.next, T0 + 270);
    /* a year of every second: counted at once, not stepped */
    c = compile("@every 1s", NULL);
    cx_schedule_plan(&c, T0, T0 + 31536000, 300, &p);
    assert_int_equal(p.fire_at, T0 + 31536000);
    assert_int_equal(p.missed, 31536000);
    assert_int_equal(p.next, T0 + 31536001);
}

static void t_plan_not_due(void **state)
{
    cx_schedule_cron_t c = compile("0 * * * *", NULL);
    cx_fire_plan_t p;
    (void)state;

    cx_schedule_plan(&c, T0 + 3600, T0, 300, &p);
    assert_int_equal(p.fire_at, CX_CRON_NONE);
    assert_int_equal(p.missed, 0);
    assert_int_equal(p.next, T0 + 3600);
}

static void t_plan_dst(void **state)
{
    /* New York, 02:30 daily across the spring-forward of 2024-03-10: 03-09 02:30 EST, 03-10 03:00 EDT (the
     * end of the gap), 03-11 02:30 EDT; at 03-11 12:00Z the last one runs and the two before are missed. */
    cx_schedule_cron_t c = compile("30 2 * * *", "America/New_York");
    cx_fire_plan_t p;
    (void)state;

    assert_int_equal(cx_schedule_next(&c, 1709969400), 1710054000);
    cx_schedule_plan(&c, 1709969400, 1710158400, 86400, &p);
    assert_int_equal(p.fire_at, 1710138600);
    assert_int_equal(p.missed, 2);
    assert_int_equal(p.next, 1710225000);
    /* the CRON_TZ= prefix wins over the schedule's zone */
    c = compile("CRON_TZ=America/New_York 30 2 * * *", "Asia/Seoul");
    assert_int_equal(cx_schedule_next(&c, 1709969400), 1710054000);
}

static void t_plan_capped(void **state)
{
    /* three years of every-minute fires (1.5 million): counted up to the cap, then the deadline's window */
    cx_schedule_cron_t c = compile("* * * * *", NULL);
    int64_t now = T0 + 3 * 31536000LL + 30;
    cx_fire_plan_t p;
    (void)state;

    cx_schedule_plan(&c, T0, now, 300, &p);
    assert_int_equal(p.capped, 1);
    assert_true(p.missed >= CX_SCHEDULE_CATCHUP_MAX);
    assert_int_equal(p.fire_at, now - 30);
    assert_int_equal(p.next, now + 30);
}

static void t_upcoming(void **state)
{
    cx_schedule_cron_t c = compile("0 0 * * *", "Asia/Seoul");
    int64_t out[CX_SCHEDULE_UPCOMING];
    (void)state;

    /* midnight in Seoul is 15:00Z */
    assert_int_equal(cx_schedule_next(&c, T0), T0 + 15 * 3600);
    assert_int_equal(cx_schedule_upcoming(&c, T0 + 15 * 3600, out, CX_SCHEDULE_UPCOMING), CX_SCHEDULE_UPCOMING);
    for (int i = 0; i < CX_SCHEDULE_UPCOMING; i++)
        assert_int_equal(out[i], T0 + 15 * 3600 + i * 86400);
    c = compile("@every 1h30m", NULL);
    assert_int_equal(cx_schedule_upcoming(&c, T0, out, 3), 3);
    assert_int_equal(out[2], T0 + 2 * 5400);
    /* the first of every month in Seoul: the day before at 15:00Z */
    c = compile("0 0 1 * *", "Asia/Seoul");
    assert_int_equal(cx_schedule_next(&c, T0), T0 + 30 * 86400 + 15 * 3600); /* 2024-01-31T15:00Z */
    /* near the end of time */
    c = compile("@every 1s", NULL);
    assert_int_equal(cx_schedule_next(&c, CX_CRON_MAX_TIME), CX_CRON_NONE);
}

static void t_compile_errors(void **state)
{
    cx_schedule_cron_t c;
    const char *field;
    char err[256];
    (void)state;

    assert_int_equal(cx_schedule_compile("61 * * * *", NULL, &c, &field, err, sizeof(err)), CX_INVALID);
    assert_string_equal(field, "cron_expression");
    assert_string_equal(err, "minute: 61 is out of range 0-59");
    assert_int_equal(cx_schedule_compile("0 9 * * *", "Mars/Olympus", &c, &field, err, sizeof(err)), CX_INVALID);
    assert_string_equal(field, "timezone");
    assert_string_equal(err, "unknown time zone \"Mars/Olympus\"");
    assert_int_equal(cx_schedule_compile("CRON_TZ=Mars/Olympus 0 9 * * *", "UTC", &c, &field, err, sizeof(err)), CX_INVALID);
    assert_string_equal(field, "cron_expression");
    assert_non_null(strstr(err, "Mars/Olympus"));
    /* a zone is loaded once per process */
    assert_ptr_equal(cx_schedule_zone("Europe/London", err, sizeof(err)), cx_schedule_zone("Europe/London", err, sizeof(err)));
}

static json_object *held; /* the last body parsed: in points into it */

/* body -- parse JSON text as a create (update 0) or update body; the details as compact text, or "". */
static int body(const char *json, int update, cx_schedule_input_t *in, char *details, size_t len)
{
    json_object *d = NULL;
    int rc;

    json_object_put(held);
    held = json_tokener_parse(json);
    rc = cx_schedule_parse_body(held, update, in, &d);
    snprintf(details, len, "%s", d ? json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN) : "");
    json_object_put(d);
    return rc;
}

static void t_parse_body(void **state)
{
    cx_schedule_input_t in;
    char d[2048];
    (void)state;

    assert_int_equal(
        body("{\"pipeline_id\":\"0a1b2c3d-0000-4000-8000-000000000001\",\"cron_expression\":\"0 * * * *\"}", 0, &in, d, sizeof(d)),
        CX_OK);
    assert_string_equal(in.cron_expression, "0 * * * *");
    assert_int_equal(in.enabled, -1);
    assert_int_equal(in.timezone_given, 0);
    assert_int_equal(in.has_overlap, 0);

    assert_int_equal(body("{}", 0, &in, d, sizeof(d)), CX_INVALID);
    assert_non_null(strstr(d, "\"pipeline_id\":\"is required\""));
    assert_non_null(strstr(d, "\"cron_expression\":\"is required\""));

    assert_int_equal(body("{\"pipeline_id\":\"x\",\"cron_expression\":\"0 0 30 2 *\",\"timezone\":\"Nowhere/Land\","
                          "\"enabled\":\"yes\",\"overlap_policy\":\"often\",\"owner\":1}",
                          0, &in, d, sizeof(d)),
                     CX_INVALID);
    for (const char *f = "pipeline_id\0cron_expression\0timezone\0enabled\0overlap_policy\0owner\0"; *f; f += strlen(f) + 1) {
        char key[64];
        snprintf(key, sizeof(key), "\"%s\":", f);
        if (strstr(d, key) == NULL)
            fail_msg("details miss %s: %s", f, d);
    }
    assert_non_null(strstr(d, "can never fire"));
    assert_non_null(strstr(d, "unknown field"));

    assert_int_equal(body("{\"timezone\":null,\"overlap_policy\":\"replace\",\"enabled\":false}", 1, &in, d, sizeof(d)), CX_OK);
    assert_int_equal(in.timezone_given, 1);
    assert_null(in.timezone);
    assert_int_equal(in.overlap_policy, CX_OVERLAP_REPLACE);
    assert_int_equal(in.enabled, 0);

    assert_int_equal(body("{}", 1, &in, d, sizeof(d)), CX_INVALID);
    assert_non_null(strstr(d, "nothing to update"));
    assert_int_equal(body("{\"timezone\":\"localtime\"}", 1, &in, d, sizeof(d)), CX_INVALID);
    assert_non_null(strstr(d, "not the server's own"));
    assert_int_equal(body("[1]", 1, &in, d, sizeof(d)), CX_INVALID);
    assert_non_null(strstr(d, "\"body\""));
    assert_int_equal(body("{\"cron_expression\":\"a\\u0000b\"}", 1, &in, d, sizeof(d)), CX_INVALID);
    assert_non_null(strstr(d, "NUL"));
    json_object_put(held);
    held = NULL;
}

static void t_overlap_names(void **state)
{
    cx_overlap_t o;
    (void)state;

    for (int i = 0; i < CX_OVERLAP_POLICY_COUNT; i++) {
        assert_int_equal(cx_overlap_parse(cx_overlap_name((cx_overlap_t)i), &o), CX_OK);
        assert_int_equal(o, i);
    }
    assert_string_equal(cx_overlap_name(CX_OVERLAP_SKIP), "skip");
    assert_int_equal(cx_overlap_parse("Skip", &o), CX_INVALID);
    assert_int_equal(cx_overlap_parse(NULL, &o), CX_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_plan_cron),      cmocka_unit_test(t_plan_every),  cmocka_unit_test(t_plan_not_due),
        cmocka_unit_test(t_plan_dst),       cmocka_unit_test(t_plan_capped), cmocka_unit_test(t_upcoming),
        cmocka_unit_test(t_compile_errors), cmocka_unit_test(t_parse_body),  cmocka_unit_test(t_overlap_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
