/*
 * shapes.c -- the JSON of pipelines, versions, runs, commands, schedules, agents, users and sessions (shapes.h): one function per
 * shape, used by the API's answers, the audit rows and the command's wire message, so that the same
 * object always looks the same.
 */
#include <stdio.h>
#include <stdlib.h>

#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/shapes.h"

json_object *cx_json_str_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

json_object *cx_json_nonempty_or_null(const char *s)
{
    return s != NULL && *s ? json_object_new_string(s) : NULL;
}

json_object *cx_json_time(int64_t ms)
{
    char buf[32];
    if (ms <= 0)
        return NULL;
    cx_time_format(ms / 1000, buf);
    return json_object_new_string(buf);
}

json_object *cx_json_time_ms(int64_t ms)
{
    char buf[32];
    if (ms <= 0)
        return NULL;
    cx_time_format_ms(ms, buf);
    return json_object_new_string(buf);
}

json_object *cx_json_stored(const char *s, json_type type)
{
    json_object *o = s != NULL ? json_tokener_parse(s) : NULL;
    if (o != NULL && json_object_is_type(o, type))
        return o;
    json_object_put(o);
    return type == json_type_array ? json_object_new_array() : json_object_new_object();
}

/* text -- a string that is "" when there is none. */
static json_object *text(const char *s)
{
    return json_object_new_string(s != NULL ? s : "");
}

/* definition -- what a pipeline and each of its versions hold: name, description, config, version. A
 * list leaves a large config out (config_size > 0): config_yaml null, config_yaml_omitted true and its
 * size in bytes. */
static void definition(json_object *o, json_object *name, const char *description, const char *config_yaml, int64_t config_size,
                       int64_t version)
{
    json_object_object_add(o, "name", name);
    json_object_object_add(o, "description", text(description));
    if (config_yaml == NULL && config_size > 0) {
        json_object_object_add(o, "config_yaml", NULL);
        json_object_object_add(o, "config_yaml_omitted", json_object_new_boolean(1));
        json_object_object_add(o, "config_yaml_size", json_object_new_int64(config_size));
    } else {
        json_object_object_add(o, "config_yaml", text(config_yaml));
    }
    json_object_object_add(o, "version", json_object_new_int64(version));
}

json_object *cx_pipeline_json(const cx_pipeline_t *p, int with_status)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(p->id));
    definition(o, text(p->name), p->description, p->config_yaml, p->config_size, p->version);
    if (with_status)
        json_object_object_add(o, "status", json_object_new_string(cx_run_status_name(p->status)));
    json_object_object_add(o, "created_by", cx_json_str_or_null(p->created_by));
    json_object_object_add(o, "updated_by", cx_json_str_or_null(p->updated_by));
    json_object_object_add(o, "created_at", cx_json_time(p->created_at));
    json_object_object_add(o, "updated_at", cx_json_time(p->updated_at));
    return o;
}

/* cx_pipeline_write -- cx_pipeline_json written straight as text (the answers of get, list and create). */
void cx_pipeline_write(cx_jw_t *w, const cx_pipeline_t *p, int with_status)
{
    cx_jw_object(w);
    cx_jw_key(w, "id");
    cx_jw_str(w, p->id);
    cx_jw_key(w, "name");
    cx_jw_str(w, p->name != NULL ? p->name : "");
    cx_jw_key(w, "description");
    cx_jw_str(w, p->description != NULL ? p->description : "");
    cx_jw_key(w, "config_yaml");
    if (p->config_yaml == NULL && p->config_size > 0) {
        cx_jw_null(w);
        cx_jw_key(w, "config_yaml_omitted");
        cx_jw_bool(w, 1);
        cx_jw_key(w, "config_yaml_size");
        cx_jw_int(w, p->config_size);
    } else {
        cx_jw_str(w, p->config_yaml != NULL ? p->config_yaml : "");
    }
    cx_jw_key(w, "version");
    cx_jw_int(w, p->version);
    if (with_status) {
        cx_jw_key(w, "status");
        cx_jw_str(w, cx_run_status_name(p->status));
    }
    cx_jw_key(w, "created_by");
    cx_jw_str(w, p->created_by);
    cx_jw_key(w, "updated_by");
    cx_jw_str(w, p->updated_by);
    cx_jw_key(w, "created_at");
    cx_jw_time(w, p->created_at);
    cx_jw_key(w, "updated_at");
    cx_jw_time(w, p->updated_at);
    cx_jw_object_end(w);
}

json_object *cx_pipeline_version_json(const cx_pipeline_version_t *v)
{
    json_object *o = json_object_new_object();
    definition(o, cx_json_str_or_null(v->name), v->description, v->config_yaml, v->config_size, v->version);
    json_object_object_add(o, "created_by", cx_json_str_or_null(v->created_by));
    json_object_object_add(o, "created_at", cx_json_time(v->created_at));
    return o;
}

json_object *cx_run_json(const cx_run_t *run)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(run->id));
    json_object_object_add(o, "pipeline_id", json_object_new_string(run->pipeline_id));
    json_object_object_add(o, "agent_id", cx_json_nonempty_or_null(run->agent_id));
    json_object_object_add(o, "schedule_id", cx_json_nonempty_or_null(run->schedule_id));
    json_object_object_add(o, "scheduled_for", cx_json_time(run->scheduled_for));
    json_object_object_add(o, "trigger", json_object_new_string(cx_run_trigger_name(run->trigger)));
    json_object_object_add(o, "status", json_object_new_string(cx_run_status_name(run->status)));
    json_object_object_add(o, "started_at", cx_json_time(run->started_at));
    json_object_object_add(o, "ended_at", cx_json_time(run->ended_at));
    json_object_object_add(o, "processed_count", json_object_new_int64(run->processed_count));
    json_object_object_add(o, "error_count", json_object_new_int64(run->error_count));
    json_object_object_add(o, "error_message", cx_json_nonempty_or_null(run->error_message));
    json_object_object_add(o, "failover_of", cx_json_nonempty_or_null(run->failover_of));
    json_object_object_add(o, "created_at", cx_json_time(run->created_at));
    json_object_object_add(o, "updated_at", cx_json_time(run->updated_at));
    return o;
}

/* payload -- the stored payload as a JSON object (never a string); {} when absent or unreadable. */
static json_object *payload(const cx_command_t *c)
{
    json_object *p = c->payload ? json_tokener_parse(c->payload) : NULL;
    if (p != NULL && !json_object_is_type(p, json_type_object)) {
        json_object_put(p);
        p = NULL;
    }
    if (p == NULL && c->payload != NULL)
        cx_log_warnx("command %s: stored payload is not a JSON object", c->id);
    return p != NULL ? p : json_object_new_object();
}

json_object *cx_command_json(const cx_command_t *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(c->id));
    json_object_object_add(o, "agent_id", json_object_new_string(c->agent_id));
    json_object_object_add(o, "type", json_object_new_string(cx_command_type_name(c->type)));
    json_object_object_add(o, "pipeline_id", cx_json_nonempty_or_null(c->pipeline_id));
    json_object_object_add(o, "run_id", cx_json_nonempty_or_null(c->run_id));
    json_object_object_add(o, "payload", payload(c));
    json_object_object_add(o, "status", json_object_new_string(cx_command_status_name(c->status)));
    json_object_object_add(o, "attempts", json_object_new_int(c->attempts));
    json_object_object_add(o, "created_at", cx_json_time(c->created_at));
    json_object_object_add(o, "expires_at", cx_json_time(c->expires_at));
    json_object_object_add(o, "last_sent_at", cx_json_time(c->last_sent_at));
    json_object_object_add(o, "acked_at", cx_json_time(c->acked_at));
    if (c->acked_at > 0) {
        json_object_object_add(o, "result_message", cx_json_nonempty_or_null(c->result_message));
        json_object_object_add(o, "result_error", cx_json_nonempty_or_null(c->result_error));
    }
    return o;
}

json_object *cx_command_wire_json(const cx_command_t *c, int attempt, int64_t timestamp_ms)
{
    char ts[32], exp[32];
    json_object *o = json_object_new_object();

    cx_time_format(timestamp_ms / 1000, ts);
    cx_time_format(c->expires_at / 1000, exp);
    json_object_object_add(o, "id", json_object_new_string(c->id));
    json_object_object_add(o, "type", json_object_new_string(cx_command_type_name(c->type)));
    if (c->pipeline_id[0])
        json_object_object_add(o, "pipeline_id", json_object_new_string(c->pipeline_id));
    json_object_object_add(o, "payload", payload(c));
    json_object_object_add(o, "timestamp", json_object_new_string(ts));
    json_object_object_add(o, "expires_at", json_object_new_string(c->expires_at > 0 ? exp : ""));
    json_object_object_add(o, "attempt", json_object_new_int(attempt));
    return o;
}

json_object *cx_schedule_json(const cx_schedule_t *s, const char *default_tz)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(s->id));
    json_object_object_add(o, "pipeline_id", json_object_new_string(s->pipeline_id));
    json_object_object_add(o, "cron_expression", json_object_new_string(s->cron_expression));
    json_object_object_add(o, "timezone", json_object_new_string(s->timezone[0] ? s->timezone : default_tz));
    json_object_object_add(o, "enabled", json_object_new_boolean(s->enabled));
    json_object_object_add(o, "overlap_policy", json_object_new_string(cx_overlap_name(s->overlap_policy)));
    json_object_object_add(o, "last_run_at", cx_json_time(s->last_run_at));
    json_object_object_add(o, "next_run_at", cx_json_time(s->next_run_at));
    json_object_object_add(o, "last_run_id", cx_json_nonempty_or_null(s->last_run_id));
    json_object_object_add(o, "last_run_status",
                           s->has_last_run ? json_object_new_string(cx_run_status_name(s->last_run_status)) : NULL);
    json_object_object_add(o, "fires", json_object_new_int64(s->fires));
    json_object_object_add(o, "skipped", json_object_new_int64(s->skipped));
    json_object_object_add(o, "missed", json_object_new_int64(s->missed));
    json_object_object_add(o, "failures", json_object_new_int64(s->failures));
    json_object_object_add(o, "created_by", cx_json_str_or_null(s->created_by));
    json_object_object_add(o, "updated_by", cx_json_str_or_null(s->updated_by));
    json_object_object_add(o, "created_at", cx_json_time(s->created_at));
    json_object_object_add(o, "updated_at", cx_json_time(s->updated_at));
    return o;
}

static json_object *number(double v)
{
    return json_object_new_double(v);
}

json_object *cx_agent_json(const cx_agent_t *a)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(a->id));
    json_object_object_add(o, "hostname", cx_json_str_or_null(a->hostname));
    json_object_object_add(o, "ip_address", cx_json_str_or_null(a->ip_address));
    json_object_object_add(o, "status", json_object_new_string(cx_agent_status_name(a->status)));
    json_object_object_add(o, "last_heartbeat", cx_json_time_ms(a->last_heartbeat));
    json_object_object_add(o, "registered_at", cx_json_time_ms(a->registered_at));
    json_object_object_add(o, "version", cx_json_str_or_null(a->version));
    json_object_object_add(o, "labels", cx_json_stored(a->labels, json_type_object));
    json_object_object_add(o, "status_changed_at", cx_json_time_ms(a->status_changed_at));
    json_object_object_add(o, "cpu_usage", number(a->cpu_usage));
    json_object_object_add(o, "memory_usage", number(a->memory_usage));
    json_object_object_add(o, "disk_usage", number(a->disk_usage));
    json_object_object_add(o, "pipelines", cx_json_stored(a->pipelines, json_type_array));
    return o;
}

json_object *cx_pipeline_state_json(const char *pipeline_id, const cx_pipeline_state_t *st)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "pipeline_id", json_object_new_string(pipeline_id));
    json_object_object_add(o, "status", json_object_new_string(cx_run_status_name(st->status)));
    json_object_object_add(o, "run", st->has_run ? cx_run_json(&st->run) : NULL);
    json_object_object_add(o, "agent", st->has_agent ? cx_agent_json(&st->agent) : NULL);
    return o;
}

json_object *cx_run_metrics_json(const char *pipeline_id, const cx_run_metrics_t *m)
{
    const cx_run_t *run = m->has_run ? &m->latest : NULL;
    json_object *o = NULL;

    if (m->reported != NULL && json_object_deep_copy(m->reported, &o, NULL) == 0) {
        json_object_object_add(o, "source", json_object_new_string("redis"));
        if (!json_object_object_get_ex(o, "pipeline_id", NULL))
            json_object_object_add(o, "pipeline_id", json_object_new_string(pipeline_id));
        return o;
    }
    o = json_object_new_object();
    json_object_object_add(o, "pipeline_id", json_object_new_string(pipeline_id));
    json_object_object_add(o, "source", json_object_new_string("run"));
    json_object_object_add(o, "run_id", run ? json_object_new_string(run->id) : NULL);
    json_object_object_add(o, "run_status", run ? json_object_new_string(cx_run_status_name(run->status)) : NULL);
    json_object_object_add(o, "processed_count", json_object_new_int64(run ? run->processed_count : 0));
    json_object_object_add(o, "error_count", json_object_new_int64(run ? run->error_count : 0));
    json_object_object_add(o, "errors_total", json_object_new_int64(run ? run->error_count : 0));
    json_object_object_add(o, "last_updated", run ? cx_json_time(run->updated_at) : NULL);
    return o;
}

json_object *cx_user_json(const cx_user_t *u)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_string(u->id));
    json_object_object_add(o, "email", cx_json_nonempty_or_null(u->email));
    json_object_object_add(o, "name", cx_json_nonempty_or_null(u->name));
    json_object_object_add(o, "provider", cx_json_nonempty_or_null(u->provider));
    json_object_object_add(o, "role", json_object_new_string(cx_role_name(u->role)));
    json_object_object_add(o, "created_at", cx_json_time(u->created_at));
    json_object_object_add(o, "last_login_at", cx_json_time(u->last_login_at));
    return o;
}

json_object *cx_session_json(const cx_session_t *s)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "jti", json_object_new_string(s->jti));
    json_object_object_add(o, "user_id", cx_json_nonempty_or_null(s->user_id));
    json_object_object_add(o, "provider", cx_json_nonempty_or_null(s->provider));
    json_object_object_add(o, "created_at", cx_json_time(s->created_at));
    json_object_object_add(o, "expires_at", cx_json_time(s->expires_at));
    json_object_object_add(o, "last_seen_at", cx_json_time(s->last_seen_at));
    json_object_object_add(o, "user_agent", cx_json_nonempty_or_null(s->user_agent));
    json_object_object_add(o, "ip_address", cx_json_nonempty_or_null(s->ip_address));
    json_object_object_add(o, "revoked_at", cx_json_time(s->revoked_at));
    json_object_object_add(o, "revoked_by", cx_json_nonempty_or_null(s->revoked_by));
    json_object_object_add(o, "active", json_object_new_boolean(s->active));
    return o;
}
