/*
 * sessions.c -- the life of our tokens (sessions.h): issued after a sign-in, each with its sessions row and
 * an audit row in one transaction; checked on every request against this worker's view of revoked tokens
 * and changed roles (and recorded as seen); revoked; and users' roles changed.
 *
 * Three small hash tables, keyed by string: revoked jti -> exp, user id -> role an admin set, jti -> when
 * this worker last wrote its last_seen_at. The first two are loaded in full on the first authenticated
 * request and then refreshed with what changed since the previous poll (two indexed range queries, at most
 * every CX_SESSION_POLL_MS, only while requests come in). MySQL is the record of both, so Redis plays no
 * part: a revocation is refused everywhere within a poll interval whether Redis is up or down. While MySQL
 * is unreachable the view is kept as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <json.h>

#include "conduix/audit.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/jwt.h"
#include "conduix/log.h"
#include "conduix/sessions.h"
#include "conduix/shapes.h"
#include "conduix/users.h"

#define TOUCHED_MAX 8192 /* tokens remembered for last_seen_at; the table is emptied when full */

typedef struct slot {
    char *key;
    int64_t num;  /* revoked: exp; touched: cx_now_ms of the write */
    char val[16]; /* roles: the role */
} slot_t;

typedef struct map {
    slot_t *slots;
    size_t cap, n; /* cap is a power of two */
} map_t;

static struct {
    map_t revoked, roles, touched;
    char revoked_since[32], roles_since[32];
    int loaded; /* the first full load succeeded */
    int64_t next_poll_ms;
    int failing; /* the last poll failed (logged once) */
} S;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static slot_t *find(const map_t *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == NULL)
            return NULL;
        if (strcmp(m->slots[i].key, key) == 0)
            return &m->slots[i];
    }
}

static void clear(map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* insert -- a new slot for key; the table has room. */
static slot_t *insert(map_t *m, const char *key)
{
    for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == NULL) {
            m->slots[i].key = cx_strdup(key);
            m->n++;
            return &m->slots[i];
        }
    }
}

/* grow -- double the table, leaving out entries whose num is at most drop_upto (expired revocations;
 * 0 keeps everything). */
static void grow(map_t *m, int64_t drop_upto)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    map_t bigger = {cx_calloc(cap, sizeof(slot_t)), cap, 0};

    for (size_t i = 0; i < m->cap; i++) {
        slot_t *s = &m->slots[i], *d;
        if (s->key == NULL || (drop_upto > 0 && s->num <= drop_upto))
            continue;
        d = insert(&bigger, s->key);
        d->num = s->num;
        memcpy(d->val, s->val, sizeof(d->val));
    }
    clear(m);
    *m = bigger;
}

static slot_t *put(map_t *m, const char *key)
{
    slot_t *s = find(m, key);

    if (s != NULL)
        return s;
    if ((m->n + 1) * 2 > m->cap)
        grow(m, m == &S.revoked ? (int64_t)time(NULL) : 0);
    return insert(m, key);
}

static void set_revoked(const char *jti, int64_t exp)
{
    put(&S.revoked, jti)->num = exp;
}

static void set_role(const char *id, const char *role)
{
    slot_t *s = put(&S.roles, id);
    snprintf(s->val, sizeof(s->val), "%s", role);
}

/* poll -- what changed in MySQL since the last poll (everything, the first time). */
static void poll(void)
{
    cx_revoked_t *rv = NULL;
    cx_role_change_t *rc = NULL;
    size_t n, i;
    char now[32];
    int e;

    if ((e = cx_db_revoked_since(S.loaded ? S.revoked_since : NULL, &rv, &n, now)) == CX_OK) {
        for (i = 0; i < n; i++)
            set_revoked(rv[i].jti, rv[i].expires_s);
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
            cx_log_info("sessions: revocations and role changes are read again");
        S.loaded = 1;
        S.failing = 0;
    } else if (!S.failing) {
        S.failing = 1;
        cx_log_warnx("sessions: cannot read revocations and role changes (MySQL); keeping this worker's last view");
    }
}

int cx_session_check(cx_identity_t *id)
{
    int64_t now = cx_now_ms();
    slot_t *s;

    if (now >= S.next_poll_ms) {
        S.next_poll_ms = now + CX_SESSION_POLL_MS;
        poll();
    }
    if (id->jti[0] != '\0' && find(&S.revoked, id->jti) != NULL)
        return CX_DENIED;
    if (id->role != CX_ROLE_AGENT && (s = find(&S.roles, id->sub)) != NULL) {
        cx_role_t role = cx_role_parse(s->val);
        if (role != CX_ROLE_NONE && role != CX_ROLE_AGENT)
            id->role = role;
    }
    /* agents are seen through their heartbeats; a fleet on the REST fallback would write a row a beat */
    if (id->jti[0] != '\0' && id->role != CX_ROLE_AGENT) {
        s = find(&S.touched, id->jti);
        if (s == NULL || now - s->num >= CX_SESSION_TOUCH_MS) {
            if (s == NULL && S.touched.n >= TOUCHED_MAX) {
                clear(&S.touched);
                s = NULL;
            }
            if (cx_db_session_touch(id->jti) == CX_OK)
                put(&S.touched, id->jti)->num = now;
        }
    }
    return CX_OK;
}

void cx_session_note_revoked(const char *jti, int64_t exp_s)
{
    set_revoked(jti, exp_s);
}

void cx_session_note_role(const char *user_id, const char *role)
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
static const char *first_role(const cx_oauth_identity_t *id)
{
    if (id->email_trusted && id->email[0]) {
        if (in_list(cx_cfg->auth.admin_emails, cx_cfg->auth.nadmin_emails, id->email))
            return "admin";
        if (in_list(cx_cfg->auth.operator_emails, cx_cfg->auth.noperator_emails, id->email))
            return "operator";
    }
    return cx_cfg->auth.default_role;
}

/* end_tx -- commit when rc is CX_OK, else roll back; the result. */
static int end_tx(int rc)
{
    if (rc == CX_OK)
        return cx_db_commit();
    cx_db_rollback();
    return rc;
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
        *token =
            cx_jwt_mint_ex(cx_cfg->auth.jwt_secret, cx_cfg->auth.issuer, user->id, user->role, user->email[0] ? user->email : NULL,
                           user->name[0] ? user->name : NULL, cx_cfg->auth.token_expiry_ms / 1000, jti, exp);
        rc = *token != NULL ? CX_OK : CX_ERR;
    }
    if (rc == CX_OK)
        rc = cx_db_session_create(jti, user->id, *exp, id->provider->provider, user_agent, ip);
    if (rc == CX_OK) {
        after = json_object_new_object();
        json_object_object_add(after, "provider", json_object_new_string(id->provider->provider));
        json_object_object_add(after, "role", json_object_new_string(user->role));
        json_object_object_add(after, "jti", json_object_new_string(jti));
        json_object_object_add(after, "first_login", json_object_new_boolean(created));
        rc = cx_audit_write(user->email[0] ? user->email : user->id, "login", "user", user->id, request_id, NULL, after);
        json_object_put(after);
    }
    if ((rc = end_tx(rc)) != CX_OK) {
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
        json_object_object_add(after, "user_id", out->user_id[0] ? json_object_new_string(out->user_id) : NULL);
        json_object_object_add(after, "revoked_at", cx_json_time(out->revoked_at));
        json_object_object_add(after, "recorded", json_object_new_boolean(*known));
        rc = cx_audit_write(actor, action, "session", jti, request_id, NULL, after);
        json_object_put(after);
    }
    if ((rc = end_tx(rc)) == CX_OK)
        cx_session_note_revoked(jti, exp);
    return rc;
}

int cx_session_set_role(const char *id, const char *role, const char *actor, const char *request_id, cx_user_t *out)
{
    cx_user_t before;
    json_object *b, *a;
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    rc = cx_db_user_set_role(id, role, &before, out);
    if (rc == CX_OK && strcmp(before.role, out->role) != 0) {
        b = json_object_new_object();
        a = json_object_new_object();
        json_object_object_add(b, "role", json_object_new_string(before.role));
        json_object_object_add(a, "role", json_object_new_string(out->role));
        rc = cx_audit_write(actor, "user_role_change", "user", id, request_id, b, a);
        json_object_put(b);
        json_object_put(a);
    }
    if ((rc = end_tx(rc)) == CX_OK)
        cx_session_note_role(id, out->role);
    return rc;
}

void cx_session_audit_failure(const char *provider, int status, const char *reason, const char *request_id)
{
    json_object *after = json_object_new_object();

    json_object_object_add(after, "status", json_object_new_int(status));
    json_object_object_add(after, "reason", json_object_new_string(reason));
    if (cx_db_in_tx())
        cx_db_rollback();
    cx_audit_write("anonymous", "login_failed", "provider", provider, request_id, NULL, after);
    json_object_put(after);
}
