/*
 * src/db/agents.c -- the agents table and its companions: the API's reads (list, one agent with its
 * active runs, status), the REST heartbeat's writes (register; the direct write while Redis is down,
 * into agents and agent_rest_heartbeats), and hbmon's bulk operations: load the registry, poll the
 * direct REST beats, and flush a tick's changes (multi-row upserts, transitions and their audit rows) in
 * one transaction.
 *
 * Times go in as "YYYY-MM-DD HH:MM:SS.mmm" UTC strings made from control-plane clocks (the receive time
 * of a beat), never from the agent's clock, and come out as Unix milliseconds, formatted RFC 3339 with
 * milliseconds. Multi-row statements use batches of power-of-two sizes (at most BATCH_MAX rows) so that
 * only a handful of distinct statements reach the prepared-statement cache.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/runs.h"
#include "conduix/log.h"

#define BATCH_MAX 256
#define NSIZES 9 /* 1, 2, 4 … 256 */
#define MS(col) "CAST(ROUND(UNIX_TIMESTAMP(" col ") * 1000) AS SIGNED)"

#define ACOLS                                                                                                                      \
    "id, hostname, ip_address, version, labels, status, " MS("last_heartbeat") " AS last_heartbeat_ms, " MS(                       \
        "registered_at") " AS registered_at_ms, " MS("status_changed_at") " AS status_changed_at_ms, cpu_usage, memory_usage, "    \
                                                                          "disk_usage, pipelines"
#define SQL_LIST "SELECT " ACOLS " FROM agents ORDER BY id LIMIT ? OFFSET ?"
#define SQL_LIST_STATUS "SELECT " ACOLS " FROM agents WHERE status = ? ORDER BY id LIMIT ? OFFSET ?"
#define SQL_COUNT "SELECT COUNT(*) AS n FROM agents"
#define SQL_COUNT_STATUS "SELECT COUNT(*) AS n FROM agents WHERE status = ?"
#define SQL_GET "SELECT " ACOLS " FROM agents WHERE id = ?"
#define SQL_REGISTER                                                                                                               \
    "INSERT IGNORE INTO agents (id, hostname, ip_address, version, labels, status, registered_at, cpu_usage, memory_usage, "       \
    "disk_usage, pipelines) VALUES (?, ?, ?, ?, ?, 'unknown', ?, ?, ?, ?, ?)"
/* Fields an older agent does not send keep their stored value; last_heartbeat never goes back. */
#define UPSERT_TAIL                                                                                                                \
    " ON DUPLICATE KEY UPDATE hostname = COALESCE(VALUES(hostname), hostname), "                                                   \
    "ip_address = COALESCE(VALUES(ip_address), ip_address), version = COALESCE(VALUES(version), version), "                        \
    "labels = COALESCE(VALUES(labels), labels), "                                                                                  \
    "last_heartbeat = GREATEST(COALESCE(last_heartbeat, VALUES(last_heartbeat)), VALUES(last_heartbeat)), "                        \
    "cpu_usage = VALUES(cpu_usage), memory_usage = VALUES(memory_usage), disk_usage = VALUES(disk_usage), "                        \
    "pipelines = VALUES(pipelines), updated_at = VALUES(updated_at)"
#define SQL_REST_AGENT                                                                                                             \
    "INSERT INTO agents (id, hostname, ip_address, version, labels, status, last_heartbeat, registered_at, cpu_usage, "            \
    "memory_usage, disk_usage, pipelines, updated_at) VALUES (?, ?, ?, ?, ?, 'unknown', ?, ?, ?, ?, ?, ?, "                        \
    "CURRENT_TIMESTAMP(3))" UPSERT_TAIL
#define SQL_REST_BEAT                                                                                                              \
    "INSERT INTO agent_rest_heartbeats (agent_id, beat, received_at) VALUES (?, ?, ?) "                                            \
    "ON DUPLICATE KEY UPDATE beat = VALUES(beat), received_at = GREATEST(received_at, VALUES(received_at))"
#define SQL_LOAD "SELECT id, status, " MS("last_heartbeat") " AS hb FROM agents"
#define SQL_WITH_RUNS                                                                                                              \
    "SELECT DISTINCT agent_id FROM pipeline_runs WHERE status IN ('pending', 'running', 'paused') AND agent_id IS NOT NULL"
#define SQL_REST_POLL                                                                                                              \
    "SELECT agent_id, beat, " MS("received_at") " AS ms FROM agent_rest_heartbeats WHERE received_at > ? ORDER BY received_at"

/* hbmon's multi-row statements: the head, one row's placeholders, the tail. */
typedef struct multi {
    const char *head, *row, *tail;
    char *sql[NSIZES];
} multi_t;

static multi_t M_BEAT = {
    "INSERT INTO agents (id, hostname, ip_address, version, labels, status, last_heartbeat, status_changed_at, registered_at, "
    "cpu_usage, memory_usage, disk_usage, pipelines, updated_at) VALUES ",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3))",
    UPSERT_TAIL ", status = VALUES(status), status_changed_at = COALESCE(VALUES(status_changed_at), status_changed_at)",
    {0}};
#define BEAT_PARAMS 13
static multi_t M_STATUS = {"INSERT INTO agents (id, status, status_changed_at, updated_at) VALUES ",
                           "(?, ?, ?, CURRENT_TIMESTAMP(3))",
                           " ON DUPLICATE KEY UPDATE status = VALUES(status), status_changed_at = VALUES(status_changed_at), "
                           "updated_at = VALUES(updated_at)",
                           {0}};
#define STATUS_PARAMS 3
static multi_t M_TRANS = {
    "INSERT INTO agent_status_transitions (agent_id, from_status, to_status, reason, `at`) VALUES ", "(?, ?, ?, ?, ?)", "", {0}};
#define TRANS_PARAMS 5
static multi_t M_AUDIT = {"INSERT INTO audit_log (`at`, actor, action, target_type, target_id, before_json, after_json) VALUES ",
                          "(?, 'hbmon', ?, 'agent', ?, ?, ?)",
                          "",
                          {0}};
#define AUDIT_PARAMS 5

/* ---- small helpers ---- */

/* fmt -- ms as strftime's fmt (seconds), then ".mmm" and suffix. */
static void fmt(int64_t ms, const char *f, const char *suffix, char out[32])
{
    time_t t;
    struct tm tm;
    size_t n;

    if (ms < 0)
        ms = 0;
    t = (time_t)(ms / 1000);
    if (gmtime_r(&t, &tm) == NULL || (n = strftime(out, 32, f, &tm)) == 0 || n > 24) {
        snprintf(out, 32, "1970-01-01%c00:00:00.000%s", f[8] == 'T' ? 'T' : ' ', suffix);
        return;
    }
    snprintf(out + n, 32 - n, ".%03d%s", (int)(ms % 1000), suffix);
}

void cx_agent_ms_format(int64_t ms, char out[32])
{
    fmt(ms, "%Y-%m-%dT%H:%M:%S", "Z", out);
}

/* sql_time -- a DATETIME(3) value for a parameter. */
static void sql_time(int64_t ms, char out[32])
{
    fmt(ms, "%Y-%m-%d %H:%M:%S", "", out);
}

static void sql_double(double v, char out[32])
{
    snprintf(out, 32, "%.6g", isfinite(v) ? v : 0.0);
}

int cx_agent_status_valid(const char *s)
{
    return s != NULL && (strcmp(s, "online") == 0 || strcmp(s, "offline") == 0 || strcmp(s, "unknown") == 0);
}

static json_object *time_or_null(const char *v)
{
    char buf[32];
    if (v == NULL)
        return NULL;
    cx_agent_ms_format(strtoll(v, NULL, 10), buf);
    return json_object_new_string(buf);
}

static json_object *str_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

static json_object *num(const char *v)
{
    return json_object_new_double(v != NULL ? strtod(v, NULL) : 0.0);
}

/* json_text -- a stored JSON text as an object of the given type, or an empty one of that type. */
static json_object *json_text(const char *s, json_type type)
{
    json_object *o = s != NULL ? json_tokener_parse(s) : NULL;
    if (o != NULL && json_object_is_type(o, type))
        return o;
    json_object_put(o);
    return type == json_type_array ? json_object_new_array() : json_object_new_object();
}

/* agent_json -- row i (ACOLS) as an Agent. */
static json_object *agent_json(const cx_db_result_t *res, size_t i)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", str_or_null(cx_db_value(res, i, "id")));
    json_object_object_add(o, "hostname", str_or_null(cx_db_value(res, i, "hostname")));
    json_object_object_add(o, "ip_address", str_or_null(cx_db_value(res, i, "ip_address")));
    json_object_object_add(o, "status", str_or_null(cx_db_value(res, i, "status")));
    json_object_object_add(o, "last_heartbeat", time_or_null(cx_db_value(res, i, "last_heartbeat_ms")));
    json_object_object_add(o, "registered_at", time_or_null(cx_db_value(res, i, "registered_at_ms")));
    json_object_object_add(o, "version", str_or_null(cx_db_value(res, i, "version")));
    json_object_object_add(o, "labels", json_text(cx_db_value(res, i, "labels"), json_type_object));
    json_object_object_add(o, "status_changed_at", time_or_null(cx_db_value(res, i, "status_changed_at_ms")));
    json_object_object_add(o, "cpu_usage", num(cx_db_value(res, i, "cpu_usage")));
    json_object_object_add(o, "memory_usage", num(cx_db_value(res, i, "memory_usage")));
    json_object_object_add(o, "disk_usage", num(cx_db_value(res, i, "disk_usage")));
    json_object_object_add(o, "pipelines", json_text(cx_db_value(res, i, "pipelines"), json_type_array));
    return o;
}

/* ---- the API's reads ---- */

int cx_db_agents_list(const char *status, int page, int page_size, json_object **items, int64_t *total)
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[3];
    size_t np = 0;
    int rc;

    *items = NULL;
    *total = 0;
    if (status != NULL)
        p[np++] = CX_DB_P_STR(status);
    if ((rc = cx_db_exec(status ? SQL_COUNT_STATUS : SQL_COUNT, p, np, &res, NULL)) != CX_OK)
        return rc;
    *total = res->nrows > 0 ? strtoll(cx_db_value(res, 0, "n") ? cx_db_value(res, 0, "n") : "0", NULL, 10) : 0;
    cx_db_result_free(res);
    res = NULL;
    p[np++] = CX_DB_P_INT(page_size);
    p[np++] = CX_DB_P_INT((long long)(page - 1) * page_size);
    if ((rc = cx_db_exec(status ? SQL_LIST_STATUS : SQL_LIST, p, np, &res, NULL)) != CX_OK)
        return rc;
    *items = json_object_new_array();
    for (size_t i = 0; i < res->nrows; i++)
        json_object_array_add(*items, agent_json(res, i));
    cx_db_result_free(res);
    return CX_OK;
}

/* get_row -- the agents row of id into *res (free it); CX_NOTFOUND when there is none. */
static int get_row(const char *id, cx_db_result_t **res)
{
    cx_db_param_t p[1] = {CX_DB_P_STR(id)};
    int rc = cx_db_exec(SQL_GET, p, 1, res, NULL);
    if (rc == CX_OK && (*res)->nrows == 0) {
        cx_db_result_free(*res);
        *res = NULL;
        rc = CX_NOTFOUND;
    }
    return rc;
}

int cx_db_agent_get(const char *id, json_object **out)
{
    cx_db_result_t *res = NULL;
    json_object *runs;
    cx_run_t *active = NULL;
    size_t nactive = 0;
    int rc;

    *out = NULL;
    if ((rc = get_row(id, &res)) != CX_OK)
        return rc;
    *out = agent_json(res, 0);
    cx_db_result_free(res);
    /* the active runs, as the runs module writes a Run everywhere else */
    if ((rc = cx_db_runs_of_agent(id, &active, &nactive)) != CX_OK) {
        json_object_put(*out);
        *out = NULL;
        return rc;
    }
    runs = json_object_new_array();
    for (size_t i = 0; i < nactive; i++)
        json_object_array_add(runs, cx_run_json(&active[i]));
    cx_db_runs_free(active, nactive);
    json_object_object_add(*out, "active_runs", runs);
    return CX_OK;
}

int cx_db_agent_status(const char *id, json_object **out)
{
    cx_db_result_t *res = NULL;
    const char *hb;
    int rc;

    *out = NULL;
    if ((rc = get_row(id, &res)) != CX_OK)
        return rc;
    *out = json_object_new_object();
    json_object_object_add(*out, "agent_id", str_or_null(cx_db_value(res, 0, "id")));
    json_object_object_add(*out, "status", str_or_null(cx_db_value(res, 0, "status")));
    hb = cx_db_value(res, 0, "last_heartbeat_ms");
    json_object_object_add(*out, "last_heartbeat", time_or_null(hb));
    if (hb != NULL) {
        int64_t age = cx_wall_ms() - strtoll(hb, NULL, 10);
        char txt[32];
        if (age < 0)
            age = 0;
        snprintf(txt, sizeof(txt), "%lld.%03d", (long long)(age / 1000), (int)(age % 1000));
        json_object_object_add(*out, "seconds_since_heartbeat", json_object_new_double_s((double)age / 1000.0, txt));
    } else {
        json_object_object_add(*out, "seconds_since_heartbeat", NULL);
    }
    json_object_object_add(*out, "pipelines", json_text(cx_db_value(res, 0, "pipelines"), json_type_array));
    cx_db_result_free(res);
    return CX_OK;
}

/* ---- the REST heartbeat's writes ---- */

int cx_db_agent_register(const cx_heartbeat_t *hb, int64_t recv_ms)
{
    char reg[32], cpu[32], mem[32], disk[32];
    sql_time(recv_ms, reg);
    sql_double(hb->cpu_usage, cpu);
    sql_double(hb->memory_usage, mem);
    sql_double(hb->disk_usage, disk);
    cx_db_param_t p[] = {CX_DB_P_STR(hb->agent_id), CX_DB_P_STR(hb->hostname), CX_DB_P_STR(hb->ip_address),
                         CX_DB_P_STR(hb->version),  CX_DB_P_STR(hb->labels),   CX_DB_P_STR(reg),
                         CX_DB_P_STR(cpu),          CX_DB_P_STR(mem),          CX_DB_P_STR(disk),
                         CX_DB_P_STR(hb->pipelines)};
    return cx_db_exec(SQL_REGISTER, p, CX_ARRAY_SIZE(p), NULL, NULL);
}

int cx_db_agent_rest_beat(const cx_heartbeat_t *hb, const char *body, size_t len, int64_t recv_ms)
{
    char at[32], cpu[32], mem[32], disk[32];
    int rc;

    sql_time(recv_ms, at);
    sql_double(hb->cpu_usage, cpu);
    sql_double(hb->memory_usage, mem);
    sql_double(hb->disk_usage, disk);
    cx_db_param_t pa[] = {CX_DB_P_STR(hb->agent_id), CX_DB_P_STR(hb->hostname), CX_DB_P_STR(hb->ip_address),
                          CX_DB_P_STR(hb->version),  CX_DB_P_STR(hb->labels),   CX_DB_P_STR(at),
                          CX_DB_P_STR(at),           CX_DB_P_STR(cpu),          CX_DB_P_STR(mem),
                          CX_DB_P_STR(disk),         CX_DB_P_STR(hb->pipelines)};
    cx_db_param_t pb[] = {CX_DB_P_STR(hb->agent_id), CX_DB_P_STRN(body, len), CX_DB_P_STR(at)};

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = cx_db_exec(SQL_REST_AGENT, pa, CX_ARRAY_SIZE(pa), NULL, NULL)) != CX_OK ||
        (rc = cx_db_exec(SQL_REST_BEAT, pb, CX_ARRAY_SIZE(pb), NULL, NULL)) != CX_OK) {
        cx_db_rollback();
        return rc;
    }
    return cx_db_commit();
}

/* ---- hbmon ---- */

int cx_db_agents_load(void (*cb)(void *arg, const char *id, const char *status, int64_t last_hb_ms), void *arg)
{
    cx_db_result_t *res = NULL;
    int rc;

    if ((rc = cx_db_exec(SQL_LOAD, NULL, 0, &res, NULL)) != CX_OK)
        return rc;
    for (size_t i = 0; i < res->nrows; i++) {
        char **row = res->rows[i];
        if (row[0] == NULL)
            continue;
        cb(arg, row[0], row[1] ? row[1] : "unknown", row[2] ? strtoll(row[2], NULL, 10) : 0);
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_agents_rest_beats(int64_t since_ms, void (*cb)(void *arg, const char *id, const char *beat, size_t len, int64_t recv_ms),
                            void *arg)
{
    cx_db_result_t *res = NULL;
    char since[32];
    int rc;

    sql_time(since_ms, since);
    cx_db_param_t p[1] = {CX_DB_P_STR(since)};
    if ((rc = cx_db_exec(SQL_REST_POLL, p, 1, &res, NULL)) != CX_OK)
        return rc;
    for (size_t i = 0; i < res->nrows; i++) {
        char **row = res->rows[i];
        if (row[0] == NULL || row[1] == NULL || row[2] == NULL)
            continue;
        cb(arg, row[0], row[1], res->lens[i][1], strtoll(row[2], NULL, 10));
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_agents_with_runs(void (*cb)(void *arg, const char *id), void *arg)
{
    cx_db_result_t *res = NULL;
    int rc;

    if ((rc = cx_db_exec(SQL_WITH_RUNS, NULL, 0, &res, NULL)) != CX_OK)
        return rc;
    for (size_t i = 0; i < res->nrows; i++)
        if (res->rows[i][0] != NULL)
            cb(arg, res->rows[i][0]);
    cx_db_result_free(res);
    return CX_OK;
}

/* multi_sql -- the statement for n rows (n a power of two <= BATCH_MAX), built once. */
static const char *multi_sql(multi_t *m, size_t n)
{
    int k = 0;
    while (((size_t)1 << k) < n)
        k++;
    if (m->sql[k] == NULL) {
        size_t hl = strlen(m->head), rl = strlen(m->row), tl = strlen(m->tail);
        char *s = cx_malloc(hl + n * (rl + 2) + tl + 1), *p = s;
        memcpy(p, m->head, hl);
        p += hl;
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                *p++ = ',', *p++ = ' ';
            memcpy(p, m->row, rl);
            p += rl;
        }
        memcpy(p, m->tail, tl);
        p[tl] = '\0';
        m->sql[k] = s;
    }
    return m->sql[k];
}

/* exec_rows -- run m over nrows rows of per parameters each, in power-of-two batches. */
static int exec_rows(multi_t *m, const cx_db_param_t *params, size_t nrows, size_t per)
{
    size_t done = 0;
    while (done < nrows) {
        size_t k = BATCH_MAX;
        int rc;
        while (k > nrows - done)
            k >>= 1;
        if ((rc = cx_db_exec(multi_sql(m, k), params + done * per, k * per, NULL, NULL)) != CX_OK)
            return rc;
        done += k;
    }
    return CX_OK;
}

/* The strings one change needs as parameters. */
typedef struct bufs {
    char beat[32], changed[32], cpu[32], mem[32], disk[32];
    char before[64], after[128];
} bufs_t;

int cx_db_agents_flush(const cx_agent_change_t *ch, size_t n)
{
    cx_db_param_t *pb, *ps, *pt, *pa;
    size_t nb = 0, ns = 0, nt = 0, i;
    bufs_t *b;
    int rc;

    if (n == 0)
        return CX_OK;
    b = cx_calloc(n, sizeof(*b));
    pb = cx_calloc(n * BEAT_PARAMS, sizeof(*pb));
    ps = cx_calloc(n * STATUS_PARAMS, sizeof(*ps));
    pt = cx_calloc(n * TRANS_PARAMS, sizeof(*pt));
    pa = cx_calloc(n * AUDIT_PARAMS, sizeof(*pa));
    for (i = 0; i < n; i++) {
        const cx_agent_change_t *c = &ch[i];
        bufs_t *x = &b[i];
        if (c->from != NULL)
            sql_time(c->changed_ms, x->changed);
        if (c->beat != NULL) {
            const cx_heartbeat_t *hb = c->beat;
            cx_db_param_t *p = pb + nb++ * BEAT_PARAMS;
            sql_time(c->beat_ms, x->beat);
            sql_double(hb->cpu_usage, x->cpu);
            sql_double(hb->memory_usage, x->mem);
            sql_double(hb->disk_usage, x->disk);
            p[0] = CX_DB_P_STR(c->id);
            p[1] = CX_DB_P_STR(hb->hostname);
            p[2] = CX_DB_P_STR(hb->ip_address);
            p[3] = CX_DB_P_STR(hb->version);
            p[4] = CX_DB_P_STR(hb->labels);
            p[5] = CX_DB_P_STR(c->status);
            p[6] = CX_DB_P_STR(x->beat);
            p[7] = c->from != NULL ? CX_DB_P_STR(x->changed) : CX_DB_P_NULL;
            p[8] = CX_DB_P_STR(x->beat);
            p[9] = CX_DB_P_STR(x->cpu);
            p[10] = CX_DB_P_STR(x->mem);
            p[11] = CX_DB_P_STR(x->disk);
            p[12] = CX_DB_P_STR(hb->pipelines ? hb->pipelines : "[]");
        } else if (c->from != NULL) {
            cx_db_param_t *p = ps + ns++ * STATUS_PARAMS;
            p[0] = CX_DB_P_STR(c->id);
            p[1] = CX_DB_P_STR(c->status);
            p[2] = CX_DB_P_STR(x->changed);
        }
        if (c->from != NULL) {
            cx_db_param_t *p = pt + nt * TRANS_PARAMS, *q = pa + nt * AUDIT_PARAMS;
            nt++;
            snprintf(x->before, sizeof(x->before), "{\"status\":\"%s\"}", c->from);
            snprintf(x->after, sizeof(x->after), "{\"status\":\"%s\",\"reason\":\"%s\"}", c->status, c->reason ? c->reason : "");
            p[0] = CX_DB_P_STR(c->id);
            p[1] = CX_DB_P_STR(c->from);
            p[2] = CX_DB_P_STR(c->status);
            p[3] = CX_DB_P_STR(c->reason);
            p[4] = CX_DB_P_STR(x->changed);
            q[0] = CX_DB_P_STR(x->changed);
            q[1] = CX_DB_P_STR(strcmp(c->status, "online") == 0 ? "agent_online" : "agent_offline");
            q[2] = CX_DB_P_STR(c->id);
            q[3] = CX_DB_P_STR(x->before);
            q[4] = CX_DB_P_STR(x->after);
        }
    }
    if ((rc = cx_db_begin()) != CX_OK)
        goto out;
    if ((rc = exec_rows(&M_BEAT, pb, nb, BEAT_PARAMS)) != CX_OK || (rc = exec_rows(&M_STATUS, ps, ns, STATUS_PARAMS)) != CX_OK ||
        (rc = exec_rows(&M_TRANS, pt, nt, TRANS_PARAMS)) != CX_OK || (rc = exec_rows(&M_AUDIT, pa, nt, AUDIT_PARAMS)) != CX_OK) {
        cx_db_rollback();
        goto out;
    }
    rc = cx_db_commit();
out:
    free(b);
    free(pb);
    free(ps);
    free(pt);
    free(pa);
    return rc;
}
