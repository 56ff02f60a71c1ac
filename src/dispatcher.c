/*
 * dispatcher.c -- the dispatcher child: owns delivery of the agent_commands outbox and listens to the
 * agents.
 *
 * Every tick (250 ms) it expires commands past expires_at, then publishes the due ones in seq order:
 * queued commands (left queued while Redis was down, or by a request that could not deliver its own;
 * one queued or given back less than a second ago is left to the process that wrote it) and sent ones
 * not acknowledged for commands.redeliver_interval, as long as they still serve their run (commands.h),
 * to the agents that listen on their channel (one PUBSUB NUMSUB per read of BATCH due commands; a full
 * read is followed by the next, up to PAGES, so that the skipped commands of agents nobody listens to
 * cannot fill the read and starve those of agents that do). Each publish is
 * claimed first by compare-and-set on the attempt number, under the lock of its agent and pipeline
 * (cx_runs_deliver), so with a worker delivering at once, or several replicas each with its dispatcher,
 * no attempt is published twice and no command of a pipeline overtakes an older one. The first failed
 * publish ends the tick, so nothing waits on a dead Redis.
 *
 * A second Redis connection, outside the breaker, is SUBSCRIBEd to pipeline:events and PSUBSCRIBEd to
 * agent:responses:*; its socket is the fd of the child loop. When it drops, the loop is left and
 * entered again without the fd, and the tick reconnects with a doubling backoff (250 ms to 8 s), or at
 * once when Redis answers the dispatcher's own connection again (so it listens before it publishes).
 * Acknowledgements and events published while it was down are lost to pub/sub; the redelivery of
 * unacknowledged commands makes agents acknowledge again. What one read of the subscription brings is
 * parsed, then applied together when the read is done (cx_runs_apply: batches of up to 100, in order);
 * a read that brought fewer than 100 waits up to 10 ms for more first (gather), so that messages arriving
 * one at a time are applied in batches too.
 *
 * Every 5 s it also looks for runs still active on agents recorded offline (hbmon's call to
 * cx_runs_agent_offline failed, e.g. MySQL was down) and finishes that work.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/agentmsg.h"
#include "conduix/agents.h"
#include "conduix/backoff.h"
#include "conduix/commands.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/redis.h"
#include "conduix/runs.h"
#include "conduix/shm.h"

#define TICK_MS 250
#define BATCH 500
#define PAGES 8        /* pages of BATCH due commands read in a tick at most */
#define SETTLE_MS 1000 /* a command queued (or given back) this recently is its writer's to deliver first */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 8000
#define RESUBSCRIBE 100 /* loop exit code: enter the loop again with the new subscription fd */
#define SWEEP_MS 5000   /* how often runs left active on offline agents are looked for */

typedef struct state {
    redisContext *sub;
    int64_t retry_at; /* monotonic ms of the next subscribe attempt */
    cx_backoff_t backoff;
    int was_down;     /* log the recovery once */
    int hurried;      /* the subscription was tried once out of its backoff since it dropped */
    int64_t sweep_at; /* monotonic ms of the next sweep */
} state_t;

static cx_loglimit_t db_limit; /* acks and events MySQL could not take */

static int fd_of(const state_t *st)
{
    return st->sub != NULL ? st->sub->fd : -1;
}

/* What one read of the subscription brought: the acknowledgements and run events, parsed, applied
 * together (cx_runs_apply) when the read is done, or when WORDS of them wait. */
#define WORDS 1000
#define GATHER_MS 10   /* a read of fewer than GATHER_MAX messages waits this long for more */
#define GATHER_MAX 100 /* a batch of cx_runs_apply */

typedef struct word {
    cx_ack_t ack;
    cx_event_t ev;
    cx_msg_error_t why;
    char *agent; /* an ack's agent id (the channel's) */
    size_t alen;
} word_t;

static word_t words[WORDS];
static cx_agent_word_t applied[WORDS];
static size_t nwords;

/* flush -- apply what was read, then say what was refused or not recorded. */
static void flush(void)
{
    if (nwords == 0)
        return;
    for (size_t i = 0; i < nwords; i++) {
        word_t *w = &words[i];
        applied[i] = (cx_agent_word_t){
            .agent_id = w->agent, .ack = w->agent ? &w->ack : NULL, .ev = w->agent ? NULL : &w->ev, .why = &w->why};
    }
    cx_runs_apply(applied, nwords);
    for (size_t i = 0; i < nwords; i++) {
        word_t *w = &words[i];
        int rc = applied[i].rc;
        if (w->agent != NULL) {
            if (rc == CX_NOTFOUND) {
                cx_msg_error_t err = {"command_id", "names no command of this agent"};
                cx_agent_msg_rejected("ack", "redis", w->agent, w->alen, &err);
            } else if (rc != CX_OK && cx_loglimit_allow(&db_limit, "acknowledgements not recorded")) {
                cx_log_warnx(
                    "redis: ack of command %s by agent %s not recorded (database unavailable); the agent will be asked again",
                    w->ack.command_id, w->agent);
            }
            cx_ack_free(&w->ack);
            free(w->agent);
        } else {
            if (rc == CX_INVALID)
                cx_agent_msg_rejected("event", "redis", w->ev.agent_id, w->ev.agent_id ? strlen(w->ev.agent_id) : 0, &w->why);
            else if (rc != CX_OK && cx_loglimit_allow(&db_limit, "run events not recorded"))
                cx_log_warnx("redis: run event of agent %s not recorded (database unavailable)", w->ev.agent_id);
            cx_event_free(&w->ev);
        }
    }
    nwords = 0;
}

/* on_ack -- an acknowledgement published on agent:responses:{agent} (alen bytes of the channel). */
static void on_ack(const char *agent, size_t alen, const char *msg, size_t len)
{
    cx_msg_error_t err = {"channel", "the channel does not name a valid agent id"};
    word_t *w = &words[nwords];

    /* the id ends where the channel does: one with a NUL or not UTF-8 in it names no agent */
    if (!cx_agent_id_valid(agent, alen)) {
        cx_agent_msg_rejected("ack", "redis", agent, alen, &err);
        return;
    }
    memset(w, 0, sizeof(*w));
    if (cx_ack_parse(msg, len, agent, &w->ack, &err) != CX_OK) {
        cx_agent_msg_rejected("ack", "redis", agent, alen, &err);
        return;
    }
    if (w->ack.fixed)
        cx_shm_count(CX_C_AGENT_TEXTS_FIXED, 1);
    w->agent = cx_malloc(alen + 1);
    memcpy(w->agent, agent, alen);
    w->agent[alen] = '\0';
    w->alen = alen;
    if (++nwords == WORDS)
        flush();
}

/* on_event -- a message on pipeline:events. */
static void on_event(const char *msg, size_t len)
{
    word_t *w = &words[nwords];

    memset(w, 0, sizeof(*w));
    if (cx_event_parse(msg, len, &w->ev, &w->why) != CX_OK) {
        cx_agent_msg_rejected("event", "redis", NULL, 0, &w->why);
        return;
    }
    if (w->ev.fixed)
        cx_shm_count(CX_C_AGENT_TEXTS_FIXED, 1);
    if (++nwords == WORDS)
        flush();
}

/* on_message -- one pub/sub message: an ack on agent:responses:{id} or a run event on pipeline:events. */
static void on_message(const char *channel, size_t chlen, const char *msg, size_t len, void *arg)
{
    static const char prefix[] = "agent:responses:";
    const size_t pre = sizeof(prefix) - 1;
    (void)arg;

    if (chlen >= pre && memcmp(channel, prefix, pre) == 0)
        on_ack(channel + pre, chlen - pre, msg, len);
    else
        on_event(msg, len);
}

static void drop_sub(state_t *st)
{
    if (st->sub != NULL) {
        redisFree(st->sub);
        st->sub = NULL;
    }
    st->was_down = 1;
    st->hurried = 0;
    cx_backoff_reset(&st->backoff);
    st->retry_at = cx_now_ms() + cx_backoff_next(&st->backoff);
}

/* subscribe -- (re)connect the subscription when it is due: by its backoff, or at once (once a drop)
 * when Redis answers this process's own connection again (a PING, made only when the breaker lets a call
 * through). The dispatcher delivers only while subscribed (tick), so no acknowledgement of its publishes
 * goes to nobody. 1 when a new connection is up. */
static int subscribe(state_t *st)
{
    if (st->sub != NULL)
        return 0;
    if (cx_now_ms() < st->retry_at) {
        if (st->hurried || !cx_redis_available() || cx_redis_ping() != CX_OK)
            return 0;
        st->hurried = 1;
    }
    if ((st->sub = cx_redis_events_subscribe(cx_cfg)) == NULL) {
        st->retry_at = cx_now_ms() + cx_backoff_next(&st->backoff);
        return 0;
    }
    if (st->was_down)
        cx_log_info("redis: subscribed again to pipeline:events and agent:responses:*");
    st->was_down = 0;
    cx_backoff_reset(&st->backoff);
    return 1;
}

/* A command of this round that could not go out holds back the later ones of its agent and pipeline
 * (agent_wide: of its agent: nobody listens to the agent's channel). */
typedef struct hold {
    const char *agent_id, *pipeline_id;
    int agent_wide;
} hold_t;

static int is_held(const hold_t *held, size_t n, const cx_command_t *c)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(held[i].agent_id, c->agent_id) == 0 && (held[i].agent_wide || strcmp(held[i].pipeline_id, c->pipeline_id) == 0))
            return 1;
    return 0;
}

/* agent_index -- where agent_id is among the n distinct agents of this round, or -1. */
static ssize_t agent_index(const char *const *agents, size_t n, const char *agent_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(agents[i], agent_id) == 0)
            return (ssize_t)i;
    return -1;
}

/* A round of deliveries: what holds back later commands, over every page read this tick. */
typedef struct round {
    hold_t *held;
    size_t nheld, cap;
} round_t;

static void hold(round_t *rd, const cx_command_t *c, int agent_wide)
{
    if (rd->nheld == rd->cap) {
        rd->cap = rd->cap ? 2 * rd->cap : 64;
        rd->held = cx_realloc(rd->held, rd->cap * sizeof(*rd->held));
    }
    rd->held[rd->nheld++] = (hold_t){c->agent_id, c->pipeline_id, agent_wide};
}

/* deliver_page -- publish the due commands of one page, in seq order. Who listens is asked first, for
 * the page's agents in one PUBSUB NUMSUB: an agent nobody listens to (reconnecting, or polling REST) has
 * nothing claimed for it, so its commands stay queued as its poll reads them. A command another process
 * is publishing (or claimed first) holds back the later ones of its agent and pipeline this round, so
 * none of them overtakes it. 0 when the round must end here (Redis went away, database trouble). */
static int deliver_page(cx_command_t *due, size_t n, round_t *rd)
{
    const char **agents = cx_calloc(n, sizeof(*agents));
    int *listening = cx_calloc(n, sizeof(*listening)), go = 1;
    size_t nagents = 0;

    for (size_t i = 0; i < n; i++)
        if (agent_index(agents, nagents, due[i].agent_id) < 0)
            agents[nagents++] = due[i].agent_id;
    /* The question is also the PING: a publish that fails uses up its attempt number (it may have gone
     * out before the error), so claim no numbers while Redis does not answer. */
    if (cx_redis_command_listeners(agents, nagents, listening) != CX_OK)
        go = 0;
    for (size_t i = 0; go && i < n; i++) {
        cx_command_t *c = &due[i];
        int rc;
        ssize_t a = agent_index(agents, nagents, c->agent_id);
        if (is_held(rd->held, rd->nheld, c))
            continue;
        if (!listening[a]) {
            /* nobody listens: neither here nor on a later page of this round, even if it subscribes
             * meanwhile (a later command would overtake this one) */
            hold(rd, c, 1);
            continue;
        }
        if ((rc = cx_runs_deliver(c)) == CX_CONFLICT)
            hold(rd, c, 0); /* someone else is publishing for it */
        else if (rc == CX_NOTFOUND)
            hold(rd, c, 1); /* unsubscribed since: its later ones wait */
        else if (rc == CX_UNAVAIL || (rc != CX_OK && rc != CX_STATE))
            go = 0; /* Redis went away, or database trouble: keep the order, try again next tick */
    }
    free(listening);
    free(agents);
    return go;
}

/* deliver -- expire, then publish what is due, a page of BATCH commands at a time in seq order, stopping
 * at the first failed publish. A full page is followed by the next one (up to PAGES a tick), so that the
 * queued commands of agents nobody listens to (skipped every tick, and older than everything behind
 * them) cannot fill the page and starve the commands of agents that do listen. */
static void deliver(void)
{
    cx_command_t *pages[PAGES];
    size_t sizes[PAGES], np = 0;
    round_t rd = {0};
    uint64_t expired = 0, after = 0;
    int64_t pending = 0;
    int go;

    if (cx_db_commands_expire(&expired) == CX_OK && expired > 0) {
        cx_shm_count(CX_C_COMMANDS_EXPIRED, expired);
        cx_log_info("%llu command(s) expired unacknowledged", (unsigned long long)expired);
    }
    go = cx_redis_available();
    while (go && np < PAGES) {
        cx_command_t *due = NULL;
        size_t n = 0;
        if (cx_db_commands_due(SETTLE_MS, cx_cfg->commands.redeliver_interval_ms, after, BATCH, &due, &n) != CX_OK || n == 0)
            break;
        pages[np] = due;
        sizes[np++] = n;
        go = deliver_page(due, n, &rd) && n == BATCH;
        after = due[n - 1].seq;
    }
    free(rd.held); /* its strings are the pages' */
    for (size_t i = 0; i < np; i++)
        cx_db_commands_free(pages[i], sizes[i]);
    if (cx_db_commands_pending(&pending) == CX_OK)
        cx_shm_gauge_set(CX_G_COMMANDS_PENDING, pending);
}

/* sweep -- runs still active on agents recorded offline: hbmon's cx_runs_agent_offline did not get
 * through (MySQL was down then); do it now. A second call for the same agent finds nothing to do. */
static void sweep(state_t *st)
{
    char **ids = NULL;
    size_t n = 0;

    if (cx_now_ms() < st->sweep_at)
        return;
    st->sweep_at = cx_now_ms() + SWEEP_MS;
    if (cx_db_runs_orphaned(&ids, &n) != CX_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        cx_log_warnx("agent %s has been offline for a while but still has active runs: marking them lost", ids[i]);
        cx_runs_agent_offline(ids[i]);
        free(ids[i]);
    }
    free(ids);
}

static int tick(void *arg)
{
    state_t *st = arg;

    if (subscribe(st))
        return RESUBSCRIBE + 1; /* enter the loop again, now polling the subscription */
    if (st->sub != NULL && cx_redis_events_read(st->sub, 0, on_message, st) != CX_OK) {
        flush();
        drop_sub(st);
        return RESUBSCRIBE + 1;
    }
    flush();
    /* Not while it does not listen: the acknowledgement of a command published now would go to nobody,
     * and the command out again at its redelivery (heard twice). Redis answering again subscribes at
     * once (subscribe), and the queued commands go out on the next tick. */
    if (st->sub != NULL)
        deliver();
    sweep(st);
    return 0;
}

/* gather -- after a read that brought fewer than GATHER_MAX messages, what follows within GATHER_MS of
 * it: when the dispatcher keeps up, a read brings one or two, each a transaction of its own (about six
 * statements); a few ms later they are a batch (cx_runs_apply). An acknowledgement waits GATHER_MS more
 * at most. */
static int gather(state_t *st)
{
    int64_t until = cx_now_ms() + GATHER_MS;
    int rc = CX_OK;

    while (rc == CX_OK && nwords > 0 && nwords < GATHER_MAX && !cx_child_stop) {
        struct pollfd pfd = {.fd = st->sub->fd, .events = POLLIN};
        int64_t left = until - cx_now_ms();
        int pr;
        if (left <= 0)
            break;
        if ((pr = poll(&pfd, 1, (int)left)) < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        rc = cx_redis_events_read(st->sub, 1, on_message, st);
    }
    return rc;
}

static int on_fd(void *arg)
{
    state_t *st = arg;

    int rc = cx_redis_events_read(st->sub, 1, on_message, st);

    if (rc == CX_OK)
        rc = gather(st);
    flush(); /* what the reads brought, in batches */
    if (rc != CX_OK) {
        drop_sub(st);
        return RESUBSCRIBE + 1; /* enter the loop again without the dead fd */
    }
    return 0;
}

int cx_dispatcher_run(void)
{
    state_t st = {.sub = NULL, .retry_at = 0, .was_down = 0, .sweep_at = cx_now_ms() + SWEEP_MS};
    int rc;

    cx_backoff_init(&st.backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    do
        rc = cx_child_loop_fd(TICK_MS, tick, fd_of(&st), st.sub != NULL ? on_fd : NULL, &st);
    while (rc == RESUBSCRIBE && !cx_child_stop);
    if (rc == RESUBSCRIBE)
        rc = 0;
    if (st.sub != NULL)
        redisFree(st.sub);
    cx_db_close();
    cx_redis_close();
    return rc;
}
