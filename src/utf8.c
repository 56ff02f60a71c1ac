/*
 * utf8.c -- the UTF-8 validator of utf8.h (RFC 3629: shortest forms only, no surrogates, at most
 * U+10FFFF), unit-tested in t/unit/test_util.c. json-c validates only while it parses, and the texts
 * checked here also come from Redis keys and URL segments. Also the JSON string escaper of the log lines,
 * which must stay valid JSON whatever bytes they quote.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "conduix/utf8.h"

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
        unsigned c = p[i], need;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                f |= CX_UTF8_C0;
            else if (c == ' ')
                f |= CX_UTF8_SPACE;
            if (is_space(c) && (n == 0 || i + 1 == len))
                f |= CX_UTF8_EDGE_SPACE;
            i++;
            n++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return -1; /* a continuation byte first, an overlong lead (C0, C1) or beyond U+10FFFF (F5..FF) */
        }
        if (len - i <= need)
            return -1; /* truncated */
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        if (cp >= 0x80 && cp <= 0x9f)
            f |= CX_UTF8_C1;
        if (is_space(cp) && (n == 0 || i + need + 1 == len))
            f |= CX_UTF8_EDGE_SPACE;
        i += need + 1;
        n++;
    }
    if (flags != NULL)
        *flags = f;
    return n;
}

/* seq_len -- the length of the valid UTF-8 sequence at s[0..len), or 0 when it is not one. */
static size_t seq_len(const unsigned char *s, size_t len)
{
    size_t n = s[0] < 0x80                    ? 1
               : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
               : s[0] >= 0xe0 && s[0] <= 0xef ? 3
               : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                              : 0;
    return n > 0 && n <= len && cx_utf8_check((const char *)s, n, NULL) == 1 ? n : 0;
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
