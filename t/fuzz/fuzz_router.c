/*
 * fuzz_router.c -- fuzz target of the router (src/http/router.c): "METHOD\nPATH" against the real route
 * table (src/api/routes.c). A match must be a route of that method whose :params are non-empty, free of
 * NUL, and, percent-encoded again into its pattern, match the same route with the same values; a 405
 * must list methods whose routes match the path; a 404 must match no route of any method. The percent-
 * decoder never grows its input and, for a query, never refuses.
 */
#include <string.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/router.h"
#include "fuzz.h"

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"};

/* path_matches -- does some route of method match path (params not kept)? */
static int path_matches(const char *method, const char *path, size_t len, h2o_mem_pool_t *pool)
{
    cx_req_t r;
    int idx;
    memset(&r, 0, sizeof(r));
    return cx_router_match(cx_routes, cx_nroutes, method, strlen(method), path, len, pool, &r, &idx, NULL, 0) == CX_ROUTE_FOUND;
}

/* rebuild -- the pattern with each :param replaced by its value percent-encoded (every byte but
 * [A-Za-z0-9._~-]). */
static size_t rebuild(const char *pattern, const cx_req_t *r, char *out, size_t cap)
{
    size_t o = 0;
    int k = 0;
    for (const char *p = pattern; *p != '\0' && o + 4 < cap;) {
        if (*p == ':') {
            const unsigned char *v = (const unsigned char *)r->params[k++].value;
            for (; *v != '\0' && o + 4 < cap; v++) {
                if ((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') || strchr("._~-", *v))
                    out[o++] = (char)*v;
                else
                    o += (size_t)snprintf(out + o, cap - o, "%%%02X", *v);
            }
            p += strcspn(p, "/");
        } else {
            out[o++] = *p++;
        }
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *nl = memchr(s, '\n', size);
    const char *method = s, *path = nl ? nl + 1 : s;
    size_t mlen = nl ? (size_t)(nl - s) : 3, plen = nl ? size - mlen - 1 : size;
    char allow[128], again[8192];
    h2o_mem_pool_t pool;
    cx_req_t r, r2;
    int idx, idx2, rc;

    if (!nl)
        method = "GET";
    h2o_mem_init_pool(&pool);
    memset(&r, 0, sizeof(r));
    rc = cx_router_match(cx_routes, cx_nroutes, method, mlen, path, plen, &pool, &r, &idx, allow, sizeof(allow));
    FUZZ_CHECK(rc == CX_ROUTE_FOUND || rc == CX_ROUTE_NOT_FOUND || rc == CX_ROUTE_BAD_METHOD);
    if (rc == CX_ROUTE_FOUND) {
        const cx_route_t *rt = &cx_routes[idx];
        int colons = 0;
        FUZZ_CHECK(idx >= 0 && (size_t)idx < cx_nroutes);
        FUZZ_CHECK(strlen(rt->method) == mlen && memcmp(rt->method, method, mlen) == 0);
        for (const char *p = rt->pattern; (p = strchr(p, ':')) != NULL; p++)
            colons++;
        FUZZ_CHECK(r.nparams == colons);
        for (int i = 0; i < r.nparams; i++) {
            FUZZ_CHECK(r.params[i].name != NULL && r.params[i].value != NULL && r.params[i].value[0] != '\0');
            FUZZ_CHECK(cx_req_param(&r, r.params[i].name) != NULL);
        }
        size_t n = rebuild(rt->pattern, &r, again, sizeof(again));
        if (n + 8 < sizeof(again)) {
            memset(&r2, 0, sizeof(r2));
            FUZZ_CHECK(cx_router_match(cx_routes, cx_nroutes, method, mlen, again, n, &pool, &r2, &idx2, NULL, 0) ==
                       CX_ROUTE_FOUND);
            FUZZ_CHECK(idx2 == idx && r2.nparams == r.nparams);
            for (int i = 0; i < r.nparams; i++)
                FUZZ_CHECK(strcmp(r.params[i].value, r2.params[i].value) == 0);
        }
    } else if (rc == CX_ROUTE_BAD_METHOD) {
        FUZZ_CHECK(allow[0] != '\0');
        int some = 0;
        for (size_t i = 0; i < CX_ARRAY_SIZE(methods); i++)
            if (strstr(allow, methods[i]) != NULL && path_matches(methods[i], path, plen, &pool))
                some = 1;
        FUZZ_CHECK(some);
    } else {
        for (size_t i = 0; i < CX_ARRAY_SIZE(methods); i++)
            FUZZ_CHECK(!path_matches(methods[i], path, plen, &pool));
    }

    /* the decoder: never longer than its input; a query value is never refused */
    char *q = cx_url_decode(&pool, path, plen, CX_URL_QUERY);
    FUZZ_CHECK(q != NULL && strlen(q) <= plen);
    char *seg = cx_url_decode(&pool, path, plen, 0);
    FUZZ_CHECK(seg == NULL || strlen(seg) <= plen);
    h2o_mem_clear_pool(&pool);
    return 0;
}
