/*
 * server.c -- the request path of a worker: h2o calls on_req for every request, which runs, in this
 * order: request id, router (404/405), CORS, the rate limit of the peer address, authentication and
 * authorization (the authorizer given to cx_server_init, on the route's access rule), the rate limit of
 * the token's subject, query and body checks (413/415/400), the handler, then the access log and
 * metrics. Also the small request accessors handlers use (params, query, headers). The route table and
 * the authorizer come from the layers above (src/api/, src/auth/): nothing here depends on them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <sys/socket.h>
#include <time.h>

#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/reply.h"
#include "conduix/router.h"
#include "conduix/shm.h"

#define CORS_METHODS "GET, POST, PUT, DELETE, OPTIONS"
#define CORS_HEADERS "Authorization, Content-Type, If-Match, X-Request-ID"

/* What this process serves (cx_server_init). */
static const cx_route_t *routes;
static size_t nroutes;
static cx_authorize_fn authorize;

static void on_dispose(void *p)
{
    cx_req_t *r = p;
    cx_conn_request_done(r->req);
    if (r->on_abort != NULL) {
        void (*abort_cb)(void *) = r->on_abort;
        r->on_abort = NULL;
        abort_cb(r->abort_arg);
    }
    if (r->body != NULL)
        json_object_put(r->body);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* request_id -- the client's X-Request-ID when it is a sane token (1..64 of [A-Za-z0-9._:-]), else new. */
static void request_id(cx_req_t *r)
{
    ssize_t i = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i != -1) {
        h2o_iovec_t v = r->req->headers.entries[i].value;
        size_t k;
        int ok = v.len >= 1 && v.len <= 64;
        for (k = 0; ok && k < v.len; k++)
            ok = isalnum((unsigned char)v.base[k]) || strchr("._:-", v.base[k]) != NULL;
        if (ok) {
            memcpy(r->request_id, v.base, v.len);
            r->request_id[v.len] = '\0';
            return;
        }
    }
    cx_uuid(r->request_id);
}

/* origin_allowed -- 2 when cors.allowed_origins names origin, 1 when it allows any ("*"), else 0. */
static int origin_allowed(const char *origin)
{
    int any = 0;
    for (size_t i = 0; i < cx_cfg->cors.nallowed_origins; i++) {
        if (strcmp(cx_cfg->cors.allowed_origins[i], origin) == 0)
            return 2;
        any |= strcmp(cx_cfg->cors.allowed_origins[i], "*") == 0;
    }
    return any;
}

/* cors -- add the CORS headers for an allowed Origin; answers a preflight (returns 1) itself. An origin
 * named in cors.allowed_origins gets itself back and credentials; any other under "*" gets "*" and no
 * credentials (the Fetch standard refuses credentials with "*", and reflecting the origin with them
 * would let every site act with the user's cookie). */
static int cors(cx_req_t *r)
{
    const char *origin = cx_req_header(r, "origin");
    int preflight = h2o_memis(r->req->method.base, r->req->method.len, H2O_STRLIT("OPTIONS"));
    int allowed = origin != NULL ? origin_allowed(origin) : 0;

    if (!allowed) {
        if (preflight) {
            cx_reply_error(r, 403, "FORBIDDEN", "origin not allowed", NULL);
            return 1;
        }
        return 0;
    }
    if (allowed == 2) {
        cx_reply_add_header(r, "access-control-allow-origin", origin);
        cx_reply_add_header(r, "access-control-allow-credentials", "true");
    } else {
        cx_reply_add_header(r, "access-control-allow-origin", "*");
    }
    cx_reply_add_header(r, "vary", "Origin"); /* the answer differs by origin when "*" and names are mixed */
    cx_reply_add_header(r, "access-control-expose-headers", "X-Request-ID, Retry-After");
    if (preflight) {
        cx_reply_add_header(r, "access-control-allow-methods", CORS_METHODS);
        cx_reply_add_header(r, "access-control-allow-headers", CORS_HEADERS);
        cx_reply_add_header(r, "access-control-max-age", "600");
        cx_reply_raw(r, 204, NULL, "", 0);
        return 1;
    }
    return 0;
}

/* Rate limits (rate_limit.*), on /api/ routes only (probes are never limited). Two kinds of bucket,
 * shared by the instance's workers: one per peer address, for whoever has not (yet) proved who it is,
 * and one per token subject. The peer's is looked at before authentication, so a flood of requests with
 * no or bad tokens is refused with 429 before any token is checked or any refusal logged; it is taken
 * from by public routes and by requests refused with 401. An authenticated request takes from its
 * subject's bucket instead, so users behind one address (a NAT, a proxy) do not share a limit. */
enum { LIMIT_PEER = 0, LIMIT_SUBJECT = 1 };

static int limited_route(const cx_route_t *route)
{
    return cx_cfg->rate_limit.enabled && strncmp(route->pattern, "/api/", 5) == 0;
}

/* limit_key -- "sub:<sub>" or "ip:<peer address>". */
static void limit_key(cx_req_t *r, int kind, char *key, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char host[64] = "";

    if (kind == LIMIT_SUBJECT) {
        snprintf(key, cap, "sub:%s", r->id.sub);
        return;
    }
    sl = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
    if (sl > 0)
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
    snprintf(key, cap, "ip:%s", host);
}

/* too_many -- the 429 answer. */
static int too_many(cx_req_t *r, int64_t retry_ms)
{
    char secs[24];
    snprintf(secs, sizeof(secs), "%lld", (long long)((retry_ms + 999) / 1000));
    cx_reply_add_header(r, "retry-after", secs);
    cx_reply_error(r, 429, "RATE_LIMITED", "too many requests; slow down", NULL);
    return 1;
}

/* rate_take -- take a token from the bucket of kind; 1 after a 429 when it was empty (reply when a
 * reply may still be sent). */
static int rate_take(cx_req_t *r, int kind, int reply)
{
    char key[300];
    int64_t retry_ms = 1000;

    limit_key(r, kind, key, sizeof(key));
    if (cx_shm_rate_take(key, cx_cfg->rate_limit.requests_per_second, cx_cfg->rate_limit.burst, cx_now_ms(), &retry_ms))
        return 0;
    return reply ? too_many(r, retry_ms) : 1;
}

/* peer_refused -- before authentication: 1 after a 429 when the peer's bucket is empty. A public route
 * takes its token here; any other only looks (authenticate decides whose bucket pays). */
static int peer_refused(cx_req_t *r, const cx_route_t *route)
{
    char key[300];
    int64_t retry_ms = 1000;

    if (!limited_route(route))
        return 0;
    if (route->access == CX_ACCESS_PUBLIC)
        return rate_take(r, LIMIT_PEER, 1);
    limit_key(r, LIMIT_PEER, key, sizeof(key));
    if (cx_shm_rate_peek(key, cx_cfg->rate_limit.requests_per_second, cx_cfg->rate_limit.burst, cx_now_ms(), &retry_ms))
        return 0;
    return too_many(r, retry_ms);
}

/* charge -- after authentication: the subject pays for an authenticated request (1 after a 429 when its
 * bucket is empty), the peer for a refused one (already answered). */
static int charge(cx_req_t *r, const cx_route_t *route, int refused)
{
    if (!limited_route(route) || route->access == CX_ACCESS_PUBLIC)
        return 0;
    if (refused) {
        rate_take(r, r->id.authenticated ? LIMIT_SUBJECT : LIMIT_PEER, 0);
        return 1;
    }
    return rate_take(r, LIMIT_SUBJECT, 1);
}

/* query_nul -- 1 after a 400 when a query parameter's name or value holds a NUL byte (%00): the API
 * reads them as C strings, where it would silently cut the text ("?search=a%00b" would search "a"). */
static int query_nul(cx_req_t *r)
{
    h2o_req_t *req = r->req;
    const char *q, *end;

    if (req->query_at == SIZE_MAX)
        return 0;
    q = req->path.base + req->query_at + 1;
    end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *pend = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q)), *kend = eq ? eq : pend;
        /* a decoded NUL comes from "%00"; a raw one h2o refuses first, but this does not rely on it */
        if (memmem(q, (size_t)(pend - q), "%00", 3) != NULL || memchr(q, '\0', (size_t)(pend - q)) != NULL) {
            char field[80];
            snprintf(field, sizeof(field), "%.64s", cx_url_decode(&req->pool, q, (size_t)(kend - q), CX_URL_QUERY));
            cx_reply_validation(r, field[0] ? field : "query", "must not contain NUL characters (%00)");
            return 1;
        }
        q = pend + 1;
    }
    return 0;
}

static void dispatch(cx_req_t *r)
{
    h2o_req_t *req = r->req;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char allow[128], msg[160];
    int idx, rc;
    const cx_route_t *route;

    rc = cx_router_match(routes, nroutes, req->method.base, req->method.len, req->path.base, plen, &req->pool, r, &idx, allow,
                         sizeof(allow));
    r->route_index = idx;
    if (rc == CX_ROUTE_NOT_FOUND) {
        if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) && cors(r))
            return;
        cx_reply_error(r, 404, "NOT_FOUND", "no such endpoint", NULL);
        return;
    }
    if (rc == CX_ROUTE_BAD_METHOD) {
        if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) && cors(r))
            return;
        cx_reply_add_header(r, "allow", allow);
        snprintf(msg, sizeof(msg), "method not allowed; allowed: %s", allow);
        cx_reply_error(r, 405, "METHOD_NOT_ALLOWED", msg, NULL);
        return;
    }
    route = &routes[idx];
    r->route = route;
    if (cors(r) || peer_refused(r, route))
        return;
    if (route->access != CX_ACCESS_PUBLIC && (authorize == NULL || authorize(r, route) != CX_OK)) {
        if (r->status == 0) /* no authorizer: nothing but public routes is served */
            cx_reply_error(r, 403, "FORBIDDEN", "this endpoint is not available", NULL);
        charge(r, route, 1);
        return;
    }
    if (charge(r, route, 0))
        return;
    if (query_nul(r) || cx_body_parse(r, route) != CX_OK)
        return;
    route->handler(r);
    if (r->status == 0 && !r->deferred) {
        cx_log_errorx("request %s: handler for %s %s sent no reply", r->request_id, route->method, route->pattern);
        cx_reply_error(r, 500, "INTERNAL_ERROR", "internal error", NULL);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    cx_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_dispose);
    (void)self;
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->start_us = now_us();
    r->route_index = -1;
    request_id(r);
    dispatch(r);
    if (!r->deferred && !r->logged)
        cx_access_log(r); /* an answer of reply.c is logged there; a deferred one when it is sent */
    return 0;
}

void cx_req_defer(cx_req_t *r, void (*on_abort)(void *arg), void *arg)
{
    r->deferred = 1;
    r->on_abort = on_abort;
    r->abort_arg = arg;
}

/* What runs at the end of a turn of the loop (cx_req_soon): a few functions, each at most once a turn.
 * Four use it today (the creates, the reads by id, the REST heartbeats, the starts of a turn); room for
 * twice that. */
typedef struct soon {
    h2o_timeout_entry_t e;
    void (*fn)(void);
} soon_t;
static soon_t soon[8];

static void on_soon(h2o_timeout_entry_t *e)
{
    H2O_STRUCT_FROM_MEMBER(soon_t, e, e)->fn();
}

void cx_req_soon(cx_req_t *r, void (*fn)(void))
{
    h2o_context_t *ctx = r->req->conn->ctx;

    for (size_t i = 0; i < CX_ARRAY_SIZE(soon); i++) {
        soon_t *s = &soon[i];
        if (s->fn != NULL && s->fn != fn)
            continue;
        s->fn = fn;
        s->e.cb = on_soon;
        if (!h2o_timeout_is_linked(&s->e))
            h2o_timeout_link(ctx->loop, &ctx->zero_timeout, &s->e);
        return;
    }
    cx_log_errorx("cx_req_soon: no room for another function; calling it now");
    fn();
}

int cx_server_init(h2o_globalconf_t *config, const cx_route_t *table, size_t n, cx_authorize_fn authorizer)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *h;

    routes = table;
    nroutes = n;
    authorize = authorizer;

    h2o_config_init(config);
    /* no Server header from h2o: reply.c adds "server: conduix-cp" to every answer as a header, which
     * costs a copy, where h2o's costs a sprintf on every answer */
    config->server_name = h2o_iovec_init(H2O_STRLIT(""));
    /* h2o's own limit is twice ours, so that a body a little over server.max_body_size still reaches
     * body.c and gets the envelope's 413: over HTTP/2, h2o answers a body over its limit with a stream
     * reset (REFUSED_STREAM), which clients retry. conn.c refuses an HTTP/1 Content-Length over ours
     * before the body is read. */
    config->max_request_entity_size = (size_t)cx_cfg->server.max_body_size * 2;
    host = h2o_config_register_host(config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    cx_server_errors(host, path);
    h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    return 0;
}

/* ---- accessors ---- */

const char *cx_req_param(cx_req_t *r, const char *name)
{
    int i;
    for (i = 0; i < r->nparams; i++)
        if (r->params[i].name != NULL && strcmp(r->params[i].name, name) == 0)
            return r->params[i].value;
    return NULL;
}

const char *cx_req_header(cx_req_t *r, const char *lowercase_name)
{
    ssize_t i = h2o_find_header_by_str(&r->req->headers, lowercase_name, strlen(lowercase_name), -1);
    char *v;
    if (i == -1)
        return NULL;
    h2o_iovec_t val = r->req->headers.entries[i].value;
    v = h2o_mem_alloc_pool(&r->req->pool, val.len + 1);
    memcpy(v, val.base, val.len);
    v[val.len] = '\0';
    return v;
}

const char *cx_req_query(cx_req_t *r, const char *name)
{
    h2o_req_t *req = r->req;
    const char *q, *end;
    size_t nlen = strlen(name);

    if (req->query_at == SIZE_MAX)
        return NULL;
    q = req->path.base + req->query_at + 1;
    end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q));
        const char *kend = eq ? eq : pend;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : pend;
            return cx_url_decode(&req->pool, v, (size_t)(pend - v), CX_URL_QUERY);
        }
        q = pend + 1;
    }
    return NULL;
}

const char *cx_req_actor(cx_req_t *r)
{
    if (!r->id.authenticated)
        return "anonymous";
    return r->id.email[0] ? r->id.email : r->id.sub;
}

long cx_query_number(const char *s, long max)
{
    long v = 0;
    if (s[0] < '1' || s[0] > '9')
        return -1;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > max / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v <= max ? v : -1;
}

int cx_req_paging(cx_req_t *r, int *page, int *page_size)
{
    const char *p = cx_req_query(r, "page"), *s = cx_req_query(r, "page_size");
    long v;

    *page = 1;
    *page_size = 20;
    if (p != NULL) {
        if ((v = cx_query_number(p, 1000000)) < 0) {
            cx_reply_validation(r, "page", "must be an integer from 1 to 1000000 (digits only)");
            return CX_INVALID;
        }
        *page = (int)v;
    }
    if (s != NULL) {
        if ((v = cx_query_number(s, 100)) < 0) {
            cx_reply_validation(r, "page_size", "must be an integer from 1 to 100 (digits only)");
            return CX_INVALID;
        }
        *page_size = (int)v;
    }
    return CX_OK;
}
