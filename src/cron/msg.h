/*
 * msg.h -- how the cron engine and the time-zone reader write their error messages: into the caller's
 * buffer (which may be NULL), quoting the user's input as printable ASCII only, so a message can go into
 * a JSON answer or a log line as it is.
 */
#ifndef CX_CRON_MSG_H
#define CX_CRON_MSG_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conduix/cx.h"

/* msg -- format into err (if any); returns CX_INVALID, so a refusal is `return msg(err, errlen, ...)`. */
static inline int __attribute__((format(printf, 3, 4))) msg(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CX_INVALID;
}

/* quote -- s[0..len) for a message, at most max bytes of it: printable ASCII as is, any other byte (and
 * '"', '\\') as \xNN, "..." when cut. out holds max * 4 + 4 bytes. */
static inline const char *quote(char *out, const char *s, size_t len, size_t max)
{
    size_t o = 0, i = 0;
    for (; i < len && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02x", ch);
    }
    memcpy(out + o, i < len ? "..." : "", i < len ? 4 : 1);
    return out;
}

#endif
