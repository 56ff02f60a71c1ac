/*
 * oauth.h -- single sign-on with OAuth2 and OpenID Connect providers.
 *
 * src/auth/idtoken.c (pure, no I/O): JWK sets and the verification of an OIDC ID token -- signature with a
 * key of the provider's JWKS, the algorithm pinned by that key (RS256 or ES256), iss, aud/azp, exp, iat,
 * nbf, nonce, sub.
 *
 * src/auth/oauth.c: the sign-in itself, on the worker's event loop: the provider's authorization URL (state,
 * PKCE S256, nonce), and the callback (state check, code exchange, ID token or userinfo), each outbound
 * call made with the non-blocking client (client.h). Discovery documents and JWKS are cached per worker.
 */
#ifndef CONDUIX_OAUTH_H
#define CONDUIX_OAUTH_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>
#include "conduix/config.h"

struct evp_pkey_st;

#define CX_IDTOKEN_SKEW_S 60     /* clock skew allowed on exp, iat, nbf */
#define CX_IDTOKEN_MAX_AGE_S 600 /* an ID token issued longer ago than this (plus skew) is refused */

typedef struct cx_jwk {
    char kid[128]; /* "" when the key has none */
    char alg[8];   /* what this key verifies, "RS256" or "ES256": pinned by the key, never by a token */
    struct evp_pkey_st *pkey;
} cx_jwk_t;

typedef struct cx_jwks {
    cx_jwk_t *keys;
    size_t n;
} cx_jwks_t;

/* cx_jwks_parse -- the signing keys of a JWK set: RSA keys of at least 2048 bits (RS256) and EC P-256 keys
 * (ES256) whose "use" is "sig" or absent and whose "alg", when given, is the one we pin. Other keys are
 * skipped. CX_OK with *out filled (free with cx_jwks_free), or CX_INVALID with the reason in why (not a
 * JWK set, or no usable key). */
int cx_jwks_parse(const char *json, size_t len, cx_jwks_t *out, char *why, size_t whylen);
void cx_jwks_free(cx_jwks_t *jwks);

/* What a verified ID token says about the user. */
typedef struct cx_idtoken {
    char sub[256];
    char email[256]; /* "" when absent */
    int email_verified;
    char name[256]; /* "" when absent */
} cx_idtoken_t;

/* cx_idtoken_verify -- check an ID token against the provider's keys and what this sign-in expects.
 * CX_OK with *out filled; CX_NOTFOUND when no key of jwks matches the token's kid (the caller may fetch
 * the JWKS again once); CX_INVALID otherwise. why is a short reason for the log and the answer. */
int cx_idtoken_verify(const char *token, const cx_jwks_t *jwks, const char *issuer, const char *client_id, const char *nonce,
                      int64_t now_s, cx_idtoken_t *out, const char **why);

/* cx_b64url_encode -- base64url without padding of len bytes into out (at least 4 * ceil(len / 3) + 1). */
void cx_b64url_encode(const unsigned char *in, size_t len, char *out);

/* cx_b64url_decode -- decode base64url (no padding, no other characters) into a malloc'd buffer; its
 * length in *outlen. NULL when malformed. */
unsigned char *cx_b64url_decode(const char *in, size_t len, size_t *outlen);

/* cx_json_object -- s[0..len) (NUL-terminated at len) parsed strictly as one JSON object, or NULL. */
json_object *cx_json_object(const char *s, size_t len);

/* cx_json_str -- the string member name of o, or NULL when absent or not a string. */
const char *cx_json_str(json_object *o, const char *name);

/* ---- the sign-in flow (src/auth/oauth.c) ---- */

struct cx_req;

/* cx_oauth_provider -- the configured provider with this id, or NULL. */
const cx_provider_t *cx_oauth_provider(const char *id);

/* What a completed sign-in yields, before the user is provisioned. */
typedef struct cx_oauth_identity {
    const cx_provider_t *provider;
    char subject[256];
    char email[256];
    int email_trusted; /* the provider vouches for the address (e.g. email_verified) */
    char name[256];
} cx_oauth_identity_t;

/* Where a sign-in failed, for the answer, the log and the audit log. */
typedef struct cx_oauth_error {
    int status;       /* 400, 401, 404 or 502 */
    const char *code; /* VALIDATION_ERROR, UNAUTHORIZED, NOT_FOUND, PROVIDER_ERROR */
    char field[32];   /* VALIDATION_ERROR: the parameter at fault */
    char msg[384];
} cx_oauth_error_t;

/* cx_oauth_begin -- start a sign-in with provider p for request r: fetch the discovery document if needed,
 * store the state (with the PKCE verifier and nonce) so that any worker of any instance can finish it,
 * and call done(r, auth_url, state, NULL), or done(r, NULL, NULL, err). Answers later (cx_req_defer). */
typedef void (*cx_oauth_begin_cb)(struct cx_req *r, const char *auth_url, const char *state, const cx_oauth_error_t *err);
void cx_oauth_begin(struct cx_req *r, const cx_provider_t *p, cx_oauth_begin_cb done);

/* cx_oauth_finish -- the callback of provider p (NULL: the one the state names): check state, cookie and
 * iss, exchange the code, verify the ID token (OIDC) or fetch userinfo (OAuth2), and call
 * done(r, identity, NULL) or done(r, NULL, err). The state is consumed whatever happens next. */
typedef void (*cx_oauth_finish_cb)(struct cx_req *r, const cx_oauth_identity_t *id, const cx_oauth_error_t *err);
void cx_oauth_finish(struct cx_req *r, const cx_provider_t *p, const char *cookie_state, cx_oauth_finish_cb done);

#define CX_OAUTH_STATE_COOKIE "cx_sso_state"
#define CX_OAUTH_COOKIE_PATH "/api/v1/auth"
#define CX_OAUTH_STATE_TTL_S 600

#endif
