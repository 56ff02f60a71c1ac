/*
 * test_agentmsg.c -- what agents send besides heartbeats (src/agentmsg.c) and the text cleaner
 * (src/utf8.c): acknowledgements over Redis (text repaired) and REST (text refused, unknown fields
 * refused), run events, ids with NUL bytes or bytes that are not UTF-8, texts cut with the mark at a
 * character boundary, and the log limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conduix/agentmsg.h"
#include "conduix/cx.h"
#include "conduix/utf8.h"

#define MARK CX_TEXT_TRUNCATED

static int ack(const char *text, cx_ack_t *a, cx_msg_error_t *err)
{
    return cx_ack_parse(text, strlen(text), "agent-1", a, err);
}

/* refused -- the Redis ack is refused, naming field */
static void refused(const char *text, const char *field)
{
    cx_msg_error_t err;
    cx_ack_t a;
    assert_int_equal(ack(text, &a, &err), CX_INVALID);
    assert_string_equal(err.field, field);
    assert_null(a.obj);
}

static void t_ack_redis(void **state)
{
    cx_msg_error_t err;
    cx_ack_t a;
    (void)state;

    assert_int_equal(ack("{\"command_id\":\"c1\",\"agent_id\":\"agent-1\",\"success\":true,\"message\":\"done\","
                         "\"timestamp\":\"2026-01-01T00:00:00.5+09:00\",\"extra\":1}",
                         &a, &err),
                     CX_OK);
    assert_string_equal(a.command_id, "c1");
    assert_true(a.success);
    assert_string_equal(a.message, "done");
    assert_null(a.error);
    assert_int_equal(a.fixed, 0);
    assert_true(a.timestamp_ms > 0);
    cx_ack_free(&a);

    /* text: bytes that are not UTF-8 and NUL become U+FFFD, the outcome stays */
    assert_int_equal(ack("{\"command_id\":\"c1\",\"success\":false,\"error\":\"no \xff plugin\\u0000!\"}", &a, &err), CX_OK);
    assert_false(a.success);
    assert_string_equal(a.error, "no \xef\xbf\xbd plugin\xef\xbf\xbd!");
    assert_int_equal(a.fixed, CX_TEXT_REPAIRED);
    cx_ack_free(&a);
    /* a text of another type over Redis is ignored, not a reason to drop the outcome */
    assert_int_equal(ack("{\"command_id\":\"c1\",\"success\":false,\"error\":{\"code\":5}}", &a, &err), CX_OK);
    assert_null(a.error);
    cx_ack_free(&a);

    refused("{\"success\":true}", "command_id");
    refused("{\"command_id\":\"c1\\u0000x\",\"success\":true}", "command_id");
    refused("{\"command_id\":\"c\xff\",\"success\":true}", "command_id");
    refused("{\"command_id\":\"has space\",\"success\":true}", "command_id");
    refused("{\"command_id\":5,\"success\":true}", "command_id");
    refused("{\"command_id\":\"c1\",\"agent_id\":\"agent-1\\u0000\",\"success\":true}", "agent_id");
    refused("{\"command_id\":\"c1\",\"agent_id\":\"agent-2\",\"success\":true}", "agent_id");
    refused("{\"command_id\":\"c1\",\"success\":\"true\"}", "success");
    refused("{\"command_id\":\"c1\"}", "success");
    refused("[\"c1\"]", "body");
    refused("{\"command_id\":\"c1\",\"success\":true} x", "body");
    refused("", "body");
}

static void t_ack_rest(void **state)
{
    cx_msg_error_t err;
    cx_ack_t a;
    json_object *o;
    (void)state;

    o = json_tokener_parse("{\"success\":true,\"message\":\"fine\",\"command_id\":\"c9\",\"agent_id\":\"agent-1\"}");
    assert_int_equal(cx_ack_check(o, CX_MSG_REST, "agent-1", "c9", &a, &err), CX_OK);
    assert_string_equal(a.message, "fine");
    cx_ack_free(&a);
    json_object_put(o);

    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"success\":true,\"extra\":1}", "extra"},
        {"{\"success\":true,\"message\":\"a\\u0000b\"}", "message"},
        {"{\"success\":true,\"error\":5}", "error"},
        {"{\"success\":true,\"command_id\":\"c8\"}", "command_id"},
        {"{\"success\":true,\"agent_id\":\"agent-2\"}", "agent_id"},
        {"{\"success\":true,\"timestamp\":\"soon\"}", "timestamp"},
        {"{\"success\":1}", "success"},
    };
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad); i++) {
        o = json_tokener_parse(bad[i].body);
        assert_non_null(o);
        assert_int_equal(cx_ack_check(o, CX_MSG_REST, "agent-1", "c9", &a, &err), CX_INVALID);
        assert_string_equal(err.field, bad[i].field);
        json_object_put(o);
    }
    /* bytes that are not UTF-8 (json-c keeps them): refused over REST, never repaired behind its back */
    o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string("bad \xc3("));
    assert_int_equal(cx_ack_check(o, CX_MSG_REST, "agent-1", "c9", &a, &err), CX_INVALID);
    assert_string_equal(err.field, "error");
    json_object_put(o);
    /* an empty field name (found by fuzz_ack) names the body, never "" */
    o = json_tokener_parse("{\"success\":true,\"\":5}");
    assert_int_equal(cx_ack_check(o, CX_MSG_REST, "agent-1", "c9", &a, &err), CX_INVALID);
    assert_string_equal(err.field, "body");
    json_object_put(o);
    /* a field name that is not printable UTF-8 is not echoed */
    o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "\xff\xfe", json_object_new_int(1));
    assert_int_equal(cx_ack_check(o, CX_MSG_REST, "agent-1", "c9", &a, &err), CX_INVALID);
    assert_string_equal(err.field, "body");
    json_object_put(o);
}

static void t_long_text(void **state)
{
    size_t n = 70000;
    char *text = cx_malloc(n + 64);
    cx_msg_error_t err;
    cx_ack_t a;
    (void)state;

    /* "é" repeated: the cut falls at a character boundary, the mark ends it, within the column */
    int k = snprintf(text, 64, "{\"command_id\":\"c1\",\"success\":false,\"error\":\"");
    for (size_t i = 0; i + 1 < n; i += 2)
        text[k++] = '\xc3', text[k++] = '\xa9';
    strcpy(text + k, "\"}");
    assert_int_equal(ack(text, &a, &err), CX_OK);
    size_t len = strlen(a.error);
    assert_true(len <= CX_AGENT_TEXT_MAX);
    assert_true(len > CX_AGENT_TEXT_MAX - 4);
    assert_int_equal(a.fixed, CX_TEXT_TRUNCATED_FLAG);
    assert_memory_equal(a.error + len - strlen(MARK), MARK, strlen(MARK));
    assert_true(cx_utf8_check(a.error, len, NULL) >= 0);
    cx_ack_free(&a);
    free(text);
}

static void t_clean(void **state)
{
    unsigned f;
    char *c;
    (void)state;

    c = cx_utf8_clean("plain", 5, 100, &f);
    assert_string_equal(c, "plain");
    assert_int_equal(f, 0);
    free(c);
    c = cx_utf8_clean("a\0b\xc0\xaf\xed\xa0\x80", 8, 100, &f); /* NUL, an overlong '/', a surrogate */
    assert_string_equal(c, "a\xef\xbf\xbd"
                           "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(f, CX_TEXT_REPAIRED);
    free(c);
    /* cut: 17 bytes of room, the mark takes 14: byte 3 is inside a euro sign (3 bytes), which is not split */
    c = cx_utf8_clean("ab\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 20, 17, &f);
    assert_string_equal(c, "ab" MARK);
    assert_int_equal(f, CX_TEXT_TRUNCATED_FLAG);
    free(c);
    /* 20 bytes of room: the cut falls right before a character */
    c = cx_utf8_clean("abcdef\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 21, 20, &f);
    assert_string_equal(c, "abcdef" MARK);
    assert_int_equal(strlen(c), 20);
    free(c);
    /* within the room: untouched */
    c = cx_utf8_clean("abcdef\xe2\x82\xac", 9, 9, &f);
    assert_string_equal(c, "abcdef\xe2\x82\xac");
    assert_int_equal(f, 0);
    free(c);
    c = cx_utf8_clean("", 0, 20, &f);
    assert_string_equal(c, "");
    free(c);
}

static void t_event(void **state)
{
    const char *ok = "{\"type\":\"run_status\",\"agent_id\":\"a1\",\"pipeline_id\":\"p1\",\"run_id\":\"r1\",\"status\":\"failed\","
                     "\"processed_count\":7,\"error_count\":\"x\",\"error_message\":\"disk \xff full\"}";
    cx_msg_error_t err;
    cx_event_t ev;
    (void)state;

    assert_int_equal(cx_event_parse(ok, strlen(ok), &ev, &err), CX_OK);
    assert_string_equal(ev.agent_id, "a1");
    assert_string_equal(ev.run_id, "r1");
    assert_true(ev.has_status);
    assert_int_equal(ev.status, CX_RUN_FAILED);
    assert_int_equal(ev.processed_count, 7);
    assert_int_equal(ev.error_count, -1); /* not a count: ignored, the status stays */
    assert_string_equal(ev.error_message, "disk \xef\xbf\xbd full");
    assert_int_equal(ev.fixed, CX_TEXT_REPAIRED);
    cx_event_free(&ev);

    /* another type: accepted, nothing else read */
    assert_int_equal(cx_event_parse("{\"type\":\"metrics\"}", 18, &ev, &err), CX_OK);
    assert_string_equal(ev.type, "metrics");
    assert_null(ev.agent_id);
    cx_event_free(&ev);

    static const struct {
        const char *text, *field;
    } bad[] = {
        {"{\"type\":\"run_status\",\"run_id\":\"r1\",\"status\":\"completed\"}", "agent_id"},
        {"{\"type\":\"run_status\",\"agent_id\":\"a1\\u0000\",\"run_id\":\"r1\"}", "agent_id"},
        {"{\"type\":\"run_status\",\"agent_id\":\"a1\"}", "run_id"},
        {"{\"type\":\"run_status\",\"agent_id\":\"a1\",\"run_id\":\"r1\\u0000\"}", "run_id"},
        {"{\"type\":\"run_status\",\"agent_id\":\"a1\",\"pipeline_id\":\"0123456789012345678901234567890123456\"}", "pipeline_id"},
        {"{\"type\":\"run_status\",\"agent_id\":\"a1\",\"run_id\":\"r1\",\"status\":\"lost\"}", "status"},
        {"{\"type\":\"run_status\",\"agent_id\":\"a1\",\"run_id\":\"r1\",\"status\":\"pending\"}", "status"},
        {"{\"type\":\"run_status\",\"agent_id\":\"a1\",\"run_id\":\"r1\",\"status\":1}", "status"},
        {"{\"agent_id\":\"a1\"}", "type"},
        {"{\"type\":\"a b\"}", "type"},
        {"not json", "body"},
    };
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad); i++) {
        assert_int_equal(cx_event_parse(bad[i].text, strlen(bad[i].text), &ev, &err), CX_INVALID);
        assert_string_equal(err.field, bad[i].field);
        assert_null(ev.obj);
    }
}

static void t_loglimit(void **state)
{
    cx_loglimit_t l = {0};
    int n = 0;
    (void)state;

    for (int i = 0; i < 100; i++)
        n += cx_loglimit_allow(&l, "test lines");
    assert_int_equal(n, 20);
    assert_int_equal(l.suppressed, 80);
    l.start -= 10001; /* the window is over: the count of held-back lines is logged, then lines again */
    assert_true(cx_loglimit_allow(&l, "test lines"));
    assert_int_equal(l.suppressed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_ack_redis), cmocka_unit_test(t_ack_rest), cmocka_unit_test(t_long_text),
        cmocka_unit_test(t_clean),     cmocka_unit_test(t_event),    cmocka_unit_test(t_loglimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
