/*
 * accesslog.c -- after every request: one JSON access-log line (time, request id, method, path, status,
 * duration, bytes, pid) and the request counters and latency histogram in this process's shm slot.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conduix/http.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/shm.h"

static size_t escape(char *out, size_t cap, const char *s, size_t len)
{
    size_t o = 0, i;
    for (i = 0; i < len && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

void cx_access_log(cx_req_t *r)
{
    char line[3072], path[1024], method[32], ts[40];
    int64_t dur_us;
    struct timeval tv;
    struct tm tm;
    h2o_iovec_t rpath = r->req->path.len ? r->req->path : r->req->input.path;
    h2o_iovec_t rmethod = r->req->method.len ? r->req->method : r->req->input.method;
    size_t plen = rpath.len, n;

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    dur_us = ((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000) - r->start_us;
    if (dur_us < 0)
        dur_us = 0;
    cx_shm_observe_request(r->route_index, r->status, dur_us);
    if (!cx_log_enabled(CX_LOG_INFO))
        return;
    if (plen > 512)
        plen = 512;
    escape(path, sizeof(path), rpath.base, plen);
    escape(method, sizeof(method), rmethod.base, rmethod.len > 16 ? 16 : rmethod.len);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    n = (size_t)snprintf(line, sizeof(line),
                         "{\"time\":\"%s\",\"level\":\"info\",\"type\":\"access\",\"request_id\":\"%s\",\"method\":\"%s\","
                         "\"path\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%zu,\"pid\":%d,\"user\":\"%s\"}",
                         ts, r->request_id, method, path, r->status, (double)dur_us / 1000.0, r->bytes, (int)getpid(),
                         r->id.authenticated ? r->id.sub : "");
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    cx_log_raw(line, n);
}
