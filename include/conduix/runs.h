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
#include "conduix/db.h"
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
    int64_t age_ms;          /* now - created_at, database clock */
    int64_t running_for_ms;  /* now - started_at, or -1 */
    int64_t unlisted_for_ms; /* now - the later of started_at and the last heartbeat listing it, or -1 */
} cx_run_t;

void cx_run_free(cx_run_t *run);

/* What a start became (cx_runs_result_t.outcome, with CX_OK). */
typedef enum cx_start_outcome {
    CX_START_RUN = 0,  /* a run on an agent, its start_pipeline queued (and published when it could be) */
    CX_START_FAILED,   /* a fire recorded failed: a run without an agent (no agent online; overlap policy allow),
                        * or none (its pipeline does not exist) */
    CX_START_SKIPPED,  /* a fire skipped: its pipeline was running (overlap policy skip) */
    CX_START_LOST,     /* a fire claimed by another scheduler, or its schedule changed: nothing was written */
    CX_START_DEFERRED, /* a fire written ahead of its time that cannot be (hold_until_ms): nothing was written,
                        * it fires at its time */
} cx_start_outcome_t;

/* The outcome of a lifecycle call: the run and the command as written (filled on CX_OK; freed by
 * cx_runs_result_free), whether the command went out at once, and for a refusal a message for people. */
typedef struct cx_runs_result {
    cx_run_t run;
    cx_command_t command;
    int delivered; /* 1: published now; 0: queued for the dispatcher */
    cx_start_outcome_t outcome;
    char message[320];
} cx_runs_result_t;

void cx_runs_result_free(cx_runs_result_t *res);

/* cx_runs_start -- start pipeline_id on agent_id (NULL: the least-loaded online agent): in one
 * transaction the run (pending), its start_pipeline command (queued) and the audit row; then one
 * delivery attempt. CX_OK, CX_NOTFOUND (pipeline), CX_STATE (already active), CX_NOAGENT, CX_UNAVAIL,
 * CX_ERR. */
int cx_runs_start(const char *pipeline_id, const char *agent_id, const char *actor, const char *request_id, cx_runs_result_t *res);

/* What a start does when its pipeline has an active run. */
typedef enum cx_on_active {
    CX_ACTIVE_REFUSE = 0, /* CX_STATE: "pipeline is already running" */
    CX_ACTIVE_SKIP,       /* a fire: skipped (counted on its schedule) */
    CX_ACTIVE_FAIL,       /* a fire: recorded failed, a pipeline runs once at a time */
    CX_ACTIVE_REPLACE,    /* the active run stopped first, in the same transaction */
} cx_on_active_t;

struct cx_schedule_claim;

/* A start with every option: schedule_id/scheduled_for ("YYYY-MM-DD HH:MM:SS" UTC) record a scheduled
 * fire, unique per pair. */
typedef struct cx_runs_start_opts {
    const char *pipeline_id;
    const char *agent_id; /* NULL: the least loaded online agent */
    const char *exclude;  /* with agent_id NULL: not this agent (a failover's) */
    const char *schedule_id;
    const char *scheduled_for;
    const char *actor;
    const char *request_id;
    const char *run_id; /* the new run's id (36 characters); NULL: a new one */
    const char *action; /* the audit action of the start; NULL: "pipeline_start" */
    const char *failover_of;
    json_object *checkpoint; /* sent with the start and kept on the run (a failover's), or NULL */
    /* replace (or on_active CX_ACTIVE_REPLACE): an active run of the pipeline is stopped in the same
     * transaction (status stopped at once, with replace_reason as its error_message, and stop_pipeline
     * queued to its agent) instead of refusing the start. */
    int replace;
    cx_on_active_t on_active;
    const char *replace_reason;
    /* record_noagent: with no agent online the start is recorded as a failed run naming why (a fire). */
    int record_noagent;
    cx_run_trigger_t trigger; /* 0: manual */
    /* fire: the scheduler's claim of a fire, taken in the start's transaction with those of the whole
     * batch (cx_db_schedules_claim_lock, then _settle with what became of it: fires, skipped, failures,
     * last_run_id are filled in here); a fire claimed elsewhere is CX_START_LOST. */
    struct cx_schedule_claim *fire;
    /* hold_until_ms, with fire: the fire written ahead of its time (scheduler.prepare_ahead): its run
     * pending and its start claimed as of then, published then by cx_runs_release; a fire that could not
     * start as a plain start of a pipeline at rest is CX_START_DEFERRED instead (nothing written). */
    int64_t hold_until_ms;
    /* claim, when set, runs first inside the start's transaction (a schedule's manual trigger): anything
     * but CX_OK ends the start, rolled back, with that code. */
    int (*claim)(void *arg);
    void *claim_arg;
    /* loads, when set (the same for every start of the batch): the agents' loads shared with the batches
     * before and after it (cx_runs_loads_t), read by the first that places a run; NULL: read by this
     * batch for itself. */
    struct cx_runs_loads *loads;
} cx_runs_start_opts_t;

/* cx_runs_start_ex -- cx_runs_start with options: cx_runs_start_many with one start. Also CX_CONFLICT
 * when this (schedule_id, scheduled_for) fire already has a run (uq_runs_fire). */
int cx_runs_start_ex(const cx_runs_start_opts_t *o, cx_runs_result_t *res);

/* cx_runs_start_many -- n starts as one transaction (the scheduler's batch of fires, the API's starts of
 * a worker's loop turn; a trigger or a failover is a batch of one): the fires' claims, the pipelines,
 * their active runs and the agents' loads are read once (or the loads taken from o->loads, shared with
 * other batches), the runs, commands and audit rows written by multi-row inserts, the counters of the
 * fires by one update; after the commit the commands are
 * published in one pipeline. rcs[i] and res[i] are start i's (as cx_runs_start_ex; with CX_OK,
 * res[i].outcome says what it became). A start refused changes nothing and does not stop the others; a
 * batch that cannot be written whole (a unique key: a concurrent start of one of its pipelines; a
 * deadlock victim too many times) is done again one start at a time. A claim callback ends the whole
 * batch when it fails (it is for batches of one). Returns CX_OK, or the database's code when nothing
 * could be done. */
int cx_runs_start_many(const cx_runs_start_opts_t *o, size_t n, cx_runs_result_t *res, int *rcs);

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

/* An acknowledgement or a run event read from the Redis subscription, for cx_runs_apply. */
struct cx_ack;
typedef struct cx_agent_word {
    const char *agent_id;      /* an acknowledgement's agent (its channel's, checked) */
    const struct cx_ack *ack;  /* an acknowledgement, or NULL */
    const struct cx_event *ev; /* else a checked run event */
    int rc;                    /* out: what cx_runs_ack or cx_runs_event would have returned */
    struct cx_msg_error *why;  /* out, an event's refusal (rc CX_INVALID); the caller's */
} cx_agent_word_t;

/* cx_runs_apply -- n acknowledgements and run events in their order, as cx_runs_ack and cx_runs_event
 * one by one would (fewer than three: one by one), in a transaction per up to 100 of them: their commands read in one statement,
 * their runs in another, the acknowledgements written in one UPDATE (compare-and-set on the commands'
 * status), the events' counts in one, one UPDATE per kind of run transition (compare-and-set on the
 * runs' status) and one cancelling the ended runs' commands. A message about a run (or a command)
 * already in the batch, or about one a message passed over before it is about, is left for a later batch,
 * so the effects of two messages about one run keep their order while other runs fill the batch; an
 * event without run_id ends a batch and is applied alone. A deadlock victim is run again; a batch whose commands or runs
 * changed after it read them (a compare-and-set that missed), or that MySQL refused, is rolled back and
 * applied message by message. w[i].rc says what became of each. */
void cx_runs_apply(cx_agent_word_t *w, size_t n);

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

/* cx_runs_release -- the held start commands whose time has come (a fire written ahead of its time,
 * cx_runs_start_opts_t.hold_until_ms), up to a thousand, published in one transaction that clears their
 * hold; each one's lag after its time observed as a fire's. *released says how many; CX_OK with 0 when
 * Redis is unavailable (they wait for it, or for their redelivery). */
int cx_runs_release(size_t *released);

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

/* A run to insert (cx_db_runs_insert_stmt): pending on agent_id, or, with error_message, failed at once without
 * an agent (a start that could not happen, recorded). */
typedef struct cx_run_new {
    const char *id, *pipeline_id, *agent_id;
    cx_run_trigger_t trigger;
    const char *failover_of, *checkpoint_json, *created_by, *schedule_id, *scheduled_for;
    const char *error_message;
} cx_run_new_t;

/* cx_db_runs_insert_stmt -- n runs in one multi-row INSERT, as a statement for cx_db_exec_many (n > 0;
 * cx_db_stmt_free it; its parameters point into rows); all or none: CX_CONFLICT (cx_db_conflict_key
 * names the key) when one of them has a pipeline with an active run (uq_runs_active) or a fire that has
 * a run (uq_runs_fire). With returning, the runs as written come back from the same statement (INSERT …
 * RETURNING, in the order of rows): cx_db_runs_of_result reads them from its result (free with
 * cx_db_runs_free). */
void cx_db_runs_insert_stmt(const cx_run_new_t *rows, size_t n, int returning, cx_db_stmt_t *st);
int cx_db_runs_of_result(const cx_db_result_t *res, cx_run_t **out, size_t *nout);

/* cx_db_runs_get_many -- the runs of ids (in no particular order; those that exist). */
int cx_db_runs_get_many(const char *const *ids, size_t n, cx_run_t **runs, size_t *nruns);
/* cx_db_runs_counts_many -- cx_db_run_counts for n runs in one UPDATE. */
int cx_db_runs_counts_many(const char *const *ids, const int64_t *processed, const int64_t *errors, size_t n);
/* cx_db_runs_transition_many -- n runs from `from` to `to` in one UPDATE (errors[i]: run i's
 * error_message, or NULL to keep it); *changed the runs that were still in `from`. */
int cx_db_runs_transition_many(const char *const *ids, const char *const *errors, size_t n, cx_run_status_t from,
                               cx_run_status_t to, uint64_t *changed);

/* cx_db_runs_orphaned -- the ids of agents recorded offline for more than 10 s that still have active
 * runs (a missed cx_runs_agent_offline: MySQL was down when hbmon called it). *ids is a malloc'ed array of n strings. */
int cx_db_runs_orphaned(char ***ids, size_t *n);

/* cx_db_run_transition -- compare-and-set run_id from `from` to `to` (started_at on the first running,
 * ended_at on a terminal status, error_message when not NULL). CX_OK, CX_STATE when the run was not
 * in `from` any more. */
int cx_db_run_transition(const char *run_id, cx_run_status_t from, cx_run_status_t to, const char *error_message);

/* cx_db_run_counts -- processed_count and error_count of an active run. */
int cx_db_run_counts(const char *run_id, int64_t processed, int64_t errors);
/* cx_db_run_listed -- a heartbeat lists the active run: last_listed_at now, and with processed >= 0 its
 * counts too (one statement). */
int cx_db_run_listed(const char *run_id, int64_t processed, int64_t errors);
/* cx_db_runs_listed_many -- cx_db_run_listed for the n active runs a heartbeat lists: one UPDATE for
 * those without counts (processed < 0), one for those with them. */
int cx_db_runs_listed_many(const char *const *ids, const int64_t *processed, const int64_t *errors, size_t n);

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

/* The online agents and how many active runs each has (a batch of starts is spread with it: the least
 * loaded first, ties by id). */
typedef struct cx_agent_load {
    char id[256];
    int64_t active;
} cx_agent_load_t;

/* cx_runs_loads_t -- the agents' loads shared by consecutive batches of starts (the scheduler's chunks of
 * one tick, cx_runs_start_opts_t.loads): the first batch that places a run reads them, each run placed
 * adds one to its agent, and the batches after it place by these counts without reading them again. A
 * run that ends meanwhile is not taken off, nor an agent that goes offline: the spread is the one of the
 * first read, for the second or two a burst of fires lasts. Zeroed to begin; cx_runs_loads_reset after. */
typedef struct cx_runs_loads {
    cx_agent_load_t *a;
    size_t n;
    int read;
} cx_runs_loads_t;

/* cx_runs_loads_reset -- forget what l holds (the next batch reads the loads again). */
void cx_runs_loads_reset(cx_runs_loads_t *l);

/* cx_db_runs_start_reads -- what a batch of starts reads, in one round trip (cx_db_exec_many): yaml[i]
 * the config of ids[i] (malloc'ed, share-locked as cx_db_runs_pipeline reads one), or NULL when there is
 * no such pipeline; the active runs of the pipelines ids (*active, free with cx_db_runs_free); and every
 * online agent with its active runs, by id (*loads, a malloc'ed array; not read with loads NULL: a batch
 * that shares the loads an earlier one read). The transaction is begun first (in the same round trip)
 * with begin, else joined. */
int cx_db_runs_start_reads(int begin, const char *const *ids, size_t n, char **yaml, cx_run_t **active, size_t *nactive,
                           cx_agent_load_t **loads, size_t *nloads);

/* cx_db_runs_agent_online -- CX_OK when agent_id is registered and online, CX_NOTFOUND unknown,
 * CX_STATE otherwise. */
int cx_db_runs_agent_online(const char *agent_id);

#endif
