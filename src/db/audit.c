/*
 * src/db/audit.c -- the audit_log table: one row per change made through the API. The row is written
 * on this process's connection, so a caller inside a transaction gets the change and its audit row
 * committed (or rolled back) together.
 */
#include <stdlib.h>
#include <string.h>

#include "conduix/audit.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"

#define AUDIT_INSERT                                                                                                               \
    "INSERT INTO audit_log (actor, action, target_type, target_id, request_id, before_json, after_json) "                          \
    "VALUES (?, ?, ?, ?, ?, ?, ?)"

/* text -- a JSON object as compact text owned by the object, or NULL for NULL. */
static const char *text(json_object *o)
{
    if (o == NULL)
        return NULL;
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

int cx_audit_row(cx_audit_row_t *row, const char *actor, const char *action, const char *target_type, const char *target_id,
                 const char *request_id, json_object *before, json_object *after, cx_db_stmt_t *stmt)
{
    memset(row, 0, sizeof(*row));
    if (action == NULL || *action == '\0')
        return CX_INVALID;
    /* Serialise into owned copies: before and after may be the same object (its string buffer is
     * overwritten by the next serialisation). */
    row->before = before ? cx_strdup(text(before)) : NULL;
    row->after = after ? cx_strdup(text(after)) : NULL;
    row->p[0] = CX_DB_P_STR(actor);
    row->p[1] = CX_DB_P_STR(action);
    row->p[2] = CX_DB_P_STR(target_type);
    row->p[3] = CX_DB_P_STR(target_id);
    row->p[4] = CX_DB_P_STR(request_id && *request_id ? request_id : NULL);
    row->p[5] = CX_DB_P_STR(row->before);
    row->p[6] = CX_DB_P_STR(row->after);
    *stmt = (cx_db_stmt_t){.sql = AUDIT_INSERT, .params = row->p, .nparams = CX_ARRAY_SIZE(row->p)};
    return CX_OK;
}

void cx_audit_row_free(cx_audit_row_t *row)
{
    free(row->before);
    free(row->after);
    memset(row, 0, sizeof(*row));
}

int cx_audit_write(const char *actor, const char *action, const char *target_type, const char *target_id, const char *request_id,
                   json_object *before, json_object *after)
{
    cx_audit_row_t row;
    cx_db_stmt_t st;
    int rc = cx_audit_row(&row, actor, action, target_type, target_id, request_id, before, after, &st);

    if (rc == CX_OK)
        rc = cx_db_exec(st.sql, st.params, st.nparams, NULL, NULL);
    cx_audit_row_free(&row);
    return rc;
}

void cx_audit_rows_stmt(const cx_audit_row_t *rows, size_t n, cx_db_stmt_t *st)
{
    size_t np = CX_ARRAY_SIZE(rows[0].p);
    cx_db_param_t *p = cx_calloc(n > 0 ? n * np : 1, sizeof(*p));

    for (size_t i = 0; i < n; i++)
        memcpy(p + i * np, rows[i].p, sizeof(rows[i].p));
    *st = (cx_db_stmt_t){
        .sql = cx_db_sql_rows(
            "INSERT INTO audit_log (actor, action, target_type, target_id, request_id, before_json, after_json) VALUES ",
            "(?, ?, ?, ?, ?, ?, ?)", ", ", n, ""),
        .params = p,
        .nparams = n * np};
}

int cx_audit_write_rows(const cx_audit_row_t *rows, size_t n)
{
    cx_db_stmt_t st;
    int rc;

    if (n == 0)
        return CX_OK;
    cx_audit_rows_stmt(rows, n, &st);
    rc = cx_db_exec(st.sql, st.params, st.nparams, NULL, NULL);
    cx_db_stmt_free(&st);
    return rc;
}
