/*
 * pipelines.h -- pipeline definitions: the data layer (src/db/pipelines.c: the pipelines and
 * pipeline_versions tables, on the conventions of db.h), the input checks of the API
 * (src/api/pipelines.c), and the hook through which DELETE /pipelines/:id asks the lifecycle to stop
 * an active run. Every write runs in one transaction with its audit_log row.
 */
#ifndef CONDUIX_PIPELINES_H
#define CONDUIX_PIPELINES_H

#include <stddef.h>
#include <stdint.h>
#include "conduix/http.h"
#include "conduix/states.h"

#define CX_PIPELINE_NAME_MAX 255                   /* characters (UTF-8 code points) */
#define CX_PIPELINE_DESC_MAX 65535                 /* bytes (a TEXT column) */
#define CX_PIPELINE_YAML_MAX ((size_t)1024 * 1024) /* bytes */
/* Levels of nested sequences and mappings a config_yaml may have: libyaml 0.2.5's scanner spends time in
 * proportion to the depth on every token, so 100,000 levels took 30 s of a worker; 1,000 take 1 ms. */
#define CX_PIPELINE_YAML_DEPTH_MAX 1000
#define CX_PIPELINE_SEARCH_MAX 255 /* characters */
/* A list (pipelines, versions) carries a config_yaml of at most this many bytes; a larger one is left
 * out (NULL, its length in config_size), so a page of 100 is at most ~13 MB whatever is stored. GET
 * /pipelines/:id always has it. */
#define CX_PIPELINE_LIST_YAML_MAX 65536
#define CX_PIPELINE_LIST_YAML_MAX_S "65536"

typedef enum { CX_PIPELINE_SORT_CREATED_AT = 0, CX_PIPELINE_SORT_UPDATED_AT, CX_PIPELINE_SORT_NAME } cx_pipeline_sort_t;

/* A list request: search is a name substring (NULL or "" = all; % and _ match themselves). */
typedef struct cx_pipeline_query {
    const char *search;
    cx_pipeline_sort_t sort;
    int desc;
    int page;      /* 1.. */
    int page_size; /* 1..100 */
} cx_pipeline_query_t;

/* The fields of a create or an update; a NULL field is not given (an update leaves it as it is). */
typedef struct cx_pipeline_input {
    const char *name;
    const char *description;
    const char *config_yaml;
    int64_t version; /* update only: the expected current version, 0 = unconditional */
} cx_pipeline_input_t;

/* Who asks, for created_by/updated_by and the audit row. */
typedef struct cx_pipeline_actor {
    const char *actor;      /* cx_req_actor(r) */
    const char *request_id; /* r->request_id */
} cx_pipeline_actor_t;

/* A pipeline. */
typedef struct cx_pipeline {
    char id[37];
    char *name;          /* owned */
    char *description;   /* owned; "" when none */
    char *config_yaml;   /* owned; NULL in a list when left out (config_size) */
    int64_t config_size; /* in a list: > 0 when config_yaml is left out, its length in bytes */
    int64_t version;
    char *created_by; /* owned; NULL when unknown */
    char *updated_by; /* owned; NULL when unknown */
    int64_t created_at, updated_at;
    cx_run_status_t status; /* its current run's: pending, running or paused; else stopped */
} cx_pipeline_t;

void cx_pipeline_free(cx_pipeline_t *p);
void cx_db_pipelines_free(cx_pipeline_t *v, size_t n);

/* One entry of a pipeline's version history. */
typedef struct cx_pipeline_version {
    int64_t version;
    char *name, *description, *config_yaml, *created_by; /* owned; NULL when unknown (config_yaml: left out) */
    int64_t config_size;                                 /* > 0 when config_yaml is left out, its length */
    int64_t created_at;
} cx_pipeline_version_t;

void cx_db_pipeline_versions_free(cx_pipeline_version_t *v, size_t n);

/* ---- data layer (src/db/pipelines.c), on the conventions of db.h. On CX_CONFLICT, field (>= 32
 * bytes) names the conflicting field ("name" or "version") and why (>= 256 bytes) says why in words
 * for the client. ---- */

/* cx_db_pipeline_get -- the pipeline with this id (and its status, in the same statement); CX_NOTFOUND. */
int cx_db_pipeline_get(const char *id, cx_pipeline_t *out);

/* cx_db_pipelines_get_many -- the pipelines with ids[0..n) in one statement: out[i] and rc[i] as
 * cx_db_pipeline_get would give them (CX_OK or CX_NOTFOUND; an id may repeat). Returns CX_OK, or the
 * failure of the statement (then every rc[i] is it). */
int cx_db_pipelines_get_many(const char *const *ids, size_t n, cx_pipeline_t *out, int *rc);

/* cx_db_pipeline_list -- one page of pipelines, each with its status (one statement for the page), and
 * the number of matches. */
int cx_db_pipeline_list(const cx_pipeline_query_t *q, cx_pipeline_t **items, size_t *n, int64_t *total);

/* cx_db_pipeline_create -- a new pipeline at version 1 into *out (status stopped). CX_CONFLICT when the
 * name is taken (field "name"). in->name and in->config_yaml are required. */
int cx_db_pipeline_create(const cx_pipeline_input_t *in, const cx_pipeline_actor_t *who, cx_pipeline_t *out, char *field,
                          char *why);

/* One create of a group (cx_db_pipelines_create_many): the input and who asks, filled by the caller; the
 * outcome: rc as cx_db_pipeline_create's, with out on CX_OK and field/why on CX_CONFLICT. */
typedef struct cx_pipeline_create {
    cx_pipeline_input_t in;
    cx_pipeline_actor_t who;
    int rc;
    cx_pipeline_t out;
    char field[32], why[256];
} cx_pipeline_create_t;

/* cx_db_pipelines_create_many -- n creates in one transaction and one round trip: the pipelines in one
 * multi-row INSERT, their audit rows in another (each create's row and audit row are committed together,
 * with the others'). When a name is taken (by an existing pipeline or by another create of the group),
 * each create is then made on its own, so that each gets its own answer. */
void cx_db_pipelines_create_many(cx_pipeline_create_t *c, size_t n);

/* cx_db_pipeline_update -- apply the given fields. A change of any field bumps version by one and
 * records the new version in pipeline_versions; an update that changes nothing returns the pipeline as it
 * is. With in->version > 0 the update is conditional: CX_CONFLICT (field "version") when the pipeline
 * is at another version. CX_CONFLICT (field "name") when the new name is taken. CX_NOTFOUND. */
int cx_db_pipeline_update(const char *id, const cx_pipeline_input_t *in, const cx_pipeline_actor_t *who, cx_pipeline_t *out,
                          char *field, char *why);

/* cx_db_pipeline_delete -- delete the pipeline, its versions and its schedules (runs and commands stay
 * as history). With refuse_active, CX_STATE when the pipeline has an active run (checked under the
 * pipeline's row lock). CX_NOTFOUND. */
int cx_db_pipeline_delete(const char *id, int refuse_active, const cx_pipeline_actor_t *who);

/* cx_db_pipeline_versions -- one page of the version history, newest first; the current version is
 * included. A pipeline inserted without a version row shows its current config as its only version.
 * CX_NOTFOUND when there is no such pipeline. */
int cx_db_pipeline_versions(const char *id, int page, int page_size, cx_pipeline_version_t **items, size_t *n, int64_t *total);

/* ---- input checks (src/api/pipelines.c; pure, unit-tested). Each returns CX_OK, or CX_INVALID with
 * a message for the client in msg (without the field name). ---- */

/* cx_pipeline_check_name -- 1..255 UTF-8 characters, valid UTF-8, no control characters, no leading or
 * trailing white space (Unicode's, such as U+00A0 NO-BREAK SPACE, too). */
int cx_pipeline_check_name(const char *s, size_t len, char *msg, size_t msglen);

/* cx_pipeline_check_yaml -- non-empty, at most 1 MiB, parses as YAML (event level: aliases are not
 * expanded); a syntax error gives "invalid YAML at line L, column C: problem". */
int cx_pipeline_check_yaml(const char *s, size_t len, char *msg, size_t msglen);

/* cx_pipeline_parse_body -- check a create (update = 0) or update (update = 1) body and fill in
 * (pointers into body). On CX_INVALID, *details is a new object {field: message} for every bad field.
 * Unknown fields are rejected. */
int cx_pipeline_parse_body(json_object *body, int update, cx_pipeline_input_t *in, json_object **details);

/* cx_pipeline_parse_if_match -- the version of an If-Match header value ("3", "\"3\""; "*" = 0, any);
 * CX_INVALID for weak (W/) or malformed tags or a list. */
int cx_pipeline_parse_if_match(const char *v, int64_t *version);

/* cx_pipeline_id_valid -- 1 when s is UUID-shaped (8-4-4-4-12 hex digits). */
int cx_pipeline_id_valid(const char *s);

/* ---- the delete hook ----
 * cx_lifecycle_stop_for_delete -- called by DELETE /pipelines/:id before the delete. Returns CX_OK when
 * the delete may go on (no active run, or force and the run was stopped), CX_STATE when a run is active
 * and !force, or a negative CX_ code (CX_NOTFOUND, CX_UNAVAIL, CX_ERR). It does not reply. Implemented by
 * the lifecycle (src/api/lifecycle.c); src/api/pipelines.c has a weak default that only refuses an
 * active run without force. */
int cx_lifecycle_stop_for_delete(cx_req_t *r, const char *id, int force);

#endif
