/*
 * src/api/schedules.c -- /api/v1/schedules: list, create, get, update, delete, enable, disable and
 * trigger cron schedules of pipelines; and the checks of their bodies (cx_schedule_parse_body, pure,
 * unit-tested in t/unit/test_schedules.c). The rules are the schedule service's (src/schedules.c); the
 * scheduler child fires what is written here within a second (docs/schedules.md).
 *
 * Choices where the contract is silent (docs/api.md, "Schedules"): every answer with one Schedule carries
 * "upcoming" (its next 5 fire times; [] when disabled); a pipeline_id that names no pipeline is a 400
 * naming the field; a time zone must name a zone of the tz database, never the server's own
 * ("localtime"); an id that is not UUID-shaped is a 404 like any unknown id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/api.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/reply.h"
#include "conduix/schedules.h"
#include "conduix/shapes.h"

/* ---- input checks ---- */

/* check_zone -- a timezone field: a zone of the tz database. CX_OK, or CX_INVALID with why in msg. */
static int check_zone(const char *s, char *msg, size_t msglen)
{
    if (strcmp(s, "localtime") == 0 || strcmp(s, "Local") == 0) {
        snprintf(msg, msglen, "must name a zone (such as Europe/London), not the server's own");
        return CX_INVALID;
    }
    return cx_schedule_zone(s, msg, msglen) != NULL ? CX_OK : CX_INVALID;
}

/* check_cron -- a cron_expression field: at most 255 bytes, an expression the engine accepts, and the
 * zone of its CRON_TZ= prefix loads. */
static int check_cron(const char *s, size_t len, char *msg, size_t msglen)
{
    cx_cron_t c;
    char err[200];

    if (len > CX_SCHEDULE_CRON_MAX) {
        snprintf(msg, msglen, "must be at most %d bytes (got %zu)", CX_SCHEDULE_CRON_MAX, len);
        return CX_INVALID;
    }
    if (cx_cron_parse(&c, s, msg, msglen) < 0)
        return CX_INVALID;
    if (cx_cron_zone(&c) != NULL && cx_schedule_zone(cx_cron_zone(&c), err, sizeof(err)) == NULL) {
        snprintf(msg, msglen, "time zone: %s", err);
        return CX_INVALID;
    }
    return CX_OK;
}

int cx_schedule_parse_body(json_object *body, int update, cx_schedule_input_t *in, json_object **details)
{
    static const char allowed[] = "pipeline_id, cron_expression, timezone, enabled, overlap_policy";
    json_object *d = json_object_new_object();
    char msg[320];
    size_t len;

    memset(in, 0, sizeof(*in));
    in->enabled = -1;
    *details = NULL;
    if (body == NULL || !json_object_is_type(body, json_type_object)) {
        cx_api_fail_field(d, "body", "must be a JSON object");
        *details = d;
        return CX_INVALID;
    }
    json_object_object_foreach(body, key, v)
    {
        const char *s;
        if (strcmp(key, "pipeline_id") == 0) {
            if ((s = cx_api_string_field(d, key, v, &len)) == NULL)
                continue;
            if (!cx_pipeline_id_valid(s))
                cx_api_fail_field(d, key, "must be the id of a pipeline (a UUID)");
            else
                in->pipeline_id = s;
        } else if (strcmp(key, "cron_expression") == 0) {
            if ((s = cx_api_string_field(d, key, v, &len)) == NULL)
                continue;
            if (check_cron(s, len, msg, sizeof(msg)) != CX_OK)
                cx_api_fail_field(d, key, msg);
            else
                in->cron_expression = s;
        } else if (strcmp(key, "timezone") == 0) {
            in->timezone_given = 1;
            if (v == NULL) /* null: scheduler.timezone */
                continue;
            if ((s = cx_api_string_field(d, key, v, &len)) == NULL)
                continue;
            if (check_zone(s, msg, sizeof(msg)) != CX_OK)
                cx_api_fail_field(d, key, msg);
            else
                in->timezone = s;
        } else if (strcmp(key, "enabled") == 0) {
            if (!json_object_is_type(v, json_type_boolean))
                cx_api_fail_field(d, key, "must be true or false");
            else
                in->enabled = json_object_get_boolean(v) ? 1 : 0;
        } else if (strcmp(key, "overlap_policy") == 0) {
            if (!json_object_is_type(v, json_type_string) ||
                cx_overlap_parse(json_object_get_string(v), &in->overlap_policy) != CX_OK)
                cx_api_fail_field(d, key, "must be one of skip, allow, replace");
            else
                in->has_overlap = 1;
        } else {
            snprintf(msg, sizeof(msg), "unknown field; allowed: %s", allowed);
            cx_api_fail_field(d, key, msg);
        }
    }
    if (!update) {
        if (!json_object_object_get_ex(body, "pipeline_id", NULL))
            cx_api_fail_field(d, "pipeline_id", "is required");
        if (!json_object_object_get_ex(body, "cron_expression", NULL))
            cx_api_fail_field(d, "cron_expression", "is required");
    } else if (json_object_object_length(body) == 0) {
        snprintf(msg, sizeof(msg), "nothing to update: give at least one of %s", allowed);
        cx_api_fail_field(d, "body", msg);
    }
    if (json_object_object_length(d) > 0) {
        *details = d;
        return CX_INVALID;
    }
    json_object_put(d);
    return CX_OK;
}

/* ---- answers ---- */

static const char *default_zone(void)
{
    return cx_cfg->scheduler.timezone;
}

/* schedule_json -- the Schedule with "upcoming": next_run_at and the fire times after it (none when it
 * will not fire). */
static json_object *schedule_json(const cx_schedule_t *s)
{
    json_object *o = cx_schedule_json(s, default_zone()), *up = json_object_new_array();
    cx_schedule_cron_t c;
    const char *field;
    char err[256], t[32];
    int64_t times[CX_SCHEDULE_UPCOMING];

    if (s->enabled && s->next_run_at > 0 &&
        cx_schedule_compile(s->cron_expression, s->timezone, &c, &field, err, sizeof(err)) == CX_OK) {
        int n = cx_schedule_upcoming(&c, s->next_run_at / 1000, times, CX_SCHEDULE_UPCOMING);
        for (int i = 0; i < n; i++) {
            cx_time_format(times[i], t);
            json_object_array_add(up, json_object_new_string(t));
        }
    }
    json_object_object_add(o, "upcoming", up);
    return o;
}

static int reply_schedule(cx_req_t *r, int status, cx_schedule_t *s)
{
    json_object *o = schedule_json(s);
    cx_schedule_free(s);
    return cx_reply_ok(r, status, o, NULL);
}

static int not_found(cx_req_t *r)
{
    return cx_reply_status_for(r, CX_NOTFOUND, "schedule");
}

/* refused -- 400 for a write the service refused: the field and why. */
static int refused(cx_req_t *r, const char *field, const char *why)
{
    return cx_reply_validation(r, field, why);
}

static cx_pipeline_actor_t actor_of(cx_req_t *r)
{
    return (cx_pipeline_actor_t){.actor = cx_req_actor(r), .request_id = r->request_id};
}

/* no_fields -- an optional body that must carry no field (enable, disable, trigger). */
static int no_fields(cx_req_t *r)
{
    if (r->body == NULL)
        return CX_OK;
    if (!json_object_is_type(r->body, json_type_object)) {
        cx_reply_validation(r, "body", "must be a JSON object");
        return CX_INVALID;
    }
    json_object_object_foreach(r->body, key, v)
    {
        (void)v;
        cx_reply_validation(r, key, "unknown field (this request takes no fields)");
        return CX_INVALID;
    }
    return CX_OK;
}

/* bool_query -- ?name=true|false (also 1|0): 1 or 0 into *out when given; CX_INVALID after a 400. */
static int bool_query(cx_req_t *r, const char *name, int *given, int *out)
{
    const char *v = cx_req_query(r, name);

    *given = v != NULL;
    if (v == NULL)
        return CX_OK;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = 0;
    else {
        cx_reply_validation(r, name, "must be true or false");
        return CX_INVALID;
    }
    return CX_OK;
}

/* ---- handlers ---- */

int cx_api_schedules_list(cx_req_t *r)
{
    cx_schedule_query_t q = {0};
    cx_schedule_t *items;
    json_object *arr;
    size_t n;
    int64_t total;
    int rc;

    if (cx_req_paging(r, &q.page, &q.page_size) != CX_OK || bool_query(r, "enabled", &q.has_enabled, &q.enabled) != CX_OK)
        return 0;
    q.pipeline_id = cx_req_query(r, "pipeline_id");
    if (q.pipeline_id != NULL && !cx_pipeline_id_valid(q.pipeline_id))
        return cx_reply_validation(r, "pipeline_id", "must be the id of a pipeline (a UUID)");
    if ((rc = cx_db_schedule_list(&q, &items, &n, &total)) != CX_OK)
        return cx_reply_status_for(r, rc, "schedule");
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, cx_schedule_json(&items[i], default_zone()));
    cx_db_schedules_free(items, n);
    return cx_reply_page(r, arr, total, q.page, q.page_size);
}

int cx_api_schedules_create(cx_req_t *r)
{
    cx_schedule_input_t in;
    cx_pipeline_actor_t who = actor_of(r);
    cx_schedule_t s;
    json_object *details;
    char field[32], why[256], loc[128];
    int rc;

    if (cx_schedule_parse_body(r->body, 0, &in, &details) != CX_OK)
        return cx_api_invalid_body(r, details);
    if (in.enabled < 0)
        in.enabled = 1;
    rc = cx_schedules_create(&in, &who, &s, field, why);
    if (rc == CX_INVALID)
        return refused(r, field, why);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "schedule");
    snprintf(loc, sizeof(loc), "/api/v1/schedules/%s", s.id);
    cx_reply_add_header(r, "location", loc);
    return reply_schedule(r, 201, &s);
}

int cx_api_schedules_get(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_schedule_t s;
    int rc;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    if ((rc = cx_db_schedule_get(id, &s)) != CX_OK)
        return cx_reply_status_for(r, rc, "schedule");
    return reply_schedule(r, 200, &s);
}

/* change -- an update of the schedule with in as action. */
static int change(cx_req_t *r, const cx_schedule_input_t *in, const char *action)
{
    const char *id = cx_req_param(r, "id");
    cx_pipeline_actor_t who = actor_of(r);
    cx_schedule_t s;
    char field[32], why[256];
    int rc;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    rc = cx_schedules_update(id, in, action, &who, &s, field, why);
    if (rc == CX_INVALID)
        return refused(r, field, why);
    if (rc == CX_CONFLICT)
        return cx_reply_error(r, 409, "CONFLICT", why, NULL);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "schedule");
    return reply_schedule(r, 200, &s);
}

int cx_api_schedules_update(cx_req_t *r)
{
    cx_schedule_input_t in;
    json_object *details;

    if (!cx_pipeline_id_valid(cx_req_param(r, "id")))
        return not_found(r);
    if (cx_schedule_parse_body(r->body, 1, &in, &details) != CX_OK)
        return cx_api_invalid_body(r, details);
    return change(r, &in, "schedule_update");
}

static int set_enabled(cx_req_t *r, int enabled)
{
    cx_schedule_input_t in = {.enabled = enabled};

    if (no_fields(r) != CX_OK)
        return 0;
    return change(r, &in, enabled ? "schedule_enable" : "schedule_disable");
}

int cx_api_schedules_enable(cx_req_t *r)
{
    return set_enabled(r, 1);
}

int cx_api_schedules_disable(cx_req_t *r)
{
    return set_enabled(r, 0);
}

int cx_api_schedules_delete(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_pipeline_actor_t who = actor_of(r);
    json_object *d;
    int rc;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    if ((rc = cx_db_schedule_delete(id, &who)) != CX_OK)
        return cx_reply_status_for(r, rc, "schedule");
    d = json_object_new_object();
    json_object_object_add(d, "id", json_object_new_string(id));
    json_object_object_add(d, "deleted", json_object_new_boolean(1));
    return cx_reply_ok(r, 200, d, NULL);
}

int cx_api_schedules_trigger(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_pipeline_actor_t who = actor_of(r);
    cx_runs_result_t res;
    int given, force = 0, rc;

    if (!cx_pipeline_id_valid(id))
        return not_found(r);
    if (bool_query(r, "force", &given, &force) != CX_OK || no_fields(r) != CX_OK)
        return 0;
    rc = cx_schedules_trigger(id, force, &who, &res);
    rc = rc == CX_NOTFOUND ? not_found(r) : cx_api_run_answer(r, rc, &res);
    cx_runs_result_free(&res);
    return rc;
}
