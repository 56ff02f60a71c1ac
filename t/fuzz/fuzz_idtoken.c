/*
 * fuzz_idtoken.c -- fuzz target of what single sign-on parses from identity providers: JWK sets
 * (cx_jwks_parse), ID tokens (cx_idtoken_verify) -- as they come, and signed here with a key of the JWK
 * set, so the fuzzer reaches the claim checks --, discovery documents and token-endpoint answers
 * (src/auth/oauth.c's discovery_done and token_done), and the dotted paths of userinfo answers. The
 * first byte chooses. Invariants: a JWK set yields only usable keys or a reason; an ID token not signed
 * by a key of the set is never accepted, an accepted one has a sub, and its texts are NUL-terminated in
 * their fields; a discovery document is kept only with every endpoint and the configured issuer; a
 * refused code exchange has an HTTP status and a message.
 */
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "../../src/auth/oauth.c" /* its parsers are static */
#include "fuzz.h"

#define ISS "https://idp.example"
#define CID "client-1"
#define NONCE "n-fuzz"

static EVP_PKEY *rsa, *ec;
static cx_jwks_t jwks;
static cx_provider_t prov = {.provider = "fuzz", .type = "oidc", .issuer_url = ISS, .client_id = CID};

static void bn_b64(EVP_PKEY *k, const char *param, char *out)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    EVP_PKEY_get_bn_param(k, param, &bn);
    int n = BN_bn2bin(bn, buf);
    cx_b64url_encode(buf, (size_t)n, out);
    BN_free(bn);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char n[700], e[16], x[64], y[64], json[4096], why[256];
    unsigned char pub[65];
    size_t plen = 0;
    (void)argc, (void)argv;

    cx_log_init("error", "text", NULL);
    rsa = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    if (rsa == NULL || ec == NULL)
        abort();
    bn_b64(rsa, OSSL_PKEY_PARAM_RSA_N, n);
    bn_b64(rsa, OSSL_PKEY_PARAM_RSA_E, e);
    EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &plen);
    cx_b64url_encode(pub + 1, 32, x);
    cx_b64url_encode(pub + 33, 32, y);
    snprintf(json, sizeof(json),
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e1\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             n, e, x, y);
    if (cx_jwks_parse(json, strlen(json), &jwks, why, sizeof(why)) != CX_OK || jwks.n != 2)
        abort();
    return 0;
}

/* sign -- header.payload.signature with key (RS256, or ES256 as r || s), malloc'd. */
static char *sign(EVP_PKEY *key, int es, const uint8_t *h, size_t hl, const uint8_t *p, size_t pl)
{
    char *t = cx_malloc(4 * (hl + pl) / 3 + 1024);
    unsigned char sig[512];
    size_t slen = sizeof(sig), n;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    cx_b64url_encode(h, hl, t);
    n = strlen(t);
    t[n++] = '.';
    cx_b64url_encode(p, pl, t + n);
    n = strlen(t);
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 || EVP_DigestSign(md, sig, &slen, (unsigned char *)t, n) != 1)
        abort();
    EVP_MD_CTX_free(md);
    if (es) {
        const unsigned char *q = sig;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &q, (long)slen);
        const BIGNUM *r, *ss;
        ECDSA_SIG_get0(s, &r, &ss);
        BN_bn2binpad(r, sig, 32);
        BN_bn2binpad(ss, sig + 32, 32);
        ECDSA_SIG_free(s);
        slen = 64;
    }
    t[n++] = '.';
    cx_b64url_encode(sig, slen, t + n);
    return t;
}

static void verify(const char *token, int signed_here)
{
    cx_idtoken_t out;
    const char *why = NULL;
    int rc = cx_idtoken_verify(token, &jwks, ISS, CID, NONCE, (int64_t)time(NULL), &out, &why);

    FUZZ_CHECK(rc == CX_OK || rc == CX_INVALID || rc == CX_NOTFOUND);
    if (rc == CX_OK) {
        FUZZ_CHECK(signed_here);
        FUZZ_CHECK(out.sub[0] != '\0' && strnlen(out.sub, sizeof(out.sub)) < sizeof(out.sub));
        FUZZ_CHECK(strnlen(out.email, sizeof(out.email)) < sizeof(out.email));
        FUZZ_CHECK(strnlen(out.name, sizeof(out.name)) < sizeof(out.name));
    } else {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    }
}

static char *text(const uint8_t *d, size_t n)
{
    char *s = cx_malloc(n + 1);
    memcpy(s, d, n);
    s[n] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    char *s = text(d, n), why[256];

    switch (data[0] % 7) {
    case 0: { /* a JWK set */
        cx_jwks_t k;
        memset(why, 'X', sizeof(why));
        if (cx_jwks_parse(s, n, &k, why, sizeof(why)) == CX_OK) {
            FUZZ_CHECK(k.n > 0);
            for (size_t i = 0; i < k.n; i++)
                FUZZ_CHECK(k.keys[i].pkey != NULL && (strcmp(k.keys[i].alg, "RS256") == 0 || strcmp(k.keys[i].alg, "ES256") == 0));
            cx_jwks_free(&k);
        } else {
            FUZZ_CHECK(strnlen(why, sizeof(why)) > 0 && strnlen(why, sizeof(why)) < sizeof(why));
        }
        break;
    }
    case 1: /* an ID token as it comes */
        verify(s, 0);
        break;
    case 2:   /* a payload signed RS256 with the set's RSA key */
    case 3: { /* a header and a payload ("HEADER\nPAYLOAD") signed with the RSA or the EC key */
        const uint8_t *h = (const uint8_t *)"{\"alg\":\"RS256\",\"kid\":\"r1\"}", *p = d, *nl;
        size_t hl = strlen((const char *)h), pl = n;
        int es = 0;
        if (data[0] % 7 == 3 && (nl = memchr(d, '\n', n)) != NULL) {
            h = d;
            hl = (size_t)(nl - d);
            p = nl + 1;
            pl = n - hl - 1;
            es = (data[0] & 0x80) != 0;
        }
        char *t = sign(es ? ec : rsa, es, h, hl, p, pl);
        verify(t, 1);
        free(t);
        break;
    }
    case 4: { /* a discovery document */
        pstate_t ps = {0};
        flow_t f = {.p = &prov, .ps = &ps};
        cx_client_res_t res = {.status = 200, .body = s, .len = n};
        const char *e = discovery_done(&f, &res);
        if (e == NULL) {
            FUZZ_CHECK(ps.issuer && ps.authorize && ps.token && ps.jwks_uri && same_issuer(ps.issuer, ISS));
        } else {
            FUZZ_CHECK(e[0] != '\0' && ps.issuer == NULL);
        }
        free(ps.issuer), free(ps.authorize), free(ps.token), free(ps.userinfo), free(ps.jwks_uri);
        break;
    }
    case 5: { /* the token endpoint's answer */
        flow_t f = {.p = &prov};
        cx_client_res_t res = {.status = (data[0] & 0x80) ? 400 : 200, .body = s, .len = n};
        if (token_done(&f, &res) == CX_OK) {
            FUZZ_CHECK(f.access_token != NULL && f.access_token[0] != '\0' && f.id_token != NULL);
        } else {
            FUZZ_CHECK(f.err.status >= 400 && f.err.msg[0] != '\0');
        }
        free(f.access_token);
        free(f.id_token);
        break;
    }
    default: { /* userinfo paths */
        json_object *o = cx_json_object(s, n);
        static const char *const paths[] = {"sub", "id", "data.id", "a.b.c.d", "email", "user.profile.name", ".", "a..b", ""};
        char out[256];
        for (size_t i = 0; o != NULL && i < CX_ARRAY_SIZE(paths); i++)
            if (jtext(jpath(o, paths[i]), out, sizeof(out)))
                FUZZ_CHECK(out[0] != '\0' && strnlen(out, sizeof(out)) < sizeof(out));
        json_object_put(o);
        break;
    }
    }
    free(s);
    return 0;
}
