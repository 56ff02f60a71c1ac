/*
 * runs.h -- what other children tell the run bookkeeping (src/runs.c): hbmon reports heartbeats and
 * agents going offline; the dispatcher reports acknowledgements and run events.
 */
#ifndef CONDUIX_RUNS_H
#define CONDUIX_RUNS_H

#include <json.h>

/* cx_runs_agent_offline -- an agent went offline: its active runs become `lost`, and with
 * agents.failover they are restarted on another online agent from their last checkpoint. */
int cx_runs_agent_offline(const char *agent_id);

/* cx_runs_heartbeat -- reconcile the agent's active runs with a heartbeat's `pipelines` list and take
 * `pipeline_stats` counts (legacy agents that never acknowledge are followed this way). */
int cx_runs_heartbeat(const char *agent_id, json_object *beat);

#endif
