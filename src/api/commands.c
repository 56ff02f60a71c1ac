/*
 * src/api/commands.c -- the command outbox as agents see it over REST (the fallback of the Redis
 * channels): GET /agents/:id/commands (unacknowledged, unexpired, oldest first) and
 * POST /agents/:id/commands/:command_id/ack. Access (the agent's own token, or an admin) is decided by
 * the route table.
 */
#include <string.h>

#include "conduix/agentmsg.h"
#include "conduix/agents.h"
#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/commands.h"
#include "conduix/reply.h"
#include "conduix/runs.h"
#include "conduix/shapes.h"
#include "conduix/shm.h"

/* cx_api_commands_list -- each outstanding command as its protocol message (timestamp = when it was
 * written, attempt = publishes so far) plus what the API adds. */
int cx_api_commands_list(cx_req_t *r)
{
    const char *agent = cx_req_param(r, "id");
    cx_command_t *v;
    json_object *arr;
    size_t n;
    int rc;

    if (!cx_agent_id_valid(agent, strlen(agent)))
        return cx_reply_validation(r, "id", "is not a valid agent id");
    if ((rc = cx_db_commands_outstanding(agent, &v, &n)) != CX_OK)
        return cx_reply_status_for(r, rc, "agent");
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        json_object *o = cx_command_wire_json(&v[i], v[i].attempts, v[i].created_at);
        json_object_object_add(o, "agent_id", json_object_new_string(v[i].agent_id));
        json_object_object_add(o, "run_id", cx_json_nonempty_or_null(v[i].run_id));
        json_object_object_add(o, "status", json_object_new_string(cx_command_status_name(v[i].status)));
        json_object_object_add(o, "attempts", json_object_new_int(v[i].attempts));
        json_object_object_add(o, "created_at", cx_json_time(v[i].created_at));
        json_object_array_add(arr, o);
    }
    cx_db_commands_free(v, n);
    return cx_reply_ok(r, 200, arr, NULL);
}

/* cx_api_commands_ack -- POST /agents/:id/commands/:command_id/ack: the body checked by the same rules
 * as an acknowledgement over Redis (agentmsg.h), strictly: unknown fields, and text that is not UTF-8
 * or holds a NUL, are a 400 naming the field; a text longer than a column is stored cut, with a mark. */
int cx_api_commands_ack(cx_req_t *r)
{
    const char *agent = cx_req_param(r, "id"), *cmd_id = cx_req_param(r, "command_id");
    cx_msg_error_t err;
    cx_command_t cmd;
    cx_ack_t ack;
    json_object *o;
    int rc;

    if (!cx_agent_id_valid(agent, strlen(agent)))
        return cx_reply_validation(r, "id", "is not a valid agent id");
    if (r->body == NULL)
        return cx_reply_validation(r, "success", "is required (a boolean)");
    if (!json_object_is_type(r->body, json_type_object))
        return cx_reply_error(r, 400, "VALIDATION_ERROR", "the request body must be a JSON object", NULL);
    if (cx_ack_check(r->body, CX_MSG_REST, agent, cmd_id, &ack, &err) != CX_OK) {
        cx_agent_msg_rejected("ack", "rest", agent, strlen(agent), &err);
        return cx_reply_validation(r, err.field, err.msg);
    }
    if (ack.fixed)
        cx_shm_count(CX_C_AGENT_TEXTS_FIXED, 1);
    rc = cx_runs_ack(agent, cmd_id, ack.success, ack.message, ack.error, &cmd);
    cx_ack_free(&ack);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "command");
    o = cx_command_json(&cmd);
    cx_command_free(&cmd);
    return cx_reply_ok(r, 200, o, NULL);
}
