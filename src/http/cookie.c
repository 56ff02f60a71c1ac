/*
 * cookie.c -- cookies, for the sign-in flow: reading one from the request's Cookie headers, and writing
 * Set-Cookie with the attributes every cookie of ours carries (HttpOnly, SameSite=Lax, a path and a
 * lifetime; Secure when the caller asks for it: the sign-in sets it when the provider's redirect_url is
 * https, since the server behind a proxy cannot tell how the browser reached it).
 */
#include <stdio.h>
#include <string.h>

#include "conduix/http.h"
#include "conduix/reply.h"

const char *cx_req_cookie(cx_req_t *r, const char *name)
{
    size_t nlen = strlen(name);
    ssize_t i = -1;

    while ((i = h2o_find_header(&r->req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
        h2o_iovec_t v = r->req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *pend = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(pend - p));
            if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
                const char *val = eq + 1;
                size_t vlen = (size_t)(pend - val);
                while (vlen > 0 && val[vlen - 1] == ' ')
                    vlen--;
                if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
                    val++;
                    vlen -= 2;
                }
                char *out = h2o_mem_alloc_pool(&r->req->pool, vlen + 1);
                memcpy(out, val, vlen);
                out[vlen] = '\0';
                return out;
            }
            p = pend;
        }
    }
    return NULL;
}

void cx_reply_set_cookie(cx_req_t *r, const char *name, const char *value, const char *path, int64_t max_age_s, int secure)
{
    size_t n = strlen(name) + strlen(value) + strlen(path) + 96;
    char *line = h2o_mem_alloc_pool(&r->req->pool, n);

    snprintf(line, n, "%s=%s; Path=%s; Max-Age=%lld; HttpOnly; SameSite=Lax%s", name, value, path,
             (long long)(max_age_s > 0 ? max_age_s : 0), secure ? "; Secure" : "");
    cx_reply_add_header(r, "set-cookie", line);
}
