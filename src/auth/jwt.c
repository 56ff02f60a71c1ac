/*
 * jwt.c -- conduix-cp's own tokens (libjwt 1.10): HS256 only, minted with the configured secret and
 * issuer, and verified with every check libjwt leaves to its caller. jwt_decode only checks the signature
 * for the alg the token names (and, with no key, checks nothing at all), so after it we require alg
 * exactly "HS256" (no alg=none, no HS384/HS512, no alg confusion, no "hs256"), typ "JWT" when present, no "crit" header, and the
 * claims sub, role, exp, jti, iss (= auth.issuer) present and well typed: jwt_get_grant_int answers 0 for
 * a string or a float, so integer claims are read from their JSON text.
 *
 * Time: exp is strict, without leeway: a token is expired from the second exp names (we mint our tokens
 * from the same clock, and a grace period would only lengthen every token's life). nbf, which we do not
 * mint, is accepted up to NBF_LEEWAY_S in the future, for other minters' clock skew.
 *
 * cx_jwt_verify_cached keeps the claims of the tokens this process verified (a few hundred, by the whole
 * token text), so that a client sending the same token again costs a hash and a compare, not an HMAC
 * and two JSON parses: the signature and claims of a given text cannot change, and exp is checked on
 * every hit. Whether the token was revoked is not the token's: the caller asks sessions.c every time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include "conduix/cx.h"
#include "conduix/hash.h"
#include "conduix/log.h"
#include "conduix/jwt.h"

#define TOKEN_MAX 8192
#define CACHE_SLOTS 256 /* verified tokens remembered per process (direct-mapped by hash) */
#define NBF_LEEWAY_S 30
#define TTL_MAX_S ((int64_t)100 * 365 * 86400)

/* cx_jwt_mint_ex -- sign a token for sub with role; its jti and exp into jti_out and exp_out (may be NULL).
 * Arguments are checked against what cx_jwt_verify accepts, so that we never mint a token we would
 * refuse. */
char *cx_jwt_mint_ex(const char *secret, const char *issuer, const char *sub, const char *role, const char *email, const char *name,
                     int64_t ttl_s, char jti_out[37], int64_t *exp_out)
{
    jwt_t *j = NULL;
    char *token = NULL;
    char jti[37];
    int64_t now = (int64_t)time(NULL);

    if (secret == NULL || secret[0] == '\0' || issuer == NULL || issuer[0] == '\0') {
        cx_log_errorx("jwt: mint: no secret or issuer");
        return NULL;
    }
    if (sub == NULL || sub[0] == '\0' || strlen(sub) > 255 || cx_role_parse(role) == CX_ROLE_NONE ||
        (email != NULL && strlen(email) > 255) || (name != NULL && strlen(name) > 255) || ttl_s <= 0 || ttl_s > TTL_MAX_S) {
        cx_log_errorx("jwt: mint: invalid sub, role, email, name or ttl");
        return NULL;
    }
    cx_uuid(jti);
    if (jwt_new(&j) != 0)
        goto fail;
    if (jwt_add_grant(j, "iss", issuer) != 0 || jwt_add_grant(j, "sub", sub) != 0 || jwt_add_grant(j, "role", role) != 0 ||
        (email != NULL && jwt_add_grant(j, "email", email) != 0) || (name != NULL && jwt_add_grant(j, "name", name) != 0) ||
        jwt_add_grant_int(j, "iat", (long)now) != 0 || jwt_add_grant_int(j, "exp", (long)(now + ttl_s)) != 0 ||
        jwt_add_grant(j, "jti", jti) != 0)
        goto fail;
    if (jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0)
        goto fail;
    token = jwt_encode_str(j);
    if (token == NULL)
        goto fail;
    jwt_free(j);
    if (jti_out != NULL)
        memcpy(jti_out, jti, sizeof(jti));
    if (exp_out != NULL)
        *exp_out = now + ttl_s;
    return token;

fail:
    cx_log_errorx("jwt: mint: libjwt failed");
    jwt_free(j);
    return NULL;
}

char *cx_jwt_mint(const char *secret, const char *issuer, const char *sub, const char *role, const char *email, const char *name,
                  int64_t ttl_s)
{
    return cx_jwt_mint_ex(secret, issuer, sub, role, email, name, ttl_s, NULL, NULL);
}

/* claim_int -- an integer claim, read from its JSON text: 0, -ENOENT when absent, -EINVAL when not an
 * integer (string, float, bool, object …) or out of range. */
static int claim_int(jwt_t *j, const char *claim, int64_t *out)
{
    char *js = jwt_get_grants_json(j, claim);
    const char *p;
    char *end;
    long long v;
    int rc = -EINVAL;

    if (js == NULL)
        return -ENOENT;
    p = js[0] == '-' ? js + 1 : js;
    if (*p < '0' || *p > '9')
        goto done;
    for (; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            goto done;
    errno = 0;
    v = strtoll(js, &end, 10);
    if (errno != 0 || *end != '\0')
        goto done;
    *out = v;
    rc = 0;
done:
    free(js);
    return rc;
}

/* claim_str -- a string claim: 0 and *out, -ENOENT when absent, -EINVAL when not a string or its length is
 * outside [min, max]. */
static int claim_str(jwt_t *j, const char *claim, size_t min, size_t max, const char **out)
{
    const char *s = jwt_get_grant(j, claim);
    char *js;
    size_t n;

    if (s == NULL) {
        /* NULL is also what a number or an array gives: absent only if there is no JSON either. */
        js = jwt_get_grants_json(j, claim);
        free(js);
        return js == NULL ? -ENOENT : -EINVAL;
    }
    n = strlen(s);
    if (n < min || n > max)
        return -EINVAL;
    *out = s;
    return 0;
}

/* why_decode -- why jwt_decode refused the token, for the log: re-read it without a key (which checks
 * nothing, so it is only used to name the reason). */
static const char *why_decode(const char *token)
{
    jwt_t *j = NULL;
    const char *why, *alg;

    if (jwt_decode(&j, token, NULL, 0) != 0 || j == NULL)
        return "malformed token";
    /* Without a key libjwt reports every alg as none: read the header instead. */
    alg = jwt_get_header(j, "alg");
    why = alg != NULL && strcmp(alg, "HS256") == 0 ? "bad signature" : "alg not HS256";
    jwt_free(j);
    return why;
}

/* copy -- into an identity field; claim_str has already checked that src fits. */
static void copy(char *dst, const char *src)
{
    size_t n = strlen(src);

    memcpy(dst, src, n + 1);
}

/* cx_jwt_verify -- check a Bearer token and fill *id.
 * Every check but exp comes first, so CX_EXPIRED means "a good token, only too old". On CX_EXPIRED *id is
 * filled too (for the log) but not authenticated. */
int cx_jwt_verify(const char *secret, const char *issuer, const char *token, cx_identity_t *id, const char **why)
{
    jwt_t *j = NULL;
    const char *reason; /* set before every goto fail */
    const char *sub, *role, *jti, *iss, *alg, *email = NULL, *name = NULL;
    char *hdr;
    int64_t exp, nbf, iat, now;
    cx_role_t r;
    int rc = CX_INVALID, e;

    memset(id, 0, sizeof(*id));
    if (secret == NULL || secret[0] == '\0' || issuer == NULL || issuer[0] == '\0') {
        reason = "no secret or issuer configured";
        goto fail;
    }
    if (token == NULL || token[0] == '\0') {
        reason = "empty token";
        goto fail;
    }
    if (strnlen(token, TOKEN_MAX + 1) > TOKEN_MAX) {
        reason = "token too large";
        goto fail;
    }
    if (jwt_decode(&j, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 || j == NULL) {
        j = NULL;
        reason = why_decode(token);
        goto fail;
    }
    /* libjwt maps the header's alg to an enum case-insensitively: "hs256" would pass jwt_get_alg */
    if (jwt_get_alg(j) != JWT_ALG_HS256 || (alg = jwt_get_header(j, "alg")) == NULL || strcmp(alg, "HS256") != 0) {
        reason = "alg not HS256";
        goto fail;
    }
    if ((hdr = jwt_get_headers_json(j, "typ")) != NULL) {
        int good = strcmp(hdr, "\"JWT\"") == 0;

        free(hdr);
        if (!good) {
            reason = "typ not JWT";
            goto fail;
        }
    }
    if ((hdr = jwt_get_headers_json(j, "crit")) != NULL) {
        free(hdr);
        reason = "crit header not supported";
        goto fail;
    }

    if ((e = claim_str(j, "sub", 1, sizeof(id->sub) - 1, &sub)) < 0) {
        reason = e == -ENOENT ? "missing claim sub" : "bad claim sub";
        goto fail;
    }
    if ((e = claim_str(j, "role", 1, 63, &role)) < 0) {
        reason = e == -ENOENT ? "missing claim role" : "bad claim role";
        goto fail;
    }
    if ((r = cx_role_parse(role)) == CX_ROLE_NONE) {
        reason = "unknown role";
        goto fail;
    }
    if ((e = claim_int(j, "exp", &exp)) < 0) {
        reason = e == -ENOENT ? "missing claim exp" : "bad claim exp";
        goto fail;
    }
    if ((e = claim_str(j, "jti", 1, sizeof(id->jti) - 1, &jti)) < 0) {
        reason = e == -ENOENT ? "missing claim jti" : "bad claim jti";
        goto fail;
    }
    if ((e = claim_str(j, "iss", 1, 1024, &iss)) < 0) {
        reason = e == -ENOENT ? "missing claim iss" : "bad claim iss";
        goto fail;
    }
    // cppcheck-suppress ctunullpointer ; a NULL issuer went to fail at the top, before any claim
    if (strcmp(iss, issuer) != 0) {
        reason = "wrong issuer";
        goto fail;
    }
    if (claim_str(j, "email", 0, sizeof(id->email) - 1, &email) == -EINVAL) {
        reason = "bad claim email";
        goto fail;
    }
    if (claim_str(j, "name", 0, sizeof(id->name) - 1, &name) == -EINVAL) {
        reason = "bad claim name";
        goto fail;
    }
    if (claim_int(j, "iat", &iat) == -EINVAL) {
        reason = "bad claim iat";
        goto fail;
    }
    now = (int64_t)time(NULL);
    if ((e = claim_int(j, "nbf", &nbf)) == -EINVAL) {
        reason = "bad claim nbf";
        goto fail;
    }
    if (e == 0 && nbf > now + NBF_LEEWAY_S) {
        reason = "not yet valid";
        goto fail;
    }

    id->role = r;
    copy(id->sub, sub);
    copy(id->jti, jti);
    if (email != NULL)
        copy(id->email, email);
    if (name != NULL)
        copy(id->name, name);
    id->exp = exp;
    if (now >= exp) {
        reason = "expired";
        rc = CX_EXPIRED;
        goto fail;
    }
    id->authenticated = 1;
    jwt_free(j);
    if (why != NULL)
        *why = NULL;
    return CX_OK;

fail:
    if (rc != CX_EXPIRED)
        memset(id, 0, sizeof(*id));
    jwt_free(j);
    if (why != NULL)
        *why = reason;
    return rc;
}

/* The cache of verified tokens: slot = hash % CACHE_SLOTS, a newer token takes the slot of an older. */
typedef struct cached {
    uint64_t hash;
    char *token; /* NULL: empty */
    size_t len;
    cx_identity_t id;
} cached_t;
static cached_t cache[CACHE_SLOTS];
static uint64_t cache_key; /* the secret and issuer the cached tokens were verified with (hashed) */

int cx_jwt_verify_cached(const char *secret, const char *issuer, const char *token, cx_identity_t *id, const char **why)
{
    size_t len = token != NULL ? strnlen(token, TOKEN_MAX + 1) : 0;
    uint64_t h, key;
    cached_t *e;
    int rc;

    if (len == 0 || len > TOKEN_MAX || secret == NULL || issuer == NULL)
        return cx_jwt_verify(secret, issuer, token, id, why);
    key = cx_hash_fnv1a(secret, strlen(secret)) * 31 + cx_hash_fnv1a(issuer, strlen(issuer));
    if (key != cache_key) { /* another configuration: what the old one verified counts for nothing */
        for (size_t i = 0; i < CACHE_SLOTS; i++) {
            free(cache[i].token);
            cache[i].token = NULL;
        }
        cache_key = key;
    }
    h = cx_hash_fnv1a(token, len);
    e = &cache[h % CACHE_SLOTS];
    if (e->token != NULL && e->hash == h && e->len == len && CRYPTO_memcmp(e->token, token, len) == 0) {
        *id = e->id;
        if ((int64_t)time(NULL) < e->id.exp) {
            if (why != NULL)
                *why = NULL;
            return CX_OK;
        }
        id->authenticated = 0; /* as cx_jwt_verify answers an expired token */
        if (why != NULL)
            *why = "expired";
        free(e->token);
        e->token = NULL;
        return CX_EXPIRED;
    }
    if ((rc = cx_jwt_verify(secret, issuer, token, id, why)) == CX_OK) {
        free(e->token);
        e->token = cx_strndup(token, len);
        e->hash = h;
        e->len = len;
        e->id = *id;
    }
    return rc;
}
