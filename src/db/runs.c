/*
 * src/db/runs.c -- the pipeline_runs table (runs.h): the active run of a pipeline, compare-and-set status
 * transitions, counts, history pages, the status view of a pipeline, and the agent choice for a start
 * (least loaded online agent). "One active run per pipeline" is the unique key uq_runs_active on a
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
    "id, pipeline_id, agent_id, schedule_id, `trigger`, status, started_at, ended_at, processed_count, error_count, "              \
    "error_message, failover_of, created_at, updated_at, TIMESTAMPDIFF(MICROSECOND, created_at, NOW(3)) DIV 1000 AS age_ms, "      \
    "IF(started_at IS NULL, -1, TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3)) DIV 1000) AS running_for_ms"

static const char *const statuses[] = {"pending", "running", "paused", "completed", "failed", "stopped", "lost"};

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

static int64_t num(const char *v, int64_t dflt)
{
    return v != NULL ? strtoll(v, NULL, 10) : dflt;
}

static void fill(const cx_db_result_t *res, size_t i, cx_run_t *run)
{
    const char *v;

    memset(run, 0, sizeof(*run));
    copy(run->id, sizeof(run->id), cx_db_value(res, i, "id"));
    copy(run->pipeline_id, sizeof(run->pipeline_id), cx_db_value(res, i, "pipeline_id"));
    copy(run->agent_id, sizeof(run->agent_id), cx_db_value(res, i, "agent_id"));
    copy(run->schedule_id, sizeof(run->schedule_id), cx_db_value(res, i, "schedule_id"));
    copy(run->trigger, sizeof(run->trigger), cx_db_value(res, i, "trigger"));
    copy(run->status, sizeof(run->status), cx_db_value(res, i, "status"));
    cx_db_time_iso(cx_db_value(res, i, "started_at"), run->started_at);
    cx_db_time_iso(cx_db_value(res, i, "ended_at"), run->ended_at);
    run->processed_count = num(cx_db_value(res, i, "processed_count"), 0);
    run->error_count = num(cx_db_value(res, i, "error_count"), 0);
    run->error_message = (v = cx_db_value(res, i, "error_message")) ? cx_strdup(v) : NULL;
    copy(run->failover_of, sizeof(run->failover_of), cx_db_value(res, i, "failover_of"));
    cx_db_time_iso(cx_db_value(res, i, "created_at"), run->created_at);
    cx_db_time_iso(cx_db_value(res, i, "updated_at"), run->updated_at);
    run->age_ms = num(cx_db_value(res, i, "age_ms"), 0);
    run->running_for_ms = num(cx_db_value(res, i, "running_for_ms"), -1);
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

static json_object *str_or_null(const char *s)
{
    return s != NULL && *s ? json_object_new_string(s) : NULL;
}

json_object *cx_run_json(const cx_run_t *run)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(run->id));
    json_object_object_add(o, "pipeline_id", json_object_new_string(run->pipeline_id));
    json_object_object_add(o, "agent_id", str_or_null(run->agent_id));
    json_object_object_add(o, "schedule_id", str_or_null(run->schedule_id));
    json_object_object_add(o, "trigger", json_object_new_string(run->trigger));
    json_object_object_add(o, "status", json_object_new_string(run->status));
    json_object_object_add(o, "started_at", str_or_null(run->started_at));
    json_object_object_add(o, "ended_at", str_or_null(run->ended_at));
    json_object_object_add(o, "processed_count", json_object_new_int64(run->processed_count));
    json_object_object_add(o, "error_count", json_object_new_int64(run->error_count));
    json_object_object_add(o, "error_message", str_or_null(run->error_message));
    json_object_object_add(o, "failover_of", str_or_null(run->failover_of));
    json_object_object_add(o, "created_at", str_or_null(run->created_at));
    json_object_object_add(o, "updated_at", str_or_null(run->updated_at));
    return o;
}

int cx_run_status_valid(const char *status)
{
    for (size_t i = 0; status != NULL && i < CX_ARRAY_SIZE(statuses); i++)
        if (strcmp(status, statuses[i]) == 0)
            return 1;
    return 0;
}

int cx_run_status_active(const char *status)
{
    return status != NULL && (strcmp(status, "pending") == 0 || strcmp(status, "running") == 0 || strcmp(status, "paused") == 0);
}

int cx_run_transition_legal(const char *from, const char *to)
{
    /* From an active status anywhere but back to pending: pending may also jump straight to paused or
     * an end (a start acknowledged late), running <-> paused, and every active status may end. */
    return cx_run_status_active(from) && cx_run_status_valid(to) && strcmp(from, to) != 0 && strcmp(to, "pending") != 0;
}

/* one_run -- run the query (params p) and fill *run from its first row; CX_NOTFOUND when none. */
static int one_run(const char *sql, const cx_db_param_t *p, size_t np, cx_run_t *run)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec(sql, p, np, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        fill(res, 0, run);
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

int cx_db_run_insert(const char *id, const char *pipeline_id, const char *agent_id, const char *trigger, const char *failover_of,
                     const char *checkpoint_json, const char *created_by, const char *schedule_id, const char *scheduled_for)
{
    cx_db_param_t p[] = {
        CX_DB_P_STR(id),         CX_DB_P_STR(pipeline_id), CX_DB_P_STR(agent_id),
        CX_DB_P_STR(trigger),    CX_DB_P_STR(failover_of), CX_DB_P_STR(checkpoint_json),
        CX_DB_P_STR(created_by), CX_DB_P_STR(schedule_id), CX_DB_P_STR(scheduled_for),
    };
    return cx_db_exec("INSERT INTO pipeline_runs (id, pipeline_id, agent_id, `trigger`, status, failover_of, checkpoint, "
                      "created_by, schedule_id, scheduled_for, created_at, updated_at) "
                      "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, NOW(3), NOW(3))",
                      p, CX_ARRAY_SIZE(p), NULL, NULL);
}

int cx_db_runs_orphaned(char ***ids, size_t *n)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT DISTINCT r.agent_id AS id FROM pipeline_runs r JOIN agents a ON a.id = r.agent_id "
                        "WHERE r.status IN ('pending', 'running', 'paused') AND a.status = 'offline' "
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

int cx_db_run_transition(const char *run_id, const char *from, const char *to, const char *error_message)
{
    cx_db_param_t p[] = {CX_DB_P_STR(to),     CX_DB_P_STR(to),  CX_DB_P_STR(to), CX_DB_P_STR(error_message),
                         CX_DB_P_STR(run_id), CX_DB_P_STR(from)};
    uint64_t n = 0;
    int rc = cx_db_exec("UPDATE pipeline_runs SET status = ?, "
                        "started_at = IF(? = 'running' AND started_at IS NULL, NOW(3), started_at), "
                        "ended_at = IF(? IN ('completed', 'failed', 'stopped', 'lost'), NOW(3), ended_at), "
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
                      "WHERE id = ? AND status IN ('pending', 'running', 'paused')",
                      p, 3, NULL, NULL);
}

int cx_db_runs_of_agent(const char *agent_id, cx_run_t **runs, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id)};
    cx_db_result_t *res = NULL;
    int rc;

    *runs = NULL;
    *n = 0;
    rc = cx_db_exec(cx_db_in_tx() ? "SELECT " RUN_COLS " FROM pipeline_runs WHERE agent_id = ? AND status IN ('pending', "
                                    "'running', 'paused') ORDER BY created_at FOR UPDATE"
                                  : "SELECT " RUN_COLS " FROM pipeline_runs WHERE agent_id = ? AND status IN ('pending', "
                                    "'running', 'paused') ORDER BY created_at",
                    p, 1, &res, NULL);
    if (rc != CX_OK)
        return rc;
    if (res->nrows > 0) {
        *runs = cx_calloc(res->nrows, sizeof(cx_run_t));
        for (size_t i = 0; i < res->nrows; i++)
            fill(res, i, &(*runs)[i]);
        *n = res->nrows;
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_runs_history(const char *pipeline_id, const char *status, int page, int page_size, json_object **items, int64_t *total)
{
    cx_db_result_t *res = NULL;
    int rc;
    cx_db_param_t p[] = {CX_DB_P_STR(pipeline_id), CX_DB_P_STR(status), CX_DB_P_INT(page_size),
                         CX_DB_P_INT((long long)(page - 1) * page_size)};
    cx_db_param_t pc[] = {CX_DB_P_STR(pipeline_id)};

    *items = NULL;
    if ((rc = cx_db_runs_pipeline(pipeline_id, NULL)) != CX_OK)
        return rc;
    if (status != NULL)
        rc = cx_db_exec("SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ? AND status = ?", p, 2, &res, NULL);
    else
        rc = cx_db_exec("SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ?", pc, 1, &res, NULL);
    if (rc != CX_OK)
        goto out;
    *total = num(cx_db_value(res, 0, "n"), 0);
    cx_db_result_free(res);
    res = NULL;
    if (status != NULL)
        rc = cx_db_exec("SELECT " RUN_COLS " FROM pipeline_runs WHERE pipeline_id = ? AND status = ? "
                        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                        p, 4, &res, NULL);
    else {
        cx_db_param_t q[] = {p[0], p[2], p[3]};
        rc = cx_db_exec("SELECT " RUN_COLS
                        " FROM pipeline_runs WHERE pipeline_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                        q, 3, &res, NULL);
    }
    if (rc != CX_OK)
        goto out;
    *items = json_object_new_array();
    for (size_t i = 0; i < res->nrows; i++) {
        cx_run_t run;
        fill(res, i, &run);
        json_object_array_add(*items, cx_run_json(&run));
        cx_run_free(&run);
    }
out:
    cx_db_result_free(res);
    return rc;
}

/* agent_json -- the Agent of the API (the registry's own shape, without its active runs), or NULL. */
static json_object *agent_json(const char *agent_id)
{
    json_object *o = NULL;
    if (cx_db_agent_get(agent_id, &o) != CX_OK)
        return NULL;
    json_object_object_del(o, "active_runs");
    return o;
}

int cx_db_runs_status(const char *pipeline_id, json_object **out)
{
    cx_run_t run;
    int rc;
    const char *st = "stopped";

    *out = NULL;
    if ((rc = cx_db_runs_pipeline(pipeline_id, NULL)) != CX_OK)
        return rc;
    rc = cx_db_run_latest(pipeline_id, &run);
    if (rc != CX_OK && rc != CX_NOTFOUND)
        return rc;
    *out = json_object_new_object();
    json_object_object_add(*out, "pipeline_id", json_object_new_string(pipeline_id));
    if (rc == CX_NOTFOUND) {
        json_object_object_add(*out, "status", json_object_new_string(st));
        json_object_object_add(*out, "run", NULL);
        json_object_object_add(*out, "agent", NULL);
        return CX_OK;
    }
    /* completed and stopped runs leave the pipeline stopped; the others show as they are */
    if (strcmp(run.status, "completed") != 0 && strcmp(run.status, "stopped") != 0)
        st = run.status;
    json_object_object_add(*out, "status", json_object_new_string(st));
    json_object_object_add(*out, "run", cx_run_json(&run));
    json_object_object_add(*out, "agent", run.agent_id[0] ? agent_json(run.agent_id) : NULL);
    cx_run_free(&run);
    return CX_OK;
}

int cx_db_runs_pick_agent(const char *exclude, char out[256])
{
    cx_db_param_t p[] = {CX_DB_P_STR(exclude != NULL ? exclude : "")};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT a.id AS id FROM agents a LEFT JOIN pipeline_runs r ON r.agent_id = a.id "
                        "AND r.status IN ('pending', 'running', 'paused') WHERE a.status = 'online' AND a.id <> ? "
                        "GROUP BY a.id ORDER BY COUNT(r.id), a.id LIMIT 1",
                        p, 1, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        copy(out, 256, cx_db_value(res, 0, "id"));
    cx_db_result_free(res);
    return rc;
}

int cx_db_runs_agent_online(const char *agent_id)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT status FROM agents WHERE id = ?", p, 1, &res, NULL);
    if (rc == CX_OK) {
        const char *st = res->nrows ? cx_db_value(res, 0, "status") : NULL;
        rc = res->nrows == 0 ? CX_NOTFOUND : st != NULL && strcmp(st, "online") == 0 ? CX_OK : CX_STATE;
    }
    cx_db_result_free(res);
    return rc;
}
