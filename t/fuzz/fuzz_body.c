/*
 * fuzz_body.c -- fuzz target of request bodies: any bytes through the strict JSON parse of
 * src/http/body.c, then every body validator: pipeline create and update (src/api/pipelines.c), the
 * users PUT body (src/api/users.c), the login body (src/api/auth.c); the raw bytes as an If-Match value
 * and through the log's JSON escaper. A refusal comes with a message that is valid UTF-8 (it is sent in
 * a JSON answer); an accepted document has no repeated key and serialises and parses back; a validator
 * that accepts gives fields that pass their checks again, one that refuses names a field.
 */
#include <string.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/http.h"
#include "conduix/pipelines.h"
#include "conduix/utf8.h"
#include "fuzz.h"

static void check_text(const char *s)
{
    size_t n = strlen(s);
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(cx_utf8_check(s, n, NULL) >= 0);
}

static void pipeline_body(json_object *o, int update)
{
    cx_pipeline_input_t in;
    json_object *details = NULL;
    char msg[512];
    int rc = cx_pipeline_parse_body(o, update, &in, &details);

    FUZZ_CHECK(rc == CX_OK || rc == CX_INVALID);
    if (rc != CX_OK) {
        FUZZ_CHECK(details != NULL && json_object_object_length(details) > 0);
        json_object_object_foreach(details, k, v)
        {
            FUZZ_CHECK(json_object_is_type(v, json_type_string));
            check_text(json_object_get_string(v));
            (void)k;
        }
        json_object_put(details);
        return;
    }
    FUZZ_CHECK(details == NULL);
    if (!update)
        FUZZ_CHECK(in.name != NULL && in.config_yaml != NULL);
    else
        FUZZ_CHECK(in.name != NULL || in.description != NULL || in.config_yaml != NULL);
    if (in.name != NULL)
        FUZZ_CHECK(cx_pipeline_check_name(in.name, strlen(in.name), msg, sizeof(msg)) == CX_OK);
    if (in.config_yaml != NULL)
        FUZZ_CHECK(cx_pipeline_check_yaml(in.config_yaml, strlen(in.config_yaml), msg, sizeof(msg)) == CX_OK);
    if (in.description != NULL)
        FUZZ_CHECK(strlen(in.description) <= CX_PIPELINE_DESC_MAX &&
                   cx_utf8_check(in.description, strlen(in.description), NULL) >= 0);
    FUZZ_CHECK(in.version >= 0 && (update || in.version == 0));
}

static void small_bodies(json_object *o)
{
    const char *v, *field, *why;
    int rc = cx_api_users_update_body(o, &v, &field, &why);
    FUZZ_CHECK(rc == CX_OK ? v != NULL && field == NULL &&
                                 (strcmp(v, "viewer") == 0 || strcmp(v, "operator") == 0 || strcmp(v, "admin") == 0)
                           : rc == CX_INVALID && v == NULL && field != NULL && why != NULL);
    rc = cx_api_login_body(o, &v, &field, &why);
    FUZZ_CHECK(rc == CX_OK ? v != NULL && field == NULL : rc == CX_INVALID && v == NULL && field != NULL && why != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = cx_malloc(size + 1), msg[256], esc[4096];
    json_object *o = NULL;
    int64_t version;

    memcpy(buf, data, size);
    buf[size] = '\0';
    memset(msg, 'X', sizeof(msg));
    int rc = cx_body_parse_text(buf, size, &o, msg, sizeof(msg));
    FUZZ_CHECK(rc == CX_OK || rc == CX_INVALID);
    if (rc != CX_OK) {
        FUZZ_CHECK(o == NULL);
        FUZZ_CHECK(strnlen(msg, sizeof(msg)) < sizeof(msg));
        check_text(msg);
    } else {
        size_t len;
        const char *again = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
        char *copy = cx_malloc(len + 1);
        json_object *o2 = NULL;
        memcpy(copy, again, len + 1);
        FUZZ_CHECK(cx_body_parse_text(copy, len, &o2, msg, sizeof(msg)) == CX_OK);
        FUZZ_CHECK(json_object_equal(o, o2)); /* numbers keep their text in json-c, NaN is refused */
        json_object_put(o2);
        free(copy);
        pipeline_body(o, 0);
        pipeline_body(o, 1);
        small_bodies(o);
        json_object_put(o);
    }

    /* the same bytes as an If-Match header and in a log line */
    if (cx_pipeline_parse_if_match(buf, &version) == CX_OK)
        FUZZ_CHECK(version >= 0);
    size_t n = cx_json_escape(esc, sizeof(esc), buf, size);
    FUZZ_CHECK(n < sizeof(esc) && strlen(esc) == n);
    FUZZ_CHECK(cx_utf8_check(esc, n, NULL) >= 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)esc[i] >= 0x20 && esc[i] != 0x7f);
    char quoted[4100];
    snprintf(quoted, sizeof(quoted), "\"%s\"", esc);
    json_object *js = json_tokener_parse(quoted);
    FUZZ_CHECK(js != NULL && json_object_is_type(js, json_type_string));
    json_object_put(js);
    free(buf);
    return 0;
}
