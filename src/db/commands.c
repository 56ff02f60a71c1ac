/*
 * src/db/commands.c -- the agent_commands table, the durable command outbox (commands.h, on the
 * conventions of db.h): insert, the per-attempt delivery claim under the lock of its agent and
 * pipeline, what may still be delivered, redelivery and expiry scans, cancellation, acknowledgements.
 *
 * Every time comparison uses the database clock (NOW(3)), so replicas with skewed clocks agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/audit.h"
#include "conduix/commands.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/hash.h"
#include "conduix/log.h"
#include "conduix/shm.h"

#define CMD_COLS                                                                                                                   \
    "id, seq, agent_id, type, pipeline_id, run_id, payload, status, attempts, created_at, expires_at, last_sent_at, acked_at, "    \
    "result_message, result_error"

/* DELIVERABLE(c) -- the command (table alias c) still serves its run and may be published: queued or
 * sent, unexpired; its run is active (a stop, or a command without a run, serves whatever the run's
 * state: a stop's work is to end what the agent runs); and no newer command for the same agent and
 * pipeline has reached the agent (published, or acknowledged over REST), so an agent never hears an
 * older command of a pipeline after a newer one. The index ix_commands_agent_pipeline_seq (migration
 * 0006) keeps the last test to a few rows. */
#define DELIVERABLE(c)                                                                                                             \
    c ".status IN " CX_COMMAND_OUTSTANDING_SQL " AND " c ".expires_at > NOW(3) AND (" c ".run_id IS NULL OR " c                    \
      ".type = 'stop_pipeline' OR EXISTS (SELECT 1 FROM pipeline_runs r WHERE r.id = " c                                           \
      ".run_id AND r.status IN " CX_RUN_ACTIVE_SQL ")) AND NOT EXISTS (SELECT 1 FROM agent_commands n WHERE n.agent_id = " c       \
      ".agent_id AND n.pipeline_id = " c ".pipeline_id AND n.seq > " c ".seq AND (n.attempts > 0 OR n.acked_at IS NOT NULL))"

/* fill -- row i (CMD_COLS) into *c. CX_ERR (logged) for a type or status this build does not know. */
static int fill(cx_db_result_t *res, size_t i, cx_command_t *c)
{
    const char *type = cx_db_value(res, i, "type"), *st = cx_db_value(res, i, "status");

    memset(c, 0, sizeof(*c));
    cx_db_copy(res, i, "id", c->id, sizeof(c->id));
    if (cx_command_type_parse(type, &c->type) != CX_OK || cx_command_status_parse(st, &c->status) != CX_OK) {
        cx_log_errorx("command %s: unknown type %.32s or status %.32s in agent_commands", c->id, type ? type : "NULL",
                      st ? st : "NULL");
        return CX_ERR;
    }
    c->seq = (uint64_t)cx_db_int(res, i, "seq", 0);
    cx_db_copy(res, i, "agent_id", c->agent_id, sizeof(c->agent_id));
    cx_db_copy(res, i, "pipeline_id", c->pipeline_id, sizeof(c->pipeline_id));
    cx_db_copy(res, i, "run_id", c->run_id, sizeof(c->run_id));
    c->payload = cx_db_take(res, i, "payload");
    c->attempts = (int)cx_db_int(res, i, "attempts", 0);
    c->created_at = cx_db_time_ms(cx_db_value(res, i, "created_at"));
    c->expires_at = cx_db_time_ms(cx_db_value(res, i, "expires_at"));
    c->last_sent_at = cx_db_time_ms(cx_db_value(res, i, "last_sent_at"));
    c->acked_at = cx_db_time_ms(cx_db_value(res, i, "acked_at"));
    c->result_message = cx_db_take(res, i, "result_message");
    c->result_error = cx_db_take(res, i, "result_error");
    return CX_OK;
}

/* first -- the end of a one-command query: its first row into c, CX_NOTFOUND when it found none; frees
 * res. */
static int first(int rc, cx_db_result_t *res, cx_command_t *c)
{
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        rc = fill(res, 0, c);
    cx_db_result_free(res);
    return rc;
}

void cx_command_free(cx_command_t *c)
{
    if (c == NULL)
        return;
    free(c->payload);
    free(c->result_message);
    free(c->result_error);
    c->payload = c->result_message = c->result_error = NULL;
}

void cx_db_commands_free(cx_command_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cx_command_free(&v[i]);
    free(v);
}

int cx_db_command_insert(const char *id, const char *agent_id, cx_command_type_t type, const char *pipeline_id, const char *run_id,
                         const char *payload_json, int64_t ttl_ms, const char *created_by)
{
    cx_db_param_t p[] = {
        CX_DB_P_STR(id),          CX_DB_P_STR(agent_id),      CX_DB_P_STR(cx_command_type_name(type)),
        CX_DB_P_STR(pipeline_id), CX_DB_P_STR(run_id),        CX_DB_P_STR(payload_json),
        CX_DB_P_STR(created_by),  CX_DB_P_INT(ttl_ms * 1000),
    };
    return cx_db_exec("INSERT INTO agent_commands (id, agent_id, type, pipeline_id, run_id, payload, status, created_by, "
                      "created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, NOW(3), NOW(3), "
                      "NOW(3) + INTERVAL ? MICROSECOND)",
                      p, CX_ARRAY_SIZE(p), NULL, NULL);
}

/* A held command (hold_until set: a fire written ahead of its time) is claimed as attempt 1 at that time
 * and expires ttl after it. */
#define NEW_ROW                                                                                                                    \
    "(?, ?, ?, ?, ?, ?, IF(? = 1, 'sent', 'queued'), IF(? = 1, 1, 0), IF(? = 1, COALESCE(?, NOW(3)), NULL), ?, ?, NOW(3), "        \
    "NOW(3), COALESCE(?, NOW(3)) + INTERVAL ? MICROSECOND)"
#define NEW_COLS 14

static int rows(int rc, cx_db_result_t *res, cx_command_t **out, size_t *n);

void cx_db_commands_insert_stmt(const cx_command_new_t *rows_, size_t n, int64_t ttl_ms, int returning, cx_db_stmt_t *st)
{
    cx_db_param_t *p = cx_calloc(n > 0 ? n * NEW_COLS : 1, sizeof(*p));
    char(*hold)[32] = cx_calloc(n > 0 ? n : 1, sizeof(*hold));

    for (size_t i = 0; i < n; i++) {
        const cx_command_new_t *r = &rows_[i];
        cx_db_param_t *q = p + i * NEW_COLS;
        const char *h = NULL;
        if (r->hold_ms > 0) {
            cx_db_time_text(r->hold_ms, hold[i]);
            h = hold[i];
        }
        q[0] = CX_DB_P_STR(r->id);
        q[1] = CX_DB_P_STR(r->agent_id);
        q[2] = CX_DB_P_STR(cx_command_type_name(r->type));
        q[3] = CX_DB_P_STR(r->pipeline_id);
        q[4] = CX_DB_P_STR(r->run_id);
        q[5] = CX_DB_P_STR(r->payload_json);
        q[6] = CX_DB_P_INT(r->sent ? 1 : 0);
        q[7] = CX_DB_P_INT(r->sent ? 1 : 0);
        q[8] = CX_DB_P_INT(r->sent ? 1 : 0);
        q[9] = CX_DB_P_STR(h);
        q[10] = CX_DB_P_STR(h);
        q[11] = CX_DB_P_STR(r->created_by);
        q[12] = CX_DB_P_STR(h);
        q[13] = CX_DB_P_INT(ttl_ms * 1000);
    }
    *st = (cx_db_stmt_t){.sql = cx_db_sql_rows("INSERT INTO agent_commands (id, agent_id, type, pipeline_id, run_id, payload, "
                                               "status, attempts, last_sent_at, hold_until, created_by, created_at, updated_at, "
                                               "expires_at) VALUES ",
                                               NEW_ROW, ", ", n, returning ? " RETURNING " CMD_COLS : ""),
                         .params = p,
                         .nparams = n * NEW_COLS,
                         .owned = hold};
}

int cx_db_commands_of_result(cx_db_result_t *res, cx_command_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (res == NULL)
        return CX_ERR;
    if (res->nrows == 0)
        return CX_OK;
    *out = cx_calloc(res->nrows, sizeof(cx_command_t));
    for (size_t i = 0; i < res->nrows; i++)
        if (fill(res, i, &(*out)[i]) != CX_OK) {
            cx_db_commands_free(*out, i + 1);
            *out = NULL;
            return CX_ERR;
        }
    *nout = res->nrows;
    return CX_OK;
}

/* ids_params -- n string parameters. */
static cx_db_param_t *ids_params(const char *const *ids, size_t n)
{
    cx_db_param_t *p = cx_calloc(n > 0 ? n : 1, sizeof(*p));
    for (size_t i = 0; i < n; i++)
        p[i] = CX_DB_P_STR(ids[i]);
    return p;
}

int cx_db_commands_load_many(const char *const *ids, size_t n, cx_command_t **out, size_t *nout)
{
    cx_db_param_t *p;
    cx_db_result_t *res = NULL;
    char *sql;
    int rc;

    *out = NULL;
    *nout = 0;
    if (n == 0)
        return CX_OK;
    p = ids_params(ids, n);
    sql = cx_db_sql_rows("SELECT " CMD_COLS " FROM agent_commands WHERE id IN (", "?", ", ", n, ") ORDER BY seq");
    rc = cx_db_exec(sql, p, n, &res, NULL);
    free(sql);
    free(p);
    return rows(rc, res, out, nout);
}

int cx_db_commands_held_due(size_t limit, cx_command_t **out, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_INT((long long)limit)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands FORCE INDEX (ix_commands_hold) WHERE hold_until <= NOW(3) AND "
                        "status = 'sent' ORDER BY hold_until "
                        "LIMIT ? FOR UPDATE SKIP LOCKED",
                        p, 1, &res, NULL);
    return rows(rc, res, out, n);
}

/* update_in -- the update head (ending "… IN (") over the ids, n > 0; *affected (may be NULL) says how
 * many rows it changed. */
static int update_in(const char *head, const char *const *ids, size_t n, uint64_t *affected)
{
    cx_db_param_t *p = ids_params(ids, n);
    char *sql = cx_db_sql_rows(head, "?", ", ", n, ")");
    int rc = cx_db_exec(sql, p, n, NULL, affected);

    free(sql);
    free(p);
    return rc;
}

int cx_db_commands_held_any(void)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT 1 AS one FROM agent_commands FORCE INDEX (ix_commands_hold) WHERE hold_until <= NOW(3) LIMIT 1",
                        NULL, 0, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_unhold(const char *const *ids, size_t n)
{
    if (n == 0)
        return CX_OK;
    return update_in("UPDATE agent_commands SET hold_until = NULL, last_sent_at = NOW(3), updated_at = NOW(3) WHERE id IN (", ids,
                     n, NULL);
}

int cx_db_command_load(const char *id, const char *agent_id, cx_command_t *c)
{
    cx_db_result_t *res = NULL;
    int rc;

    if (agent_id != NULL) {
        cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_STR(agent_id)};
        rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE id = ? AND agent_id = ?", p, 2, &res, NULL);
    } else {
        cx_db_param_t p[] = {CX_DB_P_STR(id)};
        rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE id = ?", p, 1, &res, NULL);
    }
    return first(rc, res, c);
}

int cx_db_command_deliverable(const char *id)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT c.id FROM agent_commands c WHERE c.id = ? AND " DELIVERABLE("c"), p, 1, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_STATE;
    cx_db_result_free(res);
    return rc;
}

/* lock_name -- the name of the advisory lock of an agent and a pipeline: at most 64 characters (MySQL's
 * limit), so the agent id (up to 255 bytes) is hashed; two pairs that share a name only wait for each
 * other. */
static void lock_name(const char *agent_id, const char *pipeline_id, char out[64])
{
    snprintf(out, 64, "cxcmd:%.36s:%016llx", pipeline_id && *pipeline_id ? pipeline_id : "-",
             (unsigned long long)cx_hash_fnv1a(agent_id, strlen(agent_id)));
}

int cx_db_command_lock(const char *agent_id, const char *pipeline_id)
{
    char name[64];
    cx_db_result_t *res = NULL;
    int rc;

    lock_name(agent_id, pipeline_id, name);
    cx_db_param_t p[] = {CX_DB_P_STR(name)};
    if ((rc = cx_db_exec("SELECT GET_LOCK(?, 0) AS got", p, 1, &res, NULL)) != CX_OK)
        return rc;
    rc = cx_db_int(res, 0, "got", 0) == 1 ? CX_OK : CX_CONFLICT;
    cx_db_result_free(res);
    return rc;
}

void cx_db_command_unlock(const char *agent_id, const char *pipeline_id)
{
    char name[64];
    cx_db_result_t *res = NULL;

    lock_name(agent_id, pipeline_id, name);
    cx_db_param_t p[] = {CX_DB_P_STR(name)};
    /* a connection lost meanwhile took the lock with it: nothing to release then */
    if (cx_db_exec("SELECT RELEASE_LOCK(?) AS released", p, 1, &res, NULL) == CX_OK)
        cx_db_result_free(res);
}

/* One SELECT of RELEASE_LOCK(name) for the pairs with want[i]; a connection lost meanwhile took the locks
 * with it: nothing to release then. */
void cx_db_commands_unlock_many(const char *const *agents, const char *const *pipelines, size_t n, const int *want)
{
    char(*names)[64] = cx_calloc(n > 0 ? n : 1, sizeof(*names));
    cx_db_param_t *p = cx_calloc(n > 0 ? n : 1, sizeof(*p));
    cx_db_result_t *res = NULL;
    size_t np = 0;
    char *sql;

    for (size_t i = 0; i < n; i++) {
        if (!want[i])
            continue;
        lock_name(agents[i], pipelines[i], names[np]);
        p[np] = CX_DB_P_STR(names[np]);
        np++;
    }
    if (np > 0) {
        sql = cx_db_sql_rows("SELECT ", "RELEASE_LOCK(?)", ", ", np, "");
        if (cx_db_exec(sql, p, np, &res, NULL) == CX_OK)
            cx_db_result_free(res);
        free(sql);
    }
    free(names);
    free(p);
}

/* waiting_stmt -- the agents and pipelines of the pairs (agents[i], pipelines[i]) that have an unexpired
 * queued command (n > 0). */
static void waiting_stmt(const char *const *agents, const char *const *pipelines, size_t n, cx_db_stmt_t *st)
{
    cx_db_param_t *p = cx_calloc(2 * n, sizeof(*p));

    for (size_t i = 0; i < n; i++) {
        p[2 * i] = CX_DB_P_STR(agents[i]);
        p[2 * i + 1] = CX_DB_P_STR(pipelines[i]);
    }
    *st = (cx_db_stmt_t){.sql = cx_db_sql_rows("SELECT DISTINCT agent_id, pipeline_id FROM agent_commands WHERE (agent_id, "
                                               "pipeline_id) IN (",
                                               "(?, ?)", ", ", n, ") AND status = 'queued' AND expires_at > NOW(3)"),
                         .params = p,
                         .nparams = 2 * n};
}

static void waiting_read(const cx_db_result_t *res, const char *const *agents, const char *const *pipelines, size_t n, int *waiting)
{
    for (size_t r = 0; r < res->nrows; r++)
        for (size_t i = 0; i < n; i++)
            if (res->rows[r][0] != NULL && res->rows[r][1] != NULL && strcmp(res->rows[r][0], agents[i]) == 0 &&
                strcmp(res->rows[r][1], pipelines[i]) == 0)
                waiting[i] = 1;
}

int cx_db_commands_lock_waiting(const char *const *agents, const char *const *pipelines, size_t n, int *got, int *waiting)
{
    char(*names)[64] = cx_calloc(n > 0 ? n : 1, sizeof(*names));
    cx_db_param_t *p = cx_calloc(n > 0 ? n : 1, sizeof(*p));
    cx_db_result_t *res[2] = {NULL, NULL};
    cx_db_stmt_t st[2];
    int rc;

    for (size_t i = 0; i < n; i++) {
        got[i] = waiting[i] = 0;
        lock_name(agents[i], pipelines[i], names[i]);
        p[i] = CX_DB_P_STR(names[i]);
    }
    if (n == 0) {
        free(names);
        free(p);
        return CX_OK;
    }
    /* the locks first: the read runs after them, in the same round trip */
    st[0] = (cx_db_stmt_t){.sql = cx_db_sql_rows("SELECT ", "GET_LOCK(?, 0)", ", ", n, ""), .params = p, .nparams = n};
    waiting_stmt(agents, pipelines, n, &st[1]);
    rc = cx_db_exec_many(st, 2, 0, res);
    if (rc == CX_OK && (res[0] == NULL || res[1] == NULL || res[0]->nrows != 1 || res[0]->ncols != n)) {
        cx_log_errorx("mysql: the delivery locks of a start came back without their rows");
        rc = CX_ERR;
    }
    for (size_t i = 0; rc == CX_OK && i < n; i++)
        got[i] = res[0]->rows[0][i] != NULL && strcmp(res[0]->rows[0][i], "1") == 0;
    if (rc == CX_OK)
        waiting_read(res[1], agents, pipelines, n, waiting);
    if (rc != CX_OK && rc != CX_UNAVAIL) {
        /* the locks may have been taken before the read failed: none is kept (a lost connection took them) */
        int *all = cx_calloc(n, sizeof(*all));
        for (size_t i = 0; i < n; i++)
            all[i] = 1;
        cx_db_commands_unlock_many(agents, pipelines, n, all);
        free(all);
    }
    cx_db_stmt_free(&st[0]); /* p too */
    cx_db_stmt_free(&st[1]);
    cx_db_result_free(res[0]);
    cx_db_result_free(res[1]);
    free(names);
    return rc;
}

int cx_db_command_claim(const char *id, int attempts_seen)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(attempts_seen)};
    uint64_t n = 0;
    int rc = cx_db_exec("UPDATE agent_commands SET status = 'sent', attempts = attempts + 1, last_sent_at = NOW(3), "
                        "hold_until = NULL, updated_at = NOW(3) WHERE id = ? AND attempts = ? AND status IN ('queued', 'sent') "
                        "AND expires_at > NOW(3)",
                        p, 2, NULL, &n);
    if (rc != CX_OK)
        return rc;
    return n == 1 ? CX_OK : CX_CONFLICT;
}

int cx_db_command_unheard(const char *id, int attempts_now)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(attempts_now)};
    return cx_db_exec("UPDATE agent_commands SET status = 'queued', attempts = attempts - 1, hold_until = NULL, "
                      "updated_at = NOW(3) WHERE id = ? AND attempts = ? AND status = 'sent'",
                      p, 2, NULL, NULL);
}

int cx_db_command_unclaim(const char *id, int attempts_now)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(attempts_now)};
    return cx_db_exec("UPDATE agent_commands SET status = 'queued', hold_until = NULL, updated_at = NOW(3) "
                      "WHERE id = ? AND attempts = ? AND status = 'sent'",
                      p, 2, NULL, NULL);
}

/* rows -- the end of a many-command query: its rows as an array of commands; frees res. */
static int rows(int rc, cx_db_result_t *res, cx_command_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (rc == CX_OK && res->nrows > 0) {
        *out = cx_calloc(res->nrows, sizeof(cx_command_t));
        for (size_t i = 0; i < res->nrows && rc == CX_OK; i++)
            if ((rc = fill(res, i, &(*out)[i])) == CX_OK)
                *n = i + 1;
        if (rc != CX_OK) {
            cx_db_commands_free(*out, *n);
            *out = NULL;
            *n = 0;
        }
    }
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_due(int64_t settle_ms, int64_t redeliver_ms, uint64_t after_seq, int limit, cx_command_t **out, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_INT((long long)after_seq), CX_DB_P_INT(settle_ms * 1000), CX_DB_P_INT(redeliver_ms * 1000),
                         CX_DB_P_INT(limit)};
    cx_db_result_t *res = NULL;
    int rc;

    *out = NULL;
    *n = 0;
    rc =
        cx_db_exec("SELECT " CMD_COLS " FROM agent_commands c WHERE c.seq > ? AND ((c.status = 'queued' AND c.updated_at <= "
                   "NOW(3) - INTERVAL ? MICROSECOND) OR (c.status = 'sent' AND c.last_sent_at <= NOW(3) - INTERVAL ? MICROSECOND)) "
                   "AND " DELIVERABLE("c") " ORDER BY c.seq LIMIT ?",
                   p, 4, &res, NULL);
    return rows(rc, res, out, n);
}

int cx_db_commands_backlog(const char *agent_id, const char *pipeline_id, uint64_t seq, int limit, cx_command_t **out, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id), CX_DB_P_STR(pipeline_id && *pipeline_id ? pipeline_id : NULL),
                         CX_DB_P_INT((long long)seq), CX_DB_P_INT(limit)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE status = 'queued' AND agent_id = ? AND pipeline_id <=> ? "
                        "AND seq <= ? AND expires_at > NOW(3) ORDER BY seq LIMIT ?",
                        p, 4, &res, NULL);
    return rows(rc, res, out, n);
}

int cx_db_commands_expire(uint64_t *n)
{
    return cx_db_exec("UPDATE agent_commands SET status = 'expired', hold_until = NULL, updated_at = NOW(3) "
                      "WHERE status IN " CX_COMMAND_OUTSTANDING_SQL " AND expires_at <= NOW(3)",
                      NULL, 0, NULL, n);
}

int cx_db_commands_cancel_run(const char *run_id, uint64_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_STR(run_id)};
    return cx_db_exec("UPDATE agent_commands SET status = 'cancelled', hold_until = NULL, updated_at = NOW(3) "
                      "WHERE run_id = ? AND status IN " CX_COMMAND_OUTSTANDING_SQL,
                      p, 1, NULL, n);
}

int cx_db_commands_cancel_runs(const char *const *run_ids, size_t n, uint64_t *count)
{
    *count = 0;
    if (n == 0)
        return CX_OK;
    return update_in("UPDATE agent_commands SET status = 'cancelled', hold_until = NULL, updated_at = NOW(3) WHERE status "
                     "IN " CX_COMMAND_OUTSTANDING_SQL " AND run_id IN (",
                     run_ids, n, count);
}

int cx_db_commands_pending(int64_t *n)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT COUNT(*) AS n FROM agent_commands WHERE status IN " CX_COMMAND_OUTSTANDING_SQL
                        " AND expires_at > NOW(3)",
                        NULL, 0, &res, NULL);
    if (rc == CX_OK)
        *n = cx_db_int(res, 0, "n", 0);
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_outstanding(const char *agent_id, cx_command_t **out, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id)};
    cx_db_result_t *res = NULL;
    /* a held start (a fire written ahead of its time) is not the agent's before its time */
    int rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands c WHERE c.agent_id = ? AND " DELIVERABLE(
                            "c") " AND (c.hold_until IS NULL OR c.hold_until <= NOW(3)) ORDER BY c.seq",
                        p, 1, &res, NULL);
    return rows(rc, res, out, n);
}

int cx_db_command_outstanding_for_run(const char *run_id, int stop_only, cx_command_t *c)
{
    cx_db_param_t p[] = {CX_DB_P_STR(run_id)};
    cx_db_result_t *res = NULL;
    int rc =
        cx_db_exec(stop_only ? "SELECT " CMD_COLS " FROM agent_commands WHERE run_id = ? AND type = 'stop_pipeline' "
                               "AND status IN " CX_COMMAND_OUTSTANDING_SQL " AND expires_at > NOW(3) ORDER BY seq DESC LIMIT 1"
                             : "SELECT " CMD_COLS " FROM agent_commands WHERE run_id = ? AND type IN " CX_COMMAND_CONTROL_SQL
                               " AND status IN " CX_COMMAND_OUTSTANDING_SQL " AND expires_at > NOW(3) ORDER BY seq DESC LIMIT 1",
                   p, 1, &res, NULL);
    return first(rc, res, c);
}

int cx_db_command_status_for_run(const char *run_id, cx_command_type_t type, cx_command_status_t *status)
{
    cx_db_param_t p[] = {CX_DB_P_STR(run_id), CX_DB_P_STR(cx_command_type_name(type))};
    cx_db_result_t *res = NULL;
    int rc =
        cx_db_exec("SELECT status FROM agent_commands WHERE run_id = ? AND type = ? ORDER BY seq DESC LIMIT 1", p, 2, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK && cx_command_status_parse(cx_db_value(res, 0, "status"), status) != CX_OK) {
        cx_log_errorx("a command of run %s has an unknown status in agent_commands", run_id);
        rc = CX_ERR;
    }
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_status_for_runs(const char *const *run_ids, size_t n, cx_command_type_t type, int *status)
{
    cx_db_param_t *p;
    cx_db_result_t *res = NULL;
    char *sql;
    int rc;

    for (size_t i = 0; i < n; i++)
        status[i] = -1;
    if (n == 0)
        return CX_OK;
    p = cx_calloc(n + 1, sizeof(*p));
    p[0] = CX_DB_P_STR(cx_command_type_name(type));
    for (size_t i = 0; i < n; i++)
        p[i + 1] = CX_DB_P_STR(run_ids[i]);
    /* newest first: the first row of a run is its newest command of the type */
    sql = cx_db_sql_rows("SELECT run_id, status FROM agent_commands WHERE type = ? AND run_id IN (", "?", ", ", n,
                         ") ORDER BY seq DESC");
    rc = cx_db_exec(sql, p, n + 1, &res, NULL);
    free(sql);
    free(p);
    for (size_t r = 0; rc == CX_OK && r < res->nrows; r++) {
        const char *run = cx_db_value(res, r, "run_id");
        cx_command_status_t st;
        for (size_t i = 0; run != NULL && i < n; i++) {
            if (status[i] >= 0 || strcmp(run_ids[i], run) != 0)
                continue;
            if (cx_command_status_parse(cx_db_value(res, r, "status"), &st) != CX_OK) {
                cx_log_errorx("a command of run %s has an unknown status in agent_commands", run);
                rc = CX_ERR;
                break;
            }
            status[i] = (int)st;
        }
    }
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_stray(const char *agent_id, const char *pipeline_id, int64_t window_ms, cx_stray_t *out)
{
    cx_db_param_t pp[] = {CX_DB_P_STR(pipeline_id)};
    cx_db_param_t pr[] = {CX_DB_P_INT(window_ms * 1000), CX_DB_P_STR(agent_id), CX_DB_P_STR(pipeline_id)};
    cx_db_param_t pc[] = {CX_DB_P_INT(window_ms * 1000), CX_DB_P_STR(agent_id), CX_DB_P_STR(pipeline_id)};
    cx_db_result_t *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = cx_db_exec("SELECT COUNT(*) AS n FROM pipelines WHERE id = ?", pp, 1, &res, NULL)) != CX_OK)
        return rc;
    out->known = cx_db_int(res, 0, "n", 0) > 0;
    cx_db_result_free(res);
    /* the newest run decides: the runs of one pipeline on one agent follow each other */
    if ((rc = cx_db_exec("SELECT id, (status IN " CX_RUN_ACTIVE_SQL " OR ended_at > NOW(3) - INTERVAL ? MICROSECOND) AS recent "
                         "FROM pipeline_runs WHERE agent_id = ? AND pipeline_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                         pr, 3, &res, NULL)) != CX_OK)
        return rc;
    if (res->nrows > 0) {
        cx_db_copy(res, 0, "id", out->last_run, sizeof(out->last_run));
        out->run_recent = cx_db_int(res, 0, "recent", 0) != 0;
        out->known = 1;
    }
    cx_db_result_free(res);
    if ((rc = cx_db_exec("SELECT (created_at > NOW(3) - INTERVAL ? MICROSECOND OR (status IN " CX_COMMAND_OUTSTANDING_SQL
                         " AND expires_at > NOW(3))) AS recent FROM agent_commands WHERE agent_id = ? AND pipeline_id = ? "
                         "AND type = 'stop_pipeline' ORDER BY seq DESC LIMIT 1",
                         pc, 3, &res, NULL)) != CX_OK)
        return rc;
    out->stop_recent = res->nrows > 0 && cx_db_int(res, 0, "recent", 0) != 0;
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_command_result(const char *id, const char *agent_id, int success, const char *message, const char *error)
{
    cx_db_param_t p[] = {
        CX_DB_P_STR(cx_command_status_name(success ? CX_CMDST_ACKED : CX_CMDST_FAILED)),
        CX_DB_P_STR(message),
        CX_DB_P_STR(error),
        CX_DB_P_STR(id),
        CX_DB_P_STR(agent_id),
    };
    uint64_t n = 0;
    int rc = cx_db_exec("UPDATE agent_commands SET status = ?, acked_at = NOW(3), result_message = ?, result_error = ?, "
                        "hold_until = NULL, updated_at = NOW(3) WHERE id = ? AND agent_id = ? AND status IN ('queued', 'sent', "
                        "'expired', 'cancelled')",
                        p, CX_ARRAY_SIZE(p), NULL, &n);
    if (rc != CX_OK)
        return rc;
    if (n == 1)
        return CX_OK;
    /* not changed: unknown, another agent's, or already acknowledged */
    cx_command_t c;
    if ((rc = cx_db_command_load(id, agent_id, &c)) != CX_OK)
        return rc;
    cx_command_free(&c);
    return CX_STATE;
}

int cx_db_commands_results(const cx_command_result_t *r, size_t n, uint64_t *changed)
{
    cx_db_param_t *p;
    char *st, *msg, *err, *in, *sql;
    size_t k = 0, len;
    int rc;

    *changed = 0;
    if (n == 0)
        return CX_OK;
    p = cx_calloc(7 * n, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[k++] = CX_DB_P_STR(r[i].id);
        p[k++] = CX_DB_P_STR(cx_command_status_name(r[i].success ? CX_CMDST_ACKED : CX_CMDST_FAILED));
    }
    for (size_t i = 0; i < n; i++) {
        p[k++] = CX_DB_P_STR(r[i].id);
        p[k++] = CX_DB_P_STR(r[i].message);
    }
    for (size_t i = 0; i < n; i++) {
        p[k++] = CX_DB_P_STR(r[i].id);
        p[k++] = CX_DB_P_STR(r[i].error);
    }
    for (size_t i = 0; i < n; i++)
        p[k++] = CX_DB_P_STR(r[i].id);
    st = cx_db_sql_case("id", "status", n);
    msg = cx_db_sql_case("id", "result_message", n);
    err = cx_db_sql_case("id", "result_error", n);
    in = cx_db_sql_rows("(", "?", ", ", n, ")");
    len = strlen(st) + strlen(msg) + strlen(err) + strlen(in) + 256;
    sql = cx_malloc(len);
    snprintf(sql, len,
             "UPDATE agent_commands SET status = %s, acked_at = NOW(3), result_message = %s, result_error = %s, "
             "hold_until = NULL, updated_at = NOW(3) WHERE id IN %s AND status IN ('queued', 'sent', 'expired', 'cancelled')",
             st, msg, err, in);
    rc = cx_db_exec(sql, p, k, NULL, changed);
    free(sql);
    free(in);
    free(err);
    free(msg);
    free(st);
    free(p);
    return rc;
}

/* ---- held starts: fires written ahead of their time ---- */

/* the held starts, from agent_commands c joined to their runs r (INDEX: a forced index, or nothing) */
#define HELD_SQL(INDEX)                                                                                                            \
    "SELECT c.id AS cmd_id, r.id AS run_id, r.schedule_id, r.pipeline_id, r.scheduled_for FROM agent_commands c " INDEX            \
    " JOIN pipeline_runs r ON r.id = c.run_id "
#define HELD_HOLDING " AND c.hold_until IS NOT NULL AND c.status = 'sent' FOR UPDATE"

int cx_db_held_lock(cx_held_by_t by, const char *key, cx_held_t **out, size_t *n)
{
    /* each found on its own key: the active run of the pipeline (the schedule's), or the agent's sent
     * commands; the locking read waits for a scheduler writing one (or releasing one) to commit */
    static const char *const sql[] = {
        [CX_HELD_PIPELINE] = HELD_SQL("") "WHERE r.active_pipeline_id = ?" HELD_HOLDING,
        [CX_HELD_SCHEDULE] = HELD_SQL("") "JOIN schedules s ON s.id = r.schedule_id WHERE s.id = ? AND r.active_pipeline_id = "
                                          "s.pipeline_id" HELD_HOLDING,
        [CX_HELD_AGENT] =
            HELD_SQL("FORCE INDEX (ix_commands_status_agent_seq)") "WHERE c.status = 'sent' AND c.agent_id = ?" HELD_HOLDING,
    };
    cx_db_param_t p[] = {CX_DB_P_STR(key)};
    cx_db_result_t *res = NULL;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = cx_db_exec(sql[by], p, 1, &res, NULL)) != CX_OK)
        return rc;
    if (res->nrows > 0) {
        *out = cx_calloc(res->nrows, sizeof(cx_held_t));
        for (size_t i = 0; i < res->nrows; i++) {
            cx_held_t *h = &(*out)[i];
            cx_db_copy(res, i, "cmd_id", h->cmd_id, sizeof(h->cmd_id));
            cx_db_copy(res, i, "run_id", h->run_id, sizeof(h->run_id));
            cx_db_copy(res, i, "schedule_id", h->schedule_id, sizeof(h->schedule_id));
            cx_db_copy(res, i, "pipeline_id", h->pipeline_id, sizeof(h->pipeline_id));
            h->scheduled_for = cx_db_time_ms(cx_db_value(res, i, "scheduled_for"));
        }
        *n = res->nrows;
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_held_undo(const cx_held_t *h, int rewind)
{
    char at[32];
    cx_db_param_t pc[] = {CX_DB_P_STR(h->cmd_id)}, pr[] = {CX_DB_P_STR(h->run_id)};
    int rc;

    cx_db_time_text(h->scheduled_for, at);
    cx_db_param_t ps[] = {CX_DB_P_INT(rewind ? 1 : 0), CX_DB_P_STR(at), CX_DB_P_STR(at), CX_DB_P_STR(h->schedule_id)};
    if ((rc = cx_db_exec("DELETE FROM agent_commands WHERE id = ?", pc, 1, NULL, NULL)) != CX_OK ||
        (rc = cx_db_exec("DELETE FROM pipeline_runs WHERE id = ?", pr, 1, NULL, NULL)) != CX_OK)
        return rc;
    /* the fire no longer counts; its schedule names its run before it again, and with rewind is due at
     * the fire's time again */
    return cx_db_exec("UPDATE schedules s SET s.fires = GREATEST(s.fires - 1, 0), s.next_run_at = IF(? = 1 AND "
                      "(s.next_run_at IS NULL OR s.next_run_at > ?), ?, s.next_run_at), s.last_run_id = (SELECT r.id FROM "
                      "pipeline_runs r WHERE r.pipeline_id = s.pipeline_id AND r.schedule_id = s.id ORDER BY r.created_at DESC "
                      "LIMIT 1) WHERE s.id = ?",
                      ps, CX_ARRAY_SIZE(ps), NULL, NULL);
}

int cx_db_held_unhold(cx_held_by_t by, const char *key, int rewind, const char *actor, const char *request_id, const char *why,
                      size_t *undone)
{
    cx_held_t *h = NULL;
    size_t n = 0;
    int rc;

    if (undone != NULL)
        *undone = 0;
    if ((rc = cx_db_held_lock(by, key, &h, &n)) != CX_OK)
        return rc;
    for (size_t i = 0; rc == CX_OK && i < n; i++) {
        char at[32];
        json_object *before = json_object_new_object();
        cx_db_time_text(h[i].scheduled_for, at);
        json_object_object_add(before, "run_id", json_object_new_string(h[i].run_id));
        json_object_object_add(before, "command_id", json_object_new_string(h[i].cmd_id));
        json_object_object_add(before, "schedule_id", json_object_new_string(h[i].schedule_id));
        json_object_object_add(before, "scheduled_for", json_object_new_string(at));
        json_object_object_add(before, "reason", json_object_new_string(why));
        if ((rc = cx_db_held_undo(&h[i], rewind)) == CX_OK)
            rc = cx_audit_write(actor, "schedule_fire_undone", "pipeline", h[i].pipeline_id, request_id, before, NULL);
        json_object_put(before);
        if (rc == CX_OK)
            cx_log_info("schedule %s: the fire for %s UTC written ahead of its time is undone (run %s): %s%s", h[i].schedule_id, at,
                        h[i].run_id, why, rewind ? "; it fires at its time" : "");
    }
    if (rc == CX_OK && n > 0)
        cx_shm_count(CX_C_SCHEDULE_UNDONE, n);
    if (rc == CX_OK && undone != NULL)
        *undone = n;
    free(h);
    return rc;
}
