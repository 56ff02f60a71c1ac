/*
 * router.c -- matches a method and a raw path against the route table, segment by segment; ":name"
 * matches one non-empty segment, which is percent-decoded after the split (so "%2F" in an id never
 * becomes a path separator). 404 when no pattern matches, 405 with the allowed methods when only the
 * method is wrong. Also the one percent-decoder (cx_url_decode), for path segments and query values.
 */
#include <string.h>

#include "conduix/router.h"

/* decode -- percent-decode s[0..len) into out (len + 1 bytes, or NULL to only check), with the flags
 * of cx_url_decode. The length written, or -1. */
static long decode(char *out, const char *s, size_t len, int flags)
{
    int query = (flags & CX_URL_QUERY) != 0;
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!query && (c < 0x20 || c == 0x7f))
            return -1; /* a raw control byte is no path of ours (h2o refuses them first; this does not rely on it) */
        if (c == '%' && i + 2 < len && h2o_hex_decode(&c, s + i + 1, 2) == 0) {
            if (c == '\0' && !query)
                return -1;
            i += 2;
        } else if (c == '%' && !query) {
            return -1;
        } else if (c == '+' && query) {
            c = ' ';
        }
        if (out != NULL)
            out[o] = (char)c;
        o++;
    }
    if (out != NULL)
        out[o] = '\0';
    return (long)o;
}

char *cx_url_decode(h2o_mem_pool_t *pool, const char *s, size_t len, int flags)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1);
    return decode(out, s, len, flags) < 0 ? NULL : out;
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
            if (decode(NULL, s, slen, 0) < 0)
                return 0;
            if (out != NULL) {
                char *v = cx_url_decode(pool, s, slen, 0);
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
