/*
 * shm.c -- the shared-memory segment: mapping, slot ownership, and the lock-free counters each process
 * adds to its own slot. See shm.h for the rules.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/hash.h"
#include "conduix/log.h"
#include "conduix/shm.h"

#define CX_SHM_MAGIC 0xC0D01Cu

cx_shm_t *cx_shm;
cx_shm_slot_t *cx_shm_self;

const int cx_shm_status_codes[CX_SHM_NSTATUS] = {200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405,
                                                 409, 413, 415, 422, 429, 500, 501, 502, 503, 504, 505, 0};

const double cx_shm_buckets_s[CX_SHM_NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};

const double cx_shm_lag_buckets_s[CX_SHM_NLAG] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600};

const char *const cx_counter_names[CX_C_MAX_] = {
    [CX_C_RELOADS] = "conduix_reloads_total",
    [CX_C_RELOAD_FAILURES] = "conduix_reload_failures_total",
    [CX_C_DB_ERRORS] = "conduix_db_errors_total",
    [CX_C_DB_DEADLOCKS] = "conduix_db_deadlocks_total",
    [CX_C_REDIS_ERRORS] = "conduix_redis_errors_total",
    [CX_C_REDIS_BREAKER_OPENS] = "conduix_redis_breaker_opens_total",
    [CX_C_REDIS_BATCHES] = "conduix_redis_batches_total",
    [CX_C_REDIS_BATCHED] = "conduix_redis_batched_commands_total",
    [CX_C_API_START_BATCHES] = "conduix_api_start_batches_total",
    [CX_C_API_STARTS_BATCHED] = "conduix_api_starts_batched_total",
    [CX_C_DB_BREAKER_OPENS] = "conduix_db_breaker_opens_total",
    [CX_C_LOG_LINES_DROPPED] = "conduix_log_lines_dropped_total",
    [CX_C_AUTH_FAILURES] = "conduix_auth_failures_total",
    [CX_C_HEARTBEATS_REDIS] = "conduix_agent_heartbeats_total{source=\"redis\"}",
    [CX_C_HEARTBEATS_REST] = "conduix_agent_heartbeats_total{source=\"rest\"}",
    [CX_C_HEARTBEATS_REJECTED] = "conduix_agent_heartbeats_rejected_total",
    [CX_C_AGENT_TRANSITIONS_ONLINE] = "conduix_agent_transitions_total{to=\"online\"}",
    [CX_C_AGENT_TRANSITIONS_OFFLINE] = "conduix_agent_transitions_total{to=\"offline\"}",
    [CX_C_COMMANDS_CREATED] = "conduix_commands_created_total",
    [CX_C_COMMANDS_DELIVERED] = "conduix_commands_delivered_total",
    [CX_C_COMMANDS_REDELIVERED] = "conduix_commands_redelivered_total",
    [CX_C_COMMANDS_ACKED] = "conduix_commands_acked_total",
    [CX_C_COMMANDS_FAILED] = "conduix_commands_failed_total",
    [CX_C_COMMANDS_EXPIRED] = "conduix_commands_expired_total",
    [CX_C_RUNS_STARTED] = "conduix_runs_started_total",
    [CX_C_RUNS_LOST] = "conduix_runs_lost_total",
    [CX_C_RUNS_FAILED_OVER] = "conduix_runs_failed_over_total",
    [CX_C_AGENT_ACKS_REJECTED] = "conduix_agent_messages_rejected_total{kind=\"ack\"}",
    [CX_C_AGENT_EVENTS_REJECTED] = "conduix_agent_messages_rejected_total{kind=\"event\"}",
    [CX_C_AGENT_TEXTS_FIXED] = "conduix_agent_texts_fixed_total",
    [CX_C_COMMANDS_CANCELLED] = "conduix_commands_cancelled_total",
    [CX_C_STRAY_STOPS] = "conduix_reconcile_stray_stops_total",
    [CX_C_SCHEDULE_FIRES] = "conduix_schedule_fires_total",
    [CX_C_SCHEDULE_SKIPS] = "conduix_schedule_skips_total",
    [CX_C_SCHEDULE_MISSES] = "conduix_schedule_misses_total",
    [CX_C_SCHEDULE_AHEAD] = "conduix_schedule_fires_ahead_total",
    [CX_C_SCHEDULE_UNDONE] = "conduix_schedule_fires_undone_total",
    [CX_C_SCHEDULE_FAILURES] = "conduix_schedule_failures_total",
    [CX_C_SCHEDULER_LEADER_TAKEN] = "conduix_scheduler_leader_acquired_total",
    [CX_C_HTTP_WRITE_TIMEOUTS] = "conduix_http_write_timeouts_total",
    [CX_C_HTTP_BUSY] = "conduix_http_busy_total",
    [CX_C_HTTP_HEADS_REFUSED] = "conduix_http_heads_refused_total",
};

const char *const cx_counter_help[CX_C_MAX_] = {
    [CX_C_RELOADS] = "Configuration reloads that took effect.",
    [CX_C_RELOAD_FAILURES] = "Reloads refused because the new configuration was invalid.",
    [CX_C_DB_ERRORS] = "MySQL calls and connects that failed (timeouts, lost connections, refused connects, server errors).",
    [CX_C_DB_DEADLOCKS] = "Transactions InnoDB rolled back as deadlock victims (run again by their caller where it can).",
    [CX_C_REDIS_ERRORS] = "Redis calls and connects that failed (timeouts, I/O errors, refused connects).",
    [CX_C_REDIS_BREAKER_OPENS] = "Times a process's Redis circuit breaker opened after working.",
    [CX_C_REDIS_BATCHES] = "Round trips to Redis of the commands a worker collected in one turn of its loop (REST heartbeats).",
    [CX_C_REDIS_BATCHED] = "Commands sent in those round trips.",
    [CX_C_API_START_BATCHES] = "Batches of the POST /pipelines/:id/start a worker read in one loop turn (a transaction each).",
    [CX_C_API_STARTS_BATCHED] = "Starts in those batches (their ratio is the mean batch size).",
    [CX_C_DB_BREAKER_OPENS] = "Times a process's MySQL circuit breaker opened after working.",
    [CX_C_LOG_LINES_DROPPED] = "Log lines not written because the log could not take them (disk full, I/O error).",
    [CX_C_AUTH_FAILURES] = "Requests refused for missing or bad credentials.",
    [CX_C_HEARTBEATS_REDIS] = "Agent heartbeats received, by source.",
    [CX_C_HEARTBEATS_REST] = "Agent heartbeats received, by source.",
    [CX_C_HEARTBEATS_REJECTED] = "Agent heartbeats ignored as malformed or for another agent.",
    [CX_C_AGENT_TRANSITIONS_ONLINE] = "Agent status transitions, by new status.",
    [CX_C_AGENT_TRANSITIONS_OFFLINE] = "Agent status transitions, by new status.",
    [CX_C_COMMANDS_CREATED] = "Agent commands written to the outbox.",
    [CX_C_COMMANDS_DELIVERED] = "Agent commands published for the first time.",
    [CX_C_COMMANDS_REDELIVERED] = "Agent commands published again while unacknowledged.",
    [CX_C_COMMANDS_ACKED] = "Agent commands acknowledged with success.",
    [CX_C_COMMANDS_FAILED] = "Agent commands acknowledged with failure.",
    [CX_C_COMMANDS_EXPIRED] = "Agent commands that expired unacknowledged.",
    [CX_C_RUNS_STARTED] = "Pipeline runs created.",
    [CX_C_RUNS_LOST] = "Pipeline runs marked lost because their agent went offline.",
    [CX_C_RUNS_FAILED_OVER] = "Lost pipeline runs restarted on another agent.",
    [CX_C_AGENT_ACKS_REJECTED] = "Acknowledgements and run events from agents refused as malformed, by kind.",
    [CX_C_AGENT_EVENTS_REJECTED] = "Acknowledgements and run events from agents refused as malformed, by kind.",
    [CX_C_AGENT_TEXTS_FIXED] = "Agent messages whose text was stored repaired (not UTF-8, NUL bytes) or truncated.",
    [CX_C_COMMANDS_CANCELLED] = "Agent commands withdrawn undelivered or unacknowledged: superseded, or their run ended.",
    [CX_C_STRAY_STOPS] = "stop_pipeline commands sent for pipelines an agent runs without an active run of ours there.",
    [CX_C_SCHEDULE_FIRES] = "Scheduled fire times that started a run.",
    [CX_C_SCHEDULE_SKIPS] = "Scheduled fire times skipped because the pipeline was still running (overlap policy skip).",
    [CX_C_SCHEDULE_MISSES] = "Scheduled fire times that passed while no scheduler ran and were not run.",
    [CX_C_SCHEDULE_AHEAD] = "Fires written ahead of their time (scheduler.prepare_ahead), their starts held until then.",
    [CX_C_SCHEDULE_UNDONE] = "Fires written ahead of their time and undone before it by a change to what they would do.",
    [CX_C_SCHEDULE_FAILURES] = "Scheduled fire times whose run could not start (recorded failed).",
    [CX_C_SCHEDULER_LEADER_TAKEN] = "Times this instance's scheduler became the leader.",
    [CX_C_HTTP_WRITE_TIMEOUTS] = "Connections closed because the client read nothing of an answer for server.write_timeout.",
    [CX_C_HTTP_BUSY] = "Answers refused with 503 because the worker held too many bytes of unsent answers.",
    [CX_C_HTTP_HEADS_REFUSED] = "HTTP/1 request heads refused before h2o read them (malformed, too large, conflicting lengths).",
};

const char *const cx_gauge_names[CX_G_MAX_] = {
    [CX_G_AGENTS_ONLINE] = "conduix_agents{status=\"online\"}",
    [CX_G_AGENTS_OFFLINE] = "conduix_agents{status=\"offline\"}",
    [CX_G_AGENTS_UNKNOWN] = "conduix_agents{status=\"unknown\"}",
    [CX_G_COMMANDS_PENDING] = "conduix_commands_pending",
    [CX_G_HBMON_LEADER] = "conduix_hbmon_leader",
    [CX_G_SCHEDULER_LEADER] = "conduix_scheduler_leader",
    [CX_G_SCHEDULES_ENABLED] = "conduix_schedules_enabled",
};

const char *const cx_gauge_help[CX_G_MAX_] = {
    [CX_G_AGENTS_ONLINE] = "Agents in the registry, by status.",
    [CX_G_AGENTS_OFFLINE] = "Agents in the registry, by status.",
    [CX_G_AGENTS_UNKNOWN] = "Agents in the registry, by status.",
    [CX_G_COMMANDS_PENDING] = "Agent commands queued or sent and not yet acknowledged or expired.",
    [CX_G_HBMON_LEADER] = "1 when this instance's hbmon leads agent liveness for the database, else 0.",
    [CX_G_SCHEDULER_LEADER] = "1 while this instance's scheduler fires schedules (it holds the lease, or Redis is down).",
    [CX_G_SCHEDULES_ENABLED] = "Enabled schedules.",
};

/* cx_shm_create -- the segment is anonymous shared memory, which the kernel hands out zeroed and page by
 * page on first touch: slots that are never used cost address space, not memory. So it is sized for the
 * largest configuration (kinds.h), and nothing here writes to the whole of it. */
int cx_shm_create(int nslots)
{
    size_t size = offsetof(cx_shm_t, slots) + (size_t)(nslots > 1 ? nslots : 1) * sizeof(cx_shm_slot_t);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        cx_log_error("mmap of %zu bytes for the shared segment", size);
        return -1;
    }
    cx_shm = p;
    cx_shm->magic = CX_SHM_MAGIC;
    cx_shm->nslots = nslots > 1 ? nslots : 1;
    cx_shm->nused = 1;
    cx_shm->started_ms = cx_wall_ms();
    cx_shm->master_pid = getpid();
    /* slot 0 is the master's own */
    cx_shm->slots[0].pid = getpid();
    cx_shm->slots[0].kind = CX_KIND_MASTER;
    cx_shm->slots[0].up = 1;
    cx_shm->slots[0].started_ms = cx_wall_ms();
    cx_shm_self = &cx_shm->slots[0];
    return 0;
}

int cx_shm_slot_alloc(cx_kind_t kind, int index)
{
    int i, free_slot = -1;
    if (cx_shm == NULL)
        return -1;
    /* A slot whose last owner was the same kind and index continues its counts; any free used slot else;
     * a never used one last. Only the master allocates, so nused needs no atomic increment. */
    for (i = 1; i < cx_shm->nused; i++) {
        cx_shm_slot_t *s = &cx_shm->slots[i];
        if (s->pid != 0)
            continue;
        if (s->kind == (int)kind && s->index == index && s->started_ms != 0)
            return i;
        if (free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0 && cx_shm->nused < cx_shm->nslots) {
        free_slot = cx_shm->nused;
        __atomic_store_n(&cx_shm->nused, free_slot + 1, __ATOMIC_RELEASE);
    }
    return free_slot;
}

void cx_shm_slot_release(int slot)
{
    if (cx_shm == NULL || slot <= 0 || slot >= cx_shm->nused)
        return;
    cx_log_salvage(&cx_shm->slots[slot].log);
    cx_shm->slots[slot].up = 0;
    __atomic_store_n(&cx_shm->slots[slot].pid, 0, __ATOMIC_RELEASE);
}

void cx_shm_attach(int slot)
{
    if (cx_shm == NULL || slot <= 0 || slot >= cx_shm->nused) {
        cx_shm_self = NULL;
        return;
    }
    cx_shm_self = &cx_shm->slots[slot];
}

void cx_shm_count(cx_counter_t c, uint64_t n)
{
    if (cx_shm_self != NULL && (unsigned)c < CX_C_MAX_)
        __atomic_fetch_add(&cx_shm_self->counters[c], n, __ATOMIC_RELAXED);
}

void cx_shm_gauge_set(cx_gauge_t g, int64_t v)
{
    if (cx_shm != NULL && (unsigned)g < CX_G_MAX_)
        __atomic_store_n(&cx_shm->gauges[g], v, __ATOMIC_RELAXED);
}

void cx_shm_observe_request(int route_index, int status, int64_t duration_us)
{
    cx_shm_slot_t *s = cx_shm_self;
    int r, k, b;
    if (s == NULL)
        return;
    r = (route_index < 0 || route_index >= CX_SHM_ROUTES - 1) ? CX_SHM_ROUTES - 1 : route_index;
    for (k = 0; k < CX_SHM_NSTATUS - 1; k++)
        if (cx_shm_status_codes[k] == status)
            break;
    __atomic_fetch_add(&s->requests[r][k], 1, __ATOMIC_RELAXED);
    for (b = 0; b < CX_SHM_NBUCKETS; b++)
        if ((double)duration_us / 1e6 <= cx_shm_buckets_s[b])
            break;
    if (b < CX_SHM_NBUCKETS)
        __atomic_fetch_add(&s->latency_buckets[r][b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->latency_count[r], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->latency_sum_us[r], (uint64_t)(duration_us < 0 ? 0 : duration_us), __ATOMIC_RELAXED);
}

void cx_shm_observe_fire_lag(int64_t lag_ms)
{
    cx_shm_slot_t *s = cx_shm_self;
    int b;
    if (s == NULL)
        return;
    if (lag_ms < 0)
        lag_ms = 0;
    for (b = 0; b < CX_SHM_NLAG; b++)
        if ((double)lag_ms / 1e3 <= cx_shm_lag_buckets_s[b])
            break;
    if (b < CX_SHM_NLAG)
        __atomic_fetch_add(&s->lag_buckets[b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->lag_count, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->lag_sum_us, (uint64_t)lag_ms * 1000, __ATOMIC_RELAXED);
}

void cx_shm_restart(cx_kind_t kind)
{
    if (cx_shm != NULL && (unsigned)kind < CX_KIND_MAX)
        __atomic_fetch_add(&cx_shm->restarts[kind], 1, __ATOMIC_RELAXED);
}

int cx_shm_kind_up(cx_kind_t kind)
{
    int i, n;
    if (cx_shm == NULL)
        return 0;
    n = __atomic_load_n(&cx_shm->nused, __ATOMIC_ACQUIRE);
    for (i = 1; i < n; i++)
        if (cx_shm->slots[i].pid != 0 && cx_shm->slots[i].kind == (int)kind && cx_shm->slots[i].up)
            return 1;
    return 0;
}

/* ---- locks ---- */

/* cpu_relax -- tell the CPU we are spinning (a hint; no instruction is needed for correctness). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* cx_shm_lock -- spin briefly, then yield the CPU, then sleep a little between tries: the holder runs a
 * handful of instructions, but on a busy machine it may have been descheduled in the middle of them, and
 * spinning would only keep it from running. Never a takeover: see cx_shm_lock_t. */
void cx_shm_lock(cx_shm_lock_t *l)
{
    int self = (int)getpid(), expected;
    unsigned tries = 0;

    for (;;) {
        expected = 0;
        if (atomic_load_explicit(&l->owner, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->owner, &expected, self, memory_order_acquire, memory_order_relaxed))
            return;
        if (++tries < 100) {
            cpu_relax();
        } else if (tries < 200) {
            sched_yield();
        } else {
            struct timespec ts = {0, 100L * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

void cx_shm_unlock(cx_shm_lock_t *l)
{
    atomic_store_explicit(&l->owner, 0, memory_order_release);
}

int cx_shm_locks_release(pid_t pid)
{
    int n = 0;
    if (cx_shm == NULL || pid <= 0)
        return 0;
    for (size_t i = 0; i < CX_SHM_RL_ENTRIES; i++) {
        int expected = (int)pid;
        if (atomic_load_explicit(&cx_shm->ratelimit[i].lock.owner, memory_order_relaxed) == expected &&
            atomic_compare_exchange_strong_explicit(&cx_shm->ratelimit[i].lock.owner, &expected, 0, memory_order_release,
                                                    memory_order_relaxed))
            n++;
    }
    return n;
}

/* ---- rate limiting ---- */

static uint64_t hash_key(const char *s)
{
    uint64_t h = cx_hash_fnv1a(s, strlen(s));
    return h ? h : 1;
}

/* cx_shm_rate_take -- a token bucket per client key in the shared segment, so that the limit holds for
 * the whole instance and not per worker. A set of CX_SHM_RL_WAYS entries is chosen by the key's hash;
 * a new key takes a free entry or the one refilled longest ago (which has refilled to a full bucket
 * anyway when it is older than burst/rate). */
static int rate_bucket(const char *key, double rate, int burst, int64_t now_ms, int take, int64_t *retry_after_ms)
{
    uint64_t h = hash_key(key);
    size_t set = (size_t)(h % (CX_SHM_RL_ENTRIES / CX_SHM_RL_WAYS)) * CX_SHM_RL_WAYS, i, victim = set;
    int64_t cap = (int64_t)burst * 1000, oldest = INT64_MAX;
    cx_shm_rl_t *e = NULL;
    int ok;

    if (cx_shm == NULL || rate <= 0)
        return 1;
    for (i = set; i < set + CX_SHM_RL_WAYS; i++) {
        uint64_t k = __atomic_load_n(&cx_shm->ratelimit[i].key, __ATOMIC_RELAXED);
        if (k == h) {
            e = &cx_shm->ratelimit[i];
            break;
        }
        int64_t last = __atomic_load_n(&cx_shm->ratelimit[i].last_ms, __ATOMIC_RELAXED);
        if (last < oldest) {
            oldest = last;
            victim = i;
        }
    }
    if (e == NULL)
        e = &cx_shm->ratelimit[victim];
    /* The fields are written with atomic stores because the lookup above reads key and last_ms without
     * the lock (a stale value there only picks a worse victim). */
    cx_shm_lock(&e->lock);
    if (e->key != h) {
        __atomic_store_n(&e->key, h, __ATOMIC_RELAXED);
        e->millitokens = cap;
        __atomic_store_n(&e->last_ms, now_ms, __ATOMIC_RELAXED);
    }
    if (now_ms > e->last_ms) {
        e->millitokens += (int64_t)((double)(now_ms - e->last_ms) * rate);
        if (e->millitokens > cap)
            e->millitokens = cap;
        __atomic_store_n(&e->last_ms, now_ms, __ATOMIC_RELAXED);
    }
    ok = e->millitokens >= 1000;
    if (ok && take)
        e->millitokens -= 1000;
    else if (retry_after_ms != NULL)
        *retry_after_ms = (int64_t)((double)(1000 - e->millitokens) / rate) + 1;
    cx_shm_unlock(&e->lock);
    return ok;
}

int cx_shm_rate_take(const char *key, double rate, int burst, int64_t now_ms, int64_t *retry_after_ms)
{
    return rate_bucket(key, rate, burst, now_ms, 1, retry_after_ms);
}

int cx_shm_rate_peek(const char *key, double rate, int burst, int64_t now_ms, int64_t *retry_after_ms)
{
    return rate_bucket(key, rate, burst, now_ms, 0, retry_after_ms);
}
