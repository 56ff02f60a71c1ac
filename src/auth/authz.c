/*
 * authz.c -- authentication (Bearer JWT, else the session cookie the sign-in set) and authorization (the
 * route's least role) for one request. The route table is the only input that decides access: viewer <
 * operator < admin, and `agent` tokens only on agent routes for the agent id in the path (admins may call
 * those too). A token with a good signature is still refused once revoked, and carries its user's current
 * role when an admin changed it (sessions.c).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conduix/authz.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/jwt.h"
#include "conduix/log.h"
#include "conduix/reply.h"
#include "conduix/sessions.h"
#include "conduix/shm.h"

/* At most REFUSED_BURST "token refused" lines at once and REFUSED_PER_S a second from one process; the
 * lines left out are counted in the next one written. A flood of bad tokens is counted in
 * conduix_auth_failures_total and its 401s are in the access log; the log need not say why a
 * thousand times a second. */
#define REFUSED_PER_S 10
#define REFUSED_BURST ((int64_t)20)

/* refused_log -- one "token refused" line, unless over the budget. */
static void refused_log(cx_req_t *r, const char *fmt, const char *arg)
{
    static int64_t last_ms, allowance_milli = REFUSED_BURST * 1000;
    static uint64_t suppressed;
    int64_t now = cx_now_ms();
    char more[96] = "";

    allowance_milli += (now - last_ms) * REFUSED_PER_S;
    if (allowance_milli > REFUSED_BURST * 1000)
        allowance_milli = REFUSED_BURST * 1000;
    last_ms = now;
    if (allowance_milli < 1000) {
        suppressed++;
        return;
    }
    allowance_milli -= 1000;
    if (suppressed > 0)
        snprintf(more, sizeof(more), " (and %llu more token(s) refused, not logged)", (unsigned long long)suppressed);
    suppressed = 0;
    cx_log_info(fmt, r->request_id, arg, more);
}

static int deny(cx_req_t *r, int status, const char *code, const char *msg)
{
    if (status == 401)
        cx_shm_count(CX_C_AUTH_FAILURES, 1);
    cx_reply_error(r, status, code, msg, NULL);
    return CX_DENIED;
}

/* bearer -- the token of an "Authorization: Bearer …" header, or NULL. */
static const char *bearer(cx_req_t *r)
{
    const char *h = cx_req_header(r, "authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

static int role_rank(cx_role_t role)
{
    switch (role) {
    case CX_ROLE_VIEWER:
        return 1;
    case CX_ROLE_OPERATOR:
        return 2;
    case CX_ROLE_ADMIN:
        return 3;
    default:
        return 0;
    }
}

int cx_authz_request(cx_req_t *r, const cx_route_t *route)
{
    const char *token, *why = NULL;
    int rc, need;

    if (route->access == CX_ACCESS_PUBLIC)
        return CX_OK;
    if ((token = bearer(r)) == NULL && (token = cx_req_cookie(r, CX_SESSION_COOKIE)) == NULL)
        return deny(r, 401, "UNAUTHORIZED", "authentication required: send Authorization: Bearer <token>");
    rc = cx_jwt_verify_cached(cx_cfg->auth.jwt_secret, cx_cfg->auth.issuer, token, &r->id, &why);
    if (rc == CX_EXPIRED)
        return deny(r, 401, "TOKEN_EXPIRED", "the token has expired");
    if (rc != CX_OK) {
        refused_log(r, "request %s: token refused: %s%s", why ? why : "invalid");
        return deny(r, 401, "UNAUTHORIZED", "invalid token");
    }
    if (cx_session_ready() != CX_OK) {
        /* this worker cannot yet tell a revoked token from a good one: refusing is the only safe answer */
        memset(&r->id, 0, sizeof(r->id));
        cx_reply_add_header(r, "retry-after", "1");
        return deny(r, 503, "DATABASE_UNAVAILABLE",
                    "this server process cannot check tokens yet: it has not read the revoked tokens since it started "
                    "(the database is unavailable); retry shortly");
    }
    if (cx_session_check(&r->id) != CX_OK) {
        refused_log(r, "request %s: token refused: revoked (jti %s)%s", r->id.jti);
        memset(&r->id, 0, sizeof(r->id));
        return deny(r, 401, "UNAUTHORIZED", "the token has been revoked");
    }
    r->id.authenticated = 1;

    if (route->access == CX_ACCESS_AGENT) {
        const char *agent = cx_req_param(r, "id");
        if (r->id.role == CX_ROLE_ADMIN)
            return CX_OK;
        if (r->id.role == CX_ROLE_AGENT && agent != NULL && strcmp(agent, r->id.sub) == 0)
            return CX_OK;
        return deny(r, 403, "FORBIDDEN",
                    r->id.role == CX_ROLE_AGENT ? "an agent token may only act for its own agent id"
                                                : "this endpoint is for agents");
    }
    need = route->access == CX_ACCESS_VIEWER ? 1 : route->access == CX_ACCESS_OPERATOR ? 2 : 3;
    if (role_rank(r->id.role) < need)
        return deny(r, 403, "FORBIDDEN",
                    need == 3   ? "this action requires the admin role"
                    : need == 2 ? "this action requires the operator role"
                                : "this action requires a user role");
    return CX_OK;
}
