/*
 * fuzz_heartbeat.c -- fuzz target of the heartbeat parser (src/heartbeat.c): any bytes as the value of a
 * heartbeat key or the body of POST /agents/:id/heartbeat. A refusal names a field and says why in
 * printable text; an accepted beat has a valid agent id, finite usages, and stored texts (pipelines,
 * labels, hostname, ip_address, version) that are valid UTF-8 without control characters and fit their
 * columns; it is accepted again under its own id and refused under another.
 */
#include <math.h>
#include <string.h>

#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/heartbeat.h"
#include "conduix/utf8.h"
#include "fuzz.h"

static void check_printable(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    FUZZ_CHECK(n > 0 && n < max);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)s[i] >= 0x20);
    FUZZ_CHECK(cx_utf8_check(s, n, NULL) >= 0);
}

/* check_text -- a stored text: NULL, or valid UTF-8 without C0 controls of at most max bytes. */
static void check_text(const char *s, size_t max)
{
    unsigned f;
    if (s == NULL)
        return;
    FUZZ_CHECK(strlen(s) <= max);
    FUZZ_CHECK(cx_utf8_check(s, strlen(s), &f) >= 0);
}

/* check_json -- a stored JSON text parses to the type said, and is at most a TEXT column. */
static void check_json(const char *s, json_type type)
{
    json_object *o;
    FUZZ_CHECK(s != NULL && strlen(s) <= 65535);
    FUZZ_CHECK(cx_utf8_check(s, strlen(s), NULL) >= 0);
    o = json_tokener_parse(s);
    FUZZ_CHECK(o != NULL && json_object_is_type(o, type));
    json_object_put(o);
}

/* reference -- a beat with escapes parses to the same after any input: nothing of a refused text is
 * left in the parser for the next agent's beat (json-c's reset keeps a pending surrogate). */
static void reference(void)
{
    static const char ref[] = "{\"agent_id\":\"caf\\u00e9\",\"hostname\":\"\\ud83d\\ude00 h\",\"pipelines\":[\"p\\u0031\"]}";
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    FUZZ_CHECK(cx_heartbeat_parse(ref, sizeof(ref) - 1, "caf\xc3\xa9", &hb, &err) == CX_OK);
    FUZZ_CHECK(strcmp(hb.hostname, "\xf0\x9f\x98\x80 h") == 0 && strcmp(hb.pipelines, "[\"p1\"]") == 0);
    cx_heartbeat_free(&hb);
}

FUZZ_TARGET_THEN(one, reference)

static void one(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    cx_heartbeat_t hb, again;
    cx_hb_error_t err;
    char id[CX_AGENT_ID_MAX + 2];

    if (cx_heartbeat_parse(text, size, NULL, &hb, &err) != CX_OK) {
        check_printable(err.field, sizeof(err.field));
        check_printable(err.msg, sizeof(err.msg));
        FUZZ_CHECK(!err.too_large || size > CX_HB_MAX_BYTES);
        return;
    }
    FUZZ_CHECK(size <= CX_HB_MAX_BYTES);
    FUZZ_CHECK(cx_agent_id_valid(hb.agent_id, strlen(hb.agent_id)));
    FUZZ_CHECK(isfinite(hb.cpu_usage) && hb.cpu_usage >= 0 && isfinite(hb.memory_usage) && hb.memory_usage >= 0 &&
               isfinite(hb.disk_usage) && hb.disk_usage >= 0);
    check_text(hb.hostname, 255);
    check_text(hb.ip_address, 64);
    check_text(hb.version, 64);
    check_json(hb.pipelines, json_type_array);
    FUZZ_CHECK(hb.npipelines <= CX_HB_MAX_PIPELINES);
    if (hb.labels != NULL)
        check_json(hb.labels, json_type_object);

    /* the same text, under its own id: accepted; under another: refused, naming agent_id */
    snprintf(id, sizeof(id), "%s", hb.agent_id);
    FUZZ_CHECK(cx_heartbeat_parse(text, size, id, &again, &err) == CX_OK);
    FUZZ_CHECK(strcmp(again.agent_id, id) == 0 && again.npipelines == hb.npipelines);
    cx_heartbeat_free(&again);
    id[0] = id[0] == 'x' ? 'y' : 'x';
    FUZZ_CHECK(cx_heartbeat_parse(text, size, id, &again, &err) == CX_INVALID);
    FUZZ_CHECK(strcmp(err.field, "agent_id") == 0);
    cx_heartbeat_free(&hb);
}
