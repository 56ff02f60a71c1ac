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

/* line -- write one access-log line. */
static void line_of(const char *request_id, h2o_iovec_t rmethod, h2o_iovec_t rpath, int status, int64_t dur_us, size_t bytes,
                    const char *sub)
{
    char line[4096], target[PATH_MAX_LOGGED * (sizeof(REDACTED) + 1) + 1], path[2048], method[64], user[1024], ts[40];
    struct timeval tv;
    struct tm tm;
    size_t n;

    n = loggable_target(rpath, target, sizeof(target));
    cx_json_escape(path, sizeof(path), target, n);
    cx_json_escape(method, sizeof(method), rmethod.base, rmethod.len > 16 ? 16 : rmethod.len);
    cx_json_escape(user, sizeof(user), sub, strlen(sub));
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    /* the request id is a token of [A-Za-z0-9._:-] (server.c), the rest numbers: nothing else to escape */
    n = (size_t)snprintf(line, sizeof(line),
                         "{\"time\":\"%s\",\"level\":\"info\",\"type\":\"access\",\"request_id\":\"%s\",\"method\":\"%s\","
                         "\"path\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%zu,\"pid\":%d,\"user\":\"%s\"}",
                         ts, request_id, method, path, status, (double)dur_us / 1000.0, bytes, cx_pid(), user);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    cx_log_raw(line, n);
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
