/*
 * src/db/audit.c -- the audit_log table: one row per change made through the API. The row is written
 * on this process's connection, so a caller inside a transaction gets the change and its audit row
 * committed (or rolled back) together.
 */
#include <stdlib.h>

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

int cx_audit_write(const char *actor, const char *action, const char *target_type, const char *target_id, const char *request_id,
                   json_object *before, json_object *after)
{
    if (action == NULL || *action == '\0')
        return CX_INVALID;
    /* Serialise into owned copies: before and after may be the same object (its string buffer is
     * overwritten by the next serialisation). */
    char *b = before ? cx_strdup(text(before)) : NULL;
    char *a = after ? cx_strdup(text(after)) : NULL;
    cx_db_param_t p[] = {
        CX_DB_P_STR(actor),
        CX_DB_P_STR(action),
        CX_DB_P_STR(target_type),
        CX_DB_P_STR(target_id),
        CX_DB_P_STR(request_id && *request_id ? request_id : NULL),
        CX_DB_P_STR(b),
        CX_DB_P_STR(a),
    };
    int rc = cx_db_exec(AUDIT_INSERT, p, CX_ARRAY_SIZE(p), NULL, NULL);
    free(b);
    free(a);
    return rc;
}
