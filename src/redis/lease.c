/*
 * src/redis/lease.c -- leases in Redis (lease.h): SET key token NX PX ttl to take a free lease; the
 * holder renews with a script that extends the key only while it still holds the token, and releases
 * with one that deletes it only then, so a holder whose lease ran out (a frozen process) can neither
 * extend nor delete its successor's.
 */
#include <stdio.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/lease.h"
#include "conduix/log.h"
#include "conduix/redis.h"

#define RENEW_SCRIPT                                                                                                               \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
#define RELEASE_SCRIPT "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"

int cx_redis_lease_take(const char *key, const char *token, int64_t ttl_ms)
{
    redisReply *r;
    char ttl[32];
    int rc;

    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    if ((r = cx_redis_cmd("SET %s %s NX PX %s", key, token, ttl)) == NULL)
        return CX_UNAVAIL;
    rc = r->type == REDIS_REPLY_STATUS ? CX_OK : r->type == REDIS_REPLY_NIL ? CX_STATE : CX_UNAVAIL;
    if (r->type == REDIS_REPLY_ERROR)
        cx_log_warnx("redis: SET %s NX: %.*s", key, (int)r->len, r->str);
    freeReplyObject(r);
    if (rc != CX_STATE)
        return rc;
    if ((r = cx_redis_cmd("EVAL %s 1 %s %s %s", RENEW_SCRIPT, key, token, ttl)) == NULL)
        return CX_UNAVAIL;
    rc = r->type == REDIS_REPLY_INTEGER ? (r->integer == 1 ? CX_OK : CX_STATE) : CX_UNAVAIL;
    if (r->type == REDIS_REPLY_ERROR)
        cx_log_warnx("redis: renewal of %s: %.*s", key, (int)r->len, r->str);
    freeReplyObject(r);
    return rc;
}

int cx_redis_lease_release(const char *key, const char *token)
{
    redisReply *r = cx_redis_cmd("EVAL %s 1 %s %s", RELEASE_SCRIPT, key, token);
    int rc = r != NULL && r->type == REDIS_REPLY_INTEGER ? CX_OK : CX_UNAVAIL;

    if (r != NULL)
        freeReplyObject(r);
    return rc;
}
