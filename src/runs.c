/*
 * runs.c -- pipeline runs on agents (runs.h): the lifecycle operations behind the API (start, stop,
 * pause, resume), command delivery attempts, and the bookkeeping the other children drive: acks and
 * run events (dispatcher), heartbeats and agents going offline (hbmon). Every function works on the
 * calling process's own MySQL and Redis connections, so it runs the same in a worker, the dispatcher
 * or hbmon.
 *
 * A run's status follows the agent: acknowledgements, run events and heartbeats move it; the API only
 * writes commands. Its results are structs (runs.h); the handlers of src/api/ make the answers. The
 * decisions are pure functions (ack_goal, listed_goal, unlisted_goal, refusal), unit-tested in
 * t/unit/test_runs.c; the rest applies them. The rules (docs/api.md, "Runs and commands"):
 *   - a command is written with its run and audit row in one transaction, then published at once when
 *     Redis is up and no older command of the same agent and pipeline still waits (seq order), else left
 *     queued; each publish holds the lock of its agent and pipeline (cx_runs_deliver);
 *   - starts are batches (cx_runs_start_many: the scheduler's fires, up to a hundred; the API's start,
 *     a trigger and a failover, one): each step is one statement for the whole batch, and the batch's
 *     start commands are published in one Redis pipeline;
 *   - a new control command cancels the run's outstanding ones (a stop its unacknowledged start), and a
 *     run that ends cancels what it had (transition): nothing is delivered that no longer serves a run;
 *   - a control command is refused while an earlier one for the run awaits its acknowledgement, unless
 *     the run already reached what that one asked (legacy agents never acknowledge);
 *   - legacy agents: a pending run listed in a heartbeat is running; a run absent from the heartbeats
 *     after a stop was asked is stopped; a pending run whose start expired unacknowledged and that the
 *     agent does not list is failed; a run that has been running (or paused) for heartbeat_timeout and is no longer
 *     listed (without a stop) is failed;
 *   - reconciliation the other way: a pipeline a heartbeat lists without an active run of ours on that
 *     agent (a stray) gets a stop_pipeline, audited and rate-limited (stray_stop).
 * What agents send arrives checked (agentmsg.h): ids valid, texts valid UTF-8 and bounded.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conduix/agentmsg.h"
#include "conduix/audit.h"
#include "conduix/commands.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/redis.h"
#include "conduix/runs.h"
#include "conduix/schedules.h"
#include "conduix/shapes.h"
#include "conduix/shm.h"

#define SYSTEM_ACTOR "system"
#define TX_RUNS 5 /* a transaction InnoDB rolls back as a deadlock victim runs again, this many times in all */

void cx_runs_result_free(cx_runs_result_t *res)
{
    if (res == NULL)
        return;
    cx_run_free(&res->run);
    cx_command_free(&res->command);
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

/* again -- after a transaction of this file failed with rc: 1 when it is to run again from its start,
 * because InnoDB chose it as a deadlock victim and rolled all of it back (nothing of it happened; the
 * transactions of workers, the dispatcher, hbmon and the scheduler, of every instance, touch the same
 * runs and commands in different orders), and it has run fewer than TX_RUNS times (*runs counts them).
 * A short pause, longer each time, lets the other transaction finish first. */
static int again(int rc, int *runs, const char *what, const char *id)
{
    if (rc != CX_ERR || !cx_db_deadlocked())
        return 0;
    if (++*runs >= TX_RUNS) {
        cx_log_errorx("%s %s: a deadlock victim %d times in a row; given up", what, id, *runs);
        return 0;
    }
    usleep(1000u * (unsigned)*runs);
    return 1;
}

/* finish -- the end of a lifecycle call: free its payload; on failure free the result (its message
 * stays) and end the transaction. */
static int finish(int rc, json_object *payload, cx_runs_result_t *res)
{
    json_object_put(payload);
    if (rc != CX_OK) {
        cx_runs_result_free(res);
        return undo(rc);
    }
    return CX_OK;
}

/* transition -- compare-and-set the run from its status as read to `to`; a run that ends has its
 * outstanding commands cancelled (they no longer serve it: a redelivered start must never run it
 * again). CX_OK, CX_STATE when the run changed meanwhile (the newer word stands), or a database error. */
static int transition(const cx_run_t *run, cx_run_status_t to, const char *error_message)
{
    uint64_t n = 0;
    int rc;

    if ((rc = cx_db_run_transition(run->id, run->status, to, error_message)) != CX_OK)
        return rc;
    if (cx_run_status_active(to))
        return CX_OK;
    if ((rc = cx_db_commands_cancel_run(run->id, &n)) == CX_OK && n > 0) {
        cx_shm_count(CX_C_COMMANDS_CANCELLED, n);
        cx_log_info("run %s is %s: %llu outstanding command(s) cancelled", run->id, cx_run_status_name(to), (unsigned long long)n);
    }
    return rc;
}

/* publish -- claim and publish one attempt of c; the caller holds the lock of its agent and pipeline. */
static int publish(cx_command_t *c)
{
    json_object *wire;
    const char *text;
    int rc, attempt = c->attempts + 1;

    if ((rc = cx_db_command_deliverable(c->id)) != CX_OK)
        return rc; /* CX_STATE: superseded, cancelled, expired or its run ended meanwhile */
    if ((rc = cx_db_command_claim(c->id, c->attempts)) != CX_OK)
        return rc;
    wire = cx_command_wire_json(c, attempt, cx_wall_ms());
    text = json_text(wire);
    rc = cx_redis_command_publish(c->agent_id, text, strlen(text));
    json_object_put(wire);
    if (rc == CX_NOTFOUND) {
        /* Nobody subscribed (the agent is reconnecting, or polls REST): not a delivery. */
        if (cx_db_command_unheard(c->id, attempt) != CX_OK)
            cx_log_warnx("command %s: published to nobody and could not be queued again; it will be redelivered", c->id);
        c->status = CX_CMDST_QUEUED;
        return CX_NOTFOUND;
    }
    if (rc != CX_OK) {
        /* Not delivered (or not known to be): back to the queue; the number stays used. */
        if (cx_db_command_unclaim(c->id, attempt) != CX_OK)
            cx_log_warnx("command %s: publish failed and the command could not be queued again; it will be redelivered", c->id);
        c->attempts = attempt;
        c->status = CX_CMDST_QUEUED;
        return CX_UNAVAIL;
    }
    c->attempts = attempt;
    c->status = CX_CMDST_SENT;
    cx_shm_count(attempt == 1 ? CX_C_COMMANDS_DELIVERED : CX_C_COMMANDS_REDELIVERED, 1);
    cx_log_debug("command %s (%s) attempt %d published to agent %s", c->id, cx_command_type_name(c->type), attempt, c->agent_id);
    return CX_OK;
}

int cx_runs_deliver(struct cx_command *c)
{
    int rc;

    /* The lock spans the claim and the publish: without it a process could claim an older command,
     * another claim and publish a newer one of the same pipeline, and the first publish the older one
     * after it (a start heard after its stop). */
    if ((rc = cx_db_command_lock(c->agent_id, c->pipeline_id)) != CX_OK)
        return rc;
    rc = publish(c);
    cx_db_command_unlock(c->agent_id, c->pipeline_id);
    return rc;
}

#define BACKLOG_MAX 16 /* older queued commands of the pipeline a request publishes before its own */

/* deliver_now -- right after the commit: publish command id, after the older queued commands of its
 * agent and pipeline (seq order), unless Redis is known to be down or the backlog is long; stop at the
 * first command that could not go out (another process publishing for the pipeline, nobody listening,
 * Redis failing), so nothing of the pipeline is published out of order. Then describe it in res
 * (sent, or acknowledged since: 200; still queued, or cancelled or expired meanwhile: 202). */
static void deliver_now(const char *id, cx_runs_result_t *res)
{
    cx_command_t c, *backlog = NULL;
    size_t n = 0;

    if (cx_db_command_load(id, NULL, &c) != CX_OK)
        return; /* committed: the dispatcher will deliver it; res keeps the command as written */
    /* not while the breaker is open: a failed publish would use up an attempt number */
    if (cx_redis_available() && c.status == CX_CMDST_QUEUED &&
        cx_db_commands_backlog(c.agent_id, c.pipeline_id, c.seq, BACKLOG_MAX + 1, &backlog, &n) == CX_OK && n <= BACKLOG_MAX) {
        for (size_t i = 0; i < n; i++) {
            int rc = cx_runs_deliver(&backlog[i]);
            if (rc != CX_OK && rc != CX_STATE)
                break; /* CX_STATE: that one is not to be delivered any more; the next may */
        }
    }
    cx_db_commands_free(backlog, n);
    cx_command_free(&c);
    if (cx_db_command_load(id, NULL, &c) != CX_OK)
        return;
    cx_command_free(&res->command);
    res->command = c;
    /* a command a concurrent call cancelled (or that expired) meanwhile was not delivered either */
    res->delivered = c.status == CX_CMDST_SENT || c.status == CX_CMDST_ACKED || c.status == CX_CMDST_FAILED;
}

/* load -- after the writes of a transaction: the run and the command as they are now into res. */
static int load(const char *run_id, const char *cmd_id, cx_runs_result_t *res)
{
    int rc;

    if ((rc = cx_db_run_get(run_id, &res->run)) != CX_OK)
        return rc == CX_NOTFOUND ? CX_ERR : rc;
    if ((rc = cx_db_command_load(cmd_id, NULL, &res->command)) != CX_OK)
        return rc == CX_NOTFOUND ? CX_ERR : rc;
    return CX_OK;
}

/* audit -- the audit row of a lifecycle call on the pipeline: before (a Run, or none) and after
 * {"run","command"}. */
static int audit(const char *actor, const char *action, const char *pipeline_id, const char *request_id, const cx_run_t *before,
                 const cx_runs_result_t *res)
{
    json_object *b = before != NULL ? cx_run_json(before) : NULL, *after = json_object_new_object();
    int rc;

    json_object_object_add(after, "run", cx_run_json(&res->run));
    json_object_object_add(after, "command", cx_command_json(&res->command));
    rc = cx_audit_write(actor, action, "pipeline", pipeline_id, request_id, b, after);
    json_object_put(b);
    json_object_put(after);
    return rc;
}

/* command_tx -- inside a transaction: a control command of type for run, queued; with force_why the run
 * also takes force_status at once, force_why its error message; the audit row. The run and the command as
 * written into res, the command's id into cmd_id.
 *
 * The new command supersedes the run's outstanding ones (a stop its unacknowledged start, pause or
 * resume; a pause or resume what the run has reached already, see refusal): they are cancelled, so none
 * is delivered again after it, their number into *cancelled. A forced stop ends the run first, which
 * cancels them too (and counts them), and its stop_pipeline, written after, still goes to the agent. */
static int command_tx(const cx_run_t *run, cx_command_type_t type, const char *force_why, cx_run_status_t force_status,
                      const char *actor, const char *request_id, char cmd_id[37], cx_runs_result_t *res, uint64_t *cancelled)
{
    json_object *payload;
    int rc;

    *cancelled = 0;
    if (force_why != NULL)
        rc = transition(run, force_status, force_why);
    else if ((rc = cx_db_commands_cancel_run(run->id, cancelled)) == CX_OK && *cancelled > 0)
        cx_log_info("run %s: %llu outstanding command(s) superseded by %s", run->id, (unsigned long long)*cancelled,
                    cx_command_type_name(type));
    if (rc != CX_OK)
        return rc;
    cx_uuid_v7(cmd_id);
    payload = json_object_new_object();
    json_object_object_add(payload, "run_id", json_object_new_string(run->id));
    rc = cx_db_command_insert(cmd_id, run->agent_id, type, run->pipeline_id, run->id, json_text(payload), cx_cfg->commands.ttl_ms,
                              actor);
    json_object_put(payload);
    if (rc == CX_OK)
        rc = load(run->id, cmd_id, res);
    if (rc == CX_OK)
        rc = audit(actor, cx_command_action(type), run->pipeline_id, request_id, run, res);
    return rc;
}

/* ---- starts, in batches ---- */

/* What a start of a batch becomes inside its transaction. */
enum {
    ST_REFUSED = 0, /* nothing written (item rc says why; a fire stays due, or was lost) */
    ST_RUN,         /* a run on an agent and its start_pipeline */
    ST_FAILED_RUN,  /* a run recorded failed (why) */
    ST_SKIP,        /* a fire skipped: only its claim */
    ST_NO_PIPELINE, /* a fire whose pipeline is gone: only its claim, counted failed */
    ST_CLAIM,       /* a fire that has a run already: only its claim, counted nothing */
};

typedef struct item {
    const cx_runs_start_opts_t *o;
    cx_runs_result_t *res;
    int rc, st;
    int locked; /* holds the delivery lock of its agent and pipeline */
    int sent;   /* its start_pipeline is written as attempt 1, to publish after the commit */
    char run_id[37], cmd_id[37], stop_id[37];
    char agent[256];
    char why[400];
    char *yaml;
    json_object *payload;
} item_t;

static void item_reset(item_t *it)
{
    free(it->yaml);
    json_object_put(it->payload);
    cx_runs_result_free(it->res);
    memset(it->res, 0, sizeof(*it->res));
    it->yaml = NULL;
    it->payload = NULL;
    it->rc = CX_OK;
    it->st = ST_RUN;
    it->locked = it->sent = 0;
    it->stop_id[0] = it->why[0] = it->agent[0] = '\0';
}

static int on_active(const cx_runs_start_opts_t *o)
{
    return o->replace ? CX_ACTIVE_REPLACE : (int)o->on_active;
}

/* refuse_item -- start it is not written: rc, with a message for people. */
static void refuse_item(item_t *it, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse_item(item_t *it, int rc, const char *fmt, ...)
{
    va_list ap;
    it->st = ST_REFUSED;
    it->rc = rc;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(it->res->message, sizeof(it->res->message), fmt, ap);
        va_end(ap);
    }
}

/* fail_item -- a fire that is recorded failed (a run without an agent, reason why). */
static void fail_item(item_t *it, const char *why)
{
    it->st = ST_FAILED_RUN;
    snprintf(it->why, sizeof(it->why), "%s", why);
}

static int live(const item_t *it)
{
    return it->st == ST_RUN;
}

/* is_held -- a fire written ahead of its time (cx_runs_start_opts_t.hold_until_ms). */
static int is_held(const item_t *it)
{
    return it->o->hold_until_ms > 0;
}

/* maybe_held -- run may be a fire written ahead of its time whose start is still held (only a locking
 * read of cx_db_held_lock says): pending, and scheduled. */
static int maybe_held(const cx_run_t *run)
{
    return run->status == CX_RUN_PENDING && run->scheduled_for > 0;
}

/* defer_item -- a fire written ahead of its time that cannot start as a plain start of a pipeline at
 * rest would (its pipeline active, gone, no agent online, older commands waiting): nothing written, its
 * claim not taken; it fires at its time, where the overlap policy and the rest decide. */
static void defer_item(item_t *it, const char *why)
{
    refuse_item(it, CX_OK, "%s", why);
    it->res->outcome = CX_START_DEFERRED;
}

/* claim_fires -- the claims of the batch's fires (one locking read); a fire claimed elsewhere is lost.
 * Then the callbacks. */
static int claim_fires(item_t *items, size_t n)
{
    cx_schedule_claim_t **c = cx_calloc(n, sizeof(cx_schedule_claim_t *));
    size_t *at = cx_calloc(n, sizeof(*at)), nc = 0;
    int *ok = cx_calloc(n, sizeof(*ok)), rc;

    for (size_t i = 0; i < n; i++)
        if (items[i].o->fire != NULL) {
            at[nc] = i;
            c[nc++] = items[i].o->fire;
        }
    rc = cx_db_schedules_claim_lock(c, nc, ok);
    for (size_t k = 0; rc == CX_OK && k < nc; k++)
        if (!ok[k]) {
            refuse_item(&items[at[k]], CX_OK, NULL);
            items[at[k]].res->outcome = CX_START_LOST;
        }
    for (size_t i = 0; rc == CX_OK && i < n; i++)
        if (live(&items[i]) && items[i].o->claim != NULL)
            rc = items[i].o->claim(items[i].o->claim_arg);
    free(c);
    free(at);
    free(ok);
    return rc;
}

/* apply_active -- the active runs of the batch's pipelines (read_start: a plain read, as a locking one
 * would take a gap lock that deadlocks two concurrent starts, whose inserts the unique key
 * uq_runs_active must arbitrate instead), and each start's overlap rule; a replace stops the active run
 * here. */
static int apply_active(item_t *items, size_t n, cx_run_t *runs, size_t nruns)
{
    int rc = CX_OK;

    for (size_t r = 0; rc == CX_OK && r < nruns; r++) {
        cx_run_t *cur = &runs[r];
        const item_t *by_hand = NULL;
        for (size_t i = 0; i < n && by_hand == NULL; i++)
            if (live(&items[i]) && items[i].o->fire == NULL && strcmp(items[i].o->pipeline_id, cur->pipeline_id) == 0)
                by_hand = &items[i];
        if (by_hand != NULL && maybe_held(cur)) {
            /* a fire written ahead of its time has not started: a start before its time goes first, and
             * the fire meets it at its time, as it would have */
            size_t undone = 0;
            rc = cx_db_held_unhold(CX_HELD_PIPELINE, cur->pipeline_id, 1, by_hand->o->actor, by_hand->o->request_id,
                                   "its pipeline was started before the fire's time", &undone);
            if (rc != CX_OK || undone > 0)
                continue;
        }
        for (size_t i = 0; rc == CX_OK && i < n; i++) {
            item_t *it = &items[i];
            char msg[320];
            if (!live(it) || strcmp(it->o->pipeline_id, cur->pipeline_id) != 0)
                continue;
            snprintf(msg, sizeof(msg), "pipeline is already running (run %s is %s)", cur->id, cx_run_status_name(cur->status));
            if (is_held(it)) {
                defer_item(it, msg);
                continue;
            }
            switch (on_active(it->o)) {
            case CX_ACTIVE_REPLACE: {
                cx_runs_result_t stopped;
                uint64_t superseded;
                memset(&stopped, 0, sizeof(stopped));
                rc = command_tx(cur, CX_CMD_STOP_PIPELINE, it->o->replace_reason ? it->o->replace_reason : "replaced by a new run",
                                CX_RUN_STOPPED, it->o->actor, it->o->request_id, it->stop_id, &stopped, &superseded);
                cx_runs_result_free(&stopped);
                if (rc == CX_STATE) {
                    /* the active run ended meanwhile (its agent went offline and it was marked lost, or it
                     * completed): nothing left to stop, the start goes on; a run started meanwhile by
                     * someone else is refused by uq_runs_active when this one is written */
                    it->stop_id[0] = '\0';
                    rc = CX_OK;
                }
                break;
            }
            case CX_ACTIVE_SKIP:
                it->st = ST_SKIP;
                snprintf(it->res->message, sizeof(it->res->message), "%s", msg);
                break;
            case CX_ACTIVE_FAIL: {
                char why[400];
                snprintf(why, sizeof(why), "%.300s (overlap policy allow: a pipeline runs once at a time)", msg);
                fail_item(it, why);
                break;
            }
            default:
                refuse_item(it, CX_STATE, "%s", msg);
            }
        }
    }
    return rc;
}

/* choose_agents -- an agent for every start from one read of the online agents and their active runs
 * (read_start), each choice counted before the next (the least loaded; ties: by id). */
static int choose_agents(item_t *items, size_t n, cx_agent_load_t *loads, size_t nloads)
{
    int rc = CX_OK;

    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        cx_agent_load_t *best = NULL;
        if (!live(it))
            continue;
        for (size_t a = 0; a < nloads; a++) {
            if (it->o->agent_id != NULL ? strcmp(loads[a].id, it->o->agent_id) != 0
                                        : it->o->exclude != NULL && strcmp(loads[a].id, it->o->exclude) == 0)
                continue;
            if (best == NULL || loads[a].active < best->active)
                best = &loads[a];
        }
        if (best != NULL) {
            best->active++;
            snprintf(it->agent, sizeof(it->agent), "%s", best->id);
        } else if (is_held(it)) {
            defer_item(it, "no agent is online");
        } else if (it->o->agent_id != NULL) {
            int st = cx_db_runs_agent_online(it->o->agent_id);
            if (st != CX_OK && st != CX_NOTFOUND && st != CX_STATE) {
                rc = st;
                break;
            }
            refuse_item(it, CX_NOAGENT, "agent %.200s is %s", it->o->agent_id, st == CX_NOTFOUND ? "not registered" : "not online");
        } else if (it->o->record_noagent) {
            fail_item(it, "no agent could run the fire: no agent is online");
        } else {
            refuse_item(it, CX_NOAGENT, "no agent is online%s", it->o->exclude ? " (other than the one that went offline)" : "");
        }
    }
    return rc;
}

/* read_start -- what the batch's starts read, in one round trip (begun there with begin): the configs
 * of their pipelines (share-locked; a start of a pipeline that does not exist is refused, a fire's
 * recorded), their active runs (apply_active) and the online agents' loads (choose_agents), unless the
 * batch shares loads an earlier batch read (cx_runs_start_opts_t.loads). */
static int read_start(item_t *items, size_t n, int begin)
{
    const char **ids = cx_calloc(n, sizeof(*ids));
    char **yaml = cx_calloc(n, sizeof(*yaml));
    size_t *at = cx_calloc(n, sizeof(*at)), k = 0, nruns = 0, nloads = 0;
    cx_runs_loads_t *shared = n > 0 ? items[0].o->loads : NULL; /* the batch's starts share it, or none does */
    cx_agent_load_t *loads = NULL;
    cx_run_t *runs = NULL;
    int rc;

    for (size_t i = 0; i < n; i++)
        if (live(&items[i])) {
            at[k] = i;
            ids[k++] = items[i].o->pipeline_id;
        }
    rc = cx_db_runs_start_reads(begin, ids, k, yaml, &runs, &nruns, shared != NULL && shared->read ? NULL : &loads, &nloads);
    for (size_t j = 0; j < k; j++) {
        item_t *it = &items[at[j]];
        if (rc == CX_OK && yaml[j] == NULL && is_held(it))
            defer_item(it, "pipeline does not exist");
        else if (rc == CX_OK && yaml[j] == NULL && it->o->fire != NULL)
            it->st = ST_NO_PIPELINE;
        else if (rc == CX_OK && yaml[j] == NULL)
            refuse_item(it, CX_NOTFOUND, NULL);
        it->yaml = yaml[j];
    }
    if (rc == CX_OK)
        rc = apply_active(items, n, runs, nruns);
    if (rc == CX_OK && k > 0 && shared != NULL && !shared->read) {
        *shared = (cx_runs_loads_t){.a = loads, .n = nloads, .read = 1}; /* for this batch and the next ones */
        loads = NULL;
    }
    if (rc == CX_OK && k > 0)
        rc = shared != NULL ? choose_agents(items, n, shared->a, shared->n) : choose_agents(items, n, loads, nloads);
    cx_db_runs_free(runs, nruns);
    free(loads);
    free(ids);
    free(yaml);
    free(at);
    return rc;
}

void cx_runs_loads_reset(cx_runs_loads_t *l)
{
    free(l->a);
    *l = (cx_runs_loads_t){0};
}

/* locks_of -- the agents and pipelines of the starts with want (locked: those holding their lock; else
 * those to lock: runs whose command can go out at once, not behind a replaced run's stop). */
static size_t pairs_of(item_t *items, size_t n, int locked, const char **agents, const char **pipelines, item_t **of)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (locked ? !it->locked : it->st != ST_RUN || it->stop_id[0])
            continue;
        agents[k] = it->agent;
        pipelines[k] = it->o->pipeline_id;
        of[k++] = it;
    }
    return k;
}

/* lock_deliveries -- before the commands are written: the delivery locks of the batch's new start
 * commands (one statement) and which of their agents and pipelines have older commands waiting (one
 * read); a command whose lock is held and nothing older waits is written as its first attempt claimed,
 * to be published right after the commit (deliver_batch), the lock held until then. Without Redis,
 * or for a lock another process holds, the command is written queued (for the dispatcher). */
static int lock_deliveries(item_t *items, size_t n)
{
    const char **agents = cx_calloc(n, sizeof(*agents)), **pipelines = cx_calloc(n, sizeof(*pipelines));
    item_t **of = cx_calloc(n, sizeof(item_t *));
    int *got = cx_calloc(n, sizeof(*got)), *waiting = cx_calloc(n, sizeof(*waiting)), rc = CX_OK;
    size_t k = cx_redis_available() ? pairs_of(items, n, 0, agents, pipelines, of) : 0;

    if (k > 0 && (rc = cx_db_commands_lock_waiting(agents, pipelines, k, got, waiting)) == CX_OK)
        for (size_t i = 0; i < k; i++) {
            of[i]->locked = got[i];
            of[i]->sent = got[i] && !waiting[i];
        }
    /* a held start is written claimed, as one published now would be; one that could not be fires at
     * its time */
    for (size_t i = 0; rc == CX_OK && i < n; i++)
        if (is_held(&items[i]) && live(&items[i]) && !items[i].sent)
            defer_item(&items[i], "its start could not be claimed ahead of its time");
    free(agents);
    free(pipelines);
    free(of);
    free(got);
    free(waiting);
    return rc;
}

/* unlock_deliveries -- give back the delivery locks the starts hold (one statement). */
static void unlock_deliveries(item_t *items, size_t n)
{
    const char **agents = cx_calloc(n > 0 ? n : 1, sizeof(*agents)), **pipelines = cx_calloc(n > 0 ? n : 1, sizeof(*pipelines));
    item_t **of = cx_calloc(n > 0 ? n : 1, sizeof(item_t *));
    int *all = cx_calloc(n > 0 ? n : 1, sizeof(*all));
    size_t k = pairs_of(items, n, 1, agents, pipelines, of);

    for (size_t i = 0; i < k; i++) {
        all[i] = 1;
        of[i]->locked = 0;
    }
    if (k > 0)
        cx_db_commands_unlock_many(agents, pipelines, k, all);
    free(agents);
    free(pipelines);
    free(of);
    free(all);
}

/* take_written -- the runs and commands as the inserts returned them (INSERT … RETURNING) into the
 * results of their starts, taken out of runs and cmds. */
static int take_written(item_t *items, size_t n, cx_run_t *runs, size_t nr, cx_command_t *cmds, size_t nc)
{
    size_t r = 0, c = 0;

    /* both come back in the order they were written (the items'): the next one is looked at first */
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        size_t k;
        if (it->st != ST_RUN && it->st != ST_FAILED_RUN)
            continue;
        for (k = 0; k < nr && strcmp(runs[(r + k) % nr].id, it->run_id) != 0; k++)
            ;
        if (k == nr)
            return CX_ERR; /* written in this statement and not returned */
        r = (r + k) % nr;
        it->res->run = runs[r];
        memset(&runs[r], 0, sizeof(runs[0]));
        r = (r + 1) % nr;
        if (it->st != ST_RUN)
            continue;
        for (k = 0; k < nc && strcmp(cmds[(c + k) % nc].id, it->cmd_id) != 0; k++)
            ;
        if (k == nc)
            return CX_ERR;
        c = (c + k) % nc;
        it->res->command = cmds[c];
        memset(&cmds[c], 0, sizeof(cmds[0]));
        c = (c + 1) % nc;
    }
    return CX_OK;
}

/* insert_rows -- the runs and the commands in one round trip (two multi-row INSERT … RETURNING; the
 * commands' only after the runs' succeeded), both as written. */
static int insert_rows(const cx_run_new_t *runs, size_t nr, const cx_command_new_t *cmds, size_t nc, cx_run_t **got, size_t *ngot,
                       cx_command_t **gotc, size_t *ngotc)
{
    cx_db_stmt_t st[2];
    cx_db_result_t *res[2] = {NULL, NULL};
    size_t ns = 0;
    int rc;

    *got = NULL;
    *gotc = NULL;
    *ngot = *ngotc = 0;
    if (nr == 0)
        return CX_OK;
    cx_db_runs_insert_stmt(runs, nr, 1, &st[ns++]);
    if (nc > 0)
        cx_db_commands_insert_stmt(cmds, nc, cx_cfg->commands.ttl_ms, 1, &st[ns++]);
    rc = cx_db_exec_many(st, ns, 0, res);
    if (rc == CX_OK && (res[0] == NULL || (nc > 0 && res[1] == NULL))) {
        cx_log_errorx("mysql: the inserts of a start came back without their rows");
        rc = CX_ERR;
    }
    if (rc == CX_OK)
        rc = cx_db_runs_of_result(res[0], got, ngot);
    if (rc == CX_OK && nc > 0)
        rc = cx_db_commands_of_result(res[1], gotc, ngotc);
    for (size_t i = 0; i < ns; i++) {
        cx_db_stmt_free(&st[i]);
        cx_db_result_free(res[i]);
    }
    return rc;
}

/* write_runs -- the runs and start commands of the batch (two multi-row inserts), and both as written
 * (their RETURNING) into the results. */
static int write_runs(item_t *items, size_t n)
{
    cx_run_new_t *runs = cx_calloc(n, sizeof(*runs));
    cx_command_new_t *cmds = cx_calloc(n, sizeof(*cmds));
    cx_run_t *got = NULL;
    cx_command_t *gotc = NULL;
    size_t nr = 0, nc = 0, ngot = 0, ngotc = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        const cx_runs_start_opts_t *o = it->o;
        if (it->st != ST_RUN && it->st != ST_FAILED_RUN)
            continue;
        runs[nr++] = (cx_run_new_t){.id = it->run_id,
                                    .pipeline_id = o->pipeline_id,
                                    .agent_id = it->agent,
                                    .trigger = o->trigger,
                                    .failover_of = it->st == ST_RUN ? o->failover_of : NULL,
                                    .checkpoint_json = it->st == ST_RUN && o->checkpoint ? json_text(o->checkpoint) : NULL,
                                    .created_by = o->actor,
                                    .schedule_id = o->schedule_id,
                                    .scheduled_for = o->scheduled_for,
                                    .error_message = it->st == ST_FAILED_RUN ? it->why : NULL};
        if (it->st != ST_RUN)
            continue;
        cx_uuid_v7(it->cmd_id);
        it->payload = json_object_new_object();
        json_object_object_add(it->payload, "run_id", json_object_new_string(it->run_id));
        json_object_object_add(it->payload, "config_yaml", json_object_new_string(it->yaml));
        json_object_object_add(it->payload, "checkpoint", o->checkpoint ? json_object_get(o->checkpoint) : NULL);
        cmds[nc++] = (cx_command_new_t){.id = it->cmd_id,
                                        .agent_id = it->agent,
                                        .type = CX_CMD_START_PIPELINE,
                                        .pipeline_id = o->pipeline_id,
                                        .run_id = it->run_id,
                                        .payload_json = cx_strdup(json_text(it->payload)),
                                        .created_by = o->actor,
                                        .sent = it->sent,
                                        .hold_ms = o->hold_until_ms};
    }
    rc = insert_rows(runs, nr, cmds, nc, &got, &ngot, &gotc, &ngotc);
    if (rc == CX_CONFLICT && n == 1) {
        if (strcmp(cx_db_conflict_key(), "uq_runs_fire") == 0)
            refuse_item(&items[0], CX_CONFLICT, "this scheduled fire already has a run");
        else
            refuse_item(&items[0], CX_STATE, "pipeline is already running"); /* uq_runs_active: a concurrent start won */
    }
    if (rc == CX_OK)
        rc = take_written(items, n, got, ngot, gotc, ngotc);
    cx_db_runs_free(got, ngot);
    cx_db_commands_free(gotc, ngotc);
    for (size_t i = 0; i < nc; i++)
        free((char *)cmds[i].payload_json);
    free(runs);
    free(cmds);
    return rc;
}

/* write_audit -- the audit rows of the runs written (one multi-row insert): after {"run","command"} for a
 * start, {"run"} for a run recorded failed; with commit, the transaction committed in the same round
 * trip. */
static int write_audit(item_t *items, size_t n, int commit)
{
    cx_audit_row_t *rows = cx_calloc(n, sizeof(*rows));
    size_t k = 0;
    int rc = CX_OK;

    for (size_t i = 0; i < n && rc == CX_OK; i++) {
        item_t *it = &items[i];
        const cx_runs_start_opts_t *o = it->o;
        json_object *after;
        cx_db_stmt_t st;
        if (it->st != ST_RUN && it->st != ST_FAILED_RUN)
            continue;
        after = json_object_new_object();
        json_object_object_add(after, "run", cx_run_json(&it->res->run));
        if (it->st == ST_RUN)
            json_object_object_add(after, "command", cx_command_json(&it->res->command));
        rc = cx_audit_row(&rows[k], o->actor,
                          o->action != NULL  ? o->action
                          : it->st == ST_RUN ? cx_command_action(CX_CMD_START_PIPELINE)
                                             : "pipeline_start_failed",
                          "pipeline", o->pipeline_id, o->request_id, NULL, after, &st);
        json_object_put(after);
        k += rc == CX_OK;
    }
    if (rc == CX_OK && k > 0) {
        cx_db_stmt_t st;
        cx_audit_rows_stmt(rows, k, &st);
        rc = cx_db_exec_many(&st, 1, commit ? CX_DB_COMMIT : 0, NULL);
        cx_db_stmt_free(&st);
    } else if (rc == CX_OK && commit) {
        rc = cx_db_commit();
    }
    for (size_t i = 0; i < k; i++)
        cx_audit_row_free(&rows[i]);
    free(rows);
    return rc;
}

/* settle_fires -- what became of each fire claimed, written on its schedule (one update). */
static int settle_fires(item_t *items, size_t n)
{
    cx_schedule_claim_t **c = cx_calloc(n, sizeof(cx_schedule_claim_t *));
    size_t k = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        cx_schedule_claim_t *f = it->o->fire;
        if (f == NULL || it->st == ST_REFUSED)
            continue;
        f->fires = it->st == ST_RUN;
        f->skipped = it->st == ST_SKIP;
        f->failures = it->st == ST_FAILED_RUN || it->st == ST_NO_PIPELINE;
        f->last_run_id = it->st == ST_RUN || it->st == ST_FAILED_RUN ? it->run_id : NULL;
        c[k++] = f;
    }
    rc = cx_db_schedules_claim_settle(c, k);
    free(c);
    return rc;
}

/* batch_tx -- the transaction of a batch of starts. CX_OK when it was committed (each item's rc and
 * st say what became of it), else the batch's code, rolled back (CX_CONFLICT for a batch of more than
 * one: a unique key refused one of its runs). */
static int batch_tx(item_t *items, size_t n)
{
    size_t claims = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        item_reset(&items[i]);
        if (items[i].o->run_id != NULL)
            snprintf(items[i].run_id, sizeof(items[i].run_id), "%s", items[i].o->run_id);
        else
            cx_uuid_v7(items[i].run_id);
    }
    for (size_t i = 0; i < n; i++)
        claims += items[i].o->fire != NULL || items[i].o->claim != NULL;
    /* without claims the transaction is begun in the round trip of the reads */
    if (claims > 0 && (rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((claims == 0 || (rc = claim_fires(items, n)) == CX_OK) && (rc = read_start(items, n, claims == 0)) == CX_OK &&
        (rc = lock_deliveries(items, n)) == CX_OK && (rc = write_runs(items, n)) == CX_OK) {
        size_t refused = 0;
        for (size_t i = 0; i < n; i++)
            refused += items[i].st == ST_REFUSED;
        /* every start refused (a start alone: its claim callback's writes too): nothing is kept; else the
         * audit rows, the fires settled and the commit */
        if (refused < n && (rc = write_audit(items, n, claims == 0)) == CX_OK &&
            (claims == 0 || ((rc = settle_fires(items, n)) == CX_OK && (rc = cx_db_commit()) == CX_OK)))
            return CX_OK; /* the locks are given back by deliver_batch */
    }
    if (rc == CX_CONFLICT && n == 1 && items[0].st == ST_REFUSED)
        rc = CX_OK; /* a refusal of the one start (items[0].rc), nothing written */
    rc = undo(rc);
    unlock_deliveries(items, n);
    return rc;
}

/* publish_many -- the claimed attempt 1 of cmds[0..n) published in one Redis pipeline. An attempt that
 * reached nobody, or that Redis did not take, is given back to the queue as cx_runs_deliver does (in the
 * caller's transaction, when one is open); delivered[i] = 1 for those a subscriber took. */
static void publish_many(cx_command_t *const *cmds, size_t n, int *delivered)
{
    size_t m = n > 0 ? n : 1;
    int *argcs = cx_calloc(m, sizeof(*argcs));
    const char ***argvs = cx_calloc(m, sizeof(*argvs)), **argv = cx_calloc(3 * m, sizeof(*argv));
    const size_t **lens = cx_calloc(m, sizeof(*lens));
    size_t *len = cx_calloc(3 * m, sizeof(*len));
    redisReply **replies = cx_calloc(m, sizeof(redisReply *));
    char(*chan)[300] = cx_calloc(m, sizeof(*chan));
    json_object **wires = cx_calloc(m, sizeof(json_object *));

    for (size_t p = 0; p < n; p++) {
        const char *text;
        wires[p] = cx_command_wire_json(cmds[p], 1, cx_wall_ms());
        text = json_text(wires[p]);
        snprintf(chan[p], sizeof(chan[p]), "agent:commands:%s", cmds[p]->agent_id);
        argv[3 * p] = "PUBLISH";
        argv[3 * p + 1] = chan[p];
        argv[3 * p + 2] = text;
        len[3 * p] = 7;
        len[3 * p + 1] = strlen(chan[p]);
        len[3 * p + 2] = strlen(text);
        argcs[p] = 3;
        argvs[p] = &argv[3 * p];
        lens[p] = &len[3 * p];
    }
    if (n > 0 && cx_redis_pipeline((int)n, argcs, argvs, lens, replies) != CX_OK)
        memset(replies, 0, n * sizeof(redisReply *));
    for (size_t p = 0; p < n; p++) {
        cx_command_t *cmd = cmds[p];
        redisReply *r = replies[p];
        delivered[p] = 0;
        if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
            delivered[p] = 1;
            cx_shm_count(CX_C_COMMANDS_DELIVERED, 1);
        } else if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
            /* nobody subscribed (the agent is reconnecting, or polls REST): not a delivery */
            if (cx_db_command_unheard(cmd->id, 1) != CX_OK)
                cx_log_warnx("command %s: published to nobody and could not be queued again; it will be redelivered", cmd->id);
            cmd->attempts = 0;
            cmd->status = CX_CMDST_QUEUED;
        } else {
            /* not delivered (or not known to be): back to the queue; the number stays used */
            if (cx_db_command_unclaim(cmd->id, 1) != CX_OK)
                cx_log_warnx("command %s: publish failed and the command could not be queued again; it will be redelivered",
                             cmd->id);
            cmd->status = CX_CMDST_QUEUED;
        }
        if (r != NULL)
            freeReplyObject(r);
        json_object_put(wires[p]);
    }
    free(argcs);
    free(argvs);
    free(argv);
    free(lens);
    free(len);
    free(replies);
    free(chan);
    free(wires);
}

/* deliver_batch -- after the commit: the start commands written as their first attempt (lock_deliveries)
 * published in one Redis pipeline (publish_many), then their locks given back in one statement. A
 * command with older ones of its agent and pipeline waiting goes out after them through deliver_now;
 * the others (Redis down, the lock held by another process) are the dispatcher's, and a held one
 * cx_runs_release's at its time. */
static void deliver_batch(item_t *items, size_t n)
{
    item_t **of = cx_calloc(n > 0 ? n : 1, sizeof(item_t *));
    cx_command_t **cmds = cx_calloc(n > 0 ? n : 1, sizeof(cx_command_t *));
    int *delivered = cx_calloc(n > 0 ? n : 1, sizeof(*delivered));
    size_t np = 0;

    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (!it->sent || it->st != ST_RUN || is_held(it))
            continue;
        cmds[np] = &it->res->command;
        of[np++] = it;
    }
    publish_many(cmds, np, delivered);
    for (size_t p = 0; p < np; p++)
        of[p]->res->delivered = delivered[p];
    unlock_deliveries(items, n);
    /* behind older commands of its agent and pipeline: those first, in seq order */
    for (size_t i = 0; i < n && cx_redis_available(); i++)
        if (items[i].rc == CX_OK && items[i].st == ST_RUN && !items[i].sent && !items[i].stop_id[0] &&
            items[i].res->command.status == CX_CMDST_QUEUED)
            deliver_now(items[i].cmd_id, items[i].res);
    free(of);
    free(cmds);
    free(delivered);
}

#define RELEASE_MAX 1000 /* held commands released in one transaction */

int cx_runs_release(size_t *released)
{
    cx_command_t *c = NULL, **cmds = NULL;
    const char **ids = NULL;
    int *delivered = NULL;
    size_t n = 0;
    int rc;

    *released = 0;
    if (!cx_redis_available())
        return CX_OK; /* they wait for Redis, or for their redelivery */
    /* one plain read while nothing is due (most ticks), before a transaction of three statements */
    if ((rc = cx_db_commands_held_any()) != CX_OK)
        return rc == CX_NOTFOUND ? CX_OK : rc;
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = cx_db_commands_held_due(RELEASE_MAX, &c, &n)) == CX_OK && n > 0) {
        ids = cx_calloc(n, sizeof(*ids));
        cmds = cx_calloc(n, sizeof(cx_command_t *));
        delivered = cx_calloc(n, sizeof(*delivered));
        for (size_t i = 0; i < n; i++) {
            ids[i] = c[i].id;
            cmds[i] = &c[i];
        }
        rc = cx_db_commands_unhold(ids, n);
    }
    if (rc == CX_OK && n > 0) {
        /* published before the commit: whoever would undo or cancel one of them (unhold) waits for its
         * row, and then finds it released; a publish whose commit fails is published again (an agent
         * ignores a command id it has heard) */
        int64_t now = cx_wall_ms();
        publish_many(cmds, n, delivered);
        for (size_t i = 0; i < n; i++)
            cx_shm_observe_fire_lag(now - c[i].last_sent_at);
    }
    rc = rc == CX_OK ? cx_db_commit() : undo(rc);
    if (rc == CX_OK)
        *released = n;
    cx_db_commands_free(c, n);
    free(ids);
    free(cmds);
    free(delivered);
    return rc;
}

/* committed -- after the commit of a batch: each start's counters, log line and result; the
 * deliveries (a replaced run's stop first, one by one; the other starts together). */
static void committed(item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        const cx_runs_start_opts_t *o = it->o;
        if (it->rc != CX_OK)
            continue;
        switch (it->st) {
        case ST_RUN:
            it->res->outcome = CX_START_RUN;
            cx_shm_count(CX_C_RUNS_STARTED, 1);
            cx_shm_count(CX_C_COMMANDS_CREATED, it->stop_id[0] ? 2 : 1);
            cx_log_info("run %s of pipeline %s created on agent %s (%s)", it->run_id, o->pipeline_id, it->agent,
                        cx_run_trigger_name(o->trigger));
            if (it->stop_id[0]) {
                /* the replaced run's stop goes out first (an agent hears its commands in seq order anyway) */
                cx_runs_result_t stopped;
                memset(&stopped, 0, sizeof(stopped));
                deliver_now(it->stop_id, &stopped);
                cx_runs_result_free(&stopped);
                deliver_now(it->cmd_id, it->res);
            }
            break;
        case ST_FAILED_RUN:
            it->res->outcome = CX_START_FAILED;
            cx_log_info("run %s of pipeline %s recorded failed (%s): %s", it->run_id, o->pipeline_id,
                        cx_run_trigger_name(o->trigger), it->why);
            break;
        case ST_NO_PIPELINE:
            it->res->outcome = CX_START_FAILED;
            snprintf(it->res->message, sizeof(it->res->message), "pipeline %s does not exist", o->pipeline_id);
            break;
        case ST_SKIP:
            it->res->outcome = CX_START_SKIPPED;
            break;
        case ST_CLAIM:
            it->res->outcome = CX_START_LOST;
            break;
        default:
            break;
        }
    }
    deliver_batch(items, n);
}

/* run_batch -- batch_tx, again while it is a deadlock victim; then what follows a commit. */
static int run_batch(item_t *items, size_t n)
{
    int rc, runs = 0;

    do
        rc = batch_tx(items, n);
    while (again(rc, &runs, "start of pipeline", n == 1 ? items[0].o->pipeline_id : "(a batch)"));
    if (rc == CX_OK)
        committed(items, n);
    return rc;
}

/* run_one -- a start alone; a fire that has a run already (uq_runs_fire) is claimed without one. */
static int run_one(item_t *it)
{
    int rc = run_batch(it, 1);

    if (rc == CX_OK && it->rc == CX_CONFLICT && it->o->fire != NULL) {
        /* the fire was run before (next_run_at set back by hand?): its claim alone, counted nothing */
        rc = cx_db_begin();
        if (rc == CX_OK) {
            int ok = 0;
            cx_schedule_claim_t *c = it->o->fire;
            c->fires = c->skipped = c->failures = 0;
            c->last_run_id = NULL;
            if ((rc = cx_db_schedules_claim_lock(&c, 1, &ok)) == CX_OK)
                rc = ok ? cx_db_schedules_claim_settle(&c, 1) : CX_OK;
            rc = undo(rc == CX_OK ? cx_db_commit() : rc);
            it->rc = CX_OK;
            it->st = ST_CLAIM;
            it->res->outcome = CX_START_LOST;
        }
    }
    return rc;
}

int cx_runs_start_many(const cx_runs_start_opts_t *o, size_t n, cx_runs_result_t *res, int *rcs)
{
    item_t *items = cx_calloc(n > 0 ? n : 1, sizeof(*items));
    item_t **first = cx_calloc(n > 0 ? n : 1, sizeof(item_t *));
    int *later = cx_calloc(n > 0 ? n : 1, sizeof(*later));
    size_t nfirst = 0;
    int rc = CX_OK;

    for (size_t i = 0; i < n; i++) {
        items[i].o = &o[i];
        items[i].res = &res[i];
        memset(&res[i], 0, sizeof(res[i]));
        /* a pipeline twice in the batch (two of its schedules due together): the later start after it,
         * alone, so that it meets the earlier one's run as any start would */
        for (size_t j = 0; j < i && !later[i]; j++)
            later[i] = strcmp(o[j].pipeline_id, o[i].pipeline_id) == 0;
    }
    /* the batch: the first start of each pipeline, contiguous */
    item_t *batch = cx_calloc(n > 0 ? n : 1, sizeof(*batch));
    for (size_t i = 0; i < n; i++)
        if (!later[i]) {
            batch[nfirst] = items[i];
            first[nfirst++] = &items[i];
        }
    if (nfirst == 1) {
        rc = run_one(&batch[0]);
    } else if (nfirst > 1) {
        rc = run_batch(batch, nfirst);
        if (rc != CX_OK && rc != CX_UNAVAIL) {
            /* a unique key (a concurrent start of one of the pipelines), or a deadlock victim too often:
             * one at a time, so that one start's trouble does not hold the others back */
            rc = CX_OK;
            for (size_t i = 0; i < nfirst; i++) {
                int one = run_one(&batch[i]);
                if (one != CX_OK) {
                    batch[i].rc = one;
                    batch[i].st = ST_REFUSED;
                }
            }
        }
    }
    for (size_t i = 0; i < nfirst; i++) {
        if (rc != CX_OK) {
            batch[i].rc = rc;
            batch[i].st = ST_REFUSED;
        }
        *first[i] = batch[i];
    }
    for (size_t i = 0; i < n; i++) {
        if (later[i]) {
            int one = run_one(&items[i]);
            if (one != CX_OK) {
                items[i].rc = one;
                items[i].st = ST_REFUSED;
            }
        }
        rcs[i] = items[i].rc;
        if (rcs[i] != CX_OK)
            cx_runs_result_free(&res[i]);
        free(items[i].yaml);
        json_object_put(items[i].payload);
    }
    free(batch);
    free(first);
    free(later);
    free(items);
    return rc;
}

static int launch(const cx_runs_start_opts_t *o, cx_runs_result_t *res)
{
    int rc, one;
    if ((rc = cx_runs_start_many(o, 1, res, &one)) != CX_OK)
        return rc;
    return one;
}

int cx_runs_start(const char *pipeline_id, const char *agent_id, const char *actor, const char *request_id, cx_runs_result_t *res)
{
    cx_runs_start_opts_t o = {.pipeline_id = pipeline_id, .agent_id = agent_id, .actor = actor, .request_id = request_id};
    return launch(&o, res);
}

int cx_runs_start_ex(const cx_runs_start_opts_t *o, cx_runs_result_t *res)
{
    return launch(o, res);
}

/* refusal -- why the active run cannot take a control command of type now (a message into msg), or 0.
 * pending is the newest unacknowledged control command of the run that may stand in the way (for a
 * stop: only another stop), or NULL for none (or not looked up yet: the state alone is judged). */
static int refusal(const cx_run_t *run, cx_command_type_t type, const cx_command_t *pending, char *msg, size_t len)
{
    if (type == CX_CMD_PAUSE_PIPELINE && run->status != CX_RUN_RUNNING) {
        snprintf(msg, len, "pipeline is not running (run %s is %s)", run->id, cx_run_status_name(run->status));
        return CX_STATE;
    }
    if (type == CX_CMD_RESUME_PIPELINE && run->status != CX_RUN_PAUSED) {
        snprintf(msg, len, "pipeline is not paused (run %s is %s)", run->id, cx_run_status_name(run->status));
        return CX_STATE;
    }
    /* A stop is refused only behind another stop; pause/resume behind any control command that has not
     * been acknowledged and whose goal the run has not reached by other means (events, heartbeats). */
    if (pending == NULL || (pending->type != CX_CMD_STOP_PIPELINE && cx_command_goal(pending->type) == run->status))
        return 0;
    snprintf(msg, len, "%s: a %s command (%s) for run %s still awaits the agent's acknowledgement",
             pending->type == CX_CMD_STOP_PIPELINE ? "pipeline is stopping" : "pipeline is changing state",
             cx_command_type_name(pending->type), pending->id, run->id);
    return CX_STATE;
}

/* control_refused -- refusal, with the run's outstanding control command looked up when the state
 * allows the command. */
static int control_refused(const cx_run_t *run, cx_command_type_t type, cx_runs_result_t *res)
{
    cx_command_t c;
    int rc;

    if ((rc = refusal(run, type, NULL, res->message, sizeof(res->message))) != 0)
        return rc;
    rc = cx_db_command_outstanding_for_run(run->id, type == CX_CMD_STOP_PIPELINE, &c);
    if (rc == CX_NOTFOUND)
        return 0;
    if (rc != CX_OK)
        return rc;
    rc = refusal(run, type, &c, res->message, sizeof(res->message));
    cx_command_free(&c);
    return rc;
}

/* control -- the transaction of a stop/pause/resume; with force_status the run also takes that status
 * at once (a pipeline deleted with ?force=true does not wait for the agent). */
static int control_tx(const char *pipeline_id, cx_command_type_t type, int force, cx_run_status_t force_status, const char *actor,
                      const char *request_id, cx_runs_result_t *res)
{
    cx_run_t run = {0};
    char cmd_id[37];
    uint64_t cancelled = 0;
    int rc;

    memset(res, 0, sizeof(*res));
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = cx_db_runs_pipeline(pipeline_id, NULL)) != CX_OK)
        goto out;
    if ((rc = cx_db_run_active(pipeline_id, 1, &run)) == CX_NOTFOUND) {
        snprintf(res->message, sizeof(res->message), "pipeline is not %s", type == CX_CMD_RESUME_PIPELINE ? "paused" : "running");
        rc = CX_STATE;
    }
    if (rc != CX_OK)
        goto out;
    if (type == CX_CMD_STOP_PIPELINE && maybe_held(&run)) {
        /* a fire written ahead of its time whose start is still held: stopped before it started */
        cx_held_t *h = NULL;
        size_t nh = 0;
        if ((rc = cx_db_held_lock(CX_HELD_PIPELINE, pipeline_id, &h, &nh)) == CX_OK && nh == 1 &&
            strcmp(h[0].run_id, run.id) == 0) {
            if ((rc = transition(&run, CX_RUN_STOPPED,
                                 force ? "the pipeline was deleted before the fire's time"
                                       : "stopped before the fire's time: its start was not sent")) == CX_OK &&
                (rc = load(run.id, h[0].cmd_id, res)) == CX_OK &&
                (rc = audit(actor, cx_command_action(type), pipeline_id, request_id, &run, res)) == CX_OK &&
                (rc = cx_db_commit()) == CX_OK) {
                res->delivered = 1; /* nothing left to deliver: the agent never heard of the run */
                cx_log_info("run %s of pipeline %s stopped before its fire's time: its start was never sent", run.id, pipeline_id);
            }
            free(h);
            goto out;
        }
        free(h);
        if (rc != CX_OK)
            goto out;
    }
    if (!force && (rc = control_refused(&run, type, res)) != 0)
        goto out;
    if ((rc = command_tx(&run, type, force ? "the pipeline was deleted" : NULL, force_status, actor, request_id, cmd_id, res,
                         &cancelled)) != CX_OK)
        goto out;
    if ((rc = cx_db_commit()) != CX_OK)
        goto out;
    cx_shm_count(CX_C_COMMANDS_CREATED, 1);
    if (cancelled > 0)
        cx_shm_count(CX_C_COMMANDS_CANCELLED, cancelled);
    cx_log_info("%s for run %s of pipeline %s queued for agent %s", cx_command_type_name(type), run.id, pipeline_id, run.agent_id);
    deliver_now(cmd_id, res);
out:
    cx_run_free(&run);
    return finish(rc, NULL, res);
}

static int control(const char *pipeline_id, cx_command_type_t type, int force, cx_run_status_t force_status, const char *actor,
                   const char *request_id, cx_runs_result_t *res)
{
    int rc, runs = 0;
    do
        rc = control_tx(pipeline_id, type, force, force_status, actor, request_id, res);
    while (again(rc, &runs, cx_command_type_name(type), pipeline_id));
    return rc;
}

int cx_runs_control(const char *pipeline_id, cx_command_type_t type, const char *actor, const char *request_id,
                    cx_runs_result_t *res)
{
    memset(res, 0, sizeof(*res));
    if (!cx_command_is_control(type))
        return CX_INVALID;
    return control(pipeline_id, type, 0, CX_RUN_STOPPED, actor, request_id, res);
}

int cx_runs_force_stop(const char *pipeline_id, const char *actor, const char *request_id)
{
    cx_runs_result_t res;
    int rc = control(pipeline_id, CX_CMD_STOP_PIPELINE, 1, CX_RUN_STOPPED, actor, request_id, &res);
    if (rc == CX_STATE)
        rc = CX_OK; /* no active run (any more): nothing to stop */
    cx_runs_result_free(&res);
    return rc;
}

/* ack_goal -- the status an acknowledged command moves its run to, or CX_RUN_STATUS_COUNT for none: a
 * start acknowledged runs a pending run (refused: fails it), pause/resume/stop reach their goal from
 * the status they apply to; a refused control command changes nothing. The transition must be legal
 * too. */
static cx_run_status_t ack_goal(cx_command_type_t type, int success, cx_run_status_t cur)
{
    cx_run_status_t to = CX_RUN_STATUS_COUNT;

    if (type == CX_CMD_START_PIPELINE)
        to = !success ? CX_RUN_FAILED : cur == CX_RUN_PENDING ? CX_RUN_RUNNING : CX_RUN_STATUS_COUNT;
    else if (success && type == CX_CMD_PAUSE_PIPELINE)
        to = cur == CX_RUN_RUNNING ? CX_RUN_PAUSED : CX_RUN_STATUS_COUNT;
    else if (success && type == CX_CMD_RESUME_PIPELINE)
        to = cur == CX_RUN_PAUSED ? CX_RUN_RUNNING : CX_RUN_STATUS_COUNT;
    else if (success)
        to = cx_command_goal(type);
    return to != CX_RUN_STATUS_COUNT && cx_run_transition_legal(cur, to) ? to : CX_RUN_STATUS_COUNT;
}

/* ack_effect -- what an acknowledged command does to its run (inside the ack's transaction). message
 * and error are stored texts (agentmsg.h: valid UTF-8, bounded), so the run's error_message takes them
 * as they are. */
static int ack_effect(const cx_command_t *c, int success, const char *message, const char *error)
{
    cx_run_t run;
    cx_run_status_t to;
    int rc;

    if (!c->run_id[0])
        return CX_OK;
    if ((rc = cx_db_run_get(c->run_id, &run)) != CX_OK)
        return rc == CX_NOTFOUND ? CX_OK : rc;
    to = ack_goal(c->type, success, run.status);
    if (to != CX_RUN_STATUS_COUNT) {
        const char *err = NULL;
        if (to == CX_RUN_FAILED)
            err = error && *error ? error : message && *message ? message : "the agent refused start_pipeline";
        rc = transition(&run, to, err);
        if (rc == CX_OK)
            cx_log_info("run %s: %s -> %s (%s acknowledged by agent %s)", run.id, cx_run_status_name(run.status),
                        cx_run_status_name(to), cx_command_type_name(c->type), c->agent_id);
        else if (rc == CX_STATE)
            rc = CX_OK; /* changed meanwhile: the newer word stands */
    } else if (!success) {
        cx_log_info("agent %s refused %s %s for run %s: %.200s", c->agent_id, cx_command_type_name(c->type), c->id, run.id,
                    error     ? error
                    : message ? message
                              : "");
    }
    cx_run_free(&run);
    return rc;
}

static int ack_tx(const char *agent_id, const char *command_id, int success, const char *message, const char *error,
                  cx_command_t *cmd)
{
    cx_command_t c;
    int rc, repeated = 0;

    if (cmd)
        memset(cmd, 0, sizeof(*cmd));
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
        *cmd = c;
    else
        cx_command_free(&c);
    return CX_OK;
}

int cx_runs_ack(const char *agent_id, const char *command_id, int success, const char *message, const char *error,
                cx_command_t *cmd)
{
    int rc, runs = 0;
    do
        rc = ack_tx(agent_id, command_id, success, message, error, cmd);
    while (again(rc, &runs, "acknowledgement of command", command_id));
    return rc;
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

static int refuse(cx_msg_error_t *why, const char *field, const char *msg)
{
    snprintf(why->field, sizeof(why->field), "%s", field);
    snprintf(why->msg, sizeof(why->msg), "%s", msg);
    return CX_INVALID;
}

/* event_transition -- a run event's status, when the transition from the run as read is legal (a run
 * that changed meanwhile keeps the newer word). */
static int event_transition(const cx_run_t *run, cx_run_status_t to, const char *error_message)
{
    int rc;

    if (!cx_run_transition_legal(run->status, to))
        return CX_OK;
    rc = transition(run, to, error_message);
    if (rc == CX_OK)
        cx_log_info("run %s: %s -> %s (run event from agent %s)", run->id, cx_run_status_name(run->status), cx_run_status_name(to),
                    run->agent_id);
    return rc == CX_STATE ? CX_OK : rc;
}

int cx_runs_event(const cx_event_t *ev, cx_msg_error_t *why)
{
    cx_run_t run;
    int rc;

    memset(why, 0, sizeof(*why));
    if (ev->type == NULL || strcmp(ev->type, CX_EVENT_RUN_STATUS) != 0)
        return CX_OK;
    rc = ev->run_id != NULL ? cx_db_run_get(ev->run_id, &run) : cx_db_run_active(ev->pipeline_id, 0, &run);
    if (rc == CX_NOTFOUND)
        return refuse(why, ev->run_id ? "run_id" : "pipeline_id", ev->run_id ? "names no run" : "the pipeline has no active run");
    if (rc != CX_OK)
        return rc;
    /* only the run's own agent reports on it, and about its own pipeline */
    if (strcmp(ev->agent_id, run.agent_id) != 0 || (ev->pipeline_id != NULL && strcmp(ev->pipeline_id, run.pipeline_id) != 0)) {
        rc = refuse(why, strcmp(ev->agent_id, run.agent_id) != 0 ? "agent_id" : "pipeline_id",
                    strcmp(ev->agent_id, run.agent_id) != 0 ? "is not the agent of the run" : "is not the pipeline of the run");
        cx_run_free(&run);
        return rc;
    }
    if (cx_run_status_active(run.status) && (ev->processed_count >= 0 || ev->error_count >= 0))
        rc = cx_db_run_counts(run.id, ev->processed_count >= 0 ? ev->processed_count : run.processed_count,
                              ev->error_count >= 0 ? ev->error_count : run.error_count);
    if (rc == CX_OK && ev->has_status)
        rc = event_transition(&run, ev->status, ev->status == CX_RUN_FAILED ? ev->error_message : NULL);
    cx_run_free(&run);
    return rc;
}

/* ---- acknowledgements and run events in batches (the dispatcher's) ---- */

#define APPLY_MAX 100 /* messages of one transaction */
#define APPLY_MIN 3   /* fewer are applied one by one: a batch's own statements cost more than they save */

/* A run transition of a batch, for the word w (an ack of command c, or an event). */
typedef struct move {
    const cx_run_t *run;
    cx_run_status_t to;
    const char *error; /* error_message, or NULL */
    cx_agent_word_t *w;
    const cx_command_t *c;
    int done; /* written by the batch's UPDATE (not by the word alone after a missed compare-and-set) */
} move_t;

/* The work of one batch: what it read, what it writes. */
typedef struct batch {
    cx_command_t *cmds;
    size_t ncmds;
    cx_run_t *runs;
    size_t nruns;
    cx_command_result_t *results;
    cx_agent_word_t **result_of; /* the word of each result */
    size_t nresults;
    const char **count_ids;
    int64_t *processed, *errors;
    size_t ncounts;
    move_t *moves;
    size_t nmoves;
    uint64_t cancelled;
} batch_t;

static void batch_free(batch_t *b)
{
    cx_db_commands_free(b->cmds, b->ncmds);
    cx_db_runs_free(b->runs, b->nruns);
    free(b->results);
    free(b->result_of);
    free(b->count_ids);
    free(b->processed);
    free(b->errors);
    free(b->moves);
    memset(b, 0, sizeof(*b));
}

static const cx_command_t *batch_cmd(const batch_t *b, const cx_agent_word_t *w)
{
    for (size_t i = 0; i < b->ncmds; i++)
        if (strcmp(b->cmds[i].id, w->ack->command_id) == 0)
            return strcmp(b->cmds[i].agent_id, w->agent_id) == 0 ? &b->cmds[i] : NULL; /* another agent's: none */
    return NULL;
}

static const cx_run_t *batch_run(const batch_t *b, const char *id)
{
    for (size_t i = 0; id != NULL && i < b->nruns; i++)
        if (strcmp(b->runs[i].id, id) == 0)
            return &b->runs[i];
    return NULL;
}

static int has_key(const char *const *keys, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], k) == 0)
            return 1;
    return 0;
}

/* savepoint -- SAVEPOINT (back 0) or ROLLBACK TO SAVEPOINT (back 1) cx_batch. */
static int savepoint(int back)
{
    return cx_db_exec(back ? "ROLLBACK TO SAVEPOINT cx_batch" : "SAVEPOINT cx_batch", NULL, 0, NULL, NULL);
}

/* word_result -- an acknowledgement of the batch: what it records (a repeated one, as read, nothing). */
static void word_result(batch_t *b, cx_agent_word_t *w)
{
    const cx_command_t *c = batch_cmd(b, w);

    if (c == NULL) {
        w->rc = CX_NOTFOUND;
        return;
    }
    if (c->status != CX_CMDST_QUEUED && c->status != CX_CMDST_SENT && c->status != CX_CMDST_EXPIRED &&
        c->status != CX_CMDST_CANCELLED)
        return; /* a repeated ack: changes nothing */
    b->result_of[b->nresults] = w;
    b->results[b->nresults++] = (cx_command_result_t){c->id, w->ack->success, w->ack->message, w->ack->error};
}

/* results -- the acknowledgements in one UPDATE; when one was recorded meanwhile (over REST, by the
 * dispatcher of another replica), that UPDATE is undone and each is recorded alone, a repeated one
 * dropped from the batch. */
static int results(batch_t *b)
{
    uint64_t changed = 0;
    int rc;

    if (b->nresults == 0)
        return CX_OK;
    if ((rc = savepoint(0)) != CX_OK || (rc = cx_db_commands_results(b->results, b->nresults, &changed)) != CX_OK)
        return rc;
    if (changed == b->nresults)
        return CX_OK;
    if ((rc = savepoint(1)) != CX_OK)
        return rc;
    for (size_t i = 0; i < b->nresults; i++) {
        const cx_command_result_t *r = &b->results[i];
        rc = cx_db_command_result(r->id, b->result_of[i]->agent_id, r->success, r->message, r->error);
        if (rc == CX_STATE) {
            b->result_of[i] = NULL; /* a repeated ack after all */
            continue;
        }
        if (rc != CX_OK)
            return rc;
    }
    return CX_OK;
}

/* word_ack -- what a recorded acknowledgement of the batch does to its run, as ack_effect. */
static void word_ack(batch_t *b, cx_agent_word_t *w)
{
    const cx_command_t *c = batch_cmd(b, w);
    const cx_run_t *run;
    cx_run_status_t to;

    if (!c->run_id[0] || (run = batch_run(b, c->run_id)) == NULL)
        return;
    if ((to = ack_goal(c->type, w->ack->success, run->status)) != CX_RUN_STATUS_COUNT) {
        const char *err = NULL;
        if (to == CX_RUN_FAILED)
            err = w->ack->error && *w->ack->error       ? w->ack->error
                  : w->ack->message && *w->ack->message ? w->ack->message
                                                        : "the agent refused start_pipeline";
        b->moves[b->nmoves++] = (move_t){run, to, err, w, c, 0};
    } else if (!w->ack->success) {
        cx_log_info("agent %s refused %s %s for run %s: %.200s", c->agent_id, cx_command_type_name(c->type), c->id, run->id,
                    w->ack->error     ? w->ack->error
                    : w->ack->message ? w->ack->message
                                      : "");
    }
}

/* word_event -- a run event (with run_id) of the batch, as cx_runs_event would apply it. */
static void word_event(batch_t *b, cx_agent_word_t *w)
{
    const cx_event_t *ev = w->ev;
    const cx_run_t *run = batch_run(b, ev->run_id);

    if (run == NULL) {
        w->rc = refuse(w->why, "run_id", "names no run");
        return;
    }
    if (strcmp(ev->agent_id, run->agent_id) != 0 || (ev->pipeline_id != NULL && strcmp(ev->pipeline_id, run->pipeline_id) != 0)) {
        int other = strcmp(ev->agent_id, run->agent_id) != 0;
        w->rc = refuse(w->why, other ? "agent_id" : "pipeline_id",
                       other ? "is not the agent of the run" : "is not the pipeline of the run");
        return;
    }
    if (cx_run_status_active(run->status) && (ev->processed_count >= 0 || ev->error_count >= 0)) {
        b->count_ids[b->ncounts] = run->id;
        b->processed[b->ncounts] = ev->processed_count >= 0 ? ev->processed_count : run->processed_count;
        b->errors[b->ncounts++] = ev->error_count >= 0 ? ev->error_count : run->error_count;
    }
    if (ev->has_status && cx_run_transition_legal(run->status, ev->status))
        b->moves[b->nmoves++] = (move_t){run, ev->status, ev->status == CX_RUN_FAILED ? ev->error_message : NULL, w, NULL, 0};
}

static int is_event(const cx_agent_word_t *w)
{
    return w->ack == NULL && w->ev->type != NULL && strcmp(w->ev->type, CX_EVENT_RUN_STATUS) == 0;
}

/* move_alone -- a move whose run changed after the batch read it: its word decides again from the
 * run as it is now (as ack_effect and cx_runs_event do; the event's counts are written already). */
static int move_alone(const move_t *m)
{
    cx_run_t run;
    int rc;

    if (m->c != NULL)
        return ack_effect(m->c, m->w->ack->success, m->w->ack->message, m->w->ack->error);
    if ((rc = cx_db_run_get(m->run->id, &run)) != CX_OK)
        return rc == CX_NOTFOUND ? CX_OK : rc;
    rc = event_transition(&run, m->to, m->error);
    cx_run_free(&run);
    return rc;
}

/* batch_moves -- the batch's transitions, one UPDATE per (from, to) (a group whose runs changed after
 * the batch read them undone, and each of its moves decided again alone), then the ended runs' commands
 * cancelled in one. */
static int batch_moves(batch_t *b)
{
    const char **ids = cx_calloc(b->nmoves + 1, sizeof(*ids)), **errs = cx_calloc(b->nmoves + 1, sizeof(*errs));
    size_t *in = cx_calloc(b->nmoves + 1, sizeof(*in));
    char *seen = cx_calloc(b->nmoves + 1, 1);
    size_t nended = 0;
    int rc = CX_OK;

    for (size_t i = 0; i < b->nmoves && rc == CX_OK; i++) {
        size_t m = 0;
        uint64_t changed = 0;
        if (seen[i])
            continue;
        for (size_t j = i; j < b->nmoves; j++)
            if (!seen[j] && b->moves[j].run->status == b->moves[i].run->status && b->moves[j].to == b->moves[i].to) {
                seen[j] = 1;
                in[m] = j;
                ids[m] = b->moves[j].run->id;
                errs[m++] = b->moves[j].error;
            }
        if ((rc = savepoint(0)) != CX_OK ||
            (rc = cx_db_runs_transition_many(ids, errs, m, b->moves[i].run->status, b->moves[i].to, &changed)) != CX_OK)
            break;
        if (changed == m) {
            for (size_t k = 0; k < m; k++)
                b->moves[in[k]].done = 1;
            continue;
        }
        if ((rc = savepoint(1)) != CX_OK)
            break;
        for (size_t k = 0; k < m && rc == CX_OK; k++)
            rc = move_alone(&b->moves[in[k]]);
    }
    for (size_t i = 0; i < b->nmoves; i++)
        if (b->moves[i].done && !cx_run_status_active(b->moves[i].to))
            ids[nended++] = b->moves[i].run->id;
    if (rc == CX_OK)
        rc = cx_db_commands_cancel_runs(ids, nended, &b->cancelled);
    free(seen);
    free(in);
    free(errs);
    free(ids);
    return rc;
}

/* pick -- the words of one batch among the candidates c[0..n) (in their order): a word about a run or a
 * command already in the batch, or about one a word passed over before it is about, is passed over
 * (left for a later batch, after the earlier words of its run), so the words of one run take effect in
 * their order while those of other runs go on filling the batch (an agent's ack of a start and its
 * `running` event come one after the other). An event without run_id ends the pick: the pipeline's
 * active run is known only once read (applied alone when it is first). The picked indices into sel. */
static size_t pick(cx_agent_word_t **c, size_t n, const batch_t *b, size_t *sel)
{
    const char **keys = cx_calloc(2 * n + 1, sizeof(*keys)), **held = cx_calloc(2 * n + 1, sizeof(*held));
    size_t nkeys = 0, nheld = 0, k = 0;

    for (size_t i = 0; i < n && k < APPLY_MAX; i++) {
        const char *cmd = c[i]->ack ? c[i]->ack->command_id : NULL, *run = NULL;
        if (c[i]->ack != NULL) {
            const cx_command_t *cm = batch_cmd(b, c[i]);
            run = cm && cm->run_id[0] ? cm->run_id : NULL;
        } else if (is_event(c[i])) {
            if (c[i]->ev->run_id == NULL)
                break;
            run = c[i]->ev->run_id;
        }
        if ((cmd && (has_key(keys, nkeys, cmd) || has_key(held, nheld, cmd))) ||
            (run && (has_key(keys, nkeys, run) || has_key(held, nheld, run)))) {
            if (cmd)
                held[nheld++] = cmd;
            if (run)
                held[nheld++] = run;
            continue;
        }
        if (cmd)
            keys[nkeys++] = cmd;
        if (run)
            keys[nkeys++] = run;
        sel[k++] = i;
    }
    free(held);
    free(keys);
    return k;
}

/* apply_tx -- one transaction of words picked among the candidates c[0..n) (pick): *used says how many,
 * sel which. It reads committed rows (READ COMMITTED), so a word decided again alone sees the run as it
 * is. */
static int apply_tx(cx_agent_word_t **c, size_t n, size_t *sel, size_t *used, batch_t *b)
{
    const char **cids = cx_calloc(n + 1, sizeof(*cids)), **rids = cx_calloc(n + 1, sizeof(*rids));
    cx_agent_word_t **w = cx_calloc(n + 1, sizeof(cx_agent_word_t *));
    size_t ncids = 0, nrids = 0, k;
    int rc;

    memset(b, 0, sizeof(*b));
    *used = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i]->ack != NULL)
            cids[ncids++] = c[i]->ack->command_id;
    if ((rc = cx_db_exec("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", NULL, 0, NULL, NULL)) != CX_OK ||
        (rc = cx_db_begin()) != CX_OK)
        goto out;
    if ((rc = cx_db_commands_load_many(cids, ncids, &b->cmds, &b->ncmds)) != CX_OK)
        goto out;
    *used = k = pick(c, n, b, sel);
    if (k == 0) {
        rc = cx_db_rollback(); /* nothing written: c[0] goes alone */
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        w[i] = c[sel[i]];
        if (w[i]->ack != NULL) {
            const cx_command_t *cm = batch_cmd(b, w[i]);
            if (cm && cm->run_id[0])
                rids[nrids++] = cm->run_id;
        } else if (is_event(w[i])) {
            rids[nrids++] = w[i]->ev->run_id;
        }
    }
    if ((rc = cx_db_runs_get_many(rids, nrids, &b->runs, &b->nruns)) != CX_OK)
        goto out;
    b->results = cx_calloc(k, sizeof(*b->results));
    b->result_of = cx_calloc(k, sizeof(cx_agent_word_t *));
    b->count_ids = cx_calloc(k, sizeof(*b->count_ids));
    b->processed = cx_calloc(k, sizeof(*b->processed));
    b->errors = cx_calloc(k, sizeof(*b->errors));
    b->moves = cx_calloc(k, sizeof(*b->moves));
    for (size_t i = 0; i < k; i++) {
        w[i]->rc = CX_OK;
        if (w[i]->ack != NULL)
            word_result(b, w[i]);
    }
    if ((rc = results(b)) != CX_OK)
        goto out;
    /* each run is in the batch once: the order in which its words are looked at does not matter */
    for (size_t r = 0; r < b->nresults; r++)
        if (b->result_of[r] != NULL)
            word_ack(b, b->result_of[r]);
    for (size_t i = 0; i < k; i++)
        if (is_event(w[i]))
            word_event(b, w[i]);
    if ((rc = cx_db_runs_counts_many(b->count_ids, b->processed, b->errors, b->ncounts)) != CX_OK)
        goto out;
    if ((rc = batch_moves(b)) != CX_OK)
        goto out;
    rc = cx_db_commit();
out:
    free(w);
    free(rids);
    free(cids);
    return rc == CX_OK ? CX_OK : undo(rc);
}

/* apply_one -- w as cx_runs_ack or cx_runs_event alone. */
static void apply_one(cx_agent_word_t *w)
{
    if (w->ack != NULL)
        w->rc = cx_runs_ack(w->agent_id, w->ack->command_id, w->ack->success, w->ack->message, w->ack->error, NULL);
    else
        w->rc = cx_runs_event(w->ev, w->why);
}

#define APPLY_LOOK ((size_t)4 * APPLY_MAX) /* candidates a batch is picked from */

void cx_runs_apply(cx_agent_word_t *w, size_t n)
{
    char *done = cx_calloc(n + 1, 1);
    cx_agent_word_t **cand = cx_calloc(APPLY_LOOK, sizeof(cx_agent_word_t *));
    size_t *idx = cx_calloc(APPLY_LOOK, sizeof(*idx)), *sel = cx_calloc(APPLY_LOOK, sizeof(*sel));
    size_t at = 0;

    while (at < n) {
        size_t ncand = 0, used = 0;
        int rc, runs = 0;
        batch_t b;

        if (done[at]) {
            at++;
            continue;
        }
        /* the words not applied yet, in their order, from the first of them */
        for (size_t i = at; i < n && ncand < APPLY_LOOK; i++)
            if (!done[i]) {
                idx[ncand] = i;
                cand[ncand++] = &w[i];
            }
        if (ncand < APPLY_MIN) {
            for (size_t i = 0; i < ncand; i++) {
                apply_one(cand[i]);
                done[idx[i]] = 1;
            }
            continue;
        }
        do {
            rc = apply_tx(cand, ncand, sel, &used, &b);
            if (rc != CX_OK)
                batch_free(&b);
        } while (again(rc, &runs, "batch of acknowledgements and run events", "from the subscription"));
        if (rc == CX_OK && used == 0) {
            batch_free(&b);
            apply_one(cand[0]); /* an event without run_id */
            done[idx[0]] = 1;
            continue;
        }
        if (rc != CX_OK) {
            /* not a deadlock: MySQL refused the batch (or is down): each message alone, as before batches */
            if (used == 0) {
                sel[0] = 0;
                used = 1;
            }
            for (size_t i = 0; i < used; i++) {
                apply_one(cand[sel[i]]);
                done[idx[sel[i]]] = 1;
            }
            continue;
        }
        for (size_t i = 0; i < used; i++)
            done[idx[sel[i]]] = 1;
        for (size_t i = 0; i < b.nresults; i++)
            if (b.result_of[i] != NULL)
                cx_shm_count(b.results[i].success ? CX_C_COMMANDS_ACKED : CX_C_COMMANDS_FAILED, 1);
        if (b.cancelled > 0)
            cx_shm_count(CX_C_COMMANDS_CANCELLED, b.cancelled);
        for (size_t i = 0; i < b.nmoves; i++)
            if (b.moves[i].done)
                cx_log_info("run %s: %s -> %s (%s%s %s)", b.moves[i].run->id, cx_run_status_name(b.moves[i].run->status),
                            cx_run_status_name(b.moves[i].to),
                            b.moves[i].c ? cx_command_type_name(b.moves[i].c->type) : "run event",
                            b.moves[i].c ? " acknowledged by agent" : " from agent", b.moves[i].run->agent_id);
        batch_free(&b);
    }
    free(sel);
    free(idx);
    free(cand);
    free(done);
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

/* listed_goal -- a heartbeat lists the run's pipeline: the agent runs it. pipeline_stats may say
 * running or paused (followed); else a pending run is running. CX_RUN_STATUS_COUNT: no change. */
static cx_run_status_t listed_goal(cx_run_status_t cur, const char *st_status)
{
    cx_run_status_t st;
    if (st_status != NULL && cx_run_status_parse(st_status, &st) == CX_OK && (st == CX_RUN_RUNNING || st == CX_RUN_PAUSED))
        return st;
    return cur == CX_RUN_PENDING ? CX_RUN_RUNNING : CX_RUN_STATUS_COUNT;
}

/* Why a run a heartbeat no longer lists has failed. */
enum { WHY_NONE = 0, WHY_NEVER_STARTED, WHY_VANISHED };

/* unlisted_goal -- a heartbeat does not list the run's pipeline: after a stop that was not refused
 * (stop_asked) the run is stopped; a pending run whose start_pipeline expired unacknowledged
 * (start_expired) never started: failed; a run running (or paused) that the agent has not reported for
 * at least the heartbeat timeout (since its last beat listing it, or since it started) has failed: one
 * unlisted for less waits, so that its completed or stopped event still on its way through the
 * dispatcher settles it with its own status. Otherwise no change (a start may still be on its way).
 * CX_RUN_STATUS_COUNT: no change; *why says why a failure. */
static cx_run_status_t unlisted_goal(const cx_run_t *run, int stop_asked, int start_expired, int64_t timeout_ms, int *why)
{
    *why = WHY_NONE;
    if (stop_asked)
        return CX_RUN_STOPPED;
    if (run->status == CX_RUN_PENDING && start_expired) {
        *why = WHY_NEVER_STARTED;
        return CX_RUN_FAILED;
    }
    if ((run->status == CX_RUN_RUNNING || run->status == CX_RUN_PAUSED) && run->unlisted_for_ms >= timeout_ms) {
        *why = WHY_VANISHED; /* a paused pipeline is still on its agent, and listed */
        return CX_RUN_FAILED;
    }
    return CX_RUN_STATUS_COUNT;
}

/* A heartbeat's look at one active run of its agent. */
typedef struct seen {
    const cx_run_t *run;
    json_object *st; /* its pipeline_stats entry, or NULL */
    int in_list;     /* the beat lists its pipeline (1), does not (0), has no list (-1) */
    int64_t p, e;    /* the counts to write with last_listed_at (p < 0: none) */
    int rc;          /* a write for it failed: no transition this beat */
    int stop, start; /* unlisted: the status of its newest stop_pipeline, start_pipeline (-1: none) */
} seen_t;

#define BEAT_ROWS 500 /* runs of one statement of a beat's reconciliation */

/* look -- what the beat says of the run's pipeline: listed or not, and its counts. A run with counts
 * but no list (the beat has none) has them written at once, alone. */
static void look(seen_t *s, const cx_run_t *run, json_object *pipelines, json_object *stats)
{
    memset(s, 0, sizeof(*s));
    s->run = run;
    s->st = stats_of(stats, run->pipeline_id);
    s->in_list = pipelines ? listed(pipelines, run->pipeline_id) : -1;
    s->p = -1;
    s->stop = s->start = -1;
    if (s->st != NULL || s->in_list == 1) {
        int64_t p = s->st ? get_count(s->st, "processed_count") : -1, e = s->st ? get_count(s->st, "error_count") : -1;
        int counts = p >= 0 || e >= 0;
        s->p = counts ? (p >= 0 ? p : run->processed_count) : -1;
        s->e = e >= 0 ? e : run->error_count;
        if (s->in_list != 1 && counts)
            s->rc = cx_db_run_counts(run->id, s->p, s->e);
    }
}

/* listed_write -- last_listed_at (and the counts) of the listed runs of the beat: a statement or two per
 * BEAT_ROWS runs (a deadlock victim runs again); a failed one leaves its runs without a transition. */
static void listed_write(seen_t *s, size_t n)
{
    const char **ids = cx_calloc(BEAT_ROWS, sizeof(*ids));
    int64_t *p = cx_calloc(BEAT_ROWS, sizeof(*p)), *e = cx_calloc(BEAT_ROWS, sizeof(*e));
    seen_t **of = cx_calloc(BEAT_ROWS, sizeof(seen_t *));

    for (size_t i = 0; i < n;) {
        size_t k = 0;
        int rc, runs = 0;
        for (; i < n && k < BEAT_ROWS; i++)
            if (s[i].in_list == 1) {
                of[k] = &s[i];
                ids[k] = s[i].run->id;
                p[k] = s[i].p;
                e[k++] = s[i].e;
            }
        if (k == 0)
            break;
        do
            rc = cx_db_runs_listed_many(ids, p, e, k);
        while (again(rc, &runs, "heartbeat: runs listed by agent", of[0]->run->agent_id));
        for (size_t j = 0; j < k; j++)
            of[j]->rc = rc;
    }
    free(of);
    free(e);
    free(p);
    free(ids);
}

/* unlisted_read -- the newest stop_pipeline of every unlisted run, and the start_pipeline of the pending
 * ones, a query each per BEAT_ROWS runs. A failed query reads as none (as no stop asked: the next beat
 * asks again). */
static void unlisted_read(seen_t *s, size_t n, cx_command_type_t type)
{
    const char **ids = cx_calloc(BEAT_ROWS, sizeof(*ids));
    int *st = cx_calloc(BEAT_ROWS, sizeof(*st));
    seen_t **of = cx_calloc(BEAT_ROWS, sizeof(seen_t *));

    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k < BEAT_ROWS; i++)
            if (s[i].in_list == 0 && s[i].rc == CX_OK && (type == CX_CMD_STOP_PIPELINE || s[i].run->status == CX_RUN_PENDING)) {
                of[k] = &s[i];
                ids[k++] = s[i].run->id;
            }
        if (k == 0)
            break;
        if (cx_db_commands_status_for_runs(ids, k, type, st) != CX_OK)
            continue;
        for (size_t j = 0; j < k; j++)
            *(type == CX_CMD_STOP_PIPELINE ? &of[j]->stop : &of[j]->start) = st[j];
    }
    free(of);
    free(st);
    free(ids);
}

/* reconcile -- one active run against one heartbeat, its writes and reads done (seen). */
static int reconcile(const char *agent_id, const seen_t *s)
{
    const cx_run_t *run = s->run;
    const char *why = NULL;
    int kind;
    cx_run_status_t to = CX_RUN_STATUS_COUNT;
    char msg[320];
    int rc = CX_OK;

    if (s->rc != CX_OK)
        return s->rc;
    if (s->in_list == 1) {
        to = listed_goal(run->status, s->st ? get_str(s->st, "status") : NULL);
    } else if (s->in_list == 0) {
        int stop = s->stop >= 0 && s->stop != (int)CX_CMDST_FAILED;
        int expired = !stop && run->status == CX_RUN_PENDING && s->start == (int)CX_CMDST_EXPIRED;
        to = unlisted_goal(run, stop, expired, cx_cfg->agents.heartbeat_timeout_ms, &kind);
        if (kind == WHY_NEVER_STARTED)
            snprintf(msg, sizeof(msg), "agent %.200s never acknowledged start_pipeline nor reported the pipeline running",
                     agent_id);
        else if (kind == WHY_VANISHED)
            snprintf(msg, sizeof(msg), "agent %.200s no longer reports the pipeline in its heartbeats", agent_id);
        why = kind != WHY_NONE ? msg : NULL;
    }
    if (to != CX_RUN_STATUS_COUNT && to != run->status && cx_run_transition_legal(run->status, to)) {
        rc = transition(run, to, why);
        if (rc == CX_OK)
            cx_log_info("run %s: %s -> %s (heartbeat of agent %s)", run->id, cx_run_status_name(run->status),
                        cx_run_status_name(to), agent_id);
        else if (rc == CX_STATE)
            rc = CX_OK;
    }
    return rc;
}

/* ---- strays: pipelines an agent runs without an active run of ours there ---- */

#define STRAY_RATE 50     /* stray stops a process writes per second at most (a token bucket) */
#define STRAY_BURST 100   /* and in one burst */
#define STRAY_PER_BEAT 32 /* strays of one heartbeat looked at */

static cx_loglimit_t stray_log;

/* stray_token -- may one more stray stop be written now? Bounds what a flood of heartbeats listing
 * pipelines (or a bug) can make the control plane write and send. */
static int stray_token(void)
{
    static double tokens = STRAY_BURST;
    static int64_t at;
    int64_t now = cx_now_ms();

    if (at != 0)
        tokens += (double)(now - at) * STRAY_RATE / 1000.0;
    if (tokens > STRAY_BURST)
        tokens = STRAY_BURST;
    at = now;
    if (tokens < 1.0)
        return 0;
    tokens -= 1.0;
    return 1;
}

/* stray_stop -- agent_id reports pipeline_id running and has no active run of it: unless the pipeline
 * is unknown here, its last run there ended (or a stop for the pair was written) less than a heartbeat
 * timeout ago (a beat written before the agent stopped), send the agent a stop_pipeline, audited and
 * counted. The stop names the agent's last run of the pipeline, if any. */
static int stray_stop(const char *agent_id, const char *pipeline_id)
{
    cx_runs_result_t res;
    cx_stray_t st;
    json_object *payload = NULL, *after = NULL;
    char cmd_id[37], why[400];
    int rc;

    memset(&res, 0, sizeof(res));
    if ((rc = cx_db_commands_stray(agent_id, pipeline_id, cx_cfg->agents.heartbeat_timeout_ms, &st)) != CX_OK)
        return rc;
    if (!st.known) {
        if (cx_loglimit_allow(&stray_log, "stray pipelines"))
            cx_log_info("agent %s reports pipeline %s, which is not known here; left alone", agent_id, pipeline_id);
        return CX_OK;
    }
    if (st.run_recent || st.stop_recent || !stray_token())
        return CX_OK;
    snprintf(why, sizeof(why), "agent %.200s runs pipeline %s without an active run of it", agent_id, pipeline_id);
    cx_uuid_v7(cmd_id);
    payload = json_object_new_object();
    json_object_object_add(payload, "run_id", st.last_run[0] ? json_object_new_string(st.last_run) : NULL);
    if ((rc = cx_db_begin()) != CX_OK)
        goto out;
    if ((rc = cx_db_command_insert(cmd_id, agent_id, CX_CMD_STOP_PIPELINE, pipeline_id, st.last_run[0] ? st.last_run : NULL,
                                   json_text(payload), cx_cfg->commands.ttl_ms, SYSTEM_ACTOR)) != CX_OK)
        goto out;
    if ((rc = cx_db_command_load(cmd_id, NULL, &res.command)) != CX_OK)
        goto out;
    after = json_object_new_object();
    json_object_object_add(after, "agent_id", json_object_new_string(agent_id));
    json_object_object_add(after, "reason", json_object_new_string(why));
    json_object_object_add(after, "command", cx_command_json(&res.command));
    if ((rc = cx_audit_write(SYSTEM_ACTOR, "pipeline_stop_stray", "pipeline", pipeline_id, NULL, NULL, after)) != CX_OK)
        goto out;
    if ((rc = cx_db_commit()) != CX_OK)
        goto out;
    cx_shm_count(CX_C_COMMANDS_CREATED, 1);
    cx_shm_count(CX_C_STRAY_STOPS, 1);
    if (cx_loglimit_allow(&stray_log, "stray pipelines"))
        cx_log_warnx("%s: stop_pipeline %s sent", why, cmd_id);
    deliver_now(cmd_id, &res);
out:
    json_object_put(after);
    rc = finish(rc, payload, &res);
    cx_runs_result_free(&res);
    return rc;
}

/* strays -- the pipelines of the beat's list that none of the agent's active runs is running. */
static int strays(const char *agent_id, json_object *pipelines, const cx_run_t *runs, size_t nruns)
{
    size_t n = pipelines ? json_object_array_length(pipelines) : 0, looked = 0;
    int rc, first = CX_OK;

    for (size_t i = 0; i < n && looked < STRAY_PER_BEAT; i++) {
        json_object *v = json_object_array_get_idx(pipelines, i);
        const char *pid;
        size_t k;
        if (!json_object_is_type(v, json_type_string))
            continue;
        pid = json_object_get_string(v);
        for (k = 0; k < nruns && strcmp(runs[k].pipeline_id, pid) != 0; k++)
            ;
        if (k < nruns || strlen(pid) > CX_RUN_ID_MAX)
            continue; /* one of ours; or too long to be a pipeline id of ours */
        looked++;
        if ((rc = stray_stop(agent_id, pid)) != CX_OK && first == CX_OK)
            first = rc;
    }
    return first;
}

int cx_runs_heartbeat(const char *agent_id, json_object *beat, int look_for_strays)
{
    json_object *pipelines = NULL, *stats = NULL;
    cx_run_t *runs;
    seen_t *seen;
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
    /* the writes and reads of all the runs first, a statement per kind (not one per run), then each
     * run's transition, if any */
    seen = cx_calloc(n + 1, sizeof(*seen));
    for (size_t i = 0; i < n; i++)
        look(&seen[i], &runs[i], pipelines, stats);
    listed_write(seen, n);
    unlisted_read(seen, n, CX_CMD_STOP_PIPELINE);
    unlisted_read(seen, n, CX_CMD_START_PIPELINE);
    for (size_t i = 0; i < n; i++)
        if ((rc = reconcile(agent_id, &seen[i])) != CX_OK && first == CX_OK)
            first = rc;
    free(seen);
    if (look_for_strays && (rc = strays(agent_id, pipelines, runs, n)) != CX_OK && first == CX_OK)
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

    snprintf(why, sizeof(why), "agent %.200s went offline", agent_id);
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    /* a fire written ahead of its time for this agent has not started: undone, it fires at its time
     * on an agent that is online */
    if ((rc = cx_db_held_unhold(CX_HELD_AGENT, agent_id, 1, SYSTEM_ACTOR, NULL, why, NULL)) != CX_OK ||
        (rc = cx_db_runs_of_agent(agent_id, &runs, &n)) != CX_OK)
        return undo(rc);
    for (size_t i = 0; i < n; i++) {
        json_object *before, *after;
        if ((rc = transition(&runs[i], CX_RUN_LOST, why)) != CX_OK)
            goto fail;
        before = cx_run_json(&runs[i]);
        after = json_object_new_object();
        json_object_object_add(after, "status", json_object_new_string(cx_run_status_name(CX_RUN_LOST)));
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
        cx_runs_start_opts_t o = {.pipeline_id = runs[i].pipeline_id,
                                  .trigger = CX_TRIGGER_FAILOVER,
                                  .actor = SYSTEM_ACTOR,
                                  .exclude = agent_id,
                                  .failover_of = runs[i].id,
                                  .checkpoint = cp,
                                  .action = "pipeline_failover"};
        int frc = launch(&o, &res);
        if (frc == CX_OK) {
            cx_shm_count(CX_C_RUNS_FAILED_OVER, 1);
            cx_log_info("run %s of pipeline %s failed over to agent %s%s", runs[i].id, runs[i].pipeline_id, res.run.agent_id,
                        cp ? " with its checkpoint" : "");
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

void cx_run_metrics_free(cx_run_metrics_t *m)
{
    if (m == NULL)
        return;
    json_object_put(m->reported);
    cx_run_free(&m->latest);
    memset(m, 0, sizeof(*m));
}

int cx_runs_metrics(const char *pipeline_id, cx_run_metrics_t *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = cx_db_runs_pipeline(pipeline_id, NULL)) != CX_OK)
        return rc;
    if (cx_redis_pipeline_json(pipeline_id, "metrics", &out->reported) == CX_OK)
        return CX_OK;
    out->reported = NULL;
    rc = cx_db_run_latest(pipeline_id, &out->latest);
    if (rc != CX_OK && rc != CX_NOTFOUND)
        return rc;
    out->has_run = rc == CX_OK;
    return CX_OK;
}
