/*
 * accesslog.c -- after every request: one JSON access-log line (time, request id, method, path, status,
 * duration, bytes, pid, user) and the request counters and latency histogram in this process's shm slot.
 *
 * Every field comes from the client in the end (the path, the method, the token's sub), so every one is
 * escaped (utf8.h, cx_json_escape): the line is one valid JSON object whatever bytes it quotes, and a
 * client can neither add keys nor start a second line. Query values that are secrets -- the code and
 * state of a sign-in callback, tokens, passwords -- are never written: on the sign-in routes
 * (/api/v1/auth/) every query value is replaced by "REDACTED", elsewhere the values of parameters with
 * such names are.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conduix/http.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/shm.h"
#include "conduix/utf8.h"

#define PATH_MAX_LOGGED 512 /* bytes of the request target written; the rest is cut */
#define REDACTED "REDACTED"

/* secret_param -- is a query parameter of this (percent-decoded) name a secret? */
static int secret_param(const char *name)
{
    static const char *const names[] = {"code",     "state",         "token",  "access_token",  "id_token",     "refresh_token",
                                        "password", "client_secret", "secret", "session_state", "code_verifier"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(names); i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* redact -- the request target t[0..len) with secret query values replaced, into out (cap bytes);
 * every value when all. Returns the length. */
static size_t redact(const char *t, size_t len, int all, char *out, size_t cap)
{
    const char *q = memchr(t, '?', len), *end = t + len;
    size_t o;

    if (q == NULL || len >= cap) {
        o = len < cap ? len : cap - 1;
        memcpy(out, t, o);
        return o;
    }
    o = (size_t)(q - t) + 1;
    memcpy(out, t, o);
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *pend = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        size_t klen = (size_t)((eq ? eq : pend) - p);
        char name[64];
        long n = -1;

        if (klen < sizeof(name)) {
            /* the name as the API reads it: percent-decoded ('+' is a space, like cx_req_query) */
            size_t k = 0;
            for (size_t i = 0; i < klen; i++) {
                unsigned char c = (unsigned char)p[i];
                if (c == '%' && i + 2 < klen && h2o_hex_decode(&c, p + i + 1, 2) == 0)
                    i += 2;
                else if (c == '+')
                    c = ' ';
                name[k++] = (char)c;
            }
            name[k] = '\0';
            n = (long)k;
        }
        memcpy(out + o, p, klen);
        o += klen;
        if (eq != NULL) {
            out[o++] = '=';
            if (all || n < 0 || secret_param(name)) {
                memcpy(out + o, REDACTED, sizeof(REDACTED) - 1);
                o += sizeof(REDACTED) - 1;
            } else {
                memcpy(out + o, eq + 1, (size_t)(pend - eq - 1));
                o += (size_t)(pend - eq - 1);
            }
        }
        if (amp != NULL)
            out[o++] = '&';
        p = pend + 1;
    }
    return o;
}

/* loggable_target -- what the log shows of the request target: cut to PATH_MAX_LOGGED bytes (before
 * the redaction, so a long secret cannot push past the cut), its secrets redacted. */
static size_t loggable_target(h2o_iovec_t t, char *out, size_t cap)
{
    size_t len = t.len > PATH_MAX_LOGGED ? PATH_MAX_LOGGED : t.len;
    int auth = len >= 13 && memcmp(t.base, "/api/v1/auth/", 13) == 0;

    // cppcheck-suppress knownConditionTrueFalse ; len is t.len, cut: 0 for a head refused early
    if (len == 0 || t.base == NULL)
        return 0; /* a head refused before its target could be read (conn.c) */

    /* each value may grow to REDACTED: at most len / 2 values */
    if (cap < len * (sizeof(REDACTED) + 1) + 1)
        len = (cap - 1) / (sizeof(REDACTED) + 1);
    return redact(t.base, len, auth, out, cap);
}

/* put_str, put_num -- append to the line at *o (the caller has made room). */
static void put_str(char **o, const char *s, size_t n)
{
    memcpy(*o, s, n);
    *o += n;
}

static void put_num(char **o, uint64_t v)
{
    char d[24], *p = d + sizeof(d);

    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put_str(o, p, (size_t)(d + sizeof(d) - p));
}

#define PUT_LIT(o, s) put_str(o, s, sizeof(s) - 1)

/* stamp -- the wall clock as "2026-11-25T21:00:00.123Z" into ts (24 bytes and a NUL). The seconds are
 * formatted once a second: a busy worker writes thousands of lines in each. */
static void stamp(char ts[32])
{
    static time_t last = -1;
    static char secs[32];
    struct timeval tv;

    gettimeofday(&tv, NULL);
    if (tv.tv_sec != last) {
        cx_time_format((int64_t)tv.tv_sec, secs); /* "…T21:00:00Z" */
        last = tv.tv_sec;
    }
    memcpy(ts, secs, 19);
    ts[19] = '.';
    ts[20] = (char)('0' + tv.tv_usec / 100000);
    ts[21] = (char)('0' + tv.tv_usec / 10000 % 10);
    ts[22] = (char)('0' + tv.tv_usec / 1000 % 10);
    memcpy(ts + 23, "Z", 2);
}

/* line_of -- write one access-log line, put together by hand (snprintf with %f was the largest part of
 * a worker's own time on /health). */
static void line_of(const char *request_id, h2o_iovec_t rmethod, h2o_iovec_t rpath, int status, int64_t dur_us, size_t bytes,
                    const char *sub)
{
    char line[4096], target[PATH_MAX_LOGGED * (sizeof(REDACTED) + 1) + 1], path[2048], method[64], user[1024], ts[32], *o = line;
    size_t n, plen, mlen, ulen, rlen = strnlen(request_id, 64);

    n = loggable_target(rpath, target, sizeof(target));
    plen = cx_json_escape(path, sizeof(path), target, n);
    mlen = cx_json_escape(method, sizeof(method), rmethod.base, rmethod.len > 16 ? 16 : rmethod.len);
    ulen = cx_json_escape(user, sizeof(user), sub, strlen(sub));
    stamp(ts);
    if (dur_us < 0)
        dur_us = 0;
    /* the request id is a token of [A-Za-z0-9._:-] (server.c), the rest numbers: nothing else to escape;
     * every part is bounded, so the line fits (about 3.3 KiB at most) */
    PUT_LIT(&o, "{\"time\":\"");
    put_str(&o, ts, 24);
    PUT_LIT(&o, "\",\"level\":\"info\",\"type\":\"access\",\"request_id\":\"");
    put_str(&o, request_id, rlen);
    PUT_LIT(&o, "\",\"method\":\"");
    put_str(&o, method, mlen);
    PUT_LIT(&o, "\",\"path\":\"");
    put_str(&o, path, plen);
    PUT_LIT(&o, "\",\"status\":");
    if (status < 0) {
        *o++ = '-';
        status = -status;
    }
    put_num(&o, (uint64_t)status);
    PUT_LIT(&o, ",\"duration_ms\":");
    put_num(&o, (uint64_t)dur_us / 1000);
    *o++ = '.';
    *o++ = (char)('0' + dur_us % 1000 / 100);
    *o++ = (char)('0' + dur_us % 100 / 10);
    *o++ = (char)('0' + dur_us % 10);
    PUT_LIT(&o, ",\"bytes\":");
    put_num(&o, bytes);
    PUT_LIT(&o, ",\"pid\":");
    put_num(&o, (uint64_t)cx_pid());
    PUT_LIT(&o, ",\"user\":\"");
    put_str(&o, user, ulen);
    PUT_LIT(&o, "\"}");
    cx_log_raw(line, (size_t)(o - line));
}

static int64_t since(int64_t start_us)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t d = ((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000) - start_us;
    return d < 0 ? 0 : d;
}

void cx_access_log(cx_req_t *r)
{
    h2o_iovec_t rpath = r->req->path.len ? r->req->path : r->req->input.path;
    h2o_iovec_t rmethod = r->req->method.len ? r->req->method : r->req->input.method;
    int64_t dur_us = since(r->start_us);

    cx_shm_observe_request(r->route_index, r->status, dur_us);
    if (cx_log_enabled(CX_LOG_INFO))
        line_of(r->request_id, rmethod, rpath, r->status, dur_us, r->bytes, r->id.authenticated ? r->id.sub : "");
}

void cx_access_log_head(const char *request_id, h2o_iovec_t method, h2o_iovec_t target, int status, size_t bytes, int64_t start_us)
{
    int64_t dur_us = since(start_us);

    cx_shm_observe_request(-1, status, dur_us);
    if (cx_log_enabled(CX_LOG_INFO))
        line_of(request_id, method, target, status, dur_us, bytes, "");
}
