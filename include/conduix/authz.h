/*
 * authz.h -- the authorizer of the request path (src/auth/authz.c): authentication of the Bearer token
 * (jwt.h) and the access rule of the route (router.h). The worker hands it to the HTTP core
 * (cx_server_init), which calls it for every route that is not public.
 */
#ifndef CONDUIX_AUTHZ_H
#define CONDUIX_AUTHZ_H

#include "conduix/router.h"

/* cx_authz_request -- authenticate the caller and check the route's access (a cx_authorize_fn). CX_OK,
 * or a 401/403 reply was sent. */
int cx_authz_request(cx_req_t *r, const cx_route_t *route);

#endif
