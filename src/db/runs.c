/*
 * src/db/runs.c -- the pipeline_runs table (runs.h, on the conventions of db.h): the active run of a
 * pipeline, compare-and-set status transitions, counts, history slices (newest first, with a cursor),
 * where a pipeline stands (its newest run and that run's agent), and the online agents' loads for
 * the agent choice of a start. "One active run per pipeline" is the unique key uq_runs_active on a
 * generated column; the insert that loses a race gets CX_CONFLICT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/runs.h"

#define RUN_COLS                                                                                                                   \
    "id, pipeline_id, agent_id, schedule_id, scheduled_for, `trigger`, status, started_at, ended_at, processed_count, "            \
    "error_count, "                                                                                                                \
    "error_message, failover_of, created_at, updated_at, TIMESTAMPDIFF(MICROSECOND, created_at, NOW(3)) DIV 1000 AS age_ms, "      \
    "IF(started_at IS NULL, -1, TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3)) DIV 1000) AS running_for_ms, "                      \
    "IF(started_at IS NULL, -1, TIMESTAMPDIFF(MICROSECOND, GREATEST(started_at, COALESCE(last_listed_at, started_at)), NOW(3)) "   \
    "DIV 1000) AS unlisted_for_ms"

/* fill -- row i (RUN_COLS) into *run. CX_ERR (logged) for a status or trigger this build does not know. */
static int fill(const cx_db_result_t *res, size_t i, cx_run_t *run)
{
    const char *v, *st = cx_db_value(res, i, "status"), *tr = cx_db_value(res, i, "trigger");

    memset(run, 0, sizeof(*run));
    cx_db_copy(res, i, "id", run->id, sizeof(run->id));
    if (cx_run_status_parse(st, &run->status) != CX_OK || cx_run_trigger_parse(tr, &run->trigger) != CX_OK) {
        cx_log_errorx("run %s: unknown status %.32s or trigger %.32s in pipeline_runs", run->id, st ? st : "NULL",
                      tr ? tr : "NULL");
        return CX_ERR;
    }
    cx_db_copy(res, i, "pipeline_id", run->pipeline_id, sizeof(run->pipeline_id));
    cx_db_copy(res, i, "agent_id", run->agent_id, sizeof(run->agent_id));
    cx_db_copy(res, i, "schedule_id", run->schedule_id, sizeof(run->schedule_id));
    run->scheduled_for = cx_db_time_ms(cx_db_value(res, i, "scheduled_for"));
    run->started_at = cx_db_time_ms(cx_db_value(res, i, "started_at"));
    run->ended_at = cx_db_time_ms(cx_db_value(res, i, "ended_at"));
    run->processed_count = cx_db_int(res, i, "processed_count", 0);
    run->error_count = cx_db_int(res, i, "error_count", 0);
    run->error_message = (v = cx_db_value(res, i, "error_message")) ? cx_strdup(v) : NULL;
    cx_db_copy(res, i, "failover_of", run->failover_of, sizeof(run->failover_of));
    run->created_at = cx_db_time_ms(cx_db_value(res, i, "created_at"));
    run->updated_at = cx_db_time_ms(cx_db_value(res, i, "updated_at"));
    run->age_ms = cx_db_int(res, i, "age_ms", 0);
    run->running_for_ms = cx_db_int(res, i, "running_for_ms", -1);
    run->unlisted_for_ms = cx_db_int(res, i, "unlisted_for_ms", -1);
    return CX_OK;
}

/* fill_all -- every row of res into a new array. */
static int fill_all(const cx_db_result_t *res, cx_run_t **runs, size_t *n)
{
    *runs = NULL;
    *n = 0;
    if (res->nrows == 0)
        return CX_OK;
    *runs = cx_calloc(res->nrows, sizeof(cx_run_t));
    for (size_t i = 0; i < res->nrows; i++) {
        if (fill(res, i, &(*runs)[i]) != CX_OK) {
            cx_db_runs_free(*runs, i);
            *runs = NULL;
            return CX_ERR;
        }
    }
    *n = res->nrows;
    return CX_OK;
}

void cx_run_free(cx_run_t *run)
{
    if (run != NULL) {
        free(run->error_message);
        run->error_message = NULL;
    }
}

void cx_db_runs_free(cx_run_t *runs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cx_run_free(&runs[i]);
    free(runs);
}

/* one_run -- run the query (params p) and fill *run from its first row; CX_NOTFOUND when none. */
static int one_run(const char *sql, const cx_db_param_t *p, size_t np, cx_run_t *run)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec(sql, p, np, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        rc = fill(res, 0, run);
    cx_db_result_free(res);
    return rc;
}

int cx_db_runs_pipeline(const char *pipeline_id, char **yaml)
{
    cx_db_param_t p[] = {CX_DB_P_STR(pipeline_id)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec(cx_db_in_tx() ? "SELECT config_yaml FROM pipelines WHERE id = ? LOCK IN SHARE MODE"
                                      : "SELECT config_yaml FROM pipelines WHERE id = ?",
                        p, 1, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK && yaml != NULL) {
        const char *v = cx_db_value(res, 0, "config_yaml");
        *yaml = cx_strdup(v != NULL ? v : "");
    }
    cx_db_result_free(res);
    return rc;
}

int cx_db_run_active(const char *pipeline_id, int lock, cx_run_t *run)
{
    cx_db_param_t p[] = {CX_DB_P_STR(pipeline_id)};
    return one_run(lock && cx_db_in_tx() ? "SELECT " RUN_COLS " FROM pipeline_runs WHERE active_pipeline_id = ? FOR UPDATE"
                                         : "SELECT " RUN_COLS " FROM pipeline_runs WHERE active_pipeline_id = ?",
                   p, 1, run);
}

int cx_db_run_latest(const char *pipeline_id, cx_run_t *run)
{
    cx_db_param_t p[] = {CX_DB_P_STR(pipeline_id)};
    return one_run("SELECT " RUN_COLS " FROM pipeline_runs WHERE pipeline_id = ? ORDER BY created_at DESC, id DESC LIMIT 1", p, 1,
                   run);
}

int cx_db_run_get(const char *run_id, cx_run_t *run)
{
    cx_db_param_t p[] = {CX_DB_P_STR(run_id)};
    return one_run("SELECT " RUN_COLS " FROM pipeline_runs WHERE id = ?", p, 1, run);
}

#define NEW_ROW "(?, ?, ?, ?, IF(? IS NULL, 'pending', 'failed'), ?, ?, ?, ?, ?, ?, IF(? IS NULL, NULL, NOW(3)), NOW(3), NOW(3))"
#define NEW_COLS 12

void cx_db_runs_insert_stmt(const cx_run_new_t *rows, size_t n, int returning, cx_db_stmt_t *st)
{
    cx_db_param_t *p = cx_calloc(n > 0 ? n * NEW_COLS : 1, sizeof(*p));

    for (size_t i = 0; i < n; i++) {
        const cx_run_new_t *r = &rows[i];
        cx_db_param_t *q = p + i * NEW_COLS;
        q[0] = CX_DB_P_STR(r->id);
        q[1] = CX_DB_P_STR(r->pipeline_id);
        q[2] = CX_DB_P_STR(r->error_message != NULL ? NULL : r->agent_id);
        q[3] = CX_DB_P_STR(cx_run_trigger_name(r->trigger));
        q[4] = CX_DB_P_STR(r->error_message);
        q[5] = CX_DB_P_STR(r->failover_of);
        q[6] = CX_DB_P_STR(r->checkpoint_json);
        q[7] = CX_DB_P_STR(r->created_by);
        q[8] = CX_DB_P_STR(r->schedule_id);
        q[9] = CX_DB_P_STR(r->scheduled_for);
        q[10] = CX_DB_P_STR(r->error_message);
        q[11] = CX_DB_P_STR(r->error_message);
    }
    *st = (cx_db_stmt_t){.sql =
                             cx_db_sql_rows("INSERT INTO pipeline_runs (id, pipeline_id, agent_id, `trigger`, status, failover_of, "
                                            "checkpoint, created_by, schedule_id, scheduled_for, error_message, ended_at, "
                                            "created_at, updated_at) VALUES ",
                                            NEW_ROW, ", ", n, returning ? " RETURNING " RUN_COLS : ""),
                         .params = p,
                         .nparams = n * NEW_COLS};
}

int cx_db_runs_of_result(const cx_db_result_t *res, cx_run_t **out, size_t *nout)
{
    return fill_all(res, out, nout);
}

/* runs_in_stmt -- the read of the runs whose column (id or active_pipeline_id) is one of ids (n > 0). */
static void runs_in_stmt(const char *column, const char *const *ids, size_t n, const char *suffix, cx_db_stmt_t *st)
{
    cx_db_param_t *p = cx_calloc(n, sizeof(*p));
    char head[768];

    for (size_t i = 0; i < n; i++)
        p[i] = CX_DB_P_STR(ids[i]);
    snprintf(head, sizeof(head), "SELECT " RUN_COLS " FROM pipeline_runs WHERE %s IN (", column);
    *st = (cx_db_stmt_t){.sql = cx_db_sql_rows(head, "?", ", ", n, suffix), .params = p, .nparams = n};
}

/* runs_in -- the runs whose column (id or active_pipeline_id) is one of ids, with suffix. */
static int runs_in(const char *column, const char *const *ids, size_t n, const char *suffix, cx_run_t **runs, size_t *nruns)
{
    cx_db_result_t *res = NULL;
    cx_db_stmt_t st;
    int rc;

    *runs = NULL;
    *nruns = 0;
    if (n == 0)
        return CX_OK;
    runs_in_stmt(column, ids, n, suffix, &st);
    rc = cx_db_exec(st.sql, st.params, st.nparams, &res, NULL);
    cx_db_stmt_free(&st);
    if (rc == CX_OK)
        rc = fill_all(res, runs, nruns);
    cx_db_result_free(res);
    return rc;
}

int cx_db_runs_get_many(const char *const *ids, size_t n, cx_run_t **runs, size_t *nruns)
{
    return runs_in("id", ids, n, ")", runs, nruns);
}

/* pipelines_stmt -- the configs of the pipelines ids (n > 0), share-locked (a start's transaction), as
 * cx_db_runs_pipeline reads one. */
static void pipelines_stmt(const char *const *ids, size_t n, cx_db_stmt_t *st)
{
    cx_db_param_t *p = cx_calloc(n, sizeof(*p));

    for (size_t i = 0; i < n; i++)
        p[i] = CX_DB_P_STR(ids[i]);
    *st = (cx_db_stmt_t){
        .sql = cx_db_sql_rows("SELECT id, config_yaml FROM pipelines WHERE id IN (", "?", ", ", n, ") LOCK IN SHARE MODE"),
        .params = p,
        .nparams = n};
}

static void pipelines_read(const cx_db_result_t *res, const char *const *ids, size_t n, char **yaml)
{
    for (size_t r = 0; r < res->nrows; r++) {
        const char *id = cx_db_value(res, r, "id"), *v = cx_db_value(res, r, "config_yaml");
        for (size_t i = 0; i < n && id != NULL; i++)
            if (yaml[i] == NULL && strcmp(ids[i], id) == 0)
                yaml[i] = cx_strdup(v != NULL ? v : "");
    }
}

int cx_db_runs_orphaned(char ***ids, size_t *n)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT DISTINCT r.agent_id AS id FROM pipeline_runs r JOIN agents a ON a.id = r.agent_id "
                        "WHERE r.status IN " CX_RUN_ACTIVE_SQL " AND a.status = 'offline' "
                        "AND (a.status_changed_at IS NULL OR a.status_changed_at < NOW(3) - INTERVAL 10 SECOND)",
                        NULL, 0, &res, NULL);
    *ids = NULL;
    *n = 0;
    if (rc == CX_OK && res->nrows > 0) {
        *ids = cx_calloc(res->nrows, sizeof(char *));
        for (size_t i = 0; i < res->nrows; i++)
            (*ids)[i] = cx_strdup(res->rows[i][0] ? res->rows[i][0] : "");
        *n = res->nrows;
    }
    cx_db_result_free(res);
    return rc;
}

int cx_db_run_transition(const char *run_id, cx_run_status_t from, cx_run_status_t to, const char *error_message)
{
    const char *t = cx_run_status_name(to);
    cx_db_param_t p[] = {CX_DB_P_STR(t),      CX_DB_P_STR(t),
                         CX_DB_P_STR(t),      CX_DB_P_STR(error_message),
                         CX_DB_P_STR(run_id), CX_DB_P_STR(cx_run_status_name(from))};
    uint64_t n = 0;
    int rc = cx_db_exec("UPDATE pipeline_runs SET status = ?, "
                        "started_at = IF(? = 'running' AND started_at IS NULL, NOW(3), started_at), "
                        "ended_at = IF(? IN " CX_RUN_ENDED_SQL ", NOW(3), ended_at), "
                        "error_message = COALESCE(?, error_message), updated_at = NOW(3) WHERE id = ? AND status = ?",
                        p, CX_ARRAY_SIZE(p), NULL, &n);
    if (rc != CX_OK)
        return rc;
    return n == 1 ? CX_OK : CX_STATE;
}

int cx_db_run_counts(const char *run_id, int64_t processed, int64_t errors)
{
    cx_db_param_t p[] = {CX_DB_P_INT(processed), CX_DB_P_INT(errors), CX_DB_P_STR(run_id)};
    return cx_db_exec("UPDATE pipeline_runs SET processed_count = ?, error_count = ?, updated_at = NOW(3) "
                      "WHERE id = ? AND status IN " CX_RUN_ACTIVE_SQL,
                      p, 3, NULL, NULL);
}

int cx_db_run_listed(const char *run_id, int64_t processed, int64_t errors)
{
    cx_db_param_t p[] = {CX_DB_P_INT(processed), CX_DB_P_INT(errors), CX_DB_P_STR(run_id)};
    if (processed < 0)
        return cx_db_exec("UPDATE pipeline_runs SET last_listed_at = NOW(3) WHERE id = ? AND status IN " CX_RUN_ACTIVE_SQL, p + 2,
                          1, NULL, NULL);
    return cx_db_exec("UPDATE pipeline_runs SET processed_count = ?, error_count = ?, last_listed_at = NOW(3), "
                      "updated_at = NOW(3) WHERE id = ? AND status IN " CX_RUN_ACTIVE_SQL,
                      p, 3, NULL, NULL);
}

/* update_many -- "UPDATE pipeline_runs SET <set> WHERE <where> AND id IN (...)" over n ids after nhead
 * parameters of set and where (head). */
static int update_many(const char *set, const char *where, const cx_db_param_t *head, size_t nhead, const char *const *ids,
                       size_t n, uint64_t *changed)
{
    cx_db_param_t *p = cx_calloc(nhead + n, sizeof(*p));
    size_t len = strlen(set) + strlen(where) + 96;
    char *h = cx_malloc(len), *sql;
    int rc;

    if (nhead > 0)
        memcpy(p, head, nhead * sizeof(*p));
    for (size_t i = 0; i < n; i++)
        p[nhead + i] = CX_DB_P_STR(ids[i]);
    /* by the primary key: on the status index (which MariaDB picks for a status = 'pending' beside an
     * id list) the UPDATE reads and locks every run of that status */
    snprintf(h, len, "UPDATE pipeline_runs FORCE INDEX (PRIMARY) SET %s WHERE %s AND id IN (", set, where);
    sql = cx_db_sql_rows(h, "?", ", ", n, ")");
    rc = cx_db_exec(sql, p, nhead + n, NULL, changed);
    free(sql);
    free(h);
    free(p);
    return rc;
}

/* counts_many -- the counts of n active runs in one UPDATE, with extra ("col = ..., " or "") set too. */
static int counts_many(const char *const *ids, const int64_t *processed, const int64_t *errors, size_t n, const char *extra)
{
    cx_db_param_t *p;
    char *cp, *ce, *set;
    size_t len;
    uint64_t changed = 0;
    int rc;

    if (n == 0)
        return CX_OK;
    p = cx_calloc(4 * n, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[2 * i] = CX_DB_P_STR(ids[i]);
        p[2 * i + 1] = CX_DB_P_INT(processed[i]);
        p[2 * n + 2 * i] = CX_DB_P_STR(ids[i]);
        p[2 * n + 2 * i + 1] = CX_DB_P_INT(errors[i]);
    }
    cp = cx_db_sql_case("id", "processed_count", n);
    ce = cx_db_sql_case("id", "error_count", n);
    len = strlen(cp) + strlen(ce) + strlen(extra) + 96;
    set = cx_malloc(len);
    snprintf(set, len, "processed_count = %s, error_count = %s, %supdated_at = NOW(3)", cp, ce, extra);
    rc = update_many(set, "status IN " CX_RUN_ACTIVE_SQL, p, 4 * n, ids, n, &changed);
    free(set);
    free(ce);
    free(cp);
    free(p);
    return rc;
}

int cx_db_runs_counts_many(const char *const *ids, const int64_t *processed, const int64_t *errors, size_t n)
{
    return counts_many(ids, processed, errors, n, "");
}

int cx_db_runs_listed_many(const char *const *ids, const int64_t *processed, const int64_t *errors, size_t n)
{
    const char **plain = cx_calloc(n + 1, sizeof(*plain)), **counted = cx_calloc(n + 1, sizeof(*counted));
    int64_t *p = cx_calloc(n + 1, sizeof(*p)), *e = cx_calloc(n + 1, sizeof(*e));
    size_t np = 0, nc = 0;
    uint64_t changed = 0;
    int rc = CX_OK;

    for (size_t i = 0; i < n; i++) {
        if (processed[i] < 0) {
            plain[np++] = ids[i];
            continue;
        }
        counted[nc] = ids[i];
        p[nc] = processed[i];
        e[nc++] = errors[i];
    }
    if (np > 0)
        rc = update_many("last_listed_at = NOW(3)", "status IN " CX_RUN_ACTIVE_SQL, NULL, 0, plain, np, &changed);
    if (rc == CX_OK)
        rc = counts_many(counted, p, e, nc, "last_listed_at = NOW(3), ");
    free(e);
    free(p);
    free(counted);
    free(plain);
    return rc;
}

int cx_db_runs_transition_many(const char *const *ids, const char *const *errors, size_t n, cx_run_status_t from,
                               cx_run_status_t to, uint64_t *changed)
{
    const char *t = cx_run_status_name(to);
    cx_db_param_t *p;
    char *ce, *set;
    size_t k = 0, len;
    int rc;

    *changed = 0;
    if (n == 0)
        return CX_OK;
    p = cx_calloc(2 * n + 4, sizeof(*p));
    p[k++] = CX_DB_P_STR(t);
    p[k++] = CX_DB_P_STR(t);
    p[k++] = CX_DB_P_STR(t);
    for (size_t i = 0; i < n; i++) {
        p[k++] = CX_DB_P_STR(ids[i]);
        p[k++] = CX_DB_P_STR(errors[i]);
    }
    p[k++] = CX_DB_P_STR(cx_run_status_name(from));
    ce = cx_db_sql_case("id", "NULL", n);
    len = strlen(ce) + 320;
    set = cx_malloc(len);
    snprintf(set, len,
             "status = ?, started_at = IF(? = 'running' AND started_at IS NULL, NOW(3), started_at), "
             "ended_at = IF(? IN " CX_RUN_ENDED_SQL ", NOW(3), ended_at), error_message = COALESCE(%s, error_message), "
             "updated_at = NOW(3)",
             ce);
    rc = update_many(set, "status = ?", p, k, ids, n, changed);
    free(set);
    free(ce);
    free(p);
    return rc;
}

int cx_db_runs_of_agent(const char *agent_id, cx_run_t **runs, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id)};
    cx_db_result_t *res = NULL;
    int rc;

    *runs = NULL;
    *n = 0;
    rc = cx_db_exec(cx_db_in_tx() ? "SELECT " RUN_COLS " FROM pipeline_runs WHERE agent_id = ? AND status IN " CX_RUN_ACTIVE_SQL
                                    " ORDER BY created_at FOR UPDATE"
                                  : "SELECT " RUN_COLS " FROM pipeline_runs WHERE agent_id = ? AND status IN " CX_RUN_ACTIVE_SQL
                                    " ORDER BY created_at",
                    p, 1, &res, NULL);
    if (rc != CX_OK)
        return rc;
    rc = fill_all(res, runs, n);
    cx_db_result_free(res);
    return rc;
}

int cx_db_runs_history(const cx_run_query_t *q, cx_run_t **items, size_t *n)
{
    cx_db_result_t *res = NULL;
    char *before_at = NULL;
    cx_db_param_t p[6];
    size_t np = 0;
    char sql[1024];
    int rc;

    *items = NULL;
    *n = 0;
    if ((rc = cx_db_runs_pipeline(q->pipeline_id, NULL)) != CX_OK)
        return rc;
    if (q->before != NULL) {
        /* the cursor: where the run named by before stands in the order (its created_at as stored) */
        cx_db_param_t bp[] = {CX_DB_P_STR(q->before), CX_DB_P_STR(q->pipeline_id)};
        if ((rc = cx_db_exec("SELECT created_at FROM pipeline_runs WHERE id = ? AND pipeline_id = ?", bp, 2, &res, NULL)) != CX_OK)
            return rc;
        before_at = cx_db_take(res, 0, "created_at");
        cx_db_result_free(res);
        res = NULL;
        if (before_at == NULL)
            return CX_INVALID;
    }
    p[np++] = CX_DB_P_STR(q->pipeline_id);
    if (q->has_status)
        p[np++] = CX_DB_P_STR(cx_run_status_name(q->status));
    if (before_at != NULL) {
        p[np++] = CX_DB_P_STR(before_at);
        p[np++] = CX_DB_P_STR(before_at);
        p[np++] = CX_DB_P_STR(q->before);
    }
    p[np++] = CX_DB_P_INT(q->limit);
    snprintf(sql, sizeof(sql),
             "SELECT " RUN_COLS " FROM pipeline_runs WHERE pipeline_id = ?%s%s ORDER BY created_at DESC, id DESC LIMIT ?",
             q->has_status ? " AND status = ?" : "",
             before_at != NULL ? " AND (created_at < ? OR (created_at = ? AND id < ?))" : "");
    if ((rc = cx_db_exec(sql, p, np, &res, NULL)) == CX_OK)
        rc = fill_all(res, items, n);
    cx_db_result_free(res);
    free(before_at);
    return rc;
}

void cx_pipeline_state_free(cx_pipeline_state_t *st)
{
    if (st == NULL)
        return;
    cx_run_free(&st->run);
    cx_agent_free(&st->agent);
    memset(st, 0, sizeof(*st));
}

int cx_db_runs_status(const char *pipeline_id, cx_pipeline_state_t *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = cx_db_runs_pipeline(pipeline_id, NULL)) != CX_OK)
        return rc;
    rc = cx_db_run_latest(pipeline_id, &out->run);
    if (rc != CX_OK && rc != CX_NOTFOUND)
        return rc;
    out->has_run = rc == CX_OK;
    out->status = cx_pipeline_status_of(out->has_run, out->run.status);
    if (out->has_run && out->run.agent_id[0]) {
        rc = cx_db_agent_get(out->run.agent_id, &out->agent, NULL, NULL);
        if (rc != CX_OK && rc != CX_NOTFOUND) {
            cx_pipeline_state_free(out);
            return rc;
        }
        out->has_agent = rc == CX_OK;
    }
    return CX_OK;
}

/* The active runs of each online agent, counted per status on ix_runs_agent_status (agent_id, status):
 * three lookups on the whole key read the agent's active runs and nothing else (one on agent_id with
 * status IN (…) reads every run the agent ever had; the derived table counted the active runs of all
 * agents through a temporary table and a join buffer: 3.0 ms at 2,000 active runs and 6,000 ended
 * ones, against 1.6 ms this way; forced: for a status few runs have, the optimizer took the status
 * index (dropped by 0010), all agents' runs of it for each agent). The statuses are CX_RUN_ACTIVE_SQL's. */
#define ACTIVE_OF(st)                                                                                                              \
    "(SELECT COUNT(*) FROM pipeline_runs r FORCE INDEX (ix_runs_agent_status) WHERE r.agent_id = a.id AND r.status = '" st "')"
#define SQL_LOADS                                                                                                                  \
    "SELECT a.id AS id, " ACTIVE_OF("pending") " + " ACTIVE_OF("running") " + " ACTIVE_OF(                                         \
        "paused") " AS n FROM agents a "                                                                                           \
                  "WHERE a.status = 'online' ORDER BY a.id"

static void loads_read(const cx_db_result_t *res, cx_agent_load_t **out, size_t *n)
{
    if (res->nrows > 0)
        *out = cx_calloc(res->nrows, sizeof(**out));
    for (size_t i = 0; i < res->nrows; i++) {
        cx_db_copy(res, i, "id", (*out)[i].id, sizeof((*out)[i].id));
        (*out)[i].active = cx_db_int(res, i, "n", 0);
    }
    *n = res->nrows;
}

int cx_db_runs_start_reads(int begin, const char *const *ids, size_t n, char **yaml, cx_run_t **active, size_t *nactive,
                           cx_agent_load_t **loads, size_t *nloads)
{
    cx_db_stmt_t st[3];
    cx_db_result_t *res[3] = {NULL, NULL, NULL};
    int ns = loads != NULL ? 3 : 2, rc;

    for (size_t i = 0; i < n; i++)
        yaml[i] = NULL;
    *active = NULL;
    *nactive = *nloads = 0;
    if (loads != NULL)
        *loads = NULL;
    if (n == 0)
        return begin ? cx_db_begin() : CX_OK;
    pipelines_stmt(ids, n, &st[0]);
    runs_in_stmt("active_pipeline_id", ids, n, ")", &st[1]);
    st[2] = (cx_db_stmt_t){.sql = SQL_LOADS};
    rc = cx_db_exec_many(st, (size_t)ns, begin ? CX_DB_BEGIN : 0, res);
    cx_db_stmt_free(&st[0]);
    cx_db_stmt_free(&st[1]);
    if (rc == CX_OK && (res[0] == NULL || res[1] == NULL || (loads != NULL && res[2] == NULL))) {
        cx_log_errorx("mysql: the reads of a start came back without their rows");
        rc = CX_ERR;
    }
    if (rc == CX_OK) {
        pipelines_read(res[0], ids, n, yaml);
        rc = fill_all(res[1], active, nactive);
    }
    if (rc == CX_OK && loads != NULL)
        loads_read(res[2], loads, nloads);
    for (int i = 0; i < 3; i++)
        cx_db_result_free(res[i]);
    return rc;
}

int cx_db_runs_agent_online(const char *agent_id)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT status FROM agents WHERE id = ?", p, 1, &res, NULL);
    if (rc == CX_OK) {
        cx_agent_status_t st = CX_AGENT_UNKNOWN;
        if (res->nrows == 0)
            rc = CX_NOTFOUND;
        else
            rc = cx_agent_status_parse(cx_db_value(res, 0, "status"), &st) == CX_OK && st == CX_AGENT_ONLINE ? CX_OK : CX_STATE;
    }
    cx_db_result_free(res);
    return rc;
}
