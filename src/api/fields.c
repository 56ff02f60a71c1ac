/*
 * src/api/fields.c -- the checks of request bodies that several resources share: a bad field recorded in
 * the details object of a 400, a string field without NUL bytes, and the 400 that names every bad field
 * (its message capped, the details kept whole).
 */
#include <stdio.h>
#include <string.h>

#include "conduix/api.h"
#include "conduix/reply.h"

void cx_api_fail_field(json_object *details, const char *field, const char *msg)
{
    json_object_object_add(details, field, json_object_new_string(msg));
}

const char *cx_api_string_field(json_object *details, const char *key, json_object *v, size_t *len)
{
    const char *s;

    if (!json_object_is_type(v, json_type_string)) {
        cx_api_fail_field(details, key, "must be a string");
        return NULL;
    }
    s = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    if (strlen(s) != *len) {
        cx_api_fail_field(details, key, "must not contain NUL characters");
        return NULL;
    }
    return s;
}

int cx_api_invalid_body(cx_req_t *r, json_object *details)
{
    char text[1024];
    size_t o = 0;

    text[0] = '\0';
    json_object_object_foreach(details, k, v)
    {
        int n = snprintf(text + o, sizeof(text) - o, "%s%.64s: %s", o ? "; " : "", k, json_object_get_string(v));
        if (n < 0 || (size_t)n >= sizeof(text) - o)
            break;
        o += (size_t)n;
    }
    return cx_reply_error(r, 400, "VALIDATION_ERROR", text, details);
}
