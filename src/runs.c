/*
 * runs.c -- pipeline runs on agents (runs.h): the lifecycle operations behind the API (start, stop,
 * pause, resume), command delivery attempts, and the bookkeeping the other children drive: acks and
 * run events (dispatcher), heartbeats and agents going offline (hbmon). Every function works on the
 * calling process's own MySQL and Redis connections, so it runs the same in a worker, the dispatcher
 * or hbmon.
 *
 * A run's status follows the agent: acknowledgements, run events and heartbeats move it; the API only
 * writes commands. The rules (docs/api.md, "Lifecycle and commands"):
 *   - a command is written with its run and audit row in one transaction, then published at once when
 *     Redis is up and no older command of the same agent still waits (seq order), else left queued;
 *   - a control command is refused while an earlier one for the run awaits its acknowledgement, unless
 *     the run already reached what that one asked (legacy agents never acknowledge);
 *   - legacy agents: a pending run listed in a heartbeat is running; a run absent from the heartbeats
 *     after a stop was asked is stopped; a pending run whose start expired unacknowledged and that the
 *     agent does not list is failed; a run that has been running for heartbeat_timeout and is no longer
 *     listed (without a stop) is failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/audit.h"
#include "conduix/commands.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/redis.h"
#include "conduix/runs.h"
#include "conduix/shm.h"

#define SYSTEM_ACTOR "system"

void cx_runs_result_free(cx_runs_result_t *res)
{
    if (res == NULL)
        return;
    if (res->run)
        json_object_put(res->run);
    if (res->command)
        json_object_put(res->command);
    res->run = res->command = NULL;
}

static const char *json_text(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* undo -- end a transaction that went wrong and pass rc on. */
static int undo(int rc)
{
    if (cx_db_in_tx())
        cx_db_rollback();
    return rc;
}

int cx_runs_deliver(struct cx_command *c)
{
    char ts[32];
    json_object *wire;
    const char *text;
    int rc, attempt = c->attempts + 1;

    if ((rc = cx_db_command_claim(c->id, c->attempts)) != CX_OK)
        return rc;
    cx_time_format(cx_wall_ms() / 1000, ts);
    wire = cx_command_wire_json(c, attempt, ts);
    text = json_text(wire);
    rc = cx_redis_command_publish(c->agent_id, text, strlen(text));
    json_object_put(wire);
    if (rc == CX_NOTFOUND) {
        /* Nobody subscribed (the agent is reconnecting, or polls REST): not a delivery. */
        if (cx_db_command_unheard(c->id, attempt) != CX_OK)
            cx_log_warnx("command %s: published to nobody and could not be queued again; it will be redelivered", c->id);
        snprintf(c->status, sizeof(c->status), "queued");
        return CX_NOTFOUND;
    }
    if (rc != CX_OK) {
        /* Not delivered (or not known to be): back to the queue; the number stays used. */
        if (cx_db_command_unclaim(c->id, attempt) != CX_OK)
            cx_log_warnx("command %s: publish failed and the command could not be queued again; it will be redelivered", c->id);
        c->attempts = attempt;
        snprintf(c->status, sizeof(c->status), "queued");
        return CX_UNAVAIL;
    }
    c->attempts = attempt;
    snprintf(c->status, sizeof(c->status), "sent");
    cx_shm_count(attempt == 1 ? CX_C_COMMANDS_DELIVERED : CX_C_COMMANDS_REDELIVERED, 1);
    cx_log_debug("command %s (%s) attempt %d published to agent %s", c->id, c->type, attempt, c->agent_id);
    return CX_OK;
}

#define BACKLOG_MAX 16 /* older queued commands a request publishes before its own; more: the dispatcher's job */

/* deliver_now -- right after the commit: publish command id, after the older queued commands of its
 * agent (seq order per agent), unless Redis is known to be down or the backlog is long; stop at the
 * first command someone else is delivering, so nothing is published out of order. Then describe it in
 * res (status sent: 200; still queued: 202). */
static void deliver_now(const char *id, cx_runs_result_t *res)
{
    cx_command_t c, *backlog = NULL;
    size_t n = 0;

    if (cx_db_command_load(id, NULL, &c) != CX_OK)
        return; /* committed: the dispatcher will deliver it; res keeps the command as written */
    /* not while the breaker is open: a failed publish would use up an attempt number */
    if (cx_redis_available() && strcmp(c.status, "queued") == 0 &&
        cx_db_commands_backlog(c.agent_id, c.seq, BACKLOG_MAX + 1, &backlog, &n) == CX_OK && n <= BACKLOG_MAX) {
        for (size_t i = 0; i < n; i++)
            if (cx_runs_deliver(&backlog[i]) != CX_OK)
                break;
    }
    cx_db_commands_free(backlog, n);
    cx_command_free(&c);
    if (cx_db_command_load(id, NULL, &c) != CX_OK)
        return;
    if (res->command)
        json_object_put(res->command);
    res->command = cx_command_json(&c);
    res->delivered = strcmp(c.status, "queued") != 0;
    cx_command_free(&c);
}

/* load_json -- after the writes of a transaction: the run and the command as API JSON into res. */
static int load_json(const char *run_id, const char *cmd_id, cx_runs_result_t *res)
{
    cx_run_t run;
    cx_command_t c;
    int rc;

    if ((rc = cx_db_run_get(run_id, &run)) != CX_OK)
        return rc == CX_NOTFOUND ? CX_ERR : rc;
    res->run = cx_run_json(&run);
    cx_run_free(&run);
    if ((rc = cx_db_command_load(cmd_id, NULL, &c)) != CX_OK)
        return rc == CX_NOTFOUND ? CX_ERR : rc;
    res->command = cx_command_json(&c);
    cx_command_free(&c);
    return CX_OK;
}

static void audit(const char *actor, const char *action, const char *type, const char *id, const char *request_id,
                  json_object *before, cx_runs_result_t *res, int *rc)
{
    json_object *after = json_object_new_object();
    if (res != NULL) {
        json_object_object_add(after, "run", json_object_get(res->run));
        json_object_object_add(after, "command", json_object_get(res->command));
    }
    *rc = cx_audit_write(actor, action, type, id, request_id, before, after);
    json_object_put(after);
}

/* launch -- the transaction of a start: run (pending) + start_pipeline command (queued) + audit row, on
 * agent_id or else the least loaded online agent other than exclude; then one delivery attempt. */
static int launch(const cx_runs_start_opts_t *o, const char *exclude, const char *failover_of, json_object *checkpoint,
                  const char *action, cx_runs_result_t *res)
{
    const char *pipeline_id = o->pipeline_id, *agent_id = o->agent_id, *actor = o->actor, *request_id = o->request_id;
    const char *trigger = o->trigger != NULL ? o->trigger : "manual";
    char agent[256], run_id[37], cmd_id[37];
    char *yaml = NULL;
    cx_run_t cur;
    json_object *payload = NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = cx_db_runs_pipeline(pipeline_id, &yaml)) != CX_OK)
        goto out;
    /* a plain read: a locking one would take a gap lock that deadlocks two concurrent starts, whose
     * inserts the unique key uq_runs_active must arbitrate instead */
    if ((rc = cx_db_run_active(pipeline_id, 0, &cur)) == CX_OK) {
        snprintf(res->message, sizeof(res->message), "pipeline is already running (run %s is %s)", cur.id, cur.status);
        cx_run_free(&cur);
        rc = CX_STATE;
        goto out;
    }
    if (rc != CX_NOTFOUND)
        goto out;
    if (agent_id != NULL) {
        rc = cx_db_runs_agent_online(agent_id);
        if (rc == CX_NOTFOUND || rc == CX_STATE) {
            snprintf(res->message, sizeof(res->message), "agent %.200s is %s", agent_id,
                     rc == CX_NOTFOUND ? "not registered" : "not online");
            rc = CX_NOAGENT;
        }
        if (rc != CX_OK)
            goto out;
        snprintf(agent, sizeof(agent), "%s", agent_id);
    } else if ((rc = cx_db_runs_pick_agent(exclude, agent)) != CX_OK) {
        if (rc == CX_NOTFOUND) {
            snprintf(res->message, sizeof(res->message), "no agent is online%s",
                     exclude ? " (other than the one that went offline)" : "");
            rc = CX_NOAGENT;
        }
        goto out;
    }
    cx_uuid(run_id);
    cx_uuid(cmd_id);
    payload = json_object_new_object();
    json_object_object_add(payload, "run_id", json_object_new_string(run_id));
    json_object_object_add(payload, "config_yaml", json_object_new_string(yaml));
    json_object_object_add(payload, "checkpoint", checkpoint ? json_object_get(checkpoint) : NULL);
    rc = cx_db_run_insert(run_id, pipeline_id, agent, trigger, failover_of, checkpoint ? json_text(checkpoint) : NULL, actor,
                          o->schedule_id, o->scheduled_for);
    if (rc == CX_CONFLICT && strcmp(cx_db_conflict_key(), "uq_runs_fire") == 0) {
        snprintf(res->message, sizeof(res->message), "this scheduled fire already has a run");
    } else if (rc == CX_CONFLICT) {
        /* uq_runs_active: a concurrent start won */
        snprintf(res->message, sizeof(res->message), "pipeline is already running");
        rc = CX_STATE;
    }
    if (rc != CX_OK)
        goto out;
    if ((rc = cx_db_command_insert(cmd_id, agent, "start_pipeline", pipeline_id, run_id, json_text(payload),
                                   cx_cfg->commands.ttl_ms, actor)) != CX_OK)
        goto out;
    if ((rc = load_json(run_id, cmd_id, res)) != CX_OK)
        goto out;
    audit(actor, action, "pipeline", pipeline_id, request_id, NULL, res, &rc);
    if (rc != CX_OK)
        goto out;
    if ((rc = cx_db_commit()) != CX_OK)
        goto out;
    cx_shm_count(CX_C_RUNS_STARTED, 1);
    cx_shm_count(CX_C_COMMANDS_CREATED, 1);
    cx_log_info("run %s of pipeline %s created on agent %s (%s)", run_id, pipeline_id, agent, trigger);
    deliver_now(cmd_id, res);
out:
    free(yaml);
    if (payload)
        json_object_put(payload);
    if (rc != CX_OK) {
        cx_runs_result_free(res);
        return undo(rc);
    }
    return CX_OK;
}

int cx_runs_start(const char *pipeline_id, const char *agent_id, const char *actor, const char *request_id, cx_runs_result_t *res)
{
    cx_runs_start_opts_t o = {.pipeline_id = pipeline_id, .agent_id = agent_id, .actor = actor, .request_id = request_id};
    return launch(&o, NULL, NULL, NULL, "pipeline_start", res);
}

int cx_runs_start_ex(const cx_runs_start_opts_t *o, cx_runs_result_t *res)
{
    return launch(o, NULL, NULL, NULL, "pipeline_start", res);
}

/* goal -- the run status a control command asks for. */
static const char *goal(const char *type)
{
    if (strcmp(type, "stop_pipeline") == 0)
        return "stopped";
    if (strcmp(type, "pause_pipeline") == 0)
        return "paused";
    if (strcmp(type, "resume_pipeline") == 0)
        return "running";
    return "";
}

/* control_refused -- why the active run cannot take a command of type now (message into res), or 0. */
static int control_refused(const cx_run_t *run, const char *type, cx_runs_result_t *res)
{
    cx_command_t c;
    int rc;

    if (strcmp(type, "pause_pipeline") == 0 && strcmp(run->status, "running") != 0) {
        snprintf(res->message, sizeof(res->message), "pipeline is not running (run %s is %s)", run->id, run->status);
        return CX_STATE;
    }
    if (strcmp(type, "resume_pipeline") == 0 && strcmp(run->status, "paused") != 0) {
        snprintf(res->message, sizeof(res->message), "pipeline is not paused (run %s is %s)", run->id, run->status);
        return CX_STATE;
    }
    /* A stop is refused only behind another stop; pause/resume behind any control command that has not
     * been acknowledged and whose goal the run has not reached by other means (events, heartbeats). */
    rc = cx_db_command_outstanding_for_run(run->id, strcmp(type, "stop_pipeline") == 0 ? "stop_pipeline" : NULL, &c);
    if (rc == CX_NOTFOUND)
        return 0;
    if (rc != CX_OK)
        return rc;
    if (strcmp(c.type, "stop_pipeline") == 0 || strcmp(goal(c.type), run->status) != 0) {
        snprintf(res->message, sizeof(res->message), "%s: a %s command (%s) for run %s still awaits the agent's acknowledgement",
                 strcmp(c.type, "stop_pipeline") == 0 ? "pipeline is stopping" : "pipeline is changing state", c.type, c.id,
                 run->id);
        rc = CX_STATE;
    } else {
        rc = 0;
    }
    cx_command_free(&c);
    return rc;
}

/* control -- the transaction of a stop/pause/resume; with force_status the run also takes that status
 * at once (a pipeline deleted with ?force=true does not wait for the agent). */
static int control(const char *pipeline_id, const char *type, const char *force_status, const char *actor, const char *request_id,
                   cx_runs_result_t *res)
{
    cx_run_t run;
    char cmd_id[37];
    json_object *payload = NULL, *before = NULL;
    int rc, have_run = 0;
    char action[32];

    memset(res, 0, sizeof(*res));
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = cx_db_runs_pipeline(pipeline_id, NULL)) != CX_OK)
        goto out;
    if ((rc = cx_db_run_active(pipeline_id, 1, &run)) == CX_NOTFOUND) {
        snprintf(res->message, sizeof(res->message), "pipeline is not %s",
                 strcmp(type, "resume_pipeline") == 0 ? "paused" : "running");
        rc = CX_STATE;
    }
    if (rc != CX_OK)
        goto out;
    have_run = 1;
    if (force_status == NULL && (rc = control_refused(&run, type, res)) != 0)
        goto out;
    before = cx_run_json(&run);
    cx_uuid(cmd_id);
    payload = json_object_new_object();
    json_object_object_add(payload, "run_id", json_object_new_string(run.id));
    if ((rc = cx_db_command_insert(cmd_id, run.agent_id, type, pipeline_id, run.id, json_text(payload), cx_cfg->commands.ttl_ms,
                                   actor)) != CX_OK)
        goto out;
    if (force_status != NULL && (rc = cx_db_run_transition(run.id, run.status, force_status, "the pipeline was deleted")) != CX_OK)
        goto out;
    if ((rc = load_json(run.id, cmd_id, res)) != CX_OK)
        goto out;
    snprintf(action, sizeof(action), "pipeline_%.*s", (int)(strchr(type, '_') - type), type);
    audit(actor, action, "pipeline", pipeline_id, request_id, before, res, &rc);
    if (rc != CX_OK)
        goto out;
    if ((rc = cx_db_commit()) != CX_OK)
        goto out;
    cx_shm_count(CX_C_COMMANDS_CREATED, 1);
    cx_log_info("%s for run %s of pipeline %s queued for agent %s", type, run.id, pipeline_id, run.agent_id);
    deliver_now(cmd_id, res);
out:
    if (have_run)
        cx_run_free(&run);
    if (payload)
        json_object_put(payload);
    if (before)
        json_object_put(before);
    if (rc != CX_OK) {
        cx_runs_result_free(res);
        return undo(rc);
    }
    return CX_OK;
}

int cx_runs_control(const char *pipeline_id, const char *type, const char *actor, const char *request_id, cx_runs_result_t *res)
{
    if (!cx_command_is_control(type))
        return CX_INVALID;
    return control(pipeline_id, type, NULL, actor, request_id, res);
}

int cx_runs_force_stop(const char *pipeline_id, const char *actor, const char *request_id)
{
    cx_runs_result_t res;
    int rc = control(pipeline_id, "stop_pipeline", "stopped", actor, request_id, &res);
    if (rc == CX_STATE)
        rc = CX_OK; /* no active run (any more): nothing to stop */
    cx_runs_result_free(&res);
    return rc;
}

/* ack_effect -- what an acknowledged command does to its run (inside the ack's transaction). */
static int ack_effect(const cx_command_t *c, int success, const char *message, const char *error)
{
    cx_run_t run;
    const char *to = NULL, *from_only = NULL;
    char why[512];
    int rc;

    if (!c->run_id[0])
        return CX_OK;
    if ((rc = cx_db_run_get(c->run_id, &run)) != CX_OK)
        return rc == CX_NOTFOUND ? CX_OK : rc;
    if (strcmp(c->type, "start_pipeline") == 0) {
        if (success) {
            to = "running";
            from_only = "pending";
        } else {
            to = "failed";
        }
    } else if (success) {
        to = goal(c->type);
        if (strcmp(c->type, "pause_pipeline") == 0)
            from_only = "running";
        else if (strcmp(c->type, "resume_pipeline") == 0)
            from_only = "paused";
    }
    rc = CX_OK;
    if (to != NULL && *to && (from_only == NULL || strcmp(run.status, from_only) == 0) && cx_run_transition_legal(run.status, to)) {
        const char *err = NULL;
        if (strcmp(to, "failed") == 0) {
            snprintf(why, sizeof(why), "%s",
                     error && *error       ? error
                     : message && *message ? message
                                           : "the agent refused start_pipeline");
            err = why;
        }
        rc = cx_db_run_transition(run.id, run.status, to, err);
        if (rc == CX_STATE)
            rc = CX_OK; /* changed meanwhile: the newer word stands */
        if (rc == CX_OK)
            cx_log_info("run %s: %s -> %s (%s acknowledged by agent %s)", run.id, run.status, to, c->type, c->agent_id);
    } else if (!success) {
        cx_log_info("agent %s refused %s %s for run %s: %s", c->agent_id, c->type, c->id, run.id,
                    error     ? error
                    : message ? message
                              : "");
    }
    cx_run_free(&run);
    return rc;
}

int cx_runs_ack(const char *agent_id, const char *command_id, int success, const char *message, const char *error,
                json_object **cmd)
{
    cx_command_t c;
    int rc, repeated = 0;

    if (cmd)
        *cmd = NULL;
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    rc = cx_db_command_result(command_id, agent_id, success, message, error);
    if (rc == CX_STATE) {
        repeated = 1;
        rc = CX_OK;
    }
    if (rc != CX_OK)
        return undo(rc);
    if ((rc = cx_db_command_load(command_id, agent_id, &c)) != CX_OK)
        return undo(rc);
    if (!repeated && (rc = ack_effect(&c, success, message, error)) != CX_OK) {
        cx_command_free(&c);
        return undo(rc);
    }
    if ((rc = repeated ? cx_db_rollback() : cx_db_commit()) != CX_OK) {
        cx_command_free(&c);
        return undo(rc);
    }
    if (!repeated)
        cx_shm_count(success ? CX_C_COMMANDS_ACKED : CX_C_COMMANDS_FAILED, 1);
    if (cmd)
        *cmd = cx_command_json(&c);
    cx_command_free(&c);
    return CX_OK;
}

static const char *get_str(json_object *o, const char *k)
{
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* get_count -- a non-negative integer field; -1 when absent or not one. */
static int64_t get_count(json_object *o, const char *k)
{
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    int64_t n = json_object_get_int64(v);
    return n >= 0 ? n : -1;
}

int cx_runs_event(json_object *ev)
{
    const char *type, *run_id, *pipeline_id, *agent_id, *status, *err;
    cx_run_t run;
    int64_t processed, errors;
    int rc;

    if (!json_object_is_type(ev, json_type_object) || (type = get_str(ev, "type")) == NULL) {
        cx_log_warnx("pipeline:events: a message without a type; ignored");
        return CX_INVALID;
    }
    if (strcmp(type, "run_status") != 0) {
        cx_log_debug("pipeline:events: type %s ignored", type);
        return CX_OK;
    }
    run_id = get_str(ev, "run_id");
    pipeline_id = get_str(ev, "pipeline_id");
    agent_id = get_str(ev, "agent_id");
    status = get_str(ev, "status");
    err = get_str(ev, "error_message");
    if ((run_id == NULL && pipeline_id == NULL) || (status != NULL && !cx_run_status_valid(status))) {
        cx_log_warnx("pipeline:events: run_status without run_id/pipeline_id or with a bad status; ignored");
        return CX_INVALID;
    }
    rc = run_id != NULL ? cx_db_run_get(run_id, &run) : cx_db_run_active(pipeline_id, 0, &run);
    if (rc != CX_OK) {
        if (rc == CX_NOTFOUND)
            cx_log_info("pipeline:events: no run %s; ignored", run_id ? run_id : pipeline_id);
        return rc;
    }
    if ((agent_id != NULL && strcmp(agent_id, run.agent_id) != 0) ||
        (pipeline_id != NULL && strcmp(pipeline_id, run.pipeline_id) != 0)) {
        cx_log_warnx("pipeline:events: event for run %s from agent %s / pipeline %s does not match the run; ignored", run.id,
                     agent_id ? agent_id : "-", pipeline_id ? pipeline_id : "-");
        cx_run_free(&run);
        return CX_INVALID;
    }
    processed = get_count(ev, "processed_count");
    errors = get_count(ev, "error_count");
    rc = CX_OK;
    if (cx_run_status_active(run.status) && (processed >= 0 || errors >= 0))
        rc = cx_db_run_counts(run.id, processed >= 0 ? processed : run.processed_count, errors >= 0 ? errors : run.error_count);
    if (rc == CX_OK && status != NULL && cx_run_transition_legal(run.status, status)) {
        rc = cx_db_run_transition(run.id, run.status, status, strcmp(status, "failed") == 0 ? err : NULL);
        if (rc == CX_OK)
            cx_log_info("run %s: %s -> %s (run event from agent %s)", run.id, run.status, status, run.agent_id);
        else if (rc == CX_STATE)
            rc = CX_OK;
    }
    cx_run_free(&run);
    return rc;
}

/* listed -- is pipeline_id in the heartbeat's pipelines array? */
static int listed(json_object *pipelines, const char *pipeline_id)
{
    size_t n = json_object_array_length(pipelines);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(pipelines, i);
        if (json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), pipeline_id) == 0)
            return 1;
    }
    return 0;
}

/* stats_of -- the pipeline_stats entry of pipeline_id, or NULL. */
static json_object *stats_of(json_object *stats, const char *pipeline_id)
{
    size_t n = stats ? json_object_array_length(stats) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(stats, i);
        const char *p = json_object_is_type(e, json_type_object) ? get_str(e, "pipeline_id") : NULL;
        if (p != NULL && strcmp(p, pipeline_id) == 0)
            return e;
    }
    return NULL;
}

/* reconcile -- one active run against one heartbeat. */
static int reconcile(const char *agent_id, const cx_run_t *run, json_object *pipelines, json_object *stats)
{
    json_object *st = stats_of(stats, run->pipeline_id);
    const char *st_status = st ? get_str(st, "status") : NULL, *to = NULL, *why = NULL;
    int in_list = pipelines ? listed(pipelines, run->pipeline_id) : -1;
    char cmd_status[17], msg[320];
    int rc = CX_OK;

    if (st != NULL) {
        int64_t p = get_count(st, "processed_count"), e = get_count(st, "error_count");
        if ((p >= 0 || e >= 0) &&
            (rc = cx_db_run_counts(run->id, p >= 0 ? p : run->processed_count, e >= 0 ? e : run->error_count)) != CX_OK)
            return rc;
    }
    if (in_list == 1) {
        /* the agent runs it: pending -> running (or paused), and pipeline_stats may tell running/paused */
        if (st_status != NULL && (strcmp(st_status, "running") == 0 || strcmp(st_status, "paused") == 0))
            to = st_status;
        else if (strcmp(run->status, "pending") == 0)
            to = "running";
    } else if (in_list == 0) {
        /* the agent does not run it (any more) */
        if (cx_db_command_status_for_run(run->id, "stop_pipeline", cmd_status) == CX_OK && strcmp(cmd_status, "failed") != 0) {
            to = "stopped";
        } else if (strcmp(run->status, "pending") == 0) {
            if (cx_db_command_status_for_run(run->id, "start_pipeline", cmd_status) == CX_OK &&
                strcmp(cmd_status, "expired") == 0) {
                to = "failed";
                snprintf(msg, sizeof(msg), "agent %.200s never acknowledged start_pipeline nor reported the pipeline running",
                         agent_id);
                why = msg;
            }
        } else if (strcmp(run->status, "running") == 0 && run->running_for_ms >= cx_cfg->agents.heartbeat_timeout_ms) {
            to = "failed";
            snprintf(msg, sizeof(msg), "agent %.200s no longer reports the pipeline in its heartbeats", agent_id);
            why = msg;
        }
    }
    if (to != NULL && strcmp(to, run->status) != 0 && cx_run_transition_legal(run->status, to)) {
        rc = cx_db_run_transition(run->id, run->status, to, why);
        if (rc == CX_OK)
            cx_log_info("run %s: %s -> %s (heartbeat of agent %s)", run->id, run->status, to, agent_id);
        else if (rc == CX_STATE)
            rc = CX_OK;
    }
    return rc;
}

int cx_runs_heartbeat(const char *agent_id, json_object *beat)
{
    json_object *pipelines = NULL, *stats = NULL;
    cx_run_t *runs;
    size_t n;
    int rc, first = CX_OK;

    if (agent_id == NULL || beat == NULL || !json_object_is_type(beat, json_type_object))
        return CX_INVALID;
    if (json_object_object_get_ex(beat, "pipelines", &pipelines) && !json_object_is_type(pipelines, json_type_array))
        pipelines = NULL;
    if (json_object_object_get_ex(beat, "pipeline_stats", &stats) && !json_object_is_type(stats, json_type_array))
        stats = NULL;
    if ((rc = cx_db_runs_of_agent(agent_id, &runs, &n)) != CX_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = reconcile(agent_id, &runs[i], pipelines, stats)) != CX_OK && first == CX_OK)
            first = rc;
    cx_db_runs_free(runs, n);
    return first;
}

/* checkpoint_of -- the pipeline's last checkpoint from Redis (pipeline:{id}:checkpoint), or NULL. */
static json_object *checkpoint_of(const char *pipeline_id)
{
    json_object *o = NULL;
    int rc = cx_redis_pipeline_json(pipeline_id, "checkpoint", &o);
    if (rc == CX_UNAVAIL)
        cx_log_warnx("failover of pipeline %s: Redis is unavailable; starting without a checkpoint", pipeline_id);
    return rc == CX_OK ? o : NULL;
}

int cx_runs_agent_offline(const char *agent_id)
{
    cx_run_t *runs = NULL;
    size_t n = 0;
    char why[320];
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = cx_db_runs_of_agent(agent_id, &runs, &n)) != CX_OK)
        return undo(rc);
    snprintf(why, sizeof(why), "agent %.200s went offline", agent_id);
    for (size_t i = 0; i < n; i++) {
        json_object *before, *after;
        if ((rc = cx_db_run_transition(runs[i].id, runs[i].status, "lost", why)) != CX_OK ||
            (rc = cx_db_commands_expire_run(runs[i].id)) != CX_OK)
            goto fail;
        before = cx_run_json(&runs[i]);
        after = json_object_new_object();
        json_object_object_add(after, "status", json_object_new_string("lost"));
        json_object_object_add(after, "error_message", json_object_new_string(why));
        rc = cx_audit_write(SYSTEM_ACTOR, "run_lost", "run", runs[i].id, NULL, before, after);
        json_object_put(before);
        json_object_put(after);
        if (rc != CX_OK)
            goto fail;
    }
    if ((rc = cx_db_commit()) != CX_OK)
        goto fail;
    if (n > 0) {
        cx_shm_count(CX_C_RUNS_LOST, n);
        cx_log_warnx("agent %s went offline: %zu run(s) lost", agent_id, n);
    }
    for (size_t i = 0; i < n && cx_cfg->agents.failover; i++) {
        cx_runs_result_t res;
        json_object *cp = checkpoint_of(runs[i].pipeline_id);
        cx_runs_start_opts_t o = {.pipeline_id = runs[i].pipeline_id, .trigger = "failover", .actor = SYSTEM_ACTOR};
        int frc = launch(&o, agent_id, runs[i].id, cp, "pipeline_failover", &res);
        if (frc == CX_OK) {
            json_object *r;
            cx_shm_count(CX_C_RUNS_FAILED_OVER, 1);
            json_object_object_get_ex(res.run, "agent_id", &r);
            cx_log_info("run %s of pipeline %s failed over to agent %s%s", runs[i].id, runs[i].pipeline_id,
                        json_object_get_string(r), cp ? " with its checkpoint" : "");
        } else {
            cx_log_warnx("run %s of pipeline %s could not fail over: %s", runs[i].id, runs[i].pipeline_id,
                         res.message[0]       ? res.message
                         : frc == CX_NOTFOUND ? "the pipeline is gone"
                                              : "database error");
        }
        cx_runs_result_free(&res);
        if (cp)
            json_object_put(cp);
    }
    cx_db_runs_free(runs, n);
    return CX_OK;
fail:
    cx_db_runs_free(runs, n);
    return undo(rc);
}

int cx_runs_metrics(const char *pipeline_id, json_object **out)
{
    cx_run_t run;
    json_object *o = NULL;
    int rc;

    *out = NULL;
    if ((rc = cx_db_runs_pipeline(pipeline_id, NULL)) != CX_OK)
        return rc;
    if (cx_redis_pipeline_json(pipeline_id, "metrics", &o) == CX_OK) {
        json_object_object_add(o, "source", json_object_new_string("redis"));
        if (!json_object_object_get_ex(o, "pipeline_id", NULL))
            json_object_object_add(o, "pipeline_id", json_object_new_string(pipeline_id));
        *out = o;
        return CX_OK;
    }
    rc = cx_db_run_latest(pipeline_id, &run);
    if (rc != CX_OK && rc != CX_NOTFOUND)
        return rc;
    o = json_object_new_object();
    json_object_object_add(o, "pipeline_id", json_object_new_string(pipeline_id));
    json_object_object_add(o, "source", json_object_new_string("run"));
    json_object_object_add(o, "run_id", rc == CX_OK ? json_object_new_string(run.id) : NULL);
    json_object_object_add(o, "run_status", rc == CX_OK ? json_object_new_string(run.status) : NULL);
    json_object_object_add(o, "processed_count", json_object_new_int64(rc == CX_OK ? run.processed_count : 0));
    json_object_object_add(o, "error_count", json_object_new_int64(rc == CX_OK ? run.error_count : 0));
    json_object_object_add(o, "errors_total", json_object_new_int64(rc == CX_OK ? run.error_count : 0));
    json_object_object_add(o, "last_updated", rc == CX_OK ? json_object_new_string(run.updated_at) : NULL);
    if (rc == CX_OK)
        cx_run_free(&run);
    *out = o;
    return CX_OK;
}
