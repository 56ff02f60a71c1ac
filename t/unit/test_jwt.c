/*
 * test_jwt.c -- minting and verifying conduix-cp tokens: the round trip, and every way a token must be
 * refused (wrong secret or issuer, expiry, missing or ill-typed claims, alg=none, HS512, tampering,
 * garbage). Hostile tokens are built by hand (base64url + HMAC) so that libjwt cannot tidy them up.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "conduix/cx.h"
#include "conduix/jwt.h"
#include "conduix/oauth.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define ISSUER "conduix-cp"

/* b64url -- base64url without padding (the one of src/auth/idtoken.c). */
static void b64url(const unsigned char *in, size_t n, char *out)
{
    cx_b64url_encode(in, n, out);
}

/* craft -- header.payload.signature from raw JSON; md NULL for an empty signature. Static buffer. */
static const char *craft(const char *header, const char *payload, const EVP_MD *md, const char *key)
{
    static char tok[4096];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t n;

    b64url((const unsigned char *)header, strlen(header), tok);
    n = strlen(tok);
    tok[n++] = '.';
    b64url((const unsigned char *)payload, strlen(payload), tok + n);
    n = strlen(tok);
    if (md != NULL)
        HMAC(md, key, (int)strlen(key), (const unsigned char *)tok, n, mac, &maclen);
    tok[n++] = '.';
    b64url(mac, maclen, tok + n);
    return tok;
}

/* claims -- a payload with every required claim, exp relative to now, and extra JSON members. */
static const char *claims(long exp_delta, const char *extra)
{
    static char buf[2048];
    long now = (long)time(NULL);

    snprintf(buf, sizeof(buf), "{\"sub\":\"u-1\",\"role\":\"operator\",\"iat\":%ld,\"exp\":%ld,\"jti\":\"j-1\",\"iss\":\"%s\"%s%s}",
             now, now + exp_delta, ISSUER, extra[0] ? "," : "", extra);
    return buf;
}

static const char *hs256(const char *payload)
{
    return craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, EVP_sha256(), SECRET);
}

/* refused -- verify must say CX_INVALID with this reason, and leave the identity empty. */
static void refused(const char *token, const char *reason)
{
    cx_identity_t id;
    const char *why = NULL;

    memset(&id, 0x5a, sizeof(id));
    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, token, &id, &why), CX_INVALID);
    assert_non_null(why);
    if (reason != NULL)
        assert_string_equal(why, reason);
    assert_int_equal(id.authenticated, 0);
    assert_int_equal(id.role, CX_ROLE_NONE);
    assert_string_equal(id.sub, "");
}

static void test_roles(void **state)
{
    assert_int_equal(cx_role_parse("viewer"), CX_ROLE_VIEWER);
    assert_int_equal(cx_role_parse("operator"), CX_ROLE_OPERATOR);
    assert_int_equal(cx_role_parse("admin"), CX_ROLE_ADMIN);
    assert_int_equal(cx_role_parse("agent"), CX_ROLE_AGENT);
    assert_int_equal(cx_role_parse("Admin"), CX_ROLE_NONE);
    assert_int_equal(cx_role_parse(""), CX_ROLE_NONE);
    assert_int_equal(cx_role_parse(NULL), CX_ROLE_NONE);
    assert_string_equal(cx_role_name(CX_ROLE_VIEWER), "viewer");
    assert_string_equal(cx_role_name(CX_ROLE_OPERATOR), "operator");
    assert_string_equal(cx_role_name(CX_ROLE_ADMIN), "admin");
    assert_string_equal(cx_role_name(CX_ROLE_AGENT), "agent");
    assert_string_equal(cx_role_name(CX_ROLE_NONE), "none");
    /* one table (states.c): every role's name parses back to it; "none" is no role */
    for (int r = CX_ROLE_NONE + 1; r < CX_ROLE_COUNT; r++)
        assert_int_equal(cx_role_parse(cx_role_name((cx_role_t)r)), r);
    assert_int_equal(cx_role_parse("none"), CX_ROLE_NONE);
    assert_string_equal(cx_role_name(CX_ROLE_COUNT), "?");
    /* viewer < operator < admin by value (the route table's least role); agent below them all */
    assert_true(CX_ROLE_AGENT < CX_ROLE_VIEWER && CX_ROLE_VIEWER < CX_ROLE_OPERATOR && CX_ROLE_OPERATOR < CX_ROLE_ADMIN);
    assert_true(cx_role_is_user(CX_ROLE_VIEWER) && cx_role_is_user(CX_ROLE_OPERATOR) && cx_role_is_user(CX_ROLE_ADMIN));
    assert_false(cx_role_is_user(CX_ROLE_AGENT) || cx_role_is_user(CX_ROLE_NONE) || cx_role_is_user(CX_ROLE_COUNT));
}

static void test_round_trip(void **state)
{
    cx_identity_t id;
    const char *why = "unset";
    long now = (long)time(NULL);
    char *tok = cx_jwt_mint(SECRET, ISSUER, "user-42", "admin", "a@example.com", "Ada", 3600);
    jwt_t *j = NULL;

    assert_non_null(tok);
    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, tok, &id, &why), CX_OK);
    assert_int_equal(id.authenticated, 1);
    assert_int_equal(id.role, CX_ROLE_ADMIN);
    assert_string_equal(id.sub, "user-42");
    assert_string_equal(id.email, "a@example.com");
    assert_string_equal(id.name, "Ada");
    assert_int_equal(strlen(id.jti), 36);
    assert_true(id.exp >= now + 3600 && id.exp <= now + 3602);

    /* The token itself: HS256, typ JWT, iat and iss as promised. */
    assert_int_equal(jwt_decode(&j, tok, (const unsigned char *)SECRET, (int)strlen(SECRET)), 0);
    assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
    assert_string_equal(jwt_get_grant(j, "iss"), ISSUER);
    assert_int_equal(jwt_get_grant_int(j, "exp") - jwt_get_grant_int(j, "iat"), 3600);
    jwt_free(j);
    free(tok);

    /* email and name are optional; every jti is new. */
    tok = cx_jwt_mint(SECRET, ISSUER, "agent-7", "agent", NULL, NULL, 60);
    assert_non_null(tok);
    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, tok, &id, NULL), CX_OK);
    assert_int_equal(id.role, CX_ROLE_AGENT);
    assert_string_equal(id.email, "");
    assert_string_equal(id.name, "");
    {
        char first[64];
        cx_identity_t id2;
        char *tok2 = cx_jwt_mint(SECRET, ISSUER, "agent-7", "agent", NULL, NULL, 60);

        strcpy(first, id.jti);
        assert_int_equal(cx_jwt_verify(SECRET, ISSUER, tok2, &id2, NULL), CX_OK);
        assert_string_not_equal(first, id2.jti);
        free(tok2);
    }
    free(tok);

    /* A hand-made token without typ is fine too. */
    {
        cx_identity_t id3;
        const char *t = craft("{\"alg\":\"HS256\"}", claims(60, ""), EVP_sha256(), SECRET);

        assert_int_equal(cx_jwt_verify(SECRET, ISSUER, t, &id3, NULL), CX_OK);
        assert_int_equal(id3.role, CX_ROLE_OPERATOR);
    }
}

/* test_cached -- the cache answers a token verified before as cx_jwt_verify would, until its exp; another
 * secret or issuer, or another text, is verified afresh. */
static void test_cached(void **state)
{
    cx_identity_t id, id2;
    const char *why = "unset";
    char *tok = cx_jwt_mint(SECRET, ISSUER, "user-9", "operator", "o@example.com", "Op", 3600);
    char *bad = cx_strdup(tok);

    assert_int_equal(cx_jwt_verify_cached(SECRET, ISSUER, tok, &id, &why), CX_OK);
    assert_null(why);
    assert_int_equal(cx_jwt_verify_cached(SECRET, ISSUER, tok, &id2, &why), CX_OK); /* from the cache */
    assert_memory_equal(&id, &id2, sizeof(id));
    assert_int_equal(id2.authenticated, 1);
    assert_string_equal(id2.sub, "user-9");
    assert_int_equal(id2.role, CX_ROLE_OPERATOR);
    /* the same text under another secret or issuer is not the same verdict */
    assert_int_equal(cx_jwt_verify_cached("another-secret-another-secret-another", ISSUER, tok, &id2, &why), CX_INVALID);
    assert_int_equal(cx_jwt_verify_cached(SECRET, "other-issuer", tok, &id2, &why), CX_INVALID);
    assert_int_equal(cx_jwt_verify_cached(SECRET, ISSUER, tok, &id2, &why), CX_OK);
    /* a tampered signature is another text: verified, and refused */
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(cx_jwt_verify_cached(SECRET, ISSUER, bad, &id2, &why), CX_INVALID);
    assert_int_equal(id2.authenticated, 0);
    /* refused tokens are not remembered as good */
    assert_int_equal(cx_jwt_verify_cached(SECRET, ISSUER, bad, &id2, &why), CX_INVALID);
    free(tok);
    free(bad);

    /* a cached token expires on time: exp is checked on every hit */
    {
        char t[4096];
        snprintf(t, sizeof(t), "%s", hs256(claims(1, "")));
        assert_int_equal(cx_jwt_verify_cached(SECRET, ISSUER, t, &id, &why), CX_OK);
        for (int i = 0; i < 40 && cx_jwt_verify_cached(SECRET, ISSUER, t, &id, &why) == CX_OK; i++)
            usleep(100000);
        assert_int_equal(cx_jwt_verify_cached(SECRET, ISSUER, t, &id, &why), CX_EXPIRED);
        assert_string_equal(why, "expired");
        assert_int_equal(id.authenticated, 0);
        assert_int_equal(cx_jwt_verify(SECRET, ISSUER, t, &id2, &why), CX_EXPIRED); /* as the uncached answer */
    }
}

static void test_mint_refuses(void **state)
{
    char big[300];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_null(cx_jwt_mint(SECRET, ISSUER, "u", "root", NULL, NULL, 60));
    assert_null(cx_jwt_mint(SECRET, ISSUER, "", "admin", NULL, NULL, 60));
    assert_null(cx_jwt_mint(SECRET, ISSUER, big, "admin", NULL, NULL, 60));
    assert_null(cx_jwt_mint(SECRET, ISSUER, "u", "admin", big, NULL, 60));
    assert_null(cx_jwt_mint(SECRET, ISSUER, "u", "admin", NULL, NULL, 0));
    assert_null(cx_jwt_mint("", ISSUER, "u", "admin", NULL, NULL, 60));
    assert_null(cx_jwt_mint(SECRET, "", "u", "admin", NULL, NULL, 60));
}

static void test_wrong_secret(void **state)
{
    char *tok = cx_jwt_mint("another-secret-another-secret-another", ISSUER, "u", "admin", NULL, NULL, 60);

    refused(tok, "bad signature");
    free(tok);
}

static void test_expired(void **state)
{
    cx_identity_t id;
    const char *why = NULL;

    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, hs256(claims(-10, "")), &id, &why), CX_EXPIRED);
    assert_string_equal(why, "expired");
    assert_int_equal(id.authenticated, 0);
    /* No leeway: a token is expired from the second exp names. */
    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, hs256(claims(0, "")), &id, &why), CX_EXPIRED);
    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, hs256(claims(5, "")), &id, &why), CX_OK);
    /* Expired and otherwise bad is just bad. */
    assert_int_equal(cx_jwt_verify(SECRET, "other", hs256(claims(-10, "")), &id, &why), CX_INVALID);
}

static void test_wrong_issuer(void **state)
{
    char *tok = cx_jwt_mint(SECRET, "someone-else", "u", "admin", NULL, NULL, 60);

    refused(tok, "wrong issuer");
    free(tok);
}

static void test_missing_and_bad_claims(void **state)
{
    long now = (long)time(NULL);
    char p[1024];
    char big[400];

    /* claims with EXP for a time a minute ahead and ISS for the issuer, and why each is refused */
    static const struct {
        const char *claims, *why;
    } bad[] = {
        {"{'sub':'u','role':'admin','exp':EXP,'iss':'ISS'}", "missing claim jti"},
        {"{'sub':'u','exp':EXP,'jti':'j','iss':'ISS'}", "missing claim role"},
        {"{'role':'admin','exp':EXP,'jti':'j','iss':'ISS'}", "missing claim sub"},
        {"{'sub':'u','role':'admin','jti':'j','iss':'ISS'}", "missing claim exp"},
        {"{'sub':'u','role':'admin','exp':EXP,'jti':'j'}", "missing claim iss"},
        {"{'sub':'u','role':'root','exp':EXP,'jti':'j','iss':'ISS'}", "unknown role"},
        {"{'sub':'u','role':['admin'],'exp':EXP,'jti':'j','iss':'ISS'}", "bad claim role"},
        {"{'sub':'u','role':'admin','exp':'EXP','jti':'j','iss':'ISS'}", "bad claim exp"},
        {"{'sub':'u','role':'admin','exp':EXP.5,'jti':'j','iss':'ISS'}", "bad claim exp"},
        {"{'sub':'u','role':'admin','exp':true,'jti':'j','iss':'ISS'}", "bad claim exp"},
        {"{'sub':42,'role':'admin','exp':EXP,'jti':'j','iss':'ISS'}", "bad claim sub"},
        {"{'sub':'','role':'admin','exp':EXP,'jti':'j','iss':'ISS'}", "bad claim sub"},
        {"{'sub':'u','role':'admin','exp':EXP,'jti':'','iss':'ISS'}", "bad claim jti"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* ' for ", EXP and ISS filled in */
        size_t o = 0;
        for (const char *c = bad[i].claims; *c && o + 64 < sizeof(p); c++) {
            if (strncmp(c, "EXP", 3) == 0) {
                o += (size_t)snprintf(p + o, sizeof(p) - o, "%ld", now + 60);
                c += 2;
            } else if (strncmp(c, "ISS", 3) == 0) {
                o += (size_t)snprintf(p + o, sizeof(p) - o, "%s", ISSUER);
                c += 2;
            } else {
                p[o++] = *c == '\'' ? '"' : *c;
            }
        }
        p[o] = '\0';
        refused(hs256(p), bad[i].why);
    }

    /* Values that would not fit the identity are refused, not truncated. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"role\":\"admin\",\"exp\":%ld,\"jti\":\"j\",\"iss\":\"%s\"}", big, now + 60, ISSUER);
    refused(hs256(p), "bad claim sub");
    snprintf(p, sizeof(p), "\"email\":\"%s\"", big);
    refused(hs256(claims(60, p)), "bad claim email");
    big[64] = '\0';
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"role\":\"admin\",\"exp\":%ld,\"jti\":\"%s\",\"iss\":\"%s\"}", now + 60, big, ISSUER);
    refused(hs256(p), "bad claim jti");
    big[63] = '\0';
    {
        cx_identity_t id;

        snprintf(p, sizeof(p), "{\"sub\":\"u\",\"role\":\"admin\",\"exp\":%ld,\"jti\":\"%s\",\"iss\":\"%s\"}", now + 60, big,
                 ISSUER);
        assert_int_equal(cx_jwt_verify(SECRET, ISSUER, hs256(p), &id, NULL), CX_OK);
        assert_string_equal(id.jti, big);
    }

    refused(hs256(claims(60, "\"name\":7")), "bad claim name");
    refused(hs256(claims(60, "\"iat\":\"now\"")), NULL);
}

static void test_nbf(void **state)
{
    cx_identity_t id;
    char extra[64];
    long now = (long)time(NULL);

    snprintf(extra, sizeof(extra), "\"nbf\":%ld", now + 3600);
    refused(hs256(claims(7200, extra)), "not yet valid");
    snprintf(extra, sizeof(extra), "\"nbf\":%ld", now + 10);
    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, hs256(claims(60, extra)), &id, NULL), CX_OK);
    refused(hs256(claims(60, "\"nbf\":\"soon\"")), "bad claim nbf");
}

static void test_alg_none(void **state)
{
    const char *p = claims(60, "");

    refused(craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", p, NULL, NULL), "alg not HS256");
    refused(craft("{\"alg\":\"none\"}", p, NULL, NULL), "alg not HS256");
    /* alg=none carrying a valid HS256 signature anyway. */
    refused(craft("{\"alg\":\"none\"}", p, EVP_sha256(), SECRET), NULL);
    /* No alg at all. */
    refused(craft("{\"typ\":\"JWT\"}", p, EVP_sha256(), SECRET), NULL);
}

static void test_other_algs(void **state)
{
    const char *p = claims(60, "");

    /* Signed with the right secret, but not with HS256. */
    refused(craft("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", p, EVP_sha512(), SECRET), "alg not HS256");
    refused(craft("{\"alg\":\"HS384\",\"typ\":\"JWT\"}", p, EVP_sha384(), SECRET), "alg not HS256");
    /* The same through libjwt. */
    {
        jwt_t *j = NULL;
        char *tok;

        assert_int_equal(jwt_new(&j), 0);
        assert_int_equal(jwt_add_grants_json(j, p), 0);
        assert_int_equal(jwt_set_alg(j, JWT_ALG_HS512, (const unsigned char *)SECRET, (int)strlen(SECRET)), 0);
        tok = jwt_encode_str(j);
        assert_non_null(tok);
        refused(tok, "alg not HS256");
        free(tok);
        jwt_free(j);
    }
    /* HS256 header with an HS512 MAC. */
    refused(craft("{\"alg\":\"HS256\"}", p, EVP_sha512(), SECRET), "bad signature");
    /* The right MAC, but the alg spelt otherwise: libjwt maps it case-insensitively, we do not. */
    refused(craft("{\"alg\":\"hs256\",\"typ\":\"JWT\"}", p, EVP_sha256(), SECRET), "alg not HS256");
    refused(craft("{\"alg\":\"Hs256\"}", p, EVP_sha256(), SECRET), "alg not HS256");
}

static void test_mint_ex(void **state)
{
    cx_identity_t id;
    char jti[37];
    int64_t exp = 0, now = (int64_t)time(NULL);
    char *tok = cx_jwt_mint_ex(SECRET, ISSUER, "u-9", "viewer", NULL, "Nine", 120, jti, &exp);

    assert_non_null(tok);
    assert_int_equal(strlen(jti), 36);
    assert_true(exp >= now + 120 && exp <= now + 121);
    assert_int_equal(cx_jwt_verify(SECRET, ISSUER, tok, &id, NULL), CX_OK);
    assert_string_equal(id.jti, jti);
    assert_int_equal(id.exp, exp);
    assert_string_equal(id.name, "Nine");
    free(tok);
}

static void test_headers(void **state)
{
    const char *p = claims(60, "");

    /* libjwt refuses this one itself (as malformed); we refuse a typ that is not a string. */
    refused(craft("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", p, EVP_sha256(), SECRET), NULL);
    refused(craft("{\"alg\":\"HS256\",\"typ\":1}", p, EVP_sha256(), SECRET), "typ not JWT");
    refused(craft("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", p, EVP_sha256(), SECRET), "crit header not supported");
}

static void test_tampered(void **state)
{
    char *tok = cx_jwt_mint(SECRET, ISSUER, "u", "viewer", NULL, NULL, 60);
    char forged[4096], payload[1024];
    const char *dot1, *dot2;
    char *j;

    assert_non_null(tok);
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    /* Same signature, payload with role admin. */
    b64url((const unsigned char *)claims(60, ""), strlen(claims(60, "")), payload);
    snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(dot1 - tok), tok, payload, dot2);
    refused(forged, "bad signature");
    /* One flipped character in the signature. */
    strcpy(forged, tok);
    j = forged + strlen(forged) - 2;
    *j = *j == 'A' ? 'B' : 'A';
    refused(forged, "bad signature");
    /* Signature dropped. */
    snprintf(forged, sizeof(forged), "%.*s.", (int)(dot2 - tok), tok);
    refused(forged, NULL);
    free(tok);
}

static void test_garbage(void **state)
{
    cx_identity_t id;
    const char *why = NULL;
    char *huge;

    refused("", "empty token");
    refused(NULL, "empty token");
    refused("garbage", NULL);
    refused("a.b.c", NULL);
    refused("..", NULL);
    refused("....", NULL);
    refused("eyJhbGciOiJIUzI1NiJ9.!!!.???", NULL);
    refused(craft("not json", "{}", EVP_sha256(), SECRET), NULL);
    refused(hs256("[1,2,3]"), NULL);
    refused(hs256("null"), NULL);

    /* More than 8 KiB is refused before any parsing. */
    huge = malloc(9000);
    assert_non_null(huge);
    memset(huge, 'A', 8999);
    huge[8999] = '\0';
    refused(huge, "token too large");
    free(huge);

    /* No secret configured: nothing verifies. */
    assert_int_equal(cx_jwt_verify("", ISSUER, hs256(claims(60, "")), &id, &why), CX_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_cached),       cmocka_unit_test(test_mint_refuses),
        cmocka_unit_test(test_wrong_secret), cmocka_unit_test(test_expired),
        cmocka_unit_test(test_wrong_issuer), cmocka_unit_test(test_missing_and_bad_claims),
        cmocka_unit_test(test_nbf),          cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_other_algs),   cmocka_unit_test(test_mint_ex),
        cmocka_unit_test(test_headers),      cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_garbage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
