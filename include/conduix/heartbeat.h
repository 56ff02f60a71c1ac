/*
 * heartbeat.h -- agent heartbeats: the format (parser and validator of a beat, the agent id of a
 * heartbeat key, the log of rejected beats) and the REST fallback path (src/heartbeat.c), and the Redis
 * side of the heartbeat keys (src/redis/heartbeat.c): the REST relay's SET, and the reads hbmon makes
 * (SCAN, PTTL, MGET).
 *
 * Agents write `SET agent:{id}:heartbeat <json> EX 30` (docs/api.md, "Agent protocol"); the same JSON
 * may come by POST /agents/:id/heartbeat.
 */
#ifndef CONDUIX_HEARTBEAT_H
#define CONDUIX_HEARTBEAT_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>

#include "conduix/agents.h"

#define CX_HB_MAX_BYTES 65536    /* a heartbeat larger than this is rejected (413 on REST) */
#define CX_HB_MAX_PIPELINES 1000 /* entries of pipelines and of pipeline_stats */
#define CX_HB_MAX_LABELS 64
#define CX_HB_TTL_S 30 /* agents write SET agent:{id}:heartbeat <json> EX 30 */
#define CX_HB_TTL_TEXT "30"
#define CX_HB_KEY_PREFIX "agent:"
#define CX_HB_KEY_SUFFIX ":heartbeat"

typedef struct cx_heartbeat {
    json_object *obj; /* the parsed beat (owned; the strings below point into it) */
    const char *agent_id;
    int64_t timestamp_ms; /* the agent's clock, -1 when absent; never used for liveness */
    double cpu_usage, memory_usage, disk_usage;
    const char *hostname; /* NULL when absent (older agents): the stored value is kept */
    const char *ip_address;
    const char *version;
    char *labels;    /* canonical JSON object text (owned), NULL when absent */
    char *pipelines; /* JSON array text (owned), "[]" when none */
    size_t npipelines;
} cx_heartbeat_t;

/* Why a heartbeat was rejected: the field at fault ("body" for the whole text) and a message for people.
 * too_large is set when the text exceeds CX_HB_MAX_BYTES (REST answers 413). */
typedef struct cx_hb_error {
    char field[64];
    char msg[224];
    int too_large;
} cx_hb_error_t;

/* ---- the format (src/heartbeat.c) ---- */

/* cx_heartbeat_parse -- parse and validate a heartbeat text as the Go agents write it (strict JSON, valid
 * UTF-8, at most CX_HB_MAX_BYTES; agent_id equal to agent_id; RFC 3339 timestamp with any fraction and
 * offset; numbers for the usages, zero allowed; pipelines an array of ids or null; optional
 * pipeline_stats, hostname, ip_address, version, labels as an object of strings). text need not be
 * NUL-terminated. CX_OK with *hb filled (cx_heartbeat_free it), or CX_INVALID with *err filled. Pure: no
 * I/O, no logging. */
int cx_heartbeat_parse(const char *text, size_t len, const char *agent_id, cx_heartbeat_t *hb, cx_hb_error_t *err);

/* cx_heartbeat_check -- cx_heartbeat_parse of a text of len bytes already parsed into o (a REST body, which
 * body.c parsed with stricter rules still): the same checks, without parsing again. Takes its own
 * reference to o. */
int cx_heartbeat_check(json_object *o, size_t len, const char *agent_id, cx_heartbeat_t *hb, cx_hb_error_t *err);

void cx_heartbeat_free(cx_heartbeat_t *hb);

/* cx_heartbeat_key_id -- the agent id of a Redis key "agent:{id}:heartbeat" into out (NUL-terminated);
 * its length, or -1 when the key does not have that form or the id is not a valid agent id. */
int cx_heartbeat_key_id(const char *key, size_t len, char out[CX_AGENT_ID_MAX + 1]);

/* cx_heartbeat_rejected -- count a rejected heartbeat (CX_C_HEARTBEATS_REJECTED) and log one line with
 * the agent id, the source ("redis", "rest") and the reason; at most 20 lines per 10 s per process, then
 * one line saying how many were not logged. */
void cx_heartbeat_rejected(const char *source, const char *agent_id, const cx_hb_error_t *err);

/* cx_heartbeat_receive -- the REST fallback (POST /agents/:id/heartbeat) of a validated beat: SET the
 * agent's Redis key to the body with EX 30, as an agent would, and register the agent in MySQL when it
 * is new (status unknown until hbmon sees the beat). When Redis is unavailable the beat goes to MySQL
 * directly (agents.last_heartbeat and agent_rest_heartbeats), which hbmon polls. *via is "redis" or
 * "database". CX_OK, or CX_UNAVAIL when neither took it. */
int cx_heartbeat_receive(const cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms, const char **via);

/* cx_heartbeat_relay -- cx_heartbeat_receive with its SET in this process's Redis batch (redis.h), so that
 * the beats a worker reads in one turn of its loop take one round trip to Redis: takes over *hb (and
 * copies body), and when the batch has run (or failed: then MySQL, as cx_heartbeat_receive) calls
 * done(rc, via, arg). The beat is recorded even when whoever waits for done has gone. */
typedef void (*cx_hb_done_fn)(int rc, const char *via, void *arg);
void cx_heartbeat_relay(cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms, cx_hb_done_fn done, void *arg);

/* ---- the Redis side (src/redis/heartbeat.c) ---- */

/* cx_redis_heartbeat_set -- SET agent:{agent_id}:heartbeat body EX 30, as an agent writes it. *isnew is
 * 1 when the key did not exist (or Redis cannot tell: before 6.2). CX_OK, or CX_UNAVAIL (Redis down or
 * refusing, logged). */
int cx_redis_heartbeat_set(const char *agent_id, const char *body, size_t len, int *isnew);

/* cx_redis_heartbeat_set_batched -- the same SET appended to the Redis batch; its reply goes to done, which
 * reads it with cx_redis_heartbeat_result. */
struct redisReply;
void cx_redis_heartbeat_set_batched(const char *agent_id, const char *body, size_t len, void (*done)(struct redisReply *, void *),
                                    void *arg);

/* cx_redis_heartbeat_result -- what the reply r of that SET says (NULL: no reply): CX_OK with *isnew, or
 * CX_UNAVAIL (logged when Redis refused it). Before Redis 6.2 the option GET is refused: then a plain SET
 * is run (synchronously) and the key counts as new. */
int cx_redis_heartbeat_result(const struct redisReply *r, const char *agent_id, const char *body, size_t len, int *isnew);

/* A heartbeat key in a batch of hbmon's reads. */
typedef struct cx_hb_key {
    const char *key; /* agent:{id}:heartbeat, in the batch's memory */
    size_t len;
    void *user;        /* the caller's: NULL for keys a scan found */
    long long pttl;    /* after cx_redis_hb_pttl: ms left, -1 no TTL, -2 no such key, CX_HB_UNREAD */
    const char *value; /* after cx_redis_hb_mget: the value when it is a string, else NULL */
    size_t vlen;
} cx_hb_key_t;

#define CX_HB_UNREAD (-3) /* no PTTL was read for the key (an unexpected reply) */

/* A batch: the keys of one SCAN step, or the names added since the last reset (not both), and the
 * replies they point into. It
 * is reused from one call to the next, so its arrays are allocated once (at 100,000 agents hbmon reads
 * some 300,000 small replies a second). Zero-initialised it is empty; cx_hb_batch_free at the end. */
typedef struct cx_hb_batch {
    cx_hb_key_t *keys;
    size_t n;
    /* private */
    size_t cap;
    void *scan_reply, *mget_reply;
    char *names;
    size_t names_len, names_cap;
    const char **argv;
    size_t *argl, argcap;
    int *argcs;
    const char ***argvs;
    const size_t **argls;
    void **replies;
} cx_hb_batch_t;

/* cx_hb_batch_reset -- empty the batch (its memory is kept). */
void cx_hb_batch_reset(cx_hb_batch_t *b);
void cx_hb_batch_free(cx_hb_batch_t *b);

/* cx_hb_batch_add -- add the key of agent_id (agent:{id}:heartbeat) with user. */
void cx_hb_batch_add(cx_hb_batch_t *b, const char *agent_id, void *user);

/* cx_redis_hb_scan -- reset the batch to the keys of one SCAN step (MATCH agent:*:heartbeat COUNT
 * count) from cursor; next gets the cursor of the following step ("0": the pass is over). CX_OK, or
 * CX_UNAVAIL (Redis failed or gave an unexpected reply, logged). */
int cx_redis_hb_scan(cx_hb_batch_t *b, const char *cursor, char next[32], int count);

/* cx_redis_hb_pttl -- the PTTL of keys[from .. from+n) in one pipelined round trip. CX_OK, or
 * CX_UNAVAIL. */
int cx_redis_hb_pttl(cx_hb_batch_t *b, size_t from, size_t n);

/* cx_redis_hb_mget -- the values of n keys of the batch with one MGET (valid until the next MGET or
 * reset of the batch). CX_OK, or CX_UNAVAIL. */
int cx_redis_hb_mget(cx_hb_batch_t *b, cx_hb_key_t *const *keys, size_t n);

#endif
