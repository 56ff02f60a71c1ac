/*
 * shm.h -- the shared-memory segment the master maps before forking: per-process metric slots, child
 * status for /ready, and instance-wide gauges. Each process writes only its own slot, with relaxed
 * atomics; readers (/metrics on any worker) sum over slots. A slot keeps its counts when its process
 * dies and a successor takes it over, so every sum stays monotonic.
 */
#ifndef CONDUIX_SHM_H
#define CONDUIX_SHM_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "conduix/kinds.h"

#define CX_SHM_ROUTES 96   /* routes in the table, plus one for "unmatched" */
#define CX_SHM_NSTATUS 24  /* distinct HTTP status codes tracked; the last is "other" */
#define CX_SHM_NBUCKETS 12 /* latency histogram buckets (+Inf is the count) */
#define CX_SHM_NCOUNTERS 64
#define CX_SHM_NGAUGES 32

/* Generic counters, summed over processes. Names and help text are in src/shm.c (cx_counter_defs);
 * restarts of children are counted by kind apart (cx_shm_t.restarts). */
typedef enum {
    CX_C_RELOADS = 0,
    CX_C_RELOAD_FAILURES,
    CX_C_DB_ERRORS,
    CX_C_DB_DEADLOCKS,
    CX_C_REDIS_ERRORS,
    CX_C_REDIS_BREAKER_OPENS,
    CX_C_DB_BREAKER_OPENS,
    CX_C_LOG_LINES_DROPPED,
    CX_C_AUTH_FAILURES,
    CX_C_HEARTBEATS_REDIS, /* agents (issue 3) */
    CX_C_HEARTBEATS_REST,
    CX_C_HEARTBEATS_REJECTED,
    CX_C_AGENT_TRANSITIONS_ONLINE,
    CX_C_AGENT_TRANSITIONS_OFFLINE,
    CX_C_COMMANDS_CREATED, /* commands and runs (issue 4) */
    CX_C_COMMANDS_DELIVERED,
    CX_C_COMMANDS_REDELIVERED,
    CX_C_COMMANDS_ACKED,
    CX_C_COMMANDS_FAILED,
    CX_C_COMMANDS_EXPIRED,
    CX_C_RUNS_STARTED,
    CX_C_RUNS_LOST,
    CX_C_RUNS_FAILED_OVER,
    CX_C_AGENT_ACKS_REJECTED, /* agent input and reconciliation (issues 10, 12) */
    CX_C_AGENT_EVENTS_REJECTED,
    CX_C_AGENT_TEXTS_FIXED,
    CX_C_COMMANDS_CANCELLED,
    CX_C_STRAY_STOPS,
    CX_C_SCHEDULE_FIRES, /* the scheduler (issue 8) */
    CX_C_SCHEDULE_SKIPS,
    CX_C_SCHEDULE_MISSES,
    CX_C_SCHEDULE_AHEAD,
    CX_C_SCHEDULE_UNDONE,
    CX_C_SCHEDULE_FAILURES,
    CX_C_SCHEDULER_LEADER_TAKEN,
    CX_C_HTTP_WRITE_TIMEOUTS, /* the HTTP connections (src/http/conn.c) */
    CX_C_HTTP_BUSY,
    CX_C_HTTP_HEADS_REFUSED,
    CX_C_REDIS_BATCHES, /* the Redis batch of a worker's loop turn (src/redis/redis.c) */
    CX_C_REDIS_BATCHED,
    CX_C_API_START_BATCHES, /* the POST /pipelines/:id/start of a worker's loop turn (src/api/lifecycle.c) */
    CX_C_API_STARTS_BATCHED,
    CX_C_MAX_
} cx_counter_t;

/* Instance-wide gauges, each written by exactly one process (e.g. hbmon). */
typedef enum {
    CX_G_AGENTS_ONLINE = 0,
    CX_G_AGENTS_OFFLINE,
    CX_G_AGENTS_UNKNOWN,
    CX_G_COMMANDS_PENDING,
    CX_G_HBMON_LEADER,
    CX_G_SCHEDULER_LEADER,
    CX_G_SCHEDULES_ENABLED,
    CX_G_MAX_
} cx_gauge_t;

#define CX_SHM_NLAG 12 /* fire lag histogram buckets (+Inf is the count) */

/* A process's buffer of access-log lines (log.c), in its slot so that the master can write what a child
 * that died (a crash, SIGKILL) had not written yet: when it releases the slot. */
#define CX_SHM_LOGBUF 16384
typedef struct cx_shm_logbuf {
    volatile uint32_t len;      /* bytes of whole lines in buf */
    volatile uint32_t flushing; /* 1 while the process writes buf out */
    char buf[CX_SHM_LOGBUF];
} cx_shm_logbuf_t;

typedef struct cx_shm_slot {
    volatile pid_t pid;          /* 0 when free */
    volatile int kind;           /* cx_kind_t */
    volatile int index;          /* worker index */
    volatile int generation;     /* worker generation */
    volatile int up;             /* 1 while the process runs (written by the master and the process) */
    volatile int64_t started_ms; /* wall clock */
    volatile int conns;          /* a worker's client connections (conn.c), for the balance of accepts */
    volatile int accepting;      /* a worker takes new connections (worker.c) */
    volatile int64_t loop_ms;    /* cx_now_ms when a worker's loop last turned */
    volatile int64_t unsent;     /* a worker's bytes of answers not yet written to their sockets (conn.c) */
    volatile int64_t unsent_max; /* the most it has held at once since it started */
    uint64_t requests[CX_SHM_ROUTES][CX_SHM_NSTATUS];
    uint64_t latency_buckets[CX_SHM_ROUTES][CX_SHM_NBUCKETS];
    uint64_t latency_count[CX_SHM_ROUTES];
    uint64_t latency_sum_us[CX_SHM_ROUTES];
    uint64_t counters[CX_SHM_NCOUNTERS];
    uint64_t lag_buckets[CX_SHM_NLAG]; /* the scheduler's fire lag */
    uint64_t lag_count;
    uint64_t lag_sum_us;
    cx_shm_logbuf_t log; /* this process's unwritten access-log lines (log.c) */
} cx_shm_slot_t;

#define CX_SHM_RL_ENTRIES 8192 /* rate-limit buckets, 4-way set associative */
#define CX_SHM_RL_WAYS 4

/* A lock word in the segment: 0 when free, else the pid of the process that holds it. It is held for a
 * few instructions, never across a syscall. A waiter never takes it over, however long it waits (the
 * holder may merely be descheduled); a holder that dies with it is a child of the master, which frees
 * its locks when it reaps it, before its pid can be used again (cx_shm_locks_release). */
typedef struct cx_shm_lock {
    _Atomic int owner;
} cx_shm_lock_t;

/* One client's token bucket, under its lock. */
typedef struct cx_shm_rl {
    cx_shm_lock_t lock;
    uint64_t key;        /* hash of the client key; 0 = free */
    int64_t millitokens; /* tokens x 1000 */
    int64_t last_ms;     /* monotonic clock of the last refill */
} cx_shm_rl_t;

typedef struct cx_shm {
    uint32_t magic;
    volatile int64_t started_ms;
    volatile pid_t master_pid;
    volatile int generation;
    int nslots;         /* slots[] has this many, sized from the kinds table at creation */
    volatile int nused; /* slots [0, nused) have been used at least once; the rest were never touched */
    int64_t gauges[CX_SHM_NGAUGES];
    uint64_t restarts[CX_KIND_MAX]; /* children respawned after an unexpected exit, by kind (the master's) */
    int log_failing;                /* 1 while the log takes no lines, said once for the instance (log.c) */
    uint64_t log_dropped;           /* lines dropped since the log last took one (log.c) */
    /* The number of pipelines, for the total of an unfiltered list (db/pipelines.c): the count, when
     * it was made and at which generation; the generation moves after every create and delete. */
    struct {
        cx_shm_lock_t lock;
        uint64_t gen;
        int64_t count;
        int64_t at_ms;
    } pipelines_total;
    uint64_t pipelines_gen;
    cx_shm_rl_t ratelimit[CX_SHM_RL_ENTRIES];
    cx_shm_slot_t slots[]; /* nslots; pages of slots never used are never touched, so cost no memory */
} cx_shm_t;

extern cx_shm_t *cx_shm;
extern cx_shm_slot_t *cx_shm_self; /* this process's slot, or NULL */

extern const int cx_shm_status_codes[CX_SHM_NSTATUS];
extern const double cx_shm_buckets_s[CX_SHM_NBUCKETS];
extern const double cx_shm_lag_buckets_s[CX_SHM_NLAG];
extern const char *const cx_counter_names[CX_C_MAX_];
extern const char *const cx_counter_help[CX_C_MAX_];
extern const char *const cx_gauge_names[CX_G_MAX_];
extern const char *const cx_gauge_help[CX_G_MAX_];

/* cx_shm_create -- map the segment with nslots process slots (master, before fork; slot 0 is the
 * master's). 0 or -1. */
int cx_shm_create(int nslots);

/* cx_shm_slot_alloc -- a free slot for a new child (master), preferring the slot last used by the same
 * kind/index so counts continue; -1 when full. */
int cx_shm_slot_alloc(cx_kind_t kind, int index);
/* cx_shm_slot_release -- the slot of a child that has exited is free again (master); the access-log lines
 * it had not written are written first (cx_log_salvage). */
void cx_shm_slot_release(int slot);

/* cx_shm_attach -- in the child: take slot as this process's own. */
void cx_shm_attach(int slot);

void cx_shm_count(cx_counter_t c, uint64_t n);
void cx_shm_gauge_set(cx_gauge_t g, int64_t v);
void cx_shm_observe_request(int route_index, int status, int64_t duration_us);

/* cx_shm_observe_fire_lag -- one fire handled lag_ms after its scheduled time (the scheduler). */
void cx_shm_observe_fire_lag(int64_t lag_ms);

/* cx_shm_restart -- count a respawn of a child of this kind (the master). */
void cx_shm_restart(cx_kind_t kind);

/* cx_shm_kind_up -- is a process of this kind up now (for /ready)? */
int cx_shm_kind_up(cx_kind_t kind);

/* cx_shm_lock, cx_shm_unlock -- take and give back a lock word of the segment (see cx_shm_lock_t). */
void cx_shm_lock(cx_shm_lock_t *l);
void cx_shm_unlock(cx_shm_lock_t *l);

/* cx_shm_locks_release -- free every lock word held by pid, a child that died (the master calls it
 * before reaping the child, while its pid cannot be reused). Returns how many it freed. */
int cx_shm_locks_release(pid_t pid);

/* cx_shm_rate_take -- take one token from the bucket of key (rate per second, burst capacity) at
 * monotonic time now_ms. 1 allowed; 0 refused, with *retry_after_ms until a token is back. */
int cx_shm_rate_take(const char *key, double rate, int burst, int64_t now_ms, int64_t *retry_after_ms);

/* cx_shm_rate_peek -- the same without taking the token: would a request be allowed now? */
int cx_shm_rate_peek(const char *key, double rate, int burst, int64_t now_ms, int64_t *retry_after_ms);

#endif
