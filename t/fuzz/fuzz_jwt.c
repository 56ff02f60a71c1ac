/*
 * fuzz_jwt.c -- fuzz target of Bearer token verification (src/auth/jwt.c, cx_jwt_verify). The first byte
 * chooses: the rest as a token as it is, or as a header and a payload ("HEADER\nPAYLOAD", any bytes)
 * signed here with the server's secret, so the fuzzer reaches the claim checks it could never reach
 * through a signature. Invariants: a token signed with another key is never accepted; an accepted one
 * has a sub, a known role, a jti, the configured issuer and an exp in the future, all NUL-terminated in
 * their fields; a refusal has a reason and leaves the identity unauthenticated.
 */
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conduix/cx.h"
#include "conduix/jwt.h"
#include "conduix/oauth.h"
#include "fuzz.h"

#define SECRET "fuzz-secret-0123456789-0123456789-abcdef"
#define OTHER "another-secret-0123456789-0123456789-xyz"
#define ISSUER "conduix-cp"

/* sign -- b64url(header).b64url(payload).b64url(HMAC-SHA256(key)) into a malloc'd string. */
static char *sign(const char *key, const uint8_t *h, size_t hl, const uint8_t *p, size_t pl)
{
    char *t = cx_malloc(4 * (hl + pl) / 3 + 128);
    unsigned char mac[32];
    unsigned int ml = 0;
    size_t n;

    cx_b64url_encode(h, hl, t);
    n = strlen(t);
    t[n++] = '.';
    cx_b64url_encode(p, pl, t + n);
    n = strlen(t);
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)t, n, mac, &ml);
    t[n++] = '.';
    cx_b64url_encode(mac, ml, t + n);
    return t;
}

static void check(const char *token, int other_key)
{
    cx_identity_t id;
    const char *why = NULL;
    int rc = cx_jwt_verify(SECRET, ISSUER, token, &id, &why);

    FUZZ_CHECK(rc == CX_OK || rc == CX_INVALID || rc == CX_EXPIRED);
    if (rc == CX_OK) {
        FUZZ_CHECK(!other_key);
        FUZZ_CHECK(id.authenticated && why == NULL);
        FUZZ_CHECK(strnlen(id.sub, sizeof(id.sub)) < sizeof(id.sub) && id.sub[0] != '\0');
        FUZZ_CHECK(strnlen(id.jti, sizeof(id.jti)) < sizeof(id.jti) && id.jti[0] != '\0');
        FUZZ_CHECK(strnlen(id.email, sizeof(id.email)) < sizeof(id.email));
        FUZZ_CHECK(strnlen(id.name, sizeof(id.name)) < sizeof(id.name));
        FUZZ_CHECK(id.role != CX_ROLE_NONE && cx_role_parse(cx_role_name(id.role)) == id.role);
        FUZZ_CHECK(id.exp > (int64_t)time(NULL) - 5);
    } else {
        FUZZ_CHECK(!id.authenticated && why != NULL && why[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0] % 3;
    const uint8_t *d = data + 1;
    size_t n = size - 1;

    if (mode == 0) {
        char *t = cx_malloc(n + 1);
        memcpy(t, d, n);
        t[n] = '\0';
        check(t, 0);
        free(t);
        return 0;
    }
    const uint8_t *nl = memchr(d, '\n', n);
    const uint8_t *h = (const uint8_t *)"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", *p = d;
    size_t hl = strlen((const char *)h), pl = n;
    if (nl != NULL) {
        h = d;
        hl = (size_t)(nl - d);
        p = nl + 1;
        pl = n - hl - 1;
    }
    char *t = sign(mode == 1 ? SECRET : OTHER, h, hl, p, pl);
    check(t, mode == 2);
    free(t);
    return 0;
}
