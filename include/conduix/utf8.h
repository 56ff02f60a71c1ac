/*
 * utf8.h -- the one UTF-8 validator: what the API accepts as text (pipeline names and descriptions,
 * agent ids, heartbeat strings) is checked here; and the cleaner of free text agents send (messages and
 * errors of acknowledgements and run events) before it is stored.
 */
#ifndef CONDUIX_UTF8_H
#define CONDUIX_UTF8_H

#include <stddef.h>

/* Kinds of character cx_utf8_check reports in *flags. */
#define CX_UTF8_C0 0x1         /* a C0 control character (U+0000..U+001F) or DEL (U+007F) */
#define CX_UTF8_C1 0x2         /* a C1 control character (U+0080..U+009F) */
#define CX_UTF8_SPACE 0x4      /* a space (U+0020) */
#define CX_UTF8_EDGE_SPACE 0x8 /* white space (Unicode White_Space, U+200B, U+FEFF) first or last */

/* cx_utf8_check -- the number of code points of s[0..len), or -1 when it is not valid UTF-8: overlong
 * forms, surrogates (U+D800..U+DFFF), values above U+10FFFF and truncated sequences are invalid. flags
 * (may be NULL) gets the CX_UTF8_ kinds of character found in a valid text. */
long cx_utf8_check(const char *s, size_t len, unsigned *flags);

/* The end of a text cx_utf8_clean shortened ("…[truncated]"), and what it reports in *fixed. */
#define CX_TEXT_TRUNCATED "\xe2\x80\xa6[truncated]"
#define CX_TEXT_REPAIRED 0x1       /* bytes that were not UTF-8 (or NUL) were replaced by U+FFFD */
#define CX_TEXT_TRUNCATED_FLAG 0x2 /* the text was cut to max bytes, ending with CX_TEXT_TRUNCATED */

/* cx_utf8_clean -- a copy of s[0..len) that can be stored: every byte that is not part of a valid
 * character, and every NUL, replaced by U+FFFD; then, when longer than max bytes, cut at a character
 * boundary so that it ends with CX_TEXT_TRUNCATED within max bytes. Malloc'ed and NUL-terminated (and
 * holding no other NUL); *fixed (may be NULL) gets CX_TEXT_REPAIRED and CX_TEXT_TRUNCATED_FLAG. */
char *cx_utf8_clean(const char *s, size_t len, size_t max, unsigned *fixed);

/* cx_json_escape -- s[0..len) as the content of a JSON string into out (cap bytes, NUL-terminated):
 * '"', '\\' and control characters escaped, valid UTF-8 kept, and each byte that is not UTF-8 written as
 * the text \xNN, so the result is valid JSON whatever s holds. Stops before a unit that would not fit
 * (never cuts an escape or a character). Returns the length written. */
size_t cx_json_escape(char *out, size_t cap, const char *s, size_t len);

/* cx_utf8_prefix -- the length of the longest prefix of s[0..len) of at most max bytes that does not end
 * inside a UTF-8 character: where to cut a text for a message. */
size_t cx_utf8_prefix(const char *s, size_t len, size_t max);

/* cx_utf8_valid_prefix -- the length of the longest prefix of s[0..len) that is valid UTF-8 (len when all
 * of it is): where the first bad byte is. */
size_t cx_utf8_valid_prefix(const char *s, size_t len);

#endif
