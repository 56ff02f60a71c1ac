/*
 * heartbeat.c -- agent heartbeats (heartbeat.h): the parser and validator of a heartbeat text (pure,
 * unit-tested in t/unit/test_heartbeat.c), the agent id of a heartbeat key, the rate-limited log of
 * rejected beats, and the REST fallback path: the Redis key written as an agent would
 * (src/redis/heartbeat.c), MySQL when Redis is down (src/db/agents.c).
 *
 * The parser accepts what the original Go agents write (RFC 3339 with nanoseconds and any offset, zero
 * usages, `pipelines: []` or null, no pipeline_stats) and refuses anything that could hurt the registry
 * or the database: wrong types, invalid UTF-8, control characters in stored strings, sizes beyond the
 * columns and caps of agents.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/agentmsg.h"
#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/heartbeat.h"
#include "conduix/log.h"
#include "conduix/redis.h"
#include "conduix/shm.h"
#include "conduix/utf8.h"

#define USAGE_MAX 1e6
#define LABEL_VALUE_MAX 1024

static int fail(cx_hb_error_t *err, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(cx_hb_error_t *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(err->field, sizeof(err->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return CX_INVALID;
}

/* text_ok -- valid UTF-8 without control characters (and without spaces when nospace). */
static int text_ok(const char *s, size_t n, int nospace)
{
    unsigned f;
    return cx_utf8_check(s, n, &f) >= 0 && (f & CX_UTF8_C0) == 0 && !(nospace && (f & CX_UTF8_SPACE));
}

int cx_agent_id_valid(const char *id, size_t len)
{
    return id != NULL && len >= 1 && len <= CX_AGENT_ID_MAX && text_ok(id, len, 1);
}

int cx_heartbeat_key_id(const char *key, size_t len, char out[CX_AGENT_ID_MAX + 1])
{
    const size_t pre = sizeof(CX_HB_KEY_PREFIX) - 1, suf = sizeof(CX_HB_KEY_SUFFIX) - 1;
    size_t n;

    if (key == NULL || len <= pre + suf || memcmp(key, CX_HB_KEY_PREFIX, pre) != 0 ||
        memcmp(key + len - suf, CX_HB_KEY_SUFFIX, suf) != 0)
        return -1;
    n = len - pre - suf;
    if (!cx_agent_id_valid(key + pre, n))
        return -1;
    memcpy(out, key + pre, n);
    out[n] = '\0';
    return (int)n;
}

/* get -- member name of o when present and not null, else NULL. */
static json_object *get(json_object *o, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, name, &v))
        return NULL;
    return v;
}

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* usage -- an optional percentage: a finite number >= 0 (absent or null: 0). */
static int usage(json_object *o, const char *name, double *out, cx_hb_error_t *err)
{
    json_object *v = get(o, name);
    double d;

    *out = 0;
    if (v == NULL)
        return CX_OK;
    if (!is_number(v))
        return fail(err, name, "must be a number");
    d = json_object_get_double(v);
    if (!isfinite(d) || d < 0 || d > USAGE_MAX)
        return fail(err, name, "must be a number between 0 and %g", USAGE_MAX);
    *out = d;
    return CX_OK;
}

/* short_string -- an optional string of at most max bytes of printable UTF-8 (absent or null: NULL). */
static int short_string(json_object *o, const char *name, size_t max, const char **out, cx_hb_error_t *err)
{
    json_object *v = get(o, name);
    const char *s;
    size_t n;

    *out = NULL;
    if (v == NULL)
        return CX_OK;
    if (!json_object_is_type(v, json_type_string))
        return fail(err, name, "must be a string");
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n > max)
        return fail(err, name, "is longer than %zu bytes", max);
    if (!text_ok(s, n, 0))
        return fail(err, name, "contains control characters or invalid UTF-8");
    *out = s;
    return CX_OK;
}

static int check_pipelines(json_object *o, cx_heartbeat_t *hb, cx_hb_error_t *err)
{
    json_object *v = get(o, "pipelines");
    size_t i, n;

    if (v == NULL) {
        hb->pipelines = cx_strdup("[]");
        return CX_OK;
    }
    if (!json_object_is_type(v, json_type_array))
        return fail(err, "pipelines", "must be an array of pipeline ids");
    n = json_object_array_length(v);
    if (n > CX_HB_MAX_PIPELINES)
        return fail(err, "pipelines", "has more than %d entries", CX_HB_MAX_PIPELINES);
    for (i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string))
            return fail(err, "pipelines", "entry %zu is not a string", i);
        if (!cx_agent_id_valid(json_object_get_string(e), (size_t)json_object_get_string_len(e)))
            return fail(err, "pipelines", "entry %zu is not a valid pipeline id", i);
    }
    hb->npipelines = n;
    hb->pipelines = cx_strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    return CX_OK;
}

static int check_stats(json_object *o, cx_hb_error_t *err)
{
    static const char *const counts[] = {"processed_count", "error_count"};
    json_object *v = get(o, "pipeline_stats");
    size_t i, n;

    if (v == NULL)
        return CX_OK;
    if (!json_object_is_type(v, json_type_array))
        return fail(err, "pipeline_stats", "must be an array of objects");
    n = json_object_array_length(v);
    if (n > CX_HB_MAX_PIPELINES)
        return fail(err, "pipeline_stats", "has more than %d entries", CX_HB_MAX_PIPELINES);
    for (i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i), *f;
        if (!json_object_is_type(e, json_type_object))
            return fail(err, "pipeline_stats", "entry %zu is not an object", i);
        f = get(e, "pipeline_id");
        if (f == NULL || !json_object_is_type(f, json_type_string))
            return fail(err, "pipeline_stats", "entry %zu: pipeline_id must be a string", i);
        f = get(e, "status");
        if (f != NULL && !json_object_is_type(f, json_type_string))
            return fail(err, "pipeline_stats", "entry %zu: status must be a string", i);
        for (size_t k = 0; k < CX_ARRAY_SIZE(counts); k++) {
            f = get(e, counts[k]);
            if (f != NULL && (!is_number(f) || !isfinite(json_object_get_double(f)) || json_object_get_double(f) < 0))
                return fail(err, "pipeline_stats", "entry %zu: %s must be a number >= 0", i, counts[k]);
        }
    }
    return CX_OK;
}

static int check_labels(json_object *o, cx_heartbeat_t *hb, cx_hb_error_t *err)
{
    json_object *v = get(o, "labels");
    char name[84];
    int n = 0;

    if (v == NULL)
        return CX_OK;
    if (!json_object_is_type(v, json_type_object))
        return fail(err, "labels", "must be an object of strings");
    json_object_object_foreach(v, key, val)
    {
        size_t kl = strlen(key);
        if (++n > CX_HB_MAX_LABELS)
            return fail(err, "labels", "has more than %d entries", CX_HB_MAX_LABELS);
        if (kl == 0 || kl > CX_AGENT_ID_MAX || !text_ok(key, kl, 0))
            return fail(err, "labels", "a label name is empty, too long or not printable UTF-8");
        /* the name goes into the message (a REST answer): printable ASCII, never cut inside a character */
        cx_printable(key, kl, name);
        if (val == NULL || !json_object_is_type(val, json_type_string))
            return fail(err, "labels", "the value of %.64s must be a string", name);
        if ((size_t)json_object_get_string_len(val) > LABEL_VALUE_MAX ||
            !text_ok(json_object_get_string(val), (size_t)json_object_get_string_len(val), 0))
            return fail(err, "labels", "the value of %.64s is longer than %d bytes or not printable UTF-8", name, LABEL_VALUE_MAX);
    }
    hb->labels = cx_strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    return CX_OK;
}

/* check -- the fields of a parsed beat. */
static int check(json_object *o, const char *agent_id, cx_heartbeat_t *hb, cx_hb_error_t *err)
{
    json_object *v;

    if (!json_object_is_type(o, json_type_object))
        return fail(err, "body", "a heartbeat must be a JSON object");
    v = get(o, "agent_id");
    if (v == NULL)
        return fail(err, "agent_id", "is required");
    if (!json_object_is_type(v, json_type_string))
        return fail(err, "agent_id", "must be a string");
    hb->agent_id = json_object_get_string(v);
    if (agent_id != NULL && strcmp(hb->agent_id, agent_id) != 0)
        return fail(err, "agent_id", "does not match the agent id of the key or URL");
    if (!cx_agent_id_valid(hb->agent_id, (size_t)json_object_get_string_len(v)))
        return fail(err, "agent_id", "must be 1 to %d bytes of printable UTF-8 without spaces", CX_AGENT_ID_MAX);

    hb->timestamp_ms = -1;
    if ((v = get(o, "timestamp")) != NULL) {
        if (!json_object_is_type(v, json_type_string) || (hb->timestamp_ms = cx_time_parse(json_object_get_string(v))) < 0)
            return fail(err, "timestamp", "must be an RFC 3339 time");
    }
    if (usage(o, "cpu_usage", &hb->cpu_usage, err) != CX_OK || usage(o, "memory_usage", &hb->memory_usage, err) != CX_OK ||
        usage(o, "disk_usage", &hb->disk_usage, err) != CX_OK)
        return CX_INVALID;
    if (short_string(o, "hostname", 255, &hb->hostname, err) != CX_OK ||
        short_string(o, "ip_address", 64, &hb->ip_address, err) != CX_OK ||
        short_string(o, "version", 64, &hb->version, err) != CX_OK)
        return CX_INVALID;
    if (check_pipelines(o, hb, err) != CX_OK || check_stats(o, err) != CX_OK || check_labels(o, hb, err) != CX_OK)
        return CX_INVALID;
    return CX_OK;
}

int cx_heartbeat_check(json_object *o, size_t len, const char *agent_id, cx_heartbeat_t *hb, cx_hb_error_t *err)
{
    memset(hb, 0, sizeof(*hb));
    memset(err, 0, sizeof(*err));
    if (o == NULL || len == 0)
        return fail(err, "body", "the heartbeat is empty");
    if (len > CX_HB_MAX_BYTES) {
        err->too_large = 1;
        return fail(err, "body", "the heartbeat is larger than %d bytes", CX_HB_MAX_BYTES);
    }
    hb->obj = json_object_get(o);
    if (check(o, agent_id, hb, err) != CX_OK) {
        cx_heartbeat_free(hb);
        return CX_INVALID;
    }
    return CX_OK;
}

int cx_heartbeat_parse(const char *text, size_t len, const char *agent_id, cx_heartbeat_t *hb, cx_hb_error_t *err)
{
    char why[128];
    json_object *o;

    memset(hb, 0, sizeof(*hb));
    memset(err, 0, sizeof(*err));
    if (text == NULL || len == 0)
        return fail(err, "body", "the heartbeat is empty");
    if (len > CX_HB_MAX_BYTES) {
        err->too_large = 1;
        return fail(err, "body", "the heartbeat is larger than %d bytes", CX_HB_MAX_BYTES);
    }
    if ((o = cx_agentmsg_json(text, len, 1, why, sizeof(why))) == NULL)
        return fail(err, "body", "the heartbeat is not valid JSON: %s", why);
    hb->obj = o;
    if (check(o, agent_id, hb, err) != CX_OK) {
        cx_heartbeat_free(hb);
        return CX_INVALID;
    }
    return CX_OK;
}

void cx_heartbeat_free(cx_heartbeat_t *hb)
{
    if (hb == NULL)
        return;
    json_object_put(hb->obj);
    free(hb->labels);
    free(hb->pipelines);
    memset(hb, 0, sizeof(*hb));
}

void cx_heartbeat_rejected(const char *source, const char *agent_id, const cx_hb_error_t *err)
{
    static cx_loglimit_t limit;
    char id[84];

    cx_shm_count(CX_C_HEARTBEATS_REJECTED, 1);
    if (!cx_loglimit_allow(&limit, "rejected heartbeats"))
        return;
    cx_printable(agent_id ? agent_id : "?", agent_id ? strlen(agent_id) : 1, id);
    cx_log_warnx("heartbeat: rejected a heartbeat of agent %s (%s): %s: %s", id, source, err->field, err->msg);
}

/* received -- the end of a REST beat once Redis has answered the SET (set_rc, isnew): in Redis, or in MySQL
 * when Redis did not take it. */
static int received(int set_rc, int isnew, const cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms,
                    const char **via)
{
    int rc;

    if (set_rc == CX_OK) {
        *via = "redis";
        cx_shm_count(CX_C_HEARTBEATS_REST, 1);
        /* hbmon records the beat from the key; registering here makes a new agent visible at once (and
         * only a beat that found no key may come from an agent the registry does not know). A database
         * failure is harmless: hbmon registers it from the key too. */
        if (isnew)
            cx_db_agent_register(hb, recv_ms);
        return CX_OK;
    }
    *via = "database";
    if ((rc = cx_db_agent_rest_beat(hb, body, len, recv_ms)) == CX_OK)
        cx_shm_count(CX_C_HEARTBEATS_REST, 1);
    return rc;
}

int cx_heartbeat_receive(const cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms, const char **via)
{
    int isnew = 1, rc = cx_redis_heartbeat_set(hb->agent_id, body, len, &isnew);
    return received(rc, isnew, hb, body, len, recv_ms, via);
}

/* A REST beat waiting for its SET in the Redis batch. */
typedef struct relay {
    cx_heartbeat_t hb;
    char *body;
    size_t len;
    int64_t recv_ms;
    cx_hb_done_fn done;
    void *arg;
} relay_t;

static void on_set(redisReply *reply, void *arg)
{
    relay_t *rl = arg;
    const char *via = NULL;
    int isnew = 1, rc = cx_redis_heartbeat_result(reply, rl->hb.agent_id, rl->body, rl->len, &isnew);

    rc = received(rc, isnew, &rl->hb, rl->body, rl->len, rl->recv_ms, &via);
    rl->done(rc, via, rl->arg);
    cx_heartbeat_free(&rl->hb);
    free(rl->body);
    free(rl);
}

void cx_heartbeat_relay(cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms, cx_hb_done_fn done, void *arg)
{
    relay_t *rl = cx_calloc(1, sizeof(*rl));

    rl->hb = *hb; /* moved: the beat is the relay's now */
    memset(hb, 0, sizeof(*hb));
    rl->body = cx_malloc(len + 1);
    memcpy(rl->body, body, len);
    rl->body[len] = '\0';
    rl->len = len;
    rl->recv_ms = recv_ms;
    rl->done = done;
    rl->arg = arg;
    cx_redis_heartbeat_set_batched(rl->hb.agent_id, rl->body, len, on_set, rl);
}
