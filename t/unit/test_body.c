/*
 * test_body.c -- the request body's JSON (src/http/body.c, cx_body_parse_text): strict parsing with a
 * position, and what json-c alone would take: repeated keys, keys with NUL, single-quoted strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conduix/cx.h"
#include "conduix/http.h"

static char msg[256];

/* parse -- CX_OK or CX_INVALID for the text s (msg holds the reason). */
static int parse(const char *s)
{
    json_object *o = NULL;
    size_t n = strlen(s);
    char *copy = cx_malloc(n + 1);
    memcpy(copy, s, n + 1);
    msg[0] = '\0';
    int rc = cx_body_parse_text(copy, n, &o, msg, sizeof(msg));
    if (rc == CX_OK)
        assert_non_null(o);
    else
        assert_null(o);
    json_object_put(o);
    free(copy);
    return rc;
}

static void t_ok(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"name\":\"a\",\"description\":\"b\"}"), CX_OK);
    assert_int_equal(parse("[1,2,{\"a\":1},{\"a\":2}]"), CX_OK);             /* the same key in two objects */
    assert_int_equal(parse("{\"a\":{\"a\":{\"a\":1}}}"), CX_OK);             /* and at each level */
    assert_int_equal(parse("{\"a\":\"{\\\"a\\\":1,\\\"a\\\":2}\"}"), CX_OK); /* quoted text is not an object */
    assert_int_equal(parse("{\"x'y\":\"it's\"}"), CX_OK);
    assert_int_equal(parse("{\"a\":1,\"A\":2,\"a \":3}"), CX_OK);
    assert_int_equal(parse("\"\\u0000 in a value is kept\""), CX_OK);
    assert_int_equal(parse("{}"), CX_OK);
    assert_int_equal(parse("{\"\":1}"), CX_OK);
}

static void t_duplicates(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"name\":\"a\",\"name\":\"b\"}"), CX_INVALID);
    assert_string_equal(msg, "duplicate key \"name\" at line 1, column 13: each key may appear once in an object");
    assert_int_equal(parse("{\n  \"a\": 1,\n  \"b\": {\"c\": 1, \"c\": 2}\n}"), CX_INVALID);
    assert_non_null(strstr(msg, "duplicate key \"c\" at line 3, column 17"));
    /* escapes are decoded before the comparison */
    assert_int_equal(parse("{\"a\":1,\"\\u0061\":2}"), CX_INVALID);
    assert_non_null(strstr(msg, "duplicate key \"a\""));
    assert_int_equal(parse("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}"), CX_INVALID);
    assert_int_equal(parse("{\"a/b\":1,\"a\\/b\":2}"), CX_INVALID);
    assert_int_equal(parse("{\"\":1,\"\":2}"), CX_INVALID);
    assert_int_equal(parse("[{\"k\":[{\"z\":1,\"y\":2,\"z\":3}]}]"), CX_INVALID);
}

static void t_refused(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"name\\u0000x\":1}"), CX_INVALID);
    assert_non_null(strstr(msg, "NUL"));
    assert_int_equal(parse("{'a':1}"), CX_INVALID);
    assert_non_null(strstr(msg, "double quotes"));
    assert_int_equal(parse("[1, NaN]"), CX_INVALID);
    assert_string_equal(msg, "malformed JSON at line 1, column 5: NaN and Infinity are not JSON numbers");
    assert_int_equal(parse("{\"version\": -Infinity}"), CX_INVALID);
    assert_int_equal(parse("[Infinity]"), CX_INVALID);
    assert_int_equal(parse("{\"name\":\"\\ud800\"}"), CX_INVALID);
    assert_non_null(strstr(msg, "line 1, column 9: a string holds an unpaired surrogate"));
    assert_int_equal(parse("[\"\\udc00x\"]"), CX_INVALID);
    assert_int_equal(parse("{\"\\ud83dk\":1}"), CX_INVALID);
    assert_int_equal(parse("[\"\\ud83d\\ude00\"]"), CX_OK);
    assert_int_equal(parse("[\"NaN\", \"Infinity\"]"), CX_OK);
    assert_int_equal(parse("{'a':1}"), CX_INVALID);
    assert_non_null(strstr(msg, "double quotes"));
    assert_int_equal(parse("{\"a\":1} x"), CX_INVALID);
    assert_non_null(strstr(msg, "line 1, column 9"));
    assert_int_equal(parse("{\"a\":"), CX_INVALID);
    assert_int_equal(parse("[1,]"), CX_INVALID);
    assert_int_equal(parse(""), CX_INVALID);
    assert_int_equal(parse("{\"a\":\"\xff\"}"), CX_INVALID);
    assert_string_equal(msg, "malformed JSON at line 1, column 7: not valid UTF-8");
    assert_int_equal(parse("{\"\xc3\":1}"), CX_INVALID);         /* a truncated character in a key */
    assert_int_equal(parse("{\"\xed\xa0\x80\":1}"), CX_INVALID); /* a surrogate */
    assert_int_equal(parse("{\"caf\xc3\xa9\":\"\xe2\x82\xac\"}"), CX_OK);
}

/* t_many_keys -- 50,000 distinct keys: linear work, no quadratic scan. */
static void t_many_keys(void **state)
{
    (void)state;
    size_t cap = 50000 * 16 + 16, o = 0;
    char *s = cx_malloc(cap);
    s[o++] = '{';
    for (int i = 0; i < 50000; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s\"k%d\":1", i ? "," : "", i);
    s[o++] = '}';
    s[o] = '\0';
    assert_int_equal(parse(s), CX_OK);
    memcpy(s + o - 1, ",\"k7\":2}", 9);
    assert_int_equal(parse(s), CX_INVALID);
    assert_non_null(strstr(msg, "duplicate key \"k7\""));
    free(s);
}

/* parse_field -- cx_body_parse_text_ex on s: the field it names into field. */
static int parse_field(const char *s, char *field, size_t fieldlen)
{
    json_object *o = NULL;
    size_t n = strlen(s);
    char *copy = cx_malloc(n + 1);
    memcpy(copy, s, n + 1);
    int rc = cx_body_parse_text_ex(copy, n, &o, msg, sizeof(msg), field, fieldlen);
    json_object_put(o);
    free(copy);
    return rc;
}

/* Text that is not UTF-8 names the top-level field that holds it; a key, or a document that is not an
 * object, names the body; any other fault names no field. */
static void t_utf8_field(void **state)
{
    char field[80];
    (void)state;
    assert_int_equal(parse_field("{\"a\":1,\"error\":\"x\xff\"}", field, sizeof(field)), CX_INVALID);
    assert_string_equal(field, "error");
    assert_string_equal(msg, "is not valid UTF-8 text (line 1, column 18)");
    assert_int_equal(parse_field("{\"cfg\":{\"k\":[1,\"\xc3\"]}}", field, sizeof(field)), CX_INVALID);
    assert_string_equal(field, "cfg");
    assert_int_equal(parse_field("{\"\xff\":1}", field, sizeof(field)), CX_INVALID);
    assert_string_equal(field, "body");
    assert_int_equal(parse_field("[\"\xff\"]", field, sizeof(field)), CX_INVALID);
    assert_string_equal(field, "body");
    assert_int_equal(parse_field("{\"a\":\"\xff\",}", field, sizeof(field)), CX_INVALID); /* a syntax error first */
    assert_string_equal(field, "");
    assert_int_equal(parse_field("{\"a\":\"\xe2\x82\xac\"}", field, sizeof(field)), CX_OK);
    assert_string_equal(field, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(t_ok), cmocka_unit_test(t_duplicates), cmocka_unit_test(t_refused),
                                       cmocka_unit_test(t_many_keys), cmocka_unit_test(t_utf8_field)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
