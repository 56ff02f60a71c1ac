/*
 * http.h -- the request context every handler receives, and the listen socket.
 *
 * A cx_req_t lives in the h2o request's pool: it is gone when the request is. Handlers read the route's
 * params, the caller's identity and the parsed JSON body from it and answer through reply.h.
 */
#ifndef CONDUIX_HTTP_H
#define CONDUIX_HTTP_H

#include <stdint.h>
#include <json.h>
#include <h2o.h>

#include "conduix/states.h" /* cx_role_t */

#define CX_MAX_PARAMS 4

typedef struct cx_identity {
    int authenticated;
    cx_role_t role;
    char sub[256];
    char email[256];
    char name[256];
    char jti[64];
    int64_t exp; /* Unix seconds */
} cx_identity_t;

struct cx_route;

typedef struct cx_req {
    h2o_req_t *req;
    const struct cx_route *route;
    int route_index; /* index in the route table, for metrics; -1 when unmatched */
    struct {
        const char *name;
        char *value; /* percent-decoded, NUL-terminated, from the request pool */
    } params[CX_MAX_PARAMS];
    int nparams;
    char request_id[65];
    cx_identity_t id;
    json_object *body; /* parsed JSON body, or NULL; freed when the request ends */
    int64_t start_us;  /* monotonic microseconds */
    int status;        /* set by reply */
    size_t bytes;
    int deferred;                /* the handler answers later, from a loop callback (cx_req_defer) */
    int logged;                  /* its access-log line is written (reply.c, before the answer is sent) */
    void (*on_abort)(void *arg); /* deferred: called when the request ends before its answer */
    void *abort_arg;
} cx_req_t;

/* cx_req_param -- the value of a :param of the route, or NULL. */
const char *cx_req_param(cx_req_t *r, const char *name);

/* cx_req_query -- the percent-decoded value of a query parameter (from the request pool), or NULL when
 * absent. */
const char *cx_req_query(cx_req_t *r, const char *name);

/* cx_req_header -- a request header's value as a NUL-terminated string from the pool, or NULL. */
const char *cx_req_header(cx_req_t *r, const char *lowercase_name);

/* cx_req_cookie -- the value of the cookie name (from every Cookie header), from the pool, or NULL. */
const char *cx_req_cookie(cx_req_t *r, const char *name);

/* cx_req_defer -- the handler returns without answering; the answer is sent later (any cx_reply_*, which
 * then also writes the access log). If the request ends first (the client went away), on_abort(arg) is
 * called once, from the request's teardown: the pending work must then forget r. */
void cx_req_defer(cx_req_t *r, void (*on_abort)(void *arg), void *arg);

/* cx_req_soon -- fn() is called once at the end of this turn of the worker's event loop, after every
 * request the turn read has reached its handler (h2o's zero timeout): work handlers collect in a turn
 * is done there in one go (the Redis batch of REST heartbeats). Asking again for the same fn before
 * then changes nothing. */
void cx_req_soon(cx_req_t *r, void (*fn)(void));

/* cx_url_decode -- percent-decode s[0..len) into a NUL-terminated string from pool. Without flags (a
 * path segment) a malformed escape, one that encodes NUL, or a raw control byte gives NULL; with CX_URL_QUERY (a query
 * value) '+' is a space and a malformed escape stands for itself. */
#define CX_URL_QUERY 0x1
char *cx_url_decode(h2o_mem_pool_t *pool, const char *s, size_t len, int flags);

/* cx_req_actor -- who acts: the token's email when set, else its sub, else "anonymous". */
const char *cx_req_actor(cx_req_t *r);

/* cx_query_number -- s as a query parameter's number: 1..max in decimal digits only, no sign, no space
 * (strtol would take " 1" and "+1"), no leading zero. -1 when it is not one. */
long cx_query_number(const char *s, long max);

/* cx_req_paging -- ?page= and ?page_size= of a list request (defaults 1 and 20, size 1..100); a bad
 * value is a 400 reply and CX_INVALID. */
int cx_req_paging(cx_req_t *r, int *page, int *page_size);

/* ---- the request path (src/http/server.c, body.c, accesslog.c) ---- */

/* An authorizer: authenticate the caller of r and decide whether it may call route (its access rule).
 * CX_OK, or it has replied (401/403). */
typedef int (*cx_authorize_fn)(cx_req_t *r, const struct cx_route *route);

/* cx_server_init -- this process's HTTP state: h2o configured to serve routes[0..nroutes) (router.h),
 * with authorize run for every route that is not public. The table and the authorizer belong to the
 * layers above (src/api/, src/auth/); the server only calls them. */
int cx_server_init(h2o_globalconf_t *config, const struct cx_route *routes, size_t nroutes, cx_authorize_fn authorize);

/* cx_server_errors -- h2o's own error responses rewritten into the envelope (errors.c: a filter on the
 * path and on the host's fallback path). */
void cx_server_errors(h2o_hostconf_t *host, h2o_pathconf_t *path);

/* cx_body_parse -- check size and Content-Type and parse the JSON body into r->body, as the route
 * says. CX_OK, or a reply was sent. */
int cx_body_parse(cx_req_t *r, const struct cx_route *route);

/* cx_body_parse_text -- buf[0..len) (buf[len] must be NUL) as one strict JSON document into *out: CX_OK,
 * or CX_INVALID with a message naming line and column in msg. A repeated key in an object, a key holding
 * NUL and a single-quoted string are refused too. Pure: the request-body fuzz target calls it. */
int cx_body_parse_text(const char *buf, size_t len, json_object **out, char *msg, size_t msglen);

/* cx_body_parse_text_ex -- cx_body_parse_text, and when the only fault is text that is not UTF-8 (json-c
 * lets it through), the top-level field that holds it into field ("body" for a key or a document that
 * is not an object; empty for every other fault) with "is not valid UTF-8 text (line, column)" in msg. */
int cx_body_parse_text_ex(const char *buf, size_t len, json_object **out, char *msg, size_t msglen, char *field, size_t fieldlen);

/* cx_access_log -- one JSON line per request, and the request metrics. */
void cx_access_log(cx_req_t *r);

/* cx_access_log_head -- the same for a request refused before h2o made a request of it (conn.c): what
 * could be read of its method and target (may be empty), the status and bytes answered, and when it
 * began (monotonic microseconds). */
void cx_access_log_head(const char *request_id, h2o_iovec_t method, h2o_iovec_t target, int status, size_t bytes, int64_t start_us);

/* ---- connections (src/http/conn.c) ---- */

/* cx_conn_init -- this worker's connection state, on its h2o context (after cx_server_init). */
void cx_conn_init(h2o_context_t *ctx);

/* cx_conn_accept -- hand an accepted socket to h2o, with our check of HTTP/1 request heads in front of
 * h2o's parser (conn.c). */
void cx_conn_accept(h2o_accept_ctx_t *actx, h2o_socket_t *sock);

/* cx_conn_count -- connections open in this worker. */
int cx_conn_count(void);

/* cx_conn_request_done -- a request of the connection ended (its pool is going): the head check is put
 * back in front of h2o for the next request. */
void cx_conn_request_done(h2o_req_t *req);

/* cx_conn_may_hold -- may this worker take an answer of len bytes more to send (else 503)? */
int cx_conn_may_hold(size_t len);

/* cx_conn_send -- send body[0..len) as the answer of req (status and headers set): copied, sent in
 * pieces, and the connection aborted when a piece makes no progress for server.write_timeout. */
void cx_conn_send(h2o_req_t *req, const char *request_id, const char *body, size_t len);

/* cx_listen_open -- the listening socket, bound and listening, close-on-exec. -1 after logging. */
int cx_listen_open(const char *host, int port);

/* cx_worker_run -- a worker's life: h2o event loop on the inherited listen fd until told to stop. */
int cx_worker_run(int listen_fd);

#endif
