/*
 * fuzz_config.c -- fuzz target of the configuration loader (src/config.c): any bytes as the YAML file. A
 * refusal is one line naming the key or the position; an accepted configuration loads again from the same
 * text to the same restart-only values (cx_config_diff_restart finds no difference) and is freed whole.
 */
#include <string.h>

#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    cx_log_init("error", "text", NULL); /* the loader may warn; keep the fuzzer's output readable */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    cx_config_t *cfg, *again;

    memset(err, 'X', sizeof(err));
    cfg = cx_config_load_string((const char *)data, size, "fuzz.yaml", 0, err, sizeof(err));
    if (cfg == NULL) {
        size_t n = strnlen(err, sizeof(err));
        FUZZ_CHECK(n > 0 && n < sizeof(err));
        FUZZ_CHECK(memchr(err, '\n', n) == NULL);
        return 0;
    }
    FUZZ_CHECK(cfg->auth.jwt_secret != NULL && strlen(cfg->auth.jwt_secret) >= 32);
    FUZZ_CHECK(cfg->server.port >= 1 && cfg->server.port <= 65535 && cfg->server.max_body_size >= 1);
    again = cx_config_load_string((const char *)data, size, "fuzz.yaml", 0, err, sizeof(err));
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(cx_config_diff_restart(cfg, again) == 0);
    cx_config_free(again);
    cx_config_free(cfg);
    return 0;
}
