/*
 * src/redis/heartbeat.c -- the Redis side of the agents' heartbeat keys (heartbeat.h): the SET of the
 * REST relay, and hbmon's reads in batches: one SCAN step, the PTTLs of a batch in one pipelined round
 * trip, the values of some of its keys with one MGET. The replies stay in the batch, so the keys and
 * values point into them without copies, until the batch is reset.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/heartbeat.h"
#include "conduix/log.h"
#include "conduix/redis.h"

#define KEY_MATCH CX_HB_KEY_PREFIX "*" CX_HB_KEY_SUFFIX

/* The SET of a REST beat: SET … GET (Redis 6.2+) says whether the key existed. */
#define SET_ARGV(key, body, len)                                                                                                   \
    const char *argv_[] = {"SET", key, body, "EX", CX_HB_TTL_TEXT, "GET"};                                                         \
    const size_t argl_[] = {3, strlen(key), len, 2, sizeof(CX_HB_TTL_TEXT) - 1, 3}

static void key_of(const char *agent_id, char key[CX_AGENT_ID_MAX + 32])
{
    snprintf(key, CX_AGENT_ID_MAX + 32, CX_HB_KEY_PREFIX "%s" CX_HB_KEY_SUFFIX, agent_id);
}

int cx_redis_heartbeat_result(const redisReply *r, const char *agent_id, const char *body, size_t len, int *isnew)
{
    redisReply *plain;

    *isnew = 1;
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strstr(r->str, "syntax") != NULL) {
        /* An older Redis refuses the option: then a plain SET, and the key counts as new. */
        plain = cx_redis_cmd("SET " CX_HB_KEY_PREFIX "%s" CX_HB_KEY_SUFFIX " %b EX %d", agent_id, body, len, CX_HB_TTL_S);
        int rc = plain != NULL && plain->type == REDIS_REPLY_STATUS ? CX_OK : CX_UNAVAIL;
        if (plain != NULL && plain->type == REDIS_REPLY_ERROR)
            cx_log_warnx("heartbeat: SET of agent %s's key refused by Redis: %s", agent_id, plain->str);
        if (plain != NULL)
            freeReplyObject(plain);
        return rc;
    }
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        *isnew = 0;
    if (r != NULL && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL))
        return CX_OK;
    if (r != NULL)
        cx_log_warnx("heartbeat: SET of agent %s's key refused by Redis: %s", agent_id,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    return CX_UNAVAIL;
}

int cx_redis_heartbeat_set(const char *agent_id, const char *body, size_t len, int *isnew)
{
    char key[CX_AGENT_ID_MAX + 32];
    redisReply *r;
    int rc;

    key_of(agent_id, key);
    SET_ARGV(key, body, len);
    r = cx_redis_cmdargv((int)CX_ARRAY_SIZE(argv_), argv_, argl_);
    rc = cx_redis_heartbeat_result(r, agent_id, body, len, isnew);
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

void cx_redis_heartbeat_set_batched(const char *agent_id, const char *body, size_t len, cx_redis_done_fn done, void *arg)
{
    char key[CX_AGENT_ID_MAX + 32];

    key_of(agent_id, key);
    SET_ARGV(key, body, len);
    cx_redis_batch_add((int)CX_ARRAY_SIZE(argv_), argv_, argl_, done, arg);
}

/* ---- batches ---- */

/* grow_keys -- room for n keys. */
static void grow_keys(cx_hb_batch_t *b, size_t n)
{
    if (n > b->cap) {
        b->cap = n < 2 * b->cap ? 2 * b->cap : n;
        b->keys = cx_realloc(b->keys, b->cap * sizeof(*b->keys));
    }
}

/* grow_args -- room for the command arguments of n keys (2 per key for PTTL, 1 + 1 per key for MGET). */
static void grow_args(cx_hb_batch_t *b, size_t n)
{
    if (2 * n + 1 > b->argcap) {
        b->argcap = 2 * n + 1;
        b->argv = cx_realloc(b->argv, b->argcap * sizeof(*b->argv));
        b->argl = cx_realloc(b->argl, b->argcap * sizeof(*b->argl));
        b->argcs = cx_realloc(b->argcs, b->argcap * sizeof(*b->argcs));
        b->argvs = cx_realloc(b->argvs, b->argcap * sizeof(*b->argvs));
        b->argls = cx_realloc(b->argls, b->argcap * sizeof(*b->argls));
        b->replies = cx_realloc(b->replies, b->argcap * sizeof(*b->replies));
    }
}

static void drop_mget(cx_hb_batch_t *b)
{
    if (b->mget_reply != NULL) {
        freeReplyObject(b->mget_reply);
        b->mget_reply = NULL;
    }
}

void cx_hb_batch_reset(cx_hb_batch_t *b)
{
    drop_mget(b);
    if (b->scan_reply != NULL) {
        freeReplyObject(b->scan_reply);
        b->scan_reply = NULL;
    }
    b->n = 0;
    b->names_len = 0;
}

void cx_hb_batch_free(cx_hb_batch_t *b)
{
    cx_hb_batch_reset(b);
    free(b->keys);
    free(b->names);
    free(b->argv);
    free(b->argl);
    free(b->argcs);
    free(b->argvs);
    free(b->argls);
    free(b->replies);
    memset(b, 0, sizeof(*b));
}

void cx_hb_batch_add(cx_hb_batch_t *b, const char *agent_id, void *user)
{
    const size_t pre = sizeof(CX_HB_KEY_PREFIX) - 1, suf = sizeof(CX_HB_KEY_SUFFIX) - 1, idl = strlen(agent_id);
    size_t len = pre + idl + suf;
    cx_hb_key_t *k;

    if (b->names_len + len > b->names_cap) {
        /* the names move: the keys already added (one after the other) point into them again */
        size_t off = 0;
        b->names_cap = (b->names_cap + len) * 2;
        b->names = cx_realloc(b->names, b->names_cap);
        for (size_t i = 0; i < b->n; i++) {
            b->keys[i].key = b->names + off;
            off += b->keys[i].len;
        }
    }
    grow_keys(b, b->n + 1);
    k = &b->keys[b->n++];
    memcpy(b->names + b->names_len, CX_HB_KEY_PREFIX, pre);
    memcpy(b->names + b->names_len + pre, agent_id, idl);
    memcpy(b->names + b->names_len + pre + idl, CX_HB_KEY_SUFFIX, suf);
    *k = (cx_hb_key_t){.key = b->names + b->names_len, .len = len, .user = user, .pttl = CX_HB_UNREAD};
    b->names_len += len;
}

int cx_redis_hb_scan(cx_hb_batch_t *b, const char *cursor, char next[32], int count)
{
    redisReply *r, *keys;

    cx_hb_batch_reset(b);
    if ((r = cx_redis_cmd("SCAN %s MATCH " KEY_MATCH " COUNT %d", cursor, count)) == NULL)
        return CX_UNAVAIL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= 32 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        cx_log_warnx("hbmon: unexpected SCAN reply (type %d)", r->type);
        freeReplyObject(r);
        return CX_UNAVAIL;
    }
    keys = r->element[1];
    grow_keys(b, keys->elements);
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *e = keys->element[i];
        int str = e->type == REDIS_REPLY_STRING;
        b->keys[i] = (cx_hb_key_t){.key = str ? e->str : "", .len = str ? e->len : 0, .pttl = CX_HB_UNREAD};
    }
    b->n = keys->elements;
    memcpy(next, r->element[0]->str, r->element[0]->len + 1);
    b->scan_reply = r;
    return CX_OK;
}

int cx_redis_hb_pttl(cx_hb_batch_t *b, size_t from, size_t n)
{
    redisReply **rep;
    int rc;

    if (n == 0)
        return CX_OK;
    grow_args(b, n);
    rep = (redisReply **)b->replies;
    for (size_t i = 0; i < n; i++) {
        const cx_hb_key_t *k = &b->keys[from + i];
        b->argv[2 * i] = "PTTL";
        b->argl[2 * i] = 4;
        b->argv[2 * i + 1] = k->key;
        b->argl[2 * i + 1] = k->len;
        b->argcs[i] = 2;
        b->argvs[i] = &b->argv[2 * i];
        b->argls[i] = &b->argl[2 * i];
    }
    rc = cx_redis_pipeline((int)n, b->argcs, b->argvs, b->argls, rep);
    for (size_t i = 0; i < n; i++) {
        cx_hb_key_t *k = &b->keys[from + i];
        k->pttl = rep[i] != NULL && rep[i]->type == REDIS_REPLY_INTEGER ? rep[i]->integer : CX_HB_UNREAD;
        if (rep[i] != NULL)
            freeReplyObject(rep[i]);
    }
    return rc == CX_OK ? CX_OK : CX_UNAVAIL;
}

int cx_redis_hb_mget(cx_hb_batch_t *b, cx_hb_key_t *const *keys, size_t n)
{
    redisReply *r;

    drop_mget(b);
    if (n == 0)
        return CX_OK;
    grow_args(b, n);
    b->argv[0] = "MGET";
    b->argl[0] = 4;
    for (size_t i = 0; i < n; i++) {
        b->argv[i + 1] = keys[i]->key;
        b->argl[i + 1] = keys[i]->len;
    }
    r = cx_redis_cmdargv((int)n + 1, b->argv, b->argl);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        if (r != NULL)
            freeReplyObject(r);
        return CX_UNAVAIL;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *v = r->element[i];
        keys[i]->value = v->type == REDIS_REPLY_STRING ? v->str : NULL;
        keys[i]->vlen = v->type == REDIS_REPLY_STRING ? v->len : 0;
    }
    b->mget_reply = r;
    return CX_OK;
}
