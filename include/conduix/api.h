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

/* authz.c: authenticate the Bearer token and check the route's access. CX_OK, or a reply was sent. */
int cx_authz_request(cx_req_t *r, const cx_route_t *route);

/* body.c: check size and Content-Type, parse the JSON body into r->body. CX_OK, or a reply was sent. */
int cx_body_parse(cx_req_t *r, const cx_route_t *route);

/* accesslog.c: one JSON line per request, and the request metrics. */
void cx_access_log(cx_req_t *r);

/* server.c: per-process HTTP state. */
int cx_server_init(h2o_globalconf_t *config);

/* Paging helper for list handlers: reads ?page= and ?page_size= (defaults 1 and 20, size 1..100);
 * a bad value is a 400 reply and CX_INVALID. */
int cx_api_paging(cx_req_t *r, int *page, int *page_size);

#endif
