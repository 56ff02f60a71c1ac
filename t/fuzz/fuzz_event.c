/*
 * fuzz_event.c -- fuzz target of the run-event parser (src/agentmsg.c): any bytes as a message on
 * pipeline:events. An accepted run_status event names its agent with a valid id, a run or a pipeline
 * with valid ids of at most 36 bytes, a status an agent may report, counts that are -1 or more, and an
 * error_message that is valid UTF-8 without NUL bytes within a TEXT column; parsing it again gives the
 * same.
 */
#include <string.h>

#include "conduix/agentmsg.h"
#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/utf8.h"
#include "fuzz.h"

static void check_id(const char *s, size_t max)
{
    if (s != NULL)
        FUZZ_CHECK(strlen(s) <= max && cx_agent_id_valid(s, strlen(s)));
}

/* reference -- a message with escapes parses to the same after any input (nothing of a refused text
 * is left in the shared parser). */
static void reference(void)
{
    static const char ref[] = "{\"type\":\"run_status\",\"agent_id\":\"a\\u0031\",\"run_id\":\"r1\",\"status\":\"failed\",\"error_"
                              "message\":\"\\ud83d\\ude00\"}";
    cx_msg_error_t err;
    cx_event_t ev;
    FUZZ_CHECK(cx_event_parse(ref, sizeof(ref) - 1, &ev, &err) == CX_OK);
    FUZZ_CHECK(strcmp(ev.agent_id, "a1") == 0 && strcmp(ev.error_message, "\xf0\x9f\x98\x80") == 0);
    cx_event_free(&ev);
}

FUZZ_TARGET_THEN(one, reference)

static void one(const uint8_t *data, size_t size)
{
    cx_msg_error_t err;
    cx_event_t ev, again;
    int rc = cx_event_parse((const char *)data, size, &ev, &err);

    FUZZ_CHECK(rc == CX_OK || rc == CX_INVALID);
    if (rc != CX_OK) {
        FUZZ_CHECK(err.field[0] != '\0' && err.msg[0] != '\0');
        return;
    }
    FUZZ_CHECK(ev.type != NULL);
    if (strcmp(ev.type, CX_EVENT_RUN_STATUS) == 0) {
        FUZZ_CHECK(ev.agent_id != NULL);
        check_id(ev.agent_id, CX_AGENT_ID_MAX);
        FUZZ_CHECK(ev.run_id != NULL || ev.pipeline_id != NULL);
        check_id(ev.run_id, CX_RUN_ID_MAX);
        check_id(ev.pipeline_id, CX_RUN_ID_MAX);
        FUZZ_CHECK(!ev.has_status || ev.status == CX_RUN_RUNNING || ev.status == CX_RUN_PAUSED || ev.status == CX_RUN_COMPLETED ||
                   ev.status == CX_RUN_FAILED || ev.status == CX_RUN_STOPPED);
        FUZZ_CHECK(ev.processed_count >= -1 && ev.error_count >= -1);
        if (ev.error_message != NULL) {
            size_t n = strlen(ev.error_message);
            FUZZ_CHECK(n <= CX_AGENT_TEXT_MAX && cx_utf8_check(ev.error_message, n, NULL) >= 0);
        }
    }
    FUZZ_CHECK(cx_event_parse((const char *)data, size, &again, &err) == CX_OK);
    FUZZ_CHECK(again.has_status == ev.has_status && again.processed_count == ev.processed_count);
    cx_event_free(&again);
    cx_event_free(&ev);
}
