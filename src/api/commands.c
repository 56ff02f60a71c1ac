/* src/api/commands.c -- XXX placeholder until its issue lands: every handler answers 501. */
#include "conduix/api.h"
#include "conduix/reply.h"

int cx_api_commands_list(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_commands_ack(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

