/*
 * scheduler.c -- the scheduler child: fires due schedules, each (schedule, scheduled time) exactly once
 * across any number of replicas on one MySQL and Redis.
 *
 * Three layers, each enough where the one above fails:
 *   1. a leader lease in Redis (conduix:scheduler:leader, lease.h) keeps one scheduler busy; the others
 *      try to take it every FOLLOWER_RETRY_MS, so a leader that dies is replaced within the lease;
 *   2. every fire is claimed by a compare-and-set on the schedule's next_run_at (and revision), in the
 *      same transaction as the run it starts (the fire claim of cx_runs_start_many), so of two
 *      schedulers that both believe they lead (a frozen leader waking up), or of all of them while Redis
 *      is down, one claims each fire and the others find it taken;
 *   3. UNIQUE(schedule_id, scheduled_for) in pipeline_runs refuses a second run of a fire whatever
 *      happened above.
 * With Redis down every scheduler fires: the claims alone keep each fire single. A leader whose MySQL
 * fails stops renewing its lease, so a replica that can reach MySQL takes over.
 *
 * Every TICK_MS it asks MySQL for the schedules due now (the index on (enabled, next_run_at)); there is
 * no cache to invalidate, so a change through the API takes effect at the next tick on whichever
 * instance leads. A due schedule's fire times since next_run_at are planned by cx_schedule_plan: the
 * latest runs if it is within scheduler.starting_deadline, the others count as missed; the runs go
 * through cx_runs_start_many, the code path of POST /pipelines/:id/start, CHUNK fires to a transaction,
 * with trigger schedule, on the least loaded online agents. What cannot start is recorded and counted
 * there, per fire, never dropped: the pipeline still running (policy skip: a skip; allow: a failed run,
 * since a pipeline runs once at a time; replace: the active run stopped first), no agent online (a
 * failed run naming why).
 * A fire that could not be written (MySQL down) stays due and is tried at the next tick.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/lease.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/redis.h"
#include "conduix/runs.h"
#include "conduix/schedules.h"
#include "conduix/shm.h"

#define LEASE_KEY "conduix:scheduler:leader"
#define ACTOR "scheduler"
#define TICK_MS 100
#define FOLLOWER_RETRY_MS 500 /* how often a follower tries to take the lease */
#define BATCH 1000            /* due schedules read at once */
#define CHUNK 500             /* fires started in one transaction at most (cx_runs_start_many) */
#define TICK_BUDGET_MS 2000   /* a tick with more due work than this returns to the loop (signals) and goes on */
#define GAUGE_MS 5000         /* how often the enabled schedules are counted, and unplanned ones planned */
#define ERROR_LOG_MS 10000    /* at most one line a while about MySQL trouble */
#define AHEAD_MARGIN_MS 200   /* a fire closer to its time than this is not written ahead: it fires at its time */

typedef struct sched {
    char token[192];
    int leading;          /* holds the lease */
    int redis_down;       /* the last attempt found Redis unavailable: every scheduler fires */
    int firing;           /* the gauge's value */
    int64_t renewed_at;   /* monotonic ms of the last take or renewal */
    int64_t next_try;     /* monotonic ms of a follower's next attempt */
    int64_t db_failing;   /* monotonic ms since MySQL calls fail, 0 when they work */
    int64_t next_gauge;   /* monotonic ms */
    int64_t last_err_log; /* monotonic ms */
    /* the scan ahead (scheduler.prepare_ahead): the schedules due up to (ahead_ms, ahead_id) were looked
     * at; ahead_ms 0: none yet (the scan starts again from now) */
    int64_t ahead_ms;
    char ahead_id[37];
} sched_t;

/* ---- the lease ---- */

static void lead(sched_t *st, int leading, const char *why)
{
    if (leading && !st->leading) {
        cx_shm_count(CX_C_SCHEDULER_LEADER_TAKEN, 1);
        cx_log_info("scheduler: this instance leads (lease %s, %lld ms)", LEASE_KEY, (long long)cx_cfg->scheduler.leader_lease_ms);
    } else if (!leading && st->leading) {
        cx_log_info("scheduler: no longer the leader: %s", why);
    }
    if (leading != st->leading)
        st->ahead_ms = 0; /* a new leader scans ahead from now */
    st->leading = leading;
}

static void release(sched_t *st, const char *why)
{
    if (st->leading)
        cx_redis_lease_release(LEASE_KEY, st->token);
    lead(st, 0, why);
}

/* may_fire -- take or renew the lease when it is time; 1 when this scheduler fires now: it holds the
 * lease, or Redis is down (then the claims alone decide). */
static int may_fire(sched_t *st)
{
    int64_t now = cx_now_ms(), lease = cx_cfg->scheduler.leader_lease_ms;
    int firing, rc;

    if (!cx_cfg->scheduler.enabled) {
        release(st, "scheduler.enabled is false");
        st->redis_down = 0;
    } else if (st->db_failing && now - st->db_failing > lease / 2) {
        /* leading without MySQL fires nothing: let a replica that has it take over */
        release(st, "MySQL is unavailable");
        st->next_try = now + lease;
    } else if (st->leading ? now - st->renewed_at >= lease / 3 : now >= st->next_try) {
        rc = cx_redis_lease_take(LEASE_KEY, st->token, lease);
        if (rc == CX_OK) {
            lead(st, 1, NULL);
            st->renewed_at = now;
        } else {
            lead(st, 0, rc == CX_STATE ? "another instance holds the lease" : "Redis is unavailable");
            st->next_try = now + FOLLOWER_RETRY_MS;
        }
        if (rc == CX_UNAVAIL && !st->redis_down)
            cx_log_warnx("scheduler: Redis is unavailable: firing through MySQL alone (every replica tries, each fire is "
                         "claimed once)");
        else if (rc != CX_UNAVAIL && st->redis_down)
            cx_log_info("scheduler: Redis is back: leader election again");
        st->redis_down = rc == CX_UNAVAIL;
    }
    firing = cx_cfg->scheduler.enabled && (st->leading || st->redis_down);
    if (firing != st->firing)
        cx_shm_gauge_set(CX_G_SCHEDULER_LEADER, firing);
    st->firing = firing;
    return firing;
}

/* db_result -- note how a MySQL call went (the lease follows it). */
static void db_result(sched_t *st, int rc)
{
    int64_t now = cx_now_ms();

    if (rc == CX_UNAVAIL || rc == CX_ERR) {
        if (!st->db_failing)
            st->db_failing = now;
        if (now - st->last_err_log >= ERROR_LOG_MS) {
            st->last_err_log = now;
            cx_log_warnx("scheduler: MySQL is unavailable; due fires wait and are tried again");
        }
    } else {
        st->db_failing = 0;
    }
}

/* ---- fires ---- */

/* claim_only -- a transaction with only the claim (misses without a fire, a first plan); CX_STATE when
 * another scheduler has it. */
static int claim_only(const cx_schedule_claim_t *c)
{
    int rc;
    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    return cx_db_end(cx_db_schedule_claim(c));
}

/* broken -- a stored schedule that cannot be evaluated any more (a zone removed from the tz database):
 * disabled, with an audit row, rather than retried forever. */
static void broken(const cx_schedule_t *s, const char *why)
{
    cx_pipeline_actor_t who = {.actor = ACTOR, .request_id = NULL};
    cx_schedule_t after = *s;
    int rc;

    after.enabled = 0;
    after.next_run_at = 0;
    after.revision = s->revision + 1;
    after.updated_by = (char *)ACTOR;
    after.updated_at = cx_wall_ms();
    rc = cx_db_schedule_write(s, &after, "schedule_disable", &who);
    cx_shm_count(CX_C_SCHEDULE_FAILURES, 1);
    if (rc == CX_OK)
        cx_log_warnx("schedule %s disabled: its expression cannot be evaluated: %s", s->id, why);
}

/* A fire of a batch: the start, its claim and the texts they point to. */
typedef struct fire {
    const cx_schedule_t *s;
    cx_schedule_claim_t c;
    int64_t fire_at; /* Unix seconds */
    int ahead;       /* written ahead of its time, its start held */
    char at[32], reason[160];
} fire_t;

/* plan -- what becomes of one due schedule now: 1 when it fires (f and o filled, the start to make in
 * the batch); 0 when it is dealt with here (broken, not due, only misses). With ahead, s is due later
 * (the scan ahead): its fire is written now, held until its time. */
static int plan(sched_t *st, const cx_schedule_t *s, fire_t *f, cx_runs_start_opts_t *o, cx_runs_loads_t *loads, int ahead)
{
    cx_schedule_cron_t c;
    cx_fire_plan_t p;
    const char *field;
    char err[256];
    int64_t now_ms = cx_wall_ms();
    int rc;

    if (cx_schedule_compile(s->cron_expression, s->timezone, &c, &field, err, sizeof(err)) != CX_OK) {
        broken(s, err);
        return 0;
    }
    if (ahead) {
        p = (cx_fire_plan_t){.fire_at = s->next_run_at / 1000, .next = cx_schedule_next(&c, s->next_run_at / 1000)};
    } else {
        cx_schedule_plan(&c, s->next_run_at / 1000, now_ms / 1000, cx_cfg->scheduler.starting_deadline_ms / 1000, &p);
    }
    if (p.fire_at == CX_CRON_NONE && p.missed == 0)
        return 0; /* not due after all (this clock is behind the one that read it) */
    memset(f, 0, sizeof(*f));
    f->s = s;
    f->c = (cx_schedule_claim_t){.id = s->id,
                                 .cas = 1,
                                 .revision = s->revision,
                                 .due_ms = s->next_run_at,
                                 .next_ms = p.next != CX_CRON_NONE ? p.next * 1000 : 0,
                                 .missed = p.missed};
    if (p.missed > 0)
        cx_log_warnx("schedule %s: %s%lld fire time(s) passed while no scheduler ran%s", s->id, p.capped ? "at least " : "",
                     (long long)p.missed,
                     p.fire_at != CX_CRON_NONE ? "; the latest runs now" : " (none within scheduler.starting_deadline)");
    if (p.fire_at == CX_CRON_NONE) {
        if ((rc = claim_only(&f->c)) == CX_OK)
            cx_shm_count(CX_C_SCHEDULE_MISSES, (uint64_t)p.missed);
        db_result(st, rc == CX_STATE ? CX_OK : rc);
        return 0;
    }
    f->fire_at = p.fire_at;
    cx_db_time_text(p.fire_at * 1000, f->at);
    f->at[19] = '\0';
    snprintf(f->reason, sizeof(f->reason), "replaced by the fire of schedule %s for %s UTC", s->id, f->at);
    *o = (cx_runs_start_opts_t){
        .pipeline_id = s->pipeline_id,
        .trigger = CX_TRIGGER_SCHEDULE,
        .schedule_id = s->id,
        .scheduled_for = f->at,
        .actor = ACTOR,
        .action = "schedule_fire",
        .on_active = s->overlap_policy == CX_OVERLAP_REPLACE ? CX_ACTIVE_REPLACE
                     : s->overlap_policy == CX_OVERLAP_ALLOW ? CX_ACTIVE_FAIL
                                                             : CX_ACTIVE_SKIP,
        .replace_reason = f->reason,
        .record_noagent = 1,
        .fire = &f->c,
        .loads = loads,
        .hold_until_ms = ahead ? s->next_run_at : 0,
    };
    f->ahead = ahead;
    return 1;
}

/* fired -- what became of one fire of a batch: counted, logged, its lag observed. */
static void fired(sched_t *st, const fire_t *f, int rc, const cx_runs_result_t *res)
{
    const cx_schedule_t *s = f->s;

    if (rc != CX_OK) {
        /* CX_STATE: a replace whose active run changed meanwhile; else MySQL: due again at the next tick */
        db_result(st, rc == CX_STATE ? CX_OK : rc);
        return;
    }
    switch (res->outcome) {
    case CX_START_LOST:
        cx_log_debug("schedule %s: the fire for %s was claimed elsewhere", s->id, f->at);
        return;
    case CX_START_DEFERRED:
        cx_log_debug("schedule %s: the fire for %s is not written ahead (%s): it fires at its time", s->id, f->at, res->message);
        return;
    case CX_START_RUN:
        cx_shm_count(CX_C_SCHEDULE_FIRES, 1);
        if (f->ahead) {
            cx_shm_count(CX_C_SCHEDULE_AHEAD, 1);
            db_result(st, CX_OK);
            return; /* its lag is its start's, observed when it is released */
        }
        break;
    case CX_START_SKIPPED:
        cx_shm_count(CX_C_SCHEDULE_SKIPS, 1);
        cx_log_info("schedule %s: fire for %s skipped: %s", s->id, f->at, res->message);
        break;
    case CX_START_FAILED:
        cx_shm_count(CX_C_SCHEDULE_FAILURES, 1);
        if (res->run.id[0] == '\0')
            cx_log_warnx("schedule %s: its pipeline %s does not exist; the fire for %s is counted failed", s->id, s->pipeline_id,
                         f->at);
        break;
    }
    db_result(st, CX_OK);
    if (f->c.missed > 0)
        cx_shm_count(CX_C_SCHEDULE_MISSES, (uint64_t)f->c.missed);
    cx_shm_observe_fire_lag(cx_wall_ms() - f->fire_at * 1000);
}

/* fire_batch -- the due schedules items[0..n) fired together: one batch of starts in the run service
 * (cx_runs_start_many, the code path of POST /pipelines/:id/start) per CHUNK fires. */
static void fire_batch(sched_t *st, const cx_schedule_t *items, size_t n, cx_runs_loads_t *loads, int ahead)
{
    fire_t *f = cx_calloc(CHUNK, sizeof(*f));
    cx_runs_start_opts_t *o = cx_calloc(CHUNK, sizeof(*o));
    cx_runs_result_t *res = cx_calloc(CHUNK, sizeof(*res));
    int *rcs = cx_calloc(CHUNK, sizeof(*rcs));
    size_t i = 0;

    while (i < n && !cx_child_stop && may_fire(st)) {
        size_t k = 0;
        int rc;
        for (; i < n && k < CHUNK; i++)
            k += (size_t)plan(st, &items[i], &f[k], &o[k], loads, ahead);
        if (k == 0)
            continue;
        rc = cx_runs_start_many(o, k, res, rcs);
        for (size_t j = 0; j < k; j++) {
            fired(st, &f[j], rc != CX_OK ? rc : rcs[j], &res[j]);
            cx_runs_result_free(&res[j]);
        }
    }
    free(f);
    free(o);
    free(res);
    free(rcs);
}

/* plan_unplanned -- enabled schedules without a next_run_at (written by hand) get their first fire time. */
static void plan_unplanned(sched_t *st)
{
    cx_schedule_t *items = NULL;
    size_t n = 0;
    int rc = cx_db_schedules_due(0, 1, BATCH, &items, &n);

    db_result(st, rc);
    for (size_t i = 0; i < n; i++) {
        cx_schedule_cron_t c;
        const char *field;
        char err[256];
        int64_t next;
        if (cx_schedule_compile(items[i].cron_expression, items[i].timezone, &c, &field, err, sizeof(err)) != CX_OK) {
            broken(&items[i], err);
            continue;
        }
        next = cx_schedule_next(&c, cx_wall_ms() / 1000);
        cx_schedule_claim_t f = {.id = items[i].id,
                                 .cas = 1,
                                 .revision = items[i].revision,
                                 .due_ms = 0,
                                 .next_ms = next != CX_CRON_NONE ? next * 1000 : 0};
        if (next != CX_CRON_NONE)
            claim_only(&f);
    }
    cx_db_schedules_free(items, n);
}

/* fire_due -- the schedules due now, batch after batch, for at most TICK_BUDGET_MS. */
static void fire_due(sched_t *st)
{
    int64_t start = cx_now_ms();
    cx_runs_loads_t loads = {0}; /* the agents' loads, read once for the tick's fires */

    while (!cx_child_stop && cx_now_ms() - start < TICK_BUDGET_MS) {
        cx_schedule_t *items = NULL;
        size_t n = 0;
        int rc = cx_db_schedules_due(cx_wall_ms(), 0, BATCH, &items, &n);

        db_result(st, rc);
        fire_batch(st, items, n, &loads, 0);
        cx_db_schedules_free(items, n);
        if (rc != CX_OK || n < BATCH || cx_child_stop || !may_fire(st))
            break;
    }
    cx_runs_loads_reset(&loads);
}

/* release -- the held starts whose time has come, a thousand to a transaction (cx_runs_release): the
 * fires this instance or another wrote ahead of their time. */
static void release_due(sched_t *st)
{
    int64_t start = cx_now_ms();
    size_t n;
    int rc;

    do
        db_result(st, rc = cx_runs_release(&n));
    while (rc == CX_OK && n > 0 && !cx_child_stop && cx_now_ms() - start < TICK_BUDGET_MS);
}

/* prepare -- the fires of the next scheduler.prepare_ahead written ahead of their time (a burst of them
 * takes seconds to write; a held start goes out at its time), each scheduled time looked at once: the
 * scan goes on from where the last one ended. A fire that cannot be written as a plain start (its
 * pipeline active, no agent online, …) or closer than AHEAD_MARGIN_MS to its time is left to fire_due.
 * Only with Redis: without it a start waits for the dispatcher anyway. */
static void prepare(sched_t *st, cx_runs_loads_t *loads)
{
    int64_t start = cx_now_ms(), now = cx_wall_ms(), until = now + cx_cfg->scheduler.prepare_ahead_ms;

    if (cx_cfg->scheduler.prepare_ahead_ms <= AHEAD_MARGIN_MS || st->redis_down || !cx_redis_available()) {
        st->ahead_ms = 0;
        return;
    }
    if (st->ahead_ms < now + AHEAD_MARGIN_MS) {
        st->ahead_ms = now + AHEAD_MARGIN_MS;
        st->ahead_id[0] = '\0';
    }
    while (!cx_child_stop && cx_now_ms() - start < TICK_BUDGET_MS && st->ahead_ms < until) {
        cx_schedule_t *items = NULL;
        size_t n = 0;
        int rc = cx_db_schedules_ahead(st->ahead_ms, st->ahead_id, until, BATCH, &items, &n);

        db_result(st, rc);
        if (rc != CX_OK)
            break;
        fire_batch(st, items, n, loads, 1);
        if (n == BATCH) {
            st->ahead_ms = items[n - 1].next_run_at;
            snprintf(st->ahead_id, sizeof(st->ahead_id), "%s", items[n - 1].id);
        } else {
            st->ahead_ms = until;
            st->ahead_id[0] = '\0';
        }
        cx_db_schedules_free(items, n);
        if (n < BATCH || !may_fire(st))
            break;
    }
}

static int tick(void *arg)
{
    sched_t *st = arg;
    int64_t now = cx_now_ms();
    int gauge = now >= st->next_gauge;

    if (gauge) {
        /* also how a scheduler that gave its lease up for want of MySQL sees MySQL back */
        int64_t enabled;
        int rc = cx_db_schedules_enabled(&enabled);
        if (rc == CX_OK)
            cx_shm_gauge_set(CX_G_SCHEDULES_ENABLED, enabled);
        db_result(st, rc);
        st->next_gauge = now + GAUGE_MS;
    }
    if (!may_fire(st))
        return 0;
    if (gauge)
        plan_unplanned(st);
    release_due(st);
    fire_due(st);
    if (may_fire(st)) {
        cx_runs_loads_t loads = {0};
        prepare(st, &loads);
        cx_runs_loads_reset(&loads);
    }
    return 0;
}

int cx_scheduler_run(void)
{
    sched_t st = {0};
    char host[128] = "";
    int rc;

    gethostname(host, sizeof(host) - 1);
    /* one token per instance (the master's life), so a scheduler respawned after a crash keeps the lease */
    snprintf(st.token, sizeof(st.token), "%s:%d:%lld", host, (int)cx_master_pid,
             (long long)(cx_shm != NULL ? cx_shm->started_ms : cx_wall_ms()));
    cx_shm_gauge_set(CX_G_SCHEDULER_LEADER, 0);
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    if (!cx_cfg->scheduler.enabled)
        cx_log_info("scheduler: scheduler.enabled is false: this instance fires no schedule");
    rc = cx_child_loop(TICK_MS, tick, &st);
    release(&st, "stopping");
    cx_shm_gauge_set(CX_G_SCHEDULER_LEADER, 0);
    cx_db_close();
    cx_redis_close();
    return rc;
}
