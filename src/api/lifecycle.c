/*
 * src/api/lifecycle.c -- runs of a pipeline on agents: POST /pipelines/:id/start|stop|pause|resume and
 * GET /pipelines/:id/status|history|metrics, plus the hook DELETE /pipelines/:id?force=true uses to stop
 * an active run. The work is in src/runs.c and src/db/runs.c; a command that could not be published at
 * once (Redis down) is answered 202 with command.status "queued".
 */
#include <string.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/pipelines.h"
#include "conduix/reply.h"
#include "conduix/runs.h"

/* check_body -- the optional body: an object with only the fields in allowed (NULL-terminated); an
 * agent_id, when allowed and given, is a string of 1..255 bytes (null = not given). */
static int check_body(cx_req_t *r, const char *const *allowed, const char **agent_id)
{
    char msg[320];

    if (agent_id)
        *agent_id = NULL;
    if (r->body == NULL)
        return CX_OK;
    if (!json_object_is_type(r->body, json_type_object)) {
        cx_reply_error(r, 400, "VALIDATION_ERROR", "the request body must be a JSON object", NULL);
        return CX_INVALID;
    }
    json_object_object_foreach(r->body, key, val)
    {
        size_t i;
        for (i = 0; allowed[i] != NULL && strcmp(allowed[i], key) != 0; i++)
            ;
        if (allowed[i] == NULL) {
            snprintf(msg, sizeof(msg), "unknown field%s%s", allowed[0] ? "; allowed: " : " (this request takes no fields)",
                     allowed[0] ? allowed[0] : "");
            cx_reply_validation(r, key, msg);
            return CX_INVALID;
        }
        if (agent_id != NULL && strcmp(key, "agent_id") == 0 && val != NULL) {
            if (!json_object_is_type(val, json_type_string) || json_object_get_string_len(val) == 0 ||
                json_object_get_string_len(val) > 255) {
                cx_reply_validation(r, "agent_id", "must be a string of 1 to 255 characters");
                return CX_INVALID;
            }
            *agent_id = json_object_get_string(val);
        }
    }
    return CX_OK;
}

/* answer -- the reply for a lifecycle call's outcome. */
static int answer(cx_req_t *r, int rc, cx_runs_result_t *res)
{
    json_object *data;
    int delivered = res->delivered;

    switch (rc) {
    case CX_OK:
        data = json_object_new_object();
        json_object_object_add(data, "run", res->run);
        json_object_object_add(data, "command", res->command);
        res->run = res->command = NULL;
        return cx_reply_ok(r, delivered ? 200 : 202, data,
                           delivered ? NULL : "command queued: it is delivered when Redis is available");
    case CX_NOTFOUND:
        return cx_reply_error(r, 404, "NOT_FOUND", "pipeline not found", NULL);
    case CX_STATE:
        return cx_reply_error(r, 409, "INVALID_STATE",
                              res->message[0] ? res->message : "pipeline is not in a state that allows this", NULL);
    case CX_NOAGENT:
        return cx_reply_error(r, 409, "NO_AGENT_AVAILABLE", res->message[0] ? res->message : "no agent is online", NULL);
    default:
        return cx_reply_status_for(r, rc, "pipeline");
    }
}

int cx_api_pipelines_start(cx_req_t *r)
{
    static const char *const allowed[] = {"agent_id", NULL};
    cx_runs_result_t res;
    const char *agent_id;
    int rc;

    if (check_body(r, allowed, &agent_id) != CX_OK)
        return 0;
    rc = cx_runs_start(cx_req_param(r, "id"), agent_id, cx_req_actor(r), r->request_id, &res);
    rc = answer(r, rc, &res);
    cx_runs_result_free(&res);
    return rc;
}

static int control(cx_req_t *r, const char *type)
{
    static const char *const allowed[] = {NULL};
    cx_runs_result_t res;
    int rc;

    if (check_body(r, allowed, NULL) != CX_OK)
        return 0;
    rc = cx_runs_control(cx_req_param(r, "id"), type, cx_req_actor(r), r->request_id, &res);
    rc = answer(r, rc, &res);
    cx_runs_result_free(&res);
    return rc;
}

int cx_api_pipelines_stop(cx_req_t *r)
{
    return control(r, "stop_pipeline");
}

int cx_api_pipelines_pause(cx_req_t *r)
{
    return control(r, "pause_pipeline");
}

int cx_api_pipelines_resume(cx_req_t *r)
{
    return control(r, "resume_pipeline");
}

int cx_api_pipelines_status(cx_req_t *r)
{
    json_object *out;
    int rc = cx_db_runs_status(cx_req_param(r, "id"), &out);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    return cx_reply_ok(r, 200, out, NULL);
}

int cx_api_pipelines_history(cx_req_t *r)
{
    const char *status = cx_req_query(r, "status");
    json_object *items;
    int64_t total = 0;
    int page, size, rc;

    if (cx_api_paging(r, &page, &size) != CX_OK)
        return 0;
    if (status != NULL && !cx_run_status_valid(status))
        return cx_reply_validation(r, "status", "must be one of pending, running, paused, completed, failed, stopped, lost");
    rc = cx_db_runs_history(cx_req_param(r, "id"), status, page, size, &items, &total);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    return cx_reply_page(r, items, total, page, size);
}

int cx_api_pipelines_metrics(cx_req_t *r)
{
    json_object *out;
    int rc = cx_runs_metrics(cx_req_param(r, "id"), &out);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    return cx_reply_ok(r, 200, out, NULL);
}

int cx_lifecycle_stop_for_delete(cx_req_t *r, const char *id, int force)
{
    cx_run_t run;
    int rc = cx_db_run_active(id, 0, &run);

    if (rc == CX_NOTFOUND)
        return CX_OK;
    if (rc != CX_OK)
        return rc;
    cx_run_free(&run);
    if (!force)
        return CX_STATE;
    return cx_runs_force_stop(id, cx_req_actor(r), r->request_id);
}
