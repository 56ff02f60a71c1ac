/*
 * dispatcher.c -- the dispatcher child: owns delivery of the agent_commands outbox (publish, redeliver,
 * expire) and listens for acknowledgements and run events. XXX: the loop comes with the pipelines
 * issue; the child already exists, is supervised and answers signals.
 */
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/proc.h"
#include "conduix/redis.h"

static int tick(void *arg)
{
    (void)arg;
    return 0;
}

int cx_dispatcher_run(void)
{
    int rc;
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    rc = cx_child_loop(1000, tick, NULL);
    cx_db_close();
    cx_redis_close();
    return rc;
}
