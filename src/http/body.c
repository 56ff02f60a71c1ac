/*
 * body.c -- the request body of a JSON route: size cap (413), Content-Type (415), strict JSON parse
 * (400 INVALID_JSON with line and column). h2o has buffered the whole entity already; server.c keeps
 * h2o's own limit above server.max_body_size so that a body over it still reaches this file and gets the
 * envelope's 413 (over HTTP/2 h2o would otherwise reset the stream), and conn.c refuses an HTTP/1
 * Content-Length over it before the body is read.
 *
 * json-c takes what RFC 8259 leaves open, and more: a repeated key keeps its last value silently, a key
 * may hold NUL (json-c's keys are C strings, so "name\u0000x" reads as "name"), and single-quoted strings
 * pass its strict mode, and so do NaN and Infinity; an unpaired surrogate escape becomes U+FFFD; and it does not check that the
 * text is UTF-8. A body is one meaning or none, so these are refused too, with the position.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conduix/http.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/reply.h"
#include "conduix/router.h"
#include "conduix/utf8.h"

#define JSON_MAX_DEPTH 64

static int is_json_type(const char *ct)
{
    size_t n;
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    n = strcspn(ct, "; ");
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 && strncasecmp(ct, "application/", 12) == 0);
}

/* position -- line and column (1-based) of byte offset off in buf. */
static void position(const char *buf, size_t len, size_t off, int *line, int *col)
{
    size_t i;
    *line = 1;
    *col = 1;
    for (i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* ---- keys ---- */

/* A key of an open object: its decoded bytes and where it starts in the text. */
typedef struct key {
    char *s;
    size_t len, off;
} jkey_t;

typedef struct keys {
    jkey_t *v;
    size_t n, cap;
} jkeys_t;

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* string_end -- s[i] is '"': the index just past the closing quote. When out is non-NULL the decoded
 * string goes there (at most as long as the quoted text) and its length into *olen; *nul is set when
 * it holds U+0000. The text has been parsed by json-c already, so it is well formed; anything else
 * gives (size_t)-1. *lone is set when it holds an unpaired surrogate escape. */
static size_t string_end(const char *s, size_t len, size_t i, char *out, size_t *olen, int *nul, int *lone)
{
    size_t o = 0;

    for (i++; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            if (olen != NULL)
                *olen = o;
            return i + 1;
        }
        if (c != '\\') {
            if (out != NULL)
                out[o] = c;
            o++;
            continue;
        }
        if (++i >= len)
            return (size_t)-1;
        unsigned cp;
        switch (s[i]) {
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (i + 4 >= len || hex4(s + i + 1, &cp) != 0)
                return (size_t)-1;
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 < len && s[i + 1] == '\\' && s[i + 2] == 'u') {
                unsigned lo;
                if (hex4(s + i + 3, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff && lone != NULL)
                *lone = 1; /* json-c would make it U+FFFD silently */
            break;
        default: /* " \ / and whatever else json-c let through stand for themselves */
            cp = (unsigned char)s[i];
            break;
        }
        if (cp == 0 && nul != NULL)
            *nul = 1;
        if (out != NULL)
            o += put_utf8(out + o, cp); /* an escape is at least 2 bytes, its UTF-8 at most 4 for 6 */
        else
            o++;
    }
    return (size_t)-1;
}

static int key_cmp(const void *a, const void *b)
{
    const jkey_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off; /* the later one is the repeat */
}

/* object_close -- the keys of the object that ends, [from, k->n): a repeated one is an error (its later
 * offset into *off). */
static int object_close(jkeys_t *k, size_t from, size_t *off)
{
    size_t n = k->n - from;
    int rc = CX_OK;

    if (n == 0)
        return CX_OK; /* {} (and k->v may be NULL) */
    jkey_t *v = k->v + from;
    qsort(v, n, sizeof(*v), key_cmp);
    for (size_t i = 1; i < n && rc == CX_OK; i++)
        if (v[i].len == v[i - 1].len && memcmp(v[i].s, v[i - 1].s, v[i].len) == 0) {
            *off = v[i].off;
            rc = CX_CONFLICT;
        }
    for (size_t i = 0; i < n; i++)
        free(v[i].s);
    k->n = from;
    return rc;
}

/* check_keys -- s[0..len), a document json-c accepted: CX_OK, or CX_INVALID with the reason in msg and
 * its offset in *off (a repeated key, a key with NUL, a single-quoted string). */
static int check_keys(const char *s, size_t len, char *msg, size_t msglen, size_t *off)
{
    size_t stack[JSON_MAX_DEPTH + 2]; /* for each open container: SIZE_MAX for an array, else where its keys start */
    int depth = 0, rc = CX_OK, expect_key = 0;
    jkeys_t k = {0};
    size_t i = 0;

    while (i < len && rc == CX_OK) {
        char c = s[i];
        switch (c) {
        case '{':
        case '[':
            if (depth == (int)CX_ARRAY_SIZE(stack)) {
                *off = i;
                snprintf(msg, msglen, "nesting too deep");
                rc = CX_INVALID;
                break;
            }
            stack[depth++] = c == '{' ? k.n : SIZE_MAX;
            expect_key = c == '{';
            i++;
            break;
        case '}':
        case ']':
            if (depth > 0) {
                depth--;
                if (stack[depth] != SIZE_MAX && object_close(&k, stack[depth], off) != CX_OK) {
                    int line, col;
                    char name[80];
                    jkey_t dup = {0};
                    size_t dl = 0;
                    /* name the key from the text again (the list is gone) */
                    dup.s = cx_malloc(string_end(s, len, *off, NULL, NULL, NULL, NULL) - *off);
                    string_end(s, len, *off, dup.s, &dl, NULL, NULL);
                    position(s, len, *off, &line, &col);
                    snprintf(name, sizeof(name), "%.*s", (int)cx_utf8_prefix(dup.s, dl, 64), dup.s);
                    free(dup.s);
                    snprintf(msg, msglen, "duplicate key \"%s\" at line %d, column %d: each key may appear once in an object", name,
                             line, col);
                    rc = CX_INVALID;
                }
            }
            expect_key = 0;
            i++;
            break;
        case ',':
            expect_key = depth > 0 && stack[depth - 1] != SIZE_MAX;
            i++;
            break;
        case '\'': {
            int line, col;
            *off = i;
            position(s, len, i, &line, &col);
            snprintf(msg, msglen, "malformed JSON at line %d, column %d: strings must be in double quotes", line, col);
            rc = CX_INVALID;
            break;
        }
        case 'N': /* NaN */
        case 'I': /* Infinity, -Infinity: json-c takes them, JSON has no such numbers */
        {
            int line, col;
            *off = i;
            position(s, len, i, &line, &col);
            snprintf(msg, msglen, "malformed JSON at line %d, column %d: NaN and Infinity are not JSON numbers", line, col);
            rc = CX_INVALID;
            break;
        }
        case '"': {
            size_t end;
            int lone = 0;
            if ((end = string_end(s, len, i, NULL, NULL, NULL, &lone)) == (size_t)-1)
                goto broken;
            if (lone) {
                int line, col;
                *off = i;
                position(s, len, i, &line, &col);
                snprintf(msg, msglen, "malformed JSON at line %d, column %d: a string holds an unpaired surrogate (\\ud800 …)",
                         line, col);
                rc = CX_INVALID;
                break;
            }
            if (!expect_key) {
                i = end;
                break;
            }
            jkey_t key = {.off = i};
            int nul = 0;
            key.s = cx_malloc(end - i); /* the decoded key is never longer than its quoted text */
            string_end(s, len, i, key.s, &key.len, &nul, NULL);
            if (nul) {
                int line, col;
                free(key.s);
                *off = i;
                position(s, len, i, &line, &col);
                snprintf(msg, msglen, "key at line %d, column %d contains a NUL character (\\u0000)", line, col);
                rc = CX_INVALID;
                break;
            }
            if (k.n == k.cap) {
                k.cap = k.cap ? 2 * k.cap : 16;
                k.v = cx_realloc(k.v, k.cap * sizeof(*k.v));
            }
            k.v[k.n++] = key;
            expect_key = 0;
            i = end;
            break;
        }
        default:
            i++;
            break;
        }
    }
    for (size_t j = 0; j < k.n; j++)
        free(k.v[j].s);
    free(k.v);
    return rc;
broken:
    *off = i;
    snprintf(msg, msglen, "malformed JSON string");
    for (size_t j = 0; j < k.n; j++)
        free(k.v[j].s);
    free(k.v);
    return CX_INVALID;
}

/* bad_text -- does o hold a string (or, in an object, a key) that is not valid UTF-8? */
// NOLINTNEXTLINE(misc-no-recursion): as deep as the document, at most JSON_MAX_DEPTH (the tokenizer)
static int bad_text(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_string:
        return cx_utf8_valid_prefix(json_object_get_string(o), (size_t)json_object_get_string_len(o)) <
               (size_t)json_object_get_string_len(o);
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (bad_text(json_object_array_get_idx(o, i)))
                return 1;
        return 0;
    case json_type_object: {
        json_object_object_foreach(o, key, val)
        {
            if (cx_utf8_valid_prefix(key, strlen(key)) < strlen(key) || bad_text(val))
                return 1;
        }
        return 0;
    }
    default:
        return 0;
    }
}

/* bad_text_field -- the top-level field of o that holds text that is not UTF-8 into field: its name, or
 * "body" when it is a key (a name that cannot be echoed) or o is not an object. */
static void bad_text_field(json_object *o, char *field, size_t fieldlen)
{
    snprintf(field, fieldlen, "body");
    if (!json_object_is_type(o, json_type_object))
        return;
    json_object_object_foreach(o, key, val)
    {
        if (cx_utf8_valid_prefix(key, strlen(key)) < strlen(key))
            return;
        if (bad_text(val)) {
            snprintf(field, fieldlen, "%.*s", (int)cx_utf8_prefix(key, strlen(key), 64), key);
            return;
        }
    }
}

int cx_body_parse_text(const char *buf, size_t len, json_object **out, char *msg, size_t msglen)
{
    return cx_body_parse_text_ex(buf, len, out, msg, msglen, NULL, 0);
}

int cx_body_parse_text_ex(const char *buf, size_t len, json_object **out, char *msg, size_t msglen, char *field, size_t fieldlen)
{
    json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    json_object *o;
    int line, col;
    size_t off, bad;

    *out = NULL;
    if (field != NULL && fieldlen > 0)
        field[0] = '\0';
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* buf[len] is NUL: the +1 tells the tokener the input is complete, so trailing garbage fails */
    o = json_tokener_parse_ex(tok, buf, (int)len + 1);
    if (o == NULL || json_tokener_get_parse_end(tok) < len) {
        enum json_tokener_error err = json_tokener_get_error(tok);
        off = json_tokener_get_parse_end(tok);
        position(buf, len, off, &line, &col);
        if (o != NULL) {
            json_object_put(o);
            snprintf(msg, msglen, "malformed JSON at line %d, column %d: unexpected data after the value", line, col);
        } else {
            snprintf(msg, msglen, "malformed JSON at line %d, column %d: %s", line, col,
                     err == json_tokener_success ? "unexpected end of input" : json_tokener_error_desc(err));
        }
        json_tokener_free(tok);
        return CX_INVALID;
    }
    json_tokener_free(tok);
    if (check_keys(buf, len, msg, msglen, &off) != CX_OK) {
        json_object_put(o);
        return CX_INVALID;
    }
    /* RFC 8259: JSON text is UTF-8. json-c does not check it, and what it let through would come back in
     * messages and stored text that no client can read. Checked on the parsed document, so that the
     * answer can name the field that holds it. */
    if ((bad = cx_utf8_valid_prefix(buf, len)) < len) {
        position(buf, len, bad, &line, &col);
        if (field != NULL && fieldlen > 0) {
            bad_text_field(o, field, fieldlen);
            snprintf(msg, msglen, "is not valid UTF-8 text (line %d, column %d)", line, col);
        } else {
            snprintf(msg, msglen, "malformed JSON at line %d, column %d: not valid UTF-8", line, col);
        }
        json_object_put(o);
        return CX_INVALID;
    }
    *out = o;
    return CX_OK;
}

int cx_body_parse(cx_req_t *r, const cx_route_t *route)
{
    h2o_iovec_t e = r->req->entity;
    json_object *o;
    char msg[256];

    if (route->body == CX_BODY_NONE)
        return CX_OK;
    if ((int64_t)e.len > cx_cfg->server.max_body_size) {
        snprintf(msg, sizeof(msg), "request body larger than %lld bytes", (long long)cx_cfg->server.max_body_size);
        cx_reply_error(r, 413, "PAYLOAD_TOO_LARGE", msg, NULL);
        return CX_INVALID;
    }
    if (e.base == NULL || e.len == 0) {
        if (route->body == CX_BODY_JSON_OPTIONAL)
            return CX_OK;
        cx_reply_error(r, 400, "VALIDATION_ERROR", "a JSON request body is required", NULL);
        return CX_INVALID;
    }
    if (!is_json_type(cx_req_header(r, "content-type"))) {
        cx_reply_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be JSON (Content-Type: application/json)", NULL);
        return CX_INVALID;
    }
    /* a NUL-terminated copy, for the tokener */
    char *copy = h2o_mem_alloc_pool(&r->req->pool, e.len + 1);
    memcpy(copy, e.base, e.len);
    copy[e.len] = '\0';
    char field[80];
    if (cx_body_parse_text_ex(copy, e.len, &o, msg, sizeof(msg), field, sizeof(field)) != CX_OK) {
        if (field[0] != '\0')
            cx_reply_validation(r, field, msg); /* text that is not UTF-8: the field that holds it named */
        else
            cx_reply_error(r, 400, "INVALID_JSON", msg, NULL);
        return CX_INVALID;
    }
    r->body = o;
    return CX_OK;
}
