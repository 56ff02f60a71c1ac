/*
 * routes.c -- the route table: every endpoint, its handler and the least role that may call it.
 * Nothing else decides access (DESIGN.md, request path).
 */
#include "conduix/api.h"
#include "conduix/router.h"

#define V1 "/api/v1"

const cx_route_t cx_routes[] = {
    {"GET", "/health", cx_api_health, CX_ACCESS_PUBLIC, CX_BODY_NONE, "health"},
    {"GET", "/ready", cx_api_ready, CX_ACCESS_PUBLIC, CX_BODY_NONE, "ready"},
    {"GET", "/metrics", cx_api_metrics, CX_ACCESS_PUBLIC, CX_BODY_NONE, "metrics"},
    {"GET", V1 "/health", cx_api_health, CX_ACCESS_PUBLIC, CX_BODY_NONE, "health"},
};
const size_t cx_nroutes = sizeof(cx_routes) / sizeof(cx_routes[0]);
