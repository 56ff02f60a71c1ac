/*
 * replay.c -- runs a fuzz target's seed corpus through its LLVMFuzzerTestOneInput without libFuzzer, so
 * `make check` (any compiler, with or without the sanitizers) replays every seed and every regression
 * input saved there. Linked with one fuzz_<name>.c; FUZZ_NAME is <name>. The corpus folder is
 * $CX_SRCDIR/t/fuzz/corpus/<name>/ or the first argument. TAP: one line for the whole corpus.
 */
#include <dirent.h>
#include <string.h>

#include "conduix/cx.h"
#include "fuzz.h"

/* A target without one-time setup gets this one (libFuzzer treats LLVMFuzzerInitialize as optional). */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int main(int argc, char **argv)
{
    char dir[4096];
    const char *src = getenv("CX_SRCDIR");
    if (argc > 1)
        snprintf(dir, sizeof(dir), "%s", argv[1]);
    else
        snprintf(dir, sizeof(dir), "%s/t/fuzz/corpus/%s", src ? src : ".", FUZZ_NAME);
    printf("1..1\n");
    fflush(stdout);
    LLVMFuzzerInitialize(&argc, &argv);
    DIR *d = opendir(dir);
    if (d == NULL) {
        printf("not ok 1 - no corpus at %s\n", dir);
        return 1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[8192];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        static uint8_t buf[1 << 20];
        size_t len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        uint8_t *copy = cx_malloc(len ? len : 1); /* exactly len bytes, so ASan sees any overread */
        memcpy(copy, buf, len);
        LLVMFuzzerTestOneInput(copy, len); /* a broken invariant aborts: the test fails */
        free(copy);
        n++;
    }
    closedir(d);
    printf("%s 1 - %d inputs of the %s corpus replayed\n", n > 0 ? "ok" : "not ok", n, FUZZ_NAME);
    return n > 0 ? 0 : 1;
}
