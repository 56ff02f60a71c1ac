/*
 * src/db/commands.c -- the agent_commands table, the durable command outbox (commands.h): insert, the
 * per-attempt delivery claim, redelivery and expiry scans, acknowledgements, and the JSON shapes of a
 * command (API and wire).
 *
 * Every time comparison uses the database clock (NOW(3)), so replicas with skewed clocks agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/commands.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"

#define CMD_COLS                                                                                                                   \
    "id, seq, agent_id, type, pipeline_id, run_id, payload, status, attempts, created_at, expires_at, last_sent_at, acked_at, "    \
    "result_message, result_error"

#define CONTROL_TYPES "('stop_pipeline', 'pause_pipeline', 'resume_pipeline')"

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

static void fill(const cx_db_result_t *res, size_t i, cx_command_t *c)
{
    const char *v;

    memset(c, 0, sizeof(*c));
    copy(c->id, sizeof(c->id), cx_db_value(res, i, "id"));
    c->seq = (v = cx_db_value(res, i, "seq")) ? strtoull(v, NULL, 10) : 0;
    copy(c->agent_id, sizeof(c->agent_id), cx_db_value(res, i, "agent_id"));
    copy(c->type, sizeof(c->type), cx_db_value(res, i, "type"));
    copy(c->pipeline_id, sizeof(c->pipeline_id), cx_db_value(res, i, "pipeline_id"));
    copy(c->run_id, sizeof(c->run_id), cx_db_value(res, i, "run_id"));
    c->payload = (v = cx_db_value(res, i, "payload")) ? cx_strdup(v) : NULL;
    copy(c->status, sizeof(c->status), cx_db_value(res, i, "status"));
    c->attempts = (v = cx_db_value(res, i, "attempts")) ? atoi(v) : 0;
    cx_db_time_iso(cx_db_value(res, i, "created_at"), c->created_at);
    cx_db_time_iso(cx_db_value(res, i, "expires_at"), c->expires_at);
    cx_db_time_iso(cx_db_value(res, i, "last_sent_at"), c->last_sent_at);
    cx_db_time_iso(cx_db_value(res, i, "acked_at"), c->acked_at);
    c->result_message = (v = cx_db_value(res, i, "result_message")) ? cx_strdup(v) : NULL;
    c->result_error = (v = cx_db_value(res, i, "result_error")) ? cx_strdup(v) : NULL;
}

/* first -- the end of a one-command query: its first row into c, CX_NOTFOUND when it found none; frees
 * res. */
static int first(int rc, cx_db_result_t *res, cx_command_t *c)
{
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        fill(res, 0, c);
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

int cx_command_is_control(const char *type)
{
    return type != NULL &&
           (strcmp(type, "stop_pipeline") == 0 || strcmp(type, "pause_pipeline") == 0 || strcmp(type, "resume_pipeline") == 0);
}

static json_object *str_or_null(const char *s)
{
    return s != NULL && *s ? json_object_new_string(s) : NULL;
}

/* payload -- the stored payload as a JSON object (never a string); {} when absent or unreadable. */
static json_object *payload(const cx_command_t *c)
{
    json_object *p = c->payload ? json_tokener_parse(c->payload) : NULL;
    if (p != NULL && !json_object_is_type(p, json_type_object)) {
        json_object_put(p);
        p = NULL;
    }
    if (p == NULL && c->payload != NULL)
        cx_log_warnx("command %s: stored payload is not a JSON object", c->id);
    return p != NULL ? p : json_object_new_object();
}

json_object *cx_command_json(const cx_command_t *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(c->id));
    json_object_object_add(o, "agent_id", json_object_new_string(c->agent_id));
    json_object_object_add(o, "type", json_object_new_string(c->type));
    json_object_object_add(o, "pipeline_id", str_or_null(c->pipeline_id));
    json_object_object_add(o, "run_id", str_or_null(c->run_id));
    json_object_object_add(o, "payload", payload(c));
    json_object_object_add(o, "status", json_object_new_string(c->status));
    json_object_object_add(o, "attempts", json_object_new_int(c->attempts));
    json_object_object_add(o, "created_at", str_or_null(c->created_at));
    json_object_object_add(o, "expires_at", str_or_null(c->expires_at));
    json_object_object_add(o, "last_sent_at", str_or_null(c->last_sent_at));
    json_object_object_add(o, "acked_at", str_or_null(c->acked_at));
    if (c->acked_at[0]) {
        json_object_object_add(o, "result_message", str_or_null(c->result_message));
        json_object_object_add(o, "result_error", str_or_null(c->result_error));
    }
    return o;
}

json_object *cx_command_wire_json(const cx_command_t *c, int attempt, const char *timestamp)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(c->id));
    json_object_object_add(o, "type", json_object_new_string(c->type));
    if (c->pipeline_id[0])
        json_object_object_add(o, "pipeline_id", json_object_new_string(c->pipeline_id));
    json_object_object_add(o, "payload", payload(c));
    json_object_object_add(o, "timestamp", json_object_new_string(timestamp));
    json_object_object_add(o, "expires_at", json_object_new_string(c->expires_at));
    json_object_object_add(o, "attempt", json_object_new_int(attempt));
    return o;
}

int cx_db_command_insert(const char *id, const char *agent_id, const char *type, const char *pipeline_id, const char *run_id,
                         const char *payload_json, int64_t ttl_ms, const char *created_by)
{
    cx_db_param_t p[] = {
        CX_DB_P_STR(id),     CX_DB_P_STR(agent_id),     CX_DB_P_STR(type),       CX_DB_P_STR(pipeline_id),
        CX_DB_P_STR(run_id), CX_DB_P_STR(payload_json), CX_DB_P_STR(created_by), CX_DB_P_INT(ttl_ms * 1000),
    };
    return cx_db_exec("INSERT INTO agent_commands (id, agent_id, type, pipeline_id, run_id, payload, status, created_by, "
                      "created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, NOW(3), NOW(3), "
                      "NOW(3) + INTERVAL ? MICROSECOND)",
                      p, CX_ARRAY_SIZE(p), NULL, NULL);
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

int cx_db_command_claim(const char *id, int attempts_seen)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(attempts_seen)};
    uint64_t n = 0;
    int rc = cx_db_exec("UPDATE agent_commands SET status = 'sent', attempts = attempts + 1, last_sent_at = NOW(3), "
                        "updated_at = NOW(3) WHERE id = ? AND attempts = ? AND status IN ('queued', 'sent') "
                        "AND expires_at > NOW(3)",
                        p, 2, NULL, &n);
    if (rc != CX_OK)
        return rc;
    return n == 1 ? CX_OK : CX_CONFLICT;
}

int cx_db_command_unheard(const char *id, int attempts_now)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(attempts_now)};
    return cx_db_exec("UPDATE agent_commands SET status = 'queued', attempts = attempts - 1, updated_at = NOW(3) "
                      "WHERE id = ? AND attempts = ? AND status = 'sent'",
                      p, 2, NULL, NULL);
}

int cx_db_command_unclaim(const char *id, int attempts_now)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id), CX_DB_P_INT(attempts_now)};
    return cx_db_exec("UPDATE agent_commands SET status = 'queued', updated_at = NOW(3) "
                      "WHERE id = ? AND attempts = ? AND status = 'sent'",
                      p, 2, NULL, NULL);
}

/* rows -- the result's rows as an array of commands. */
static void rows(cx_db_result_t *res, cx_command_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (res->nrows == 0)
        return;
    *out = cx_calloc(res->nrows, sizeof(cx_command_t));
    for (size_t i = 0; i < res->nrows; i++)
        fill(res, i, &(*out)[i]);
    *n = res->nrows;
}

int cx_db_commands_due(int64_t redeliver_ms, int limit, cx_command_t **out, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_INT(redeliver_ms * 1000), CX_DB_P_INT(limit)};
    cx_db_result_t *res = NULL;
    int rc;

    *out = NULL;
    *n = 0;
    rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE (status = 'queued' OR (status = 'sent' AND "
                    "last_sent_at <= NOW(3) - INTERVAL ? MICROSECOND)) AND expires_at > NOW(3) ORDER BY seq LIMIT ?",
                    p, 2, &res, NULL);
    if (rc == CX_OK)
        rows(res, out, n);
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_backlog(const char *agent_id, uint64_t seq, int limit, cx_command_t **out, size_t *n)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id), CX_DB_P_INT((long long)seq), CX_DB_P_INT(limit)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE status = 'queued' AND agent_id = ? AND seq <= ? "
                        "AND expires_at > NOW(3) ORDER BY seq LIMIT ?",
                        p, 3, &res, NULL);
    *out = NULL;
    *n = 0;
    if (rc == CX_OK)
        rows(res, out, n);
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_expire(uint64_t *n)
{
    return cx_db_exec("UPDATE agent_commands SET status = 'expired', updated_at = NOW(3) "
                      "WHERE status IN ('queued', 'sent') AND expires_at <= NOW(3)",
                      NULL, 0, NULL, n);
}

int cx_db_commands_expire_run(const char *run_id)
{
    cx_db_param_t p[] = {CX_DB_P_STR(run_id)};
    return cx_db_exec("UPDATE agent_commands SET status = 'expired', updated_at = NOW(3) "
                      "WHERE run_id = ? AND status IN ('queued', 'sent')",
                      p, 1, NULL, NULL);
}

int cx_db_commands_pending(int64_t *n)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT COUNT(*) AS n FROM agent_commands WHERE status IN ('queued', 'sent') AND expires_at > NOW(3)", NULL,
                        0, &res, NULL);
    if (rc == CX_OK) {
        const char *v = cx_db_value(res, 0, "n");
        *n = v ? strtoll(v, NULL, 10) : 0;
    }
    cx_db_result_free(res);
    return rc;
}

int cx_db_commands_outstanding(const char *agent_id, json_object **arr)
{
    cx_db_param_t p[] = {CX_DB_P_STR(agent_id)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE agent_id = ? AND status IN ('queued', 'sent') "
                        "AND expires_at > NOW(3) ORDER BY seq",
                        p, 1, &res, NULL);
    if (rc != CX_OK)
        return rc;
    *arr = json_object_new_array();
    for (size_t i = 0; i < res->nrows; i++) {
        cx_command_t c;
        fill(res, i, &c);
        /* the protocol message (timestamp = when the row was written), plus what the API adds */
        json_object *o = cx_command_wire_json(&c, c.attempts, c.created_at);
        json_object_object_add(o, "agent_id", json_object_new_string(c.agent_id));
        json_object_object_add(o, "run_id", str_or_null(c.run_id));
        json_object_object_add(o, "status", json_object_new_string(c.status));
        json_object_object_add(o, "attempts", json_object_new_int(c.attempts));
        json_object_object_add(o, "created_at", json_object_new_string(c.created_at));
        json_object_array_add(*arr, o);
        cx_command_free(&c);
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_command_outstanding_for_run(const char *run_id, const char *type, cx_command_t *c)
{
    cx_db_result_t *res = NULL;
    int rc;

    if (type != NULL) {
        cx_db_param_t p[] = {CX_DB_P_STR(run_id), CX_DB_P_STR(type)};
        rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE run_id = ? AND type = ? AND status IN ('queued', 'sent') "
                        "AND expires_at > NOW(3) ORDER BY seq DESC LIMIT 1",
                        p, 2, &res, NULL);
    } else {
        cx_db_param_t p[] = {CX_DB_P_STR(run_id)};
        rc = cx_db_exec("SELECT " CMD_COLS " FROM agent_commands WHERE run_id = ? AND type IN " CONTROL_TYPES
                        " AND status IN ('queued', 'sent') AND expires_at > NOW(3) ORDER BY seq DESC LIMIT 1",
                        p, 1, &res, NULL);
    }
    return first(rc, res, c);
}

int cx_db_command_status_for_run(const char *run_id, const char *type, char status[17])
{
    cx_db_param_t p[] = {CX_DB_P_STR(run_id), CX_DB_P_STR(type)};
    cx_db_result_t *res = NULL;
    int rc =
        cx_db_exec("SELECT status FROM agent_commands WHERE run_id = ? AND type = ? ORDER BY seq DESC LIMIT 1", p, 2, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        copy(status, 17, cx_db_value(res, 0, "status"));
    cx_db_result_free(res);
    return rc;
}

int cx_db_command_result(const char *id, const char *agent_id, int success, const char *message, const char *error)
{
    cx_db_param_t p[] = {
        CX_DB_P_STR(success ? "acked" : "failed"), CX_DB_P_STR(message), CX_DB_P_STR(error), CX_DB_P_STR(id), CX_DB_P_STR(agent_id),
    };
    uint64_t n = 0;
    int rc = cx_db_exec("UPDATE agent_commands SET status = ?, acked_at = NOW(3), result_message = ?, result_error = ?, "
                        "updated_at = NOW(3) WHERE id = ? AND agent_id = ? AND status IN ('queued', 'sent', 'expired')",
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
