/*
 * commands.h -- the agent command outbox: rows of agent_commands (src/db/commands.c, on the conventions
 * of db.h) and their delivery over Redis pub/sub (src/redis/commands.c), as the agent protocol has them
 * (docs/api.md, "Agent protocol"). The JSON of a command, for the API and on the wire, is in shapes.h.
 *
 * A command is a row first (status queued), then delivered: a deliverer claims one attempt with a
 * compare-and-set on (id, attempts) and publishes only when its claim won, so whatever runs the
 * delivery (a worker right after the API call, the dispatcher child, another replica) no attempt is
 * published twice. Statuses (states.h): queued -> sent -> acked | failed | expired (queued -> expired
 * too); queued or sent -> cancelled when the command no longer serves its run (a newer control command
 * superseded it, or the run ended).
 *
 * Order: an agent hears the commands of one pipeline in seq order. A delivery holds the advisory lock of
 * its agent and pipeline (cx_db_command_lock) from the claim to the end of the publish, and a command
 * is deliverable only while no newer command of that agent and pipeline has reached the agent; commands
 * for different pipelines of one agent may overtake each other.
 */
#ifndef CONDUIX_COMMANDS_H
#define CONDUIX_COMMANDS_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>
#include <hiredis.h>

#include "conduix/config.h"
#include "conduix/db.h"
#include "conduix/states.h"

typedef struct cx_command {
    char id[37];
    uint64_t seq;
    char agent_id[256];
    cx_command_type_t type;
    char pipeline_id[37]; /* "" for none (shutdown) */
    char run_id[37];      /* "" for none */
    char *payload;        /* JSON object text (owned), or NULL */
    cx_command_status_t status;
    int attempts;
    int64_t created_at; /* 0 when NULL */
    int64_t expires_at;
    int64_t last_sent_at;
    int64_t acked_at;
    char *result_message; /* owned, or NULL */
    char *result_error;   /* owned, or NULL */
} cx_command_t;

/* cx_command_free -- free what a loaded command owns (not the struct). */
void cx_command_free(cx_command_t *c);

/* --- src/db/commands.c --------------------------------------------------------------------------- */

/* cx_db_command_insert -- a new queued command expiring ttl_ms from now (database clock). Runs on this
 * process's connection (inside the caller's transaction when there is one). */
int cx_db_command_insert(const char *id, const char *agent_id, cx_command_type_t type, const char *pipeline_id, const char *run_id,
                         const char *payload_json, int64_t ttl_ms, const char *created_by);

/* A command to insert (cx_db_commands_insert_stmt). With sent, it is written as its first attempt claimed
 * (status sent, attempts 1, last_sent_at now): the caller holds the lock of its agent and pipeline and
 * publishes it right after the commit (or gives the attempt back: cx_db_command_unheard/_unclaim). */
typedef struct cx_command_new {
    const char *id, *agent_id;
    cx_command_type_t type;
    const char *pipeline_id, *run_id, *payload_json, *created_by;
    int sent;
    int64_t hold_ms; /* with sent: held until then (a fire written ahead of its time, ms), claimed as of then */
} cx_command_new_t;

/* cx_db_commands_insert_stmt -- n commands in one multi-row INSERT (seq in their order), expiring ttl_ms
 * from now, as a statement for cx_db_exec_many (n > 0; cx_db_stmt_free it; its parameters point into
 * rows). With returning, the commands as written come back from the same statement (INSERT … RETURNING,
 * in seq order): cx_db_commands_of_result reads them from its result (taking the texts out of it; free
 * with cx_db_commands_free). */
void cx_db_commands_insert_stmt(const cx_command_new_t *rows, size_t n, int64_t ttl_ms, int returning, cx_db_stmt_t *st);
int cx_db_commands_of_result(cx_db_result_t *res, cx_command_t **out, size_t *nout);

/* cx_db_commands_load_many -- the commands of ids (those that exist), in seq order. */
int cx_db_commands_load_many(const char *const *ids, size_t n, cx_command_t **out, size_t *nout);

/* cx_db_commands_lock_waiting -- in one round trip (cx_db_exec_many, in the open transaction), the
 * advisory locks of cx_db_command_lock for n agents and pipelines, then the older commands they wait
 * behind: got[i] = 1 when the lock of (agents[i], pipelines[i]) is now held, waiting[i] = 1 when agents[i]
 * has an unexpired queued command for pipelines[i] (a new command of the pair goes out after it:
 * cx_runs_deliver). On a failure no lock is kept. cx_db_commands_unlock_many releases those with got[i]. */
int cx_db_commands_lock_waiting(const char *const *agents, const char *const *pipelines, size_t n, int *got, int *waiting);
void cx_db_commands_unlock_many(const char *const *agents, const char *const *pipelines, size_t n, const int *got);

/* cx_db_command_load -- one command by id (and agent_id when not NULL). CX_NOTFOUND. */
int cx_db_command_load(const char *id, const char *agent_id, cx_command_t *c);

/* cx_db_command_deliverable -- CX_OK when the command may be published now: queued or sent, unexpired,
 * its run active (or a stop_pipeline, or no run), and no newer command of its agent and pipeline has
 * reached the agent. CX_STATE otherwise (also for an unknown id). */
int cx_db_command_deliverable(const char *id);

/* cx_db_command_lock -- take the advisory lock (GET_LOCK, on this process's connection) under which the
 * commands of agent_id for pipeline_id (NULL or "": none) are claimed and published, without waiting.
 * CX_OK, CX_CONFLICT when another connection holds it, or a database error. cx_db_command_unlock
 * releases it. */
int cx_db_command_lock(const char *agent_id, const char *pipeline_id);
void cx_db_command_unlock(const char *agent_id, const char *pipeline_id);

/* cx_db_command_claim -- claim delivery attempt attempts_seen+1 of an unexpired queued or sent command:
 * UPDATE … WHERE id AND attempts = attempts_seen. CX_OK when this caller won (publish it), CX_CONFLICT
 * when someone else did or the command is no longer deliverable. */
int cx_db_command_claim(const char *id, int attempts_seen);

/* cx_db_command_unclaim -- the publish of a claimed attempt failed: back to queued (the attempt number
 * stays used, so no number is ever published twice). */
int cx_db_command_unclaim(const char *id, int attempts_now);

/* cx_db_command_unheard -- the publish of a claimed attempt reached no subscriber: back to queued and
 * the attempt number given back (nobody received that attempt, so it is not a delivery). */
int cx_db_command_unheard(const char *id, int attempts_now);

/* cx_db_commands_held_due -- inside a transaction: up to limit held commands whose time has come
 * (hold_until <= NOW(3), the earliest first), locked (FOR UPDATE SKIP LOCKED: a held command another
 * connection is releasing or undoing is left to it). cx_db_commands_unhold clears their hold, their
 * attempt 1 claimed as of now. */
int cx_db_commands_held_due(size_t limit, cx_command_t **out, size_t *n);
/* cx_db_commands_held_any -- CX_OK when a held command's time has come (a plain read), else CX_NOTFOUND. */
int cx_db_commands_held_any(void);
int cx_db_commands_unhold(const char *const *ids, size_t n);

/* A held start (a fire written ahead of its time whose start has not gone out), as cx_db_held_lock
 * finds it. */
typedef struct cx_held {
    char cmd_id[37], run_id[37], schedule_id[37], pipeline_id[37];
    int64_t scheduled_for; /* ms */
} cx_held_t;

typedef enum { CX_HELD_PIPELINE, CX_HELD_SCHEDULE, CX_HELD_AGENT } cx_held_by_t;

/* cx_db_held_lock -- inside a transaction: the held starts of a pipeline (its active run), a schedule or
 * an agent, locked (a scheduler writing or releasing one is waited for). *out is an array of *n (free). */
int cx_db_held_lock(cx_held_by_t by, const char *key, cx_held_t **out, size_t *n);

/* cx_db_held_undo -- inside a transaction: the fire of h as if it had not been written: its command and
 * run deleted, its schedule's fires count and last run as before it; with rewind the schedule is due at
 * the fire's time again (it fires then as any due schedule). */
int cx_db_held_undo(const cx_held_t *h, int rewind);

/* cx_db_held_unhold -- inside a transaction, before a change that would alter what a held fire does
 * (by/key: cx_db_held_lock): each one undone (cx_db_held_undo, rewind as there), with an audit row
 * schedule_fire_undone saying why, and counted. *undone (may be NULL) says how many. */
int cx_db_held_unhold(cx_held_by_t by, const char *key, int rewind, const char *actor, const char *request_id, const char *why,
                      size_t *undone);

/* cx_db_commands_due -- commands to publish now, in seq order from the first after seq after_seq (0: from
 * the start; the last seq of a full page: the next page): queued ones left alone for settle_ms (the
 * request that wrote one, or the process that gave one back, delivers it itself first), and sent ones not
 * acknowledged for redeliver_ms; deliverable (cx_db_command_deliverable). *out is an array of *n
 * commands (cx_db_commands_free). */
int cx_db_commands_due(int64_t settle_ms, int64_t redeliver_ms, uint64_t after_seq, int limit, cx_command_t **out, size_t *n);
void cx_db_commands_free(cx_command_t *v, size_t n);

/* cx_db_commands_backlog -- the queued unexpired commands of agent_id for pipeline_id (NULL or "": those
 * without a pipeline) up to and including seq, oldest first, at most limit (a command is published
 * after the older ones of its agent and pipeline). */
int cx_db_commands_backlog(const char *agent_id, const char *pipeline_id, uint64_t seq, int limit, cx_command_t **out, size_t *n);

/* cx_db_commands_expire -- queued/sent commands past expires_at become expired; *n how many. */
int cx_db_commands_expire(uint64_t *n);

/* cx_db_commands_cancel_run -- the queued and sent commands of run_id become cancelled (superseded by a
 * newer command for the run, or the run is over); *n (may be NULL) how many. */
int cx_db_commands_cancel_run(const char *run_id, uint64_t *n);

/* cx_db_commands_pending -- queued + sent commands not yet expired (the pending gauge). */
int cx_db_commands_pending(int64_t *n);

/* cx_db_commands_outstanding -- the deliverable commands of agent_id (cx_db_command_deliverable), oldest
 * first (the REST fallback of delivery). */
int cx_db_commands_outstanding(const char *agent_id, cx_command_t **out, size_t *n);

/* cx_db_command_outstanding_for_run -- the newest unacknowledged unexpired control command of run_id
 * (stop_only: only a stop_pipeline). CX_OK with c filled, or CX_NOTFOUND. */
int cx_db_command_outstanding_for_run(const char *run_id, int stop_only, cx_command_t *c);

/* cx_db_command_status_for_run -- the status of the newest command of type for run_id. CX_NOTFOUND
 * when the run has none. */
int cx_db_command_status_for_run(const char *run_id, cx_command_type_t type, cx_command_status_t *status);
/* cx_db_commands_status_for_runs -- cx_db_command_status_for_run for n runs in one query: status[i]
 * the status of run_ids[i]'s newest command of type (a cx_command_status_t), or -1 when it has none. */
int cx_db_commands_status_for_runs(const char *const *run_ids, size_t n, cx_command_type_t type, int *status);

/* What is known of a pipeline an agent reports running without an active run of ours there. */
typedef struct cx_stray {
    int known;         /* a pipeline of ours, or one this agent ran for us */
    char last_run[37]; /* the agent's newest run of the pipeline, "" for none */
    int run_recent;    /* that run is active, or ended less than window_ms ago */
    int stop_recent;   /* a stop_pipeline for the agent and pipeline is outstanding or was written less than window_ms ago */
} cx_stray_t;

/* cx_db_commands_stray -- what the reconciliation of a stray needs to decide (src/runs.c). */
int cx_db_commands_stray(const char *agent_id, const char *pipeline_id, int64_t window_ms, cx_stray_t *out);

/* cx_db_command_result -- record an acknowledgement: a queued, sent, expired or cancelled command
 * becomes acked (success) or failed, with the agent's message and error. CX_OK when it changed now, CX_STATE when it
 * was already acknowledged (a repeated ack), CX_NOTFOUND. */
int cx_db_command_result(const char *id, const char *agent_id, int success, const char *message, const char *error);

/* An acknowledgement of a batch (cx_db_commands_results). */
typedef struct cx_command_result {
    const char *id;
    int success;
    const char *message, *error; /* as stored, or NULL */
} cx_command_result_t;

/* cx_db_commands_results -- record n acknowledgements in one UPDATE (the caller checked each command's
 * agent and that it is not acknowledged yet, with the rows locked); *changed the rows changed. */
int cx_db_commands_results(const cx_command_result_t *r, size_t n, uint64_t *changed);

/* cx_db_commands_cancel_runs -- cx_db_commands_cancel_run for n runs in one UPDATE. */
int cx_db_commands_cancel_runs(const char *const *run_ids, size_t n, uint64_t *count);

/* --- src/redis/commands.c ------------------------------------------------------------------------ */

/* cx_redis_command_publish -- PUBLISH agent:commands:{agent_id} msg. CX_OK when at least one subscriber
 * received it, CX_NOTFOUND when nobody listens on the channel (pub/sub drops it), CX_UNAVAIL when Redis
 * is unavailable or refused it. */
int cx_redis_command_publish(const char *agent_id, const char *msg, size_t len);

/* cx_redis_command_listeners -- PUBSUB NUMSUB of the n agents' command channels in one round trip:
 * listening[i] 1 when agent_ids[i] has a subscriber now (a plain SUBSCRIBE, as agents make), else 0.
 * When Redis answers but refuses the question (an ACL without PUBSUB), every listening[i] is 1 (the
 * PUBLISH's count decides), logged once. CX_OK, or CX_UNAVAIL when Redis is unavailable (listening
 * untouched). */
int cx_redis_command_listeners(const char *const *agent_ids, size_t n, int *listening);

#define CX_PIPELINE_JSON_MAX 1048576 /* a metrics or checkpoint value larger than this is ignored */

/* cx_redis_pipeline_json -- GET pipeline:{pipeline_id}:{what} ("metrics", "checkpoint") as a JSON object.
 * CX_OK, CX_NOTFOUND (no key, or not a strict JSON object of valid UTF-8 of at most CX_PIPELINE_JSON_MAX
 * bytes: logged), CX_UNAVAIL. */
int cx_redis_pipeline_json(const char *pipeline_id, const char *what, json_object **out);

/* cx_redis_events_subscribe -- a new connection (outside the breaker) subscribed to pipeline:events and
 * agent:responses:*, for the dispatcher. NULL when Redis cannot be reached (logged). */
redisContext *cx_redis_events_subscribe(const cx_config_t *cfg);

/* cx_redis_events_read -- with do_read, read what the socket has (call it only when the socket is
 * readable); then hand each complete message buffered to cb(channel, chlen, payload, len, arg): both are
 * binary (they may hold a NUL before their end) and NUL-terminated after it (do_read 0 only drains the
 * buffer). CX_OK, or CX_UNAVAIL when the connection is gone (free it). */
int cx_redis_events_read(redisContext *c, int do_read,
                         void (*cb)(const char *channel, size_t chlen, const char *msg, size_t len, void *arg), void *arg);

#endif
