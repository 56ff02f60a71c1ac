/*
 * oauth.c -- the sign-in with an OAuth2 or OIDC provider (oauth.h), as a small state machine per request
 * driven by the worker's event loop: each outbound call (discovery, JWKS, token, userinfo) is started with
 * the non-blocking client and the flow resumes in its callback, so a provider that takes ten seconds to
 * answer holds one pending handle and nothing else.
 *
 * begin:  [discovery] -> state, PKCE verifier (S256), nonce stored in auth_states -> authorization URL
 * finish: state == cookie -> take the state (single use) -> [discovery] -> iss (RFC 9207) -> code exchange
 *         -> OIDC: [JWKS, again once for an unknown kid] -> ID token checks -> [userinfo for missing claims]
 *         -> OAuth2: userinfo -> the identity
 *
 * Discovery documents and JWK sets are cached per worker (an hour; a JWKS is fetched again when a token
 * names a kid it lacks, at most every JWKS_REFETCH_MS). The redirect_uri sent to the provider is the
 * configured one (or, without one, derived from the Host of the request that began), stored with the
 * state so the code exchange sends the same.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "conduix/client.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/http.h"
#include "conduix/log.h"
#include "conduix/oauth.h"
#include "conduix/users.h"

#define DISCOVERY_TTL_MS ((int64_t)3600 * 1000)
#define JWKS_TTL_MS ((int64_t)3600 * 1000)
#define JWKS_REFETCH_MS 10000 /* an unknown kid fetches the JWKS again at most this often */
#define CALLBACK_PATH "/api/v1/auth/callback/"

/* What this worker knows of one provider's endpoints and keys. */
typedef struct pstate {
    char id[65];
    int64_t disc_at; /* cx_now_ms of the discovery fetch, 0 = none */
    char *issuer, *authorize, *token, *userinfo, *jwks_uri;
    int basic; /* the token endpoint takes client_secret_basic */
    cx_jwks_t jwks;
    int64_t jwks_at;
} pstate_t;

static pstate_t **pstates; /* each allocated once: flows in flight hold pointers to them */
static size_t npstates;

typedef enum { STEP_DISCOVERY, STEP_TOKEN, STEP_JWKS, STEP_USERINFO } step_t;

typedef struct flow {
    cx_req_t *r;
    const cx_provider_t *p;
    pstate_t *ps;
    cx_client_call_t *call;
    step_t step;
    int finishing;
    cx_oauth_begin_cb begin_done;
    cx_oauth_finish_cb finish_done;
    char *redirect_uri; /* begin */
    char *code;         /* finish */
    char *iss_param;
    cx_login_state_t st;
    char *access_token, *id_token;
    int refetched;
    cx_oauth_identity_t id;
    cx_oauth_error_t err;
} flow_t;

static void flow_free(flow_t *f)
{
    if (f->call != NULL)
        cx_client_cancel(f->call);
    free(f->redirect_uri);
    free(f->code);
    free(f->iss_param);
    free(f->access_token);
    free(f->id_token);
    free(f);
}

/* on_abort -- the request is gone (the browser went away): drop the flow and its call. */
static void on_abort(void *arg)
{
    flow_t *f = arg;

    cx_log_info("sign-in with %s abandoned: the client went away while %s", f->p != NULL ? f->p->provider : "?",
                f->call != NULL ? "a call to the provider was in flight" : "it was being answered");
    flow_free(f);
}

const cx_provider_t *cx_oauth_provider(const char *id)
{
    for (size_t i = 0; id != NULL && i < cx_cfg->auth.nproviders; i++)
        if (strcmp(cx_cfg->auth.providers[i].provider, id) == 0)
            return &cx_cfg->auth.providers[i];
    return NULL;
}

static int is_oidc(const cx_provider_t *p)
{
    return strcmp(p->type, "oidc") == 0;
}

static pstate_t *pstate(const cx_provider_t *p)
{
    pstate_t *ps;

    for (size_t i = 0; i < npstates; i++)
        if (strcmp(pstates[i]->id, p->provider) == 0)
            return pstates[i];
    ps = cx_calloc(1, sizeof(*ps));
    snprintf(ps->id, sizeof(ps->id), "%s", p->provider);
    pstates = cx_realloc(pstates, (npstates + 1) * sizeof(pstate_t *));
    pstates[npstates++] = ps;
    return ps;
}

/* ---- errors ---- */

static void __attribute__((format(printf, 4, 5))) set_err(flow_t *f, int status, const char *field, const char *fmt, ...)
{
    va_list ap;

    f->err.status = status;
    f->err.code = status == 502   ? "PROVIDER_ERROR"
                  : status == 404 ? "NOT_FOUND"
                  : status == 401 ? "UNAUTHORIZED"
                                  : "VALIDATION_ERROR";
    snprintf(f->err.field, sizeof(f->err.field), "%s", field != NULL ? field : "");
    va_start(ap, fmt);
    vsnprintf(f->err.msg, sizeof(f->err.msg), fmt, ap);
    va_end(ap);
}

/* fail -- end the flow with f->err. */
static void fail(flow_t *f)
{
    cx_req_t *r = f->r;

    f->r = NULL;
    r->on_abort = NULL;
    if (f->finishing)
        f->finish_done(r, NULL, &f->err);
    else
        f->begin_done(r, NULL, NULL, &f->err);
    flow_free(f);
}

/* call_failed -- the answer res of the current step is not usable: 502 naming the provider and step. */
static void call_failed(flow_t *f, const char *what, const cx_client_res_t *res, const char *detail)
{
    if (res != NULL && res->error != NULL)
        set_err(f, 502, NULL, "identity provider %s: %s: %s", f->p->provider, what, res->error);
    else if (detail != NULL)
        set_err(f, 502, NULL, "identity provider %s: %s: %s", f->p->provider, what, detail);
    else
        set_err(f, 502, NULL, "identity provider %s: %s answered HTTP %d", f->p->provider, what, res ? res->status : 0);
    fail(f);
}

/* ---- JSON helpers ---- */

/* jpath -- the value at a dotted path ("response.id") of o, or NULL. */
static json_object *jpath(json_object *o, const char *path)
{
    char name[128];

    while (o != NULL && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(name) || !json_object_is_type(o, json_type_object))
            return NULL;
        memcpy(name, path, n);
        name[n] = '\0';
        if (!json_object_object_get_ex(o, name, &o))
            return NULL;
        path += n + (path[n] == '.');
    }
    return o;
}

/* jtext -- a string or integer value as text into out; 0 when absent, empty or too long. */
static int jtext(json_object *v, char *out, size_t cap)
{
    const char *s;

    out[0] = '\0';
    if (v == NULL)
        return 0;
    if (json_object_is_type(v, json_type_int))
        snprintf(out, cap, "%lld", (long long)json_object_get_int64(v));
    else if (json_object_is_type(v, json_type_string) && (s = json_object_get_string(v))[0] && strlen(s) < cap)
        memcpy(out, s, strlen(s) + 1);
    return out[0] != '\0';
}

static int same_issuer(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 0 && a[la - 1] == '/')
        la--;
    while (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && memcmp(a, b, la) == 0;
}

/* ---- steps ---- */

static void begin_build(flow_t *f);
static void finish_exchange(flow_t *f);
static void finish_verify(flow_t *f);
static void on_answer(void *arg, const cx_client_res_t *res);

/* start -- the outbound call of step; a call that cannot start ends the flow. */
static void start(flow_t *f, step_t step, const char *url, const char *form, const char *const *headers, const char *user,
                  const char *pass)
{
    f->step = step;
    f->call = cx_client_start(url, form, headers, user, pass, cx_cfg->auth.provider_timeout_ms, on_answer, f);
    if (f->call == NULL) {
        set_err(f, 502, NULL, "identity provider %s: cannot call %s", f->p->provider, url);
        fail(f);
    }
}

static void fetch_discovery(flow_t *f)
{
    char url[2048];
    size_t n = strlen(f->p->issuer_url);

    while (n > 0 && f->p->issuer_url[n - 1] == '/')
        n--;
    snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration", (int)n, f->p->issuer_url);
    start(f, STEP_DISCOVERY, url, NULL, (const char *const[]){"Accept: application/json", NULL}, NULL, NULL);
}

/* discovery_done -- keep the endpoints of a discovery document; NULL or why it is unusable. */
static const char *discovery_done(flow_t *f, const cx_client_res_t *res)
{
    pstate_t *ps = f->ps;
    json_object *o, *methods;
    const char *iss, *az, *tok, *jw, *ui;
    static char why[512];

    if (res->status != 200)
        return NULL;
    if ((o = cx_json_object(res->body, res->len)) == NULL)
        return "not a JSON object";
    iss = cx_json_str(o, "issuer");
    az = cx_json_str(o, "authorization_endpoint");
    tok = cx_json_str(o, "token_endpoint");
    jw = cx_json_str(o, "jwks_uri");
    ui = cx_json_str(o, "userinfo_endpoint");
    if (iss == NULL || az == NULL || tok == NULL || jw == NULL) {
        json_object_put(o);
        return "issuer, authorization_endpoint, token_endpoint or jwks_uri missing";
    }
    if (!same_issuer(iss, f->p->issuer_url)) {
        snprintf(why, sizeof(why), "its issuer \"%.200s\" is not issuer_url \"%.200s\"", iss, f->p->issuer_url);
        json_object_put(o);
        return why;
    }
    free(ps->issuer);
    free(ps->authorize);
    free(ps->token);
    free(ps->userinfo);
    free(ps->jwks_uri);
    ps->issuer = cx_strdup(iss);
    ps->authorize = cx_strdup(az);
    ps->token = cx_strdup(tok);
    ps->userinfo = ui != NULL ? cx_strdup(ui) : NULL;
    ps->jwks_uri = cx_strdup(jw);
    ps->basic = 1; /* the default of OIDC Discovery when the list is absent */
    if (json_object_object_get_ex(o, "token_endpoint_auth_methods_supported", &methods) &&
        json_object_is_type(methods, json_type_array)) {
        int basic = 0, post = 0;
        for (size_t i = 0; i < json_object_array_length(methods); i++) {
            const char *m = json_object_get_string(json_object_array_get_idx(methods, i));
            basic |= m != NULL && strcmp(m, "client_secret_basic") == 0;
            post |= m != NULL && strcmp(m, "client_secret_post") == 0;
        }
        ps->basic = basic || !post;
    }
    ps->disc_at = cx_now_ms();
    json_object_put(o);
    return NULL;
}

static int discovery_fresh(const pstate_t *ps)
{
    return ps->disc_at > 0 && cx_now_ms() - ps->disc_at < DISCOVERY_TTL_MS;
}

/* random_token -- 32 random bytes, base64url (43 characters), into out[44]. */
static int random_token(char out[44])
{
    unsigned char raw[32];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return CX_ERR;
    cx_b64url_encode(raw, sizeof(raw), out);
    return CX_OK;
}

static void begin_build(flow_t *f)
{
    const cx_provider_t *p = f->p;
    char state[44], nonce[44], challenge[44];
    unsigned char digest[32];
    unsigned int dlen = 0;
    char *url, *scope = NULL;
    size_t cap = 0;
    int rc;

    if (random_token(state) != CX_OK || random_token(f->st.verifier) != CX_OK || random_token(nonce) != CX_OK ||
        EVP_Digest(f->st.verifier, strlen(f->st.verifier), digest, &dlen, EVP_sha256(), NULL) != 1) {
        set_err(f, 502, NULL, "identity provider %s: no randomness for the state", p->provider);
        fail(f);
        return;
    }
    cx_b64url_encode(digest, dlen, challenge);
    snprintf(f->st.provider, sizeof(f->st.provider), "%s", p->provider);
    snprintf(f->st.nonce, sizeof(f->st.nonce), "%s", is_oidc(p) ? nonce : "");
    snprintf(f->st.redirect_uri, sizeof(f->st.redirect_uri), "%s", f->redirect_uri);

    /* scopes, space-separated; OIDC always asks for openid */
    int has_openid = 0;
    for (size_t i = 0; i < p->nscopes; i++) {
        has_openid |= strcmp(p->scopes[i], "openid") == 0;
        cap += strlen(p->scopes[i]) + 1;
    }
    scope = cx_calloc(1, cap + 8);
    size_t used = is_oidc(p) && !has_openid ? (size_t)snprintf(scope, cap + 8, "openid") : 0;
    for (size_t i = 0; i < p->nscopes; i++)
        used += (size_t)snprintf(scope + used, cap + 8 - used, "%s%s", used > 0 ? " " : "", p->scopes[i]);
    const char *base = is_oidc(p) ? f->ps->authorize : p->auth_url;
    url = cx_strdup(base);
    char sep = strchr(base, '?') != NULL ? '&' : '?';
    url = cx_form_append(url, sep, "response_type", "code");
    url = cx_form_append(url, '&', "client_id", p->client_id);
    url = cx_form_append(url, '&', "redirect_uri", f->redirect_uri);
    if (scope[0])
        url = cx_form_append(url, '&', "scope", scope);
    url = cx_form_append(url, '&', "state", state);
    url = cx_form_append(url, '&', "code_challenge", challenge);
    url = cx_form_append(url, '&', "code_challenge_method", "S256");
    if (is_oidc(p))
        url = cx_form_append(url, '&', "nonce", nonce);
    free(scope);

    if ((rc = cx_db_login_state_save(state, &f->st, CX_OAUTH_STATE_TTL_S)) != CX_OK) {
        free(url);
        set_err(f, rc == CX_UNAVAIL ? 503 : 500, NULL, "the sign-in could not be stored");
        f->err.code = rc == CX_UNAVAIL ? "DATABASE_UNAVAILABLE" : "INTERNAL_ERROR";
        fail(f);
        return;
    }
    cx_req_t *r = f->r;
    f->r = NULL;
    r->on_abort = NULL;
    f->begin_done(r, url, state, NULL);
    free(url);
    flow_free(f);
}

/* redirect_uri_of -- the configured redirect_url, or http://<Host>/api/v1/auth/callback/<provider>. */
static char *redirect_uri_of(cx_req_t *r, const cx_provider_t *p)
{
    const char *host = cx_req_header(r, "host");
    size_t n;
    char *u;

    if (p->redirect_url[0])
        return cx_strdup(p->redirect_url);
    if (host == NULL || host[0] == '\0' || strpbrk(host, "/?#@ \t") != NULL)
        host = "localhost";
    n = strlen(host) + strlen(p->provider) + sizeof("http://" CALLBACK_PATH);
    u = cx_malloc(n);
    snprintf(u, n, "http://%s" CALLBACK_PATH "%s", host, p->provider);
    return u;
}

void cx_oauth_begin(cx_req_t *r, const cx_provider_t *p, cx_oauth_begin_cb done)
{
    flow_t *f = cx_calloc(1, sizeof(*f));

    f->r = r;
    f->p = p;
    f->ps = pstate(p);
    f->begin_done = done;
    f->redirect_uri = redirect_uri_of(r, p);
    cx_req_defer(r, on_abort, f);
    if (is_oidc(p) && !discovery_fresh(f->ps))
        fetch_discovery(f);
    else
        begin_build(f);
}

/* ---- finish ---- */

/* token_done -- the token endpoint's answer: access_token (and id_token for OIDC) into f, else the error. */
static int token_done(flow_t *f, const cx_client_res_t *res)
{
    json_object *o = res->len > 0 ? cx_json_object(res->body, res->len) : NULL;
    const char *e = o ? cx_json_str(o, "error") : NULL, *at, *it;

    if (e != NULL || (res->status >= 400 && res->status < 500)) {
        const char *desc = o ? cx_json_str(o, "error_description") : NULL;
        /* a code that is unknown, used, expired or bound to another verifier is the browser's problem;
         * anything else (our credentials, the provider's health) is the provider's or ours */
        int grant = e != NULL && (strcmp(e, "invalid_grant") == 0 || strcmp(e, "bad_verification_code") == 0);
        set_err(f, grant ? 401 : 502, NULL, "identity provider %s refused the code exchange: %s%s%s%s", f->p->provider,
                e ? e : "error", desc ? " (" : "", desc ? desc : "", desc ? ")" : "");
        json_object_put(o);
        return CX_INVALID;
    }
    if (res->status != 200 || o == NULL || (at = cx_json_str(o, "access_token")) == NULL || !at[0]) {
        set_err(f, 502, NULL, "identity provider %s: the token endpoint answered HTTP %d without an access_token", f->p->provider,
                res->status);
        json_object_put(o);
        return CX_INVALID;
    }
    f->access_token = cx_strdup(at);
    if ((it = cx_json_str(o, "id_token")) != NULL)
        f->id_token = cx_strdup(it);
    json_object_put(o);
    if (is_oidc(f->p) && f->id_token == NULL) {
        set_err(f, 502, NULL, "identity provider %s: the token endpoint answered without an id_token", f->p->provider);
        return CX_INVALID;
    }
    return CX_OK;
}

static void fetch_userinfo(flow_t *f, const char *url)
{
    size_t n = strlen(f->access_token) + 32;
    char *auth = cx_malloc(n);

    snprintf(auth, n, "Authorization: Bearer %s", f->access_token);
    start(f, STEP_USERINFO, url, NULL, (const char *const[]){auth, "Accept: application/json", NULL}, NULL, NULL);
    free(auth);
}

static void succeed(flow_t *f)
{
    cx_req_t *r = f->r;

    f->r = NULL;
    r->on_abort = NULL;
    f->finish_done(r, &f->id, NULL);
    flow_free(f);
}

/* userinfo_done -- the userinfo answer into f->id: for OAuth2 the subject, e-mail and name at the configured
 * paths; for OIDC only the claims the ID token lacked, from the same subject. */
static void userinfo_done(flow_t *f, const cx_client_res_t *res)
{
    json_object *o, *v;
    char sub[256];

    if (res->status != 200) {
        call_failed(f, "userinfo", res, NULL);
        return;
    }
    if ((o = cx_json_object(res->body, res->len)) == NULL) {
        call_failed(f, "userinfo", res, "the answer is not a JSON object");
        return;
    }
    if (is_oidc(f->p)) {
        if (!jtext(jpath(o, "sub"), sub, sizeof(sub)) || strcmp(sub, f->id.subject) != 0) {
            json_object_put(o);
            call_failed(f, "userinfo", res, "its sub is not the ID token's");
            return;
        }
        if (!f->id.email[0] && jtext(jpath(o, "email"), f->id.email, sizeof(f->id.email)))
            f->id.email_trusted =
                (v = jpath(o, "email_verified")) != NULL && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
        if (!f->id.name[0])
            jtext(jpath(o, "name"), f->id.name, sizeof(f->id.name));
    } else {
        if (!jtext(jpath(o, f->p->id_field), f->id.subject, sizeof(f->id.subject))) {
            char detail[160];
            snprintf(detail, sizeof(detail), "no subject at \"%s\" (auth.oauth2 id_field)", f->p->id_field);
            json_object_put(o);
            call_failed(f, "userinfo", res, detail);
            return;
        }
        jtext(jpath(o, f->p->email_field), f->id.email, sizeof(f->id.email));
        jtext(jpath(o, f->p->name_field), f->id.name, sizeof(f->id.name));
        /* trusted unless the provider says it is not verified */
        v = jpath(o, "email_verified");
        if (v == NULL)
            v = jpath(o, "verified_email");
        f->id.email_trusted =
            f->id.email[0] && !(v != NULL && json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v));
    }
    json_object_put(o);
    succeed(f);
}

static void finish_verify(flow_t *f)
{
    cx_idtoken_t idt;
    const char *why = NULL;
    pstate_t *ps = f->ps;
    int rc;

    if (ps->jwks.n == 0 || cx_now_ms() - ps->jwks_at >= JWKS_TTL_MS) {
        start(f, STEP_JWKS, ps->jwks_uri, NULL, (const char *const[]){"Accept: application/json", NULL}, NULL, NULL);
        return;
    }
    rc = cx_idtoken_verify(f->id_token, &ps->jwks, ps->issuer, f->p->client_id, f->st.nonce, (int64_t)time(NULL), &idt, &why);
    if (rc == CX_NOTFOUND && !f->refetched && cx_now_ms() - ps->jwks_at >= JWKS_REFETCH_MS) {
        /* the provider may have rotated its keys since we fetched them */
        f->refetched = 1;
        start(f, STEP_JWKS, ps->jwks_uri, NULL, (const char *const[]){"Accept: application/json", NULL}, NULL, NULL);
        return;
    }
    if (rc != CX_OK) {
        set_err(f, 401, NULL, "the ID token of identity provider %s is not valid: %s", f->p->provider, why);
        fail(f);
        return;
    }
    memcpy(f->id.subject, idt.sub, sizeof(idt.sub));
    memcpy(f->id.email, idt.email, sizeof(idt.email));
    memcpy(f->id.name, idt.name, sizeof(idt.name));
    f->id.email_trusted = idt.email[0] && idt.email_verified;
    if ((!f->id.email[0] || !f->id.name[0]) && ps->userinfo != NULL)
        fetch_userinfo(f, ps->userinfo);
    else
        succeed(f);
}

static void finish_exchange(flow_t *f)
{
    const cx_provider_t *p = f->p;
    int basic = is_oidc(p) && f->ps->basic && p->client_secret[0];
    char *form = NULL;

    /* RFC 9207: an iss in the authorization response must be the issuer we started with */
    if (f->iss_param != NULL && is_oidc(p) && strcmp(f->iss_param, f->ps->issuer) != 0) {
        set_err(f, 400, "iss", "iss: the authorization response comes from another issuer than %s's", p->provider);
        fail(f);
        return;
    }
    form = cx_form_append(form, '&', "grant_type", "authorization_code");
    form = cx_form_append(form, '&', "code", f->code);
    form = cx_form_append(form, '&', "redirect_uri", f->st.redirect_uri);
    form = cx_form_append(form, '&', "code_verifier", f->st.verifier);
    if (!basic) {
        form = cx_form_append(form, '&', "client_id", p->client_id);
        if (p->client_secret[0])
            form = cx_form_append(form, '&', "client_secret", p->client_secret);
    }
    start(f, STEP_TOKEN, is_oidc(p) ? f->ps->token : p->token_url, form, (const char *const[]){"Accept: application/json", NULL},
          basic ? p->client_id : NULL, basic ? p->client_secret : NULL);
    free(form);
}

static void on_answer(void *arg, const cx_client_res_t *res)
{
    flow_t *f = arg;
    const char *why;
    char detail[600];

    f->call = NULL;
    switch (f->step) {
    case STEP_DISCOVERY:
        if (res->error != NULL || res->status != 200) {
            call_failed(f, "discovery", res, NULL);
            return;
        }
        if ((why = discovery_done(f, res)) != NULL) {
            call_failed(f, "discovery", res, why);
            return;
        }
        if (f->finishing)
            finish_exchange(f);
        else
            begin_build(f);
        return;
    case STEP_TOKEN:
        if (res->error != NULL || res->status >= 500) {
            call_failed(f, "token endpoint", res, NULL);
            return;
        }
        if (token_done(f, res) != CX_OK) {
            fail(f);
            return;
        }
        if (is_oidc(f->p))
            finish_verify(f);
        else
            fetch_userinfo(f, f->p->userinfo_url);
        return;
    case STEP_JWKS: {
        cx_jwks_t keys;
        if (res->error != NULL || res->status != 200) {
            call_failed(f, "JWKS", res, NULL);
            return;
        }
        if (cx_jwks_parse(res->body, res->len, &keys, detail, sizeof(detail)) != CX_OK) {
            call_failed(f, "JWKS", res, detail);
            return;
        }
        cx_jwks_free(&f->ps->jwks);
        f->ps->jwks = keys;
        f->ps->jwks_at = cx_now_ms();
        finish_verify(f);
        return;
    }
    case STEP_USERINFO:
        if (res->error != NULL) {
            call_failed(f, "userinfo", res, NULL);
            return;
        }
        userinfo_done(f, res);
        return;
    }
}

void cx_oauth_finish(cx_req_t *r, const cx_provider_t *p, const char *cookie_state, cx_oauth_finish_cb done)
{
    flow_t *f = cx_calloc(1, sizeof(*f));
    const char *state = cx_req_query(r, "state"), *code = cx_req_query(r, "code"), *error = cx_req_query(r, "error");
    const char *iss = cx_req_query(r, "iss");
    int rc;

    f->r = r;
    f->p = p;
    f->finishing = 1;
    f->finish_done = done;
    cx_req_defer(r, on_abort, f);

    if (state == NULL || state[0] == '\0' || strlen(state) > 64) {
        set_err(f, 400, "state", "state: the callback has no valid state parameter");
        fail(f);
        return;
    }
    if (cookie_state == NULL || cookie_state[0] == '\0') {
        set_err(f, 400, "cookie",
                "cookie: this browser has no sign-in in progress (the " CX_OAUTH_STATE_COOKIE
                " cookie is missing): start the sign-in again");
        fail(f);
        return;
    }
    if (strcmp(cookie_state, state) != 0) {
        set_err(f, 400, "state", "state: the callback's state is not the sign-in this browser started");
        fail(f);
        return;
    }
    rc = cx_db_login_state_take(state, &f->st);
    if (rc == CX_NOTFOUND || rc == CX_EXPIRED) {
        set_err(f, 400, "state",
                rc == CX_EXPIRED ? "state: the sign-in took longer than 10 minutes; start it again"
                                 : "state: unknown or already used; start the sign-in again");
        fail(f);
        return;
    }
    if (rc != CX_OK) {
        set_err(f, rc == CX_UNAVAIL ? 503 : 500, NULL, "the sign-in could not be read");
        f->err.code = rc == CX_UNAVAIL ? "DATABASE_UNAVAILABLE" : "INTERNAL_ERROR";
        fail(f);
        return;
    }
    if (p == NULL && (p = cx_oauth_provider(f->st.provider)) == NULL) {
        set_err(f, 400, "state", "state: its provider %s is no longer configured", f->st.provider);
        fail(f);
        return;
    }
    f->p = p;
    f->ps = pstate(p);
    f->id.provider = p;
    if (strcmp(f->st.provider, p->provider) != 0) {
        set_err(f, 400, "state", "state: this sign-in was started with provider %s, not %s", f->st.provider, p->provider);
        fail(f);
        return;
    }
    if (error != NULL) {
        const char *desc = cx_req_query(r, "error_description");
        set_err(f, 401, NULL, "identity provider %s refused the sign-in: %.64s%s%.200s%s", p->provider, error, desc ? " (" : "",
                desc ? desc : "", desc ? ")" : "");
        fail(f);
        return;
    }
    if (code == NULL || code[0] == '\0' || strlen(code) > 4096) {
        set_err(f, 400, "code", "code: the callback has no authorization code");
        fail(f);
        return;
    }
    f->code = cx_strdup(code);
    f->iss_param = iss != NULL ? cx_strdup(iss) : NULL;
    if (is_oidc(p) && !discovery_fresh(f->ps))
        fetch_discovery(f);
    else
        finish_exchange(f);
}
