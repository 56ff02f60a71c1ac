/*
 * test_jsonw.c -- the JSON writer (src/jsonw.c) writes what json-c writes (plain, no slash escapes) for
 * the same values: every byte escaped or not as json-c does, commas and nesting, null, booleans, 64-bit
 * integers, times; and a pipeline written with cx_pipeline_write is cx_pipeline_json's text, with and
 * without status, with a config left out, with NULL fields and text of every kind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json.h>

#include "conduix/cx.h"
#include "conduix/jsonw.h"
#include "conduix/shapes.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* same -- the writer's text equals json-c's for o (freed). */
static void same(cx_jw_t *w, json_object *o)
{
    const char *want = json_object_to_json_string_ext(o, FLAGS);
    char *got = cx_strndup(w->p, w->len);
    assert_string_equal(got, want);
    free(got);
    json_object_put(o);
    cx_jw_free(w);
}

static void t_strings(void **state)
{
    (void)state;
    char every[256];
    for (int i = 0; i < 255; i++)
        every[i] = (char)(i + 1); /* every byte but NUL, UTF-8 or not */
    every[255] = '\0';
    const char *texts[] = {"",         "plain", "a\"b\\c/d", "\b\f\n\r\t\x01\x1f\x7f", "\xc3\xa9\xf0\x9f\x98\x80 \xe2\x80\xa8",
                           "\xff\xfe", every};
    for (size_t i = 0; i < CX_ARRAY_SIZE(texts); i++) {
        cx_jw_t w;
        json_object *a = json_object_new_array();
        cx_jw_init(&w);
        cx_jw_array(&w);
        cx_jw_str(&w, texts[i]);
        cx_jw_strn(&w, texts[i], strlen(texts[i]) / 2);
        cx_jw_array_end(&w);
        json_object_array_add(a, json_object_new_string(texts[i]));
        json_object_array_add(a, json_object_new_string_len(texts[i], (int)(strlen(texts[i]) / 2)));
        same(&w, a);
    }
}

static void t_nesting(void **state)
{
    (void)state;
    cx_jw_t w;
    json_object *o = json_object_new_object(), *in = json_object_new_object(), *arr = json_object_new_array();

    cx_jw_init(&w);
    cx_jw_object(&w);
    cx_jw_key(&w, "a");
    cx_jw_int(&w, INT64_MIN);
    cx_jw_key(&w, "b");
    cx_jw_int(&w, INT64_MAX);
    cx_jw_key(&w, "empty");
    cx_jw_object(&w);
    cx_jw_object_end(&w);
    cx_jw_key(&w, "list");
    cx_jw_array(&w);
    cx_jw_bool(&w, 1);
    cx_jw_bool(&w, 0);
    cx_jw_null(&w);
    cx_jw_array(&w);
    cx_jw_array_end(&w);
    cx_jw_object(&w);
    cx_jw_key(&w, "k\"ey");
    cx_jw_str(&w, NULL);
    cx_jw_object_end(&w);
    cx_jw_array_end(&w);
    cx_jw_key(&w, "t");
    cx_jw_time(&w, 1795640400123);
    cx_jw_key(&w, "t0");
    cx_jw_time(&w, 0);
    cx_jw_object_end(&w);

    json_object_object_add(o, "a", json_object_new_int64(INT64_MIN));
    json_object_object_add(o, "b", json_object_new_int64(INT64_MAX));
    json_object_object_add(o, "empty", json_object_new_object());
    json_object_array_add(arr, json_object_new_boolean(1));
    json_object_array_add(arr, json_object_new_boolean(0));
    json_object_array_add(arr, NULL);
    json_object_array_add(arr, json_object_new_array());
    json_object_object_add(in, "k\"ey", NULL);
    json_object_array_add(arr, in);
    json_object_object_add(o, "list", arr);
    json_object_object_add(o, "t", cx_json_time(1795640400123));
    json_object_object_add(o, "t0", cx_json_time(0));
    same(&w, o);
}

static void t_pipeline(void **state)
{
    (void)state;
    cx_pipeline_t p = {
        .id = "00000000-0000-4000-8000-000000000001",
        .name = "it's a \"pipe\" \\ \xc3\xa9",
        .description = "line\nbreak\ttab",
        .config_yaml = "sources:\n  in:\n    type: kafka\n",
        .version = 7,
        .created_by = "a@example.com",
        .updated_by = NULL,
        .created_at = 1795640400000,
        .updated_at = 1795640460999,
        .status = CX_RUN_RUNNING,
    };
    for (int with = 0; with <= 1; with++) {
        cx_jw_t w;
        cx_jw_init(&w);
        cx_pipeline_write(&w, &p, with);
        same(&w, cx_pipeline_json(&p, with));
    }
    /* a list that left the config out, and a pipeline without description or times */
    p.config_yaml = NULL;
    p.config_size = 123456;
    p.description = NULL;
    p.created_at = p.updated_at = 0;
    {
        cx_jw_t w;
        cx_jw_init(&w);
        cx_pipeline_write(&w, &p, 1);
        same(&w, cx_pipeline_json(&p, 1));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_strings),
        cmocka_unit_test(t_nesting),
        cmocka_unit_test(t_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
