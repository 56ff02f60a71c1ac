/*
 * reply.c -- the only place that writes a response: the envelope of docs/api.md, Content-Length on
 * every response (without it h2o drops keep-alive on errors), X-Request-ID, and the request id in every
 * error body. Handlers build json-c objects; this file serialises and sends them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/reply.h"
#include "conduix/shm.h"
#include "conduix/utf8.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

void cx_reply_add_header(cx_req_t *r, const char *name, const char *value)
{
    h2o_req_t *req = r->req;
    size_t nlen = strlen(name), vlen = strlen(value);
    char *n = h2o_mem_alloc_pool(&req->pool, nlen + 1), *v = h2o_mem_alloc_pool(&req->pool, vlen + 1);
    memcpy(n, name, nlen + 1);
    memcpy(v, value, vlen + 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n, nlen, 0, NULL, v, vlen);
}

/* head -- the status line and the headers every response has. */
static void head(cx_req_t *r, int status, const char *content_type, size_t len)
{
    h2o_req_t *req = r->req;

    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, r->request_id, strlen(r->request_id));
    /* the Server header is ours, not h2o's: h2o writes its server_name with a sprintf of its own on every
     * answer (server.c leaves it empty) */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT("conduix-cp"));
    r->status = status;
    r->bytes = len;
    if (r->deferred)
        r->on_abort = NULL; /* answered from a loop callback: the request may be gone once it is sent */
    /* Logged before it is sent: once the client has the answer, its line is in the worker's buffer,
     * which a worker killed at that moment leaves for the master to write (t/83). */
    cx_access_log(r);
    r->logged = 1;
}

/* The busy refusal below goes through cx_reply_error and back here once: its envelope is smaller than
 * one chunk, which cx_conn_may_hold always takes, so the recursion is one level deep. */
// NOLINTNEXTLINE(misc-no-recursion): one level, see above
int cx_reply_raw(cx_req_t *r, int status, const char *content_type, const char *body, size_t len)
{
    h2o_req_t *req = r->req;

    if (!cx_conn_may_hold(len)) {
        /* this worker holds too much of answers its clients have not read: refuse this one rather than
         * let slow readers take the memory (conn.c) */
        cx_shm_count(CX_C_HTTP_BUSY, 1);
        cx_log_warnx("request %s: answer of %zu bytes refused: too many bytes of answers unsent", r->request_id, len);
        cx_reply_add_header(r, "retry-after", "5");
        return cx_reply_error(r, 503, "SERVICE_UNAVAILABLE", "the server is busy sending other answers; retry later", NULL);
    }
    head(r, status, content_type, len);
    if (status == 204 || status == 304 || len == 0) {
        req->res.content_length = 0;
        h2o_send_inline(req, "", 0);
    } else {
        cx_conn_send(req, r->request_id, body, len);
    }
    return 0;
}

// NOLINTNEXTLINE(misc-no-recursion): one level, see cx_reply_raw
int cx_reply_json_raw(cx_req_t *r, int status, json_object *obj)
{
    size_t len;
    const char *s = json_object_to_json_string_length(obj, JSON_FLAGS, &len);
    cx_reply_raw(r, status, "application/json; charset=utf-8", s, len);
    json_object_put(obj);
    return 0;
}

int cx_reply_ok(cx_req_t *r, int status, json_object *data, const char *message)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(1));
    json_object_object_add(o, "data", data != NULL ? data : json_object_new_object());
    if (message != NULL)
        json_object_object_add(o, "message", json_object_new_string(message));
    return cx_reply_json_raw(r, status, o);
}

void cx_reply_begin(cx_jw_t *w)
{
    cx_jw_init(w);
    cx_jw_object(w);
    cx_jw_key(w, "success");
    cx_jw_bool(w, 1);
    cx_jw_key(w, "data");
}

int cx_reply_end(cx_req_t *r, int status, cx_jw_t *w)
{
    cx_jw_object_end(w);
    cx_reply_raw(r, status, "application/json; charset=utf-8", w->p, w->len);
    cx_jw_free(w);
    return 0;
}

void cx_reply_page_begin(cx_jw_t *w)
{
    cx_reply_begin(w);
    cx_jw_object(w);
    cx_jw_key(w, "items");
    cx_jw_array(w);
}

int cx_reply_page_end(cx_req_t *r, cx_jw_t *w, int64_t total, int page, int page_size)
{
    cx_jw_array_end(w);
    cx_jw_key(w, "total");
    cx_jw_int(w, total);
    cx_jw_key(w, "page");
    cx_jw_int(w, page);
    cx_jw_key(w, "page_size");
    cx_jw_int(w, page_size);
    cx_jw_key(w, "total_pages");
    cx_jw_int(w, page_size > 0 ? (total + page_size - 1) / page_size : 0);
    cx_jw_object_end(w);
    return cx_reply_end(r, 200, w);
}

int cx_reply_page(cx_req_t *r, json_object *items, int64_t total, int page, int page_size)
{
    return cx_reply_page_as(r, items, NULL, total, page, page_size);
}

int cx_reply_page_as(cx_req_t *r, json_object *items, const char *also, int64_t total, int page, int page_size)
{
    json_object *d = json_object_new_object();
    if (items == NULL)
        items = json_object_new_array();
    json_object_object_add(d, "items", items);
    if (also != NULL)
        json_object_object_add(d, also, json_object_get(items));
    json_object_object_add(d, "total", json_object_new_int64(total));
    json_object_object_add(d, "page", json_object_new_int(page));
    json_object_object_add(d, "page_size", json_object_new_int(page_size));
    json_object_object_add(d, "total_pages", json_object_new_int64(page_size > 0 ? (total + page_size - 1) / page_size : 0));
    return cx_reply_ok(r, 200, d, NULL);
}

/* cap_details -- details as sent: at most CX_DETAILS_MAX fields, names cut to CX_DETAILS_NAME_MAX bytes and
 * messages to CX_DETAILS_TEXT_MAX (at character boundaries), and "_truncated" saying how many fields were
 * left out. A body of a thousand bad fields, or of one field with a megabyte name, must not get an
 * answer larger than itself. Takes ownership of details. */
static json_object *cap_details(json_object *details)
{
    json_object *o;
    int n = 0, total;

    if (!json_object_is_type(details, json_type_object))
        return details;
    total = json_object_object_length(details);
    o = json_object_new_object();
    json_object_object_foreach(details, k, v)
    {
        char name[CX_DETAILS_NAME_MAX + 1];
        size_t kl = cx_utf8_prefix(k, strlen(k), CX_DETAILS_NAME_MAX);

        if (n == CX_DETAILS_MAX)
            break;
        memcpy(name, k, kl);
        name[kl] = '\0';
        if (json_object_is_type(v, json_type_string)) {
            const char *t = json_object_get_string(v);
            size_t tl = (size_t)json_object_get_string_len(v);
            json_object_object_add(o, name, json_object_new_string_len(t, (int)cx_utf8_prefix(t, tl, CX_DETAILS_TEXT_MAX)));
        } else {
            json_object_object_add(o, name, json_object_get(v));
        }
        n++;
    }
    if (total > n) {
        char more[64];
        snprintf(more, sizeof(more), "%d more field(s) not shown", total - n);
        json_object_object_add(o, "_truncated", json_object_new_string(more));
    }
    json_object_put(details);
    return o;
}

/* error_object -- the error envelope, and the headers that go with some statuses. */
static json_object *error_object(cx_req_t *r, int status, const char *code, const char *msg, json_object *details)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "success", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_object_add(o, "code", json_object_new_string(code));
    json_object_object_add(o, "request_id", json_object_new_string(r->request_id));
    if (details != NULL)
        json_object_object_add(o, "details", cap_details(details));
    if (status == 401)
        cx_reply_add_header(
            r, "www-authenticate",
            strcmp(code, "TOKEN_EXPIRED") == 0 ? "Bearer error=\"invalid_token\", error_description=\"token expired\"" : "Bearer");
    if ((status == 429 || status == 503) && h2o_find_header_by_str(&r->req->res.headers, H2O_STRLIT("retry-after"), -1) == -1)
        cx_reply_add_header(r, "retry-after", status == 429 ? "1" : "5");
    return o;
}

// NOLINTNEXTLINE(misc-no-recursion): one level, see cx_reply_raw
int cx_reply_error(cx_req_t *r, int status, const char *code, const char *msg, json_object *details)
{
    return cx_reply_json_raw(r, status, error_object(r, status, code, msg, details));
}

h2o_iovec_t cx_reply_error_head(cx_req_t *r, int status, const char *code, const char *msg)
{
    json_object *o = error_object(r, status, code, msg, NULL);
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &len);
    h2o_iovec_t body = h2o_strdup(&r->req->pool, s, len);

    json_object_put(o);
    head(r, status, "application/json; charset=utf-8", body.len);
    return body;
}

int cx_reply_validation(cx_req_t *r, const char *field, const char *msg)
{
    char text[512];
    json_object *details = json_object_new_object();
    json_object_object_add(details, field, json_object_new_string(msg));
    snprintf(text, sizeof(text), "%.*s: %.400s", (int)cx_utf8_prefix(field, strlen(field), CX_DETAILS_NAME_MAX), field, msg);
    return cx_reply_error(r, 400, "VALIDATION_ERROR", text, details);
}

int cx_reply_status_for(cx_req_t *r, int rc, const char *what)
{
    char text[256];
    switch (rc) {
    case CX_NOTFOUND:
        snprintf(text, sizeof(text), "%s not found", what);
        return cx_reply_error(r, 404, "NOT_FOUND", text, NULL);
    case CX_CONFLICT:
        snprintf(text, sizeof(text), "%s conflicts with the current state", what);
        return cx_reply_error(r, 409, "CONFLICT", text, NULL);
    case CX_STATE:
        snprintf(text, sizeof(text), "%s is not in a state that allows this", what);
        return cx_reply_error(r, 409, "INVALID_STATE", text, NULL);
    case CX_UNAVAIL:
        return cx_reply_error(r, 503, "DATABASE_UNAVAILABLE", "the database is unavailable; retry later", NULL);
    case CX_INVALID:
        snprintf(text, sizeof(text), "invalid %s", what);
        return cx_reply_error(r, 400, "VALIDATION_ERROR", text, NULL);
    default:
        return cx_reply_error(r, 500, "INTERNAL_ERROR", "internal error; see the server log for this request id", NULL);
    }
}

char *cx_reply_error_http1(int status, const char *code, const char *msg, const char *request_id, size_t *len)
{
    json_object *o = json_object_new_object();
    char date[64];
    size_t blen, cap;
    time_t now = time(NULL);
    struct tm tm;
    char *out;

    json_object_object_add(o, "success", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_object_add(o, "code", json_object_new_string(code));
    json_object_object_add(o, "request_id", json_object_new_string(request_id));
    const char *body = json_object_to_json_string_length(o, JSON_FLAGS, &blen);
    gmtime_r(&now, &tm);
    (void)strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm); /* 29 bytes: date[] holds them */
    cap = blen + 512;
    out = cx_malloc(cap);
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: close\r\nContent-Length: %zu\r\nServer: conduix-cp\r\n"
                     "Content-Type: application/json; charset=utf-8\r\nX-Request-ID: %s\r\n\r\n%s",
                     status, reason_of(status), date, blen, request_id, body);
    json_object_put(o);
    *len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
    return out;
}
