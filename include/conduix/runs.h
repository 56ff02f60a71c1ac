/*
 * runs.h -- pipeline runs on agents: the lifecycle operations of the API (start/stop/pause/resume),
 * the bookkeeping other children drive (hbmon: heartbeats, agents going offline; the dispatcher:
 * acknowledgements and run events), and the pipeline_runs rows under them (src/db/runs.c).
 *
 * Run status: pending -> running <-> paused -> completed | failed | stopped | lost. A run's status changes
 * only on the agent's word (an acknowledgement, a run event, its heartbeats) or when its agent goes
 * offline (lost); the API only queues commands. The results are structs (db.h's conventions): the
 * handlers of src/api/ turn them into answers. See docs/api.md, "Runs and commands".
 */
#ifndef CONDUIX_RUNS_H
#define CONDUIX_RUNS_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>

#include "conduix/agents.h"
#include "conduix/commands.h"
#include "conduix/states.h"

/* No online agent (or the agent asked for is not online): 409 NO_AGENT_AVAILABLE. */
#define CX_NOAGENT (-20)

/* cx_runs_agent_offline -- an agent went offline: its active runs become `lost`, and with
 * agents.failover they are restarted on another online agent from their last checkpoint. */
int cx_runs_agent_offline(const char *agent_id);

/* cx_runs_heartbeat -- reconcile the agent's active runs with a heartbeat's `pipelines` list and take
 * `pipeline_stats` counts (legacy agents that never acknowledge are followed this way). With
 * look_for_strays, also the other way round: a pipeline the beat lists without an active run of ours on
 * that agent gets a stop_pipeline (audited pipeline_stop_stray, counted), at most one per agent and
 * pipeline per agents.heartbeat_timeout, none while one is outstanding or its last run there ended
 * less than a timeout ago, and none for a pipeline unknown here. */
int cx_runs_heartbeat(const char *agent_id, json_object *beat, int look_for_strays);

typedef struct cx_run {
    char id[37];
    char pipeline_id[37];
    char agent_id[256];
    char schedule_id[37];
    int64_t scheduled_for; /* the fire a scheduled run is for, ms; 0 for none */
    cx_run_trigger_t trigger;
    cx_run_status_t status;
    int64_t started_at; /* 0 when not yet */
    int64_t ended_at;
    int64_t processed_count;
    int64_t error_count;
    char *error_message; /* owned, or NULL */
    char failover_of[37];
    int64_t created_at;
    int64_t updated_at;
    int64_t age_ms;         /* now - created_at, database clock */
    int64_t running_for_ms; /* now - started_at, or -1 */
} cx_run_t;

void cx_run_free(cx_run_t *run);

/* The outcome of a lifecycle call: the run and the command as written (filled on CX_OK; freed by
 * cx_runs_result_free), whether the command went out at once, and for a refusal a message for people. */
typedef struct cx_runs_result {
    cx_run_t run;
    cx_command_t command;
    int delivered; /* 1: published now; 0: queued for the dispatcher */
    char message[320];
} cx_runs_result_t;

void cx_runs_result_free(cx_runs_result_t *res);

/* cx_runs_start -- start pipeline_id on agent_id (NULL: the least-loaded online agent): in one
 * transaction the run (pending), its start_pipeline command (queued) and the audit row; then one
 * delivery attempt. CX_OK, CX_NOTFOUND (pipeline), CX_STATE (already active), CX_NOAGENT, CX_UNAVAIL,
 * CX_ERR. */
int cx_runs_start(const char *pipeline_id, const char *agent_id, const char *actor, const char *request_id, cx_runs_result_t *res);

/* A start with every option (the scheduler's): schedule_id/scheduled_for ("YYYY-MM-DD HH:MM:SS" UTC)
 * record a scheduled fire, unique per pair. */
typedef struct cx_runs_start_opts {
    const char *pipeline_id;
    const char *agent_id;     /* NULL: the least loaded online agent */
    cx_run_trigger_t trigger; /* 0: manual */
    const char *schedule_id;
    const char *scheduled_for;
    const char *actor;
    const char *request_id;
    const char *run_id; /* the new run's id (36 characters); NULL: a new one */
    const char *action; /* the audit action of the start; NULL: "pipeline_start" */
    /* replace: an active run of the pipeline is stopped in the same transaction (status stopped at once,
     * with replace_reason as its error_message, and stop_pipeline queued to its agent) instead of refusing
     * the start. */
    int replace;
    const char *replace_reason;
    /* claim, when set, runs first inside the start's transaction (the scheduler's compare-and-set of its
     * fire): anything but CX_OK ends the start, rolled back, with that code. */
    int (*claim)(void *arg);
    void *claim_arg;
} cx_runs_start_opts_t;

/* cx_runs_start_ex -- cx_runs_start with options; also CX_CONFLICT when this (schedule_id,
 * scheduled_for) fire already has a run (uq_runs_fire). */
int cx_runs_start_ex(const cx_runs_start_opts_t *o, cx_runs_result_t *res);

/* cx_runs_record_failed -- a start that could not happen (no agent online, or the pipeline already
 * running) recorded as what it is: in one transaction the claim (o->claim), a run of o's pipeline,
 * trigger and fire, without an agent, status failed with reason as its error_message, and its audit row.
 * res->run is the run; no command is written. CX_OK, CX_NOTFOUND (pipeline), CX_CONFLICT (the fire has
 * a run), or the claim's or the database's code. */
int cx_runs_record_failed(const cx_runs_start_opts_t *o, const char *reason, cx_runs_result_t *res);

/* cx_runs_control -- type is a control command (stop, pause or resume_pipeline): a command to the
 * active run's agent (same transaction and delivery rules as start). CX_STATE with res->message when
 * the run is not in a state that allows it or a previous control command still awaits its
 * acknowledgement; CX_INVALID for another type. */
int cx_runs_control(const char *pipeline_id, cx_command_type_t type, const char *actor, const char *request_id,
                    cx_runs_result_t *res);

/* cx_runs_force_stop -- DELETE ?force=true: the active run (if any) is stopped at once and a
 * stop_pipeline command sent to its agent. CX_OK (also when nothing ran), CX_NOTFOUND, CX_UNAVAIL. */
int cx_runs_force_stop(const char *pipeline_id, const char *actor, const char *request_id);

/* cx_runs_ack -- an acknowledgement from agent_id (REST or Redis): the command becomes acked/failed
 * and the run follows. cmd (may be NULL) gets the command as it is then (cx_command_free it). CX_OK
 * (also for a repeated ack), CX_NOTFOUND (unknown command, or another agent's). */
int cx_runs_ack(const char *agent_id, const char *command_id, int success, const char *message, const char *error,
                cx_command_t *cmd);

/* cx_runs_event -- a checked run event from pipeline:events (agentmsg.h): its status (when the
 * transition is legal) and counts, when its agent is the run's agent. CX_OK (also for a type the
 * control plane does not read), CX_INVALID with *why filled (no such run, another agent's run), or a
 * database error. */
struct cx_event;
struct cx_msg_error;
int cx_runs_event(const struct cx_event *ev, struct cx_msg_error *why);

/* cx_runs_deliver -- one delivery attempt of a loaded command (c->attempts as read), under the lock of
 * its agent and pipeline: check that it is still deliverable, claim attempt c->attempts + 1, publish it,
 * and put the command back in the queue when the publish fails. CX_OK published (c->attempts and
 * c->status updated), CX_STATE (not deliverable any more: superseded, cancelled, expired, its run
 * ended), CX_CONFLICT (another process holds the lock or claimed it first), CX_NOTFOUND (no subscriber
 * received it: the agent is not listening now; the command is queued again with its attempt number
 * given back), CX_UNAVAIL (Redis), or a database error. A caller publishes nothing later for the same
 * agent and pipeline after anything but CX_OK or CX_STATE, so an agent hears the commands of a pipeline
 * in seq order. */
struct cx_command;
int cx_runs_deliver(struct cx_command *c);

/* What is known of a pipeline's progress: the agent's metrics object from Redis when there is one,
 * else its newest run's counts. */
typedef struct cx_run_metrics {
    json_object *reported; /* pipeline:{id}:metrics as the agent wrote it (owned), or NULL */
    int has_run;           /* without reported: 1 when latest holds the newest run */
    cx_run_t latest;
} cx_run_metrics_t;

void cx_run_metrics_free(cx_run_metrics_t *m);

/* cx_runs_metrics -- the progress of pipeline_id. CX_NOTFOUND for an unknown pipeline. */
int cx_runs_metrics(const char *pipeline_id, cx_run_metrics_t *out);

/* --- src/db/runs.c, on the conventions of db.h ----------------------------------------------------- */

/* cx_db_runs_pipeline -- the pipeline's current config_yaml (*yaml may be NULL to only check that it
 * exists); inside a transaction the row is share-locked until commit (a concurrent delete waits).
 * CX_NOTFOUND. */
int cx_db_runs_pipeline(const char *pipeline_id, char **yaml);

/* cx_db_run_active -- the pipeline's pending/running/paused run (with lock, locked FOR UPDATE inside a
 * transaction). CX_NOTFOUND when none. */
int cx_db_run_active(const char *pipeline_id, int lock, cx_run_t *run);

/* cx_db_run_latest -- the pipeline's newest run. CX_NOTFOUND when it never ran. */
int cx_db_run_latest(const char *pipeline_id, cx_run_t *run);

int cx_db_run_get(const char *run_id, cx_run_t *run);

/* cx_db_run_insert -- a new run (status pending); CX_CONFLICT when the pipeline already has an active
 * run (the uq_runs_active key is the arbiter of concurrent starts) or the scheduled fire has a run
 * (uq_runs_fire; cx_db_conflict_key tells which). */
int cx_db_run_insert(const char *id, const char *pipeline_id, const char *agent_id, cx_run_trigger_t trigger,
                     const char *failover_of, const char *checkpoint_json, const char *created_by, const char *schedule_id,
                     const char *scheduled_for);

/* cx_db_run_insert_failed -- a run that never started: status failed at once, no agent, with its error
 * message (a scheduled fire that found no agent). CX_CONFLICT when the fire has a run (uq_runs_fire). */
int cx_db_run_insert_failed(const char *id, const char *pipeline_id, cx_run_trigger_t trigger, const char *created_by,
                            const char *schedule_id, const char *scheduled_for, const char *error_message);

/* cx_db_runs_orphaned -- the ids of agents recorded offline for more than 10 s that still have active
 * runs (a missed cx_runs_agent_offline: MySQL was down when hbmon called it). *ids is a malloc'ed array of n strings. */
int cx_db_runs_orphaned(char ***ids, size_t *n);

/* cx_db_run_transition -- compare-and-set run_id from `from` to `to` (started_at on the first running,
 * ended_at on a terminal status, error_message when not NULL). CX_OK, CX_STATE when the run was not
 * in `from` any more. */
int cx_db_run_transition(const char *run_id, cx_run_status_t from, cx_run_status_t to, const char *error_message);

/* cx_db_run_counts -- processed_count and error_count of an active run. */
int cx_db_run_counts(const char *run_id, int64_t processed, int64_t errors);

/* cx_db_runs_of_agent -- the agent's active runs (FOR UPDATE inside a transaction). */
int cx_db_runs_of_agent(const char *agent_id, cx_run_t **runs, size_t *n);
void cx_db_runs_free(cx_run_t *runs, size_t n);

/* A slice of a pipeline's run history. */
typedef struct cx_run_query {
    const char *pipeline_id;
    int has_status; /* only runs of this status */
    cx_run_status_t status;
    const char *before; /* NULL, or the id of a run of the pipeline: only the runs older than it */
    int limit;          /* 1.. */
} cx_run_query_t;

/* cx_db_runs_history -- up to q->limit runs of the pipeline, newest first (created_at, then id).
 * CX_NOTFOUND when there is no such pipeline, CX_INVALID when q->before is not one of its runs. */
int cx_db_runs_history(const cx_run_query_t *q, cx_run_t **items, size_t *n);

/* Where a pipeline is: its status (cx_pipeline_status_of), its newest run, and that run's agent. */
typedef struct cx_pipeline_state {
    cx_run_status_t status;
    int has_run;
    cx_run_t run;
    int has_agent; /* the run's agent is in the registry */
    cx_agent_t agent;
} cx_pipeline_state_t;

void cx_pipeline_state_free(cx_pipeline_state_t *st);

/* cx_db_runs_status -- where the pipeline is (GET /pipelines/:id/status). CX_NOTFOUND. */
int cx_db_runs_status(const char *pipeline_id, cx_pipeline_state_t *out);

/* cx_db_runs_pick_agent -- the online agent with the fewest active runs (ties: the oldest heartbeat
 * first, then id), not `exclude` (may be NULL). CX_NOTFOUND when none is online. */
int cx_db_runs_pick_agent(const char *exclude, char out[256]);

/* The online agents and how many active runs each has (the scheduler spreads a batch of fires with it). */
typedef struct cx_agent_load {
    char id[256];
    int64_t active;
} cx_agent_load_t;

/* cx_db_runs_agent_loads -- every online agent with its active runs, by id; *out is a malloc'ed array. */
int cx_db_runs_agent_loads(cx_agent_load_t **out, size_t *n);

/* cx_db_runs_agent_online -- CX_OK when agent_id is registered and online, CX_NOTFOUND unknown,
 * CX_STATE otherwise. */
int cx_db_runs_agent_online(const char *agent_id);

#endif
