/*
 * src/db/users.c -- the users table (users.h): sign-in provisioning keyed by (provider, subject), reads for
 * the admin API and /auth/me, role changes, and the recent role changes every worker polls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/users.h"

#define USER_COLS "id, provider, provider_subject, email, name, role, created_at, last_login_at"
#define EPOCH "1000-01-01 00:00:00"
/* The filters of a list: a role (or NULL), and a substring of the e-mail or the name (or NULL). LOCATE
 * compares under the columns' case-insensitive collation and, unlike LIKE, gives '%' and '_' no meaning. */
#define LIST_WHERE " WHERE (? IS NULL OR role = ?) AND (? IS NULL OR LOCATE(?, email) > 0 OR LOCATE(?, name) > 0)"

/* role_of -- a users.role value; a row that holds no user role (edited by hand) gets the least one. */
static cx_role_t role_of(const char *id, const char *v)
{
    cx_role_t r = cx_role_parse(v);

    if (cx_role_is_user(r))
        return r;
    cx_log_warnx("users: user %s has the role \"%.32s\", which is not viewer, operator or admin; treated as viewer", id,
                 v != NULL ? v : "");
    return CX_ROLE_VIEWER;
}

static void fill(const cx_db_result_t *res, size_t i, cx_user_t *u)
{
    memset(u, 0, sizeof(*u));
    cx_db_copy(res, i, "id", u->id, sizeof(u->id));
    cx_db_copy(res, i, "provider", u->provider, sizeof(u->provider));
    cx_db_copy(res, i, "provider_subject", u->subject, sizeof(u->subject));
    cx_db_copy(res, i, "email", u->email, sizeof(u->email));
    cx_db_copy(res, i, "name", u->name, sizeof(u->name));
    u->role = role_of(u->id, cx_db_value(res, i, "role"));
    u->created_at = cx_db_time_ms(cx_db_value(res, i, "created_at"));
    u->last_login_at = cx_db_time_ms(cx_db_value(res, i, "last_login_at"));
}

/* first -- the end of a one-user query: its first row into u, CX_NOTFOUND when none; frees res. */
static int first(int rc, cx_db_result_t *res, cx_user_t *u)
{
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        fill(res, 0, u);
    cx_db_result_free(res);
    return rc;
}

int cx_db_user_login(const char *provider, const char *subject, const char *email, const char *name, cx_role_t new_role,
                     cx_user_t *out, int *created)
{
    char id[37];
    cx_db_result_t *res = NULL;
    int rc;

    cx_uuid_v7(id);
    cx_db_param_t p[] = {CX_DB_P_STR(id),     CX_DB_P_STR(provider), CX_DB_P_STR(subject),
                         CX_DB_P_TEXT(email), CX_DB_P_TEXT(name),    CX_DB_P_STR(cx_role_name(new_role))};
    rc = cx_db_exec("INSERT INTO users (id, provider, provider_subject, email, name, role, last_login_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, NOW(3)) "
                    "ON DUPLICATE KEY UPDATE email = VALUES(email), name = VALUES(name), last_login_at = NOW(3)",
                    p, CX_ARRAY_SIZE(p), NULL, NULL);
    if (rc != CX_OK)
        return rc;
    cx_db_param_t q[] = {CX_DB_P_STR(provider), CX_DB_P_STR(subject)};
    rc = cx_db_exec("SELECT " USER_COLS " FROM users WHERE provider = ? AND provider_subject = ?", q, CX_ARRAY_SIZE(q), &res, NULL);
    rc = first(rc, res, out);
    if (rc == CX_OK && created != NULL)
        *created = strcmp(out->id, id) == 0;
    return rc;
}

int cx_db_user_get(const char *id, cx_user_t *out)
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[] = {CX_DB_P_STR(id)};

    int rc = cx_db_exec("SELECT " USER_COLS " FROM users WHERE id = ?", p, 1, &res, NULL);

    return first(rc, res, out);
}

int cx_db_users_list(cx_role_t role, const char *search, int page, int size, cx_user_t **items, size_t *n, int64_t *total)
{
    const char *r = role != CX_ROLE_NONE ? cx_role_name(role) : NULL, *q = cx_db_text_or_null(search);
    cx_db_param_t p[] = {CX_DB_P_STR(r),
                         CX_DB_P_STR(r),
                         CX_DB_P_STR(q),
                         CX_DB_P_STR(q),
                         CX_DB_P_STR(q),
                         CX_DB_P_INT(size),
                         CX_DB_P_INT((long long)(page - 1) * size)};
    cx_db_result_t *res = NULL;
    int rc;

    *items = NULL;
    *n = 0;
    *total = 0;
    if ((rc = cx_db_exec("SELECT COUNT(*) AS n FROM users" LIST_WHERE, p, 5, &res, NULL)) != CX_OK)
        return rc;
    *total = cx_db_int(res, 0, "n", 0);
    cx_db_result_free(res);
    if ((rc = cx_db_exec("SELECT " USER_COLS " FROM users" LIST_WHERE " ORDER BY created_at, id LIMIT ? OFFSET ?", p,
                         CX_ARRAY_SIZE(p), &res, NULL)) != CX_OK)
        return rc;
    *items = cx_calloc(res->nrows + 1, sizeof(cx_user_t));
    for (size_t i = 0; i < res->nrows; i++)
        fill(res, i, &(*items)[i]);
    *n = res->nrows;
    cx_db_result_free(res);
    return CX_OK;
}

void cx_db_users_free(cx_user_t *items, size_t n)
{
    (void)n; /* a user owns no memory */
    free(items);
}

int cx_db_user_set_role(const char *id, cx_role_t role, cx_user_t *before, cx_user_t *after)
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    int rc;

    rc = cx_db_exec("SELECT " USER_COLS " FROM users WHERE id = ? FOR UPDATE", p, 1, &res, NULL);
    rc = first(rc, res, before);
    if (rc != CX_OK)
        return rc;
    *after = *before;
    if (before->role == role)
        return CX_OK;
    cx_db_param_t u[] = {CX_DB_P_STR(cx_role_name(role)), CX_DB_P_STR(id)};
    if ((rc = cx_db_exec("UPDATE users SET role = ?, role_changed_at = NOW(3) WHERE id = ?", u, 2, NULL, NULL)) != CX_OK)
        return rc;
    rc = cx_db_exec("SELECT " USER_COLS " FROM users WHERE id = ?", p, 1, &res, NULL);
    return first(rc, res, after);
}

int cx_db_roles_changed_since(const char *since, cx_role_change_t **items, size_t *n, char now[32])
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[] = {CX_DB_P_STR(since != NULL ? since : EPOCH)};
    int rc;

    *items = NULL;
    *n = 0;
    /* the derived table makes the clock come back even when nothing changed */
    rc = cx_db_exec(
        "SELECT c.now, u.id, u.role FROM (SELECT NOW(3) AS now) c LEFT JOIN users u ON u.role_changed_at >= ? - INTERVAL 5 SECOND",
        p, 1, &res, NULL);
    if (rc != CX_OK)
        return rc;
    cx_db_copy(res, 0, "now", now, 32);
    *items = cx_calloc(res->nrows + 1, sizeof(cx_role_change_t));
    for (size_t i = 0; i < res->nrows; i++) {
        cx_role_change_t *c = &(*items)[*n];
        if (cx_db_value(res, i, "id") == NULL)
            continue;
        cx_db_copy(res, i, "id", c->id, sizeof(c->id));
        c->role = role_of(c->id, cx_db_value(res, i, "role"));
        (*n)++;
    }
    cx_db_result_free(res);
    return CX_OK;
}
