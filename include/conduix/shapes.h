/*
 * shapes.h -- the JSON of each data type, in one place: the API answers with these shapes, the audit
 * log stores them (before/after), and the command's wire form is the agent protocol's message. The data
 * layer returns structs (db.h); src/api/ turns them into answers with these functions.
 *
 * Times are RFC 3339 UTC to the second ("2026-11-25T21:00:00Z"), agents' with milliseconds; null when
 * unset. Every function returns a new object (the caller owns it).
 */
#ifndef CONDUIX_SHAPES_H
#define CONDUIX_SHAPES_H

#include <stdint.h>
#include <json.h>

#include "conduix/jsonw.h"

#include "conduix/agents.h"
#include "conduix/commands.h"
#include "conduix/pipelines.h"
#include "conduix/runs.h"
#include "conduix/schedules.h"
#include "conduix/users.h"

/* Values. */
json_object *cx_json_str_or_null(const char *s);      /* NULL -> null; any string, "" included, as it is */
json_object *cx_json_nonempty_or_null(const char *s); /* NULL or "" -> null (fixed arrays hold "" for none) */
json_object *cx_json_time(int64_t ms);                /* to the second; 0 -> null */
json_object *cx_json_time_ms(int64_t ms);             /* with milliseconds; 0 -> null */

/* cx_json_stored -- a JSON text stored in a column (labels, pipelines) as an object of type, or an empty
 * one of that type when it is NULL or not of that type. */
json_object *cx_json_stored(const char *text, json_type type);

/* cx_pipeline_json -- {"id","name","description","config_yaml","version","created_by","updated_by",
 * "created_at","updated_at"}, and "status" with with_status (the API's Pipeline; audit rows store the
 * definition without it). */
json_object *cx_pipeline_json(const cx_pipeline_t *p, int with_status);

/* cx_pipeline_write -- the same object written as text into w (jsonw.h), for the answers. */
void cx_pipeline_write(cx_jw_t *w, const cx_pipeline_t *p, int with_status);

/* cx_pipeline_version_json -- {"version","name","description","config_yaml","created_by","created_at"}. */
json_object *cx_pipeline_version_json(const cx_pipeline_version_t *v);

/* cx_run_json -- the Run: {"id","pipeline_id","agent_id","schedule_id","scheduled_for","trigger","status","started_at",
 * "ended_at","processed_count","error_count","error_message","failover_of","created_at","updated_at"}. */
json_object *cx_run_json(const cx_run_t *run);

/* cx_command_json -- the Command: {"id","agent_id","type","pipeline_id","run_id","payload","status",
 * "attempts","created_at","expires_at","last_sent_at","acked_at"} (+ "result_message","result_error"
 * once acknowledged). */
json_object *cx_command_json(const cx_command_t *c);

/* cx_command_wire_json -- the protocol message of one delivery: exactly {"id","type","pipeline_id",
 * "payload","timestamp","expires_at","attempt"} (pipeline_id omitted when the command has none). */
json_object *cx_command_wire_json(const cx_command_t *c, int attempt, int64_t timestamp_ms);

/* cx_pipeline_state_json -- {"pipeline_id","status","run": Run|null,"agent": Agent|null}. */
json_object *cx_pipeline_state_json(const char *pipeline_id, const cx_pipeline_state_t *st);

/* cx_run_metrics_json -- PipelineMetrics: the agent's object as it is plus "source":"redis" (and
 * "pipeline_id" when missing), else {"pipeline_id","source":"run","run_id","run_status",
 * "processed_count","error_count","errors_total","last_updated"} of the newest run (nulls and zeros when
 * it never ran). */
json_object *cx_run_metrics_json(const char *pipeline_id, const cx_run_metrics_t *m);

/* cx_schedule_json -- the Schedule: {"id","pipeline_id","cron_expression","timezone","enabled",
 * "overlap_policy","last_run_at","next_run_at","last_run_id","last_run_status","fires","skipped","missed",
 * "failures","created_by","updated_by","created_at","updated_at"}; timezone is default_tz when the row
 * names none. GET /schedules/:id adds "upcoming" (the API's, which needs the cron engine). */
json_object *cx_schedule_json(const cx_schedule_t *s, const char *default_tz);

/* cx_agent_json -- the Agent: {"id","hostname","ip_address","status","last_heartbeat","registered_at",
 * "version","labels","status_changed_at","cpu_usage","memory_usage","disk_usage","pipelines"}. */
json_object *cx_agent_json(const cx_agent_t *a);

/* cx_user_json -- the User: {"id","email","name","provider","role","created_at","last_login_at"}. */
json_object *cx_user_json(const cx_user_t *u);

/* cx_session_json -- a Session: {"jti","user_id","provider","created_at","expires_at","last_seen_at",
 * "user_agent","ip_address","revoked_at","revoked_by","active"}. */
json_object *cx_session_json(const cx_session_t *s);

#endif
