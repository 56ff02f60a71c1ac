/*
 * router.h -- the route table: method, pattern with :params, handler, least role. Nothing else decides
 * which handler runs or who may call it.
 */
#ifndef CONDUIX_ROUTER_H
#define CONDUIX_ROUTER_H

#include "conduix/http.h"

typedef int (*cx_handler_fn)(cx_req_t *r);

/* Who may call a route. CX_ACCESS_AGENT: an agent token for the :id of the path, or an admin. */
typedef enum {
    CX_ACCESS_PUBLIC = 0,
    CX_ACCESS_VIEWER,
    CX_ACCESS_OPERATOR,
    CX_ACCESS_ADMIN,
    CX_ACCESS_AGENT,
} cx_access_t;

typedef enum { CX_BODY_NONE = 0, CX_BODY_JSON, CX_BODY_JSON_OPTIONAL } cx_body_t;

typedef struct cx_route {
    const char *method;  /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern; /* "/api/v1/pipelines/:id/start" */
    cx_handler_fn handler;
    cx_access_t access;
    cx_body_t body;
    const char *name; /* metrics label, e.g. "pipelines_start" */
} cx_route_t;

enum { CX_ROUTE_FOUND = 0, CX_ROUTE_NOT_FOUND = -1, CX_ROUTE_BAD_METHOD = -2 };

/* cx_router_match -- find the route for method and path (path without the query). On CX_ROUTE_FOUND fills
 * *index and the params of r (values allocated from pool). On CX_ROUTE_BAD_METHOD, writes the allowed
 * methods, comma-separated, into allow. */
int cx_router_match(const cx_route_t *routes, size_t nroutes, const char *method, size_t method_len, const char *path,
                    size_t path_len, h2o_mem_pool_t *pool, cx_req_t *r, int *index, char *allow, size_t allowlen);

#endif
