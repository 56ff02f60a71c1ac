/*
 * src/api/commands.c -- the command outbox as agents see it over REST (the fallback of the Redis
 * channels): GET /agents/:id/commands (unacknowledged, unexpired, oldest first) and
 * POST /agents/:id/commands/:command_id/ack. Access (the agent's own token, or an admin) is decided by
 * the route table.
 */
#include <string.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/commands.h"
#include "conduix/reply.h"
#include "conduix/runs.h"
#include "conduix/shapes.h"

/* cx_api_commands_list -- each outstanding command as its protocol message (timestamp = when it was
 * written, attempt = publishes so far) plus what the API adds. */
int cx_api_commands_list(cx_req_t *r)
{
    cx_command_t *v;
    json_object *arr;
    size_t n;
    int rc = cx_db_commands_outstanding(cx_req_param(r, "id"), &v, &n);

    if (rc != CX_OK)
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

/* opt_str -- an optional string field: CX_OK with *out (NULL when absent or null), or a 400 reply. */
static int opt_str(cx_req_t *r, const char *key, json_object *v, const char **out)
{
    *out = NULL;
    if (v == NULL)
        return CX_OK;
    if (!json_object_is_type(v, json_type_string)) {
        cx_reply_validation(r, key, "must be a string");
        return CX_INVALID;
    }
    *out = json_object_get_string(v);
    return CX_OK;
}

int cx_api_commands_ack(cx_req_t *r)
{
    const char *agent = cx_req_param(r, "id"), *cmd_id = cx_req_param(r, "command_id");
    const char *message = NULL, *error = NULL, *s;
    json_object *success = NULL;
    cx_command_t cmd;
    int rc;

    if (r->body == NULL)
        return cx_reply_validation(r, "success", "is required (a boolean)");
    if (!json_object_is_type(r->body, json_type_object))
        return cx_reply_error(r, 400, "VALIDATION_ERROR", "the request body must be a JSON object", NULL);
    json_object_object_foreach(r->body, key, val)
    {
        if (strcmp(key, "success") == 0) {
            success = val;
        } else if (strcmp(key, "message") == 0) {
            if (opt_str(r, key, val, &message) != CX_OK)
                return 0;
        } else if (strcmp(key, "error") == 0) {
            if (opt_str(r, key, val, &error) != CX_OK)
                return 0;
        } else if (strcmp(key, "command_id") == 0 || strcmp(key, "agent_id") == 0) {
            /* the Redis form of an ack carries them: they must name this URL's command and agent */
            if (opt_str(r, key, val, &s) != CX_OK)
                return 0;
            if (s != NULL && strcmp(s, strcmp(key, "agent_id") == 0 ? agent : cmd_id) != 0)
                return cx_reply_validation(r, key, "does not match the URL");
        } else if (strcmp(key, "timestamp") == 0) {
            if (opt_str(r, key, val, &s) != CX_OK)
                return 0;
            if (s != NULL && cx_time_parse(s) < 0)
                return cx_reply_validation(r, key, "must be an RFC 3339 time");
        } else {
            return cx_reply_validation(r, key, "unknown field; allowed: success, message, error, command_id, agent_id, timestamp");
        }
    }
    if (success == NULL || !json_object_is_type(success, json_type_boolean))
        return cx_reply_validation(r, "success", success == NULL ? "is required (a boolean)" : "must be a boolean");
    rc = cx_runs_ack(agent, cmd_id, json_object_get_boolean(success), message, error, &cmd);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "command");
    json_object *o = cx_command_json(&cmd);
    cx_command_free(&cmd);
    return cx_reply_ok(r, 200, o, NULL);
}
