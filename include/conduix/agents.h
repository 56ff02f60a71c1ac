/*
 * agents.h -- the agent registry: heartbeat parsing and validation and the REST heartbeat path
 * (src/redis/heartbeat.c), the agents table (src/db/agents.c) and the heartbeat monitor child
 * (src/hbmon.c, cx_hbmon_run in proc.h).
 *
 * An agent exists from its first heartbeat (the Redis key agent:{id}:heartbeat, or the REST fallback).
 * Its status (online/offline/unknown) is what hbmon recorded, with a row in agent_status_transitions and
 * one in audit_log for every change; readers never recompute it.
 */
#ifndef CONDUIX_AGENTS_H
#define CONDUIX_AGENTS_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>

#define CX_HB_MAX_BYTES 65536    /* a heartbeat larger than this is rejected (413 on REST) */
#define CX_HB_MAX_PIPELINES 1000 /* entries of pipelines and of pipeline_stats */
#define CX_HB_MAX_LABELS 64
#define CX_HB_TTL_S 30      /* agents write SET agent:{id}:heartbeat <json> EX 30 */
#define CX_AGENT_ID_MAX 255 /* agents.id is VARCHAR(255) */

typedef struct cx_heartbeat {
    json_object *obj; /* the parsed beat (owned; the strings below point into it) */
    const char *agent_id;
    int64_t timestamp_ms; /* the agent's clock, -1 when absent; never used for liveness */
    double cpu_usage, memory_usage, disk_usage;
    const char *hostname; /* NULL when absent (older agents): the stored value is kept */
    const char *ip_address;
    const char *version;
    char *labels;    /* canonical JSON object text (owned), NULL when absent */
    char *pipelines; /* JSON array text (owned), "[]" when none */
    size_t npipelines;
} cx_heartbeat_t;

/* Why a heartbeat was rejected: the field at fault ("body" for the whole text) and a message for people.
 * too_large is set when the text exceeds CX_HB_MAX_BYTES (REST answers 413). */
typedef struct cx_hb_error {
    char field[64];
    char msg[224];
    int too_large;
} cx_hb_error_t;

/* cx_heartbeat_parse -- parse and validate a heartbeat text as the Go agents write it (strict JSON, valid
 * UTF-8, at most CX_HB_MAX_BYTES; agent_id equal to agent_id; RFC 3339 timestamp with any fraction and
 * offset; numbers for the usages, zero allowed; pipelines an array of ids or null; optional
 * pipeline_stats, hostname, ip_address, version, labels as an object of strings). text need not be
 * NUL-terminated. CX_OK with *hb filled (cx_heartbeat_free it), or CX_INVALID with *err filled. Pure: no
 * I/O, no logging. */
int cx_heartbeat_parse(const char *text, size_t len, const char *agent_id, cx_heartbeat_t *hb, cx_hb_error_t *err);

void cx_heartbeat_free(cx_heartbeat_t *hb);

/* cx_heartbeat_key_id -- the agent id of a Redis key "agent:{id}:heartbeat" into out (NUL-terminated);
 * its length, or -1 when the key does not have that form or the id is not a valid agent id. */
int cx_heartbeat_key_id(const char *key, size_t len, char out[CX_AGENT_ID_MAX + 1]);

/* cx_agent_id_valid -- 1..CX_AGENT_ID_MAX bytes of valid UTF-8 without spaces or control characters. */
int cx_agent_id_valid(const char *id, size_t len);

/* cx_heartbeat_rejected -- count a rejected heartbeat (CX_C_HEARTBEATS_REJECTED) and log one line with
 * the agent id, the source ("redis", "rest") and the reason; at most 20 lines per 10 s per process, then
 * one line saying how many were not logged. */
void cx_heartbeat_rejected(const char *source, const char *agent_id, const cx_hb_error_t *err);

/* cx_heartbeat_receive -- the REST fallback (POST /agents/:id/heartbeat) of a validated beat: SET the
 * agent's Redis key to the body with EX 30, as an agent would, and register the agent in MySQL when it
 * is new (status unknown until hbmon sees the beat). When Redis is unavailable the beat goes to MySQL
 * directly (agents.last_heartbeat and agent_rest_heartbeats), which hbmon polls. *via is "redis" or
 * "database". CX_OK, or CX_UNAVAIL when neither took it. */
int cx_heartbeat_receive(const cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms, const char **via);

/* ---- src/db/agents.c ---------------------------------------------------------------------------- */

/* cx_agent_status_valid -- "online", "offline" or "unknown". */
int cx_agent_status_valid(const char *s);

/* cx_db_agents_list -- a page of Agents ordered by id, optionally of one status. */
int cx_db_agents_list(const char *status, int page, int page_size, json_object **items, int64_t *total);

/* cx_db_agent_get -- the Agent with "active_runs" (its pending/running/paused runs). CX_NOTFOUND. */
int cx_db_agent_get(const char *id, json_object **out);

/* cx_db_agent_status -- {"agent_id","status","last_heartbeat","seconds_since_heartbeat","pipelines"}. */
int cx_db_agent_status(const char *id, json_object **out);

/* cx_db_agent_register -- insert the agent (status unknown, registered_at recv_ms) unless it exists. */
int cx_db_agent_register(const cx_heartbeat_t *hb, int64_t recv_ms);

/* cx_db_agent_rest_beat -- a REST heartbeat while Redis is down: in one transaction, the agents row
 * (registered when new, last_heartbeat = recv_ms, the beat's fields; status untouched: hbmon records
 * the transition) and the agent's row in agent_rest_heartbeats (the body and recv_ms). */
int cx_db_agent_rest_beat(const cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms);

/* For hbmon. */

/* cx_db_agents_load -- every agent's id, status, last_heartbeat (ms, 0 when NULL), to cb. */
int cx_db_agents_load(void (*cb)(void *arg, const char *id, const char *status, int64_t last_hb_ms), void *arg);

/* cx_db_agents_rest_beats -- the agent_rest_heartbeats rows received after since_ms, to cb. */
int cx_db_agents_rest_beats(int64_t since_ms, void (*cb)(void *arg, const char *id, const char *beat, size_t len, int64_t recv_ms),
                            void *arg);

/* cx_db_agents_with_runs -- the ids of the agents that have a pending, running or paused run, to cb. */
int cx_db_agents_with_runs(void (*cb)(void *arg, const char *id), void *arg);

/* One agent's change for cx_db_agents_flush. */
typedef struct cx_agent_change {
    const char *id;
    const cx_heartbeat_t *beat; /* a new beat to store, or NULL (status change only) */
    int64_t beat_ms;            /* its receive time: last_heartbeat, and registered_at when new */
    const char *status;         /* the status to record */
    const char *from;           /* NULL: no transition; else the recorded status before it */
    int64_t changed_ms;         /* status_changed_at when from != NULL */
    const char *reason;         /* of the transition */
} cx_agent_change_t;

/* cx_db_agents_flush -- apply n changes in one transaction (multi-row upserts, the transition rows and
 * their audit_log rows, actor "hbmon"). All or nothing: CX_OK, CX_UNAVAIL, CX_ERR. */
int cx_db_agents_flush(const cx_agent_change_t *ch, size_t n);

/* cx_agent_ms_format -- RFC 3339 UTC with milliseconds ("2026-11-25T21:00:00.123Z") into out[32]. */
void cx_agent_ms_format(int64_t ms, char out[32]);

#endif
