/*
 * src/api/auth.c -- /api/v1/auth: the configured providers, the start of a sign-in (a redirect, or the
 * JSON form the Conduix web UI posts), the provider's callback, logout and the caller's own user.
 *
 * The sign-in itself runs on the event loop (src/auth/oauth.c): these handlers start it and answer from
 * its completion. A callback that succeeds sets the session cookie and, when auth.frontend_url is set,
 * redirects to <frontend_url>/login?token=… -- the only place the browser is sent, never a URL from the
 * request. Every failure is answered in the envelope, logged and audited, and nothing of it remains: no
 * user half made, no token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>

#include "conduix/api.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/jwt.h"
#include "conduix/log.h"
#include "conduix/oauth.h"
#include "conduix/reply.h"
#include "conduix/shapes.h"
#include "conduix/sessions.h"
#include "conduix/users.h"

static int secure_cookies(const cx_provider_t *p)
{
    return p != NULL && strncmp(p->redirect_url, "https://", 8) == 0;
}

/* no_cache -- a sign-in answer is never cached, and never leaks its URL (state, code, token) onwards. */
static void no_cache(cx_req_t *r)
{
    cx_reply_add_header(r, "cache-control", "no-store");
    cx_reply_add_header(r, "referrer-policy", "no-referrer");
}

/* peer -- the client's address as text into out. */
static void peer(cx_req_t *r, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);

    out[0] = '\0';
    if (sl > 0)
        getnameinfo((struct sockaddr *)&ss, sl, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
}

int cx_api_auth_providers(cx_req_t *r)
{
    json_object *list = json_object_new_array();

    for (size_t i = 0; i < cx_cfg->auth.nproviders; i++) {
        const cx_provider_t *p = &cx_cfg->auth.providers[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(p->provider));
        json_object_object_add(o, "name", json_object_new_string(p->name));
        json_object_object_add(o, "type", json_object_new_string(p->type));
        json_object_object_add(o, "enabled", json_object_new_boolean(1));
        json_object_array_add(list, o);
    }
    return cx_reply_ok(r, 200, list, NULL);
}

/* ---- sign-in start ---- */

static void begin_failed(cx_req_t *r, const cx_oauth_error_t *err)
{
    cx_log_warnx("request %s: sign-in not started: %s", r->request_id, err->msg);
    cx_reply_error(r, err->status, err->code, err->msg, NULL);
}

static void set_state_cookie(cx_req_t *r, const char *state)
{
    const cx_provider_t *p = cx_oauth_provider(cx_req_param(r, "provider"));

    if (p == NULL && r->body != NULL) {
        json_object *v;
        if (json_object_object_get_ex(r->body, "provider", &v))
            p = cx_oauth_provider(json_object_get_string(v));
    }
    cx_reply_set_cookie(r, CX_OAUTH_STATE_COOKIE, state, CX_OAUTH_COOKIE_PATH, CX_OAUTH_STATE_TTL_S, secure_cookies(p));
}

static void on_begin_redirect(cx_req_t *r, const char *auth_url, const char *state, const cx_oauth_error_t *err)
{
    if (err != NULL) {
        begin_failed(r, err);
        return;
    }
    set_state_cookie(r, state);
    no_cache(r);
    cx_reply_add_header(r, "location", auth_url);
    cx_reply_raw(r, 302, NULL, "", 0);
}

static void on_begin_json(cx_req_t *r, const char *auth_url, const char *state, const cx_oauth_error_t *err)
{
    json_object *d;
    json_object *v = NULL;

    if (err != NULL) {
        begin_failed(r, err);
        return;
    }
    set_state_cookie(r, state);
    no_cache(r);
    json_object_object_get_ex(r->body, "provider", &v);
    d = json_object_new_object();
    json_object_object_add(d, "auth_url", json_object_new_string(auth_url));
    json_object_object_add(d, "state", json_object_new_string(state));
    json_object_object_add(d, "provider", json_object_get(v));
    cx_reply_ok(r, 200, d, NULL);
}

/* GET /auth/login/:provider -- 302 to the provider. */
int cx_api_auth_login_redirect(cx_req_t *r)
{
    const char *id = cx_req_param(r, "provider");
    const cx_provider_t *p = cx_oauth_provider(id);
    char msg[160];

    if (p == NULL) {
        snprintf(msg, sizeof(msg), "no identity provider \"%.64s\" is configured", id);
        return cx_reply_error(r, 404, "NOT_FOUND", msg, NULL);
    }
    cx_oauth_begin(r, p, on_begin_redirect);
    return 0;
}

int cx_api_login_body(json_object *body, const char **provider, const char **field, const char **why)
{
    json_object *v;

    *provider = NULL;
    *field = "body";
    *why = "must be a JSON object {\"provider\": \"…\"}";
    if (!json_object_is_type(body, json_type_object))
        return CX_INVALID;
    json_object_object_foreach(body, key, val)
    {
        (void)val;
        if (strcmp(key, "provider") != 0) {
            *field = key;
            *why = "unknown field; allowed: provider";
            return CX_INVALID;
        }
    }
    *field = "provider";
    *why = "is required: the id of a provider of GET /api/v1/auth/providers";
    if (!json_object_object_get_ex(body, "provider", &v) || !json_object_is_type(v, json_type_string))
        return CX_INVALID;
    *provider = json_object_get_string(v);
    *field = *why = NULL;
    return CX_OK;
}

/* POST /auth/login {"provider"} -- what the Conduix web UI sends: the URL to send the browser to. */
int cx_api_auth_login(cx_req_t *r)
{
    const char *id, *field, *why;
    const cx_provider_t *p;

    if (cx_api_login_body(r->body, &id, &field, &why) != CX_OK)
        return cx_reply_validation(r, field, why);
    if ((p = cx_oauth_provider(id)) == NULL)
        return cx_reply_validation(r, "provider", "is not a configured identity provider");
    cx_oauth_begin(r, p, on_begin_json);
    return 0;
}

/* ---- callback ---- */

static void on_finish(cx_req_t *r, const cx_oauth_identity_t *id, const cx_oauth_error_t *err)
{
    const char *pid = id != NULL ? id->provider->provider : cx_req_param(r, "provider");
    const cx_provider_t *p = cx_oauth_provider(pid);
    char ip[64], exp_at[32];
    cx_user_t user;
    char *token = NULL;
    int64_t exp = 0;
    int rc;

    /* the state is used up whatever happens: the browser needs a new sign-in */
    cx_reply_set_cookie(r, CX_OAUTH_STATE_COOKIE, "", CX_OAUTH_COOKIE_PATH, 0, secure_cookies(p));
    no_cache(r);
    if (err != NULL) {
        cx_log_warnx("request %s: sign-in failed (%d): %s", r->request_id, err->status, err->msg);
        cx_session_audit_failure(pid != NULL ? pid : "", err->status, err->msg, r->request_id);
        if (err->field[0] != '\0') {
            json_object *details = json_object_new_object();
            json_object_object_add(details, err->field, json_object_new_string(err->msg));
            cx_reply_error(r, err->status, err->code, err->msg, details);
        } else {
            cx_reply_error(r, err->status, err->code, err->msg, NULL);
        }
        return;
    }
    peer(r, ip, sizeof(ip));
    rc = cx_session_login(id, cx_req_header(r, "user-agent"), ip[0] ? ip : NULL, r->request_id, &user, &token, &exp);
    if (rc != CX_OK) {
        cx_log_warnx("request %s: sign-in with %s failed: the user or session could not be stored", r->request_id, pid);
        cx_reply_status_for(r, rc, "user");
        return;
    }
    cx_log_info("request %s: signed in: user %s (%s) with %s, role %s", r->request_id, user.id,
                user.email[0] ? user.email : "no e-mail", pid, user.role);
    cx_reply_set_cookie(r, CX_SESSION_COOKIE, token, "/", cx_cfg->auth.token_expiry_ms / 1000, secure_cookies(p));
    if (cx_cfg->auth.frontend_url[0] != '\0') {
        const char *f = cx_cfg->auth.frontend_url;
        size_t n = strlen(f), cap;
        char *loc;

        while (n > 0 && f[n - 1] == '/')
            n--;
        cap = n + strlen(token) + sizeof("/login?token=");
        loc = h2o_mem_alloc_pool(&r->req->pool, cap);
        snprintf(loc, cap, "%.*s/login?token=%s", (int)n, f, token);
        free(token);
        cx_reply_add_header(r, "location", loc);
        cx_reply_raw(r, 302, NULL, "", 0);
        return;
    }
    json_object *d = json_object_new_object();
    cx_time_format(exp, exp_at);
    json_object_object_add(d, "token", json_object_new_string(token));
    json_object_object_add(d, "expires_at", json_object_new_string(exp_at));
    json_object_object_add(d, "user", cx_user_json(&user));
    free(token);
    cx_reply_ok(r, 200, d, NULL);
}

/* GET /auth/callback/:provider (and /auth/callback, where the state names the provider) */
int cx_api_auth_callback(cx_req_t *r)
{
    const char *id = cx_req_param(r, "provider");
    const cx_provider_t *p = NULL;
    char msg[160];

    if (id != NULL && (p = cx_oauth_provider(id)) == NULL) {
        snprintf(msg, sizeof(msg), "no identity provider \"%.64s\" is configured", id);
        return cx_reply_error(r, 404, "NOT_FOUND", msg, NULL);
    }
    cx_oauth_finish(r, p, cx_req_cookie(r, CX_OAUTH_STATE_COOKIE), on_finish);
    return 0;
}

/* ---- the signed-in caller ---- */

/* POST /auth/logout -- revoke the presented token. */
int cx_api_auth_logout(cx_req_t *r)
{
    cx_session_t s;
    int known, rc;
    json_object *d;

    rc = cx_session_revoke(r->id.jti, r->id.sub, r->id.exp, cx_req_actor(r), "logout", r->request_id, &s, &known);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "session");
    cx_reply_set_cookie(r, CX_SESSION_COOKIE, "", "/", 0, 0);
    d = json_object_new_object();
    json_object_object_add(d, "jti", json_object_new_string(r->id.jti));
    json_object_object_add(d, "revoked_at", cx_json_time(s.revoked_at));
    return cx_reply_ok(r, 200, d, "logged out: this token is refused from now on");
}

/* GET /auth/me -- the caller's user; a token without a users row (conduix-cp token) answers from its claims. */
int cx_api_auth_me(cx_req_t *r)
{
    cx_user_t u;
    int rc = cx_db_user_get(r->id.sub, &u);

    if (rc == CX_NOTFOUND) {
        memset(&u, 0, sizeof(u));
        snprintf(u.email, sizeof(u.email), "%s", r->id.email);
        snprintf(u.name, sizeof(u.name), "%s", r->id.name);
        snprintf(u.role, sizeof(u.role), "%s", cx_role_name(r->id.role));
        json_object *o = cx_user_json(&u);
        json_object_object_add(o, "id", json_object_new_string(r->id.sub)); /* a sub may be longer than a user id */
        return cx_reply_ok(r, 200, o, NULL);
    }
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "user");
    return cx_reply_ok(r, 200, cx_user_json(&u), NULL);
}
