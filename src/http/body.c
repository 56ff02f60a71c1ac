/*
 * body.c -- the request body of a JSON route: size cap (413), Content-Type (415), strict JSON parse
 * (400 INVALID_JSON with line and column). h2o has buffered the whole entity already, bounded by
 * server.max_body_size (h2o answers 413 itself before reading a body whose Content-Length is larger).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conduix/http.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/reply.h"
#include "conduix/router.h"

#define JSON_MAX_DEPTH 64

static int is_json_type(const char *ct)
{
    size_t n;
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    n = strcspn(ct, "; ");
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 && strncasecmp(ct, "application/", 12) == 0);
}

/* position -- line and column (1-based) of byte offset off in buf. */
static void position(const char *buf, size_t len, size_t off, int *line, int *col)
{
    size_t i;
    *line = 1;
    *col = 1;
    for (i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int cx_body_parse(cx_req_t *r, const cx_route_t *route)
{
    h2o_iovec_t e = r->req->entity;
    json_tokener *tok;
    json_object *o;
    char msg[256];
    int line, col;

    if (route->body == CX_BODY_NONE)
        return CX_OK;
    if ((int64_t)e.len > cx_cfg->server.max_body_size) {
        snprintf(msg, sizeof(msg), "request body larger than %lld bytes", (long long)cx_cfg->server.max_body_size);
        cx_reply_error(r, 413, "PAYLOAD_TOO_LARGE", msg, NULL);
        return CX_INVALID;
    }
    if (e.base == NULL || e.len == 0) {
        if (route->body == CX_BODY_JSON_OPTIONAL)
            return CX_OK;
        cx_reply_error(r, 400, "VALIDATION_ERROR", "a JSON request body is required", NULL);
        return CX_INVALID;
    }
    if (!is_json_type(cx_req_header(r, "content-type"))) {
        cx_reply_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be JSON (Content-Type: application/json)", NULL);
        return CX_INVALID;
    }
    tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* a NUL-terminated copy; the +1 tells the tokener the input is complete, so trailing garbage fails */
    char *copy = h2o_mem_alloc_pool(&r->req->pool, e.len + 1);
    memcpy(copy, e.base, e.len);
    copy[e.len] = '\0';
    o = json_tokener_parse_ex(tok, copy, (int)e.len + 1);
    if (o == NULL || json_tokener_get_parse_end(tok) < e.len) {
        enum json_tokener_error err = json_tokener_get_error(tok);
        size_t off = json_tokener_get_parse_end(tok);
        position(copy, e.len, off, &line, &col);
        if (o != NULL) {
            json_object_put(o);
            snprintf(msg, sizeof(msg), "malformed JSON at line %d, column %d: unexpected data after the value", line, col);
        } else {
            snprintf(msg, sizeof(msg), "malformed JSON at line %d, column %d: %s", line, col,
                     err == json_tokener_success ? "unexpected end of input" : json_tokener_error_desc(err));
        }
        json_tokener_free(tok);
        cx_reply_error(r, 400, "INVALID_JSON", msg, NULL);
        return CX_INVALID;
    }
    json_tokener_free(tok);
    r->body = o;
    return CX_OK;
}
