/*
 * fuzz_ack.c -- fuzz target of the acknowledgement checks (src/agentmsg.c) and of the text cleaner
 * (src/utf8.c): any bytes as a message on agent:responses:{agent}, then the same object as a REST body.
 * Whatever is accepted is safe to store: a command id that is a valid id (no NUL: it would cut the lookup
 * short), texts that are valid UTF-8 without NUL bytes and fit a TEXT column, an agent id that is the
 * channel's. REST accepts no more than Redis, and keeps the texts unchanged but for a cut. The cleaner
 * always gives valid UTF-8 without NUL, within its bound.
 */
#include <string.h>

#include "conduix/agentmsg.h"
#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/utf8.h"
#include "fuzz.h"

#define AGENT "agent-7"

static void check_text(const char *s)
{
    size_t n;
    if (s == NULL)
        return;
    n = strlen(s);
    FUZZ_CHECK(n <= CX_AGENT_TEXT_MAX);
    FUZZ_CHECK(cx_utf8_check(s, n, NULL) >= 0);
}

static void check_ack(const cx_ack_t *a)
{
    FUZZ_CHECK(a->obj != NULL);
    if (a->command_id != NULL)
        FUZZ_CHECK(strlen(a->command_id) <= CX_COMMAND_ID_MAX && cx_agent_id_valid(a->command_id, strlen(a->command_id)));
    FUZZ_CHECK(a->agent_id == NULL || strcmp(a->agent_id, AGENT) == 0);
    FUZZ_CHECK(a->success == 0 || a->success == 1);
    check_text(a->message);
    check_text(a->error);
}

/* the cleaner on raw bytes, with a bound that forces a cut now and then */
static void check_clean(const uint8_t *data, size_t size)
{
    static const size_t bounds[] = {CX_AGENT_TEXT_MAX, 40, sizeof(CX_TEXT_TRUNCATED) - 1};
    for (size_t k = 0; k < CX_ARRAY_SIZE(bounds); k++) {
        unsigned fixed;
        char *c = cx_utf8_clean((const char *)data, size, bounds[k], &fixed);
        size_t n = strlen(c);
        FUZZ_CHECK(cx_utf8_check(c, n, NULL) >= 0);
        FUZZ_CHECK(memchr(data, '\0', size) == NULL || (fixed & CX_TEXT_REPAIRED));
        if (fixed & CX_TEXT_TRUNCATED_FLAG) {
            FUZZ_CHECK(n <= bounds[k]);
            FUZZ_CHECK(n >= sizeof(CX_TEXT_TRUNCATED) - 1 &&
                       memcmp(c + n - (sizeof(CX_TEXT_TRUNCATED) - 1), CX_TEXT_TRUNCATED, sizeof(CX_TEXT_TRUNCATED) - 1) == 0);
        } else {
            FUZZ_CHECK(!(fixed & CX_TEXT_REPAIRED) ? n == size && memcmp(c, data, size) == 0 : n >= size);
        }
        free(c);
    }
}

/* reference -- a message with escapes parses to the same after any input (nothing of a refused text
 * is left in the shared parser). */
static void reference(void)
{
    static const char ref[] = "{\"command_id\":\"c\\u0031\",\"success\":true,\"message\":\"caf\\u00e9 \\ud83d\\ude00\"}";
    cx_msg_error_t err;
    cx_ack_t ack;
    FUZZ_CHECK(cx_ack_parse(ref, sizeof(ref) - 1, AGENT, &ack, &err) == CX_OK);
    FUZZ_CHECK(strcmp(ack.command_id, "c1") == 0 && strcmp(ack.message, "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0 && !ack.fixed);
    cx_ack_free(&ack);
}

FUZZ_TARGET_THEN(one, reference)

static void one(const uint8_t *data, size_t size)
{
    cx_msg_error_t err;
    cx_ack_t ack, rest;
    int rc;

    check_clean(data, size);
    rc = cx_ack_parse((const char *)data, size, AGENT, &ack, &err);
    FUZZ_CHECK(rc == CX_OK || rc == CX_INVALID);
    if (rc != CX_OK) {
        FUZZ_CHECK(err.field[0] != '\0' && err.msg[0] != '\0');
        return;
    }
    check_ack(&ack);
    FUZZ_CHECK(ack.command_id != NULL);
    /* the same object as a REST body for that command: accepted only if Redis accepted it */
    rc = cx_ack_check(ack.obj, CX_MSG_REST, AGENT, ack.command_id, &rest, &err);
    if (rc == CX_OK) {
        check_ack(&rest);
        FUZZ_CHECK(rest.success == ack.success);
        FUZZ_CHECK(!(rest.fixed & CX_TEXT_REPAIRED)); /* REST refuses what Redis repairs */
        FUZZ_CHECK((rest.message == NULL) == (ack.message == NULL) && (rest.error == NULL) == (ack.error == NULL));
        cx_ack_free(&rest);
    } else {
        FUZZ_CHECK(err.field[0] != '\0');
    }
    cx_ack_free(&ack);
}
