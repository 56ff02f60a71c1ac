/*
 * agents.h -- the agent registry: the agents table (src/db/agents.c, on the conventions of db.h) and
 * the rules of an agent id. Heartbeats, which fill the registry, are in heartbeat.h; the heartbeat
 * monitor child is src/hbmon.c (cx_hbmon_run in proc.h).
 *
 * An agent exists from its first heartbeat (the Redis key agent:{id}:heartbeat, or the REST fallback).
 * Its status (states.h: online/offline/unknown) is what hbmon recorded, with a row in
 * agent_status_transitions and one in audit_log for every change; readers never recompute it.
 */
#ifndef CONDUIX_AGENTS_H
#define CONDUIX_AGENTS_H

#include <stddef.h>
#include <stdint.h>

#include "conduix/states.h"

#define CX_AGENT_ID_MAX 255 /* agents.id is VARCHAR(255) */

/* cx_agent_id_valid -- 1..CX_AGENT_ID_MAX bytes of valid UTF-8 without spaces or control characters. */
int cx_agent_id_valid(const char *id, size_t len);

struct cx_heartbeat;
struct cx_run;

/* An agent of the registry. */
typedef struct cx_agent {
    char id[CX_AGENT_ID_MAX + 1];
    char *hostname, *ip_address, *version; /* owned; NULL until the agent sends them */
    char *labels;                          /* JSON object text (owned), NULL when none */
    char *pipelines;                       /* JSON array text of its last beat (owned), NULL when none */
    cx_agent_status_t status;
    int64_t last_heartbeat; /* receive time of the last beat; 0 never */
    int64_t registered_at;
    int64_t status_changed_at; /* 0 never */
    double cpu_usage, memory_usage, disk_usage;
} cx_agent_t;

void cx_agent_free(cx_agent_t *a);
void cx_db_agents_free(cx_agent_t *v, size_t n);

/* ---- src/db/agents.c ---------------------------------------------------------------------------- */

/* cx_db_agents_list -- a page of agents ordered by id; with has_status, only those of status. */
int cx_db_agents_list(int has_status, cx_agent_status_t status, int page, int page_size, cx_agent_t **items, size_t *n,
                      int64_t *total);

/* cx_db_agent_get -- the agent with this id; with active non-NULL also its pending, running or paused
 * runs, oldest first (cx_db_runs_free them). CX_NOTFOUND. */
int cx_db_agent_get(const char *id, cx_agent_t *out, struct cx_run **active, size_t *nactive);

/* cx_db_agent_register -- insert the agent (status unknown, registered_at recv_ms) unless it exists. */
int cx_db_agent_register(const struct cx_heartbeat *hb, int64_t recv_ms);

/* cx_db_agent_rest_beat -- a REST heartbeat while Redis is down: in one transaction, the agents row
 * (registered at recv_ms when new, last_heartbeat now by the database clock, the beat's fields; status
 * untouched: hbmon records the transition) and the agent's row in agent_rest_heartbeats (the body,
 * received_at now by the database clock, so that hbmon can tell its age by the same clock). */
int cx_db_agent_rest_beat(const struct cx_heartbeat *hb, const char *body, size_t len, int64_t recv_ms);

/* For hbmon. */

/* cx_db_agents_load -- every agent's id, status, last_heartbeat (ms, 0 when NULL), to cb. */
int cx_db_agents_load(void (*cb)(void *arg, const char *id, cx_agent_status_t status, int64_t last_hb_ms), void *arg);

/* cx_db_agents_rest_beats -- the agent_rest_heartbeats rows received after since_ms and less than
 * window_ms ago (database clock), to cb with received_at (ms) and their age (ms, by the database). */
int cx_db_agents_rest_beats(int64_t since_ms, int64_t window_ms,
                            void (*cb)(void *arg, const char *id, const char *beat, size_t len, int64_t received_at,
                                       int64_t age_ms),
                            void *arg);

/* cx_db_agents_lead -- take or keep the advisory lock of the leading hbmon of this database (GET_LOCK
 * on this process's session, without waiting). CX_OK: this session held it since the last call;
 * CX_STATE: it has just taken it (first call, or the session was lost and another hbmon may have led
 * meanwhile); CX_CONFLICT: another session holds it; CX_UNAVAIL or CX_ERR: MySQL could not be asked. */
int cx_db_agents_lead(void);

/* cx_db_agents_count -- how many agents have each recorded status, into n[status]. */
int cx_db_agents_count(int64_t n[CX_AGENT_STATUS_COUNT]);

/* cx_db_agents_with_runs -- the ids of the agents that have a pending, running or paused run, to cb. */
int cx_db_agents_with_runs(void (*cb)(void *arg, const char *id), void *arg);

/* One agent's change for cx_db_agents_flush. */
typedef struct cx_agent_change {
    const char *id;
    const struct cx_heartbeat *beat; /* a new beat to store, or NULL (status change only) */
    int64_t beat_ms;                 /* its receive time: last_heartbeat, and registered_at when new */
    cx_agent_status_t status;        /* the status to record */
    int transition;                  /* 1: a transition from `from` to status */
    cx_agent_status_t from;          /* the recorded status before it */
    int64_t changed_ms;              /* status_changed_at of the transition */
    const char *reason;              /* of the transition */
} cx_agent_change_t;

/* cx_db_agents_flush -- apply n changes in one transaction (multi-row upserts, the transition rows and
 * their audit_log rows, actor "hbmon"). All or nothing: CX_OK, CX_UNAVAIL, CX_ERR. */
int cx_db_agents_flush(const cx_agent_change_t *ch, size_t n);

#endif
