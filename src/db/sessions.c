/*
 * src/db/sessions.c -- the sessions table (one row per token we issued, by jti: who, when, until when, last
 * use, client, address, revocation) and auth_states (the sign-ins in flight). users.h has the contracts.
 *
 * Every time comparison uses the database clock (NOW(3)), so workers and replicas agree. A token's exp (Unix
 * seconds) goes in as '1970-01-01' + INTERVAL n SECOND (the sessions run in UTC): FROM_UNIXTIME and
 * UNIX_TIMESTAMP stop at 2038 on MariaDB 10.11, and a token may live 100 years. Times come out as DATETIME
 * text, read by cx_db_time_ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/users.h"

#define SESSION_COLS                                                                                                               \
    "jti, user_id, provider, user_agent, ip_address, created_at, expires_at, last_seen_at, revoked_at, revoked_by, "               \
    "(revoked_at IS NULL AND expires_at > NOW(3)) AS active"
#define EPOCH "1000-01-01 00:00:00"

static void fill(const cx_db_result_t *res, size_t i, cx_session_t *s)
{
    memset(s, 0, sizeof(*s));
    cx_db_copy(res, i, "jti", s->jti, sizeof(s->jti));
    cx_db_copy(res, i, "user_id", s->user_id, sizeof(s->user_id));
    cx_db_copy(res, i, "provider", s->provider, sizeof(s->provider));
    cx_db_copy(res, i, "user_agent", s->user_agent, sizeof(s->user_agent));
    cx_db_copy(res, i, "ip_address", s->ip_address, sizeof(s->ip_address));
    s->created_at = cx_db_time_ms(cx_db_value(res, i, "created_at"));
    s->expires_at = cx_db_time_ms(cx_db_value(res, i, "expires_at"));
    s->last_seen_at = cx_db_time_ms(cx_db_value(res, i, "last_seen_at"));
    s->revoked_at = cx_db_time_ms(cx_db_value(res, i, "revoked_at"));
    cx_db_copy(res, i, "revoked_by", s->revoked_by, sizeof(s->revoked_by));
    s->active = cx_db_int(res, i, "active", 0) == 1;
}

int cx_db_session_create(const char *jti, const char *user_id, int64_t expires_s, const char *provider, const char *user_agent,
                         const char *ip)
{
    char ua[256];

    snprintf(ua, sizeof(ua), "%s", user_agent != NULL ? user_agent : ""); /* VARCHAR(255): cut, not refused */
    cx_db_param_t p[] = {CX_DB_P_STR(jti),       CX_DB_P_STR(user_id), CX_DB_P_INT(expires_s),
                         CX_DB_P_TEXT(provider), CX_DB_P_TEXT(ua),     CX_DB_P_TEXT(ip)};
    return cx_db_exec("INSERT INTO sessions (jti, user_id, expires_at, provider, user_agent, ip_address) "
                      "VALUES (?, ?, TIMESTAMP('1970-01-01') + INTERVAL ? SECOND, ?, ?, ?)",
                      p, CX_ARRAY_SIZE(p), NULL, NULL);
}

int cx_db_session_touch(const char *jti)
{
    cx_db_param_t p[] = {CX_DB_P_STR(jti)};
    return cx_db_exec("UPDATE sessions SET last_seen_at = NOW(3) WHERE jti = ?", p, 1, NULL, NULL);
}

int cx_db_session_get(const char *jti, cx_session_t *out)
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[] = {CX_DB_P_STR(jti)};
    int rc = cx_db_exec("SELECT " SESSION_COLS " FROM sessions WHERE jti = ?", p, 1, &res, NULL);

    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        fill(res, 0, out);
    cx_db_result_free(res);
    return rc;
}

int cx_db_session_revoke(const char *jti, const char *sub, int64_t expires_s, const char *by, cx_session_t *out, int *known)
{
    int rc = cx_db_session_get(jti, out);

    if (rc != CX_OK && rc != CX_NOTFOUND)
        return rc;
    *known = rc == CX_OK;
    /* revoked_by is assigned before revoked_at: MySQL evaluates the assignments left to right */
    cx_db_param_t p[] = {CX_DB_P_STR(jti), CX_DB_P_STR(sub), CX_DB_P_INT(expires_s), CX_DB_P_STR(by)};
    rc = cx_db_exec("INSERT INTO sessions (jti, user_id, expires_at, revoked_at, revoked_by) "
                    "VALUES (?, ?, TIMESTAMP('1970-01-01') + INTERVAL ? SECOND, NOW(3), ?) "
                    "ON DUPLICATE KEY UPDATE revoked_by = IF(revoked_at IS NULL, VALUES(revoked_by), revoked_by), "
                    "revoked_at = COALESCE(revoked_at, NOW(3))",
                    p, CX_ARRAY_SIZE(p), NULL, NULL);
    if (rc != CX_OK)
        return rc;
    return cx_db_session_get(jti, out);
}

int cx_db_sessions_of_user(const char *user_id, int page, int size, cx_session_t **items, size_t *n, int64_t *total)
{
    cx_db_result_t *res = NULL;
    cx_db_param_t c[] = {CX_DB_P_STR(user_id)};
    int rc;

    *items = NULL;
    *n = 0;
    if ((rc = cx_db_exec("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?", c, 1, &res, NULL)) != CX_OK)
        return rc;
    *total = cx_db_int(res, 0, "n", 0);
    cx_db_result_free(res);
    cx_db_param_t p[] = {CX_DB_P_STR(user_id), CX_DB_P_INT(size), CX_DB_P_INT((long long)(page - 1) * size)};
    if ((rc = cx_db_exec("SELECT " SESSION_COLS " FROM sessions WHERE user_id = ? ORDER BY created_at DESC, jti LIMIT ? OFFSET ?",
                         p, CX_ARRAY_SIZE(p), &res, NULL)) != CX_OK)
        return rc;
    *items = cx_calloc(res->nrows + 1, sizeof(cx_session_t));
    for (size_t i = 0; i < res->nrows; i++)
        fill(res, i, &(*items)[i]);
    *n = res->nrows;
    cx_db_result_free(res);
    return CX_OK;
}

void cx_db_sessions_free(cx_session_t *items, size_t n)
{
    (void)n; /* a session owns no memory */
    free(items);
}

int cx_db_revoked_since(const char *since, cx_revoked_t **items, size_t *n, char now[32])
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[] = {CX_DB_P_STR(since != NULL ? since : EPOCH)};
    int rc;

    *items = NULL;
    *n = 0;
    /* the derived table makes the clock come back even when nothing was revoked */
    rc = cx_db_exec("SELECT c.now, s.jti, s.expires_at FROM (SELECT NOW(3) AS now) c "
                    "LEFT JOIN sessions s ON s.revoked_at >= ? - INTERVAL 5 SECOND AND s.expires_at > c.now",
                    p, 1, &res, NULL);
    if (rc != CX_OK)
        return rc;
    cx_db_copy(res, 0, "now", now, 32);
    *items = cx_calloc(res->nrows + 1, sizeof(cx_revoked_t));
    for (size_t i = 0; i < res->nrows; i++) {
        cx_revoked_t *v = &(*items)[*n];
        if (cx_db_value(res, i, "jti") == NULL)
            continue;
        cx_db_copy(res, i, "jti", v->jti, sizeof(v->jti));
        v->expires_at = cx_db_time_ms(cx_db_value(res, i, "expires_at"));
        (*n)++;
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_login_state_save(const char *state, const cx_login_state_t *st, int64_t ttl_s)
{
    cx_db_param_t p[] = {CX_DB_P_STR(state),      CX_DB_P_STR(st->provider),     CX_DB_P_STR(st->verifier),
                         CX_DB_P_TEXT(st->nonce), CX_DB_P_STR(st->redirect_uri), CX_DB_P_INT(ttl_s)};
    int rc;

    /* sign-ins never finished (the user closed the tab) go a few at a time */
    rc = cx_db_exec("DELETE FROM auth_states WHERE expires_at < NOW(3) LIMIT 50", NULL, 0, NULL, NULL);
    if (rc == CX_UNAVAIL)
        return rc;
    return cx_db_exec("INSERT INTO auth_states (state, provider, code_verifier, nonce, redirect_uri, expires_at) "
                      "VALUES (?, ?, ?, ?, ?, NOW(3) + INTERVAL ? SECOND)",
                      p, CX_ARRAY_SIZE(p), NULL, NULL);
}

int cx_db_login_state_take(const char *state, cx_login_state_t *out)
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[] = {CX_DB_P_STR(state)};
    uint64_t deleted = 0;
    int rc, expired;

    memset(out, 0, sizeof(*out));
    rc = cx_db_exec(
        "SELECT provider, code_verifier, nonce, redirect_uri, expires_at > NOW(3) AS live FROM auth_states WHERE state = ?", p, 1,
        &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc != CX_OK) {
        cx_db_result_free(res);
        return rc;
    }
    cx_db_copy(res, 0, "provider", out->provider, sizeof(out->provider));
    cx_db_copy(res, 0, "code_verifier", out->verifier, sizeof(out->verifier));
    cx_db_copy(res, 0, "nonce", out->nonce, sizeof(out->nonce));
    cx_db_copy(res, 0, "redirect_uri", out->redirect_uri, sizeof(out->redirect_uri));
    expired = cx_db_int(res, 0, "live", 0) != 1;
    cx_db_result_free(res);
    /* the DELETE is the claim: of two callbacks racing with the same state, one deletes the row */
    if ((rc = cx_db_exec("DELETE FROM auth_states WHERE state = ?", p, 1, NULL, &deleted)) != CX_OK)
        return rc;
    if (deleted != 1)
        return CX_NOTFOUND;
    return expired ? CX_EXPIRED : CX_OK;
}
