/*
 * api.h -- the handlers, one file per resource under src/api/, and the request-path helpers of the
 * HTTP core (authentication, body) that the server runs before a handler.
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

/* auth.c (sign-in, logout, the caller) */
int cx_api_auth_providers(cx_req_t *r);
int cx_api_auth_login_redirect(cx_req_t *r);
int cx_api_auth_login(cx_req_t *r);
int cx_api_auth_callback(cx_req_t *r);
int cx_api_auth_logout(cx_req_t *r);
int cx_api_auth_me(cx_req_t *r);
struct cx_user;
json_object *cx_api_user_json(const struct cx_user *u);

/* users.c (people and their sessions, for admins) */
int cx_api_users_list(cx_req_t *r);
int cx_api_users_get(cx_req_t *r);
int cx_api_users_update(cx_req_t *r);
int cx_api_users_sessions(cx_req_t *r);
int cx_api_sessions_delete(cx_req_t *r);

/* authz.c: authenticate the Bearer token and check the route's access. CX_OK, or a reply was sent. */
int cx_authz_request(cx_req_t *r, const cx_route_t *route);

/* body.c: check size and Content-Type, parse the JSON body into r->body. CX_OK, or a reply was sent. */
int cx_body_parse(cx_req_t *r, const cx_route_t *route);

/* accesslog.c: one JSON line per request, and the request metrics. */
void cx_access_log(cx_req_t *r);

/* server.c: per-process HTTP state. */
int cx_server_init(h2o_globalconf_t *config);
/* errors.c: h2o's own error responses rewritten into the envelope (a filter on path and the fallback). */
void cx_server_errors(h2o_hostconf_t *host, h2o_pathconf_t *path);

/* Paging helper for list handlers: reads ?page= and ?page_size= (defaults 1 and 20, size 1..100);
 * a bad value is a 400 reply and CX_INVALID. */
int cx_api_paging(cx_req_t *r, int *page, int *page_size);

#endif
