/*
 * src/api/pipelines.c -- /api/v1/pipelines: list, create, get, update, delete and the version history
 * of pipeline definitions; and the checks of their input (name, YAML, body fields, If-Match), which are
 * pure and unit-tested (t/unit/test_pipelines.c).
 *
 * Choices where the contract is silent (docs/api.md, "Pipelines"): unknown body fields are rejected
 * with a 400 naming them; a name with leading or trailing white space is rejected, not trimmed; an id
 * that is not UUID-shaped is a 404 like any unknown id; a weak If-Match is a 400.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/pipelines.h"
#include "conduix/reply.h"
#include "conduix/shapes.h"
#include "conduix/utf8.h"

/* ---- input checks ---- */

int cx_pipeline_check_name(const char *s, size_t len, char *msg, size_t msglen)
{
    unsigned f;
    long n;

    if (len == 0) {
        snprintf(msg, msglen, "must not be empty");
        return CX_INVALID;
    }
    if ((n = cx_utf8_check(s, len, &f)) < 0) {
        snprintf(msg, msglen, "must be valid UTF-8");
        return CX_INVALID;
    }
    if (n > CX_PIPELINE_NAME_MAX) {
        snprintf(msg, msglen, "must be at most %d characters (got %ld)", CX_PIPELINE_NAME_MAX, n);
        return CX_INVALID;
    }
    if (f & CX_UTF8_EDGE_SPACE) { /* any Unicode white space, NO-BREAK SPACE included */
        snprintf(msg, msglen, "must not begin or end with white space");
        return CX_INVALID;
    }
    if (f & (CX_UTF8_C0 | CX_UTF8_C1)) {
        snprintf(msg, msglen, "must not contain control characters");
        return CX_INVALID;
    }
    return CX_OK;
}

/* position -- 1-based line and column of byte offset off in s (columns count characters). */
static void position(const char *s, size_t len, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)s[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

/* yaml_error -- the message of a parser error: where, what, and in which construct. */
static void yaml_error(const yaml_parser_t *p, const char *s, size_t len, char *msg, size_t msglen)
{
    size_t line, col;

    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(msg, msglen, "YAML too large to check");
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        position(s, len, p->problem_offset, &line, &col);
        snprintf(msg, msglen, "invalid YAML at line %zu, column %zu: %s", line, col, p->problem ? p->problem : "unreadable input");
        return;
    }
    line = p->problem_mark.line + 1;
    col = p->problem_mark.column + 1;
    if (p->context != NULL)
        snprintf(msg, msglen, "invalid YAML at line %zu, column %zu: %s (%s at line %zu, column %zu)", line, col,
                 p->problem ? p->problem : "syntax error", p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    else
        snprintf(msg, msglen, "invalid YAML at line %zu, column %zu: %s", line, col, p->problem ? p->problem : "syntax error");
}

/* The anchors defined so far in a document, to find an alias to none (the parser does not check it). */
typedef struct anchors {
    char **v;
    size_t n, cap;
} anchors_t;

static void anchors_add(anchors_t *a, const char *name)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = cx_realloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = cx_strdup(name);
}

static int anchors_has(const anchors_t *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], name) == 0)
            return 1;
    return 0;
}

static void anchors_clear(anchors_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

/* cx_pipeline_check_yaml -- parse events only: an alias is never expanded, so a "billion laughs"
 * document costs no more than its own size. */
int cx_pipeline_check_yaml(const char *s, size_t len, char *msg, size_t msglen)
{
    yaml_parser_t p;
    yaml_event_t ev;
    anchors_t anchors = {0};
    int rc = CX_OK, content = 0, depth = 0;

    if (len > CX_PIPELINE_YAML_MAX) {
        snprintf(msg, msglen, "must be at most %zu bytes (got %zu)", CX_PIPELINE_YAML_MAX, len);
        return CX_INVALID;
    }
    if (!yaml_parser_initialize(&p)) {
        snprintf(msg, msglen, "cannot check YAML now");
        return CX_ERR;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)s, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_error(&p, s, len, msg, msglen);
            rc = CX_INVALID;
            break;
        }
        yaml_event_type_t t = ev.type;
        const char *anchor = NULL;
        if (t == YAML_SCALAR_EVENT)
            anchor = (const char *)ev.data.scalar.anchor;
        else if (t == YAML_SEQUENCE_START_EVENT)
            anchor = (const char *)ev.data.sequence_start.anchor;
        else if (t == YAML_MAPPING_START_EVENT)
            anchor = (const char *)ev.data.mapping_start.anchor;
        if (anchor != NULL)
            anchors_add(&anchors, anchor);
        if (t == YAML_DOCUMENT_START_EVENT)
            anchors_clear(&anchors); /* anchors are scoped to their document */
        if (t == YAML_ALIAS_EVENT && !anchors_has(&anchors, (const char *)ev.data.alias.anchor)) {
            snprintf(msg, msglen, "invalid YAML at line %zu, column %zu: alias *%.64s refers to no anchor", ev.start_mark.line + 1,
                     ev.start_mark.column + 1, (const char *)ev.data.alias.anchor);
            rc = CX_INVALID;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT)
            content = 1;
        if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT)
            depth--;
        if ((t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) && ++depth > CX_PIPELINE_YAML_DEPTH_MAX) {
            /* stop here: the scanner's cost per token grows with the depth (see pipelines.h) */
            snprintf(msg, msglen, "invalid YAML at line %zu, column %zu: nested deeper than %d levels", ev.start_mark.line + 1,
                     ev.start_mark.column + 1, CX_PIPELINE_YAML_DEPTH_MAX);
            rc = CX_INVALID;
        }
        yaml_event_delete(&ev);
        if (rc != CX_OK || t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    anchors_clear(&anchors);
    free(anchors.v);
    if (rc == CX_OK && !content) {
        snprintf(msg, msglen, "must not be empty");
        rc = CX_INVALID;
    }
    return rc;
}

/* fail_field -- record the message of a bad field in details. */
static void fail_field(json_object *details, const char *field, const char *msg)
{
    json_object_object_add(details, field, json_object_new_string(msg));
}

/* string_field -- v as a string without NUL bytes, or NULL after recording why. */
static const char *string_field(json_object *details, const char *key, json_object *v, size_t *len)
{
    if (!json_object_is_type(v, json_type_string)) {
        fail_field(details, key, "must be a string");
        return NULL;
    }
    const char *s = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    if (strlen(s) != *len) {
        fail_field(details, key, "must not contain NUL characters");
        return NULL;
    }
    return s;
}

int cx_pipeline_parse_body(json_object *body, int update, cx_pipeline_input_t *in, json_object **details)
{
    json_object *d = json_object_new_object();
    char msg[512];
    size_t len;

    memset(in, 0, sizeof(*in));
    *details = NULL;
    if (body == NULL || !json_object_is_type(body, json_type_object)) {
        fail_field(d, "body", "must be a JSON object");
        *details = d;
        return CX_INVALID;
    }
    json_object_object_foreach(body, key, v)
    {
        if (strcmp(key, "name") == 0) {
            const char *s = string_field(d, key, v, &len);
            if (s != NULL && cx_pipeline_check_name(s, len, msg, sizeof(msg)) != CX_OK)
                fail_field(d, key, msg);
            else
                in->name = s;
        } else if (strcmp(key, "description") == 0) {
            if (v == NULL) { /* null: no description */
                in->description = "";
                continue;
            }
            const char *s = string_field(d, key, v, &len);
            if (s == NULL)
                continue;
            if (len > CX_PIPELINE_DESC_MAX) {
                snprintf(msg, sizeof(msg), "must be at most %d bytes (got %zu)", CX_PIPELINE_DESC_MAX, len);
                fail_field(d, key, msg);
            } else if (cx_utf8_check(s, len, NULL) < 0) {
                fail_field(d, key, "must be valid UTF-8");
            } else {
                in->description = s;
            }
        } else if (strcmp(key, "config_yaml") == 0) {
            const char *s = string_field(d, key, v, &len);
            if (s == NULL)
                continue;
            int rc = cx_pipeline_check_yaml(s, len, msg, sizeof(msg));
            if (rc == CX_OK)
                in->config_yaml = s;
            else
                fail_field(d, key, msg);
        } else if (update && strcmp(key, "version") == 0) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 || json_object_get_int64(v) == INT64_MAX)
                fail_field(d, key, "must be a positive integer (the version this update expects)");
            else
                in->version = json_object_get_int64(v);
        } else {
            fail_field(d, key,
                       update ? "unknown field; allowed: name, description, config_yaml, version"
                              : "unknown field; allowed: name, description, config_yaml");
        }
    }
    if (!update && json_object_object_length(d) == 0) {
        if (!json_object_object_get_ex(body, "name", NULL))
            fail_field(d, "name", "is required");
        if (!json_object_object_get_ex(body, "config_yaml", NULL))
            fail_field(d, "config_yaml", "is required");
    }
    if (update && json_object_object_length(d) == 0 && in->name == NULL && in->description == NULL && in->config_yaml == NULL)
        fail_field(d, "body", "nothing to update: give at least one of name, description, config_yaml");
    if (json_object_object_length(d) > 0) {
        *details = d;
        return CX_INVALID;
    }
    json_object_put(d);
    return CX_OK;
}

int cx_pipeline_parse_if_match(const char *v, int64_t *version)
{
    const char *p = v, *end;
    char *e;
    long long n;

    *version = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    // cppcheck-suppress knownConditionTrueFalse ; end is p + strlen(p), less the blanks: any length
    if (end - p == 1 && *p == '*')
        return CX_OK;
    // cppcheck-suppress knownConditionTrueFalse ; as above
    if (end - p >= 2 && *p == '"' && end[-1] == '"') {
        p++;
        end--;
    }
    if (p == end || end - p > 18)
        return CX_INVALID;
    for (const char *q = p; q < end; q++)
        if (!isdigit((unsigned char)*q))
            return CX_INVALID;
    n = strtoll(p, &e, 10);
    if (e != end || n < 1)
        return CX_INVALID;
    *version = n;
    return CX_OK;
}

int cx_pipeline_id_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* ---- the delete hook (weak default) ---- */

/* cx_lifecycle_stop_for_delete -- the default until the lifecycle defines its own: nothing to stop; an
 * unforced delete is refused while a run is active by cx_db_pipeline_delete, a forced one leaves the run
 * to whoever owns runs. */
__attribute__((weak)) int cx_lifecycle_stop_for_delete(cx_req_t *r, const char *id, int force)
{
    (void)r;
    (void)id;
    (void)force;
    return CX_OK;
}

/* ---- handlers ---- */

/* invalid_body -- 400 VALIDATION_ERROR: the message names every bad field, details holds each. */
static int invalid_body(cx_req_t *r, json_object *details)
{
    char text[1024];
    size_t o = 0;
    text[0] = '\0';
    json_object_object_foreach(details, k, v)
    {
        int n = snprintf(text + o, sizeof(text) - o, "%s%.*s: %s", o ? "; " : "", (int)cx_utf8_prefix(k, strlen(k), 64), k,
                         json_object_get_string(v));
        if (n < 0 || (size_t)n >= sizeof(text) - o) {
            text[o] = '\0'; /* whole entries only */
            break;
        }
        o += (size_t)n;
    }
    return cx_reply_error(r, 400, "VALIDATION_ERROR", text, details);
}

/* conflict -- 409 CONFLICT naming the field (name taken, stale version). */
static int conflict(cx_req_t *r, const char *field, const char *why)
{
    char text[320];
    json_object *details = json_object_new_object();
    json_object_object_add(details, field, json_object_new_string(why));
    snprintf(text, sizeof(text), "%s: %s", field, why);
    return cx_reply_error(r, 409, "CONFLICT", text, details);
}

static int not_found(cx_req_t *r)
{
    return cx_reply_status_for(r, CX_NOTFOUND, "pipeline");
}

/* reply_pipeline -- the answer with a Pipeline: ETag "<version>" and the pipeline (freed here). */
static int reply_pipeline(cx_req_t *r, int status, cx_pipeline_t *pl)
{
    char v[32];
    cx_jw_t w;

    snprintf(v, sizeof(v), "\"%lld\"", (long long)pl->version);
    cx_reply_add_header(r, "etag", v);
    cx_reply_begin(&w);
    cx_pipeline_write(&w, pl, 1);
    cx_pipeline_free(pl);
    return cx_reply_end(r, status, &w);
}

static cx_pipeline_actor_t actor_of(cx_req_t *r)
{
    return (cx_pipeline_actor_t){.actor = cx_req_actor(r), .request_id = r->request_id};
}

int cx_api_pipelines_list(cx_req_t *r)
{
    cx_pipeline_query_t q = {0};
    const char *sort = cx_req_query(r, "sort"), *order = cx_req_query(r, "order");
    cx_pipeline_t *items;
    cx_jw_t w;
    size_t n;
    int64_t total;
    int rc;

    if (cx_req_paging(r, &q.page, &q.page_size) != CX_OK)
        return 0;
    q.search = cx_req_query(r, "search");
    if (q.search != NULL) {
        long chars = cx_utf8_check(q.search, strlen(q.search), NULL);
        if (chars < 0 || chars > CX_PIPELINE_SEARCH_MAX)
            return cx_reply_validation(r, "search", "must be valid UTF-8, at most 255 characters");
    }
    if (sort == NULL || strcmp(sort, "created_at") == 0)
        q.sort = CX_PIPELINE_SORT_CREATED_AT;
    else if (strcmp(sort, "updated_at") == 0)
        q.sort = CX_PIPELINE_SORT_UPDATED_AT;
    else if (strcmp(sort, "name") == 0)
        q.sort = CX_PIPELINE_SORT_NAME;
    else
        return cx_reply_validation(r, "sort", "must be one of name, created_at, updated_at");
    if (order == NULL)
        q.desc = q.sort != CX_PIPELINE_SORT_NAME; /* newest first; names A to Z */
    else if (strcmp(order, "asc") == 0)
        q.desc = 0;
    else if (strcmp(order, "desc") == 0)
        q.desc = 1;
    else
        return cx_reply_validation(r, "order", "must be asc or desc");
    if ((rc = cx_db_pipeline_list(&q, &items, &n, &total)) != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    cx_reply_page_begin(&w);
    for (size_t i = 0; i < n; i++)
        cx_pipeline_write(&w, &items[i], 1);
    cx_db_pipelines_free(items, n);
    return cx_reply_page_end(r, &w, total, q.page, q.page_size);
}

/* ---- creates, grouped ---- */

/* A create waiting for the end of the loop turn: its input copied (the request may end first), and the
 * request to answer (NULL once it has ended: the pipeline is created all the same, as a create whose
 * answer could not be delivered). */
typedef struct waiting_create {
    cx_req_t *r;
    char *name, *description, *config_yaml, *actor, *request_id;
} waiting_create_t;

#define GROUP_MAX 64 /* creates written in one transaction; more wait for the next */
static waiting_create_t *group[GROUP_MAX];
static size_t ngroup;

static void on_create_abort(void *arg)
{
    ((waiting_create_t *)arg)->r = NULL;
}

/* answer_create -- the answer to one create of the group (frees c->out). */
static void answer_create(cx_req_t *r, cx_pipeline_create_t *c)
{
    char loc[128];

    if (c->rc == CX_CONFLICT) {
        conflict(r, c->field, c->why);
    } else if (c->rc != CX_OK) {
        cx_reply_status_for(r, c->rc, "pipeline");
    } else {
        snprintf(loc, sizeof(loc), "/api/v1/pipelines/%s", c->out.id);
        cx_reply_add_header(r, "location", loc);
        reply_pipeline(r, 201, &c->out);
    }
}

/* run_creates -- the creates this turn of the loop collected: one transaction (cx_db_pipelines_create_many),
 * then each answer. */
static void run_creates(void)
{
    cx_pipeline_create_t c[GROUP_MAX];
    waiting_create_t *w[GROUP_MAX];
    size_t n = ngroup;

    memcpy(w, group, n * sizeof(*w)); // NOLINT(bugprone-sizeof-expression): an array of pointers, copied as pointers
    ngroup = 0;
    memset(c, 0, n * sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        c[i].in.name = w[i]->name;
        c[i].in.description = w[i]->description;
        c[i].in.config_yaml = w[i]->config_yaml;
        c[i].who.actor = w[i]->actor;
        c[i].who.request_id = w[i]->request_id;
    }
    cx_db_pipelines_create_many(c, n);
    for (size_t i = 0; i < n; i++) {
        if (w[i]->r != NULL)
            answer_create(w[i]->r, &c[i]);
        else
            cx_pipeline_free(&c[i].out);
        free(w[i]->name);
        free(w[i]->description);
        free(w[i]->config_yaml);
        free(w[i]->actor);
        free(w[i]->request_id);
        free(w[i]);
    }
}

/* cx_api_pipelines_create -- POST /pipelines: checked here, then written with the other creates of this
 * turn of the worker's loop in one transaction (run_creates, at the end of the turn): creates that
 * arrive together share one round trip and one commit, each with its audit row. */
int cx_api_pipelines_create(cx_req_t *r)
{
    cx_pipeline_input_t in;
    json_object *details;
    waiting_create_t *w;

    if (cx_pipeline_parse_body(r->body, 0, &in, &details) != CX_OK)
        return invalid_body(r, details);
    if (ngroup == GROUP_MAX)
        run_creates(); /* a full group goes now */
    w = cx_calloc(1, sizeof(*w));
    w->r = r;
    w->name = cx_strdup(in.name);
    w->description = cx_strdup(in.description);
    w->config_yaml = cx_strdup(in.config_yaml);
    w->actor = cx_strdup(cx_req_actor(r));
    w->request_id = cx_strdup(r->request_id);
    group[ngroup++] = w;
    cx_req_defer(r, on_create_abort, w);
    cx_req_soon(r, run_creates);
    return 0;
}

/* ---- reads by id, grouped ---- */

/* A GET /pipelines/:id waiting for the end of the loop turn (NULL r: its client has gone). */
typedef struct waiting_get {
    cx_req_t *r;
    char id[37];
} waiting_get_t;

static waiting_get_t *gets[GROUP_MAX];
static size_t ngets;

static void on_get_abort(void *arg)
{
    ((waiting_get_t *)arg)->r = NULL;
}

/* run_gets -- the reads by id this turn of the loop collected, in one statement (an IN list), then each
 * answer. */
static void run_gets(void)
{
    waiting_get_t *w[GROUP_MAX];
    const char *ids[GROUP_MAX];
    cx_pipeline_t pl[GROUP_MAX];
    int rc[GROUP_MAX];
    size_t n = ngets;

    memcpy(w, gets, n * sizeof(*w)); // NOLINT(bugprone-sizeof-expression): an array of pointers, copied as pointers
    ngets = 0;
    for (size_t i = 0; i < n; i++)
        ids[i] = w[i]->id;
    if (n > 0)
        cx_db_pipelines_get_many(ids, n, pl, rc);
    for (size_t i = 0; i < n; i++) {
        if (w[i]->r == NULL)
            cx_pipeline_free(&pl[i]);
        else if (rc[i] != CX_OK)
            cx_reply_status_for(w[i]->r, rc[i], "pipeline");
        else
            reply_pipeline(w[i]->r, 200, &pl[i]);
        free(w[i]);
    }
}

/* cx_api_pipelines_get -- GET /pipelines/:id: read with the other reads by id of this turn of the
 * worker's loop in one statement (run_gets): reads that arrive together share one round trip. */
int cx_api_pipelines_get(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    waiting_get_t *w;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    if (ngets == GROUP_MAX)
        run_gets();
    w = cx_calloc(1, sizeof(*w));
    w->r = r;
    memcpy(w->id, id, sizeof(w->id));
    gets[ngets++] = w;
    cx_req_defer(r, on_get_abort, w);
    cx_req_soon(r, run_gets);
    return 0;
}

int cx_api_pipelines_update(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id"), *im = cx_req_header(r, "if-match");
    cx_pipeline_input_t in;
    cx_pipeline_actor_t who = actor_of(r);
    cx_pipeline_t pl;
    json_object *details;
    char field[32], why[256];
    int64_t hv = 0;
    int rc;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    if (im != NULL && cx_pipeline_parse_if_match(im, &hv) != CX_OK)
        return cx_reply_validation(r, "If-Match", "must be a strong entity tag holding the version, such as \"3\"");
    if (cx_pipeline_parse_body(r->body, 1, &in, &details) != CX_OK)
        return invalid_body(r, details);
    if (hv > 0 && in.version > 0 && hv != in.version)
        return cx_reply_validation(r, "version", "differs from the version in If-Match");
    if (hv > 0)
        in.version = hv;
    rc = cx_db_pipeline_update(id, &in, &who, &pl, field, why);
    if (rc == CX_CONFLICT)
        return conflict(r, field, why);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    return reply_pipeline(r, 200, &pl);
}

int cx_api_pipelines_delete(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id"), *f = cx_req_query(r, "force");
    cx_pipeline_actor_t who = actor_of(r);
    int force = 0, rc;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    if (f != NULL) {
        if (strcmp(f, "true") == 0 || strcmp(f, "1") == 0)
            force = 1;
        else if (strcmp(f, "false") != 0 && strcmp(f, "0") != 0)
            return cx_reply_validation(r, "force", "must be true or false");
    }
    rc = cx_lifecycle_stop_for_delete(r, id, force);
    if (rc == CX_OK)
        rc = cx_db_pipeline_delete(id, !force, &who);
    if (rc == CX_STATE)
        return cx_reply_error(r, 409, "INVALID_STATE", "the pipeline has an active run; stop it first or delete with ?force=true",
                              NULL);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    json_object *d = json_object_new_object();
    json_object_object_add(d, "id", json_object_new_string(id));
    json_object_object_add(d, "deleted", json_object_new_boolean(1));
    return cx_reply_ok(r, 200, d, NULL);
}

int cx_api_pipelines_versions(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_pipeline_version_t *v;
    json_object *arr;
    size_t n;
    int64_t total;
    int page, page_size, rc;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    if (cx_req_paging(r, &page, &page_size) != CX_OK)
        return 0;
    if ((rc = cx_db_pipeline_versions(id, page, page_size, &v, &n, &total)) != CX_OK)
        return cx_reply_status_for(r, rc, "pipeline");
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, cx_pipeline_version_json(&v[i]));
    cx_db_pipeline_versions_free(v, n);
    return cx_reply_page(r, arr, total, page, page_size);
}
