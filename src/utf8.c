/*
 * utf8.c -- the UTF-8 validator of utf8.h (RFC 3629: shortest forms only, no surrogates, at most
 * U+10FFFF), unit-tested in t/unit/test_util.c. json-c validates only while it parses, and the texts
 * checked here also come from Redis keys and URL segments.
 */
#include <stdint.h>

#include "conduix/utf8.h"

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
        i += need + 1;
        n++;
    }
    if (flags != NULL)
        *flags = f;
    return n;
}
