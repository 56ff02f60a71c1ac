/*
 * health.c -- /health (the process serves) and /ready (MySQL answers, and a process of every kind the
 * kinds table marks CX_KIND_READY is up; Redis down alone is "degraded" but ready). No envelope: load
 * balancers and probes read these.
 */
#include <stdint.h>
#include <string.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/redis.h"
#include "conduix/reply.h"
#include "conduix/shm.h"

int cx_api_health(cx_req_t *r)
{
    static const char pre[] = "{\"status\":\"ok\",\"version\":\"" CX_VERSION "\",\"uptime_seconds\":";
    int64_t up = cx_shm != NULL ? (cx_wall_ms() - cx_shm->started_ms) / 1000 : 0;
    uint64_t u = up > 0 ? (uint64_t)up : 0;
    char body[sizeof(pre) + 24], num[24], *e = num + sizeof(num), *d = e;

    /* put together by hand: snprintf was a tenth of a worker's own instructions on /health */
    do
        *--d = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    memcpy(body, pre, sizeof(pre) - 1);
    memcpy(body + sizeof(pre) - 1, d, (size_t)(e - d));
    body[sizeof(pre) - 1 + (size_t)(e - d)] = '}';
    return cx_reply_raw(r, 200, "application/json; charset=utf-8", body, sizeof(pre) + (size_t)(e - d));
}

int cx_api_ready(cx_req_t *r)
{
    json_object *o = json_object_new_object(), *checks = json_object_new_object();
    int db = cx_db_ping();
    int ready = db == CX_OK;
    const char *redis = cx_redis_ping() == CX_OK ? "ok" : "degraded";

    json_object_object_add(checks, "database", json_object_new_string(db == CX_OK ? "ok" : "unavailable"));
    json_object_object_add(checks, "redis", json_object_new_string(redis));
    for (int k = 0; k < CX_KIND_MAX; k++) {
        if (!(cx_kinds[k].flags & CX_KIND_READY))
            continue;
        int up = cx_shm_kind_up((cx_kind_t)k);
        ready = ready && up;
        json_object_object_add(checks, cx_kinds[k].name, json_object_new_string(up ? "ok" : "down"));
    }
    json_object_object_add(o, "status", json_object_new_string(ready ? "ready" : "not_ready"));
    json_object_object_add(o, "checks", checks);
    if (!ready)
        cx_reply_add_header(r, "retry-after", "5");
    return cx_reply_json_raw(r, ready ? 200 : 503, o);
}
