/*
 * hbmon.c -- the heartbeat monitor child: reads agent heartbeats, keeps the agents table current, marks
 * agents online/offline. XXX: the monitor loop comes with the agents issue; the child already exists, is
 * supervised, holds its own connections and answers signals.
 */
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/redis.h"

static int tick(void *arg)
{
    (void)arg;
    return 0;
}

int cx_hbmon_run(void)
{
    int rc;
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    rc = cx_child_loop(cx_cfg->agents.monitor_interval_ms, tick, NULL);
    cx_db_close();
    cx_redis_close();
    return rc;
}
