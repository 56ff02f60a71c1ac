/*
 * routes.c -- the route table: every endpoint, its handler and the least role that may call it.
 * Nothing else decides access (docs/architecture.md, "Request path"). CX_ACCESS_AGENT routes take the agent id as
 * their ":id" parameter.
 */
#include "conduix/api.h"
#include "conduix/router.h"

#define V1 "/api/v1"

const cx_route_t cx_routes[] = {
    {"GET", "/health", cx_api_health, CX_ACCESS_PUBLIC, CX_BODY_NONE, "health"},
    {"GET", "/ready", cx_api_ready, CX_ACCESS_PUBLIC, CX_BODY_NONE, "ready"},
    {"GET", "/metrics", cx_api_metrics, CX_ACCESS_PUBLIC, CX_BODY_NONE, "metrics"},
    {"GET", V1 "/health", cx_api_health, CX_ACCESS_PUBLIC, CX_BODY_NONE, "health"},

    {"GET", V1 "/auth/providers", cx_api_auth_providers, CX_ACCESS_PUBLIC, CX_BODY_NONE, "auth_providers"},
    {"GET", V1 "/auth/login/:provider", cx_api_auth_login_redirect, CX_ACCESS_PUBLIC, CX_BODY_NONE, "auth_login_redirect"},
    {"POST", V1 "/auth/login", cx_api_auth_login, CX_ACCESS_PUBLIC, CX_BODY_JSON, "auth_login"},
    {"GET", V1 "/auth/callback/:provider", cx_api_auth_callback, CX_ACCESS_PUBLIC, CX_BODY_NONE, "auth_callback"},
    {"GET", V1 "/auth/callback", cx_api_auth_callback, CX_ACCESS_PUBLIC, CX_BODY_NONE, "auth_callback_legacy"},
    {"POST", V1 "/auth/logout", cx_api_auth_logout, CX_ACCESS_VIEWER, CX_BODY_JSON_OPTIONAL, "auth_logout"},
    {"GET", V1 "/auth/me", cx_api_auth_me, CX_ACCESS_VIEWER, CX_BODY_NONE, "auth_me"},

    {"GET", V1 "/users", cx_api_users_list, CX_ACCESS_ADMIN, CX_BODY_NONE, "users_list"},
    {"GET", V1 "/users/:id", cx_api_users_get, CX_ACCESS_ADMIN, CX_BODY_NONE, "users_get"},
    {"PUT", V1 "/users/:id", cx_api_users_update, CX_ACCESS_ADMIN, CX_BODY_JSON, "users_update"},
    {"PUT", V1 "/users/:id/role", cx_api_users_update, CX_ACCESS_ADMIN, CX_BODY_JSON, "users_update_role"}, /* the web UI's */
    {"GET", V1 "/users/:id/sessions", cx_api_users_sessions, CX_ACCESS_ADMIN, CX_BODY_NONE, "users_sessions"},
    {"DELETE", V1 "/sessions/:jti", cx_api_sessions_delete, CX_ACCESS_ADMIN, CX_BODY_NONE, "sessions_delete"},

    {"GET", V1 "/pipelines", cx_api_pipelines_list, CX_ACCESS_VIEWER, CX_BODY_NONE, "pipelines_list"},
    {"POST", V1 "/pipelines", cx_api_pipelines_create, CX_ACCESS_OPERATOR, CX_BODY_JSON, "pipelines_create"},
    {"GET", V1 "/pipelines/:id", cx_api_pipelines_get, CX_ACCESS_VIEWER, CX_BODY_NONE, "pipelines_get"},
    {"PUT", V1 "/pipelines/:id", cx_api_pipelines_update, CX_ACCESS_OPERATOR, CX_BODY_JSON, "pipelines_update"},
    {"DELETE", V1 "/pipelines/:id", cx_api_pipelines_delete, CX_ACCESS_OPERATOR, CX_BODY_NONE, "pipelines_delete"},
    {"GET", V1 "/pipelines/:id/versions", cx_api_pipelines_versions, CX_ACCESS_VIEWER, CX_BODY_NONE, "pipelines_versions"},
    {"POST", V1 "/pipelines/:id/start", cx_api_pipelines_start, CX_ACCESS_OPERATOR, CX_BODY_JSON_OPTIONAL, "pipelines_start"},
    {"POST", V1 "/pipelines/:id/stop", cx_api_pipelines_stop, CX_ACCESS_OPERATOR, CX_BODY_JSON_OPTIONAL, "pipelines_stop"},
    {"POST", V1 "/pipelines/:id/pause", cx_api_pipelines_pause, CX_ACCESS_OPERATOR, CX_BODY_JSON_OPTIONAL, "pipelines_pause"},
    {"POST", V1 "/pipelines/:id/resume", cx_api_pipelines_resume, CX_ACCESS_OPERATOR, CX_BODY_JSON_OPTIONAL, "pipelines_resume"},
    {"GET", V1 "/pipelines/:id/status", cx_api_pipelines_status, CX_ACCESS_VIEWER, CX_BODY_NONE, "pipelines_status"},
    {"GET", V1 "/pipelines/:id/history", cx_api_pipelines_history, CX_ACCESS_VIEWER, CX_BODY_NONE, "pipelines_history"},
    {"GET", V1 "/pipelines/:id/metrics", cx_api_pipelines_metrics, CX_ACCESS_VIEWER, CX_BODY_NONE, "pipelines_metrics"},

    {"GET", V1 "/schedules", cx_api_schedules_list, CX_ACCESS_VIEWER, CX_BODY_NONE, "schedules_list"},
    {"POST", V1 "/schedules", cx_api_schedules_create, CX_ACCESS_OPERATOR, CX_BODY_JSON, "schedules_create"},
    {"GET", V1 "/schedules/:id", cx_api_schedules_get, CX_ACCESS_VIEWER, CX_BODY_NONE, "schedules_get"},
    {"PUT", V1 "/schedules/:id", cx_api_schedules_update, CX_ACCESS_OPERATOR, CX_BODY_JSON, "schedules_update"},
    {"DELETE", V1 "/schedules/:id", cx_api_schedules_delete, CX_ACCESS_OPERATOR, CX_BODY_NONE, "schedules_delete"},
    {"POST", V1 "/schedules/:id/enable", cx_api_schedules_enable, CX_ACCESS_OPERATOR, CX_BODY_JSON_OPTIONAL, "schedules_enable"},
    {"POST", V1 "/schedules/:id/disable", cx_api_schedules_disable, CX_ACCESS_OPERATOR, CX_BODY_JSON_OPTIONAL, "schedules_disable"},
    {"POST", V1 "/schedules/:id/trigger", cx_api_schedules_trigger, CX_ACCESS_OPERATOR, CX_BODY_JSON_OPTIONAL, "schedules_trigger"},

    {"GET", V1 "/agents", cx_api_agents_list, CX_ACCESS_VIEWER, CX_BODY_NONE, "agents_list"},
    {"GET", V1 "/agents/:id", cx_api_agents_get, CX_ACCESS_VIEWER, CX_BODY_NONE, "agents_get"},
    {"GET", V1 "/agents/:id/status", cx_api_agents_status, CX_ACCESS_VIEWER, CX_BODY_NONE, "agents_status"},
    {"POST", V1 "/agents/:id/heartbeat", cx_api_agents_heartbeat, CX_ACCESS_AGENT, CX_BODY_JSON, "agents_heartbeat"},
    {"GET", V1 "/agents/:id/commands", cx_api_commands_list, CX_ACCESS_AGENT, CX_BODY_NONE, "agents_commands"},
    {"POST", V1 "/agents/:id/commands/:command_id/ack", cx_api_commands_ack, CX_ACCESS_AGENT, CX_BODY_JSON_OPTIONAL,
     "agents_commands_ack"},
};
const size_t cx_nroutes = sizeof(cx_routes) / sizeof(cx_routes[0]);
