/*
 * shm.h -- the shared-memory segment the master maps before forking: per-process metric slots, child
 * status for /ready, and instance-wide gauges. Each process writes only its own slot, with relaxed
 * atomics; readers (/metrics on any worker) sum over slots. A slot keeps its counts when its process
 * dies and a successor takes it over, so every sum stays monotonic.
 */
#ifndef CONDUIX_SHM_H
#define CONDUIX_SHM_H

#include <stdint.h>
#include <sys/types.h>

#define CX_SHM_SLOTS 96    /* processes: master, workers of two generations, singletons */
#define CX_SHM_ROUTES 96   /* routes in the table, plus one for "unmatched" */
#define CX_SHM_NSTATUS 24  /* distinct HTTP status codes tracked; the last is "other" */
#define CX_SHM_NBUCKETS 12 /* latency histogram buckets (+Inf is the count) */
#define CX_SHM_NCOUNTERS 64
#define CX_SHM_NGAUGES 32

typedef enum {
    CX_KIND_MASTER = 0,
    CX_KIND_WORKER,
    CX_KIND_SCHEDULER,
    CX_KIND_HBMON,
    CX_KIND_MIGRATE,
    CX_KIND_DISPATCHER,
    CX_KIND_MAX
} cx_kind_t;

/* Generic counters, summed over processes. Names and help text are in src/shm.c (cx_counter_defs). */
typedef enum {
    CX_C_CHILD_RESTARTS_WORKER = 0, /* written by the master */
    CX_C_CHILD_RESTARTS_SCHEDULER,
    CX_C_CHILD_RESTARTS_HBMON,
    CX_C_CHILD_RESTARTS_DISPATCHER,
    CX_C_RELOADS,
    CX_C_RELOAD_FAILURES,
    CX_C_DB_ERRORS,
    CX_C_REDIS_ERRORS,
    CX_C_REDIS_BREAKER_OPENS,
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
    CX_C_MAX_
} cx_counter_t;

/* Instance-wide gauges, each written by exactly one process (e.g. hbmon). */
typedef enum { CX_G_AGENTS_ONLINE = 0, CX_G_AGENTS_OFFLINE, CX_G_AGENTS_UNKNOWN, CX_G_COMMANDS_PENDING, CX_G_MAX_ } cx_gauge_t;

typedef struct cx_shm_slot {
    volatile pid_t pid;          /* 0 when free */
    volatile int kind;           /* cx_kind_t */
    volatile int index;          /* worker index */
    volatile int generation;     /* worker generation */
    volatile int up;             /* 1 while the process runs (written by the master and the process) */
    volatile int64_t started_ms; /* wall clock */
    uint64_t requests[CX_SHM_ROUTES][CX_SHM_NSTATUS];
    uint64_t latency_buckets[CX_SHM_ROUTES][CX_SHM_NBUCKETS];
    uint64_t latency_count[CX_SHM_ROUTES];
    uint64_t latency_sum_us[CX_SHM_ROUTES];
    uint64_t counters[CX_SHM_NCOUNTERS];
} cx_shm_slot_t;

#define CX_SHM_RL_ENTRIES 8192 /* rate-limit buckets, 4-way set associative */
#define CX_SHM_RL_WAYS 4

/* One client's token bucket. lock is a spin flag held only for a few instructions (no syscall). */
typedef struct cx_shm_rl {
    volatile int lock;
    uint64_t key;        /* hash of the client key; 0 = free */
    int64_t millitokens; /* tokens x 1000 */
    int64_t last_ms;     /* monotonic clock of the last refill */
} cx_shm_rl_t;

typedef struct cx_shm {
    uint32_t magic;
    volatile int64_t started_ms;
    volatile pid_t master_pid;
    volatile int generation;
    int64_t gauges[CX_SHM_NGAUGES];
    cx_shm_slot_t slots[CX_SHM_SLOTS];
    cx_shm_rl_t ratelimit[CX_SHM_RL_ENTRIES];
} cx_shm_t;

extern cx_shm_t *cx_shm;
extern cx_shm_slot_t *cx_shm_self; /* this process's slot, or NULL */

extern const int cx_shm_status_codes[CX_SHM_NSTATUS];
extern const double cx_shm_buckets_s[CX_SHM_NBUCKETS];
extern const char *const cx_counter_names[CX_C_MAX_];
extern const char *const cx_counter_help[CX_C_MAX_];
extern const char *const cx_gauge_names[CX_G_MAX_];
extern const char *const cx_gauge_help[CX_G_MAX_];

/* cx_shm_create -- map the segment (master, before fork). 0 or -1. */
int cx_shm_create(void);

/* cx_shm_slot_alloc -- a free slot for a new child (master), preferring the slot last used by the same
 * kind/index so counts continue; -1 when full. */
int cx_shm_slot_alloc(cx_kind_t kind, int index);
void cx_shm_slot_release(int slot);

/* cx_shm_attach -- in the child: take slot as this process's own. */
void cx_shm_attach(int slot);

void cx_shm_count(cx_counter_t c, uint64_t n);
void cx_shm_gauge_set(cx_gauge_t g, int64_t v);
void cx_shm_observe_request(int route_index, int status, int64_t duration_us);

/* cx_shm_child_up -- is a process of this kind up now (for /ready)? */
int cx_shm_kind_up(cx_kind_t kind);

const char *cx_kind_name(cx_kind_t kind);

/* cx_shm_rate_take -- take one token from the bucket of key (rate per second, burst capacity) at
 * monotonic time now_ms. 1 allowed; 0 refused, with *retry_after_ms until a token is back. */
int cx_shm_rate_take(const char *key, double rate, int burst, int64_t now_ms, int64_t *retry_after_ms);

#endif
