/*
 * errors.c -- the answers h2o gives by itself, before or without our handler: 413 for a Content-Length
 * over server.max_body_size (sent without reading the body), 400 for a broken Content-Length or chunked
 * body, 404 for a request that matches no path (OPTIONS *), 417 for an unknown Expect. They must be the
 * same JSON envelope as every other answer, with an X-Request-ID and a Content-Length, and be logged and
 * counted like them.
 *
 * The hook is the one libh2o offers for rewriting responses: a filter (h2o_filter_t, the mechanism of
 * h2o's own errordoc and headers handlers). h2o runs the filters of the request's path configuration
 * when a response starts; an error it sends before routing is bound to the host's fallback path, so the
 * filter is registered on both. It lets our own responses through (reply.c gives every one an
 * X-Request-ID) and replaces, in any other response of status 400 or more, the headers and the body by
 * the envelope. Any h2o error sent through h2o_send_error_* on HTTP/1 or HTTP/2 passes here; what h2o
 * writes straight to the socket (the HTTP/1 "400 Bad Request" for an unparsable request head) or
 * answers with an HTTP/2 RST_STREAM does not go through a response at all.
 */
#include <string.h>
#include <time.h>

#include "conduix/api.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/reply.h"

typedef struct envelope {
    h2o_ostream_t super;
    h2o_iovec_t body;
} envelope_t;

/* on_send -- h2o's own body is dropped; the envelope goes out with the last piece. */
static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    envelope_t *e = (envelope_t *)self;
    (void)bufs;
    (void)bufcnt;

    if (h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(self, req, NULL, 0, state); /* ask the generator for the rest */
        return;
    }
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_ostream_send_next(self, req, NULL, 0, state);
    else
        h2o_ostream_send_next(self, req, &e->body, 1, state);
}

static void describe(int status, const char **code, const char **msg, char *text, size_t len)
{
    switch (status) {
    case 413:
        *code = "PAYLOAD_TOO_LARGE";
        snprintf(text, len, "request body larger than %lld bytes", (long long)cx_cfg->server.max_body_size);
        *msg = text;
        break;
    case 400:
        *code = "BAD_REQUEST";
        *msg = "malformed HTTP request";
        break;
    case 404:
        *code = "NOT_FOUND";
        *msg = "no such endpoint";
        break;
    case 405:
        *code = "METHOD_NOT_ALLOWED";
        *msg = "method not allowed";
        break;
    case 417:
        *code = "EXPECTATION_FAILED";
        *msg = "unsupported Expect header";
        break;
    case 503:
        *code = "SERVICE_UNAVAILABLE";
        *msg = "service unavailable";
        break;
    default:
        *code = status >= 500 ? "INTERNAL_ERROR" : "BAD_REQUEST";
        *msg = status >= 500 ? "internal error" : "bad request";
        break;
    }
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    const char *code, *msg;
    char text[160];
    struct timespec ts;
    cx_req_t *r;
    envelope_t *e;
    (void)self;

    if (req->res.status < 400 || h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) != -1) {
        h2o_setup_next_ostream(req, slot); /* ours */
        return;
    }
    r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->req = req;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->start_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    r->route_index = -1;
    cx_uuid(r->request_id);
    describe(req->res.status, &code, &msg, text, sizeof(text));
    req->res.headers = (h2o_headers_t){NULL, 0, 0};
    e = (envelope_t *)h2o_add_ostream(req, sizeof(*e), slot);
    e->super.do_send = on_send;
    e->body = cx_reply_error_head(r, req->res.status, code, msg);
    h2o_setup_next_ostream(req, &e->super.next);
    cx_access_log(r);
}

void cx_server_errors(h2o_hostconf_t *host, h2o_pathconf_t *path)
{
    h2o_create_filter(path, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
    h2o_create_filter(&host->fallback_path, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
}
