/*
 * src/redis/commands.c -- the Redis side of the agent protocol that the control plane drives (commands.h):
 * publishing commands on agent:commands:{id}, reading the agents' pipeline:{id}:metrics and
 * pipeline:{id}:checkpoint keys, and the dispatcher's subscription to pipeline:events and
 * agent:responses:*.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/commands.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/redis.h"

#define EVENTS_CHANNEL "pipeline:events"
#define JSON_DEPTH 32
#define RESPONSES_PATTERN "agent:responses:*"

int cx_redis_command_publish(const char *agent_id, const char *msg, size_t len)
{
    char chan[300];
    redisReply *r;
    int rc = CX_OK;

    snprintf(chan, sizeof(chan), "agent:commands:%s", agent_id);
    if ((r = cx_redis_cmd("PUBLISH %s %b", chan, msg, len)) == NULL)
        return CX_UNAVAIL;
    if (r->type != REDIS_REPLY_INTEGER) {
        cx_log_warnx("redis: PUBLISH %s: unexpected reply %.*s", chan, r->type == REDIS_REPLY_ERROR ? (int)r->len : 0,
                     r->type == REDIS_REPLY_ERROR ? r->str : "");
        rc = CX_UNAVAIL;
    } else if (r->integer == 0) {
        rc = CX_NOTFOUND; /* the agent is not subscribed (yet): nobody received it */
    }
    freeReplyObject(r);
    return rc;
}

static int numsub_refused; /* logged once until NUMSUB answers again */

int cx_redis_command_listeners(const char *const *agent_ids, size_t n, int *listening)
{
    const char **argv;
    char **chans;
    redisReply *r;
    int rc = CX_OK;

    if (n == 0)
        return CX_OK;
    argv = cx_calloc(n + 2, sizeof(*argv));
    chans = cx_calloc(n, sizeof(*chans));
    argv[0] = "PUBSUB";
    argv[1] = "NUMSUB";
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(agent_ids[i]) + sizeof("agent:commands:");
        chans[i] = cx_malloc(len);
        snprintf(chans[i], len, "agent:commands:%s", agent_ids[i]);
        argv[i + 2] = chans[i];
    }
    r = cx_redis_cmdargv((int)n + 2, argv, NULL);
    if (r == NULL) {
        rc = CX_UNAVAIL;
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * n) {
        /* Redis answers but will not tell (an ACL without PUBSUB, a proxy): say everyone listens, and
         * let each PUBLISH's count of receivers decide, as it does for a worker's delivery. */
        if (!numsub_refused)
            cx_log_warnx("redis: PUBSUB NUMSUB refused (%.*s): commands are published without asking who listens",
                         r->type == REDIS_REPLY_ERROR ? (int)r->len : 16,
                         r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        numsub_refused = 1;
        for (size_t i = 0; i < n; i++)
            listening[i] = 1;
    } else {
        numsub_refused = 0;
        /* pairs of channel and count, in the order asked */
        for (size_t i = 0; i < n; i++) {
            const redisReply *cnt = r->element[2 * i + 1];
            listening[i] = cnt->type == REDIS_REPLY_INTEGER && cnt->integer > 0;
        }
    }
    freeReplyObject(r);
    for (size_t i = 0; i < n; i++)
        free(chans[i]);
    free(chans);
    free(argv);
    return rc;
}

int cx_redis_pipeline_json(const char *pipeline_id, const char *what, json_object **out)
{
    char key[128];
    redisReply *r;
    json_object *o = NULL;

    *out = NULL;
    snprintf(key, sizeof(key), "pipeline:%s:%s", pipeline_id, what);
    if ((r = cx_redis_cmd("GET %s", key)) == NULL)
        return CX_UNAVAIL;
    if (r->type == REDIS_REPLY_STRING && r->len > CX_PIPELINE_JSON_MAX) {
        cx_log_warnx("redis: %s is larger than %d bytes; ignored", key, CX_PIPELINE_JSON_MAX);
    } else if (r->type == REDIS_REPLY_STRING) {
        /* strict and valid UTF-8: the object is stored (a run's checkpoint) and shown (metrics) as it is */
        json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, r->str, (int)r->len + 1); /* with hiredis's NUL: the input is complete */
        if (o != NULL && (!json_object_is_type(o, json_type_object) || json_tokener_get_parse_end(tok) < r->len)) {
            json_object_put(o);
            o = NULL;
        }
        if (o == NULL)
            cx_log_warnx("redis: %s is not a JSON object of valid UTF-8; ignored", key);
        json_tokener_free(tok);
    }
    freeReplyObject(r);
    if (o == NULL)
        return CX_NOTFOUND;
    *out = o;
    return CX_OK;
}

redisContext *cx_redis_events_subscribe(const cx_config_t *cfg)
{
    int64_t t = cfg->redis.timeout_ms > 0 ? cfg->redis.timeout_ms : 1000;
    redisContext *c = cx_redis_connect_new(cfg, t);
    redisReply *r;

    if (c == NULL)
        return NULL;
    /* Both subscriptions go out now; their confirmations are read with the messages. */
    if (redisAppendCommand(c, "SUBSCRIBE %s", EVENTS_CHANNEL) != REDIS_OK ||
        redisAppendCommand(c, "PSUBSCRIBE %s", RESPONSES_PATTERN) != REDIS_OK)
        goto fail;
    for (int i = 0; i < 2; i++) { /* the first flushes both; then the two confirmations */
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            goto fail;
        if (r->type == REDIS_REPLY_ERROR) {
            cx_log_warnx("redis: subscribe: %.*s", (int)r->len, r->str);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    cx_log_warnx("redis: subscribe: %s", c->errstr[0] ? c->errstr : "failed");
    redisFree(c);
    return NULL;
}

/* deliver -- hand one pub/sub push to cb: ["message", channel, payload] or ["pmessage", pattern,
 * channel, payload]; confirmations and anything else are skipped. */
static void deliver(redisReply *r, void (*cb)(const char *, size_t, const char *, size_t, void *), void *arg)
{
    redisReply *chan, *msg;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "message") == 0 && r->elements == 3) {
        chan = r->element[1];
        msg = r->element[2];
    } else if (strcmp(r->element[0]->str, "pmessage") == 0 && r->elements == 4) {
        chan = r->element[2];
        msg = r->element[3];
    } else {
        return;
    }
    if (chan->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING)
        return;
    cb(chan->str, chan->len, msg->str, msg->len, arg);
}

int cx_redis_events_read(redisContext *c, int do_read,
                         void (*cb)(const char *channel, size_t chlen, const char *msg, size_t len, void *arg), void *arg)
{
    void *reply;

    /* One read of what the socket has (it is readable, so this does not wait), then every complete
     * reply in the buffer: poll() cannot see replies hiredis has already read. */
    if (do_read && redisBufferRead(c) != REDIS_OK) {
        cx_log_warnx("redis: subscription lost: %s", c->errstr[0] ? c->errstr : "connection closed");
        return CX_UNAVAIL;
    }
    for (;;) {
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            cx_log_warnx("redis: subscription: %s", c->errstr[0] ? c->errstr : "protocol error");
            return CX_UNAVAIL;
        }
        if (reply == NULL)
            return CX_OK;
        deliver(reply, cb, arg);
        freeReplyObject(reply);
    }
}
