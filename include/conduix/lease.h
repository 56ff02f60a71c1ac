/*
 * lease.h -- a lease in Redis (src/redis/lease.c): one holder at a time for a key, held while it renews
 * before the lease runs out. The scheduler's leader election (conduix:scheduler:leader) uses it; what
 * makes a fire happen once is in MySQL (the claim of schedules.h), so a lease that two processes believe
 * they hold, or none, costs work, never a duplicate.
 */
#ifndef CONDUIX_LEASE_H
#define CONDUIX_LEASE_H

#include <stdint.h>

/* cx_redis_lease_take -- take key for token for ttl_ms when nobody holds it (SET NX PX), or renew it when
 * token holds it (a compare-and-pexpire script). CX_OK: token holds it for ttl_ms from now; CX_STATE:
 * another token holds it; CX_UNAVAIL: Redis did not answer. */
int cx_redis_lease_take(const char *key, const char *token, int64_t ttl_ms);

/* cx_redis_lease_release -- give key up when token holds it (compare-and-delete). CX_OK (also when it
 * was not held), CX_UNAVAIL. */
int cx_redis_lease_release(const char *key, const char *token);

#endif
