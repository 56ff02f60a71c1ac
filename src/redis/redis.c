/*
 * redis.c -- this process's Redis connection: one synchronous hiredis context, connected lazily, with a
 * connect timeout and a per-command I/O timeout (redis.timeout), behind a circuit breaker (breaker.c).
 * While the breaker is open every call returns NULL at once, without I/O, so no request waits on a dead
 * Redis. Any I/O error, timeout or missing reply drops the context (the next allowed call reconnects) and
 * counts as a breaker failure; an ERROR reply is an answer, not a failure of the connection.
 *
 * Every failure counts in conduix_redis_errors_total, every opening of the breaker from closed in
 * conduix_redis_breaker_opens_total. Logging is per transition, not per call: one warning when Redis starts failing, one when the
 * breaker opens, one line when it closes again. A failed half-open probe only logs at debug level.
 *
 * The state is per process (static), set up by cx_redis_open after fork; a process is single-threaded,
 * so nothing here is locked.
 *
 * The batch (cx_redis_batch_add, _run): commands handlers collect during one turn of the worker's event
 * loop, sent together in one round trip at its end (the REST heartbeats of many agents: one write and
 * one read for all of them instead of one each), with the breaker, timeouts and failure handling of
 * cx_redis_pipeline, except that the replies read before a failure are delivered.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/redis.h"
#include "conduix/shm.h"

#define DEFAULT_TIMEOUT_MS 1000
#define BATCH_MAX 256 /* commands sent in one round trip; more go in the next */

static struct {
    int opened;
    char *host;
    int port;
    char *password;
    int db;
    int64_t timeout_ms;
    redisContext *c;
    cx_breaker_t br;
    int failing;           /* a failure was logged and no recovery since */
    int64_t failing_since; /* cx_now_ms of the first failure */
} R;

/* The batch: formatted commands and whom to tell about their replies. */
typedef struct batched {
    char *cmd; /* RESP text (redisFormatCommandArgv) */
    int len;
    cx_redis_done_fn done;
    void *arg;
} batched_t;
static struct {
    batched_t *v;
    size_t n, cap;
} Q;

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* why -- a context's error in words: hiredis reports a read or write timeout as strerror(EAGAIN). */
static const char *why(const redisContext *c)
{
    if (c->err == 0)
        return "no reply";
    if (c->err == REDIS_ERR_IO && (strcmp(c->errstr, strerror(EAGAIN)) == 0 || strcmp(c->errstr, strerror(EWOULDBLOCK)) == 0))
        return "timed out";
    return c->errstr;
}

/* check -- the outcome of a command run during the handshake: 0, or -1 with the reason in err. */
static int check(redisContext *c, redisReply *r, const char *what, char *err, size_t errlen)
{
    if (r == NULL) {
        snprintf(err, errlen, "%s: %s", what, why(c));
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %.*s", what, (int)r->len, r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

/* dial -- a ready context: connected (connect_ms timeout), I/O timeout io_ms (0 = blocking), keepalive,
 * AUTH and SELECT done. NULL with the reason in err; nothing is logged here, the callers decide. */
static redisContext *dial(const char *host, int port, const char *password, int db, int64_t connect_ms, int64_t io_ms, char *err,
                          size_t errlen)
{
    redisContext *c;
    int unix_socket = host[0] == '/';

    if (unix_socket)
        c = redisConnectUnixWithTimeout(host, tv_of(connect_ms));
    else
        c = redisConnectWithTimeout(host, port, tv_of(connect_ms));
    if (c == NULL) {
        snprintf(err, errlen, "connect: out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "connect: %s", c->errstr);
        goto fail;
    }
    if (io_ms > 0 && redisSetTimeout(c, tv_of(io_ms)) != REDIS_OK) {
        snprintf(err, errlen, "set timeout: %s", c->errstr);
        goto fail;
    }
    if (!unix_socket && redisEnableKeepAlive(c) != REDIS_OK) {
        snprintf(err, errlen, "keepalive: %s", c->errstr);
        goto fail;
    }
    if (password != NULL && password[0] != '\0' && check(c, redisCommand(c, "AUTH %s", password), "AUTH", err, errlen) < 0)
        goto fail;
    if (db != 0 && check(c, redisCommand(c, "SELECT %d", db), "SELECT", err, errlen) < 0)
        goto fail;
    return c;

fail:
    redisFree(c);
    return NULL;
}

static void drop(void)
{
    if (R.c != NULL) {
        redisFree(R.c);
        R.c = NULL;
    }
}

/* fail -- record a failure with the breaker and log the transitions it causes.
 * The first failure after a healthy period is logged with its cause; the breaker opening is logged once
 * (in the same line when both happen together); further failures are silent. */
static void fail(const char *cause)
{
    int64_t now = cx_now_ms();
    cx_breaker_state_t before = R.br.state;
    int opened;

    cx_breaker_failure(&R.br, now);
    opened = R.br.state == CX_BREAKER_OPEN && before != CX_BREAKER_OPEN;
    cx_shm_count(CX_C_REDIS_ERRORS, 1);
    if (opened && before == CX_BREAKER_CLOSED)
        cx_shm_count(CX_C_REDIS_BREAKER_OPENS, 1); /* an outage begins; a failed probe re-opening it is not counted */
    if (!R.failing) {
        R.failing = 1;
        R.failing_since = now;
        if (opened)
            cx_log_warnx("redis: %s:%d: %s; circuit breaker open, calls fail fast until a probe in %lld ms", R.host, R.port, cause,
                         (long long)(R.br.open_until - now));
        else
            cx_log_warnx("redis: %s:%d: %s (failure 1 of %d before the circuit breaker opens)", R.host, R.port, cause,
                         R.br.max_failures);
    } else if (opened && before == CX_BREAKER_CLOSED) {
        cx_log_warnx("redis: %s:%d: %s; circuit breaker open after %d consecutive failures, calls fail fast until a probe in "
                     "%lld ms",
                     R.host, R.port, cause, R.br.max_failures, (long long)(R.br.open_until - now));
    } else if (opened) {
        cx_log_debug("redis: %s:%d: probe failed: %s; circuit breaker open again, next probe in %lld ms", R.host, R.port, cause,
                     (long long)(R.br.open_until - now));
    }
}

/* succeed -- record a success; log the recovery once the breaker is closed again. */
static void succeed(void)
{
    int64_t now = cx_now_ms();

    cx_breaker_success(&R.br, now);
    if (R.failing && R.br.state == CX_BREAKER_CLOSED) {
        R.failing = 0;
        cx_log_info("redis: %s:%d: reachable again after %lld ms, circuit breaker closed", R.host, R.port,
                    (long long)(now - R.failing_since));
    }
}

/* begin -- may we talk to Redis now, and is there a context? Connects lazily. */
static int begin(void)
{
    char err[256];

    if (!R.opened) {
        cx_log_errorx("redis: used before cx_redis_open");
        return 0;
    }
    if (!cx_breaker_allow(&R.br, cx_now_ms()))
        return 0;
    if (R.c == NULL) {
        R.c = dial(R.host, R.port, R.password, R.db, R.timeout_ms, R.timeout_ms, err, sizeof(err));
        if (R.c == NULL) {
            fail(err);
            return 0;
        }
    }
    return 1;
}

/* finish -- the outcome of one command: the reply, or NULL after dropping the context. */
static redisReply *finish(redisReply *r)
{
    char err[160];

    if (r != NULL && R.c->err == 0) {
        succeed();
        return r;
    }
    if (r != NULL)
        freeReplyObject(r);
    if (R.c->err == REDIS_ERR_OTHER && strcmp(R.c->errstr, "Invalid format string") == 0) {
        /* Our bug, not Redis's health: no breaker failure. */
        cx_log_errorx("redis: invalid command format string");
        drop();
        return NULL;
    }
    snprintf(err, sizeof(err), "%s", why(R.c));
    drop();
    fail(err);
    return NULL;
}

int cx_redis_open(const cx_config_t *cfg)
{
    cx_redis_close();
    R.host = cx_strdup(cfg->redis.host != NULL && cfg->redis.host[0] != '\0' ? cfg->redis.host : "localhost");
    R.port = cfg->redis.port > 0 ? cfg->redis.port : 6379;
    R.password = cfg->redis.password != NULL ? cx_strdup(cfg->redis.password) : NULL;
    R.db = cfg->redis.db;
    R.timeout_ms = cfg->redis.timeout_ms > 0 ? cfg->redis.timeout_ms : DEFAULT_TIMEOUT_MS;
    cx_breaker_init(&R.br, cfg->redis.cb_failures, cfg->redis.cb_cooldown_ms, cfg->redis.cb_half_open_successes);
    R.failing = 0;
    R.failing_since = 0;
    R.opened = 1;
    return CX_OK;
}

void cx_redis_close(void)
{
    while (Q.n > 0) { /* nothing is sent any more */
        batched_t b = Q.v[--Q.n];
        b.done(NULL, b.arg);
        redisFreeCommand(b.cmd);
    }
    drop();
    free(R.host);
    R.host = NULL;
    if (R.password != NULL) {
        explicit_bzero(R.password, strlen(R.password));
        free(R.password);
        R.password = NULL;
    }
    R.opened = 0;
}

redisReply *cx_redis_cmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    if (!begin())
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(R.c, fmt, ap);
    va_end(ap);
    return finish(r);
}

redisReply *cx_redis_cmdargv(int argc, const char **argv, const size_t *argvlen)
{
    if (!begin())
        return NULL;
    return finish(redisCommandArgv(R.c, argc, argv, argvlen));
}

/* cx_redis_pipeline -- n commands in one round trip.
 * All or nothing: if any reply cannot be read the connection is dropped, the replies already read are
 * freed and every replies[i] is NULL, because the caller cannot tell which commands Redis executed. */
int cx_redis_pipeline(int n, int *argcs, const char ***argvs, const size_t **argvlens, redisReply **replies)
{
    char err[160];
    int i, got = 0;

    for (i = 0; i < n; i++)
        replies[i] = NULL;
    if (n <= 0)
        return CX_OK;
    if (!begin())
        return CX_UNAVAIL;
    for (i = 0; i < n; i++) {
        if (redisAppendCommandArgv(R.c, argcs[i], argvs[i], argvlens != NULL ? argvlens[i] : NULL) != REDIS_OK)
            goto fail;
    }
    for (got = 0; got < n; got++) {
        void *r = NULL;

        if (redisGetReply(R.c, &r) != REDIS_OK || r == NULL)
            goto fail;
        replies[got] = r;
    }
    succeed();
    return CX_OK;

fail:
    for (i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    snprintf(err, sizeof(err), "pipeline: %s", why(R.c));
    drop();
    fail(err);
    return CX_UNAVAIL;
}

int cx_redis_available(void)
{
    if (!R.opened)
        return 0;
    return R.br.state != CX_BREAKER_OPEN || cx_now_ms() >= R.br.open_until;
}

int cx_redis_ping(void)
{
    redisReply *r = cx_redis_cmd("PING");
    int rc;

    if (r == NULL)
        return CX_UNAVAIL;
    rc = r->type == REDIS_REPLY_STATUS ? CX_OK : CX_UNAVAIL;
    freeReplyObject(r);
    return rc;
}

const cx_breaker_t *cx_redis_breaker(void)
{
    return &R.br;
}

/* cx_redis_status -- "ok", "degraded" or "down", from the breaker alone (no I/O).
 * Degraded: half-open, open with the cooldown over (the next call probes), or closed with failures since
 * the last success. */
const char *cx_redis_status(void)
{
    if (!R.opened)
        return "down";
    switch (R.br.state) {
    case CX_BREAKER_CLOSED:
        return R.br.failures > 0 ? "degraded" : "ok";
    case CX_BREAKER_HALF_OPEN:
        return "degraded";
    case CX_BREAKER_OPEN:
        return cx_now_ms() >= R.br.open_until ? "degraded" : "down";
    }
    return "down";
}

redisContext *cx_redis_connect_new(const cx_config_t *cfg, int64_t timeout_ms)
{
    const char *host = cfg->redis.host != NULL && cfg->redis.host[0] != '\0' ? cfg->redis.host : "localhost";
    int port = cfg->redis.port > 0 ? cfg->redis.port : 6379;
    int64_t connect_ms = timeout_ms > 0 ? timeout_ms : cfg->redis.timeout_ms > 0 ? cfg->redis.timeout_ms : DEFAULT_TIMEOUT_MS;
    redisContext *c;
    char err[256];

    c = dial(host, port, cfg->redis.password, cfg->redis.db, connect_ms, timeout_ms > 0 ? timeout_ms : 0, err, sizeof(err));
    if (c == NULL)
        cx_log_warnx("redis: %s:%d: %s", host, port, err);
    return c;
}

void cx_redis_batch_add(int argc, const char **argv, const size_t *argvlen, cx_redis_done_fn done, void *arg)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

    if (len < 0) {
        cx_log_errorx("redis: cannot format a command of the batch");
        done(NULL, arg);
        return;
    }
    if (Q.n == Q.cap) {
        Q.cap = Q.cap ? 2 * Q.cap : 16;
        Q.v = cx_realloc(Q.v, Q.cap * sizeof(*Q.v));
    }
    Q.v[Q.n].cmd = cmd;
    Q.v[Q.n].len = len;
    Q.v[Q.n].done = done;
    Q.v[Q.n].arg = arg;
    Q.n++;
}

size_t cx_redis_batch_pending(void)
{
    return Q.n;
}

/* batch_round -- send the first n commands of the batch, read their replies; how many were read (the
 * rest failed). */
static size_t batch_round(size_t n, redisReply **replies)
{
    char err[160];
    size_t got = 0;

    if (!begin())
        return 0;
    cx_shm_count(CX_C_REDIS_BATCHES, 1);
    cx_shm_count(CX_C_REDIS_BATCHED, n);
    for (size_t i = 0; i < n; i++)
        if (redisAppendFormattedCommand(R.c, Q.v[i].cmd, (size_t)Q.v[i].len) != REDIS_OK)
            goto fail;
    for (; got < n; got++) {
        void *r = NULL;
        if (redisGetReply(R.c, &r) != REDIS_OK || r == NULL)
            goto fail;
        replies[got] = r;
    }
    succeed();
    return got;
fail:
    snprintf(err, sizeof(err), "batch of %zu: %s", n, why(R.c));
    drop();
    fail(err);
    return got;
}

void cx_redis_batch_run(void)
{
    redisReply *replies[BATCH_MAX];

    while (Q.n > 0) {
        size_t n = Q.n < BATCH_MAX ? Q.n : BATCH_MAX, got = batch_round(n, replies);
        /* the callbacks may add to the batch: take this round's entries out first */
        batched_t *mine = cx_malloc(n * sizeof(*mine));
        memcpy(mine, Q.v, n * sizeof(*mine));
        memmove(Q.v, Q.v + n, (Q.n - n) * sizeof(*Q.v));
        Q.n -= n;
        // cppcheck-suppress knownConditionTrueFalse ; n is at least 1 here (Q.n > 0), cppcheck loses it
        for (size_t i = 0; i < n; i++) {
            redisReply *r = i < got ? replies[i] : NULL;
            mine[i].done(r, mine[i].arg);
            if (r != NULL)
                freeReplyObject(r);
            redisFreeCommand(mine[i].cmd);
        }
        free(mine);
    }
}
