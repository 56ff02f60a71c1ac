/*
 * agentmsg.c -- acknowledgements and run events as agents send them (agentmsg.h): the parsers and
 * their checks (pure: no I/O, no logging; unit-tested in t/unit/test_agentmsg.c, fuzzed by
 * t/fuzz/fuzz_ack.c and fuzz_event.c), and the rate-limited log of refused messages.
 *
 * Everything an agent sends reaches MySQL only through these checks (heartbeats through heartbeat.c's):
 * an identifier that is not valid refuses the message, since it would match the wrong row or none; free
 * text is repaired (Redis) or refused (REST) and bounded, since an outcome ("the start failed: …") must
 * never be lost to the bytes describing it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/agentmsg.h"
#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/shm.h"
#include "conduix/utf8.h"

#define JSON_DEPTH 16
#define LOG_BURST 20
#define LOG_WINDOW_MS 10000

static int fail(cx_msg_error_t *err, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(cx_msg_error_t *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(err->field, sizeof(err->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return CX_INVALID;
}

json_object *cx_agentmsg_json(const char *text, size_t len, int validate_utf8, char *why, size_t whylen)
{
    /* one tokener per process and kind, reset for each text (hbmon parses thousands a second) */
    static json_tokener *tokens[2];
    json_tokener **tok = &tokens[validate_utf8 != 0];
    json_object *o;
    char *copy;
    size_t end;

    if (*tok == NULL) {
        if ((*tok = json_tokener_new_ex(JSON_DEPTH)) == NULL)
            abort();
        json_tokener_set_flags(*tok, JSON_TOKENER_STRICT | (validate_utf8 ? JSON_TOKENER_VALIDATE_UTF8 : 0));
    }
    json_tokener_reset(*tok);
    /* a NUL-terminated copy, parsed with its NUL so the tokener knows the input is complete */
    copy = cx_malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    o = json_tokener_parse_ex(*tok, copy, (int)len + 1);
    end = json_tokener_get_parse_end(*tok);
    free(copy);
    if (o != NULL && end >= len)
        return o;
    enum json_tokener_error e = json_tokener_get_error(*tok);
    snprintf(why, whylen, "%s",
             o != NULL                   ? "unexpected data after the value"
             : e == json_tokener_success ? "unexpected end of input"
                                         : json_tokener_error_desc(e));
    json_object_put(o);
    /* a tokener left by a failed parse is not used again: json_tokener_reset keeps a pending high
     * surrogate (json-c 0.16), which would put a U+FFFD into the next agent's text (found by
     * t/fuzz/fuzz_heartbeat) */
    json_tokener_free(*tok);
    *tok = NULL;
    return NULL;
}

/* parse -- a message as an object, bytes that are not UTF-8 allowed inside strings (the fields that may
 * hold them are repaired; an id holding them is refused). NULL with *err. */
static json_object *parse(const char *text, size_t len, cx_msg_error_t *err)
{
    char why[128];
    json_object *o;

    if (text == NULL || len == 0) {
        fail(err, "body", "the message is empty");
        return NULL;
    }
    if (len > CX_AGENT_MSG_MAX) {
        fail(err, "body", "the message is larger than %d bytes", CX_AGENT_MSG_MAX);
        return NULL;
    }
    if ((o = cx_agentmsg_json(text, len, 0, why, sizeof(why))) == NULL) {
        fail(err, "body", "not valid JSON: %s", why);
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        fail(err, "body", "the message must be a JSON object");
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* id_ok -- 1..max bytes of valid UTF-8 without spaces or control characters (the rule of agent ids). */
static int id_ok(json_object *v, size_t max)
{
    size_t n = (size_t)json_object_get_string_len(v);
    return n <= max && cx_agent_id_valid(json_object_get_string(v), n);
}

/* ident -- an optional identifier field: *out NULL when absent or null; CX_INVALID when it is not a
 * string or not a valid id of at most max bytes. */
static int ident(json_object *o, const char *name, size_t max, const char **out, cx_msg_error_t *err)
{
    json_object *v = NULL;

    *out = NULL;
    if (!json_object_object_get_ex(o, name, &v) || v == NULL)
        return CX_OK;
    if (!json_object_is_type(v, json_type_string))
        return fail(err, name, "must be a string");
    if (!id_ok(v, max))
        return fail(err, name, "must be 1 to %zu bytes of printable UTF-8 without spaces or NUL bytes", max);
    *out = json_object_get_string(v);
    return CX_OK;
}

/* free_text -- an optional free-text field, as stored: *out malloc'ed (NULL when absent or null). Over REST
 * a text that is not UTF-8 or holds a NUL is refused; over Redis it is repaired. Both are bounded. */
static int free_text(json_object *o, const char *name, cx_msg_via_t via, char **out, unsigned *fixed, cx_msg_error_t *err)
{
    json_object *v = NULL;
    const char *s;
    size_t n;
    unsigned f;

    *out = NULL;
    if (!json_object_object_get_ex(o, name, &v) || v == NULL)
        return CX_OK;
    if (!json_object_is_type(v, json_type_string))
        return via == CX_MSG_REST ? fail(err, name, "must be a string") : CX_OK;
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (via == CX_MSG_REST && (memchr(s, '\0', n) != NULL || cx_utf8_check(s, n, NULL) < 0))
        return fail(err, name, "must be valid UTF-8 without NUL bytes");
    *out = cx_utf8_clean(s, n, CX_AGENT_TEXT_MAX, &f);
    *fixed |= f;
    return CX_OK;
}

/* known_field -- a field an acknowledgement may have (REST refuses others). */
static int known_field(const char *key)
{
    static const char *const known[] = {"success", "message", "error", "command_id", "agent_id", "timestamp"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(known); i++)
        if (strcmp(known[i], key) == 0)
            return 1;
    return 0;
}

void cx_ack_free(cx_ack_t *ack)
{
    if (ack == NULL)
        return;
    json_object_put(ack->obj);
    free(ack->message);
    free(ack->error);
    memset(ack, 0, sizeof(*ack));
}

int cx_ack_check(json_object *o, cx_msg_via_t via, const char *agent_id, const char *command_id, cx_ack_t *ack, cx_msg_error_t *err)
{
    json_object *v = NULL;

    memset(ack, 0, sizeof(*ack));
    memset(err, 0, sizeof(*err));
    ack->timestamp_ms = -1;
    if (o == NULL || !json_object_is_type(o, json_type_object))
        return fail(err, "body", "the acknowledgement must be a JSON object");
    ack->obj = json_object_get(o);
    if (via == CX_MSG_REST) {
        json_object_object_foreach(o, key, val)
        {
            (void)val;
            if (!known_field(key)) {
                size_t kl = strlen(key);
                unsigned f;
                /* the name is echoed in the answer: only when it is short, printable UTF-8 */
                if (kl > 0 && kl < sizeof(err->field) && cx_utf8_check(key, kl, &f) >= 0 && !(f & (CX_UTF8_C0 | CX_UTF8_C1)))
                    fail(err, key, "unknown field; allowed: success, message, error, command_id, agent_id, timestamp");
                else
                    fail(err, "body", "a field name that is empty, not printable UTF-8 or too long");
                goto bad;
            }
        }
    }
    if (ident(o, "command_id", CX_COMMAND_ID_MAX, &ack->command_id, err) != CX_OK ||
        ident(o, "agent_id", 255, &ack->agent_id, err) != CX_OK)
        goto bad;
    if (ack->command_id == NULL && command_id == NULL) {
        fail(err, "command_id", "is required (a string)");
        goto bad;
    }
    if (command_id != NULL && ack->command_id != NULL && strcmp(ack->command_id, command_id) != 0) {
        fail(err, "command_id", "does not match the URL");
        goto bad;
    }
    if (agent_id != NULL && ack->agent_id != NULL && strcmp(ack->agent_id, agent_id) != 0) {
        fail(err, "agent_id", via == CX_MSG_REST ? "does not match the URL" : "names another agent than the channel");
        goto bad;
    }
    if (!json_object_object_get_ex(o, "success", &v) || v == NULL) {
        fail(err, "success", "is required (a boolean)");
        goto bad;
    }
    if (!json_object_is_type(v, json_type_boolean)) {
        fail(err, "success", "must be a boolean");
        goto bad;
    }
    ack->success = json_object_get_boolean(v);
    if (free_text(o, "message", via, &ack->message, &ack->fixed, err) != CX_OK ||
        free_text(o, "error", via, &ack->error, &ack->fixed, err) != CX_OK)
        goto bad;
    if (json_object_object_get_ex(o, "timestamp", &v) && v != NULL) {
        if (json_object_is_type(v, json_type_string))
            ack->timestamp_ms = cx_time_parse(json_object_get_string(v));
        if (ack->timestamp_ms < 0 && via == CX_MSG_REST) {
            fail(err, "timestamp", "must be an RFC 3339 time");
            goto bad;
        }
    }
    return CX_OK;
bad:
    cx_ack_free(ack);
    return CX_INVALID;
}

int cx_ack_parse(const char *text, size_t len, const char *agent_id, cx_ack_t *ack, cx_msg_error_t *err)
{
    json_object *o;
    int rc;

    memset(ack, 0, sizeof(*ack));
    memset(err, 0, sizeof(*err));
    if ((o = parse(text, len, err)) == NULL)
        return CX_INVALID;
    rc = cx_ack_check(o, CX_MSG_REDIS, agent_id, NULL, ack, err);
    json_object_put(o);
    return rc;
}

void cx_event_free(cx_event_t *ev)
{
    if (ev == NULL)
        return;
    json_object_put(ev->obj);
    free(ev->error_message);
    memset(ev, 0, sizeof(*ev));
}

/* count -- an optional count: a JSON integer >= 0, else -1 (absent, or not a count: ignored, so that a
 * bad count never costs the status it comes with). */
static int64_t count(json_object *o, const char *name)
{
    json_object *v;
    int64_t n;

    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    n = json_object_get_int64(v);
    return n >= 0 ? n : -1;
}

int cx_event_parse(const char *text, size_t len, cx_event_t *ev, cx_msg_error_t *err)
{
    json_object *v = NULL;

    memset(ev, 0, sizeof(*ev));
    memset(err, 0, sizeof(*err));
    ev->processed_count = ev->error_count = -1;
    if ((ev->obj = parse(text, len, err)) == NULL)
        return CX_INVALID;
    if (!json_object_object_get_ex(ev->obj, "type", &v) || !json_object_is_type(v, json_type_string)) {
        fail(err, "type", "is required (a string)");
        goto bad;
    }
    if (!id_ok(v, 64)) {
        fail(err, "type", "is not a message type");
        goto bad;
    }
    ev->type = json_object_get_string(v);
    if (strcmp(ev->type, CX_EVENT_RUN_STATUS) != 0)
        return CX_OK; /* a type the control plane does not read */
    if (ident(ev->obj, "agent_id", 255, &ev->agent_id, err) != CX_OK ||
        ident(ev->obj, "run_id", CX_RUN_ID_MAX, &ev->run_id, err) != CX_OK ||
        ident(ev->obj, "pipeline_id", CX_RUN_ID_MAX, &ev->pipeline_id, err) != CX_OK)
        goto bad;
    if (ev->agent_id == NULL) {
        fail(err, "agent_id", "is required: only the run's agent may report on it");
        goto bad;
    }
    if (ev->run_id == NULL && ev->pipeline_id == NULL) {
        fail(err, "run_id", "run_id or pipeline_id is required");
        goto bad;
    }
    if (json_object_object_get_ex(ev->obj, "status", &v) && v != NULL) {
        cx_run_status_t st;
        if (!json_object_is_type(v, json_type_string) || cx_run_status_parse(json_object_get_string(v), &st) != CX_OK ||
            st == CX_RUN_PENDING || st == CX_RUN_LOST) {
            fail(err, "status", "must be one of running, paused, completed, failed, stopped");
            goto bad;
        }
        ev->has_status = 1;
        ev->status = st;
    }
    ev->processed_count = count(ev->obj, "processed_count");
    ev->error_count = count(ev->obj, "error_count");
    if (free_text(ev->obj, "error_message", CX_MSG_REDIS, &ev->error_message, &ev->fixed, err) != CX_OK)
        goto bad;
    return CX_OK;
bad:
    cx_event_free(ev);
    return CX_INVALID;
}

/* ---- the log of refused messages ---- */

int cx_loglimit_allow(cx_loglimit_t *l, const char *what)
{
    int64_t now = cx_now_ms();

    if (l->start == 0 || now - l->start >= LOG_WINDOW_MS) {
        if (l->suppressed > 0)
            cx_log_warnx("%u more %s were not logged in the last %d s", l->suppressed, what, LOG_WINDOW_MS / 1000);
        l->start = now;
        l->logged = l->suppressed = 0;
    }
    if (l->logged >= LOG_BURST) {
        l->suppressed++;
        return 0;
    }
    l->logged++;
    return 1;
}

void cx_printable(const char *s, size_t len, char out[84])
{
    size_t i;

    if (s == NULL) {
        memcpy(out, "-", 2);
        return;
    }
    for (i = 0; i < len && i < 80; i++) {
        out[i] = s[i];
        if (s[i] < 0x20 || s[i] >= 0x7f)
            out[i] = '?';
    }
    if (i < len)
        out[i++] = '.', out[i++] = '.', out[i++] = '.';
    out[i] = '\0';
}

void cx_agent_msg_rejected(const char *kind, const char *source, const char *agent_id, size_t idlen, const cx_msg_error_t *err)
{
    static cx_loglimit_t limit;
    char id[84];

    cx_shm_count(strcmp(kind, "ack") == 0 ? CX_C_AGENT_ACKS_REJECTED : CX_C_AGENT_EVENTS_REJECTED, 1);
    if (!cx_loglimit_allow(&limit, "refused agent messages"))
        return;
    cx_printable(agent_id, idlen, id);
    cx_log_warnx("refused an %s from agent %s (%s): %s: %s", strcmp(kind, "ack") == 0 ? "acknowledgement" : "event", id, source,
                 err->field, err->msg);
}
