/*
 * scheduler.c -- the scheduler child: the cron engine that fires pipeline runs exactly once across
 * replicas (leader lease in Redis, compare-and-set on schedules.next_run_at, UNIQUE(schedule_id,
 * scheduled_for)). XXX: the firing loop comes with the schedules issue; the child already exists, is
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

int cx_scheduler_run(void)
{
    int rc;
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    rc = cx_child_loop(1000, tick, NULL);
    cx_db_close();
    cx_redis_close();
    return rc;
}
