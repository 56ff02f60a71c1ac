/* src/api/agents.c -- XXX placeholder until its issue lands: every handler answers 501. */
#include "conduix/api.h"
#include "conduix/reply.h"

int cx_api_agents_list(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_agents_get(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_agents_status(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_agents_heartbeat(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

