/*
 * utf8.c -- the UTF-8 validator of utf8.h (RFC 3629: shortest forms only, no surrogates, at most
 * U+10FFFF), unit-tested in t/unit/test_util.c, and the cleaner of texts agents send before they are
 * stored. json-c validates only while it parses, and the texts checked here also come from Redis keys,
 * pub/sub messages and URL segments. Also the JSON string escaper of the log lines, which must stay
 * valid JSON whatever bytes they quote.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/utf8.h"

/* seq -- the length of the valid UTF-8 sequence at p[0..left) (left >= 1), its code point in *cp; 0
 * when the bytes there are not one: a continuation byte first, an overlong form, a surrogate, a value
 * beyond U+10FFFF, a truncated sequence or a bad continuation. */
static size_t seq(const unsigned char *p, size_t left, uint32_t *cp)
{
    unsigned c = p[0], need;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        v = c & 0x07;
    } else {
        return 0; /* a continuation byte first, an overlong lead (C0, C1) or beyond U+10FFFF (F5..FF) */
    }
    if (left <= need)
        return 0; /* truncated */
    for (unsigned k = 1; k <= need; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[k] & 0x3f);
    }
    if ((need == 2 && v < 0x800) || (need == 3 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return need + 1;
}

/* is_space -- Unicode's White_Space, and the invisible ZERO WIDTH SPACE and BOM that pass for one. */
static int is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200b) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

long cx_utf8_check(const char *s, size_t len, unsigned *flags)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned f = 0;
    long n = 0;
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t k = seq(p + i, len - i, &cp);
        if (k == 0)
            return -1;
        if (cp < 0x20 || cp == 0x7f)
            f |= CX_UTF8_C0;
        else if (cp == ' ')
            f |= CX_UTF8_SPACE;
        else if (cp >= 0x80 && cp <= 0x9f)
            f |= CX_UTF8_C1;
        if (is_space(cp) && (n == 0 || i + k == len))
            f |= CX_UTF8_EDGE_SPACE;
        i += k;
        n++;
    }
    if (flags != NULL)
        *flags = f;
    return n;
}

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

char *cx_utf8_clean(const char *s, size_t len, size_t max, unsigned *fixed)
{
    const unsigned char *p = (const unsigned char *)s;
    const size_t mark = sizeof(CX_TEXT_TRUNCATED) - 1;
    char *out = cx_malloc(len * 3 + mark + 1);
    size_t i = 0, o = 0;
    unsigned f = 0;

    while (i < len) {
        uint32_t cp;
        size_t k = seq(p + i, len - i, &cp);
        if (k == 0 || cp == 0) {
            memcpy(out + o, REPLACEMENT, 3); /* one replacement per byte that is not (part of) a character */
            o += 3;
            i++;
            f |= CX_TEXT_REPAIRED;
            continue;
        }
        memcpy(out + o, p + i, k);
        o += k;
        i += k;
    }
    if (o > max && max >= mark) {
        size_t cut = max - mark;
        while (cut > 0 && ((unsigned char)out[cut] & 0xc0) == 0x80)
            cut--; /* not inside a character */
        memcpy(out + cut, CX_TEXT_TRUNCATED, mark);
        o = cut + mark;
        f |= CX_TEXT_TRUNCATED_FLAG;
    }
    out[o] = '\0';
    if (fixed != NULL)
        *fixed = f;
    return out;
}

/* seq_len -- the length of the valid UTF-8 sequence at s[0..len), or 0 when it is not one. */
static size_t seq_len(const unsigned char *s, size_t len)
{
    uint32_t cp;
    return seq(s, len, &cp);
}

size_t cx_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;

    if (cap == 0)
        return 0;
    while (i < len) {
        char unit[8];
        size_t k, n = 1;
        unsigned char c = p[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            /* a run of printable ASCII, copied at once: what an access-log line is made of */
            size_t run = 1;
            while (i + run < len && p[i + run] >= 0x20 && p[i + run] < 0x7f && p[i + run] != '"' && p[i + run] != '\\')
                run++;
            if (run > cap - 1 - o)
                run = cap - 1 - o;
            if (run == 0)
                break;
            memcpy(out + o, p + i, run);
            o += run;
            i += run;
            continue;
        }

        if (c == '"' || c == '\\') {
            unit[0] = '\\', unit[1] = (char)c, k = 2;
        } else if (c == '\n') {
            unit[0] = '\\', unit[1] = 'n', k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            k = (size_t)snprintf(unit, sizeof(unit), "\\u%04x", c);
        } else if (c < 0x80) {
            unit[0] = (char)c, k = 1;
        } else if ((n = seq_len(p + i, len - i)) > 0) {
            memcpy(unit, p + i, n), k = n;
        } else {
            n = 1; /* a byte that is not UTF-8: its value, readable, in a line that stays valid JSON */
            k = (size_t)snprintf(unit, sizeof(unit), "\\\\x%02x", c);
        }
        if (o + k >= cap)
            break; /* whole units only: never half an escape or half a character */
        memcpy(out + o, unit, k);
        o += k;
        i += n;
    }
    out[o] = '\0';
    return o;
}

size_t cx_utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--; /* s[max] continues the character before it: cut before that character */
    return max;
}

size_t cx_utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if ((n = seq_len(p + i, len - i)) == 0)
            break;
        i += n;
    }
    return i;
}
