/*
 * metrics.c -- /metrics in the Prometheus text format 0.0.4, written by hand (no C client library in
 * Debian): every counter summed over the shared-memory slots of all processes of this instance, the
 * request latency and the scheduler's fire lag histograms made cumulative, and one up gauge per live
 * process.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/reply.h"
#include "conduix/router.h"
#include "conduix/shm.h"

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
        b->p = cx_realloc(b->p, b->cap);
    }
}

/* base_len -- length of a metric name up to its labels. */
static size_t base_len(const char *name)
{
    return strcspn(name, "{");
}

static void header(buf_t *b, const char *name, const char *prev, const char *help, const char *type)
{
    size_t n = base_len(name);
    if (prev != NULL && base_len(prev) == n && strncmp(prev, name, n) == 0)
        return;
    put(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)n, name, help, (int)n, name, type);
}

static void route_label(int r, const char **name, const char **method)
{
    if (r >= 0 && (size_t)r < cx_nroutes) {
        *name = cx_routes[r].name;
        *method = cx_routes[r].method;
    } else {
        *name = "unmatched";
        *method = "";
    }
}

/* slots_used -- slots [0, n) have been used; the others were never touched and hold only zeros. */
static int slots_used(void)
{
    return __atomic_load_n(&cx_shm->nused, __ATOMIC_ACQUIRE);
}

static void requests(buf_t *b)
{
    int r, k, s, bk, nused = slots_used();
    const char *name, *method;

    put(b, "# HELP conduix_http_requests_total HTTP requests by route and status.\n"
           "# TYPE conduix_http_requests_total counter\n");
    for (r = 0; r < CX_SHM_ROUTES; r++)
        for (k = 0; k < CX_SHM_NSTATUS; k++) {
            uint64_t n = 0;
            for (s = 0; s < nused; s++)
                n += __atomic_load_n(&cx_shm->slots[s].requests[r][k], __ATOMIC_RELAXED);
            if (n == 0)
                continue;
            route_label(r == CX_SHM_ROUTES - 1 ? -1 : r, &name, &method);
            if (cx_shm_status_codes[k] != 0)
                put(b, "conduix_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n", name, method,
                    cx_shm_status_codes[k], (unsigned long long)n);
            else
                put(b, "conduix_http_requests_total{route=\"%s\",method=\"%s\",status=\"other\"} %llu\n", name, method,
                    (unsigned long long)n);
        }

    put(b, "# HELP conduix_http_request_duration_seconds Time from request to response in a worker.\n"
           "# TYPE conduix_http_request_duration_seconds histogram\n");
    for (r = 0; r < CX_SHM_ROUTES; r++) {
        uint64_t count = 0, sum = 0, cum = 0;
        for (s = 0; s < nused; s++) {
            count += __atomic_load_n(&cx_shm->slots[s].latency_count[r], __ATOMIC_RELAXED);
            sum += __atomic_load_n(&cx_shm->slots[s].latency_sum_us[r], __ATOMIC_RELAXED);
        }
        if (count == 0)
            continue;
        route_label(r == CX_SHM_ROUTES - 1 ? -1 : r, &name, &method);
        for (bk = 0; bk < CX_SHM_NBUCKETS; bk++) {
            for (s = 0; s < nused; s++)
                cum += __atomic_load_n(&cx_shm->slots[s].latency_buckets[r][bk], __ATOMIC_RELAXED);
            put(b, "conduix_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", name, cx_shm_buckets_s[bk],
                (unsigned long long)cum);
        }
        put(b, "conduix_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
        put(b, "conduix_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name, (double)sum / 1e6);
        put(b, "conduix_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name, (unsigned long long)count);
    }
}

static void counters(buf_t *b)
{
    int c, s, nused = slots_used();
    const char *prev = NULL;

    put(b, "# HELP conduix_child_restarts_total Children respawned after an unexpected exit, by kind.\n"
           "# TYPE conduix_child_restarts_total counter\n");
    for (c = 0; c < CX_KIND_MAX; c++)
        if (cx_kinds[c].count != NULL && !(cx_kinds[c].flags & CX_KIND_ONESHOT))
            put(b, "conduix_child_restarts_total{kind=\"%s\"} %llu\n", cx_kinds[c].name,
                (unsigned long long)__atomic_load_n(&cx_shm->restarts[c], __ATOMIC_RELAXED));
    for (c = 0; c < CX_C_MAX_; c++) {
        uint64_t n = 0;
        for (s = 0; s < nused; s++)
            n += __atomic_load_n(&cx_shm->slots[s].counters[c], __ATOMIC_RELAXED);
        header(b, cx_counter_names[c], prev, cx_counter_help[c], "counter");
        put(b, "%s %llu\n", cx_counter_names[c], (unsigned long long)n);
        prev = cx_counter_names[c];
    }
    prev = NULL;
    for (c = 0; c < CX_G_MAX_; c++) {
        header(b, cx_gauge_names[c], prev, cx_gauge_help[c], "gauge");
        put(b, "%s %lld\n", cx_gauge_names[c], (long long)__atomic_load_n(&cx_shm->gauges[c], __ATOMIC_RELAXED));
        prev = cx_gauge_names[c];
    }
}

static void fire_lag(buf_t *b)
{
    int s, k, nused = slots_used();
    uint64_t count = 0, sum = 0, cum = 0;

    put(b, "# HELP conduix_schedule_fire_lag_seconds Time from a fire's scheduled time to its run (or its skip) in the "
           "scheduler.\n# TYPE conduix_schedule_fire_lag_seconds histogram\n");
    for (s = 0; s < nused; s++) {
        count += __atomic_load_n(&cx_shm->slots[s].lag_count, __ATOMIC_RELAXED);
        sum += __atomic_load_n(&cx_shm->slots[s].lag_sum_us, __ATOMIC_RELAXED);
    }
    for (k = 0; k < CX_SHM_NLAG; k++) {
        for (s = 0; s < nused; s++)
            cum += __atomic_load_n(&cx_shm->slots[s].lag_buckets[k], __ATOMIC_RELAXED);
        put(b, "conduix_schedule_fire_lag_seconds_bucket{le=\"%g\"} %llu\n", cx_shm_lag_buckets_s[k], (unsigned long long)cum);
    }
    put(b, "conduix_schedule_fire_lag_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)count);
    put(b, "conduix_schedule_fire_lag_seconds_sum %.6f\n", (double)sum / 1e6);
    put(b, "conduix_schedule_fire_lag_seconds_count %llu\n", (unsigned long long)count);
}

/* unsent -- a line for each live worker: its unsent bytes, or (max) the most it held at once. */
static void unsent(buf_t *b, int max)
{
    int s, nused = slots_used();
    for (s = 0; s < nused; s++) {
        cx_shm_slot_t *p = &cx_shm->slots[s];
        pid_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
        if (pid <= 0 || !p->up || p->kind != CX_KIND_WORKER)
            continue;
        put(b, "conduix_http_unsent_bytes%s{index=\"%d\",pid=\"%d\"} %lld\n", max ? "_max" : "", p->index, (int)pid,
            (long long)(max ? p->unsent_max : p->unsent));
    }
}

static void processes(buf_t *b)
{
    int s, nused = slots_used();
    put(b, "# HELP conduix_process_up 1 for each live process of this instance.\n# TYPE conduix_process_up gauge\n");
    for (s = 0; s < nused; s++) {
        cx_shm_slot_t *p = &cx_shm->slots[s];
        pid_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
        if (pid <= 0 || !p->up)
            continue;
        put(b, "conduix_process_up{kind=\"%s\",index=\"%d\",pid=\"%d\"} 1\n", cx_kind_name((cx_kind_t)p->kind), p->index, (int)pid);
    }
    put(b, "# HELP conduix_http_unsent_bytes A worker's bytes of answers not yet written to their connections.\n"
           "# TYPE conduix_http_unsent_bytes gauge\n");
    unsent(b, 0);
    put(b, "# HELP conduix_http_unsent_bytes_max The most bytes of unsent answers a worker has held at once since it "
           "started (at most 64 MiB, and answers of 16 KiB or less; a larger answer beyond it is refused with 503).\n"
           "# TYPE conduix_http_unsent_bytes_max gauge\n");
    unsent(b, 1);
    put(b, "# HELP conduix_start_time_seconds When the master started, Unix time.\n# TYPE conduix_start_time_seconds gauge\n");
    put(b, "conduix_start_time_seconds %lld\n", (long long)(cx_shm->started_ms / 1000));
    put(b, "# HELP conduix_worker_generation Reload generation of the serving workers.\n# TYPE conduix_worker_generation gauge\n");
    put(b, "conduix_worker_generation %d\n", cx_shm->generation);
}

int cx_api_metrics(cx_req_t *r)
{
    buf_t b = {.p = cx_malloc(16384), .len = 0, .cap = 16384};
    if (cx_shm == NULL) {
        free(b.p);
        return cx_reply_raw(r, 503, "text/plain; charset=utf-8", "metrics unavailable\n", 20);
    }
    requests(&b);
    counters(&b);
    fire_lag(&b);
    processes(&b);
    cx_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    free(b.p);
    return 0;
}
