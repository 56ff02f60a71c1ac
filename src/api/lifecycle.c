/*
 * src/api/lifecycle.c -- runs of a pipeline on agents: POST /pipelines/:id/start|stop|pause|resume and
 * GET /pipelines/:id/status|history|metrics, plus the hook DELETE /pipelines/:id?force=true uses to stop
 * an active run. The work is in src/runs.c and src/db/runs.c, whose structs these handlers turn into
 * answers; a command that could not be published at once (Redis down) is answered 202 with
 * command.status "queued".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/agents.h"
#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/pipelines.h"
#include "conduix/reply.h"
#include "conduix/runs.h"
#include "conduix/shapes.h"
#include "conduix/shm.h"
#include "conduix/log.h"

#define HISTORY_LIMIT_DEFAULT 50
#define HISTORY_LIMIT_MAX 500

/* check_body -- the optional body: an object with only the fields in allowed (NULL-terminated); an
 * agent_id, when allowed and given, is a valid agent id (null = not given). */
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
            /* by its length, not up to a NUL, and never echoed unless it is a valid agent id */
            if (!json_object_is_type(val, json_type_string) ||
                !cx_agent_id_valid(json_object_get_string(val), (size_t)json_object_get_string_len(val))) {
                cx_reply_validation(r, "agent_id", "must be a string of 1 to 255 bytes of printable UTF-8 without spaces");
                return CX_INVALID;
            }
            *agent_id = json_object_get_string(val);
        }
    }
    return CX_OK;
}

/* cx_api_run_answer -- the reply for a lifecycle call's outcome (also a schedule's trigger). */
int cx_api_run_answer(cx_req_t *r, int rc, cx_runs_result_t *res)
{
    json_object *data;
    int delivered = res->delivered;

    switch (rc) {
    case CX_OK:
        data = json_object_new_object();
        json_object_object_add(data, "run", cx_run_json(&res->run));
        json_object_object_add(data, "command", cx_command_json(&res->command));
        return cx_reply_ok(r, delivered ? 200 : 202, data,
                           delivered ? NULL
                                     : "command queued: the dispatcher delivers it (Redis unavailable, or a delivery to "
                                       "this agent already in progress)");
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

/* ---- starts, grouped ---- */

/* A start waiting for the end of the loop turn: what it needs copied (the request may end first), and
 * the request to answer (NULL once it has ended: the start is made all the same, as one whose answer
 * could not be delivered). */
typedef struct waiting_start {
    cx_req_t *r;
    char pipeline_id[37];
    char *agent_id, *actor, *request_id;
} waiting_start_t;

#define START_GROUP_MAX 64 /* starts given to the run service as one batch; more wait for the next */
static waiting_start_t *starts[START_GROUP_MAX];
static size_t nstarts;

static void on_start_abort(void *arg)
{
    ((waiting_start_t *)arg)->r = NULL;
}

/* run_starts -- the starts this turn of the loop collected: one batch of the run service
 * (cx_runs_start_many: one transaction, one pipelined publish after the commit; a pipeline twice in the
 * batch meets its first start's run and is refused as any second start), then each answer. */
static void run_starts(void)
{
    cx_runs_start_opts_t o[START_GROUP_MAX];
    cx_runs_result_t res[START_GROUP_MAX];
    waiting_start_t *w[START_GROUP_MAX];
    int rcs[START_GROUP_MAX];
    size_t n = nstarts;

    if (n == 0)
        return;
    memcpy(w, starts, n * sizeof(*w)); // NOLINT(bugprone-sizeof-expression): an array of pointers, copied as pointers
    nstarts = 0;
    memset(o, 0, n * sizeof(*o));
    for (size_t i = 0; i < n; i++) {
        o[i].pipeline_id = w[i]->pipeline_id;
        o[i].agent_id = w[i]->agent_id;
        o[i].actor = w[i]->actor;
        o[i].request_id = w[i]->request_id;
    }
    cx_shm_count(CX_C_API_START_BATCHES, 1);
    cx_shm_count(CX_C_API_STARTS_BATCHED, n);
    if (n > 1)
        cx_log_debug("%zu starts of one loop turn as one batch", n);
    cx_runs_start_many(o, n, res, rcs); /* a batch that could not be done at all: each rcs[i] says why */
    for (size_t i = 0; i < n; i++) {
        if (w[i]->r != NULL)
            cx_api_run_answer(w[i]->r, rcs[i], &res[i]);
        cx_runs_result_free(&res[i]);
        free(w[i]->agent_id);
        free(w[i]->actor);
        free(w[i]->request_id);
        free(w[i]);
    }
}

/* cx_api_pipelines_start -- POST /pipelines/:id/start: checked here, then started with the other starts
 * of this turn of the worker's loop (run_starts, at the end of the turn): starts that arrive together
 * share one transaction and one Redis round trip, each with its own answer and audit row. A start alone
 * is a batch of one, at once. */
int cx_api_pipelines_start(cx_req_t *r)
{
    static const char *const allowed[] = {"agent_id", NULL};
    const char *id = cx_req_param(r, "id"), *agent_id;
    waiting_start_t *w;

    if (check_body(r, allowed, &agent_id) != CX_OK)
        return 0;
    if (!cx_pipeline_id_valid(id)) /* no such pipeline can exist */
        return cx_reply_error(r, 404, "NOT_FOUND", "pipeline not found", NULL);
    if (nstarts == START_GROUP_MAX)
        run_starts(); /* a full group goes now */
    w = cx_calloc(1, sizeof(*w));
    w->r = r;
    memcpy(w->pipeline_id, id, sizeof(w->pipeline_id));
    w->agent_id = agent_id != NULL ? cx_strdup(agent_id) : NULL;
    w->actor = cx_strdup(cx_req_actor(r));
    w->request_id = cx_strdup(r->request_id);
    starts[nstarts++] = w;
    cx_req_defer(r, on_start_abort, w);
    cx_req_soon(r, run_starts);
    return 0;
}

static int control(cx_req_t *r, cx_command_type_t type)
{
    static const char *const allowed[] = {NULL};
    cx_runs_result_t res;
    int rc;

    if (check_body(r, allowed, NULL) != CX_OK)
        return 0;
    rc = cx_runs_control(cx_req_param(r, "id"), type, cx_req_actor(r), r->request_id, &res);
    rc = cx_api_run_answer(r, rc, &res);
    cx_runs_result_free(&res);
    return rc;
}

int cx_api_pipelines_stop(cx_req_t *r)
{
    return control(r, CX_CMD_STOP_PIPELINE);
}

int cx_api_pipelines_pause(cx_req_t *r)
{
    return control(r, CX_CMD_PAUSE_PIPELINE);
}

int cx_api_pipelines_resume(cx_req_t *r)
{
    return control(r, CX_CMD_RESUME_PIPELINE);
}

int cx_api_pipelines_status(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_pipeline_state_t st;
    int rc;

    if ((rc = cx_db_runs_status(id, &st)) != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    json_object *o = cx_pipeline_state_json(id, &st);
    cx_pipeline_state_free(&st);
    return cx_reply_ok(r, 200, o, NULL);
}

/* history_query -- ?limit= (1..500, default 50), ?before= (a run id), ?status= (a run status). CX_OK,
 * or a 400 naming the parameter was sent. */
static int history_query(cx_req_t *r, cx_run_query_t *q)
{
    const char *limit = cx_req_query(r, "limit"), *status = cx_req_query(r, "status");
    char msg[64];

    q->pipeline_id = cx_req_param(r, "id");
    q->limit = HISTORY_LIMIT_DEFAULT;
    q->before = cx_req_query(r, "before");
    if (limit != NULL) {
        long v = cx_query_number(limit, HISTORY_LIMIT_MAX);
        if (v < 1) {
            snprintf(msg, sizeof(msg), "must be an integer from 1 to %d", HISTORY_LIMIT_MAX);
            cx_reply_validation(r, "limit", msg);
            return CX_INVALID;
        }
        q->limit = (int)v;
    }
    if (q->before != NULL && !cx_pipeline_id_valid(q->before)) {
        cx_reply_validation(r, "before", "must be the id of a run (a UUID)");
        return CX_INVALID;
    }
    if (status != NULL) {
        if (cx_run_status_parse(status, &q->status) != CX_OK) {
            cx_reply_validation(r, "status", "must be one of pending, running, paused, completed, failed, stopped, lost");
            return CX_INVALID;
        }
        q->has_status = 1;
    }
    return CX_OK;
}

int cx_api_pipelines_history(cx_req_t *r)
{
    cx_run_query_t q = {0};
    cx_run_t *runs;
    json_object *arr;
    size_t n;
    int rc;

    if (history_query(r, &q) != CX_OK)
        return 0;
    rc = cx_db_runs_history(&q, &runs, &n);
    if (rc == CX_INVALID)
        return cx_reply_validation(r, "before", "no run of this pipeline has this id");
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, cx_run_json(&runs[i]));
    cx_db_runs_free(runs, n);
    return cx_reply_ok(r, 200, arr, NULL);
}

int cx_api_pipelines_metrics(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_run_metrics_t m;
    int rc;

    if ((rc = cx_runs_metrics(id, &m)) != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    json_object *o = cx_run_metrics_json(id, &m);
    cx_run_metrics_free(&m);
    return cx_reply_ok(r, 200, o, NULL);
}

int cx_lifecycle_stop_for_delete(cx_req_t *r, const char *id, int force)
{
    cx_run_t run;
    int rc;

    /* without force the delete's own transaction refuses an active run, under its lock, after undoing a
     * fire written ahead of its time (cx_db_pipeline_delete) */
    if (!force)
        return CX_OK;
    if ((rc = cx_db_run_active(id, 0, &run)) == CX_NOTFOUND)
        return CX_OK;
    if (rc != CX_OK)
        return rc;
    cx_run_free(&run);
    return cx_runs_force_stop(id, cx_req_actor(r), r->request_id);
}
