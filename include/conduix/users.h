/*
 * users.h -- people and their tokens in MySQL: the users table (src/db/users.c), the sessions table (one
 * row per issued token, by jti) and the sign-ins in flight (auth_states) (src/db/sessions.c).
 *
 * Users are keyed by (provider, the provider's subject), never by e-mail. Everything here keeps the data
 * layer's convention (db.h): CX_OK or a negative CX_ code (CX_NOTFOUND, CX_UNAVAIL, CX_ERR …); structs
 * owned by the caller, filled only on CX_OK; roles as the enum of states.h; times in Unix milliseconds
 * (0 for NULL). Every column here is bounded, so text is in fixed arrays ("" for NULL) and the structs
 * own nothing; arrays of rows are freed with cx_db_users_free and cx_db_sessions_free.
 */
#ifndef CONDUIX_USERS_H
#define CONDUIX_USERS_H

#include <stddef.h>
#include <stdint.h>

#include "conduix/states.h"

typedef struct cx_user {
    char id[37];
    char provider[65];
    char subject[256];
    char email[256];
    char name[256];
    cx_role_t role; /* a role of cx_role_is_user; a row holding anything else reads as viewer (logged) */
    int64_t created_at;
    int64_t last_login_at;
} cx_user_t;

/* cx_db_user_login -- the user (provider, subject), created with new_role when there is none (*created = 1),
 * with email and name refreshed and last_login_at set to now. email/name may be "" (stored as NULL). */
int cx_db_user_login(const char *provider, const char *subject, const char *email, const char *name, cx_role_t new_role,
                     cx_user_t *out, int *created);

/* cx_db_user_get -- one user by id; CX_NOTFOUND. */
int cx_db_user_get(const char *id, cx_user_t *out);

/* cx_db_users_list -- a page of users, oldest first (created_at, then id). role CX_ROLE_NONE: any role;
 * search (NULL or "": none) a substring of the e-mail or the name, case-insensitive. *total: the users
 * that match. */
int cx_db_users_list(cx_role_t role, const char *search, int page, int size, cx_user_t **items, size_t *n, int64_t *total);
void cx_db_users_free(cx_user_t *items, size_t n);

/* cx_db_user_set_role -- change a user's role (and role_changed_at) inside the caller's transaction;
 * before/after as they were and are. CX_NOTFOUND. A role equal to the current one changes nothing. */
int cx_db_user_set_role(const char *id, cx_role_t role, cx_user_t *before, cx_user_t *after);

/* A user whose role an admin changed, as the per-worker role cache needs it. */
typedef struct cx_role_change {
    char id[37];
    cx_role_t role;
} cx_role_change_t;

/* cx_db_roles_changed_since -- users whose role changed at or after since (a DATETIME string; NULL: ever),
 * less 5 seconds of overlap, so that a change committed just after an earlier poll read the clock is not
 * missed. *now: the database clock when the query ran (the next since). *items is freed with free(). */
int cx_db_roles_changed_since(const char *since, cx_role_change_t **items, size_t *n, char now[32]);

/* ---- sessions ---- */

typedef struct cx_session {
    char jti[65];
    char user_id[256];
    char provider[65];
    char user_agent[256];
    char ip_address[64];
    int64_t created_at;
    int64_t expires_at;
    int64_t last_seen_at;
    int64_t revoked_at;
    char revoked_by[256];
    int active; /* not revoked and not expired */
} cx_session_t;

/* cx_db_session_create -- record an issued token (expires_s: its exp, Unix seconds). user_agent, ip and
 * provider may be NULL or "". */
int cx_db_session_create(const char *jti, const char *user_id, int64_t expires_s, const char *provider, const char *user_agent,
                         const char *ip);

/* cx_db_session_touch -- last_seen_at = now (a token not recorded is left alone). */
int cx_db_session_touch(const char *jti);

/* cx_db_session_get -- one session by jti; CX_NOTFOUND. */
int cx_db_session_get(const char *jti, cx_session_t *out);

/* cx_db_session_revoke -- revoke jti (by names who). A jti never recorded (a token minted while MySQL was
 * unreachable) is recorded as revoked, for sub and until expires_s (the token's exp, or far away when
 * unknown); *known tells which. *out is the session afterwards. Revoking twice keeps the first time. */
int cx_db_session_revoke(const char *jti, const char *sub, int64_t expires_s, const char *by, cx_session_t *out, int *known);

/* cx_db_sessions_of_user -- a page of a user's sessions, newest first. */
int cx_db_sessions_of_user(const char *user_id, int page, int size, cx_session_t **items, size_t *n, int64_t *total);
void cx_db_sessions_free(cx_session_t *items, size_t n);

/* A revoked token that has not expired, as the per-worker revocation list needs it. */
typedef struct cx_revoked {
    char jti[65];
    int64_t expires_at; /* Unix milliseconds */
} cx_revoked_t;

/* cx_db_revoked_since -- tokens revoked at or after since (DATETIME string; NULL: ever; with the same
 * overlap) that have not expired. *now as in cx_db_roles_changed_since; *items is freed with free(). */
int cx_db_revoked_since(const char *since, cx_revoked_t **items, size_t *n, char now[32]);

/* ---- sign-ins in flight ---- */

typedef struct cx_login_state {
    char provider[65];
    char verifier[128];
    char nonce[128]; /* "" for OAuth2 */
    char redirect_uri[1024];
} cx_login_state_t;

/* cx_db_login_state_save -- store a sign-in for ttl_s seconds (and delete some expired ones). */
int cx_db_login_state_save(const char *state, const cx_login_state_t *st, int64_t ttl_s);

/* cx_db_login_state_take -- read and delete the sign-in state: CX_OK once; CX_NOTFOUND when unknown or
 * already taken (by this or another worker); CX_EXPIRED when it was too old (deleted too). */
int cx_db_login_state_take(const char *state, cx_login_state_t *out);

#endif
