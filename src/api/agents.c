/*
 * src/api/agents.c -- the agent registry endpoints: list, one agent (with its active runs), its status,
 * and the REST heartbeat fallback. The status shown is the one hbmon recorded (with a transition row),
 * never recomputed here. The command endpoints of agents live in commands.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/agents.h"
#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/heartbeat.h"
#include "conduix/redis.h"
#include "conduix/reply.h"
#include "conduix/runs.h"
#include "conduix/shapes.h"

int cx_api_agents_list(cx_req_t *r)
{
    const char *status = cx_req_query(r, "status");
    cx_agent_status_t st = CX_AGENT_UNKNOWN;
    cx_agent_t *items;
    json_object *arr;
    size_t n;
    int64_t total;
    int page, size, rc;

    if (cx_req_paging(r, &page, &size) != CX_OK)
        return 0;
    if (status != NULL && cx_agent_status_parse(status, &st) != CX_OK)
        return cx_reply_validation(r, "status", "status must be one of online, offline, unknown");
    if ((rc = cx_db_agents_list(status != NULL, st, page, size, &items, &n, &total)) != CX_OK)
        return cx_reply_status_for(r, rc, "agents");
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, cx_agent_json(&items[i]));
    cx_db_agents_free(items, n);
    return cx_reply_page(r, arr, total, page, size);
}

/* bad_id -- 1 (after a 400 naming the parameter) when :id cannot be an agent id: such an id names no
 * agent, and echoing it would put bytes that are not UTF-8 into the answer. */
static int bad_id(cx_req_t *r, const char *id)
{
    if (cx_agent_id_valid(id, strlen(id)))
        return 0;
    cx_reply_validation(r, "id", "is not a valid agent id (1 to 255 bytes of printable UTF-8 without spaces)");
    return 1;
}

int cx_api_agents_get(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_agent_t a;
    cx_run_t *runs;
    size_t n;
    json_object *o, *arr;
    int rc;

    if (bad_id(r, id))
        return 0;
    if ((rc = cx_db_agent_get(id, &a, &runs, &n)) != CX_OK)
        return cx_reply_status_for(r, rc, "agent");
    o = cx_agent_json(&a);
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, cx_run_json(&runs[i]));
    json_object_object_add(o, "active_runs", arr);
    cx_db_runs_free(runs, n);
    cx_agent_free(&a);
    return cx_reply_ok(r, 200, o, NULL);
}

int cx_api_agents_status(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_agent_t a;
    json_object *o;
    int rc;

    if (bad_id(r, id))
        return 0;
    if ((rc = cx_db_agent_get(id, &a, NULL, NULL)) != CX_OK)
        return cx_reply_status_for(r, rc, "agent");
    o = json_object_new_object();
    json_object_object_add(o, "agent_id", json_object_new_string(a.id));
    json_object_object_add(o, "status", json_object_new_string(cx_agent_status_name(a.status)));
    json_object_object_add(o, "last_heartbeat", cx_json_time_ms(a.last_heartbeat));
    if (a.last_heartbeat > 0) {
        int64_t age = cx_wall_ms() - a.last_heartbeat;
        char txt[32];
        if (age < 0)
            age = 0;
        snprintf(txt, sizeof(txt), "%lld.%03d", (long long)(age / 1000), (int)(age % 1000));
        json_object_object_add(o, "seconds_since_heartbeat", json_object_new_double_s((double)age / 1000.0, txt));
    } else {
        json_object_object_add(o, "seconds_since_heartbeat", NULL);
    }
    json_object_object_add(o, "pipelines", cx_json_stored(a.pipelines, json_type_array));
    cx_agent_free(&a);
    return cx_reply_ok(r, 200, o, NULL);
}

/* reply_beat -- the answer to a REST heartbeat. */
static int reply_beat(cx_req_t *r, int rc, const char *via, int64_t now)
{
    json_object *data;
    char at[32];

    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "heartbeat");
    cx_time_format_ms(now, at);
    data = json_object_new_object();
    json_object_object_add(data, "agent_id", json_object_new_string(cx_req_param(r, "id")));
    json_object_object_add(data, "received_at", json_object_new_string(at));
    json_object_object_add(data, "via", json_object_new_string(via));
    return cx_reply_ok(r, 200, data, NULL);
}

/* A REST heartbeat waiting for the Redis batch (the request may go before its beat is recorded). */
typedef struct beat_wait {
    cx_req_t *r; /* NULL once the request has ended */
    int64_t now;
} beat_wait_t;

static void on_beat_abort(void *arg)
{
    ((beat_wait_t *)arg)->r = NULL;
}

static void on_beat_done(int rc, const char *via, void *arg)
{
    beat_wait_t *w = arg;

    if (w->r != NULL)
        reply_beat(w->r, rc, via, w->now);
    free(w);
}

/* cx_api_agents_heartbeat -- POST /agents/:id/heartbeat: the body, which body.c has parsed, is checked by
 * the heartbeat parser's rules (the same as for a Redis key: size cap, UTF-8, agent_id equal to the URL's
 * id). Its SET goes into the worker's Redis batch, sent with the other beats of this turn of the loop in
 * one round trip (cx_heartbeat_relay); the answer follows. */
int cx_api_agents_heartbeat(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id"), *via = NULL;
    h2o_iovec_t body = r->req->entity;
    int64_t now = cx_wall_ms();
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    int rc;

    if (bad_id(r, id))
        return 0;
    if (cx_heartbeat_check(r->body, body.len, id, &hb, &err) != CX_OK) {
        cx_heartbeat_rejected("rest", id, &err);
        if (err.too_large)
            return cx_reply_error(r, 413, "PAYLOAD_TOO_LARGE", err.msg, NULL);
        return cx_reply_validation(r, err.field, err.msg);
    }
    if (cx_redis_available()) {
        beat_wait_t *w = cx_calloc(1, sizeof(*w));
        w->r = r;
        w->now = now;
        cx_req_defer(r, on_beat_abort, w);
        cx_heartbeat_relay(&hb, body.base, body.len, now, on_beat_done, w);
        cx_req_soon(r, cx_redis_batch_run);
        return 0;
    }
    rc = cx_heartbeat_receive(&hb, body.base, body.len, now, &via); /* Redis is down: MySQL now */
    cx_heartbeat_free(&hb);
    return reply_beat(r, rc, via, now);
}
