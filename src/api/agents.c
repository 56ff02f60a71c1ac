/*
 * src/api/agents.c -- the agent registry endpoints: list, one agent (with its active runs), its status,
 * and the REST heartbeat fallback. The status shown is the one hbmon recorded (with a transition row),
 * never recomputed here. The command endpoints of agents live in commands.c.
 */
#include <stdio.h>
#include <string.h>

#include "conduix/agents.h"
#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/reply.h"

int cx_api_agents_list(cx_req_t *r)
{
    const char *status = cx_req_query(r, "status");
    json_object *items;
    int64_t total;
    int page, size, rc;

    if (cx_api_paging(r, &page, &size) != CX_OK)
        return 0;
    if (status != NULL && !cx_agent_status_valid(status))
        return cx_reply_validation(r, "status", "status must be one of online, offline, unknown");
    if ((rc = cx_db_agents_list(status, page, size, &items, &total)) != CX_OK)
        return cx_reply_status_for(r, rc, "agents");
    return cx_reply_page(r, items, total, page, size);
}

int cx_api_agents_get(cx_req_t *r)
{
    json_object *agent;
    int rc;

    if ((rc = cx_db_agent_get(cx_req_param(r, "id"), &agent)) != CX_OK)
        return cx_reply_status_for(r, rc, "agent");
    return cx_reply_ok(r, 200, agent, NULL);
}

int cx_api_agents_status(cx_req_t *r)
{
    json_object *st;
    int rc;

    if ((rc = cx_db_agent_status(cx_req_param(r, "id"), &st)) != CX_OK)
        return cx_reply_status_for(r, rc, "agent");
    return cx_reply_ok(r, 200, st, NULL);
}

/* cx_api_agents_heartbeat -- POST /agents/:id/heartbeat: the body is parsed again by the heartbeat
 * parser (the same rules as for a Redis key: size cap, UTF-8, agent_id equal to the URL's id). */
int cx_api_agents_heartbeat(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id"), *via = NULL;
    h2o_iovec_t body = r->req->entity;
    int64_t now = cx_wall_ms();
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    json_object *data;
    char at[32];
    int rc;

    if (cx_heartbeat_parse(body.base, body.len, id, &hb, &err) != CX_OK) {
        cx_heartbeat_rejected("rest", id, &err);
        if (err.too_large)
            return cx_reply_error(r, 413, "PAYLOAD_TOO_LARGE", err.msg, NULL);
        return cx_reply_validation(r, err.field, err.msg);
    }
    rc = cx_heartbeat_receive(&hb, body.base, body.len, now, &via);
    cx_heartbeat_free(&hb);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "heartbeat");
    cx_agent_ms_format(now, at);
    data = json_object_new_object();
    json_object_object_add(data, "agent_id", json_object_new_string(id));
    json_object_object_add(data, "received_at", json_object_new_string(at));
    json_object_object_add(data, "via", json_object_new_string(via));
    return cx_reply_ok(r, 200, data, NULL);
}
