/*
 * idtoken.c -- OpenID Connect ID tokens: the provider's JWK set turned into OpenSSL keys, and the checks of
 * OIDC Core 3.1.3.7 on a token. Pure: no I/O, no logging, no clock of its own (now is an argument).
 *
 * Keys are built with OpenSSL 3 (EVP_PKEY_fromdata from the JWK's n/e or x/y) and the signature is checked
 * with EVP_DigestVerify over "header.payload". The algorithm is pinned by the key: an RSA key verifies
 * RS256 only, a P-256 key ES256 only, and a token whose header names anything else -- none, HS256 (the
 * classic confusion, HMAC keyed with the public key), RS384, or RS256 for an EC key -- is refused before
 * any cryptography. Headers that point at other keys (jku, x5u, jwk) are never followed. libjwt is not
 * used here: 1.10 has no JWK support and takes the algorithm from the token, so it would only add a PEM
 * round trip around the same EVP call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "conduix/cx.h"
#include "conduix/oauth.h"

#define TOKEN_MAX 16384
#define RSA_MIN_BITS 2048

/* ---- base64url ---- */

void cx_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
    }
    out[o] = '\0';
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

unsigned char *cx_b64url_decode(const char *in, size_t len, size_t *outlen)
{
    unsigned char *out;
    size_t i, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return NULL;
    out = cx_malloc(len * 3 / 4 + 1);
    for (i = 0; i < len; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* the unused low bits of the last character must be zero (one spelling per value) */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        free(out);
        return NULL;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* ---- JWK set ---- */

const char *cx_json_str(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* parse_object -- s[0..n) parsed strictly (json-c's STRICT flag) as one JSON object, or NULL. */
static json_object *parse_object(const char *s, size_t n)
{
    json_tokener *tok = json_tokener_new();
    json_object *o;

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, s, (int)n);
    json_tokener_free(tok);
    if (o != NULL && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

json_object *cx_json_object(const char *s, size_t len)
{
    return parse_object(s, len + 1); /* the NUL too: the input is complete, trailing bytes are an error */
}

static BIGNUM *b64_bn(const char *s, size_t *nbytes)
{
    size_t n;
    unsigned char *raw = s ? cx_b64url_decode(s, strlen(s), &n) : NULL;
    BIGNUM *bn;

    if (raw == NULL || n == 0) {
        free(raw);
        return NULL;
    }
    bn = BN_bin2bn(raw, (int)n, NULL);
    if (nbytes != NULL)
        *nbytes = n;
    free(raw);
    return bn;
}

/* from_params -- an EVP_PKEY of type name from the parameters in bld, checked; NULL on any failure. */
static EVP_PKEY *from_params(const char *name, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL), *check = NULL;
    EVP_PKEY *pkey = NULL;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    /* an EC point must be on the curve; an RSA modulus must be sane */
    if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(json_object *k)
{
    BIGNUM *n = b64_bn(cx_json_str(k, "n"), NULL), *e = b64_bn(cx_json_str(k, "e"), NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;

    if (n != NULL && e != NULL && bld != NULL && BN_num_bits(n) >= RSA_MIN_BITS &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        pkey = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *ec_key(json_object *k)
{
    const char *x = cx_json_str(k, "x"), *y = cx_json_str(k, "y"), *crv = cx_json_str(k, "crv");
    unsigned char *xr = NULL, *yr = NULL, point[65];
    size_t xn = 0, yn = 0;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (crv == NULL || strcmp(crv, "P-256") != 0 || x == NULL || y == NULL)
        return NULL;
    xr = cx_b64url_decode(x, strlen(x), &xn);
    yr = cx_b64url_decode(y, strlen(y), &yn);
    if (xr == NULL || yr == NULL || xn != 32 || yn != 32)
        goto out;
    point[0] = 0x04; /* uncompressed: 04 || x || y */
    memcpy(point + 1, xr, 32);
    memcpy(point + 33, yr, 32);
    if ((bld = OSSL_PARAM_BLD_new()) != NULL && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        pkey = from_params("EC", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    free(xr);
    free(yr);
    return pkey;
}

int cx_jwks_parse(const char *json, size_t len, cx_jwks_t *out, char *why, size_t whylen)
{
    json_object *root, *keys;
    size_t i, n;

    memset(out, 0, sizeof(*out));
    root = parse_object(json, len); /* json need not be NUL-terminated */
    if (root == NULL || !json_object_object_get_ex(root, "keys", &keys) || !json_object_is_type(keys, json_type_array)) {
        snprintf(why, whylen, "not a JWK set (an object with a \"keys\" array)");
        json_object_put(root);
        return CX_INVALID;
    }
    n = json_object_array_length(keys);
    out->keys = cx_calloc(n + 1, sizeof(cx_jwk_t));
    for (i = 0; i < n; i++) {
        json_object *k = json_object_array_get_idx(keys, i);
        const char *kty, *use, *alg, *kid, *pin;
        EVP_PKEY *pkey;

        if (!json_object_is_type(k, json_type_object) || (kty = cx_json_str(k, "kty")) == NULL)
            continue;
        use = cx_json_str(k, "use");
        alg = cx_json_str(k, "alg");
        kid = cx_json_str(k, "kid");
        if (use != NULL && strcmp(use, "sig") != 0)
            continue;
        if (strcmp(kty, "RSA") == 0)
            pin = "RS256";
        else if (strcmp(kty, "EC") == 0)
            pin = "ES256";
        else
            continue;
        if (alg != NULL && strcmp(alg, pin) != 0)
            continue; /* e.g. an RS384 or PS256 key: not ours to use */
        if (kid != NULL && strlen(kid) >= sizeof(out->keys[0].kid))
            continue;
        if ((pkey = strcmp(pin, "RS256") == 0 ? rsa_key(k) : ec_key(k)) == NULL)
            continue;
        cx_jwk_t *dst = &out->keys[out->n++];
        snprintf(dst->kid, sizeof(dst->kid), "%s", kid != NULL ? kid : "");
        snprintf(dst->alg, sizeof(dst->alg), "%s", pin);
        dst->pkey = pkey;
    }
    json_object_put(root);
    if (out->n == 0) {
        snprintf(why, whylen, "the JWK set has no usable signing key (RSA >= 2048 bits for RS256, EC P-256 for ES256)");
        cx_jwks_free(out);
        return CX_INVALID;
    }
    return CX_OK;
}

void cx_jwks_free(cx_jwks_t *jwks)
{
    size_t i;

    for (i = 0; jwks->keys != NULL && i < jwks->n; i++)
        EVP_PKEY_free(jwks->keys[i].pkey);
    free(jwks->keys);
    jwks->keys = NULL;
    jwks->n = 0;
}

/* ---- ID token ---- */

static json_object *parse_segment(const char *seg, size_t len)
{
    size_t n;
    unsigned char *raw = cx_b64url_decode(seg, len, &n);
    json_object *o;

    if (raw == NULL)
        return NULL;
    o = cx_json_object((const char *)raw, n);
    free(raw);
    return o;
}

/* verify_sig -- the signature sig of data under key k (alg pinned by k). 1 good, 0 bad. */
static int verify_sig(const cx_jwk_t *k, const char *data, size_t dlen, const unsigned char *sig, size_t slen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    int good = 0, derlen;

    if (md == NULL)
        return 0;
    if (strcmp(k->alg, "ES256") == 0) {
        /* JWS carries r || s (32 bytes each); OpenSSL verifies a DER ECDSA-Sig-Value */
        ECDSA_SIG *es;
        BIGNUM *r, *s;
        if (slen != 64 || (es = ECDSA_SIG_new()) == NULL)
            goto out;
        r = BN_bin2bn(sig, 32, NULL);
        s = BN_bin2bn(sig + 32, 32, NULL);
        if (r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            goto out;
        }
        derlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (derlen <= 0)
            goto out;
        sig = der;
        slen = (size_t)derlen;
    }
    good = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
           EVP_DigestVerify(md, sig, slen, (const unsigned char *)data, dlen) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return good;
}

/* num_claim -- a NumericDate claim (integer, or a number with a fraction): 1 and *v, 0 when absent or of
 * another type (or NaN). The value is clamped to [0, NUMDATE_MAX], far beyond any real date, so that the
 * checks' arithmetic (exp + skew) cannot overflow; fuzz_idtoken found exp = 2^63 - 1 overflowing it. */
#define NUMDATE_MAX 9000000000000000LL
static int num_claim(json_object *p, const char *name, int64_t *v)
{
    json_object *o;
    if (!json_object_object_get_ex(p, name, &o))
        return 0;
    if (json_object_is_type(o, json_type_int)) {
        int64_t i = json_object_get_int64(o);
        *v = i < 0 ? 0 : i > NUMDATE_MAX ? NUMDATE_MAX : i;
        return 1;
    }
    if (json_object_is_type(o, json_type_double)) {
        double d = json_object_get_double(o);
        if (d != d)
            return 0;
        *v = d < 0 ? 0 : d > (double)NUMDATE_MAX ? NUMDATE_MAX : (int64_t)d;
        return 1;
    }
    return 0;
}

/* aud_ok -- aud is client_id, or an array holding it; several audiences need azp; azp, when present, must
 * be client_id. */
static const char *aud_check(json_object *p, const char *client_id)
{
    json_object *aud, *azp_o;
    const char *azp = NULL;
    int found = 0;
    size_t n = 1;

    if (json_object_object_get_ex(p, "azp", &azp_o)) {
        if (!json_object_is_type(azp_o, json_type_string))
            return "azp is not a string";
        azp = json_object_get_string(azp_o);
    }
    if (!json_object_object_get_ex(p, "aud", &aud))
        return "aud missing";
    if (json_object_is_type(aud, json_type_string)) {
        found = strcmp(json_object_get_string(aud), client_id) == 0;
    } else if (json_object_is_type(aud, json_type_array)) {
        n = json_object_array_length(aud);
        for (size_t i = 0; i < n; i++) {
            json_object *a = json_object_array_get_idx(aud, i);
            if (!json_object_is_type(a, json_type_string))
                return "aud holds a non-string";
            if (strcmp(json_object_get_string(a), client_id) == 0)
                found = 1;
        }
    } else {
        return "aud is neither a string nor an array";
    }
    if (!found)
        return "aud does not name this client";
    if (n > 1 && azp == NULL)
        return "several audiences and no azp";
    if (azp != NULL && strcmp(azp, client_id) != 0)
        return "azp is another client";
    return NULL;
}

/* copy_str -- an optional string claim into out (left "" when absent, not a string, or too long). */
static void copy_str(json_object *p, const char *name, char *out, size_t cap)
{
    const char *s = cx_json_str(p, name);
    if (s != NULL && strlen(s) < cap)
        memcpy(out, s, strlen(s) + 1);
}

int cx_idtoken_verify(const char *token, const cx_jwks_t *jwks, const char *issuer, const char *client_id, const char *nonce,
                      int64_t now, cx_idtoken_t *out, const char **why)
{
    const char *dot1, *dot2, *alg, *kid, *s;
    json_object *hdr = NULL, *pl = NULL, *v;
    const cx_jwk_t *key = NULL;
    unsigned char *sig = NULL;
    size_t siglen, tlen, i, matches = 0;
    int64_t exp, iat, nbf;
    int rc = CX_INVALID;

    memset(out, 0, sizeof(*out));
    *why = "malformed token";
    if (token == NULL || (tlen = strnlen(token, TOKEN_MAX + 1)) > TOKEN_MAX)
        return CX_INVALID;
    if ((dot1 = strchr(token, '.')) == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.') != NULL)
        return CX_INVALID; /* a JWE (five parts) or garbage */
    if ((hdr = parse_segment(token, (size_t)(dot1 - token))) == NULL)
        goto out;

    /* the algorithm: exactly RS256 or ES256, and the one of the key that signed */
    if ((alg = cx_json_str(hdr, "alg")) == NULL) {
        *why = "alg missing";
        goto out;
    }
    if (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0) {
        *why = strcmp(alg, "none") == 0 ? "alg none refused" : "alg not RS256 or ES256";
        goto out;
    }
    if (json_object_object_get_ex(hdr, "crit", &v)) {
        *why = "crit header not supported";
        goto out;
    }
    if (json_object_object_get_ex(hdr, "kid", &v) && !json_object_is_type(v, json_type_string)) {
        *why = "kid is not a string";
        goto out;
    }
    kid = cx_json_str(hdr, "kid");
    for (i = 0; i < jwks->n; i++) {
        const cx_jwk_t *k = &jwks->keys[i];
        if (kid != NULL ? strcmp(k->kid, kid) == 0 : strcmp(k->alg, alg) == 0) {
            key = k;
            matches++;
        }
    }
    if (key == NULL) {
        *why = kid != NULL ? "unknown kid" : "no key for the token's alg";
        rc = CX_NOTFOUND;
        goto out;
    }
    if (matches > 1) {
        *why = kid != NULL ? "several keys with the token's kid" : "no kid and several keys";
        goto out;
    }
    if (strcmp(key->alg, alg) != 0) {
        *why = "alg does not match the key's algorithm";
        goto out;
    }
    if ((sig = cx_b64url_decode(dot2 + 1, tlen - (size_t)(dot2 + 1 - token), &siglen)) == NULL) {
        *why = "malformed signature";
        goto out;
    }
    if (!verify_sig(key, token, (size_t)(dot2 - token), sig, siglen)) {
        *why = "bad signature";
        goto out;
    }

    /* the claims */
    if ((pl = parse_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1))) == NULL) {
        *why = "malformed payload";
        goto out;
    }
    if ((s = cx_json_str(pl, "iss")) == NULL || strcmp(s, issuer) != 0) {
        *why = s == NULL ? "iss missing" : "iss is not the provider's issuer";
        goto out;
    }
    if ((*why = aud_check(pl, client_id)) != NULL)
        goto out;
    if (!num_claim(pl, "exp", &exp)) {
        *why = "exp missing";
        goto out;
    }
    if (now >= exp + CX_IDTOKEN_SKEW_S) {
        *why = "expired";
        goto out;
    }
    if (!num_claim(pl, "iat", &iat)) {
        *why = "iat missing";
        goto out;
    }
    if (iat > now + CX_IDTOKEN_SKEW_S) {
        *why = "iat in the future";
        goto out;
    }
    if (iat < now - CX_IDTOKEN_MAX_AGE_S - CX_IDTOKEN_SKEW_S) {
        *why = "issued too long ago";
        goto out;
    }
    if (num_claim(pl, "nbf", &nbf) && nbf > now + CX_IDTOKEN_SKEW_S) {
        *why = "not yet valid (nbf)";
        goto out;
    }
    if (nonce != NULL && ((s = cx_json_str(pl, "nonce")) == NULL || strcmp(s, nonce) != 0)) {
        *why = s == NULL ? "nonce missing" : "nonce mismatch";
        goto out;
    }
    if ((s = cx_json_str(pl, "sub")) == NULL || s[0] == '\0' || strlen(s) >= sizeof(out->sub)) {
        *why = "sub missing or too long";
        goto out;
    }
    memcpy(out->sub, s, strlen(s) + 1);
    copy_str(pl, "email", out->email, sizeof(out->email));
    copy_str(pl, "name", out->name, sizeof(out->name));
    if (json_object_object_get_ex(pl, "email_verified", &v))
        out->email_verified = json_object_is_type(v, json_type_boolean)  ? json_object_get_boolean(v)
                              : json_object_is_type(v, json_type_string) ? strcmp(json_object_get_string(v), "true") == 0
                                                                         : 0;
    *why = NULL;
    rc = CX_OK;
out:
    if (rc != CX_OK)
        memset(out, 0, sizeof(*out));
    free(sig);
    json_object_put(hdr);
    json_object_put(pl);
    return rc;
}
