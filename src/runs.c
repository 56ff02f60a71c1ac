/*
 * runs.c -- run bookkeeping driven by other children (see runs.h). XXX placeholder until the pipelines
 * issue lands.
 */
#include "conduix/cx.h"
#include "conduix/runs.h"

int cx_runs_agent_offline(const char *agent_id)
{
    (void)agent_id;
    return CX_OK;
}

int cx_runs_heartbeat(const char *agent_id, json_object *beat)
{
    (void)agent_id;
    (void)beat;
    return CX_OK;
}
