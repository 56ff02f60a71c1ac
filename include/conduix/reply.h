/*
 * reply.h -- the only place that writes a response body: the envelope of docs/api.md, Content-Length on
 * every response, X-Request-ID, and request_id in error bodies.
 */
#ifndef CONDUIX_REPLY_H
#define CONDUIX_REPLY_H

#include "conduix/http.h"
#include "conduix/jsonw.h"

/* cx_reply_ok -- {"success":true,"data":data[,"message":message]}; takes ownership of data (NULL = {}). */
int cx_reply_ok(cx_req_t *r, int status, json_object *data, const char *message);

/* cx_reply_page -- a page envelope; takes ownership of items (an array). */
int cx_reply_page(cx_req_t *r, json_object *items, int64_t total, int page, int page_size);

/* cx_reply_begin, cx_reply_end -- the success envelope written as text (jsonw.h): begin writes
 * {"success":true,"data": into w, the caller writes the value of data, end closes it, sends it with
 * status and frees w. cx_reply_page_begin/_end do the same for a page: the caller writes the items. */
void cx_reply_begin(cx_jw_t *w);
int cx_reply_end(cx_req_t *r, int status, cx_jw_t *w);
void cx_reply_page_begin(cx_jw_t *w);
int cx_reply_page_end(cx_req_t *r, cx_jw_t *w, int64_t total, int page, int page_size);

/* At most this much of a details object is sent (cx_reply_error): fields, bytes of a field name, bytes of
 * its message; "_truncated" then says how many fields were left out. */
#define CX_DETAILS_MAX 16
#define CX_DETAILS_NAME_MAX 64
#define CX_DETAILS_TEXT_MAX 256

/* cx_reply_error -- {"success":false,"error":msg,"code":code,"request_id":…[,"details":details]}; takes
 * ownership of details (sent capped, see CX_DETAILS_MAX). Adds WWW-Authenticate on 401, Retry-After on 429
 * and 503. */
int cx_reply_error(cx_req_t *r, int status, const char *code, const char *msg, json_object *details);

/* cx_reply_error_head -- the status, headers and Content-Length of cx_reply_error, with the body
 * returned (in the request's pool) instead of sent: for a response that h2o already started
 * (http/errors.c). */
h2o_iovec_t cx_reply_error_head(cx_req_t *r, int status, const char *code, const char *msg);

/* cx_reply_error_http1 -- a whole HTTP/1.1 response (status line, headers, the error envelope; Connection:
 * close) as bytes to write on a socket, for a request h2o never made a request of (conn.c). malloc'ed;
 * its length in *len. */
char *cx_reply_error_http1(int status, const char *code, const char *msg, const char *request_id, size_t *len);

/* cx_reply_validation -- 400 VALIDATION_ERROR with details {field: message}. */
int cx_reply_validation(cx_req_t *r, const char *field, const char *msg);

/* cx_reply_db_error -- the reply for a negative CX_ code from the data layer: 404, 409, 503 or 500. */
int cx_reply_status_for(cx_req_t *r, int rc, const char *what);

/* cx_reply_raw -- a body without the envelope (health, metrics). */
int cx_reply_raw(cx_req_t *r, int status, const char *content_type, const char *body, size_t len);

/* cx_reply_json_raw -- a JSON object without the envelope; takes ownership of obj. */
int cx_reply_json_raw(cx_req_t *r, int status, json_object *obj);

/* cx_reply_add_header -- add a response header before replying (name lowercase). */
void cx_reply_add_header(cx_req_t *r, const char *name, const char *value);

/* cx_reply_set_cookie -- Set-Cookie: name=value; Path=path; Max-Age=max_age_s (0 deletes it); HttpOnly;
 * SameSite=Lax; and Secure when secure. value must be a cookie-safe token (base64url, a JWT). */
void cx_reply_set_cookie(cx_req_t *r, const char *name, const char *value, const char *path, int64_t max_age_s, int secure);

/* cx_reply_page_as -- cx_reply_page with the array also under the name also (NULL: none), for a client that
 * reads a list under another name than "items" (the Conduix web UI's data.users). */
int cx_reply_page_as(cx_req_t *r, json_object *items, const char *also, int64_t total, int page, int page_size);

#endif
