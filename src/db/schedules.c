/*
 * src/db/schedules.c -- the schedules table (schedules.h, on the conventions of db.h): get (with the
 * status of the schedule's last run, through last_run_id), list (by pipeline, by enabled, paged), insert,
 * write (compare-and-set on the revision), delete, the due schedules of the scheduler and its claim of a
 * fire (compare-and-set on next_run_at).
 *
 * Every write through the API is one transaction with its audit row. A new schedule, or a schedule moved
 * to another pipeline, share-locks the pipeline's row: a concurrent delete of the pipeline waits for it and
 * then deletes the schedule too (cx_db_pipeline_delete), so no schedule outlives its pipeline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "conduix/audit.h"
#include "conduix/commands.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/schedules.h"
#include "conduix/shapes.h"

#define COLS                                                                                                                       \
    "s.id, s.pipeline_id, s.cron_expression, s.timezone, s.enabled, s.overlap_policy, s.revision, s.next_run_at, "                 \
    "s.last_run_at, s.last_run_id, s.fires, s.skipped, s.missed, s.failures, s.created_by, s.updated_by, s.created_at, "           \
    "s.updated_at, lr.status AS last_run_status"
#define FROM " FROM schedules s LEFT JOIN pipeline_runs lr ON lr.id = s.last_run_id"

#define SQL_GET "SELECT " COLS FROM " WHERE s.id = ?"
#define SQL_PIPELINE_LOCK "SELECT id FROM pipelines WHERE id = ? LOCK IN SHARE MODE"
#define SQL_INSERT                                                                                                                 \
    "INSERT INTO schedules (id, pipeline_id, cron_expression, timezone, enabled, overlap_policy, revision, next_run_at, "          \
    "created_by, updated_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define SQL_WRITE                                                                                                                  \
    "UPDATE schedules SET pipeline_id = ?, cron_expression = ?, timezone = ?, enabled = ?, overlap_policy = ?, revision = ?, "     \
    "next_run_at = ?, updated_by = ?, updated_at = ? WHERE id = ? AND revision = ?"
#define SQL_DELETE "DELETE FROM schedules WHERE id = ?"
#define SQL_LOCK "SELECT id FROM schedules WHERE id = ? FOR UPDATE"
/* A row another transaction holds is another scheduler's claim in progress (or a frozen one's): skipped,
 * not waited for; it is due again at the next tick if that one rolls back. */
#define SQL_CLAIM_LOCK "SELECT id FROM schedules WHERE id = ? FOR UPDATE SKIP LOCKED"
#define SQL_CLAIM_CAS                                                                                                              \
    "UPDATE schedules SET next_run_at = ?, fires = fires + ?, skipped = skipped + ?, missed = missed + ?, "                        \
    "failures = failures + ?, last_run_id = COALESCE(?, last_run_id), last_run_at = IF(? IS NULL, last_run_at, NOW(3)) "           \
    "WHERE id = ? AND enabled = 1 AND revision = ? AND next_run_at <=> ?"
#define SQL_CLAIM                                                                                                                  \
    "UPDATE schedules SET fires = fires + ?, skipped = skipped + ?, missed = missed + ?, failures = failures + ?, "                \
    "last_run_id = COALESCE(?, last_run_id), last_run_at = IF(? IS NULL, last_run_at, NOW(3)) WHERE id = ?"
#define SQL_DUE "SELECT " COLS FROM " WHERE s.enabled = 1 AND s.next_run_at <= ? ORDER BY s.next_run_at, s.id LIMIT ?"
#define SQL_AHEAD                                                                                                                  \
    "SELECT " COLS FROM " WHERE s.enabled = 1 AND s.next_run_at <= ? AND (s.next_run_at > ? OR (s.next_run_at = ? AND s.id > ?)) " \
    "ORDER BY s.next_run_at, s.id LIMIT ?"
#define SQL_UNPLANNED "SELECT " COLS FROM " WHERE s.enabled = 1 AND s.next_run_at IS NULL ORDER BY s.id LIMIT ?"
#define SQL_ENABLED "SELECT COUNT(*) AS n FROM schedules WHERE enabled = 1"

void cx_schedule_free(cx_schedule_t *s)
{
    if (s == NULL)
        return;
    free(s->created_by);
    free(s->updated_by);
    memset(s, 0, sizeof(*s));
}

void cx_db_schedules_free(cx_schedule_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cx_schedule_free(&v[i]);
    free(v);
}

/* fill -- row i (COLS) into *s. A policy this build does not know reads as skip, logged. */
static void fill(cx_db_result_t *res, size_t i, cx_schedule_t *s)
{
    const char *pol = cx_db_value(res, i, "overlap_policy"), *st = cx_db_value(res, i, "last_run_status");

    memset(s, 0, sizeof(*s));
    cx_db_copy(res, i, "id", s->id, sizeof(s->id));
    cx_db_copy(res, i, "pipeline_id", s->pipeline_id, sizeof(s->pipeline_id));
    cx_db_copy(res, i, "cron_expression", s->cron_expression, sizeof(s->cron_expression));
    cx_db_copy(res, i, "timezone", s->timezone, sizeof(s->timezone));
    s->enabled = cx_db_int(res, i, "enabled", 0) != 0;
    if (cx_overlap_parse(pol, &s->overlap_policy) != CX_OK) {
        cx_log_warnx("schedule %s: unknown overlap policy %.32s; read as skip", s->id, pol ? pol : "NULL");
        s->overlap_policy = CX_OVERLAP_SKIP;
    }
    s->revision = cx_db_int(res, i, "revision", 1);
    s->next_run_at = cx_db_time_ms(cx_db_value(res, i, "next_run_at"));
    s->last_run_at = cx_db_time_ms(cx_db_value(res, i, "last_run_at"));
    cx_db_copy(res, i, "last_run_id", s->last_run_id, sizeof(s->last_run_id));
    s->has_last_run = st != NULL && cx_run_status_parse(st, &s->last_run_status) == CX_OK;
    s->fires = cx_db_int(res, i, "fires", 0);
    s->skipped = cx_db_int(res, i, "skipped", 0);
    s->missed = cx_db_int(res, i, "missed", 0);
    s->failures = cx_db_int(res, i, "failures", 0);
    s->created_by = cx_db_take(res, i, "created_by");
    s->updated_by = cx_db_take(res, i, "updated_by");
    s->created_at = cx_db_time_ms(cx_db_value(res, i, "created_at"));
    s->updated_at = cx_db_time_ms(cx_db_value(res, i, "updated_at"));
}

/* rows -- every row of res into a new array. */
static void rows(cx_db_result_t *res, cx_schedule_t **items, size_t *n)
{
    *items = res->nrows > 0 ? cx_calloc(res->nrows, sizeof(**items)) : NULL;
    for (size_t i = 0; i < res->nrows; i++)
        fill(res, i, &(*items)[i]);
    *n = res->nrows;
}

int cx_db_schedule_get(const char *id, cx_schedule_t *out)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec(SQL_GET, p, 1, &res, NULL);

    memset(out, 0, sizeof(*out));
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_NOTFOUND;
    if (rc == CX_OK)
        fill(res, 0, out);
    cx_db_result_free(res);
    return rc;
}

int cx_db_schedule_list(const cx_schedule_query_t *q, cx_schedule_t **items, size_t *n, int64_t *total)
{
    cx_db_param_t p[4];
    size_t np = 0;
    cx_db_result_t *res = NULL;
    int64_t offset = (int64_t)(q->page - 1) * q->page_size;
    char where[128] = "", sql[1024];
    int rc;

    *items = NULL;
    *n = 0;
    *total = 0;
    if (q->pipeline_id != NULL) {
        snprintf(where, sizeof(where), " WHERE s.pipeline_id = ?");
        p[np++] = CX_DB_P_STR(q->pipeline_id);
    }
    if (q->has_enabled) {
        snprintf(where + strlen(where), sizeof(where) - strlen(where), "%s s.enabled = ?", np ? " AND" : " WHERE");
        p[np++] = CX_DB_P_INT(q->enabled ? 1 : 0);
    }
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n FROM schedules s%s", where);
    if ((rc = cx_db_exec(sql, p, np, &res, NULL)) != CX_OK)
        return rc;
    *total = cx_db_int(res, 0, "n", 0);
    cx_db_result_free(res);
    if (offset >= *total)
        return CX_OK;
    p[np++] = CX_DB_P_INT(q->page_size);
    p[np++] = CX_DB_P_INT(offset);
    snprintf(sql, sizeof(sql), "SELECT %s%s%s ORDER BY s.created_at DESC, s.id DESC LIMIT ? OFFSET ?", COLS, FROM, where);
    if ((rc = cx_db_exec(sql, p, np, &res, NULL)) != CX_OK)
        return rc;
    rows(res, items, n);
    cx_db_result_free(res);
    return CX_OK;
}

/* ---- writes ---- */

/* finish -- commit when rc is CX_OK, else roll back; the first failure wins. */
static int finish(int rc)
{
    if (rc == CX_OK)
        return cx_db_commit();
    cx_db_rollback();
    return rc;
}

/* audit -- the audit row of a change: the schedule before and after (NULL for none). */
static int audit(const char *action, const char *id, const cx_pipeline_actor_t *who, const cx_schedule_t *before,
                 const cx_schedule_t *after)
{
    const char *tz = cx_cfg != NULL ? cx_cfg->scheduler.timezone : "UTC";
    json_object *b = before != NULL ? cx_schedule_json(before, tz) : NULL, *a = after != NULL ? cx_schedule_json(after, tz) : NULL;
    int rc = cx_audit_write(who->actor, action, "schedule", id, who->request_id, b, a);
    json_object_put(b);
    json_object_put(a);
    return rc;
}

/* pipeline_exists -- share-lock the pipeline's row: CX_OK, or CX_INVALID when there is none. */
static int pipeline_exists(const char *pipeline_id)
{
    cx_db_param_t p[] = {CX_DB_P_STR(pipeline_id)};
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec(SQL_PIPELINE_LOCK, p, 1, &res, NULL);
    if (rc == CX_OK && res->nrows == 0)
        rc = CX_INVALID;
    cx_db_result_free(res);
    return rc;
}

/* time_param -- a DATETIME parameter of Unix milliseconds; NULL for 0. */
static cx_db_param_t time_param(int64_t ms, char buf[32])
{
    if (ms <= 0)
        return CX_DB_P_NULL;
    cx_db_time_text(ms, buf);
    return CX_DB_P_STR(buf);
}

int cx_db_schedule_insert(const cx_schedule_t *s, const cx_pipeline_actor_t *who)
{
    char next[32], created[32], updated[32];
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = pipeline_exists(s->pipeline_id)) == CX_OK) {
        cx_db_param_t p[] = {
            CX_DB_P_STR(s->id),
            CX_DB_P_STR(s->pipeline_id),
            CX_DB_P_STR(s->cron_expression),
            CX_DB_P_STR(s->timezone[0] ? s->timezone : NULL),
            CX_DB_P_INT(s->enabled ? 1 : 0),
            CX_DB_P_STR(cx_overlap_name(s->overlap_policy)),
            CX_DB_P_INT(s->revision),
            time_param(s->next_run_at, next),
            CX_DB_P_STR(s->created_by),
            CX_DB_P_STR(s->updated_by),
            time_param(s->created_at, created),
            time_param(s->updated_at, updated),
        };
        rc = cx_db_exec(SQL_INSERT, p, CX_ARRAY_SIZE(p), NULL, NULL);
    }
    if (rc == CX_OK)
        rc = audit("schedule_create", s->id, who, NULL, s);
    return finish(rc);
}

/* unhold -- inside a change of schedule id: its row locked (a scheduler writing its fire ahead of time
 * is waited for), and a fire written ahead of its time undone: the change decides what fires next (the
 * write sets next_run_at). */
static int unhold(const char *id, const cx_pipeline_actor_t *who, const char *action)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_db_result_t *res = NULL;
    char why[96];
    int rc;

    if ((rc = cx_db_exec(SQL_LOCK, p, 1, &res, NULL)) != CX_OK)
        return rc;
    cx_db_result_free(res);
    snprintf(why, sizeof(why), "its schedule was changed (%s)", action);
    return cx_db_held_unhold(CX_HELD_SCHEDULE, id, 0, who->actor, who->request_id, why, NULL);
}

int cx_db_schedule_write(const cx_schedule_t *before, const cx_schedule_t *after, const char *action,
                         const cx_pipeline_actor_t *who)
{
    char next[32], at[32];
    uint64_t affected = 0;
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = unhold(before->id, who, action)) != CX_OK)
        return finish(rc);
    if (strcmp(before->pipeline_id, after->pipeline_id) != 0)
        rc = pipeline_exists(after->pipeline_id);
    if (rc == CX_OK) {
        cx_db_param_t p[] = {
            CX_DB_P_STR(after->pipeline_id),
            CX_DB_P_STR(after->cron_expression),
            CX_DB_P_STR(after->timezone[0] ? after->timezone : NULL),
            CX_DB_P_INT(after->enabled ? 1 : 0),
            CX_DB_P_STR(cx_overlap_name(after->overlap_policy)),
            CX_DB_P_INT(after->revision),
            time_param(after->next_run_at, next),
            CX_DB_P_STR(after->updated_by),
            time_param(after->updated_at, at),
            CX_DB_P_STR(before->id),
            CX_DB_P_INT(before->revision),
        };
        rc = cx_db_exec(SQL_WRITE, p, CX_ARRAY_SIZE(p), NULL, &affected);
    }
    if (rc == CX_OK && affected != 1) {
        /* changed or deleted since it was read: which one? */
        cx_schedule_t now;
        rc = cx_db_schedule_get(before->id, &now);
        if (rc == CX_OK)
            rc = CX_STATE;
        cx_schedule_free(&now);
    }
    if (rc == CX_OK)
        rc = audit(action, before->id, who, before, after);
    return finish(rc);
}

int cx_db_schedule_delete(const char *id, const cx_pipeline_actor_t *who)
{
    cx_db_param_t p[] = {CX_DB_P_STR(id)};
    cx_schedule_t before = {0};
    int rc;

    if ((rc = cx_db_begin()) != CX_OK)
        return rc;
    if ((rc = unhold(id, who, "schedule_delete")) == CX_OK && (rc = cx_db_schedule_get(id, &before)) == CX_OK &&
        (rc = cx_db_exec(SQL_DELETE, p, 1, NULL, NULL)) == CX_OK)
        rc = audit("schedule_delete", id, who, &before, NULL);
    cx_schedule_free(&before);
    return finish(rc);
}

/* ---- the scheduler's ---- */

int cx_db_schedules_due(int64_t now_ms, int unplanned, size_t limit, cx_schedule_t **items, size_t *n)
{
    char now[32];
    cx_db_param_t p[2];
    size_t np = 0;
    cx_db_result_t *res = NULL;
    int rc;

    *items = NULL;
    *n = 0;
    if (!unplanned) {
        cx_db_time_text(now_ms, now);
        p[np++] = CX_DB_P_STR(now);
    }
    p[np++] = CX_DB_P_INT((long long)limit);
    if ((rc = cx_db_exec(unplanned ? SQL_UNPLANNED : SQL_DUE, p, np, &res, NULL)) != CX_OK)
        return rc;
    rows(res, items, n);
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_schedules_ahead(int64_t after_ms, const char *after_id, int64_t until_ms, size_t limit, cx_schedule_t **items, size_t *n)
{
    char after[32], until[32];
    cx_db_result_t *res = NULL;
    int rc;

    *items = NULL;
    *n = 0;
    cx_db_time_text(after_ms, after);
    cx_db_time_text(until_ms, until);
    /* no id: every schedule due after after_ms; else those at after_ms after that id too */
    cx_db_param_t p[] = {CX_DB_P_STR(until), CX_DB_P_STR(after), CX_DB_P_STR(after),
                         CX_DB_P_STR(after_id != NULL && after_id[0] ? after_id : NULL), CX_DB_P_INT((long long)limit)};
    if ((rc = cx_db_exec(SQL_AHEAD, p, CX_ARRAY_SIZE(p), &res, NULL)) != CX_OK)
        return rc;
    rows(res, items, n);
    cx_db_result_free(res);
    return CX_OK;
}

int cx_db_schedule_claim(const cx_schedule_claim_t *c)
{
    char next[32], due[32];
    uint64_t affected = 0;
    int rc;

    if (c->cas) {
        cx_db_param_t lp[] = {CX_DB_P_STR(c->id)};
        cx_db_result_t *res = NULL;
        if ((rc = cx_db_exec(SQL_CLAIM_LOCK, lp, 1, &res, NULL)) != CX_OK)
            return rc;
        affected = res->nrows;
        cx_db_result_free(res);
        if (affected == 0)
            return CX_STATE;
        cx_db_param_t p[] = {
            time_param(c->next_ms, next), CX_DB_P_INT(c->fires),       CX_DB_P_INT(c->skipped),     CX_DB_P_INT(c->missed),
            CX_DB_P_INT(c->failures),     CX_DB_P_STR(c->last_run_id), CX_DB_P_STR(c->last_run_id), CX_DB_P_STR(c->id),
            CX_DB_P_INT(c->revision),     time_param(c->due_ms, due),
        };
        rc = cx_db_exec(SQL_CLAIM_CAS, p, CX_ARRAY_SIZE(p), NULL, &affected);
        return rc == CX_OK && affected != 1 ? CX_STATE : rc;
    }
    cx_db_param_t p[] = {
        CX_DB_P_INT(c->fires),       CX_DB_P_INT(c->skipped),     CX_DB_P_INT(c->missed), CX_DB_P_INT(c->failures),
        CX_DB_P_STR(c->last_run_id), CX_DB_P_STR(c->last_run_id), CX_DB_P_STR(c->id),
    };
    rc = cx_db_exec(SQL_CLAIM, p, CX_ARRAY_SIZE(p), NULL, &affected);
    return rc == CX_OK && affected != 1 ? CX_NOTFOUND : rc;
}

int cx_db_schedules_enabled(int64_t *n)
{
    cx_db_result_t *res = NULL;
    int rc = cx_db_exec(SQL_ENABLED, NULL, 0, &res, NULL);
    *n = 0;
    if (rc == CX_OK)
        *n = cx_db_int(res, 0, "n", 0);
    cx_db_result_free(res);
    return rc;
}

/* ---- the claims of a batch of fires ---- */

int cx_db_schedules_claim_lock(cx_schedule_claim_t *const *c, size_t n, int *ok)
{
    cx_db_param_t *p = cx_calloc(n > 0 ? n : 1, sizeof(*p));
    cx_db_result_t *res = NULL;
    size_t np = 0;
    char *sql;
    int rc = CX_OK;

    for (size_t i = 0; i < n; i++) {
        ok[i] = !c[i]->cas;
        if (c[i]->cas)
            p[np++] = CX_DB_P_STR(c[i]->id);
    }
    if (np == 0) {
        free(p);
        return CX_OK;
    }
    sql = cx_db_sql_rows("SELECT id, enabled, revision, next_run_at FROM schedules WHERE id IN (", "?", ", ", np,
                         ") FOR UPDATE SKIP LOCKED");
    rc = cx_db_exec(sql, p, np, &res, NULL);
    free(sql);
    free(p);
    if (rc != CX_OK)
        return rc;
    for (size_t r = 0; r < res->nrows; r++) {
        const char *id = cx_db_value(res, r, "id");
        int64_t rev = cx_db_int(res, r, "revision", -1), next = cx_db_time_ms(cx_db_value(res, r, "next_run_at"));
        int enabled = cx_db_int(res, r, "enabled", 0) != 0;
        for (size_t i = 0; i < n && id != NULL; i++)
            if (c[i]->cas && strcmp(c[i]->id, id) == 0)
                ok[i] = enabled && rev == c[i]->revision && next == c[i]->due_ms;
    }
    cx_db_result_free(res);
    return CX_OK;
}

/* The claims of a batch as one JSON parameter: [[id, cas, revision, due, next, fires, skipped, missed,
 * failures, last_run_id], …], a table to the statement (JSON_TABLE): one parameter and one statement
 * text whatever the batch's size (a derived table of a SELECT a claim cost MariaDB a parse of each). */
#define SQL_SETTLE                                                                                                                 \
    "UPDATE schedules s JOIN JSON_TABLE(?, '$[*]' COLUMNS(id VARCHAR(36) PATH '$[0]', cas INT PATH '$[1]', rev BIGINT PATH "       \
    "'$[2]', due DATETIME(3) PATH '$[3]', next DATETIME(3) PATH '$[4]', f BIGINT PATH '$[5]', sk BIGINT PATH '$[6]', m BIGINT "    \
    "PATH '$[7]', x BIGINT PATH '$[8]', run VARCHAR(36) PATH '$[9]')) v ON s.id = v.id "                                           \
    "SET s.next_run_at = IF(v.cas = 1, v.next, s.next_run_at), s.fires = s.fires + v.f, s.skipped = s.skipped + v.sk, "            \
    "s.missed = s.missed + v.m, s.failures = s.failures + v.x, s.last_run_id = COALESCE(v.run, s.last_run_id), "                   \
    "s.last_run_at = IF(v.run IS NULL, s.last_run_at, NOW(3)) "                                                                    \
    "WHERE v.cas = 0 OR (s.enabled = 1 AND s.revision = v.rev AND s.next_run_at <=> v.due)"

static json_object *time_json(int64_t ms)
{
    char buf[32];
    if (ms <= 0)
        return NULL;
    cx_db_time_text(ms, buf);
    return json_object_new_string(buf);
}

int cx_db_schedules_claim_settle(cx_schedule_claim_t *const *c, size_t n)
{
    json_object *all;
    uint64_t affected = 0;
    int rc;

    if (n == 0)
        return CX_OK;
    all = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        json_object *row = json_object_new_array_ext(10);
        json_object_array_add(row, json_object_new_string(c[i]->id));
        json_object_array_add(row, json_object_new_int(c[i]->cas ? 1 : 0));
        json_object_array_add(row, json_object_new_int64(c[i]->revision));
        json_object_array_add(row, time_json(c[i]->due_ms));
        json_object_array_add(row, time_json(c[i]->next_ms));
        json_object_array_add(row, json_object_new_int64(c[i]->fires));
        json_object_array_add(row, json_object_new_int64(c[i]->skipped));
        json_object_array_add(row, json_object_new_int64(c[i]->missed));
        json_object_array_add(row, json_object_new_int64(c[i]->failures));
        json_object_array_add(row, c[i]->last_run_id ? json_object_new_string(c[i]->last_run_id) : NULL);
        json_object_array_add(all, row);
    }
    /* the values of every claim joined to its schedule: one statement for the batch; the conditions of a
     * cas claim are those of SQL_CLAIM_CAS (the rows are locked by cx_db_schedules_claim_lock) */
    cx_db_param_t p[] = {CX_DB_P_STR(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN))};
    rc = cx_db_exec(SQL_SETTLE, p, 1, NULL, &affected);
    json_object_put(all);
    return rc == CX_OK && affected != n ? CX_STATE : rc;
}
