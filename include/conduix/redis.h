/*
 * redis.h -- this process's Redis connection (hiredis, synchronous, with connect and command timeouts)
 * behind a circuit breaker, so that no request waits on a dead Redis: while the breaker is open, calls
 * fail at once with NULL.
 */
#ifndef CONDUIX_REDIS_H
#define CONDUIX_REDIS_H

#include <hiredis.h>
#include "conduix/config.h"
#include "conduix/breaker.h"

/* cx_redis_open -- set up (after fork); connects lazily on first use. */
int cx_redis_open(const cx_config_t *cfg);
void cx_redis_close(void);

/* cx_redis_cmd -- run one command (hiredis format). Returns the reply (freeReplyObject it) or NULL when
 * Redis is unavailable (breaker open, connect failure, I/O error or timeout). An ERROR reply is returned
 * as a reply (not a failure of the connection). */
redisReply *cx_redis_cmd(const char *fmt, ...);
redisReply *cx_redis_cmdargv(int argc, const char **argv, const size_t *argvlen);

/* cx_redis_pipeline -- send n commands given as argv vectors, then read n replies into replies[] (NULL on
 * failure). CX_OK, or CX_UNAVAIL with all replies NULL. */
int cx_redis_pipeline(int n, int *argcs, const char ***argvs, const size_t **argvlens, redisReply **replies);

/* cx_redis_batch_add -- append a command (argv form; copied) to this process's batch, to be sent with the
 * others in one round trip by cx_redis_batch_run, which then calls done(reply, arg) for each command, in
 * order: reply is NULL when Redis was unavailable or the round trip failed before its reply (the commands
 * before it got theirs), and is freed when done returns. A worker runs the batch at the end of each turn
 * of its loop (server.c, cx_req_soon). */
typedef void (*cx_redis_done_fn)(redisReply *reply, void *arg);
void cx_redis_batch_add(int argc, const char **argv, const size_t *argvlen, cx_redis_done_fn done, void *arg);
size_t cx_redis_batch_pending(void);
void cx_redis_batch_run(void);

/* cx_redis_available -- 1 when the breaker is not open (cheap, no I/O). */
int cx_redis_available(void);

/* cx_redis_ping -- CX_OK when PING succeeds now (subject to the breaker). */
int cx_redis_ping(void);

/* cx_redis_breaker -- this process's breaker (for /ready and metrics). */
const cx_breaker_t *cx_redis_breaker(void);

/* cx_redis_status -- from the breaker, no I/O: "ok", "degraded" (half-open, open with its cooldown over,
 * or failures since the last success) or "down" (open). For /ready. */
const char *cx_redis_status(void);

/* cx_redis_connect_new -- a separate connection (e.g. for SUBSCRIBE), AUTH and SELECT done, or NULL after
 * logging; outside the breaker. timeout_ms > 0 bounds the connect and every read and write; timeout_ms <= 0
 * uses redis.timeout for the connect and leaves reads blocking (a SUBSCRIBE loop waiting for messages). */
redisContext *cx_redis_connect_new(const cx_config_t *cfg, int64_t timeout_ms);

#endif
