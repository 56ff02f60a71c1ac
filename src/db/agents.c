/*
 * src/db/agents.c -- the agents table and its companions (agents.h, on the conventions of db.h): the
 * API's reads (list, one agent with its active runs), the REST heartbeat's writes (register; the direct write while Redis is down,
 * into agents and agent_rest_heartbeats), and hbmon's bulk operations: load the registry, poll the
 * direct REST beats, and flush a tick's changes (multi-row upserts, transitions and their audit rows) in
 * one transaction.
 *
 * Times go in as "YYYY-MM-DD HH:MM:SS.mmm" UTC strings made from control-plane clocks (the receive time
 * of a beat), never from the agent's clock, and come out as Unix milliseconds. Multi-row statements use batches of power-of-two
 * sizes (at most BATCH_MAX rows) so that only a handful of distinct statements reach the prepared-statement cache.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conduix/agents.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/heartbeat.h"
#include "conduix/log.h"
#include "conduix/runs.h"

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
    "memory_usage, disk_usage, pipelines, updated_at) VALUES (?, ?, ?, ?, ?, 'unknown', NOW(3), ?, ?, ?, ?, ?, "                   \
    "CURRENT_TIMESTAMP(3))" UPSERT_TAIL
#define SQL_REST_BEAT                                                                                                              \
    "INSERT INTO agent_rest_heartbeats (agent_id, beat, received_at) VALUES (?, ?, NOW(3)) "                                       \
    "ON DUPLICATE KEY UPDATE beat = VALUES(beat), received_at = GREATEST(received_at, VALUES(received_at))"
#define SQL_LOAD "SELECT id, status, " MS("last_heartbeat") " AS hb FROM agents"
/* The active runs through uq_runs_active: active_pipeline_id is set exactly while the status is one of
 * CX_RUN_ACTIVE_SQL (0001), so the range reads the same rows the status index did, and that index
 * (written by every run and every change of its status) is gone (0010). */
#define SQL_WITH_RUNS "SELECT DISTINCT agent_id FROM pipeline_runs WHERE active_pipeline_id IS NOT NULL AND agent_id IS NOT NULL"
#define SQL_REST_POLL                                                                                                              \
    "SELECT agent_id, beat, " MS("received_at") " AS ms, TIMESTAMPDIFF(MICROSECOND, received_at, NOW(3)) DIV 1000 AS age "         \
                                                "FROM agent_rest_heartbeats WHERE received_at > ? AND received_at > NOW(3) - "     \
                                                "INTERVAL ? MICROSECOND ORDER BY received_at"
/* The lock of the leading hbmon: one per database (several test databases share a server), within
 * MySQL's 64 characters. */
#define HBMON_LOCK "CONCAT('cx_hbmon:', SHA1(DATABASE()))"
#define SQL_LEAD "SELECT IF(IS_USED_LOCK(" HBMON_LOCK ") = CONNECTION_ID(), 2, GET_LOCK(" HBMON_LOCK ", 0)) AS got"
#define SQL_COUNT_BY_STATUS "SELECT status, COUNT(*) AS n FROM agents GROUP BY status"

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

static void sql_double(double v, char out[32])
{
    snprintf(out, 32, "%.6g", isfinite(v) ? v : 0.0);
}

void cx_agent_free(cx_agent_t *a)
{
    if (a == NULL)
        return;
    free(a->hostname);
    free(a->ip_address);
    free(a->version);
    free(a->labels);
    free(a->pipelines);
    memset(a, 0, sizeof(*a));
}

void cx_db_agents_free(cx_agent_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cx_agent_free(&v[i]);
    free(v);
}

static double num(const cx_db_result_t *res, size_t i, const char *col)
{
    const char *v = cx_db_value(res, i, col);
    return v != NULL ? strtod(v, NULL) : 0.0;
}

/* fill -- row i (ACOLS) into *a. */
static void fill(cx_db_result_t *res, size_t i, cx_agent_t *a)
{
    const char *st = cx_db_value(res, i, "status");

    memset(a, 0, sizeof(*a));
    cx_db_copy(res, i, "id", a->id, sizeof(a->id));
    a->hostname = cx_db_take(res, i, "hostname");
    a->ip_address = cx_db_take(res, i, "ip_address");
    a->version = cx_db_take(res, i, "version");
    a->labels = cx_db_take(res, i, "labels");
    a->pipelines = cx_db_take(res, i, "pipelines");
    if (cx_agent_status_parse(st, &a->status) != CX_OK) {
        cx_log_warnx("agent %s: unknown status %.32s in agents; shown as unknown", a->id, st ? st : "NULL");
        a->status = CX_AGENT_UNKNOWN;
    }
    a->last_heartbeat = cx_db_int(res, i, "last_heartbeat_ms", 0);
    a->registered_at = cx_db_int(res, i, "registered_at_ms", 0);
    a->status_changed_at = cx_db_int(res, i, "status_changed_at_ms", 0);
    a->cpu_usage = num(res, i, "cpu_usage");
    a->memory_usage = num(res, i, "memory_usage");
    a->disk_usage = num(res, i, "disk_usage");
}

/* ---- the API's reads ---- */

int cx_db_agents_list(int has_status, cx_agent_status_t status, int page, int page_size, cx_agent_t **items, size_t *n,
                      int64_t *total)
{
    cx_db_result_t *res = NULL;
    cx_db_param_t p[3];
    size_t np = 0;
    int rc;

    *items = NULL;
    *n = 0;
    *total = 0;
    if (has_status)
        p[np++] = CX_DB_P_STR(cx_agent_status_name(status));
    if ((rc = cx_db_exec(has_status ? SQL_COUNT_STATUS : SQL_COUNT, p, np, &res, NULL)) != CX_OK)
        return rc;
    *total = cx_db_int(res, 0, "n", 0);
    cx_db_result_free(res);
    res = NULL;
    p[np++] = CX_DB_P_INT(page_size);
    p[np++] = CX_DB_P_INT((long long)(page - 1) * page_size);
    if ((rc = cx_db_exec(has_status ? SQL_LIST_STATUS : SQL_LIST, p, np, &res, NULL)) != CX_OK)
        return rc;
    if (res->nrows > 0) {
        *items = cx_calloc(res->nrows, sizeof(**items));
        for (size_t i = 0; i < res->nrows; i++)
            fill(res, i, &(*items)[i]);
        *n = res->nrows;
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_agent_get(const char *id, cx_agent_t *out, struct cx_run **active, size_t *nactive)
{
    cx_db_param_t p[1] = {CX_DB_P_STR(id)};
    cx_db_result_t *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = cx_db_exec(SQL_GET, p, 1, &res, NULL)) != CX_OK)
        return rc;
    if (res->nrows == 0) {
        cx_db_result_free(res);
        return CX_NOTFOUND;
    }
    fill(res, 0, out);
    cx_db_result_free(res);
    if (active != NULL && nactive != NULL && (rc = cx_db_runs_of_agent(id, active, nactive)) != CX_OK) {
        cx_agent_free(out);
        return rc;
    }
    return CX_OK;
}

/* ---- the REST heartbeat's writes ---- */

int cx_db_agent_register(const cx_heartbeat_t *hb, int64_t recv_ms)
{
    char reg[32], cpu[32], mem[32], disk[32];
    cx_db_time_text(recv_ms, reg);
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

    cx_db_time_text(recv_ms, at);
    sql_double(hb->cpu_usage, cpu);
    sql_double(hb->memory_usage, mem);
    sql_double(hb->disk_usage, disk);
    cx_db_param_t pa[] = {CX_DB_P_STR(hb->agent_id), CX_DB_P_STR(hb->hostname), CX_DB_P_STR(hb->ip_address),
                          CX_DB_P_STR(hb->version),  CX_DB_P_STR(hb->labels),   CX_DB_P_STR(at),
                          CX_DB_P_STR(cpu),          CX_DB_P_STR(mem),          CX_DB_P_STR(disk),
                          CX_DB_P_STR(hb->pipelines)};
    cx_db_param_t pb[] = {CX_DB_P_STR(hb->agent_id), CX_DB_P_STRN(body, len)};

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

int cx_db_agents_load(void (*cb)(void *arg, const char *id, cx_agent_status_t status, int64_t last_hb_ms), void *arg)
{
    cx_db_result_t *res = NULL;
    int rc;

    if ((rc = cx_db_exec(SQL_LOAD, NULL, 0, &res, NULL)) != CX_OK)
        return rc;
    for (size_t i = 0; i < res->nrows; i++) {
        char **row = res->rows[i];
        cx_agent_status_t st = CX_AGENT_UNKNOWN;
        if (row[0] == NULL)
            continue;
        (void)cx_agent_status_parse(row[1], &st); /* anything else is unknown */
        cb(arg, row[0], st, row[2] ? strtoll(row[2], NULL, 10) : 0);
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_agents_rest_beats(int64_t since_ms, int64_t window_ms,
                            void (*cb)(void *arg, const char *id, const char *beat, size_t len, int64_t received_at,
                                       int64_t age_ms),
                            void *arg)
{
    cx_db_result_t *res = NULL;
    char since[32];
    int rc;

    cx_db_time_text(since_ms, since);
    cx_db_param_t p[] = {CX_DB_P_STR(since), CX_DB_P_INT(window_ms * 1000)};
    if ((rc = cx_db_exec(SQL_REST_POLL, p, 2, &res, NULL)) != CX_OK)
        return rc;
    for (size_t i = 0; i < res->nrows; i++) {
        char **row = res->rows[i];
        if (row[0] == NULL || row[1] == NULL || row[2] == NULL || row[3] == NULL)
            continue;
        cb(arg, row[0], row[1], res->lens[i][1], strtoll(row[2], NULL, 10), strtoll(row[3], NULL, 10));
    }
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_agents_lead(void)
{
    cx_db_result_t *res = NULL;
    const char *v;
    int rc;

    if ((rc = cx_db_exec(SQL_LEAD, NULL, 0, &res, NULL)) != CX_OK)
        return rc;
    v = cx_db_value(res, 0, "got");
    /* 2: held all along; 1: taken now; 0: another session has it; NULL: GET_LOCK failed */
    rc = v == NULL ? CX_ERR : strcmp(v, "2") == 0 ? CX_OK : strcmp(v, "1") == 0 ? CX_STATE : CX_CONFLICT;
    cx_db_result_free(res);
    return rc;
}

int cx_db_agents_count(int64_t n[CX_AGENT_STATUS_COUNT])
{
    cx_db_result_t *res = NULL;
    int rc;

    if ((rc = cx_db_exec(SQL_COUNT_BY_STATUS, NULL, 0, &res, NULL)) != CX_OK)
        return rc;
    for (int k = 0; k < CX_AGENT_STATUS_COUNT; k++)
        n[k] = 0;
    for (size_t i = 0; i < res->nrows; i++) {
        cx_agent_status_t st;
        if (cx_agent_status_parse(res->rows[i][0], &st) == CX_OK)
            n[st] += res->rows[i][1] ? strtoll(res->rows[i][1], NULL, 10) : 0;
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
        if (c->transition)
            cx_db_time_text(c->changed_ms, x->changed);
        if (c->beat != NULL) {
            const cx_heartbeat_t *hb = c->beat;
            cx_db_param_t *p = pb + nb++ * BEAT_PARAMS;
            cx_db_time_text(c->beat_ms, x->beat);
            sql_double(hb->cpu_usage, x->cpu);
            sql_double(hb->memory_usage, x->mem);
            sql_double(hb->disk_usage, x->disk);
            p[0] = CX_DB_P_STR(c->id);
            p[1] = CX_DB_P_STR(hb->hostname);
            p[2] = CX_DB_P_STR(hb->ip_address);
            p[3] = CX_DB_P_STR(hb->version);
            p[4] = CX_DB_P_STR(hb->labels);
            p[5] = CX_DB_P_STR(cx_agent_status_name(c->status));
            p[6] = CX_DB_P_STR(x->beat);
            p[7] = c->transition ? CX_DB_P_STR(x->changed) : CX_DB_P_NULL;
            p[8] = CX_DB_P_STR(x->beat);
            p[9] = CX_DB_P_STR(x->cpu);
            p[10] = CX_DB_P_STR(x->mem);
            p[11] = CX_DB_P_STR(x->disk);
            p[12] = CX_DB_P_STR(hb->pipelines ? hb->pipelines : "[]");
        } else if (c->transition) {
            cx_db_param_t *p = ps + ns++ * STATUS_PARAMS;
            p[0] = CX_DB_P_STR(c->id);
            p[1] = CX_DB_P_STR(cx_agent_status_name(c->status));
            p[2] = CX_DB_P_STR(x->changed);
        }
        if (c->transition) {
            cx_db_param_t *p = pt + nt * TRANS_PARAMS, *q = pa + nt * AUDIT_PARAMS;
            const char *from = cx_agent_status_name(c->from), *to = cx_agent_status_name(c->status);
            nt++;
            snprintf(x->before, sizeof(x->before), "{\"status\":\"%s\"}", from);
            snprintf(x->after, sizeof(x->after), "{\"status\":\"%s\",\"reason\":\"%s\"}", to, c->reason ? c->reason : "");
            p[0] = CX_DB_P_STR(c->id);
            p[1] = CX_DB_P_STR(from);
            p[2] = CX_DB_P_STR(to);
            p[3] = CX_DB_P_STR(c->reason);
            p[4] = CX_DB_P_STR(x->changed);
            q[0] = CX_DB_P_STR(x->changed);
            q[1] = CX_DB_P_STR(c->status == CX_AGENT_ONLINE ? "agent_online" : "agent_offline");
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
