/*
 * test_router.c -- the route matcher: params, percent-decoding after the split, 404 and 405 with Allow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "conduix/router.h"

static int h(cx_req_t *r)
{
    (void)r;
    return 0;
}

static const cx_route_t routes[] = {
    {"GET", "/api/v1/pipelines", h, CX_ACCESS_VIEWER, CX_BODY_NONE, "list"},
    {"POST", "/api/v1/pipelines", h, CX_ACCESS_OPERATOR, CX_BODY_JSON, "create"},
    {"GET", "/api/v1/pipelines/:id", h, CX_ACCESS_VIEWER, CX_BODY_NONE, "get"},
    {"DELETE", "/api/v1/pipelines/:id", h, CX_ACCESS_ADMIN, CX_BODY_NONE, "delete"},
    {"POST", "/api/v1/pipelines/:id/start", h, CX_ACCESS_OPERATOR, CX_BODY_NONE, "start"},
    {"POST", "/api/v1/agents/:id/commands/:command_id/ack", h, CX_ACCESS_AGENT, CX_BODY_NONE, "ack"},
};

static int match_n(const char *method, const char *path, size_t plen, cx_req_t *r, char *allow, size_t allowlen)
{
    static h2o_mem_pool_t pool;
    static int used;
    int idx = -2, rc;
    if (used++) /* the previous match's memory: its results are checked by now */
        h2o_mem_clear_pool(&pool);
    else
        h2o_mem_init_pool(&pool);
    memset(r, 0, sizeof(*r));
    rc = cx_router_match(routes, sizeof(routes) / sizeof(routes[0]), method, strlen(method), path, plen, &pool, r, &idx, allow,
                         allowlen);
    if (rc == CX_ROUTE_FOUND)
        return idx;
    return rc;
}

static int match(const char *method, const char *path, cx_req_t *r, char *allow, size_t allowlen)
{
    return match_n(method, path, strlen(path), r, allow, allowlen);
}

static void test_static_and_params(void **state)
{
    cx_req_t r;
    char allow[64];
    (void)state;
    assert_int_equal(match("GET", "/api/v1/pipelines", &r, allow, sizeof(allow)), 0);
    assert_int_equal(match("POST", "/api/v1/pipelines", &r, allow, sizeof(allow)), 1);
    assert_int_equal(match("GET", "/api/v1/pipelines/abc-123", &r, allow, sizeof(allow)), 2);
    assert_string_equal(cx_req_param(&r, "id"), "abc-123");
    assert_int_equal(match("POST", "/api/v1/pipelines/abc-123/start", &r, allow, sizeof(allow)), 4);
    assert_string_equal(cx_req_param(&r, "id"), "abc-123");
    assert_int_equal(match("POST", "/api/v1/agents/a1/commands/c9/ack", &r, allow, sizeof(allow)), 5);
    assert_string_equal(cx_req_param(&r, "id"), "a1");
    assert_string_equal(cx_req_param(&r, "command_id"), "c9");
    assert_null(cx_req_param(&r, "nope"));
}

static void test_not_found(void **state)
{
    cx_req_t r;
    char allow[64];
    (void)state;
    assert_int_equal(match("GET", "/api/v1/pipelinesX", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("POST", "/api/v1/pipelines//start", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("POST", "/api/v1/pipelines/x/start/extra", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("GET", "/api/v1/pipelines/", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("GET", "/", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("GET", "", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
}

static void test_method_not_allowed(void **state)
{
    cx_req_t r;
    char allow[64];
    (void)state;
    assert_int_equal(match("PUT", "/api/v1/pipelines", &r, allow, sizeof(allow)), CX_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, POST");
    assert_int_equal(match("POST", "/api/v1/pipelines/x", &r, allow, sizeof(allow)), CX_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, DELETE");
    assert_int_equal(match("GET", "/api/v1/pipelines/x/start", &r, allow, sizeof(allow)), CX_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "POST");
}

static void test_percent_decoding(void **state)
{
    cx_req_t r;
    char allow[64];
    (void)state;
    /* %2F is decoded after the split: it never becomes a separator */
    assert_int_equal(match("POST", "/api/v1/pipelines/a%2Fb%20c/start", &r, allow, sizeof(allow)), 4);
    assert_string_equal(cx_req_param(&r, "id"), "a/b c");
    /* malformed escapes and an encoded NUL match nothing */
    assert_int_equal(match("GET", "/api/v1/pipelines/a%2", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("GET", "/api/v1/pipelines/a%zz", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("GET", "/api/v1/pipelines/a%00b", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    /* fuzz_router found it: raw NUL bytes made an id "" (h2o refuses them before, the router did not) */
    assert_int_equal(match_n("GET", "/api/v1/pipelines/\0\0", 20, &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match_n("GET", "/api/v1/pipelines/a\0b", 21, &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("GET", "/api/v1/pipelines/a\tb", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
    assert_int_equal(match("GET", "/api/v1/pipelines/a\x7f", &r, allow, sizeof(allow)), CX_ROUTE_NOT_FOUND);
}

/* decoded -- cx_url_decode of s with flags, or NULL. */
static const char *decoded(const char *s, int flags)
{
    static h2o_mem_pool_t pool;
    static int used;
    if (used++) /* the previous result: checked by now */
        h2o_mem_clear_pool(&pool);
    else
        h2o_mem_init_pool(&pool);
    return cx_url_decode(&pool, s, strlen(s), flags);
}

static void test_url_decode(void **state)
{
    (void)state;
    /* a path segment: strict */
    assert_string_equal(decoded("a%2Fb%20c", 0), "a/b c");
    assert_string_equal(decoded("%41%62", 0), "Ab");
    assert_string_equal(decoded("a+b", 0), "a+b");
    assert_string_equal(decoded("", 0), "");
    assert_null(decoded("a%2", 0));
    assert_null(decoded("%", 0));
    assert_null(decoded("%zz", 0));
    assert_null(decoded("a%00b", 0));
    assert_null(decoded("a\x01b", 0)); /* a raw control byte */
    /* a query value: '+' is a space, a malformed escape stands for itself */
    assert_string_equal(decoded("a+b%2Bc", CX_URL_QUERY), "a b+c");
    assert_string_equal(decoded("100%", CX_URL_QUERY), "100%");
    assert_string_equal(decoded("100%25", CX_URL_QUERY), "100%");
    assert_string_equal(decoded("%zz%4", CX_URL_QUERY), "%zz%4");
    assert_string_equal(decoded("%c3%A9", CX_URL_QUERY), "\xc3\xa9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_and_params), cmocka_unit_test(test_not_found),  cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_percent_decoding),  cmocka_unit_test(test_url_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
