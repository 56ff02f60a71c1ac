/*
 * audit.h -- the audit log: one row in audit_log per change made through the API (pipeline
 * create/update/delete, start/stop/pause/resume, agent changes …), with who, what, which request, and
 * the target's JSON before and after.
 */
#ifndef CONDUIX_AUDIT_H
#define CONDUIX_AUDIT_H

#include <json.h>
#include "conduix/db.h"

/* cx_audit_write -- insert one audit_log row.
 * actor: the caller's identity (cx_req_actor), may be NULL. action: e.g. "pipeline_create" (required).
 * target_type: e.g. "pipeline", target_id: its id, request_id: the request's id (all may be NULL).
 * before/after: serialised as compact JSON text (NULL stores SQL NULL); not taken over (the caller
 * still owns and frees them).
 * Runs on this process's connection, so inside the caller's transaction when there is one (call it
 * between cx_db_begin and cx_db_commit to make the change and its audit row atomic).
 * Returns CX_OK, CX_INVALID (no action), CX_UNAVAIL (MySQL down) or CX_ERR (logged). */
int cx_audit_write(const char *actor, const char *action, const char *target_type, const char *target_id, const char *request_id,
                   json_object *before, json_object *after);

/* An audit row as a statement of a cx_db_batch (the change and its row in one round trip). */
typedef struct cx_audit_row {
    cx_db_param_t p[7];
    char *before, *after; /* the JSON texts, owned */
} cx_audit_row_t;

/* cx_audit_row -- the row cx_audit_write would insert, as *stmt (its parameters in *row, valid until
 * cx_audit_row_free). CX_OK, or CX_INVALID (no action). */
int cx_audit_row(cx_audit_row_t *row, const char *actor, const char *action, const char *target_type, const char *target_id,
                 const char *request_id, json_object *before, json_object *after, cx_db_stmt_t *stmt);
void cx_audit_row_free(cx_audit_row_t *row);

/* cx_audit_write_rows -- n rows made by cx_audit_row in one multi-row INSERT, on this process's
 * connection (inside the caller's transaction). */
int cx_audit_write_rows(const cx_audit_row_t *rows, size_t n);

/* cx_audit_rows_stmt -- that INSERT as a statement for cx_db_exec_many (n > 0; cx_db_stmt_free it; its
 * parameters point into rows). */
void cx_audit_rows_stmt(const cx_audit_row_t *rows, size_t n, cx_db_stmt_t *st);

#endif
