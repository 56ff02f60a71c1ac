/*
 * src/api/auth.c -- /api/v1/auth: the configured providers, the start of a sign-in (a redirect, or the
 * JSON form the Conduix web UI posts), the provider's callback, logout and the caller's own user.
 *
 * The sign-in itself runs on the event loop (src/auth/oauth.c): these handlers start it and answer from
 * its completion. A callback that succeeds sets the session cookie and, when auth.frontend_url is set,
 * redirects to <frontend_url>/login?token=… -- the only place the browser is sent, never a URL from the
 * request. Every failure -- of a start (GET /auth/login/:provider, POST /auth/login) or of a callback --
 * is answered in the envelope, logged and audited (login_failed), and nothing of it remains: no user half
 * made, no token. Every answer of the callback deletes the state cookie.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>

#include "conduix/api.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/oauth.h"
#include "conduix/reply.h"
#include "conduix/shapes.h"
#include "conduix/sessions.h"
#include "conduix/users.h"

/* secure_cookies -- whether our cookies carry Secure: when the provider's redirect_url is https (the
 * browser comes back to us over https), or, when no provider is known (an unknown one in the path, a
 * token of conduix-cp token), when any provider's is. A Secure cookie can only be replaced or deleted by
 * a Set-Cookie that is Secure too. */
static int secure_cookies(const cx_provider_t *p)
{
    if (p != NULL)
        return strncmp(p->redirect_url, "https://", 8) == 0;
    for (size_t i = 0; i < cx_cfg->auth.nproviders; i++)
        if (strncmp(cx_cfg->auth.providers[i].redirect_url, "https://", 8) == 0)
            return 1;
    return 0;
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

/* body_provider -- the "provider" string of POST /auth/login's body, or NULL. */
static const char *body_provider(cx_req_t *r)
{
    json_object *v;

    if (!json_object_is_type(r->body, json_type_object) || !json_object_object_get_ex(r->body, "provider", &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* refuse -- the answer to a failed sign-in: logged, audited (login_failed, at stage "begin" or
 * "callback"), and in the envelope; with a field, details = {field: detail (msg when NULL)}. */
static int refuse(cx_req_t *r, const char *stage, const char *provider, int status, const char *code, const char *field,
                  const char *detail, const char *msg)
{
    json_object *details = NULL;

    cx_log_warnx("request %s: sign-in %s (%d): %s", r->request_id, strcmp(stage, "begin") == 0 ? "not started" : "failed", status,
                 msg);
    cx_session_audit_failure(provider, stage, status, msg, r->request_id);
    if (field != NULL && field[0] != '\0') {
        details = json_object_new_object();
        json_object_object_add(details, field, json_object_new_string(detail != NULL ? detail : msg));
    }
    return cx_reply_error(r, status, code, msg, details);
}

/* ---- sign-in start ---- */

static void begin_failed(cx_req_t *r, const cx_oauth_error_t *err)
{
    refuse(r, "begin", cx_req_param(r, "provider") != NULL ? cx_req_param(r, "provider") : body_provider(r), err->status, err->code,
           err->field, NULL, err->msg);
}

static void set_state_cookie(cx_req_t *r, const char *state)
{
    const cx_provider_t *p = cx_oauth_provider(cx_req_param(r, "provider"));

    if (p == NULL)
        p = cx_oauth_provider(body_provider(r));
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
        return refuse(r, "begin", id, 404, "NOT_FOUND", NULL, NULL, msg);
    }
    cx_oauth_begin(r, p, on_begin_redirect);
    return 0;
}

/* invalid_begin -- 400 VALIDATION_ERROR naming field, "field: msg", for POST /auth/login. */
static int invalid_begin(cx_req_t *r, const char *field, const char *msg)
{
    char text[256];

    snprintf(text, sizeof(text), "%.64s: %s", field, msg);
    return refuse(r, "begin", body_provider(r), 400, "VALIDATION_ERROR", field, msg, text);
}

/* cx_api_login_body -- the checks of POST /auth/login's body (api.h), apart for the fuzzers. */
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
    *why = "is not a configured identity provider";
    if ((size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v)))
        return CX_INVALID; /* a NUL inside: no provider's id */
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
        return invalid_begin(r, field, why);
    if ((p = cx_oauth_provider(id)) == NULL)
        return invalid_begin(r, "provider", "is not a configured identity provider");
    cx_oauth_begin(r, p, on_begin_json);
    return 0;
}

/* ---- callback ---- */

/* callback_answer -- what every answer of the callback starts with: the state cookie deleted (the state is
 * used up, or was never good: the browser needs a new sign-in) and no caching. */
static void callback_answer(cx_req_t *r, const cx_provider_t *p)
{
    cx_reply_set_cookie(r, CX_OAUTH_STATE_COOKIE, "", CX_OAUTH_COOKIE_PATH, 0, secure_cookies(p));
    no_cache(r);
}

static void on_finish(cx_req_t *r, const cx_oauth_identity_t *id, const cx_oauth_error_t *err)
{
    const char *pid = id != NULL ? id->provider->provider : cx_req_param(r, "provider");
    const cx_provider_t *p = cx_oauth_provider(pid);
    char ip[64];
    cx_user_t user;
    char *token = NULL;
    int64_t exp = 0;
    int rc;

    callback_answer(r, p);
    if (err != NULL) {
        refuse(r, "callback", pid, err->status, err->code, err->field, NULL, err->msg);
        return;
    }
    peer(r, ip, sizeof(ip));
    rc = cx_session_login(id, cx_req_header(r, "user-agent"), ip[0] ? ip : NULL, r->request_id, &user, &token, &exp);
    if (rc != CX_OK) {
        refuse(r, "callback", pid, rc == CX_UNAVAIL ? 503 : 500, rc == CX_UNAVAIL ? "DATABASE_UNAVAILABLE" : "INTERNAL_ERROR", NULL,
               NULL, "the sign-in succeeded at the provider, but the user or session could not be stored; sign in again");
        return;
    }
    cx_log_info("request %s: signed in: user %s (%s) with %s, role %s", r->request_id, user.id,
                user.email[0] ? user.email : "no e-mail", pid, cx_role_name(user.role));
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
    json_object_object_add(d, "token", json_object_new_string(token));
    json_object_object_add(d, "expires_at", cx_json_time(exp * 1000));
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
        callback_answer(r, NULL);
        return refuse(r, "callback", id, 404, "NOT_FOUND", NULL, NULL, msg);
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
    /* deleted with the attributes it was set with: the sign-in's provider decides Secure */
    cx_reply_set_cookie(r, CX_SESSION_COOKIE, "", "/", 0, secure_cookies(cx_oauth_provider(s.provider)));
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
        u.role = r->id.role;
        json_object *o = cx_user_json(&u);
        json_object_object_add(o, "id", json_object_new_string(r->id.sub)); /* a sub may be longer than a user id */
        return cx_reply_ok(r, 200, o, NULL);
    }
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "user");
    return cx_reply_ok(r, 200, cx_user_json(&u), NULL);
}
