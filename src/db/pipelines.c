/*
 * src/db/pipelines.c -- the pipelines and pipeline_versions tables: get, list (search, sort, paging),
 * create, update (conditional on the version), delete, and the version history.
 *
 * Every write is one transaction that also writes its audit_log row, so a change and its audit record
 * exist together or not at all. pipeline_versions holds one row per version (the current one included);
 * a pipeline inserted by hand without a version row (the benchmark harness seeds them so) gets its row
 * written just before its first update, and its history shows the current config meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/audit.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/pipelines.h"

#define TS(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%sZ')"

#define COLS                                                                                                                       \
    "id, name, description, config_yaml, version, created_by, updated_by, " TS("created_at") " AS created_at, " TS(                \
        "updated_at") " AS updated_at"

#define SQL_GET "SELECT " COLS " FROM pipelines WHERE id = ?"
#define SQL_GET_LOCK "SELECT " COLS " FROM pipelines WHERE id = ? FOR UPDATE"
#define SQL_INSERT                                                                                                                 \
    "INSERT INTO pipelines (id, name, description, config_yaml, version, created_by, updated_by, created_at, updated_at) "         \
    "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)"
#define SQL_UPDATE                                                                                                                 \
    "UPDATE pipelines SET name = COALESCE(?, name), description = COALESCE(?, description), "                                      \
    "config_yaml = COALESCE(?, config_yaml), version = version + 1, updated_by = ?, updated_at = CURRENT_TIMESTAMP(3) "            \
    "WHERE id = ? AND version = ?"
/* The pipeline as it is now becomes the row of its current version; created_by is the given actor, or
 * (NULL: a backfill) whoever last changed it. */
#define SQL_SNAPSHOT                                                                                                               \
    "INSERT INTO pipeline_versions (pipeline_id, version, name, description, config_yaml, created_by, created_at) "                \
    "SELECT id, version, name, description, config_yaml, COALESCE(?, updated_by, created_by), updated_at "                         \
    "FROM pipelines WHERE id = ?"
#define SQL_HAS_VERSION "SELECT 1 AS x FROM pipeline_versions WHERE pipeline_id = ? AND version = ?"
#define SQL_ACTIVE_RUN "SELECT id FROM pipeline_runs WHERE active_pipeline_id = ? LIMIT 1"
#define SQL_ACTIVE_RUN_LOCK "SELECT id FROM pipeline_runs WHERE active_pipeline_id = ? LIMIT 1 FOR UPDATE"
#define SQL_DEL_VERSIONS "DELETE FROM pipeline_versions WHERE pipeline_id = ?"
#define SQL_DEL_SCHEDULES "DELETE FROM schedules WHERE pipeline_id = ?"
#define SQL_DEL "DELETE FROM pipelines WHERE id = ?"
#define SQL_VERSIONS_COUNT "SELECT COUNT(*) AS n, COALESCE(SUM(version = ?), 0) AS cur FROM pipeline_versions WHERE pipeline_id = ?"
#define VCOLS "version, name, description, config_yaml, created_by, " TS("created_at") " AS created_at"
#define SQL_VERSIONS "SELECT " VCOLS " FROM pipeline_versions WHERE pipeline_id = ? ORDER BY version DESC LIMIT ? OFFSET ?"

/* ---- rows to JSON ---- */

static json_object *str_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

static json_object *str_len(const cx_db_result_t *res, size_t row, const char *col)
{
    for (unsigned c = 0; c < res->ncols; c++)
        if (strcmp(res->colnames[c], col) == 0)
            return res->rows[row][c] ? json_object_new_string_len(res->rows[row][c], (int)res->lens[row][c])
                                     : json_object_new_string("");
    return json_object_new_string("");
}

static int64_t int_of(const cx_db_result_t *res, size_t row, const char *col)
{
    const char *v = cx_db_value(res, row, col);
    return v != NULL ? strtoll(v, NULL, 10) : 0;
}

/* pipeline_json -- row i of a result with the COLS columns as a Pipeline. */
static json_object *pipeline_json(const cx_db_result_t *res, size_t i)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", str_or_null(cx_db_value(res, i, "id")));
    json_object_object_add(o, "name", str_len(res, i, "name"));
    json_object_object_add(o, "description", str_len(res, i, "description"));
    json_object_object_add(o, "config_yaml", str_len(res, i, "config_yaml"));
    json_object_object_add(o, "version", json_object_new_int64(int_of(res, i, "version")));
    json_object_object_add(o, "created_by", str_or_null(cx_db_value(res, i, "created_by")));
    json_object_object_add(o, "updated_by", str_or_null(cx_db_value(res, i, "updated_by")));
    json_object_object_add(o, "created_at", str_or_null(cx_db_value(res, i, "created_at")));
    json_object_object_add(o, "updated_at", str_or_null(cx_db_value(res, i, "updated_at")));
    return o;
}

/* fetch -- the Pipeline with this id (locked FOR UPDATE when lock) into *out; CX_NOTFOUND. */
static int fetch(const char *id, int lock, json_object **out)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_db_result_t *res;
    int rc = cx_db_exec(lock ? SQL_GET_LOCK : SQL_GET, p, 1, &res, NULL);

    *out = NULL;
    if (rc != CX_OK)
        return rc;
    if (res->nrows == 0)
        rc = CX_NOTFOUND;
    else
        *out = pipeline_json(res, 0);
    cx_db_result_free(res);
    return rc;
}

int cx_db_pipeline_get(const char *id, json_object **out)
{
    return fetch(id, 0, out);
}

/* ---- list ---- */

/* like_pattern -- "%s%" with the LIKE wildcards of s (and the escape character '!') escaped by '!'. */
static char *like_pattern(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *p = cx_malloc(2 * n + 3);
    p[o++] = '%';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' || s[i] == '_' || s[i] == '!')
            p[o++] = '!';
        p[o++] = s[i];
    }
    p[o++] = '%';
    p[o] = '\0';
    return p;
}

int cx_db_pipeline_list(const cx_pipeline_query_t *q, json_object **items, int64_t *total)
{
    /* ORDER BY columns come from this table only; id breaks ties so pages never overlap. The columns are
     * qualified: the select list has aliases created_at and updated_at (the formatted times). */
    static const char *const sort_cols[] = {
        [CX_PIPELINE_SORT_CREATED_AT] = "created_at",
        [CX_PIPELINE_SORT_UPDATED_AT] = "updated_at",
        [CX_PIPELINE_SORT_NAME] = "name",
    };
    /* The index that gives each order. Named because right after a bulk load (stale statistics) the
     * planner prefers a full scan and a filesort of every row, blobs included: 4x slower pages. */
    static const char *const sort_keys[] = {
        [CX_PIPELINE_SORT_CREATED_AT] = "ix_pipelines_created_at",
        [CX_PIPELINE_SORT_UPDATED_AT] = "ix_pipelines_updated_at",
        [CX_PIPELINE_SORT_NAME] = "uq_pipelines_name",
    };
    int search = q->search != NULL && q->search[0] != '\0';
    const char *where = search ? " WHERE name LIKE ? ESCAPE '!'" : "";
    const char *dir = q->desc ? "DESC" : "ASC";
    unsigned k = (unsigned)q->sort < CX_ARRAY_SIZE(sort_cols) ? (unsigned)q->sort : CX_PIPELINE_SORT_CREATED_AT;
    int64_t offset = (int64_t)(q->page - 1) * q->page_size;
    char *pattern = search ? like_pattern(q->search) : NULL;
    cx_db_param_t p[3];
    size_t np = 0;
    cx_db_result_t *res = NULL;
    char sql[1024];
    int rc;

    *items = NULL;
    *total = 0;
    if (search)
        p[np++] = CX_DB_P_STR(pattern);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n FROM pipelines%s", where);
    if ((rc = cx_db_exec(sql, p, np, &res, NULL)) != CX_OK)
        goto fail;
    *total = int_of(res, 0, "n");
    cx_db_result_free(res);
    res = NULL;

    *items = json_object_new_array();
    if (offset < *total) {
        p[np++] = CX_DB_P_INT(q->page_size);
        p[np++] = CX_DB_P_INT(offset);
        snprintf(
            sql, sizeof(sql),
            "SELECT %s FROM pipelines FORCE INDEX FOR ORDER BY (%s)%s ORDER BY pipelines.%s %s, pipelines.id %s LIMIT ? OFFSET ?",
            COLS, sort_keys[k], where, sort_cols[k], dir, dir);
        if ((rc = cx_db_exec(sql, p, np, &res, NULL)) != CX_OK)
            goto fail;
        for (size_t i = 0; i < res->nrows; i++)
            json_object_array_add(*items, pipeline_json(res, i));
        cx_db_result_free(res);
    }
    free(pattern);
    return CX_OK;

fail:
    free(pattern);
    json_object_put(*items);
    *items = NULL;
    return rc;
}

/* ---- writes ---- */

static void set_why(char *field, char *why, const char *f, const char *w)
{
    if (field != NULL)
        snprintf(field, 32, "%s", f);
    if (why != NULL)
        snprintf(why, 256, "%s", w);
}

/* name_conflict -- a duplicate key error on an insert or update of pipelines: the name is taken. */
static int name_conflict(char *field, char *why)
{
    if (strcmp(cx_db_conflict_key(), "uq_pipelines_name") == 0 || cx_db_conflict_key()[0] == '\0') {
        set_why(field, why, "name", "a pipeline with this name already exists");
        return CX_CONFLICT;
    }
    cx_log_errorx("pipelines: unexpected duplicate key %s", cx_db_conflict_key());
    return CX_ERR;
}

static int snapshot(const char *id, const char *actor)
{
    cx_db_param_t p[] = {CX_DB_P_STR(actor), CX_DB_P_STR(id)};
    return cx_db_exec(SQL_SNAPSHOT, p, 2, NULL, NULL);
}

/* finish -- commit when rc is CX_OK, else roll back; the first failure wins. */
static int finish(int rc)
{
    if (rc == CX_OK)
        return cx_db_commit();
    cx_db_rollback();
    return rc;
}

int cx_db_pipeline_create(const cx_pipeline_input_t *in, const cx_pipeline_actor_t *who, json_object **out, char *field, char *why)
{
    char id[37], at[40], when[32];
    json_object *after = NULL;
    int64_t now = cx_wall_ms();
    int rc;

    *out = NULL;
    cx_uuid(id);
    /* The creation time is set here, so the Pipeline is built from what was written: no read back. */
    cx_time_format(now / 1000, when);
    snprintf(at, sizeof(at), "%.10s %.8s.%03d", when, when + 11, (int)(now % 1000));
    cx_db_param_t p[] = {
        CX_DB_P_STR(id),
        CX_DB_P_STR(in->name),
        CX_DB_P_STR(in->description != NULL ? in->description : ""),
        CX_DB_P_STR(in->config_yaml),
        CX_DB_P_STR(who->actor),
        CX_DB_P_STR(who->actor),
        CX_DB_P_STR(at),
        CX_DB_P_STR(at),
    };
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    rc = cx_db_exec(SQL_INSERT, p, CX_ARRAY_SIZE(p), NULL, NULL);
    if (rc == CX_CONFLICT)
        rc = name_conflict(field, why);
    /* No pipeline_versions row yet: version 1 is the row itself, and the history shows it from there
     * (versions() reads a never-updated pipeline as its only version); the first update writes it
     * before the change. One round trip less per create. */
    if (rc == CX_OK) {
        after = json_object_new_object();
        json_object_object_add(after, "id", json_object_new_string(id));
        json_object_object_add(after, "name", json_object_new_string(in->name));
        json_object_object_add(after, "description", json_object_new_string(in->description != NULL ? in->description : ""));
        json_object_object_add(after, "config_yaml", json_object_new_string(in->config_yaml));
        json_object_object_add(after, "version", json_object_new_int64(1));
        json_object_object_add(after, "created_by", str_or_null(who->actor));
        json_object_object_add(after, "updated_by", str_or_null(who->actor));
        json_object_object_add(after, "created_at", json_object_new_string(when));
        json_object_object_add(after, "updated_at", json_object_new_string(when));
        rc = cx_audit_write(who->actor, "pipeline_create", "pipeline", id, who->request_id, NULL, after);
    }
    if ((rc = finish(rc)) != CX_OK) {
        json_object_put(after);
        return rc;
    }
    *out = after;
    return CX_OK;
}

/* same -- the given field value equals the current one (a field not given is unchanged). */
static int same(const char *given, json_object *cur, const char *key)
{
    json_object *v;
    if (given == NULL)
        return 1;
    if (!json_object_object_get_ex(cur, key, &v))
        return 0;
    return strlen(given) == (size_t)json_object_get_string_len(v) && strcmp(given, json_object_get_string(v)) == 0;
}

int cx_db_pipeline_update(const char *id, const cx_pipeline_input_t *in, const cx_pipeline_actor_t *who, json_object **out,
                          char *field, char *why)
{
    json_object *before = NULL, *after = NULL;
    int64_t version;
    uint64_t affected = 0;
    int rc;

    *out = NULL;
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = fetch(id, 1, &before)) != CX_OK)
        goto done;
    version = json_object_get_int64(json_object_object_get(before, "version"));
    if (in->version > 0 && in->version != version) {
        char w[256];
        snprintf(w, sizeof(w), "the pipeline is at version %lld, not %lld", (long long)version, (long long)in->version);
        set_why(field, why, "version", w);
        rc = CX_CONFLICT;
        goto done;
    }
    if (same(in->name, before, "name") && same(in->description, before, "description") &&
        same(in->config_yaml, before, "config_yaml")) {
        /* Nothing changes: no new version, no audit row. */
        after = json_object_get(before);
        goto done;
    }
    /* A pipeline inserted without its version row gets it now, so the history keeps every config. */
    {
        cx_db_param_t hp[] = {CX_DB_P_STR(id), CX_DB_P_INT(version)};
        cx_db_result_t *res;
        if ((rc = cx_db_exec(SQL_HAS_VERSION, hp, 2, &res, NULL)) != CX_OK)
            goto done;
        size_t n = res->nrows;
        cx_db_result_free(res);
        if (n == 0 && (rc = snapshot(id, NULL)) != CX_OK)
            goto done;
    }
    {
        cx_db_param_t p[] = {
            CX_DB_P_STR(in->name), CX_DB_P_STR(in->description), CX_DB_P_STR(in->config_yaml), CX_DB_P_STR(who->actor),
            CX_DB_P_STR(id),       CX_DB_P_INT(version),
        };
        rc = cx_db_exec(SQL_UPDATE, p, CX_ARRAY_SIZE(p), NULL, &affected);
    }
    if (rc == CX_CONFLICT) {
        rc = name_conflict(field, why);
        goto done;
    }
    if (rc != CX_OK)
        goto done;
    if (affected != 1) { /* cannot happen under the row lock; kept as the guard of the version check */
        set_why(field, why, "version", "the pipeline was changed meanwhile");
        rc = CX_CONFLICT;
        goto done;
    }
    if ((rc = snapshot(id, who->actor)) != CX_OK)
        goto done;
    if ((rc = fetch(id, 0, &after)) != CX_OK)
        goto done;
    rc = cx_audit_write(who->actor, "pipeline_update", "pipeline", id, who->request_id, before, after);
done:
    json_object_put(before);
    if ((rc = finish(rc)) != CX_OK) {
        json_object_put(after);
        return rc;
    }
    *out = after;
    return CX_OK;
}

int cx_db_pipeline_delete(const char *id, int refuse_active, const cx_pipeline_actor_t *who)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    json_object *before = NULL;
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = fetch(id, 1, &before)) != CX_OK)
        goto done;
    if (refuse_active) {
        /* Locks the key in the unique index of active runs (a gap lock when there is none), so a start
         * racing this delete waits for it. */
        cx_db_result_t *res;
        if ((rc = cx_db_exec(SQL_ACTIVE_RUN_LOCK, p, 1, &res, NULL)) != CX_OK)
            goto done;
        if (res->nrows > 0)
            rc = CX_STATE;
        cx_db_result_free(res);
        if (rc != CX_OK)
            goto done;
    }
    if ((rc = cx_db_exec(SQL_DEL_VERSIONS, p, 1, NULL, NULL)) != CX_OK)
        goto done;
    if ((rc = cx_db_exec(SQL_DEL_SCHEDULES, p, 1, NULL, NULL)) != CX_OK)
        goto done;
    if ((rc = cx_db_exec(SQL_DEL, p, 1, NULL, NULL)) != CX_OK)
        goto done;
    rc = cx_audit_write(who->actor, "pipeline_delete", "pipeline", id, who->request_id, before, NULL);
done:
    json_object_put(before);
    return finish(rc);
}

int cx_db_pipeline_has_active_run(const char *id)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_db_result_t *res;
    int rc = cx_db_exec(SQL_ACTIVE_RUN, p, 1, &res, NULL);
    if (rc != CX_OK)
        return rc;
    rc = res->nrows > 0;
    cx_db_result_free(res);
    return rc;
}

/* ---- versions ---- */

/* version_of -- a version entry from a Pipeline (its current version, when it has no version row). */
static json_object *version_of(json_object *pl)
{
    static const char *const keys[] = {"version", "name", "description", "config_yaml"};
    json_object *o = json_object_new_object(), *v;
    for (size_t i = 0; i < CX_ARRAY_SIZE(keys); i++)
        json_object_object_add(o, keys[i], json_object_get(json_object_object_get(pl, keys[i])));
    v = json_object_object_get(pl, "updated_by");
    if (v == NULL)
        v = json_object_object_get(pl, "created_by");
    json_object_object_add(o, "created_by", json_object_get(v));
    json_object_object_add(o, "created_at", json_object_get(json_object_object_get(pl, "updated_at")));
    return o;
}

int cx_db_pipeline_versions(const char *id, int page, int page_size, json_object **items, int64_t *total)
{
    json_object *pl = NULL;
    cx_db_result_t *res = NULL;
    int64_t version, offset, limit;
    int rc, missing = 0;

    *items = NULL;
    *total = 0;
    if ((rc = fetch(id, 0, &pl)) != CX_OK)
        return rc;
    version = json_object_get_int64(json_object_object_get(pl, "version"));
    {
        cx_db_param_t p[] = {CX_DB_P_INT(version), CX_DB_P_STR(id)};
        if ((rc = cx_db_exec(SQL_VERSIONS_COUNT, p, 2, &res, NULL)) != CX_OK)
            goto fail;
        *total = int_of(res, 0, "n");
        missing = int_of(res, 0, "cur") == 0;
        cx_db_result_free(res);
        res = NULL;
    }
    /* Without a row for the current version, the current config is the newest entry, in front of
     * the rows. */
    *total += missing;
    *items = json_object_new_array();
    offset = (int64_t)(page - 1) * page_size;
    limit = page_size;
    if (missing) {
        if (offset == 0 && limit > 0) {
            json_object_array_add(*items, version_of(pl));
            limit--;
        } else {
            offset--;
        }
    }
    if (limit > 0 && offset < *total - missing) {
        cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(limit), CX_DB_P_INT(offset)};
        if ((rc = cx_db_exec(SQL_VERSIONS, p, 3, &res, NULL)) != CX_OK)
            goto fail;
        for (size_t i = 0; i < res->nrows; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "version", json_object_new_int64(int_of(res, i, "version")));
            json_object_object_add(o, "name", str_or_null(cx_db_value(res, i, "name")));
            json_object_object_add(o, "description", str_len(res, i, "description"));
            json_object_object_add(o, "config_yaml", str_len(res, i, "config_yaml"));
            json_object_object_add(o, "created_by", str_or_null(cx_db_value(res, i, "created_by")));
            json_object_object_add(o, "created_at", str_or_null(cx_db_value(res, i, "created_at")));
            json_object_array_add(*items, o);
        }
        cx_db_result_free(res);
    }
    json_object_put(pl);
    return CX_OK;

fail:
    json_object_put(pl);
    json_object_put(*items);
    *items = NULL;
    return rc;
}
