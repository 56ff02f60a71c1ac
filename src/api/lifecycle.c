/* src/api/lifecycle.c -- XXX placeholder until its issue lands: every handler answers 501. */
#include "conduix/api.h"
#include "conduix/reply.h"

int cx_api_pipelines_start(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_pipelines_stop(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_pipelines_pause(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_pipelines_resume(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_pipelines_status(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_pipelines_history(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

int cx_api_pipelines_metrics(cx_req_t *r)
{
    return cx_reply_error(r, 501, "NOT_IMPLEMENTED", "not implemented yet", NULL);
}

