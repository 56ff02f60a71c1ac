/*
 * fuzz_yaml.c -- fuzz target of the config_yaml check of pipelines (src/api/pipelines.c,
 * cx_pipeline_check_yaml): any bytes as a pipeline's YAML. It must answer within the fuzzer's time and
 * memory limits whatever the aliases (it never expands them); a refusal comes with a non-empty message
 * that is valid UTF-8 (it goes into a JSON answer); an answer is the same twice.
 */
#include <string.h>

#include "conduix/cx.h"
#include "conduix/pipelines.h"
#include "conduix/utf8.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[512], msg2[512];
    int rc = cx_pipeline_check_yaml((const char *)data, size, msg, sizeof(msg));

    FUZZ_CHECK(rc == CX_OK || rc == CX_INVALID);
    if (rc == CX_INVALID) {
        size_t n = strnlen(msg, sizeof(msg));
        FUZZ_CHECK(n > 0 && n < sizeof(msg));
        FUZZ_CHECK(cx_utf8_check(msg, n, NULL) >= 0);
        FUZZ_CHECK(cx_pipeline_check_yaml((const char *)data, size, msg2, sizeof(msg2)) == CX_INVALID && strcmp(msg, msg2) == 0);
    } else {
        FUZZ_CHECK(cx_pipeline_check_yaml((const char *)data, size, msg2, sizeof(msg2)) == CX_OK);
    }
    return 0;
}
