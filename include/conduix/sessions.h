/*
 * sessions.h -- the life of the tokens we issue: issued after a sign-in (with their sessions row), checked
 * on every request, revoked (logout, DELETE /sessions/:jti), and the roles admins change.
 *
 * What a worker knows beyond a token's signature -- which tokens were revoked, which users an admin gave
 * another role -- is kept in its memory and refreshed from MySQL at most every CX_SESSION_POLL_MS, so a
 * revocation or a role change made on any worker of any instance applies everywhere within a second, with
 * or without Redis. A worker that has not read that view since it started trusts no token (fails closed).
 */
#ifndef CONDUIX_SESSIONS_H
#define CONDUIX_SESSIONS_H

#include <stdint.h>
#include "conduix/http.h"
#include "conduix/oauth.h"
#include "conduix/users.h"

#define CX_SESSION_POLL_MS 500    /* how stale this worker's view may be, once it has been read */
#define CX_SESSION_TOUCH_MS 60000 /* sessions.last_seen_at is written at most this often per token and worker */
#define CX_SESSION_COOKIE "cx_session"

/* cx_session_ready -- refresh this worker's view of revocations and role changes when it is due (and on
 * every call until it has been read in full once). CX_OK when the view is there; CX_UNAVAIL while this
 * worker has never read it (MySQL unreachable since the worker started): then no token can be trusted,
 * an agent's neither, and the request path answers 503. Once read, the view is kept through an outage. */
int cx_session_ready(void);

/* cx_session_check -- for a token whose signature and claims are good: CX_DENIED when its jti is revoked;
 * CX_UNAVAIL when the view is not there (cx_session_ready); else CX_OK, with id->role replaced by the
 * user's current role when an admin changed it. Also records the token's use (last_seen_at; not for agent
 * tokens). */
int cx_session_check(cx_identity_t *id);

/* cx_session_note_revoked -- this worker revoked jti (until exp_s): refuse it at once, before the next poll. */
void cx_session_note_revoked(const char *jti, int64_t exp_s);

/* cx_session_note_role -- this worker changed a user's role: apply it at once. */
void cx_session_note_role(const char *user_id, cx_role_t role);

/* cx_session_login -- the end of a successful sign-in: the user (provisioned on first login, with the role
 * of auth.admin_emails / auth.operator_emails when the provider vouches for the e-mail, else
 * auth.default_role; last_login_at now), our token for them (*token, malloc'd; *exp), its sessions row
 * and a "login" audit row, in one transaction: either all of it or nothing (no token). */
int cx_session_login(const cx_oauth_identity_t *id, const char *user_agent, const char *ip, const char *request_id, cx_user_t *user,
                     char **token, int64_t *exp);

/* cx_session_revoke -- revoke jti (sub and exp of the token when known, for a jti never recorded) and write
 * the audit row action ("logout" or "session_revoke") by actor, in one transaction; refused at once on
 * this worker, on the others within CX_SESSION_POLL_MS. */
int cx_session_revoke(const char *jti, const char *sub, int64_t exp, const char *actor, const char *action, const char *request_id,
                      cx_session_t *out, int *known);

/* cx_session_set_role -- an admin gives user id the role (viewer, operator, admin), audited as
 * "user_role_change" when it changes (the same role again changes nothing and writes no row); applies to
 * the user's existing tokens at once. */
int cx_session_set_role(const char *id, cx_role_t role, const char *actor, const char *request_id, cx_user_t *out);

/* cx_session_audit_failure -- a "login_failed" audit row for a sign-in that failed at stage ("begin": its
 * start, "callback": the provider's return), with the answer's status and why; provider as the request
 * named it (kept when it is short, valid text). Best effort: a failed sign-in often comes with MySQL
 * trouble, and the log line is the record then. */
void cx_session_audit_failure(const char *provider, const char *stage, int status, const char *reason, const char *request_id);

#endif
