/*
 * client.h -- outbound HTTP(S) calls that never block the worker: libcurl's multi interface driven by the
 * worker's h2o event loop. A call is started, the handler returns, and the callback runs later from the
 * loop with the whole answer (or the reason there is none). Used for the identity providers (OIDC
 * discovery, JWKS, token exchange, userinfo).
 */
#ifndef CONDUIX_CLIENT_H
#define CONDUIX_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>

#define CX_CLIENT_MAX_BODY (1 << 20) /* a larger answer is an error */

typedef struct cx_client_res {
    int status;        /* HTTP status; 0 when there is no answer (see error) */
    const char *body;  /* NUL-terminated; "" when empty */
    size_t len;        /* bytes of body */
    const char *ctype; /* Content-Type, or "" */
    const char *error; /* NULL on an answer (any status), else why there is none: "timed out after 10000 ms" … */
    int64_t ms;        /* how long the call took */
} cx_client_res_t;

typedef struct cx_client_call cx_client_call_t;

/* Called once, from the loop, when the call ends. The call and res are freed after it returns; it must
 * not cancel its own call. */
typedef void (*cx_client_cb)(void *arg, const cx_client_res_t *res);

/* cx_client_init -- set up this process's client on loop (once per worker, after fork). CX_OK or CX_ERR. */
int cx_client_init(h2o_loop_t *loop);

/* cx_client_start -- begin a GET (form == NULL) or a POST of form (application/x-www-form-urlencoded).
 * headers: NULL-terminated "Name: value" lines, may be NULL. basic_user/basic_pass: HTTP Basic
 * credentials, or NULL. Only http and https, no redirects followed, timeout_ms bounds the whole call.
 * Returns the call (for cx_client_cancel), or NULL when it could not be started (logged; cb is not called). */
cx_client_call_t *cx_client_start(const char *url, const char *form, const char *const *headers, const char *basic_user,
                                  const char *basic_pass, int64_t timeout_ms, cx_client_cb cb, void *arg);

/* cx_client_cancel -- abandon a call that has not ended: cb is never called. */
void cx_client_cancel(cx_client_call_t *call);

/* cx_client_pending -- calls in flight in this process (for tests and shutdown). */
int cx_client_pending(void);

/* cx_form_append -- append name=value (both percent-encoded) to a form or query string held in buf
 * (malloc'd, may be NULL); sep is put before the pair unless buf is empty. Returns the new buffer. */
char *cx_form_append(char *buf, char sep, const char *name, const char *value);

#endif
