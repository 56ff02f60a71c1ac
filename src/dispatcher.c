/*
 * dispatcher.c -- the dispatcher child: owns delivery of the agent_commands outbox and listens to the
 * agents.
 *
 * Every tick (250 ms) it expires commands past expires_at, then publishes the due ones in seq order:
 * queued commands (new, or left queued while Redis was down) and sent ones not acknowledged for
 * commands.redeliver_interval. Each publish is claimed first by compare-and-set on the attempt
 * number (cx_runs_deliver), so with a worker delivering at once, or several replicas each with its
 * dispatcher, no attempt is published twice. The first failed publish ends the tick: later commands
 * never overtake an earlier one, and nothing waits on a dead Redis.
 *
 * A second Redis connection, outside the breaker, is SUBSCRIBEd to pipeline:events and PSUBSCRIBEd to
 * agent:responses:*; its socket is the fd of the child loop. When it drops, the loop is left and
 * entered again without the fd, and the tick reconnects with a doubling backoff (250 ms to 8 s).
 * Acknowledgements and events published while it was down are lost to pub/sub; the redelivery of
 * unacknowledged commands makes agents acknowledge again.
 *
 * Every 5 s it also looks for runs still active on agents recorded offline (hbmon's call to
 * cx_runs_agent_offline failed, e.g. MySQL was down) and finishes that work.
 */
#include <stdlib.h>
#include <string.h>

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
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 8000
#define RESUBSCRIBE 100 /* loop exit code: enter the loop again with the new subscription fd */
#define SWEEP_MS 5000   /* how often runs left active on offline agents are looked for */

typedef struct state {
    redisContext *sub;
    int64_t retry_at; /* monotonic ms of the next subscribe attempt */
    cx_backoff_t backoff;
    int was_down;     /* log the recovery once */
    int64_t sweep_at; /* monotonic ms of the next sweep */
} state_t;

static int fd_of(const state_t *st)
{
    return st->sub != NULL ? st->sub->fd : -1;
}

/* on_message -- one pub/sub message: an ack on agent:responses:{id} or a run event on pipeline:events. */
static void on_message(const char *channel, const char *msg, size_t len, void *arg)
{
    static const char prefix[] = "agent:responses:";
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, msg, (int)len), *v;
    (void)arg;

    json_tokener_free(tok);
    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        cx_log_warnx("redis: %s: a message that is not a JSON object; ignored", channel);
        goto out;
    }
    if (strncmp(channel, prefix, sizeof(prefix) - 1) == 0) {
        const char *agent = channel + sizeof(prefix) - 1, *id = NULL, *message = NULL, *error = NULL;
        int success = -1, rc;
        if (json_object_object_get_ex(o, "command_id", &v) && json_object_is_type(v, json_type_string))
            id = json_object_get_string(v);
        if (json_object_object_get_ex(o, "success", &v) && json_object_is_type(v, json_type_boolean))
            success = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "message", &v) && json_object_is_type(v, json_type_string))
            message = json_object_get_string(v);
        if (json_object_object_get_ex(o, "error", &v) && json_object_is_type(v, json_type_string))
            error = json_object_get_string(v);
        if (json_object_object_get_ex(o, "agent_id", &v) && json_object_is_type(v, json_type_string) &&
            strcmp(json_object_get_string(v), agent) != 0) {
            cx_log_warnx("redis: %s: ack names agent %s; ignored", channel, json_object_get_string(v));
            goto out;
        }
        if (id == NULL || success < 0) {
            cx_log_warnx("redis: %s: ack without command_id or boolean success; ignored", channel);
            goto out;
        }
        rc = cx_runs_ack(agent, id, success, message, error, NULL);
        if (rc == CX_NOTFOUND)
            cx_log_warnx("redis: %s: ack of unknown command %s; ignored", channel, id);
        else if (rc != CX_OK)
            cx_log_warnx("redis: %s: ack of command %s not recorded (database unavailable); the agent will be asked again", channel,
                         id);
    } else {
        cx_runs_event(o);
    }
out:
    if (o)
        json_object_put(o);
}

static void drop_sub(state_t *st)
{
    if (st->sub != NULL) {
        redisFree(st->sub);
        st->sub = NULL;
    }
    st->was_down = 1;
    cx_backoff_reset(&st->backoff);
    st->retry_at = cx_now_ms() + cx_backoff_next(&st->backoff);
}

/* subscribe -- (re)connect the subscription when it is due. 1 when a new connection is up. */
static int subscribe(state_t *st)
{
    if (st->sub != NULL || cx_now_ms() < st->retry_at)
        return 0;
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

static int is_held(const char **held, size_t n, const char *agent_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(held[i], agent_id) == 0)
            return 1;
    return 0;
}

/* Agents whose last publish reached no subscriber, and when to try them again: a small table that
 * forgets its oldest entry when full (then that agent is merely tried again sooner). */
#define UNHEARD_RETRY_MS 1000
#define UNHEARD_MAX 1024
static struct {
    char agent_id[256];
    int64_t retry_at;
} unheard[UNHEARD_MAX];
static size_t unheard_next;

static void unheard_note(const char *agent_id)
{
    size_t i, slot = unheard_next;
    for (i = 0; i < UNHEARD_MAX; i++)
        if (strcmp(unheard[i].agent_id, agent_id) == 0) {
            slot = i;
            break;
        }
    if (slot == unheard_next)
        unheard_next = (unheard_next + 1) % UNHEARD_MAX;
    snprintf(unheard[slot].agent_id, sizeof(unheard[slot].agent_id), "%s", agent_id);
    unheard[slot].retry_at = cx_now_ms() + UNHEARD_RETRY_MS;
}

/* unheard_wait -- is the agent still in its retry delay after an unheard publish? */
static int unheard_wait(const char *agent_id)
{
    int64_t now = cx_now_ms();
    for (size_t i = 0; i < UNHEARD_MAX; i++)
        if (unheard[i].retry_at > now && strcmp(unheard[i].agent_id, agent_id) == 0)
            return 1;
    return 0;
}

/* deliver -- expire, then publish what is due, in seq order, stopping at the first failed publish; an
 * agent one of whose commands another process claimed first gets nothing more this round, so none of
 * its commands overtakes that one. */
static void deliver(void)
{
    cx_command_t *due = NULL;
    size_t n = 0;
    uint64_t expired = 0;
    int64_t pending = 0;

    if (cx_db_commands_expire(&expired) == CX_OK && expired > 0) {
        cx_shm_count(CX_C_COMMANDS_EXPIRED, expired);
        cx_log_info("%llu command(s) expired unacknowledged", (unsigned long long)expired);
    }
    if (cx_redis_available() && cx_db_commands_due(cx_cfg->commands.redeliver_interval_ms, BATCH, &due, &n) == CX_OK) {
        /* A PING first: a publish that fails uses up its attempt number (it may have gone out before
         * the error), so claim no numbers while Redis does not answer. */
        size_t todo = n > 0 && cx_redis_ping() == CX_OK ? n : 0;
        const char **held = cx_calloc(n + 1, sizeof(char *));
        size_t nheld = 0;
        for (size_t i = 0; i < todo; i++) {
            int rc;
            if (is_held(held, nheld, due[i].agent_id))
                continue;
            if (unheard_wait(due[i].agent_id)) {
                held[nheld++] = due[i].agent_id;
                continue;
            }
            if ((rc = cx_runs_deliver(&due[i])) == CX_CONFLICT)
                held[nheld++] = due[i].agent_id; /* someone else is publishing for this agent: its later ones wait */
            else if (rc == CX_NOTFOUND) {
                /* the agent does not listen now: its later commands wait too (order), and it is asked
                 * again after UNHEARD_RETRY_MS, not every tick */
                held[nheld++] = due[i].agent_id;
                unheard_note(due[i].agent_id);
            } else if (rc == CX_UNAVAIL)
                break; /* Redis went away: keep the order, try again next tick */
            else if (rc != CX_OK)
                break; /* database trouble */
        }
        free(held);
        cx_db_commands_free(due, n);
    }
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
        drop_sub(st);
        return RESUBSCRIBE + 1;
    }
    deliver();
    sweep(st);
    return 0;
}

static int on_fd(void *arg)
{
    state_t *st = arg;

    if (cx_redis_events_read(st->sub, 1, on_message, st) != CX_OK) {
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
