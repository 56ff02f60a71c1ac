/*
 * test_pipelines.c -- the input checks of src/api/pipelines.c: names (UTF-8 characters, white space,
 * control characters), YAML (line and column of errors, aliases, emptiness, size), request bodies of
 * create and update, If-Match values and id shapes.
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
#include "conduix/pipelines.h"

static int name_ok(const char *s)
{
    char msg[256];
    return cx_pipeline_check_name(s, strlen(s), msg, sizeof(msg)) == CX_OK;
}

static char *repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = cx_malloc(ul * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

static void t_name(void **state)
{
    (void)state;
    assert_true(name_ok("a"));
    assert_true(name_ok("ingest orders (EU)"));
    assert_true(name_ok("\xf0\x9f\x9a\x80 rocket"));
    assert_false(name_ok(""));
    assert_false(name_ok(" a"));
    assert_false(name_ok("a "));
    assert_false(name_ok("a\n"));
    assert_false(name_ok("a\tb"));
    assert_false(name_ok("a\x7f"
                         "b"));
    assert_false(name_ok("a\xc2\x85"
                         "b")); /* C1 control NEL */
    assert_false(name_ok("\xff"));
    assert_false(name_ok("\xc0\xaf"));         /* overlong '/' */
    assert_false(name_ok("\xe0\x80\xaf"));     /* overlong */
    assert_false(name_ok("\xed\xa0\x80"));     /* surrogate */
    assert_false(name_ok("\xe2\x82"));         /* truncated */
    assert_false(name_ok("\xf4\x90\x80\x80")); /* above U+10FFFF */
    assert_false(name_ok("a\x80"));            /* stray continuation byte */
    /* Unicode white space at either end, not only ASCII's */
    assert_false(name_ok("a\xc2\xa0")); /* U+00A0 NO-BREAK SPACE */
    assert_false(name_ok("\xc2\xa0"
                         "a"));
    assert_false(name_ok("a\xe3\x80\x80")); /* U+3000 IDEOGRAPHIC SPACE */
    assert_false(name_ok("a\xe2\x80\x8b")); /* U+200B ZERO WIDTH SPACE */
    assert_false(name_ok("\xef\xbb\xbf"
                         "a"));             /* U+FEFF BOM */
    assert_false(name_ok("a\xe2\x80\xaf")); /* U+202F NARROW NO-BREAK SPACE */
    assert_true(name_ok("a\xc2\xa0"
                        "b")); /* inside is fine */
    assert_false(name_ok("\xc2\xa0"));

    char *s = repeat("a", 255);
    assert_true(name_ok(s));
    free(s);
    s = repeat("a", 256);
    assert_false(name_ok(s));
    free(s);
    s = repeat("\xc3\xa9", 255); /* 510 bytes, 255 characters */
    assert_true(name_ok(s));
    free(s);
    s = repeat("\xc3\xa9", 256);
    assert_false(name_ok(s));
    free(s);
    s = repeat("\xf0\x9f\x9a\x80", 255);
    assert_true(name_ok(s));
    free(s);

    char msg[256];
    assert_int_equal(cx_pipeline_check_name("", 0, msg, sizeof(msg)), CX_INVALID);
    assert_string_equal(msg, "must not be empty");
    /* a NUL inside the given length is a control character */
    assert_int_equal(cx_pipeline_check_name("a\0b", 3, msg, sizeof(msg)), CX_INVALID);
}

static int yaml(const char *s, char *msg)
{
    return cx_pipeline_check_yaml(s, strlen(s), msg, 512);
}

static void t_yaml_ok(void **state)
{
    char msg[512];
    (void)state;
    assert_int_equal(yaml("sources:\n  in:\n    type: kafka\nsinks:\n  out: {type: s3}\n", msg), CX_OK);
    assert_int_equal(yaml("a: 1", msg), CX_OK);
    assert_int_equal(yaml("just a scalar", msg), CX_OK);
    assert_int_equal(yaml("- 1\n- 2\n", msg), CX_OK);
    assert_int_equal(yaml("a: &x {b: 1}\nc: *x\n", msg), CX_OK);
    assert_int_equal(yaml("---\na: 1\n---\nb: 2\n", msg), CX_OK);
    assert_int_equal(yaml("a: \"\xc3\xa9t\xc3\xa9\"\n", msg), CX_OK);
}

static void t_yaml_errors(void **state)
{
    char msg[512];
    (void)state;
    assert_int_equal(yaml("a: b: c", msg), CX_INVALID);
    assert_non_null(strstr(msg, "invalid YAML at line 1, column 5: mapping values are not allowed in this context"));
    assert_int_equal(yaml("sources:\n  in:\n    type: kafka: x\n", msg), CX_INVALID);
    assert_non_null(strstr(msg, "invalid YAML at line 3, column 16: mapping values are not allowed"));
    assert_int_equal(yaml("a:\n  b: 1\n c: 2\n", msg), CX_INVALID);
    assert_non_null(strstr(msg, "invalid YAML at line 3, column 2: "));
    assert_int_equal(yaml("a: [1, 2\n", msg), CX_INVALID);
    assert_non_null(strstr(msg, "invalid YAML at line "));
    assert_int_equal(yaml("a: \"unclosed\n", msg), CX_INVALID);
    assert_non_null(strstr(msg, "invalid YAML at line "));
    assert_int_equal(yaml("a:\n\tb: 1\n", msg), CX_INVALID);
    assert_non_null(strstr(msg, "line 2, column 1"));
    /* a reader error (bad UTF-8) has a position too */
    assert_int_equal(yaml("a: 1\nb: \xff\n", msg), CX_INVALID);
    assert_non_null(strstr(msg, "invalid YAML at line 2, column 4"));
    /* aliases must refer to an anchor of their own document */
    assert_int_equal(yaml("a: *nothing\n", msg), CX_INVALID);
    assert_non_null(strstr(msg, "line 1, column 4: alias *nothing refers to no anchor"));
    assert_int_equal(yaml("a: &x 1\n---\nb: *x\n", msg), CX_INVALID);
    /* empty */
    assert_int_equal(yaml("", msg), CX_INVALID);
    assert_string_equal(msg, "must not be empty");
    assert_int_equal(yaml("# a comment only\n\n", msg), CX_INVALID);
    assert_string_equal(msg, "must not be empty");
}

static void t_yaml_limits(void **state)
{
    char msg[512];
    (void)state;
    /* billion laughs: ten levels of ten aliases each; event parsing never expands them */
    char doc[4096];
    size_t o = (size_t)snprintf(doc, sizeof(doc), "a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++) {
        o += (size_t)snprintf(doc + o, sizeof(doc) - o, "%c: &%c [", 'a' + i, 'a' + i);
        for (int k = 0; k < 10; k++)
            o += (size_t)snprintf(doc + o, sizeof(doc) - o, "%s*%c", k ? ", " : "", 'a' + i - 1);
        o += (size_t)snprintf(doc + o, sizeof(doc) - o, "]\n");
    }
    int64_t t0 = cx_now_ms();
    assert_int_equal(yaml(doc, msg), CX_OK);
    assert_true(cx_now_ms() - t0 < 2000);

    /* size: 1 MiB is the limit */
    size_t big = CX_PIPELINE_YAML_MAX + 1;
    char *s = cx_malloc(big + 1);
    memset(s, 'x', big);
    s[0] = 'a';
    s[1] = ':';
    s[2] = ' ';
    s[big] = '\0';
    assert_int_equal(cx_pipeline_check_yaml(s, big, msg, 512), CX_INVALID);
    assert_non_null(strstr(msg, "at most 1048576 bytes"));
    assert_int_equal(cx_pipeline_check_yaml(s, big - 1, msg, 512), CX_OK);
    free(s);

    /* nesting: parsed without recursion up to CX_PIPELINE_YAML_DEPTH_MAX levels, refused deeper (libyaml's
     * scanner costs the depth on every token: 100,000 levels took 30 s), flow and block alike */
    const size_t depths[] = {CX_PIPELINE_YAML_DEPTH_MAX, CX_PIPELINE_YAML_DEPTH_MAX + 1, 100000};
    s = cx_malloc(2 * 100000 + 1);
    for (size_t i = 0; i < 3; i++) {
        size_t n = depths[i];
        memset(s, '[', n);
        memset(s + n, ']', n);
        assert_int_equal(cx_pipeline_check_yaml(s, 2 * n, msg, 512), i == 0 ? CX_OK : CX_INVALID);
        if (i > 0)
            assert_string_equal(msg, "invalid YAML at line 1, column 1001: nested deeper than 1000 levels");
    }
    free(s);
    char block[2 * (CX_PIPELINE_YAML_DEPTH_MAX + 1) + 3]; /* "- - - x": sequences in sequences */
    for (size_t n = CX_PIPELINE_YAML_DEPTH_MAX; n <= CX_PIPELINE_YAML_DEPTH_MAX + 1; n++) {
        for (size_t k = 0; k < n; k++)
            memcpy(block + 2 * k, "- ", 2);
        memcpy(block + 2 * n, "x\n", 3);
        assert_int_equal(cx_pipeline_check_yaml(block, 2 * n + 2, msg, 512), n == CX_PIPELINE_YAML_DEPTH_MAX ? CX_OK : CX_INVALID);
    }
}

static json_object *js(const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

/* body -- parse text as a create or update body; the details (or NULL) into *details. */
static int body(const char *text, int update, cx_pipeline_input_t *in, json_object **keep, json_object **details)
{
    *keep = js(text);
    return cx_pipeline_parse_body(*keep, update, in, details);
}

static int has(json_object *details, const char *field)
{
    return details != NULL && json_object_object_get_ex(details, field, NULL);
}

static void t_body_create(void **state)
{
    cx_pipeline_input_t in;
    json_object *b, *d;
    (void)state;

    assert_int_equal(body("{\"name\":\"p\",\"config_yaml\":\"a: 1\",\"description\":\"d\"}", 0, &in, &b, &d), CX_OK);
    assert_null(d);
    assert_string_equal(in.name, "p");
    assert_string_equal(in.config_yaml, "a: 1");
    assert_string_equal(in.description, "d");
    assert_int_equal(in.version, 0);
    json_object_put(b);

    assert_int_equal(body("{\"name\":\"p\",\"config_yaml\":\"a: 1\",\"description\":null}", 0, &in, &b, &d), CX_OK);
    assert_string_equal(in.description, "");
    json_object_put(b);

    assert_int_equal(body("{\"name\":\"p\",\"config_yaml\":\"a: 1\"}", 0, &in, &b, &d), CX_OK);
    assert_null(in.description);
    json_object_put(b);

    assert_int_equal(body("{}", 0, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "name") && has(d, "config_yaml"));
    assert_string_equal(json_object_get_string(json_object_object_get(d, "name")), "is required");
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("{\"name\":1,\"config_yaml\":[],\"description\":{}}", 0, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "name") && has(d, "config_yaml") && has(d, "description"));
    assert_string_equal(json_object_get_string(json_object_object_get(d, "name")), "must be a string");
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("{\"name\":\"p\",\"config_yaml\":\"a: 1\",\"extra\":true}", 0, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "extra"));
    assert_int_equal(json_object_object_length(d), 1);
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("{\"name\":\"p\",\"config_yaml\":\"a: 1\",\"version\":1}", 0, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "version"));
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("{\"name\":\"a\\u0000b\",\"config_yaml\":\"a: 1\"}", 0, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "name"));
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("{\"name\":\"p\",\"config_yaml\":\"a: b: c\"}", 0, &in, &b, &d), CX_INVALID);
    assert_non_null(strstr(json_object_get_string(json_object_object_get(d, "config_yaml")), "line 1, column 5"));
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("[1]", 0, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "body"));
    json_object_put(d);
    json_object_put(b);
    assert_int_equal(cx_pipeline_parse_body(NULL, 0, &in, &d), CX_INVALID);
    json_object_put(d);

    /* description: 65535 bytes pass, 65536 do not */
    char *desc = repeat("d", CX_PIPELINE_DESC_MAX + 1);
    json_object *o = js("{\"name\":\"p\",\"config_yaml\":\"a: 1\"}");
    json_object_object_add(o, "description", json_object_new_string(desc));
    assert_int_equal(cx_pipeline_parse_body(o, 0, &in, &d), CX_INVALID);
    assert_true(has(d, "description"));
    json_object_put(d);
    desc[CX_PIPELINE_DESC_MAX] = '\0';
    json_object_object_add(o, "description", json_object_new_string(desc));
    assert_int_equal(cx_pipeline_parse_body(o, 0, &in, &d), CX_OK);
    json_object_put(o);
    free(desc);
}

static void t_body_update(void **state)
{
    cx_pipeline_input_t in;
    json_object *b, *d;
    (void)state;

    assert_int_equal(body("{\"description\":\"x\"}", 1, &in, &b, &d), CX_OK);
    assert_null(in.name);
    assert_null(in.config_yaml);
    assert_string_equal(in.description, "x");
    json_object_put(b);

    assert_int_equal(body("{\"config_yaml\":\"a: 2\",\"version\":3}", 1, &in, &b, &d), CX_OK);
    assert_int_equal(in.version, 3);
    json_object_put(b);

    assert_int_equal(body("{}", 1, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "body"));
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("{\"version\":2}", 1, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "body"));
    json_object_put(d);
    json_object_put(b);

    static const char *const bad_versions[] = {"0", "-1", "\"3\"", "1.5", "null", "true", "9223372036854775807"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad_versions); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"name\":\"n\",\"version\":%s}", bad_versions[i]);
        if (body(text, 1, &in, &b, &d) != CX_INVALID || !has(d, "version"))
            fail_msg("version %s accepted", bad_versions[i]);
        json_object_put(d);
        json_object_put(b);
    }

    assert_int_equal(body("{\"name\":null}", 1, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "name"));
    json_object_put(d);
    json_object_put(b);

    assert_int_equal(body("{\"id\":\"x\",\"name\":\"n\"}", 1, &in, &b, &d), CX_INVALID);
    assert_true(has(d, "id"));
    json_object_put(d);
    json_object_put(b);
}

static void t_if_match(void **state)
{
    int64_t v;
    (void)state;
    assert_int_equal(cx_pipeline_parse_if_match("3", &v), CX_OK);
    assert_int_equal(v, 3);
    assert_int_equal(cx_pipeline_parse_if_match("\"12\"", &v), CX_OK);
    assert_int_equal(v, 12);
    assert_int_equal(cx_pipeline_parse_if_match("  \"7\" ", &v), CX_OK);
    assert_int_equal(v, 7);
    assert_int_equal(cx_pipeline_parse_if_match("*", &v), CX_OK);
    assert_int_equal(v, 0);
    static const char *const bad[] = {"",   "W/\"3\"", "w/\"3\"",      "\"v3\"", "\"\"", "0",   "\"0\"",
                                      "-1", "1, 2",    "\"1\", \"2\"", "3\"",    "\"3",  "1e3", "99999999999999999999"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(bad); i++)
        if (cx_pipeline_parse_if_match(bad[i], &v) != CX_INVALID)
            fail_msg("If-Match '%s' accepted", bad[i]);
}

static void t_id(void **state)
{
    (void)state;
    assert_true(cx_pipeline_id_valid("00000000-0000-4000-8000-000000000001"));
    assert_true(cx_pipeline_id_valid("ABCDEF01-2345-6789-abcd-ef0123456789"));
    assert_false(cx_pipeline_id_valid(NULL));
    assert_false(cx_pipeline_id_valid(""));
    assert_false(cx_pipeline_id_valid("not-a-uuid"));
    assert_false(cx_pipeline_id_valid("00000000-0000-4000-8000-0000000000011"));
    assert_false(cx_pipeline_id_valid("00000000-0000-4000-8000-00000000000g"));
    assert_false(cx_pipeline_id_valid("00000000x0000-4000-8000-000000000001"));
    assert_false(cx_pipeline_id_valid("00000000-0000-4000-8000-00000000000'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_name),        cmocka_unit_test(t_yaml_ok),     cmocka_unit_test(t_yaml_errors),
        cmocka_unit_test(t_yaml_limits), cmocka_unit_test(t_body_create), cmocka_unit_test(t_body_update),
        cmocka_unit_test(t_if_match),    cmocka_unit_test(t_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
