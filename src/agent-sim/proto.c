/*
 * proto.c -- the command side of a simulated agent: a received command is logged (one JSON line, so
 * tests can count deliveries), executed once (start/stop/pause/resume a simulated pipeline, update its
 * config, shut the agent down), and acknowledged on agent:responses:{id}; a repeated command id is not
 * executed again but acknowledged again with the first outcome. Run status changes are published on
 * pipeline:events, and running pipelines get pipeline:{id}:metrics and :checkpoint every metrics
 * interval. With --legacy none of that is sent: the agent only acts and reports its pipelines in its
 * heartbeats, like the original agents. With --slow-ack the acknowledgement and the events that follow
 * it wait in a FIFO (every delay is the same, so the FIFO is in due order). With --run-for a started
 * pipeline completes by itself after that long (a run_status completed event; gone from the heartbeats).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json.h>

#include "conduix/cx.h"
#include "sim.h"

typedef struct out {
    int64_t due; /* mono ms */
    char *channel;
    char *msg;
    int is_ack;
} out_t;

static struct {
    out_t *q;
    size_t head, tail, cap;
} Q;

static void push(const char *channel, char *msg, int64_t due, int is_ack)
{
    if (Q.tail == Q.cap) {
        if (Q.head > 0) {
            memmove(Q.q, Q.q + Q.head, (Q.tail - Q.head) * sizeof(*Q.q));
            Q.tail -= Q.head;
            Q.head = 0;
        } else {
            Q.cap = Q.cap ? Q.cap * 2 : 64;
            Q.q = cx_realloc(Q.q, Q.cap * sizeof(*Q.q));
        }
    }
    Q.q[Q.tail++] = (out_t){due, cx_strdup(channel), msg, is_ack};
}

int64_t sim_acks_next(sim_t *s)
{
    (void)s;
    return Q.head < Q.tail ? Q.q[Q.head].due : -1;
}

void sim_acks_due(sim_t *s, int64_t now)
{
    int sent = 0;
    while (Q.head < Q.tail && Q.q[Q.head].due <= now && s->cmd != NULL) {
        out_t *o = &Q.q[Q.head];
        const char *argv[] = {"PUBLISH", o->channel, o->msg};
        size_t lens[] = {7, strlen(o->channel), strlen(o->msg)};
        if (sim_cmd_append(s, 3, argv, lens) != 0)
            break; /* Redis is away: kept, sent when it is back */
        if (o->is_ack)
            s->acks++;
        else
            s->events++;
        free(o->channel);
        free(o->msg);
        Q.head++;
        sent++;
    }
    if (Q.head == Q.tail)
        Q.head = Q.tail = 0;
    if (sent)
        sim_cmd_flush(s);
}

static const char *str(json_object *o, const char *name)
{
    json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int64_t integer(json_object *o, const char *name, int64_t dflt)
{
    json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, name, &v) ||
        !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return dflt;
    return json_object_get_int64(v);
}

static char *text(json_object *o)
{
    char *t = cx_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return t;
}

static json_object *jstr(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

static void add_ts(json_object *o)
{
    char ts[48];
    sim_time_rfc3339(ts);
    json_object_object_add(o, "timestamp", json_object_new_string(ts));
}

void sim_pipes_update(sim_t *s, sim_agent_t *a, int64_t now)
{
    for (sim_pipe_t *p = a->pipes; p != NULL; p = p->next) {
        if (p->status == PIPE_RUNNING && now > p->since_ms) {
            p->processed += (int64_t)s->o.rate * (now - p->since_ms) / 1000;
            p->errors = p->processed / 1000;
        }
        p->since_ms = now;
    }
}

static sim_pipe_t *pipe_find(sim_agent_t *a, const char *pipeline_id)
{
    for (sim_pipe_t *p = a->pipes; p != NULL; p = p->next)
        if (pipeline_id != NULL && strcmp(p->pipeline_id, pipeline_id) == 0)
            return p;
    return NULL;
}

static void pipe_remove(sim_agent_t *a, sim_pipe_t *p)
{
    sim_pipe_t **pp;
    for (pp = &a->pipes; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            free(p->pipeline_id);
            free(p->run_id);
            free(p);
            return;
        }
}

/* event -- a run_status event of p on pipeline:events, after the acknowledgement. */
static void event(sim_t *s, sim_agent_t *a, const sim_pipe_t *p, const char *status, int64_t due)
{
    json_object *o;
    if (s->o.legacy)
        return;
    o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("run_status"));
    json_object_object_add(o, "agent_id", json_object_new_string(a->id));
    json_object_object_add(o, "pipeline_id", json_object_new_string(p->pipeline_id));
    json_object_object_add(o, "run_id", jstr(p->run_id));
    json_object_object_add(o, "status", json_object_new_string(status));
    json_object_object_add(o, "processed_count", json_object_new_int64(p->processed));
    json_object_object_add(o, "error_count", json_object_new_int64(p->errors));
    add_ts(o);
    push("pipeline:events", text(o), due, 0);
}

static void ack(sim_t *s, sim_agent_t *a, const char *command_id, int success, const char *message, const char *error, int64_t due)
{
    json_object *o;
    char channel[300];
    if (s->o.legacy)
        return;
    o = json_object_new_object();
    json_object_object_add(o, "command_id", json_object_new_string(command_id));
    json_object_object_add(o, "agent_id", json_object_new_string(a->id));
    json_object_object_add(o, "success", json_object_new_boolean(success));
    if (message != NULL)
        json_object_object_add(o, "message", json_object_new_string(message));
    if (error != NULL)
        json_object_object_add(o, "error", json_object_new_string(error));
    add_ts(o);
    snprintf(channel, sizeof(channel), "agent:responses:%s", a->id);
    push(channel, text(o), due, 1);
}

static sim_seen_t *seen_find(sim_agent_t *a, const char *id)
{
    for (int i = 0; i < a->nseen; i++)
        if (strcmp(a->seen[i].id, id) == 0)
            return &a->seen[i];
    return NULL;
}

static void seen_add(sim_agent_t *a, const char *id, int success)
{
    sim_seen_t *e = &a->seen[a->seen_pos];
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->success = success;
    a->seen_pos = (a->seen_pos + 1) % SIM_SEEN;
    if (a->nseen < SIM_SEEN)
        a->nseen++;
}

/* applied -- a command carried out: acknowledged, its run event sent (ev, unless NULL), remembered. */
static void applied(sim_t *s, sim_agent_t *a, const sim_pipe_t *p, const char *id, const char *msg, const char *ev, int64_t due)
{
    ack(s, a, id, 1, msg, NULL, due);
    if (ev != NULL)
        event(s, a, p, ev, due);
    seen_add(a, id, 1);
}

/* wall_us -- the wall clock in microseconds, when the command arrived (before it is parsed). */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void log_command(sim_t *s, sim_agent_t *a, json_object *cmd, const char *run_id, int repeat, int expired, int64_t us)
{
    json_object *o;
    if (s->log == NULL)
        return;
    o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string("command"));
    json_object_object_add(o, "agent_id", json_object_new_string(a->id));
    json_object_object_add(o, "command_id", jstr(str(cmd, "id")));
    json_object_object_add(o, "type", jstr(str(cmd, "type")));
    json_object_object_add(o, "pipeline_id", jstr(str(cmd, "pipeline_id")));
    json_object_object_add(o, "run_id", jstr(run_id));
    json_object_object_add(o, "attempt", json_object_new_int64(integer(cmd, "attempt", 0)));
    json_object_object_add(o, "repeat", json_object_new_boolean(repeat));
    json_object_object_add(o, "expired", json_object_new_boolean(expired));
    json_object_object_add(o, "ts", json_object_new_int64(us / 1000));
    json_object_object_add(o, "ts_us", json_object_new_int64(us)); /* the command-path benchmark's clock */
    fprintf(s->log, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    fflush(s->log);
    json_object_put(o);
}

void sim_on_command(sim_t *s, sim_agent_t *a, const char *payload, size_t len)
{
    json_object *cmd = NULL, *pl = NULL, *ck;
    const char *id, *type, *pipeline_id, *run_id, *exp, *error = NULL, *message = "ok";
    int64_t now_us = wall_us(), now = now_us / 1000, due = cx_now_ms() + s->o.slow_ack_ms, exp_ms;
    int success = 1, expired;
    sim_seen_t *seen;
    sim_pipe_t *p;
    json_tokener *tok = json_tokener_new();

    s->commands++;
    cmd = json_tokener_parse_ex(tok, payload, (int)len);
    json_tokener_free(tok);
    if (cmd == NULL || !json_object_is_type(cmd, json_type_object) || (id = str(cmd, "id")) == NULL ||
        (type = str(cmd, "type")) == NULL) {
        if (s->log != NULL) {
            fprintf(s->log, "{\"event\":\"bad_command\",\"agent_id\":\"%s\",\"ts\":%lld}\n", a->id, (long long)now);
            fflush(s->log);
        }
        json_object_put(cmd);
        return;
    }
    pipeline_id = str(cmd, "pipeline_id");
    json_object_object_get_ex(cmd, "payload", &pl);
    run_id = str(pl, "run_id");
    exp = str(cmd, "expires_at");
    exp_ms = exp != NULL ? cx_time_parse(exp) : -1;
    expired = exp_ms >= 0 && exp_ms < now;
    seen = seen_find(a, id);
    log_command(s, a, cmd, run_id, seen != NULL, expired, now_us);
    if (expired || a->stopped)
        goto out; /* an expired command is ignored; a shut-down agent hears nothing */
    if (seen != NULL) {
        ack(s, a, id, seen->success, "already handled", seen->success ? NULL : "already handled: failed", due);
        goto out;
    }
    p = pipe_find(a, pipeline_id);
    sim_pipes_update(s, a, now);
    if (strcmp(type, "start_pipeline") == 0) {
        if (s->o.fail_start || pipeline_id == NULL) {
            success = 0;
            error = pipeline_id == NULL ? "no pipeline_id" : "simulated start failure";
        } else {
            if (p == NULL) {
                p = cx_calloc(1, sizeof(*p));
                p->pipeline_id = cx_strdup(pipeline_id);
                p->next = a->pipes;
                a->pipes = p;
            }
            free(p->run_id);
            p->run_id = run_id ? cx_strdup(run_id) : NULL;
            p->status = PIPE_RUNNING;
            p->since_ms = now;
            p->ends_at = s->o.run_for_ms > 0 ? cx_now_ms() + s->o.run_for_ms : 0;
            p->processed = p->errors = 0;
            if (json_object_object_get_ex(pl, "checkpoint", &ck) && json_object_is_type(ck, json_type_object))
                p->processed = integer(ck, "processed_count", 0);
            applied(s, a, p, id, "started", "running", due);
            goto out;
        }
    } else if (strcmp(type, "stop_pipeline") == 0) {
        if (p != NULL) {
            applied(s, a, p, id, "stopped", "stopped", due);
            pipe_remove(a, p);
            goto out;
        }
        message = "not running";
    } else if (strcmp(type, "pause_pipeline") == 0 || strcmp(type, "resume_pipeline") == 0) {
        int pause = type[0] == 'p';
        if (p != NULL && p->status == (pause ? PIPE_RUNNING : PIPE_PAUSED)) {
            p->status = pause ? PIPE_PAUSED : PIPE_RUNNING;
            applied(s, a, p, id, pause ? "paused" : "resumed", pause ? "paused" : "running", due);
            goto out;
        }
        success = 0;
        error = pause ? "the pipeline is not running" : "the pipeline is not paused";
    } else if (strcmp(type, "update_config") == 0) {
        message = "config updated";
    } else if (strcmp(type, "shutdown") == 0) {
        applied(s, a, NULL, id, "shutting down", NULL, due);
        while (a->pipes != NULL) {
            event(s, a, a->pipes, "stopped", due);
            pipe_remove(a, a->pipes);
        }
        a->stopped = 1;
        goto out;
    } else {
        success = 0;
        error = "unknown command type";
    }
    ack(s, a, id, success, success ? message : NULL, error, due);
    seen_add(a, id, success);
out:
    json_object_put(cmd);
    if (s->o.slow_ack_ms <= 0)
        sim_acks_due(s, cx_now_ms());
}

void sim_runs_done(sim_t *s, int64_t now)
{
    if (s->o.run_for_ms <= 0)
        return;
    for (size_t i = 0; i < s->n; i++) {
        sim_agent_t *a = &s->agents[i];
        sim_pipe_t *p = a->pipes, *next;
        for (; p != NULL; p = next) {
            next = p->next;
            if (p->status != PIPE_RUNNING || p->ends_at == 0 || now < p->ends_at)
                continue;
            sim_pipes_update(s, a, cx_wall_ms());
            event(s, a, p, "completed", now);
            pipe_remove(a, p);
        }
    }
}

void sim_metrics(sim_t *s)
{
    int64_t now = cx_wall_ms();
    char ts[48], key[320];

    if (s->o.legacy)
        return;
    sim_time_rfc3339(ts);
    for (size_t i = 0; i < s->n; i++) {
        sim_agent_t *a = &s->agents[i];
        if (a->pipes == NULL || a->stopped)
            continue;
        sim_pipes_update(s, a, now);
        for (sim_pipe_t *p = a->pipes; p != NULL; p = p->next) {
            json_object *m = json_object_new_object(), *c = json_object_new_object(), *off = json_object_new_object(),
                        *meta = json_object_new_object();
            char *mt, *ct;
            json_object_object_add(m, "pipeline_id", json_object_new_string(p->pipeline_id));
            json_object_object_add(m, "events_in", json_object_new_int64(p->processed + p->errors));
            json_object_object_add(m, "events_out", json_object_new_int64(p->processed));
            json_object_object_add(m, "bytes_in", json_object_new_int64((p->processed + p->errors) * 200));
            json_object_object_add(m, "bytes_out", json_object_new_int64(p->processed * 180));
            json_object_object_add(m, "errors_total", json_object_new_int64(p->errors));
            json_object_object_add(m, "processing_time_ms", json_object_new_int64(p->processed / 10));
            json_object_object_add(m, "last_updated", json_object_new_string(ts));
            json_object_object_add(off, "input", json_object_new_int64(p->processed + p->errors));
            json_object_object_add(meta, "agent_id", json_object_new_string(a->id));
            json_object_object_add(meta, "run_id", jstr(p->run_id));
            json_object_object_add(c, "pipeline_id", json_object_new_string(p->pipeline_id));
            json_object_object_add(c, "actor_path", json_object_new_string("/user/pipeline/source"));
            json_object_object_add(c, "offsets", off);
            json_object_object_add(c, "processed_count", json_object_new_int64(p->processed));
            json_object_object_add(c, "state", json_object_new_object());
            json_object_object_add(c, "timestamp", json_object_new_string(ts));
            json_object_object_add(c, "version", json_object_new_int(1));
            json_object_object_add(c, "metadata", meta);
            mt = text(m);
            ct = text(c);
            snprintf(key, sizeof(key), "pipeline:%s:metrics", p->pipeline_id);
            const char *av[] = {"SET", key, mt};
            size_t al[] = {3, strlen(key), strlen(mt)};
            sim_cmd_append(s, 3, av, al);
            snprintf(key, sizeof(key), "pipeline:%s:checkpoint", p->pipeline_id);
            const char *bv[] = {"SET", key, ct};
            size_t bl[] = {3, strlen(key), strlen(ct)};
            sim_cmd_append(s, 3, bv, bl);
            free(mt);
            free(ct);
        }
    }
    sim_cmd_flush(s);
}
