/*
 * api.h -- the handlers, one file per resource under src/api/, and the route table that names them
 * (src/api/routes.c). The HTTP core (http.h) serves the table it is given; the api layer is above it.
 */
#ifndef CONDUIX_API_H
#define CONDUIX_API_H

#include "conduix/http.h"
#include "conduix/router.h"

/* health.c */
int cx_api_health(cx_req_t *r);
int cx_api_ready(cx_req_t *r);
/* metrics.c */
int cx_api_metrics(cx_req_t *r);

/* agents.c (agent registry, heartbeats) */
int cx_api_agents_list(cx_req_t *r);
int cx_api_agents_get(cx_req_t *r);
int cx_api_agents_status(cx_req_t *r);
int cx_api_agents_heartbeat(cx_req_t *r);

/* commands.c (the command outbox, seen by agents) */
int cx_api_commands_list(cx_req_t *r);
int cx_api_commands_ack(cx_req_t *r);

/* pipelines.c (definitions and versions) */
int cx_api_pipelines_list(cx_req_t *r);
int cx_api_pipelines_create(cx_req_t *r);
int cx_api_pipelines_get(cx_req_t *r);
int cx_api_pipelines_update(cx_req_t *r);
int cx_api_pipelines_delete(cx_req_t *r);
int cx_api_pipelines_versions(cx_req_t *r);

/* lifecycle.c (runs on agents) */
int cx_api_pipelines_start(cx_req_t *r);
int cx_api_pipelines_stop(cx_req_t *r);
int cx_api_pipelines_pause(cx_req_t *r);
int cx_api_pipelines_resume(cx_req_t *r);
int cx_api_pipelines_status(cx_req_t *r);
int cx_api_pipelines_history(cx_req_t *r);
int cx_api_pipelines_metrics(cx_req_t *r);
/* cx_api_run_answer -- the answer to a start or control call's outcome (rc, res of runs.h): 200, or 202
 * with the command queued, 404, 409 INVALID_STATE / NO_AGENT_AVAILABLE with res->message, or the data
 * layer's codes. */
struct cx_runs_result;
int cx_api_run_answer(cx_req_t *r, int rc, struct cx_runs_result *res);

/* schedules.c (cron schedules) */
int cx_api_schedules_list(cx_req_t *r);
int cx_api_schedules_create(cx_req_t *r);
int cx_api_schedules_get(cx_req_t *r);
int cx_api_schedules_update(cx_req_t *r);
int cx_api_schedules_delete(cx_req_t *r);
int cx_api_schedules_enable(cx_req_t *r);
int cx_api_schedules_disable(cx_req_t *r);
int cx_api_schedules_trigger(cx_req_t *r);

/* fields.c (the checks of request bodies that several resources share) */
/* cx_api_fail_field -- record the message of a bad field in details. */
void cx_api_fail_field(json_object *details, const char *field, const char *msg);
/* cx_api_string_field -- v as a string without NUL bytes (its length in *len), or NULL after recording why. */
const char *cx_api_string_field(json_object *details, const char *key, json_object *v, size_t *len);
/* cx_api_invalid_body -- 400 VALIDATION_ERROR whose message names every bad field of details (taken). */
int cx_api_invalid_body(cx_req_t *r, json_object *details);

/* auth.c (sign-in, logout, the caller) */
int cx_api_auth_providers(cx_req_t *r);
int cx_api_auth_login_redirect(cx_req_t *r);
int cx_api_auth_login(cx_req_t *r);
int cx_api_auth_callback(cx_req_t *r);
int cx_api_auth_logout(cx_req_t *r);
int cx_api_auth_me(cx_req_t *r);
/* cx_api_login_body -- the check of a POST /auth/login body {"provider": "…"} (pure; fuzzed): CX_OK with
 * *provider (in body), or CX_INVALID with the field at fault and why. Whether the provider is configured
 * is the handler's question. */
int cx_api_login_body(json_object *body, const char **provider, const char **field, const char **why);

/* users.c (people and their sessions, for admins) */
int cx_api_users_list(cx_req_t *r);
int cx_api_users_get(cx_req_t *r);
int cx_api_users_update(cx_req_t *r);
int cx_api_users_sessions(cx_req_t *r);
int cx_api_sessions_delete(cx_req_t *r);
/* cx_api_users_update_body -- the check of a PUT /users/:id body {"role": "viewer"|"operator"|"admin"}
 * (pure; fuzzed): CX_OK with *role (in body), or CX_INVALID with the field at fault and why. */
int cx_api_users_update_body(json_object *body, const char **role, const char **field, const char **why);

/* The route table (src/api/routes.c): every endpoint, its handler and who may call it. */
extern const cx_route_t cx_routes[];
extern const size_t cx_nroutes;

#endif
