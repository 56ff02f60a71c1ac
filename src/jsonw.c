/*
 * jsonw.c -- the JSON writer (jsonw.h): values appended to a buffer with the commas and escapes json-c's
 * plain output has. Allocation failure aborts, as everywhere (cx_realloc).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/cx.h"
#include "conduix/jsonw.h"

static char *reserve(cx_jw_t *w, size_t n)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap < w->len + n)
            cap *= 2;
        w->p = cx_realloc(w->p, cap);
        w->cap = cap;
    }
    return w->p + w->len;
}

static void add(cx_jw_t *w, const char *s, size_t n)
{
    memcpy(reserve(w, n), s, n);
    w->len += n;
}

/* value -- a value begins here: the comma before it, unless it follows a key or opens its container. */
static void value(cx_jw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth > 0 && w->depth <= CX_JW_DEPTH) {
        if (w->more[w->depth - 1])
            add(w, ",", 1);
        w->more[w->depth - 1] = 1;
    }
}

void cx_jw_init(cx_jw_t *w)
{
    memset(w, 0, sizeof(*w));
}

void cx_jw_free(cx_jw_t *w)
{
    free(w->p);
    memset(w, 0, sizeof(*w));
}

static void opening(cx_jw_t *w, const char *c)
{
    value(w);
    add(w, c, 1);
    if (w->depth < CX_JW_DEPTH)
        w->more[w->depth] = 0;
    w->depth++;
}

static void closing(cx_jw_t *w, const char *c)
{
    add(w, c, 1);
    if (w->depth > 0)
        w->depth--;
}

void cx_jw_object(cx_jw_t *w)
{
    opening(w, "{");
}

void cx_jw_object_end(cx_jw_t *w)
{
    closing(w, "}");
}

void cx_jw_array(cx_jw_t *w)
{
    opening(w, "[");
}

void cx_jw_array_end(cx_jw_t *w)
{
    closing(w, "]");
}

/* escaped -- s[0..n) as the content of a JSON string, as json-c's json_escape_str writes it (the forward
 * slash left alone: JSON_C_TO_STRING_NOSLASHESCAPE). */
static const uint8_t special[256] = {
    [0 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
};

static void escaped(cx_jw_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    reserve(w, n + 2);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[6];
        size_t k = 2;

        if (!special[c])
            continue;
        /* e is a unit of bytes with a length (k), not a C string */
        e[0] = '\\';
        switch (c) {
        case '\b':
            e[1] = 'b';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '"':
        case '\\':
            e[1] = (char)c;
            break;
        default:
            e[1] = 'u';
            e[2] = e[3] = '0';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 0xf];
            k = 6;
            break;
        }
        add(w, s + start, i - start);
        add(w, e, k);
        start = i + 1;
    }
    add(w, s + start, n - start);
}

void cx_jw_key(cx_jw_t *w, const char *k)
{
    value(w);
    add(w, "\"", 1);
    escaped(w, k, strlen(k));
    add(w, "\":", 2);
    w->after_key = 1;
}

void cx_jw_strn(cx_jw_t *w, const char *s, size_t n)
{
    if (s == NULL) {
        cx_jw_null(w);
        return;
    }
    value(w);
    add(w, "\"", 1);
    escaped(w, s, n);
    add(w, "\"", 1);
}

void cx_jw_str(cx_jw_t *w, const char *s)
{
    cx_jw_strn(w, s, s != NULL ? strlen(s) : 0);
}

void cx_jw_int(cx_jw_t *w, int64_t v)
{
    char num[24], *e = num + sizeof(num), *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    value(w);
    add(w, p, (size_t)(e - p));
}

void cx_jw_bool(cx_jw_t *w, int v)
{
    value(w);
    if (v)
        add(w, "true", 4);
    else
        add(w, "false", 5);
}

void cx_jw_null(cx_jw_t *w)
{
    value(w);
    add(w, "null", 4);
}

void cx_jw_time(cx_jw_t *w, int64_t ms)
{
    char t[32];

    if (ms <= 0) {
        cx_jw_null(w);
        return;
    }
    cx_time_format(ms / 1000, t);
    cx_jw_str(w, t);
}
