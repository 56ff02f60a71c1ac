/*
 * runs.h -- pipeline runs on agents: the lifecycle operations of the API (start/stop/pause/resume),
 * the bookkeeping other children drive (hbmon: heartbeats, agents going offline; the dispatcher:
 * acknowledgements and run events), and the pipeline_runs rows under them (src/db/runs.c).
 *
 * Run status: pending -> running <-> paused -> completed | failed | stopped | lost. A run's status changes
 * only on the agent's word (an acknowledgement, a run event, its heartbeats) or when its agent goes
 * offline (lost); the API only queues commands. See docs/api.md, "Lifecycle and commands".
 */
#ifndef CONDUIX_RUNS_H
#define CONDUIX_RUNS_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>

/* No online agent (or the agent asked for is not online): 409 NO_AGENT_AVAILABLE. */
#define CX_NOAGENT (-20)

/* cx_runs_agent_offline -- an agent went offline: its active runs become `lost`, and with
 * agents.failover they are restarted on another online agent from their last checkpoint. */
int cx_runs_agent_offline(const char *agent_id);

/* cx_runs_heartbeat -- reconcile the agent's active runs with a heartbeat's `pipelines` list and take
 * `pipeline_stats` counts (legacy agents that never acknowledge are followed this way). */
int cx_runs_heartbeat(const char *agent_id, json_object *beat);

/* The outcome of a lifecycle call: run and command as API JSON (owned; cx_runs_result_free), whether
 * the command went out at once, and for errors a message for people. */
typedef struct cx_runs_result {
    json_object *run;
    json_object *command;
    int delivered; /* 1: published now (200); 0: queued for the dispatcher (202) */
    char message[320];
} cx_runs_result_t;

void cx_runs_result_free(cx_runs_result_t *res);

/* cx_runs_start -- start pipeline_id on agent_id (NULL: the least-loaded online agent): in one
 * transaction the run (pending), its start_pipeline command (queued) and the audit row; then one
 * delivery attempt. CX_OK, CX_NOTFOUND (pipeline), CX_STATE (already active), CX_NOAGENT, CX_UNAVAIL,
 * CX_ERR. */
int cx_runs_start(const char *pipeline_id, const char *agent_id, const char *actor, const char *request_id, cx_runs_result_t *res);

/* A start with every option (the scheduler's): trigger "manual", "schedule" or "failover";
 * schedule_id/scheduled_for ("YYYY-MM-DD HH:MM:SS" UTC) record a scheduled fire, unique per pair. */
typedef struct cx_runs_start_opts {
    const char *pipeline_id;
    const char *agent_id; /* NULL: the least loaded online agent */
    const char *trigger;  /* NULL: "manual" */
    const char *schedule_id;
    const char *scheduled_for;
    const char *actor;
    const char *request_id;
} cx_runs_start_opts_t;

/* cx_runs_start_ex -- cx_runs_start with options; also CX_CONFLICT when this (schedule_id,
 * scheduled_for) fire already has a run (uq_runs_fire). */
int cx_runs_start_ex(const cx_runs_start_opts_t *o, cx_runs_result_t *res);

/* cx_runs_control -- type is stop_pipeline, pause_pipeline or resume_pipeline: a command to the active
 * run's agent (same transaction and delivery rules as start). CX_STATE with res->message when the run is
 * not in a state that allows it or a previous control command still awaits its acknowledgement. */
int cx_runs_control(const char *pipeline_id, const char *type, const char *actor, const char *request_id, cx_runs_result_t *res);

/* cx_runs_force_stop -- DELETE ?force=true: the active run (if any) is stopped at once and a
 * stop_pipeline command sent to its agent. CX_OK (also when nothing ran), CX_NOTFOUND, CX_UNAVAIL. */
int cx_runs_force_stop(const char *pipeline_id, const char *actor, const char *request_id);

/* cx_runs_ack -- an acknowledgement from agent_id (REST or Redis): the command becomes acked/failed
 * and the run follows. *cmd (may be NULL) gets the command's JSON. CX_OK (also for a repeated ack),
 * CX_NOTFOUND (unknown command, or another agent's). */
int cx_runs_ack(const char *agent_id, const char *command_id, int success, const char *message, const char *error,
                json_object **cmd);

/* cx_runs_event -- a run event from pipeline:events ({"type":"run_status",…}): status (when the
 * transition is legal) and counts. CX_OK, CX_INVALID (malformed, logged), CX_NOTFOUND. */
int cx_runs_event(json_object *ev);

/* cx_runs_deliver -- one delivery attempt of a loaded command (c->attempts as read): claim attempt
 * c->attempts + 1, publish it, and put the command back in the queue when the publish fails. CX_OK
 * published (c->attempts and c->status updated), CX_CONFLICT (someone else claimed it, or it is no longer
 * deliverable), CX_NOTFOUND (no subscriber received it: the agent is not listening now; the command is
 * queued again with its attempt number given back), CX_UNAVAIL (Redis), or a database error. A caller
 * publishes nothing later for the same agent after anything but CX_OK, so an agent always hears its
 * commands in seq order. */
struct cx_command;
int cx_runs_deliver(struct cx_command *c);

/* cx_runs_metrics -- PipelineMetrics of pipeline_id: Redis pipeline:{id}:metrics with "source":"redis",
 * else the latest run's counts with "source":"run". CX_NOTFOUND for an unknown pipeline. */
int cx_runs_metrics(const char *pipeline_id, json_object **out);

/* --- src/db/runs.c ------------------------------------------------------------------------------- */

typedef struct cx_run {
    char id[37];
    char pipeline_id[37];
    char agent_id[256];
    char schedule_id[37];
    char trigger[17];
    char status[17];
    char started_at[32]; /* RFC 3339 UTC, "" when NULL */
    char ended_at[32];
    int64_t processed_count;
    int64_t error_count;
    char *error_message; /* owned, or NULL */
    char failover_of[37];
    char created_at[32];
    char updated_at[32];
    int64_t age_ms;         /* now - created_at, database clock */
    int64_t running_for_ms; /* now - started_at, or -1 */
} cx_run_t;

void cx_run_free(cx_run_t *run);

/* cx_run_json -- the Run of the API. */
json_object *cx_run_json(const cx_run_t *run);

/* cx_run_status_valid -- one of the seven run statuses. cx_run_status_active -- pending/running/paused. */
int cx_run_status_valid(const char *status);
int cx_run_status_active(const char *status);

/* cx_run_transition_legal -- may a run go from `from` to `to` (pending -> running|paused|terminal,
 * running <-> paused, running|paused -> terminal)? */
int cx_run_transition_legal(const char *from, const char *to);

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
int cx_db_run_insert(const char *id, const char *pipeline_id, const char *agent_id, const char *trigger, const char *failover_of,
                     const char *checkpoint_json, const char *created_by, const char *schedule_id, const char *scheduled_for);

/* cx_db_runs_orphaned -- the ids of agents recorded offline for more than 10 s that still have active
 * runs (a missed cx_runs_agent_offline: MySQL was down when hbmon called it). *ids is a malloc'ed array of n strings. */
int cx_db_runs_orphaned(char ***ids, size_t *n);

/* cx_db_run_transition -- compare-and-set run_id from `from` to `to` (started_at on the first running,
 * ended_at on a terminal status, error_message when not NULL). CX_OK, CX_STATE when the run was not
 * in `from` any more. */
int cx_db_run_transition(const char *run_id, const char *from, const char *to, const char *error_message);

/* cx_db_run_counts -- processed_count and error_count of an active run. */
int cx_db_run_counts(const char *run_id, int64_t processed, int64_t errors);

/* cx_db_runs_of_agent -- the agent's active runs (FOR UPDATE inside a transaction). */
int cx_db_runs_of_agent(const char *agent_id, cx_run_t **runs, size_t *n);
void cx_db_runs_free(cx_run_t *runs, size_t n);

/* cx_db_runs_history -- a page of the pipeline's runs, newest first, optionally of one status. */
int cx_db_runs_history(const char *pipeline_id, const char *status, int page, int page_size, json_object **items, int64_t *total);

/* cx_db_runs_status -- GET /pipelines/:id/status: {"pipeline_id","status","run","agent"}. */
int cx_db_runs_status(const char *pipeline_id, json_object **out);

/* cx_db_runs_pick_agent -- the online agent with the fewest active runs (ties: the oldest heartbeat
 * first, then id), not `exclude` (may be NULL). CX_NOTFOUND when none is online. */
int cx_db_runs_pick_agent(const char *exclude, char out[256]);

/* cx_db_runs_agent_online -- CX_OK when agent_id is registered and online, CX_NOTFOUND unknown,
 * CX_STATE otherwise. */
int cx_db_runs_agent_online(const char *agent_id);

#endif
