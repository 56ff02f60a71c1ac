/*
 * agentmsg.h -- the messages agents send besides heartbeats (src/agentmsg.c): acknowledgements
 * (`agent:responses:{agent_id}`, or POST /agents/:id/commands/:command_id/ack) and run events
 * (`pipeline:events`), parsed and checked by pure functions (no I/O, no logging; fuzzed in t/fuzz/), and
 * the rate-limited log of what agents sent that was refused. The rules (docs/api.md, "What agents may
 * send"):
 *   - an identifier (agent_id, command_id, run_id, pipeline_id) is valid or the message is refused: its
 *     length, valid UTF-8, no space or control character (a NUL would cut it short in C);
 *   - free text (message, error, error_message) never costs an outcome: over Redis, where nobody can be
 *     told, bytes that are not UTF-8 and NULs become U+FFFD; over REST they are a 400 naming the field.
 *     In both, a text longer than CX_AGENT_TEXT_MAX bytes is cut and ends with CX_TEXT_TRUNCATED.
 */
#ifndef CONDUIX_AGENTMSG_H
#define CONDUIX_AGENTMSG_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>

#include "conduix/states.h"

#define CX_AGENT_TEXT_MAX 65535  /* bytes of a stored agent text: the TEXT columns (result_error, error_message) */
#define CX_AGENT_MSG_MAX 1048576 /* a pub/sub message larger than this is refused unread */
#define CX_COMMAND_ID_MAX 64     /* command ids are UUIDs (36); a longer one names no command */
#define CX_RUN_ID_MAX 36         /* run and pipeline ids are UUIDs (VARCHAR(36)) */

/* cx_agentmsg_json -- text[0..len) (need not be NUL-terminated) as strict JSON, all of it, nested at most
 * 16 deep; with validate_utf8 bytes that are not UTF-8 are refused, else kept (for the caller to repair
 * or refuse field by field). NULL with why (for people) filled. The parse state never outlives a
 * text: nothing of one agent's message reaches the next. */
json_object *cx_agentmsg_json(const char *text, size_t len, int validate_utf8, char *why, size_t whylen);

/* Where a message came from: over Redis text is repaired, over REST refused (see above); REST also
 * refuses unknown fields. */
typedef enum { CX_MSG_REDIS = 0, CX_MSG_REST } cx_msg_via_t;

/* Why a message was refused: the field at fault ("body" for the whole) and a message for people. */
typedef struct cx_msg_error {
    char field[64];
    char msg[224];
} cx_msg_error_t;

/* An acknowledgement: {"command_id","agent_id"?,"success","message"?,"error"?,"timestamp"?}. */
typedef struct cx_ack {
    json_object *obj;       /* the message (owned; command_id and agent_id point into it) */
    const char *command_id; /* NULL when absent (REST: the URL names it) */
    const char *agent_id;   /* NULL when absent */
    int success;
    char *message; /* owned: the text as it is stored, NULL when absent or null */
    char *error;
    int64_t timestamp_ms; /* the agent's clock, -1 when absent; never used */
    unsigned fixed;       /* CX_TEXT_REPAIRED | CX_TEXT_TRUNCATED_FLAG (utf8.h) of message and error */
} cx_ack_t;

/* cx_ack_parse -- parse and check an acknowledgement published on agent:responses:{agent_id} (text need
 * not be NUL-terminated; agent_id is the channel's, already valid). command_id and a boolean success are
 * required; an agent_id in the message must be the channel's. CX_OK with *ack filled (cx_ack_free it),
 * or CX_INVALID with *err. */
int cx_ack_parse(const char *text, size_t len, const char *agent_id, cx_ack_t *ack, cx_msg_error_t *err);

/* cx_ack_check -- the same checks on an object already parsed (the REST body; via CX_MSG_REST refuses
 * unknown fields and text that is not UTF-8 or holds a NUL), with agent_id and command_id the ones the
 * message must name when it names them (command_id NULL: the message must carry it). Takes its own
 * reference to o. */
int cx_ack_check(json_object *o, cx_msg_via_t via, const char *agent_id, const char *command_id, cx_ack_t *ack,
                 cx_msg_error_t *err);

void cx_ack_free(cx_ack_t *ack);

/* A run event: {"type":"run_status","agent_id","pipeline_id"?,"run_id"?,"status"?,"processed_count"?,
 * "error_count"?,"error_message"?,"timestamp"?}. */
typedef struct cx_event {
    json_object *obj; /* the message (owned; the ids point into it) */
    const char *type; /* "run_status", or another type the control plane does not read */
    const char *agent_id;
    const char *pipeline_id; /* NULL when absent; run_id or pipeline_id is there */
    const char *run_id;
    int has_status;
    cx_run_status_t status;  /* running, paused, completed, failed or stopped */
    int64_t processed_count; /* -1 when absent (or not a count: ignored) */
    int64_t error_count;
    char *error_message; /* owned, as stored; NULL when absent */
    unsigned fixed;
} cx_event_t;

/* cx_event_parse -- parse and check a pipeline:events message. A run_status event needs a valid
 * agent_id and run_id or pipeline_id; a status must be one an agent may report. Another type is CX_OK
 * with only ev->type set. CX_OK (cx_event_free it), or CX_INVALID with *err. */
int cx_event_parse(const char *text, size_t len, cx_event_t *ev, cx_msg_error_t *err);

void cx_event_free(cx_event_t *ev);

#define CX_EVENT_RUN_STATUS "run_status" /* the one type of pipeline:events message the control plane reads */

/* A log limit: at most 20 lines per 10 s; then one line saying how many were not written. */
typedef struct cx_loglimit {
    int64_t start;
    unsigned logged, suppressed;
} cx_loglimit_t;

/* cx_loglimit_allow -- may one more line be written now? When a window ends with lines held back, it
 * logs how many (what names them: "rejected heartbeats"). */
int cx_loglimit_allow(cx_loglimit_t *l, const char *what);

/* cx_printable -- s[0..len) fit for a log line: at most 80 bytes, bytes outside printable ASCII as '?',
 * "..." when cut. */
void cx_printable(const char *s, size_t len, char out[84]);

/* cx_agent_msg_rejected -- a refused acknowledgement ("ack") or run event ("event") from source
 * ("redis", "rest"): counted, and logged with the agent id and the reason at a bounded rate. */
void cx_agent_msg_rejected(const char *kind, const char *source, const char *agent_id, size_t idlen, const cx_msg_error_t *err);

#endif
