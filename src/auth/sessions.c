/*
 * sessions.c -- the life of our tokens (sessions.h): issued after a sign-in, each with its sessions row and
 * an audit row in one transaction; checked on every request against this worker's view of revoked tokens
 * and changed roles (and recorded as seen); revoked; and users' roles changed.
 *
 * The view is three tables of the project's hash table (hash.h), keyed by string: revoked jti -> its
 * expiry, user id -> the role an admin set, jti -> when this worker last wrote its last_seen_at. The first
 * two are read in full from MySQL on the first authenticated request and then refreshed with what changed
 * since the previous read (two indexed range queries, at most every CX_SESSION_POLL_MS, only while
 * requests come in). MySQL is the record of both, so Redis plays no part: a revocation is refused
 * everywhere within a poll interval whether Redis is up or down.
 *
 * The view fails closed. Until its first full read succeeds a worker knows of no revocation and no role
 * change, so it trusts no token: cx_session_ready says CX_UNAVAIL (the request path answers 503
 * DATABASE_UNAVAILABLE) and the read is tried again on every request, not once a poll interval, so the
 * first request after MySQL answers again is already checked against the full view. A worker that has
 * read it once keeps its last view while MySQL is unreachable: no revocation can be made meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <json.h>

#include "conduix/audit.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/hash.h"
#include "conduix/jwt.h"
#include "conduix/log.h"
#include "conduix/sessions.h"
#include "conduix/shapes.h"
#include "conduix/users.h"
#include "conduix/utf8.h"

#define TOUCHED_MAX 8192   /* tokens remembered for last_seen_at; the table is emptied when full */
#define REVOKED_PRUNE 1024 /* expired revocations are dropped when the table reaches this size (then twice its size) */

typedef struct entry {
    cx_hentry_t h;
    int64_t num;    /* revoked: the token's expiry (Unix ms); touched: cx_now_ms of the write */
    cx_role_t role; /* roles: the role an admin set */
    char key[];     /* the jti or user id */
} entry_t;

static struct {
    cx_htab_t revoked, roles, touched;
    size_t revoked_prune_at;
    char revoked_since[32], roles_since[32];
    int loaded; /* the first full read succeeded */
    int64_t next_poll_ms;
    int failing; /* the last read failed (logged once) */
} S;

static entry_t *find(const cx_htab_t *t, const char *key)
{
    cx_hentry_t *h = cx_htab_get(t, key, strlen(key));
    return h != NULL ? CX_CONTAINER_OF(h, entry_t, h) : NULL;
}

/* put -- the entry of key, added when it is not there. */
static entry_t *put(cx_htab_t *t, const char *key)
{
    size_t len = strlen(key);
    entry_t *e = find(t, key);

    if (e != NULL)
        return e;
    e = cx_calloc(1, sizeof(*e) + len + 1);
    memcpy(e->key, key, len + 1);
    cx_htab_put(t, &e->h, e->key, len);
    return e;
}

/* drop -- remove and free the entries of t whose num is at most upto (INT64_MAX: all of them). */
static void drop(cx_htab_t *t, int64_t upto)
{
    cx_hentry_t *h, *next;

    for (h = cx_htab_first(t); h != NULL; h = next) {
        entry_t *e = CX_CONTAINER_OF(h, entry_t, h);
        next = cx_htab_next(h);
        if (e->num <= upto) {
            cx_htab_remove(t, h);
            free(e);
        }
    }
}

static void set_revoked(const char *jti, int64_t expires_at_ms)
{
    if (cx_htab_count(&S.revoked) >= S.revoked_prune_at) {
        drop(&S.revoked, cx_wall_ms()); /* an expired token is refused for its exp anyway */
        S.revoked_prune_at = cx_htab_count(&S.revoked) * 2 > REVOKED_PRUNE ? cx_htab_count(&S.revoked) * 2 : REVOKED_PRUNE;
    }
    put(&S.revoked, jti)->num = expires_at_ms;
}

static void set_role(const char *id, cx_role_t role)
{
    put(&S.roles, id)->role = role;
}

/* poll -- what changed in MySQL since the last read (everything, until a full read has succeeded). */
static void poll(void)
{
    cx_revoked_t *rv = NULL;
    cx_role_change_t *rc = NULL;
    size_t n, i;
    char now[32];
    int e;

    if ((e = cx_db_revoked_since(S.loaded ? S.revoked_since : NULL, &rv, &n, now)) == CX_OK) {
        for (i = 0; i < n; i++)
            set_revoked(rv[i].jti, rv[i].expires_at);
        memcpy(S.revoked_since, now, sizeof(now));
        free(rv);
        if ((e = cx_db_roles_changed_since(S.loaded ? S.roles_since : NULL, &rc, &n, now)) == CX_OK) {
            for (i = 0; i < n; i++)
                set_role(rc[i].id, rc[i].role);
            memcpy(S.roles_since, now, sizeof(now));
            free(rc);
        }
    }
    if (e == CX_OK) {
        if (S.failing)
            cx_log_info("sessions: revocations and role changes are read again%s",
                        S.loaded ? "" : "; tokens are accepted from now on");
        S.loaded = 1;
        S.failing = 0;
    } else if (!S.failing) {
        S.failing = 1;
        if (S.loaded)
            cx_log_warnx("sessions: cannot read revocations and role changes (MySQL); keeping this worker's last view");
        else
            cx_log_warnx("sessions: cannot read revocations and role changes (MySQL); this worker has not read them since it "
                         "started, so it answers 503 to every token until it has");
    }
}

int cx_session_ready(void)
{
    int64_t now = cx_now_ms();

    if (!S.loaded || now >= S.next_poll_ms) {
        S.next_poll_ms = now + CX_SESSION_POLL_MS;
        poll();
    }
    return S.loaded ? CX_OK : CX_UNAVAIL;
}

int cx_session_check(cx_identity_t *id)
{
    int64_t now = cx_now_ms();
    entry_t *e;

    if (cx_session_ready() != CX_OK)
        return CX_UNAVAIL;
    if (id->jti[0] != '\0' && find(&S.revoked, id->jti) != NULL)
        return CX_DENIED;
    if (id->role != CX_ROLE_AGENT && (e = find(&S.roles, id->sub)) != NULL && cx_role_is_user(e->role))
        id->role = e->role;
    /* agents are seen through their heartbeats; a fleet on the REST fallback would write a row a beat */
    if (id->jti[0] != '\0' && id->role != CX_ROLE_AGENT) {
        e = find(&S.touched, id->jti);
        if (e == NULL || now - e->num >= CX_SESSION_TOUCH_MS) {
            if (e == NULL && cx_htab_count(&S.touched) >= TOUCHED_MAX)
                drop(&S.touched, INT64_MAX);
            if (cx_db_session_touch(id->jti) == CX_OK)
                put(&S.touched, id->jti)->num = now;
        }
    }
    return CX_OK;
}

void cx_session_note_revoked(const char *jti, int64_t exp_s)
{
    set_revoked(jti, exp_s * 1000);
}

void cx_session_note_role(const char *user_id, cx_role_t role)
{
    set_role(user_id, role);
}

/* ---- issuing, revoking, roles ---- */

/* in_list -- s in list, ignoring case (e-mail addresses). */
static int in_list(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* first_role -- the role of a new user: from the e-mail lists only when the provider vouches for the
 * address (else anyone could name an admin's address at a provider that does not check it). */
static cx_role_t first_role(const cx_oauth_identity_t *id)
{
    cx_role_t dflt = cx_role_parse(cx_cfg->auth.default_role);

    if (id->email_trusted && id->email[0]) {
        if (in_list(cx_cfg->auth.admin_emails, cx_cfg->auth.nadmin_emails, id->email))
            return CX_ROLE_ADMIN;
        if (in_list(cx_cfg->auth.operator_emails, cx_cfg->auth.noperator_emails, id->email))
            return CX_ROLE_OPERATOR;
    }
    return cx_role_is_user(dflt) ? dflt : CX_ROLE_VIEWER; /* the configuration allows only those three */
}

int cx_session_login(const cx_oauth_identity_t *id, const char *user_agent, const char *ip, const char *request_id, cx_user_t *user,
                     char **token, int64_t *exp)
{
    char jti[37];
    int rc, created = 0;
    json_object *after;

    *token = NULL;
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    rc = cx_db_user_login(id->provider->provider, id->subject, id->email, id->name, first_role(id), user, &created);
    if (rc == CX_OK) {
        *token = cx_jwt_mint_ex(cx_cfg->auth.jwt_secret, cx_cfg->auth.issuer, user->id, cx_role_name(user->role),
                                cx_db_text_or_null(user->email), cx_db_text_or_null(user->name),
                                cx_cfg->auth.token_expiry_ms / 1000, jti, exp);
        rc = *token != NULL ? CX_OK : CX_ERR;
    }
    if (rc == CX_OK)
        rc = cx_db_session_create(jti, user->id, *exp, id->provider->provider, user_agent, ip);
    if (rc == CX_OK) {
        after = json_object_new_object();
        json_object_object_add(after, "provider", json_object_new_string(id->provider->provider));
        json_object_object_add(after, "role", json_object_new_string(cx_role_name(user->role)));
        json_object_object_add(after, "jti", json_object_new_string(jti));
        json_object_object_add(after, "first_login", json_object_new_boolean(created));
        rc = cx_audit_write(user->email[0] ? user->email : user->id, "login", "user", user->id, request_id, NULL, after);
        json_object_put(after);
    }
    if ((rc = cx_db_end(rc)) != CX_OK) {
        free(*token);
        *token = NULL;
    }
    return rc;
}

int cx_session_revoke(const char *jti, const char *sub, int64_t exp, const char *actor, const char *action, const char *request_id,
                      cx_session_t *out, int *known)
{
    json_object *after;
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    rc = cx_db_session_revoke(jti, sub, exp, actor, out, known);
    if (rc == CX_OK) {
        after = json_object_new_object();
        json_object_object_add(after, "user_id", cx_json_nonempty_or_null(out->user_id));
        json_object_object_add(after, "revoked_at", cx_json_time(out->revoked_at));
        json_object_object_add(after, "recorded", json_object_new_boolean(*known));
        rc = cx_audit_write(actor, action, "session", jti, request_id, NULL, after);
        json_object_put(after);
    }
    if ((rc = cx_db_end(rc)) == CX_OK)
        cx_session_note_revoked(jti, exp);
    return rc;
}

/* role_json -- {"role": name}, the before and after of a role change. */
static json_object *role_json(cx_role_t role)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "role", json_object_new_string(cx_role_name(role)));
    return o;
}

int cx_session_set_role(const char *id, cx_role_t role, const char *actor, const char *request_id, cx_user_t *out)
{
    cx_user_t before;
    json_object *b, *a;
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    rc = cx_db_user_set_role(id, role, &before, out);
    if (rc == CX_OK && before.role != out->role) {
        b = role_json(before.role);
        a = role_json(out->role);
        rc = cx_audit_write(actor, "user_role_change", "user", id, request_id, b, a);
        json_object_put(b);
        json_object_put(a);
    }
    if ((rc = cx_db_end(rc)) == CX_OK)
        cx_session_note_role(id, out->role);
    return rc;
}

/* text -- s when it is valid UTF-8 of at most max bytes (what a utf8mb4 column takes), else NULL. A failed
 * sign-in's provider and reason may quote what the request or the provider sent. */
static const char *text(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    return n > 0 && n <= max && cx_utf8_check(s, n, NULL) >= 0 ? s : NULL;
}

void cx_session_audit_failure(const char *provider, const char *stage, int status, const char *reason, const char *request_id)
{
    json_object *after = json_object_new_object();
    const char *why = text(reason, 1024);

    json_object_object_add(after, "stage", json_object_new_string(stage));
    json_object_object_add(after, "status", json_object_new_int(status));
    json_object_object_add(after, "reason",
                           json_object_new_string(why != NULL ? why : "(not shown: see the log for this request)"));
    if (cx_db_in_tx())
        cx_db_rollback();
    cx_audit_write("anonymous", "login_failed", "provider", text(provider, 64), request_id, NULL, after);
    json_object_put(after);
}
