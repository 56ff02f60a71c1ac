/*
 * jsonw.h -- a JSON writer for the answers the API sends most (src/jsonw.c): text appended straight into
 * a growing buffer, instead of a json-c tree built and then serialised. The text is what json-c writes
 * with JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE for the same values (t/unit/test_jsonw
 * compares them), so an answer reads the same whichever way it was made.
 */
#ifndef CONDUIX_JSONW_H
#define CONDUIX_JSONW_H

#include <stddef.h>
#include <stdint.h>

#define CX_JW_DEPTH 32

typedef struct cx_jw {
    char *p; /* the text so far (not NUL-terminated); malloc'ed */
    size_t len, cap;
    int depth;
    uint8_t more[CX_JW_DEPTH]; /* a value was written at this depth: the next needs a comma */
    int after_key;             /* a key was written: its value follows without a comma */
} cx_jw_t;

void cx_jw_init(cx_jw_t *w);
void cx_jw_free(cx_jw_t *w);

void cx_jw_object(cx_jw_t *w);
void cx_jw_object_end(cx_jw_t *w);
void cx_jw_array(cx_jw_t *w);
void cx_jw_array_end(cx_jw_t *w);

/* cx_jw_key -- the name of the next member of an object: a string of the program's (escaped all the same). */
void cx_jw_key(cx_jw_t *w, const char *k);

/* cx_jw_str -- a string value, escaped as json-c does; NULL writes null. cx_jw_strn: n bytes of s. */
void cx_jw_str(cx_jw_t *w, const char *s);
void cx_jw_strn(cx_jw_t *w, const char *s, size_t n);
void cx_jw_int(cx_jw_t *w, int64_t v);
void cx_jw_bool(cx_jw_t *w, int v);
void cx_jw_null(cx_jw_t *w);

/* cx_jw_time -- Unix milliseconds as RFC 3339 UTC to the second ("2026-11-25T21:00:00Z", cx_time_format's
 * text), null when ms <= 0 (the shapes' cx_json_time). */
void cx_jw_time(cx_jw_t *w, int64_t ms);

#endif
