/*
 * jwt.h -- HS256 tokens: minting (conduix-cp token, SSO) and verification of a Bearer token: the alg must
 * be HS256, the signature good, and sub, role, exp, jti, iss (= auth.issuer) present and valid.
 */
#ifndef CONDUIX_JWT_H
#define CONDUIX_JWT_H

#include <stdint.h>
#include "conduix/http.h"

/* cx_jwt_mint -- a signed token (free() it) or NULL. ttl_s > 0. jti is generated. */
char *cx_jwt_mint(const char *secret, const char *issuer, const char *sub, const char *role, const char *email, const char *name,
                  int64_t ttl_s);

/* cx_jwt_mint_ex -- the same, and the token's jti and exp (Unix seconds) into jti_out and exp_out (either may
 * be NULL). */
char *cx_jwt_mint_ex(const char *secret, const char *issuer, const char *sub, const char *role, const char *email, const char *name,
                     int64_t ttl_s, char jti_out[37], int64_t *exp_out);

/* cx_jwt_verify -- CX_OK and *id filled; CX_EXPIRED when only exp is in the past; CX_INVALID otherwise
 * (with a short reason for the log in why, may be NULL). */
int cx_jwt_verify(const char *secret, const char *issuer, const char *token, cx_identity_t *id, const char **why);

/* cx_jwt_verify_cached -- cx_jwt_verify, answered from this process's cache of the tokens it verified
 * before (the same text, secret and issuer): only exp is checked again. */
int cx_jwt_verify_cached(const char *secret, const char *issuer, const char *token, cx_identity_t *id, const char **why);

#endif
