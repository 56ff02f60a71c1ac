/*
 * router.c -- matches a method and a raw path against the route table, segment by segment; ":name"
 * matches one non-empty segment, which is percent-decoded after the split (so "%2F" in an id never
 * becomes a path separator). 404 when no pattern matches, 405 with the allowed methods when only the
 * method is wrong.
 */
#include <string.h>

#include "conduix/router.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* decode -- percent-decode a segment into the pool; NULL when malformed or when it holds a NUL. */
static char *decode(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1);
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return NULL;
            out[o] = (char)(hi * 16 + lo);
            if (out[o] == '\0')
                return NULL;
            o++;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* valid_escapes -- every '%' starts two hex digits, and none encodes a NUL. */
static int valid_escapes(const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (s[i] == '%') {
            if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0 || (s[i + 1] == '0' && s[i + 2] == '0'))
                return 0;
            i += 2;
        }
    return 1;
}

/* match_one -- does path match pattern? Fills params when out is non-NULL. */
static int match_one(const char *pattern, const char *path, size_t path_len, h2o_mem_pool_t *pool, cx_req_t *out)
{
    const char *p = pattern, *s = path, *end = path + path_len;
    int np = 0;

    while (*p != '\0' && s < end) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pseg_end = strchr(p, '/');
        size_t plen = pseg_end ? (size_t)(pseg_end - p) : strlen(p);
        const char *sseg_end = memchr(s, '/', (size_t)(end - s));
        size_t slen = sseg_end ? (size_t)(sseg_end - s) : (size_t)(end - s);

        if (p[0] == ':') {
            if (slen == 0 || np >= CX_MAX_PARAMS)
                return 0;
            if (!valid_escapes(s, slen))
                return 0;
            if (out != NULL) {
                char *v = decode(pool, s, slen);
                if (v == NULL)
                    return 0;
                out->params[np].name = NULL; /* filled by the caller from the pattern */
                out->params[np].value = v;
            }
            np++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen;
        s += slen;
    }
    if (*p != '\0' || s != end)
        return 0;
    if (out != NULL)
        out->nparams = np;
    return 1;
}

/* name_params -- point each param's name at its ":name" in the pattern (static storage). */
static void name_params(const char *pattern, cx_req_t *r)
{
    static __thread char names[CX_MAX_PARAMS][32];
    const char *p = pattern;
    int i = 0;
    while ((p = strchr(p, ':')) != NULL && i < r->nparams) {
        size_t n = strcspn(p + 1, "/");
        if (n >= sizeof(names[i]))
            n = sizeof(names[i]) - 1;
        memcpy(names[i], p + 1, n);
        names[i][n] = '\0';
        r->params[i].name = names[i];
        i++;
        p += 1 + n;
    }
}

int cx_router_match(const cx_route_t *routes, size_t nroutes, const char *method, size_t method_len, const char *path,
                    size_t path_len, h2o_mem_pool_t *pool, cx_req_t *r, int *index, char *allow, size_t allowlen)
{
    size_t i, alen = 0;
    int path_matched = 0;

    if (allow != NULL && allowlen > 0)
        allow[0] = '\0';
    for (i = 0; i < nroutes; i++) {
        int same_method = strlen(routes[i].method) == method_len && memcmp(routes[i].method, method, method_len) == 0;
        if (same_method) {
            if (match_one(routes[i].pattern, path, path_len, pool, r)) {
                name_params(routes[i].pattern, r);
                *index = (int)i;
                return CX_ROUTE_FOUND;
            }
        } else if (match_one(routes[i].pattern, path, path_len, NULL, NULL)) {
            path_matched = 1;
            if (allow != NULL && strstr(allow, routes[i].method) == NULL) {
                int n = snprintf(allow + alen, allowlen - alen, "%s%s", alen ? ", " : "", routes[i].method);
                if (n > 0 && (size_t)n < allowlen - alen)
                    alen += (size_t)n;
            }
        }
    }
    *index = -1;
    return path_matched ? CX_ROUTE_BAD_METHOD : CX_ROUTE_NOT_FOUND;
}
