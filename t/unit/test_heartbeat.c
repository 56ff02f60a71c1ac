/*
 * test_heartbeat.c -- the heartbeat parser: what the Go agents write is accepted as-is, everything that
 * could hurt the registry is refused with the field at fault; and the agent id of a heartbeat key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>
#include "conduix/heartbeat.h"
#include "conduix/utf8.h"
#include "conduix/cx.h"

static int parse(const char *text, const char *id, cx_heartbeat_t *hb, cx_hb_error_t *err)
{
    return cx_heartbeat_parse(text, strlen(text), id, hb, err);
}

/* rejects -- text is refused and the error names field. */
static void rejects(const char *text, const char *id, const char *field)
{
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    int rc = parse(text, id, &hb, &err);
    if (rc != CX_INVALID)
        fail_msg("accepted: %s", text);
    if (strcmp(err.field, field) != 0)
        fail_msg("field '%s' (%s) instead of '%s' for %s", err.field, err.msg, field, text);
    assert_true(err.msg[0] != '\0');
    assert_null(hb.obj);
    assert_null(hb.pipelines);
}

static void test_go_agent_beat(void **state)
{
    /* exactly the shape of the original agents: nanoseconds, +09:00, zero usages, no stats */
    const char *t = "{\"agent_id\":\"agent-1\",\"timestamp\":\"2024-03-01T18:04:05.123456789+09:00\","
                    "\"cpu_usage\":0,\"memory_usage\":0,\"disk_usage\":0,\"pipelines\":[]}";
    cx_heartbeat_t hb;
    cx_hb_error_t err;

    assert_int_equal(parse(t, "agent-1", &hb, &err), CX_OK);
    assert_string_equal(hb.agent_id, "agent-1");
    assert_int_equal(hb.timestamp_ms, 1709283845123LL); /* 09:04:05.123Z */
    assert_true(hb.cpu_usage == 0 && hb.memory_usage == 0 && hb.disk_usage == 0);
    assert_string_equal(hb.pipelines, "[]");
    assert_int_equal(hb.npipelines, 0);
    assert_null(hb.hostname);
    assert_null(hb.ip_address);
    assert_null(hb.version);
    assert_null(hb.labels);
    cx_heartbeat_free(&hb);
}

static void test_full_beat(void **state)
{
    const char *t = "{\"agent_id\":\"a/b\",\"timestamp\":\"2026-01-02T03:04:05Z\",\"cpu_usage\":12.5,"
                    "\"memory_usage\":40,\"disk_usage\":99.9,\"pipelines\":[\"p1\",\"p2\"],"
                    "\"pipeline_stats\":[{\"pipeline_id\":\"p1\",\"status\":\"running\",\"processed_count\":10,"
                    "\"error_count\":0}],\"hostname\":\"h1\",\"ip_address\":\"10.0.0.1\",\"version\":\"1.2.3\","
                    "\"labels\":{\"zone\":\"eu-1\",\"gpu\":\"yes\"},\"extra\":{\"ignored\":true}}";
    cx_heartbeat_t hb;
    cx_hb_error_t err;

    assert_int_equal(parse(t, "a/b", &hb, &err), CX_OK);
    assert_true(hb.cpu_usage == 12.5 && hb.memory_usage == 40 && hb.disk_usage > 99.8);
    assert_string_equal(hb.pipelines, "[\"p1\",\"p2\"]");
    assert_int_equal(hb.npipelines, 2);
    assert_string_equal(hb.hostname, "h1");
    assert_string_equal(hb.ip_address, "10.0.0.1");
    assert_string_equal(hb.version, "1.2.3");
    assert_string_equal(hb.labels, "{\"zone\":\"eu-1\",\"gpu\":\"yes\"}");
    cx_heartbeat_free(&hb);
}

static void test_lenient(void **state)
{
    cx_heartbeat_t hb;
    cx_hb_error_t err;

    /* Go's nil slice is null; nulls and absent optional fields are accepted; any offset, no fraction */
    assert_int_equal(parse("{\"agent_id\":\"x\",\"timestamp\":\"2024-03-01T18:04:05-05:30\",\"pipelines\":null,"
                           "\"pipeline_stats\":null,\"hostname\":null,\"labels\":null,\"cpu_usage\":null}",
                           "x", &hb, &err),
                     CX_OK);
    assert_string_equal(hb.pipelines, "[]");
    assert_null(hb.hostname);
    assert_null(hb.labels);
    cx_heartbeat_free(&hb);
    assert_int_equal(parse("{\"agent_id\":\"x\"}", "x", &hb, &err), CX_OK);
    assert_int_equal(hb.timestamp_ms, -1);
    cx_heartbeat_free(&hb);
    /* no expected id: any valid id */
    assert_int_equal(parse(" {\"agent_id\":\"y\"}\n", NULL, &hb, &err), CX_OK);
    assert_string_equal(hb.agent_id, "y");
    cx_heartbeat_free(&hb);
}

/* Beats refused, each with the field the error names: the expected agent id (NULL: any). */
static const struct {
    const char *text, *id, *field;
} bad[] = {
    {"", "x", "body"},
    {"not json", "x", "body"},
    {"{\"agent_id\":\"x\"", "x", "body"},
    {"{\"agent_id\":\"x\"} trailing", "x", "body"},
    {"{\"agent_id\":\"x\",}", "x", "body"},
    {"[\"agent_id\"]", "x", "body"},
    {"\"x\"", "x", "body"},
    {"null", "x", "body"},
    {"{\"agent_id\":\"x\",\"hostname\":\"\xff\xfe\"}", "x", "body"},
    {"{\"timestamp\":\"2024-03-01T18:04:05Z\"}", "x", "agent_id"},
    {"{\"agent_id\":\"other\"}", "x", "agent_id"},
    {"{\"agent_id\":42}", "x", "agent_id"},
    {"{\"agent_id\":\"\"}", NULL, "agent_id"},
    {"{\"agent_id\":\"a b\"}", NULL, "agent_id"},
    {"{\"agent_id\":\"a\\u0001\"}", NULL, "agent_id"},
    {"{\"agent_id\":\"x\",\"cpu_usage\":\"12\"}", "x", "cpu_usage"},
    {"{\"agent_id\":\"x\",\"memory_usage\":true}", "x", "memory_usage"},
    {"{\"agent_id\":\"x\",\"disk_usage\":-1}", "x", "disk_usage"},
    {"{\"agent_id\":\"x\",\"cpu_usage\":1e400}", "x", "cpu_usage"},
    {"{\"agent_id\":\"x\",\"timestamp\":\"yesterday\"}", "x", "timestamp"},
    {"{\"agent_id\":\"x\",\"timestamp\":1700000000}", "x", "timestamp"},
    {"{\"agent_id\":\"x\",\"pipelines\":\"p1\"}", "x", "pipelines"},
    {"{\"agent_id\":\"x\",\"pipelines\":[1,2]}", "x", "pipelines"},
    {"{\"agent_id\":\"x\",\"pipelines\":[\"\"]}", "x", "pipelines"},
    {"{\"agent_id\":\"x\",\"pipeline_stats\":{}}", "x", "pipeline_stats"},
    {"{\"agent_id\":\"x\",\"pipeline_stats\":[{\"status\":\"running\"}]}", "x", "pipeline_stats"},
    {"{\"agent_id\":\"x\",\"pipeline_stats\":[{\"pipeline_id\":\"p\",\"processed_count\":\"1\"}]}", "x", "pipeline_stats"},
    {"{\"agent_id\":\"x\",\"hostname\":5}", "x", "hostname"},
    {"{\"agent_id\":\"x\",\"ip_address\":[]}", "x", "ip_address"},
    {"{\"agent_id\":\"x\",\"version\":{}}", "x", "version"},
    {"{\"agent_id\":\"x\",\"hostname\":\"a\\nb\"}", "x", "hostname"},
    {"{\"agent_id\":\"x\",\"labels\":[\"a\"]}", "x", "labels"},
    {"{\"agent_id\":\"x\",\"labels\":{\"a\":1}}", "x", "labels"},
    {"{\"agent_id\":\"x\",\"labels\":{\"a\":null}}", "x", "labels"},
};

static void test_rejected(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        rejects(bad[i].text, bad[i].id, bad[i].field);
    /* too deep */
    char deep[200] = "{\"agent_id\":\"x\",\"a\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    rejects(deep, "x", "body");
    /* an id longer than an agent id may be */
    char big[400];
    snprintf(big, sizeof(big), "{\"agent_id\":\"%0300d\"}", 0);
    rejects(big, NULL, "agent_id");
}

static void test_sizes(void **state)
{
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    size_t cap = CX_HB_MAX_BYTES + 100, n;
    char *t = malloc(cap + 1);

    /* 1000 pipelines fit, 1001 do not */
    n = (size_t)snprintf(t, cap, "{\"agent_id\":\"x\",\"pipelines\":[");
    for (int i = 0; i < CX_HB_MAX_PIPELINES; i++)
        n += (size_t)snprintf(t + n, cap - n, "%s\"p%d\"", i ? "," : "", i);
    snprintf(t + n, cap - n, "]}");
    assert_int_equal(parse(t, "x", &hb, &err), CX_OK);
    assert_int_equal(hb.npipelines, CX_HB_MAX_PIPELINES);
    cx_heartbeat_free(&hb);
    snprintf(t + n, cap - n, ",\"p\"]}");
    rejects(t, "x", "pipelines");

    /* larger than the cap: refused before parsing, flagged too large */
    memset(t, ' ', cap);
    memcpy(t, "{\"agent_id\":\"x\"}", 16);
    t[cap] = '\0';
    assert_int_equal(cx_heartbeat_parse(t, cap, "x", &hb, &err), CX_INVALID);
    assert_true(err.too_large);
    /* exactly the cap is fine (whitespace after the object) */
    assert_int_equal(cx_heartbeat_parse(t, CX_HB_MAX_BYTES, "x", &hb, &err), CX_OK);
    cx_heartbeat_free(&hb);

    /* too many labels, too long values */
    n = (size_t)snprintf(t, cap, "{\"agent_id\":\"x\",\"labels\":{");
    for (int i = 0; i <= CX_HB_MAX_LABELS; i++)
        n += (size_t)snprintf(t + n, cap - n, "%s\"k%d\":\"v\"", i ? "," : "", i);
    snprintf(t + n, cap - n, "}}");
    rejects(t, "x", "labels");
    n = (size_t)snprintf(t, cap, "{\"agent_id\":\"x\",\"hostname\":\"");
    memset(t + n, 'h', 300);
    snprintf(t + n + 300, cap - n - 300, "\"}");
    rejects(t, "x", "hostname");
    free(t);
}

static void test_not_nul_terminated(void **state)
{
    const char src[] = "{\"agent_id\":\"x\"}GARBAGE";
    cx_heartbeat_t hb;
    cx_hb_error_t err;

    assert_int_equal(cx_heartbeat_parse(src, 16, "x", &hb, &err), CX_OK);
    cx_heartbeat_free(&hb);
    assert_int_equal(cx_heartbeat_parse(src, 17, "x", &hb, &err), CX_INVALID);
    /* an embedded NUL is not the end of the input */
    assert_int_equal(cx_heartbeat_parse("{\"agent_id\":\"x\"}\0{}", 19, "x", &hb, &err), CX_INVALID);
}

static void test_key_id(void **state)
{
    char id[CX_AGENT_ID_MAX + 1];
    const char *k = "agent:sim-agent-0001:heartbeat";

    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), 14);
    assert_string_equal(id, "sim-agent-0001");
    k = "agent:a:b:heartbeat";
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), 3);
    assert_string_equal(id, "a:b");
    k = "agent::heartbeat";
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), -1);
    k = "agent:x:heartbeats";
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), -1);
    k = "agents:x:heartbeat";
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), -1);
    k = "agent:a b:heartbeat";
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), -1);
    assert_int_equal(cx_heartbeat_key_id("agent:x\0y:heartbeat", 19, id), -1);
    char big[300];
    snprintf(big, sizeof(big), "agent:%0256d:heartbeat", 0);
    assert_int_equal(cx_heartbeat_key_id(big, strlen(big), id), -1);
    snprintf(big, sizeof(big), "agent:%0255d:heartbeat", 0);
    assert_int_equal(cx_heartbeat_key_id(big, strlen(big), id), 255);
    /* UTF-8 ids are fine, broken UTF-8 is not */
    k = "agent:\xc3\xa9t\xc3\xa9:heartbeat";
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), 5);
    k = "agent:\xc3:heartbeat";
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), -1);
    k = "agent:\xed\xa0\x80:heartbeat"; /* a surrogate */
    assert_int_equal(cx_heartbeat_key_id(k, strlen(k), id), -1);
}

/* test_no_carry_over -- a beat refused in the middle of a \u surrogate pair leaves nothing behind for
 * the next beat (of another agent) in the shared tokener (fuzz_heartbeat found json-c's
 * json_tokener_reset keeping the pending high surrogate, which put a U+FFFD into the next text); also
 * a label name cut in the middle of a character in a message (found by its corpus). */
static void test_no_carry_over(void **state)
{
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    (void)state;

    rejects("{\"agent_id\":\"a1\",\"hostname\":\"\\ud800\\uZZZZ\"}", NULL, "body");
    assert_int_equal(parse("{\"agent_id\":\"caf\\u00e9\",\"hostname\":\"h\\u00e9\",\"pipelines\":[]}", NULL, &hb, &err), CX_OK);
    assert_string_equal(hb.agent_id, "caf\xc3\xa9");
    assert_string_equal(hb.hostname, "h\xc3\xa9");
    cx_heartbeat_free(&hb);

    /* 63 bytes of name then an e-acute: the message names it in printable ASCII, never half a character */
    char text[256];
    snprintf(text, sizeof(text), "{\"agent_id\":\"a\",\"labels\":{\"%s\xc3\xa9\":5}}",
             "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
    assert_int_equal(parse(text, NULL, &hb, &err), CX_INVALID);
    assert_string_equal(err.field, "labels");
    assert_true(cx_utf8_check(err.msg, strlen(err.msg), NULL) >= 0);
    assert_non_null(strstr(err.msg, "kkkkkkkk"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_agent_beat), cmocka_unit_test(test_full_beat),     cmocka_unit_test(test_lenient),
        cmocka_unit_test(test_rejected),      cmocka_unit_test(test_sizes),         cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_key_id),        cmocka_unit_test(test_no_carry_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
