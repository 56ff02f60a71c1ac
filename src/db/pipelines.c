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
#include "conduix/commands.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/pipelines.h"
#include "conduix/shapes.h"
#include "conduix/shm.h"

#define COLS                                                                                                                       \
    "pipelines.id, pipelines.name, pipelines.description, pipelines.config_yaml, pipelines.version, pipelines.created_by, "        \
    "pipelines.updated_by, pipelines.created_at, pipelines.updated_at"
/* The same for a list: a config over CX_PIPELINE_LIST_YAML_MAX bytes is left out, and never read into
 * this process (a page of 100 one-megabyte configs would be 100 MB here, and again in the answer). */
#define LIST_YAML(t)                                                                                                               \
    "IF(LENGTH(" t ".config_yaml) <= " CX_PIPELINE_LIST_YAML_MAX_S ", " t ".config_yaml, NULL) AS config_yaml, "                   \
    "LENGTH(" t ".config_yaml) AS config_size"
#define LIST_COLS                                                                                                                  \
    "pipelines.id, pipelines.name, pipelines.description, " LIST_YAML(                                                             \
        "pipelines") ", pipelines.version, pipelines.created_by, "                                                                 \
                     "pipelines.updated_by, pipelines.created_at, pipelines.updated_at"
/* The status of a pipeline is its current run's: the active one, found through the unique key on
 * pipeline_runs.active_pipeline_id (one eq_ref lookup a row, in the same statement). */
#define STATUS_COL "ar.status AS run_status"
#define STATUS_JOIN " LEFT JOIN pipeline_runs ar ON ar.active_pipeline_id = pipelines.id"

#define SQL_GET "SELECT " COLS ", " STATUS_COL " FROM pipelines" STATUS_JOIN " WHERE pipelines.id = ?"
#define SQL_GET_IN "SELECT " COLS ", " STATUS_COL " FROM pipelines" STATUS_JOIN " WHERE pipelines.id IN ("
#define SQL_GET_LOCK "SELECT " COLS " FROM pipelines WHERE id = ? FOR UPDATE"
#define SQL_INSERT                                                                                                                 \
    "INSERT INTO pipelines (id, name, description, config_yaml, version, created_by, updated_by, created_at, updated_at) "         \
    "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)"
#define SQL_INSERT_NPARAMS 8
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
#define SQL_ACTIVE_RUN_LOCK "SELECT id FROM pipeline_runs WHERE active_pipeline_id = ? LIMIT 1 FOR UPDATE"
#define SQL_DEL_VERSIONS "DELETE FROM pipeline_versions WHERE pipeline_id = ?"
#define SQL_DEL_SCHEDULES "DELETE FROM schedules WHERE pipeline_id = ?"
#define SQL_DEL "DELETE FROM pipelines WHERE id = ?"
#define SQL_VERSIONS_COUNT "SELECT COUNT(*) AS n, COALESCE(SUM(version = ?), 0) AS cur FROM pipeline_versions WHERE pipeline_id = ?"
#define VCOLS "version, name, description, " LIST_YAML("pipeline_versions") ", created_by, created_at"
#define SQL_VERSIONS "SELECT " VCOLS " FROM pipeline_versions WHERE pipeline_id = ? ORDER BY version DESC LIMIT ? OFFSET ?"

/* ---- rows to structs ---- */

void cx_pipeline_free(cx_pipeline_t *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p->description);
    free(p->config_yaml);
    free(p->created_by);
    free(p->updated_by);
    memset(p, 0, sizeof(*p));
}

void cx_db_pipelines_free(cx_pipeline_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cx_pipeline_free(&v[i]);
    free(v);
}

void cx_db_pipeline_versions_free(cx_pipeline_version_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].description);
        free(v[i].config_yaml);
        free(v[i].created_by);
    }
    free(v);
}

/* The columns of a pipeline in a result, by index (resolved once per result, not per row and field). */
typedef struct cols {
    int id, name, description, config_yaml, config_size, version, created_by, updated_by, created_at, updated_at, run_status;
} cols_t;

static void cols_of(const cx_db_result_t *res, cols_t *c)
{
    c->id = cx_db_col(res, "id");
    c->name = cx_db_col(res, "name");
    c->description = cx_db_col(res, "description");
    c->config_yaml = cx_db_col(res, "config_yaml");
    c->config_size = cx_db_col(res, "config_size");
    c->version = cx_db_col(res, "version");
    c->created_by = cx_db_col(res, "created_by");
    c->updated_by = cx_db_col(res, "updated_by");
    c->created_at = cx_db_col(res, "created_at");
    c->updated_at = cx_db_col(res, "updated_at");
    c->run_status = cx_db_col(res, "run_status");
}

/* text -- a text column taken out of the result; "" for NULL. */
static char *text(cx_db_result_t *res, size_t i, const char *col)
{
    char *v = cx_db_take(res, i, col);
    return v != NULL ? v : cx_strdup("");
}

static char *text_at(cx_db_result_t *res, size_t i, int col)
{
    char *v = cx_db_take_at(res, i, col);
    return v != NULL ? v : cx_strdup("");
}

/* list_yaml -- the config of row i: "" for NULL, unless the row is of a list (LIST_YAML), where NULL
 * means left out and *size has its length. */
static void list_yaml(cx_db_result_t *res, size_t i, char **yaml, int64_t *size)
{
    int listed = cx_db_value(res, i, "config_size") != NULL;

    *size = 0;
    *yaml = cx_db_take(res, i, "config_yaml");
    if (*yaml == NULL && listed)
        *size = cx_db_int(res, i, "config_size", 1);
    else if (*yaml == NULL)
        *yaml = cx_strdup("");
}

/* fill -- row i of a result with the COLS (or LIST_COLS) columns (and run_status, when selected). */
static void fill(cx_db_result_t *res, size_t i, const cols_t *c, cx_pipeline_t *p)
{
    const char *st = cx_db_value_at(res, i, c->run_status), *v;

    memset(p, 0, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", (v = cx_db_value_at(res, i, c->id)) != NULL ? v : "");
    p->name = text_at(res, i, c->name);
    p->description = text_at(res, i, c->description);
    p->config_yaml = cx_db_take_at(res, i, c->config_yaml);
    if (p->config_yaml == NULL && cx_db_value_at(res, i, c->config_size) != NULL) /* a list left it out */
        p->config_size = strtoll(cx_db_value_at(res, i, c->config_size), NULL, 10);
    else if (p->config_yaml == NULL)
        p->config_yaml = cx_strdup("");
    p->version = (v = cx_db_value_at(res, i, c->version)) != NULL ? strtoll(v, NULL, 10) : 0;
    p->created_by = cx_db_take_at(res, i, c->created_by);
    p->updated_by = cx_db_take_at(res, i, c->updated_by);
    p->created_at = cx_db_time_ms(cx_db_value_at(res, i, c->created_at));
    p->updated_at = cx_db_time_ms(cx_db_value_at(res, i, c->updated_at));
    p->status = CX_RUN_STOPPED;
    if (st != NULL && (cx_run_status_parse(st, &p->status) != CX_OK || !cx_run_status_active(p->status))) {
        cx_log_warnx("pipeline %s: its active run has the status %.32s", p->id, st);
        p->status = CX_RUN_STOPPED;
    }
}

/* fetch -- the pipeline with this id into *out: with its status, or locked FOR UPDATE (then without
 * it, which belongs to the runs: status stopped); CX_NOTFOUND. */
static int fetch(const char *id, int lock, cx_pipeline_t *out)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_db_result_t *res;
    int rc = cx_db_exec(lock ? SQL_GET_LOCK : SQL_GET, p, 1, &res, NULL);

    memset(out, 0, sizeof(*out));
    if (rc != CX_OK)
        return rc;
    if (res->nrows == 0) {
        rc = CX_NOTFOUND;
    } else {
        cols_t c;
        cols_of(res, &c);
        fill(res, 0, &c, out);
    }
    cx_db_result_free(res);
    return rc;
}

int cx_db_pipeline_get(const char *id, cx_pipeline_t *out)
{
    return fetch(id, 0, out);
}

int cx_db_pipelines_get_many(const char *const *ids, size_t n, cx_pipeline_t *out, int *rc)
{
    size_t k = 2, i;
    cx_db_param_t *p;
    cx_db_result_t *res;
    char *sql, *o;
    int r;

    if (n == 1) {
        rc[0] = fetch(ids[0], 0, &out[0]);
        return rc[0] == CX_OK || rc[0] == CX_NOTFOUND ? CX_OK : rc[0];
    }
    /* IN lists of 2, 4, 8 … places (the last id repeated), so that a few prepared statements serve */
    while (k < n)
        k *= 2;
    p = cx_calloc(k, sizeof(*p));
    sql = cx_malloc(sizeof(SQL_GET_IN) + 3 * k);
    o = sql + sprintf(sql, "%s", SQL_GET_IN);
    for (i = 0; i < k; i++) {
        p[i] = CX_DB_P_STR(ids[i < n ? i : n - 1]);
        o += sprintf(o, i == 0 ? "?" : ",?");
    }
    memcpy(o, ")", 2);
    r = cx_db_exec(sql, p, k, &res, NULL);
    free(sql);
    free(p);
    for (i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        rc[i] = r == CX_OK ? CX_NOTFOUND : r;
    }
    if (r != CX_OK)
        return r;
    cols_t c;
    cols_of(res, &c);
    for (size_t row = 0; row < res->nrows; row++) {
        const char *id = cx_db_value_at(res, row, c.id);
        cx_pipeline_t pl;
        int first = -1;
        for (i = 0; i < n; i++)
            if (rc[i] == CX_NOTFOUND && id != NULL && strcmp(ids[i], id) == 0) {
                if (first < 0) {
                    fill(res, row, &c, &pl);
                    out[i] = pl;
                    first = (int)i;
                } else { /* the same id asked twice: a copy of the first */
                    out[i] = pl;
                    out[i].name = cx_strdup(pl.name);
                    out[i].description = cx_strdup(pl.description);
                    out[i].config_yaml = cx_strdup(pl.config_yaml);
                    out[i].created_by = cx_strdup(pl.created_by);
                    out[i].updated_by = cx_strdup(pl.updated_by);
                }
                rc[i] = CX_OK;
            }
    }
    cx_db_result_free(res);
    return CX_OK;
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

/* ---- the total of an unfiltered list ----
 *
 * COUNT(*) of InnoDB reads every row of an index: on every page of the list it was the largest part of
 * MariaDB's work, and it grows with the table. The instance keeps the count in the shared segment,
 * with the generation of pipelines it was made at; every create and delete made here moves the
 * generation after it ended (committed or not), so the next list counts again. Changes made
 * elsewhere (another replica, rows inserted by hand) are seen within TOTAL_MAX_AGE_MS, when the
 * count is made again anyway. */
#define TOTAL_MAX_AGE_MS 1000

static void changed(void)
{
    if (cx_shm != NULL)
        __atomic_fetch_add(&cx_shm->pipelines_gen, 1, __ATOMIC_ACQ_REL);
}

/* total_known -- the count of the instance when it is of the current generation and fresh; its
 * generation into *gen either way (to store a count made now with). */
static int total_known(int64_t *total, uint64_t *gen)
{
    int ok;

    if (cx_shm == NULL)
        return 0;
    *gen = __atomic_load_n(&cx_shm->pipelines_gen, __ATOMIC_ACQUIRE);
    cx_shm_lock(&cx_shm->pipelines_total.lock);
    ok = cx_shm->pipelines_total.at_ms > 0 && cx_shm->pipelines_total.gen == *gen &&
         cx_now_ms() - cx_shm->pipelines_total.at_ms < TOTAL_MAX_AGE_MS;
    if (ok)
        *total = cx_shm->pipelines_total.count;
    cx_shm_unlock(&cx_shm->pipelines_total.lock);
    return ok;
}

/* total_store -- a count made after reading generation gen (a change since then makes it stale). */
static void total_store(int64_t total, uint64_t gen, int64_t at_ms)
{
    if (cx_shm == NULL)
        return;
    cx_shm_lock(&cx_shm->pipelines_total.lock);
    cx_shm->pipelines_total.gen = gen;
    cx_shm->pipelines_total.count = total;
    cx_shm->pipelines_total.at_ms = at_ms;
    cx_shm_unlock(&cx_shm->pipelines_total.lock);
}

/* rows -- the result's rows as an array of pipelines. */
static void rows(cx_db_result_t *res, cx_pipeline_t **items, size_t *n)
{
    cols_t c;

    cols_of(res, &c);
    *items = res->nrows > 0 ? cx_calloc(res->nrows, sizeof(**items)) : NULL;
    for (size_t i = 0; i < res->nrows; i++)
        fill(res, i, &c, &(*items)[i]);
    *n = res->nrows;
}

int cx_db_pipeline_list(const cx_pipeline_query_t *q, cx_pipeline_t **items, size_t *n, int64_t *total)
{
    /* ORDER BY columns come from this table only; id breaks ties so pages never overlap. */
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
    const char *where = search ? " WHERE pipelines.name LIKE ? ESCAPE '!'" : "";
    const char *dir = q->desc ? "DESC" : "ASC";
    unsigned k = (unsigned)q->sort < CX_ARRAY_SIZE(sort_cols) ? (unsigned)q->sort : CX_PIPELINE_SORT_CREATED_AT;
    int64_t offset = (int64_t)(q->page - 1) * q->page_size;
    char *pattern = search ? like_pattern(q->search) : NULL;
    cx_db_param_t p[3];
    size_t np = 0;
    cx_db_result_t *res = NULL;
    char sql[1024];
    uint64_t gen = 0;
    int rc = CX_OK;

    *items = NULL;
    *n = 0;
    *total = 0;
    if (search)
        p[np++] = CX_DB_P_STR(pattern);
    if (search || !total_known(total, &gen)) {
        int64_t at = cx_now_ms();
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n FROM pipelines%s", where);
        if ((rc = cx_db_exec(sql, p, np, &res, NULL)) != CX_OK)
            goto out;
        *total = cx_db_int(res, 0, "n", 0);
        cx_db_result_free(res);
        res = NULL;
        if (!search)
            total_store(*total, gen, at);
    }
    if (offset < *total) {
        p[np++] = CX_DB_P_INT(q->page_size);
        p[np++] = CX_DB_P_INT(offset);
        snprintf(sql, sizeof(sql),
                 "SELECT %s, %s FROM pipelines FORCE INDEX FOR ORDER BY (%s)%s%s ORDER BY pipelines.%s %s, pipelines.id %s "
                 "LIMIT ? OFFSET ?",
                 LIST_COLS, STATUS_COL, sort_keys[k], STATUS_JOIN, where, sort_cols[k], dir, dir);
        if ((rc = cx_db_exec(sql, p, np, &res, NULL)) != CX_OK)
            goto out;
        rows(res, items, n);
        cx_db_result_free(res);
    }
out:
    free(pattern);
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

/* audit -- the audit row of a change: the pipeline before and after (NULL for none), as stored
 * definitions (without the status, which is the runs'). */
static int audit(const char *action, const char *id, const cx_pipeline_actor_t *who, const cx_pipeline_t *before,
                 const cx_pipeline_t *after)
{
    json_object *b = before != NULL ? cx_pipeline_json(before, 0) : NULL, *a = after != NULL ? cx_pipeline_json(after, 0) : NULL;
    int rc = cx_audit_write(who->actor, action, "pipeline", id, who->request_id, b, a);
    json_object_put(b);
    json_object_put(a);
    return rc;
}

/* new_row -- the pipeline a create makes (the creation time is set here, so the answer is built from what
 * is written: no read back), its INSERT parameters (p[8], at[32] holds the time text) and its audit row. */
static int new_row(const cx_pipeline_input_t *in, const cx_pipeline_actor_t *who, cx_pipeline_t *pl, cx_db_param_t *p, char *at,
                   cx_audit_row_t *row, cx_db_stmt_t *audit_st)
{
    json_object *after;
    int rc;

    memset(pl, 0, sizeof(*pl));
    cx_uuid_v7(pl->id);
    pl->name = cx_strdup(in->name);
    pl->description = cx_strdup(in->description != NULL ? in->description : "");
    pl->config_yaml = cx_strdup(in->config_yaml);
    pl->version = 1;
    pl->created_by = cx_strdup(who->actor);
    pl->updated_by = cx_strdup(who->actor);
    pl->created_at = pl->updated_at = cx_wall_ms();
    pl->status = CX_RUN_STOPPED;
    cx_db_time_text(pl->created_at, at);
    p[0] = CX_DB_P_STR(pl->id);
    p[1] = CX_DB_P_STR(pl->name);
    p[2] = CX_DB_P_STR(pl->description);
    p[3] = CX_DB_P_STR(pl->config_yaml);
    p[4] = CX_DB_P_STR(pl->created_by);
    p[5] = CX_DB_P_STR(pl->updated_by);
    p[6] = CX_DB_P_STR(at);
    p[7] = CX_DB_P_STR(at);
    after = cx_pipeline_json(pl, 0);
    rc = cx_audit_row(row, who->actor, "pipeline_create", "pipeline", pl->id, who->request_id, NULL, after, audit_st);
    json_object_put(after);
    return rc;
}

int cx_db_pipeline_create(const cx_pipeline_input_t *in, const cx_pipeline_actor_t *who, cx_pipeline_t *out, char *field, char *why)
{
    cx_pipeline_t pl;
    cx_db_param_t p[SQL_INSERT_NPARAMS];
    char at[32];
    cx_audit_row_t row;
    cx_db_stmt_t st[2] = {{.sql = SQL_INSERT, .params = p, .nparams = SQL_INSERT_NPARAMS}};
    int rc;

    memset(out, 0, sizeof(*out));
    /* The row and its audit row, one transaction in one round trip (cx_db_batch). No pipeline_versions
     * row yet: version 1 is the row itself, and the history shows it from there (versions() reads a
     * never-updated pipeline as its only version); the first update writes it before the change. */
    if ((rc = new_row(in, who, &pl, p, at, &row, &st[1])) == CX_OK)
        rc = cx_db_batch(st, 2);
    cx_audit_row_free(&row);
    changed();
    if (rc == CX_CONFLICT)
        rc = name_conflict(field, why);
    if (rc != CX_OK) {
        cx_pipeline_free(&pl);
        return rc;
    }
    *out = pl;
    return CX_OK;
}

/* values -- "INSERT … VALUES (?,…)" of one row, repeated for n rows. */
static char *values(const char *insert_one, size_t n)
{
    const char *v = strstr(insert_one, "VALUES ") + 7;
    size_t head = (size_t)(v - insert_one), row = strlen(v), len = head + n * (row + 1);
    char *sql = cx_malloc(len + 1), *o = sql;

    memcpy(o, insert_one, head);
    o += head;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *o++ = ',';
        memcpy(o, v, row);
        o += row;
    }
    *o = '\0';
    return sql;
}

void cx_db_pipelines_create_many(cx_pipeline_create_t *c, size_t n)
{
    cx_db_param_t *p, *ap;
    cx_audit_row_t *arows;
    char(*at)[32];
    cx_db_stmt_t st[2], one;
    int rc = CX_OK;

    if (n == 1) {
        c[0].rc = cx_db_pipeline_create(&c[0].in, &c[0].who, &c[0].out, c[0].field, c[0].why);
        return;
    }
    if (n == 0)
        return;
    p = cx_calloc(n * SQL_INSERT_NPARAMS, sizeof(*p));
    ap = cx_calloc(n * CX_ARRAY_SIZE(arows[0].p), sizeof(*ap));
    arows = cx_calloc(n, sizeof(*arows));
    at = cx_calloc(n, sizeof(*at));
    for (size_t i = 0; i < n && rc == CX_OK; i++) {
        rc = new_row(&c[i].in, &c[i].who, &c[i].out, p + i * SQL_INSERT_NPARAMS, at[i], &arows[i], &one);
        memcpy(ap + i * one.nparams, one.params, one.nparams * sizeof(*ap));
    }
    if (rc == CX_OK) {
        /* all the rows in one transaction, each table's in one multi-row INSERT */
        st[0] = (cx_db_stmt_t){.sql = values(SQL_INSERT, n), .params = p, .nparams = n * SQL_INSERT_NPARAMS};
        st[1] = (cx_db_stmt_t){.sql = values(one.sql, n), .params = ap, .nparams = n * one.nparams};
        rc = cx_db_batch(st, 2);
        changed();
        free((char *)st[0].sql);
        free((char *)st[1].sql);
    }
    for (size_t i = 0; i < n; i++)
        cx_audit_row_free(&arows[i]);
    free(p);
    free(ap);
    free(arows);
    free(at);
    if (rc == CX_CONFLICT)
        cx_log_debug("pipelines: a name of a group of %zu creates is taken; each is made on its own", n);
    for (size_t i = 0; i < n; i++) {
        if (rc == CX_CONFLICT || rc == CX_INVALID) {
            /* a name taken, perhaps by another create of the group: each on its own, for its own answer */
            cx_pipeline_free(&c[i].out);
            c[i].rc = cx_db_pipeline_create(&c[i].in, &c[i].who, &c[i].out, c[i].field, c[i].why);
        } else if ((c[i].rc = rc) != CX_OK) {
            cx_pipeline_free(&c[i].out);
        }
    }
}

/* same -- the given field value equals the current one (a field not given is unchanged). */
static int same(const char *given, const char *cur)
{
    return given == NULL || strcmp(given, cur) == 0;
}

int cx_db_pipeline_update(const char *id, const cx_pipeline_input_t *in, const cx_pipeline_actor_t *who, cx_pipeline_t *out,
                          char *field, char *why)
{
    cx_pipeline_t before = {0}, after = {0};
    uint64_t affected = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = fetch(id, 1, &before)) != CX_OK)
        goto done;
    if (in->version > 0 && in->version != before.version) {
        char w[256];
        snprintf(w, sizeof(w), "the pipeline is at version %lld, not %lld", (long long)before.version, (long long)in->version);
        set_why(field, why, "version", w);
        rc = CX_CONFLICT;
        goto done;
    }
    if (same(in->name, before.name) && same(in->description, before.description) && same(in->config_yaml, before.config_yaml)) {
        /* Nothing changes: no new version, no audit row; the pipeline as it is, with its status. */
        rc = fetch(id, 0, &after);
        goto done;
    }
    /* a fire written ahead of its time carries the config it read: undone, it fires at its time with this one */
    if ((rc = cx_db_held_unhold(CX_HELD_PIPELINE, id, 1, who->actor, who->request_id, "its pipeline was changed", NULL)) != CX_OK)
        goto done;
    /* A pipeline inserted without its version row gets it now, so the history keeps every config. */
    {
        cx_db_param_t hp[] = {CX_DB_P_STR(id), CX_DB_P_INT(before.version)};
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
            CX_DB_P_STR(id),       CX_DB_P_INT(before.version),
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
    rc = audit("pipeline_update", id, who, &before, &after);
done:
    cx_pipeline_free(&before);
    if ((rc = cx_db_end(rc)) != CX_OK) {
        cx_pipeline_free(&after);
        return rc;
    }
    *out = after;
    return CX_OK;
}

int cx_db_pipeline_delete(const char *id, int refuse_active, const cx_pipeline_actor_t *who)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_pipeline_t before = {0};
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = fetch(id, 1, &before)) != CX_OK)
        goto done;
    /* a fire written ahead of its time has not started: it goes with its schedule */
    if ((rc = cx_db_held_unhold(CX_HELD_PIPELINE, id, 0, who->actor, who->request_id, "its pipeline was deleted", NULL)) != CX_OK)
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
    rc = audit("pipeline_delete", id, who, &before, NULL);
done:
    cx_pipeline_free(&before);
    rc = cx_db_end(rc);
    changed();
    return rc;
}

/* ---- versions ---- */

/* version_of -- a version entry from a pipeline (its current version, when it has no version row). */
static void version_of(const cx_pipeline_t *pl, cx_pipeline_version_t *v)
{
    v->version = pl->version;
    v->name = cx_strdup(pl->name);
    v->description = cx_strdup(pl->description);
    if (strlen(pl->config_yaml) > CX_PIPELINE_LIST_YAML_MAX) /* as LIST_YAML leaves it out */
        v->config_size = (int64_t)strlen(pl->config_yaml);
    else
        v->config_yaml = cx_strdup(pl->config_yaml);
    v->created_by = cx_strdup(pl->updated_by != NULL ? pl->updated_by : pl->created_by);
    v->created_at = pl->updated_at;
}

int cx_db_pipeline_versions(const char *id, int page, int page_size, cx_pipeline_version_t **items, size_t *n, int64_t *total)
{
    cx_pipeline_t pl = {0};
    cx_db_result_t *res = NULL;
    int64_t offset, limit;
    int rc, missing = 0;

    *items = NULL;
    *n = 0;
    *total = 0;
    if ((rc = fetch(id, 0, &pl)) != CX_OK)
        return rc;
    {
        cx_db_param_t p[] = {CX_DB_P_INT(pl.version), CX_DB_P_STR(id)};
        if ((rc = cx_db_exec(SQL_VERSIONS_COUNT, p, 2, &res, NULL)) != CX_OK)
            goto out;
        *total = cx_db_int(res, 0, "n", 0);
        missing = cx_db_int(res, 0, "cur", 0) == 0;
        cx_db_result_free(res);
        res = NULL;
    }
    /* Without a row for the current version, the current config is the newest entry, in front of
     * the rows. */
    *total += missing;
    offset = (int64_t)(page - 1) * page_size;
    limit = page_size;
    *items = cx_calloc((size_t)page_size, sizeof(**items));
    if (missing) {
        if (offset == 0 && limit > 0) {
            version_of(&pl, &(*items)[(*n)++]);
            limit--;
        } else {
            offset--;
        }
    }
    if (limit > 0 && offset < *total - missing) {
        cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(limit), CX_DB_P_INT(offset)};
        if ((rc = cx_db_exec(SQL_VERSIONS, p, 3, &res, NULL)) != CX_OK)
            goto out;
        for (size_t i = 0; i < res->nrows && *n < (size_t)page_size; i++) {
            cx_pipeline_version_t *v = &(*items)[(*n)++];
            v->version = cx_db_int(res, i, "version", 0);
            v->name = cx_db_take(res, i, "name");
            v->description = text(res, i, "description");
            list_yaml(res, i, &v->config_yaml, &v->config_size);
            v->created_by = cx_db_take(res, i, "created_by");
            v->created_at = cx_db_time_ms(cx_db_value(res, i, "created_at"));
        }
        cx_db_result_free(res);
    }
out:
    cx_pipeline_free(&pl);
    if (rc != CX_OK) {
        cx_db_pipeline_versions_free(*items, *n);
        *items = NULL;
        *n = 0;
    }
    return rc;
}
