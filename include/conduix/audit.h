/*
 * audit.h -- the audit log: one row in audit_log per change made through the API (pipeline
 * create/update/delete, start/stop/pause/resume, agent changes …), with who, what, which request, and
 * the target's JSON before and after.
 */
#ifndef CONDUIX_AUDIT_H
#define CONDUIX_AUDIT_H

#include <json.h>

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

#endif
