/*
 * fuzz.h -- what every fuzz target of t/fuzz/ shares. A target is one file, fuzz_<name>.c, defining
 * LLVMFuzzerTestOneInput (and, if it needs one-time setup such as loading time zones,
 * LLVMFuzzerInitialize); its seed corpus is t/fuzz/corpus/<name>/, an optional dictionary
 * t/fuzz/<name>.dict. `make fuzz` builds the targets with libFuzzer (./configure --enable-fuzzing CC=clang)
 * and runs each; `make check` replays every seed through the same function (t/fuzz/replay.c), with any
 * compiler. A target reports a broken invariant with FUZZ_CHECK, which aborts so that libFuzzer keeps
 * the input as a crash.
 */
#ifndef CX_FUZZ_H
#define CX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                                                           \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);                                           \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* FUZZ_TARGET_THEN(one, after) -- the entry point of a target whose input goes to one(data, size), and
 * that then checks after(): what must hold whatever the input was (nothing of it left behind in a
 * parser's state for the next caller). */
#define FUZZ_TARGET_THEN(one, after)                                                                                               \
    static void one(const uint8_t *data, size_t size);                                                                             \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                                                   \
    {                                                                                                                              \
        one(data, size);                                                                                                           \
        after();                                                                                                                   \
        return 0;                                                                                                                  \
    }

#endif
