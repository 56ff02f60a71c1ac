/*
 * schedules.h -- cron schedules of pipelines, in three parts:
 *   - the schedule service (src/schedules.c): an expression compiled with its zone (zones loaded once
 *     per process), next and upcoming fire times, what a due fire becomes after an outage (cx_schedule_plan,
 *     pure), and the writes of the API (create, update, enable/disable, trigger) with their rules;
 *   - the input checks of the API (src/api/schedules.c, pure);
 *   - the schedules table (src/db/schedules.c, on the conventions of db.h), including the scheduler's
 *     compare-and-set that claims a fire.
 * The scheduler child (src/scheduler.c) fires due schedules; docs/schedules.md describes it all for users.
 *
 * Times: a schedule's fire times are whole seconds (next_run_at is a DATETIME); the structs hold Unix
 * milliseconds like the rest of the data layer, the cron engine Unix seconds.
 */
#ifndef CONDUIX_SCHEDULES_H
#define CONDUIX_SCHEDULES_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>

#include "conduix/cron.h"
#include "conduix/pipelines.h"
#include "conduix/runs.h"
#include "conduix/states.h"
#include "conduix/tz.h"

#define CX_SCHEDULE_CRON_MAX 255 /* bytes of cron_expression (the column is VARCHAR(255)) */
#define CX_SCHEDULE_UPCOMING 5   /* fire times listed in "upcoming" */

/* A schedule. */
typedef struct cx_schedule {
    char id[37];
    char pipeline_id[37];
    char cron_expression[CX_SCHEDULE_CRON_MAX + 1];
    char timezone[CX_TZ_NAME_MAX + 1]; /* "" when the row names none: scheduler.timezone applies */
    int enabled;
    cx_overlap_t overlap_policy;
    int64_t revision;    /* bumped by every change through the API */
    int64_t next_run_at; /* ms (whole seconds); 0 when none: disabled, or never again */
    int64_t last_run_at; /* when the schedule last started a run; 0 never */
    char last_run_id[37];
    int has_last_run; /* last_run_id names a run that exists: last_run_status is its status */
    cx_run_status_t last_run_status;
    int64_t fires, skipped, missed, failures;
    char *created_by, *updated_by; /* owned; NULL when unknown */
    int64_t created_at, updated_at;
} cx_schedule_t;

void cx_schedule_free(cx_schedule_t *s);
void cx_db_schedules_free(cx_schedule_t *v, size_t n);

/* ---- the service (src/schedules.c) ---- */

/* A schedule's expression compiled, with the zone it is evaluated in (the CRON_TZ= prefix, else the
 * schedule's timezone, else scheduler.timezone). The zone belongs to the process's cache. */
typedef struct cx_schedule_cron {
    cx_cron_t cron;
    const cx_tz_t *tz;
} cx_schedule_cron_t;

/* cx_schedule_zone -- the zone called name, loaded once per process from the tz database ($TZDIR, else
 * /usr/share/zoneinfo) and kept; NULL and a message in err when it cannot be loaded. */
const cx_tz_t *cx_schedule_zone(const char *name, char *err, size_t errlen);

/* cx_schedule_compile -- expr in timezone (NULL or "": scheduler.timezone). CX_OK, or CX_INVALID with
 * *field ("cron_expression" or "timezone") and the reason in err. */
int cx_schedule_compile(const char *expr, const char *timezone, cx_schedule_cron_t *out, const char **field, char *err,
                        size_t errlen);

/* cx_schedule_next -- the first fire time after `after` (Unix seconds): @every adds its interval (it
 * counts from the previous fire), an expression asks the cron engine. CX_CRON_NONE when there is none. */
int64_t cx_schedule_next(const cx_schedule_cron_t *c, int64_t after);

/* cx_schedule_upcoming -- first, then the fire times after it, up to n into out; how many. */
int cx_schedule_upcoming(const cx_schedule_cron_t *c, int64_t first, int64_t *out, int n);

/* What a due fire becomes (cx_schedule_plan). */
typedef struct cx_fire_plan {
    int64_t fire_at; /* the fire time to run now (s), or CX_CRON_NONE: none is recent enough */
    int64_t missed;  /* the fire times that are not run (passed while no scheduler ran) */
    int64_t next;    /* the next fire time after now (s), or CX_CRON_NONE */
    int capped;      /* more than CX_SCHEDULE_CATCHUP_MAX fire times had passed: missed is a lower bound */
} cx_fire_plan_t;

#define CX_SCHEDULE_CATCHUP_MAX 1000000

/* cx_schedule_plan -- the fire times from due (the schedule's next_run_at) up to now: the latest of
 * them runs when it is at most deadline seconds old, every other one is missed; next is the first after
 * now. Pure. */
void cx_schedule_plan(const cx_schedule_cron_t *c, int64_t due, int64_t now, int64_t deadline, cx_fire_plan_t *p);

/* The fields of a create or an update (pointers into the request body); a field not given is NULL
 * (enabled: -1). */
typedef struct cx_schedule_input {
    const char *pipeline_id;
    const char *cron_expression;
    int timezone_given;   /* timezone was in the body; NULL then means null: scheduler.timezone */
    const char *timezone; /* checked: a zone that loads */
    int enabled;          /* 1, 0, or -1 not given */
    int has_overlap;
    cx_overlap_t overlap_policy;
} cx_schedule_input_t;

/* cx_schedules_create -- a new schedule from in (pipeline_id and cron_expression required), its
 * timezone the one given or scheduler.timezone as it is now, next_run_at its first fire time after now
 * (none when disabled). CX_INVALID with field and why (>= 32 and >= 256 bytes) for a pipeline that does
 * not exist or an expression that cannot be compiled. */
int cx_schedules_create(const cx_schedule_input_t *in, const cx_pipeline_actor_t *who, cx_schedule_t *out, char *field, char *why);

/* cx_schedules_update -- apply the given fields (action: "schedule_update", "schedule_enable",
 * "schedule_disable" for the audit row). next_run_at is computed again from now when the expression or
 * the zone changes or the schedule is enabled, and cleared when it is disabled; a change that changes
 * nothing writes nothing. CX_NOTFOUND, CX_INVALID (field, why) as for a create, CX_CONFLICT when the
 * schedule kept changing under it. */
int cx_schedules_update(const char *id, const cx_schedule_input_t *in, const char *action, const cx_pipeline_actor_t *who,
                        cx_schedule_t *out, char *field, char *why);

/* cx_schedules_trigger -- a run of the schedule's pipeline now (POST /schedules/:id/trigger): trigger
 * `schedule`, the schedule's id, no scheduled_for (it is none of the schedule's fire times, which keep
 * theirs), through the start of runs.h; the overlap policy applies (skip and allow
 * refuse while a run is active: a pipeline runs once at a time; replace stops the active run first),
 * force replaces whatever the policy. The schedule's fires and last run follow, with an audit row, in
 * the start's transaction. The codes of cx_runs_start_ex, with res->message for a refusal. */
int cx_schedules_trigger(const char *id, int force, const cx_pipeline_actor_t *who, cx_runs_result_t *res);

/* ---- input checks of the API (src/api/schedules.c; pure) ---- */

/* cx_schedule_parse_body -- check a create (update 0) or update (update 1) body and fill in (pointers
 * into body). On CX_INVALID, *details is a new object {field: message} for every bad field. Unknown
 * fields are refused; the expression is compiled and the zone loaded, so a refusal says why. */
int cx_schedule_parse_body(json_object *body, int update, cx_schedule_input_t *in, json_object **details);

/* ---- data layer (src/db/schedules.c), on the conventions of db.h ---- */

/* A list request. */
typedef struct cx_schedule_query {
    const char *pipeline_id; /* NULL: all */
    int has_enabled;
    int enabled;
    int page, page_size;
} cx_schedule_query_t;

/* cx_db_schedule_get -- the schedule with this id (and its last run's status). CX_NOTFOUND. */
int cx_db_schedule_get(const char *id, cx_schedule_t *out);

/* cx_db_schedule_list -- one page, newest first, and the number of matches. */
int cx_db_schedule_list(const cx_schedule_query_t *q, cx_schedule_t **items, size_t *n, int64_t *total);

/* cx_db_schedule_insert -- write s (every field set by the caller) and its audit row. CX_INVALID when
 * s->pipeline_id names no pipeline (checked under its row lock: a concurrent delete of the pipeline
 * waits, then takes the schedule with it). */
int cx_db_schedule_insert(const cx_schedule_t *s, const cx_pipeline_actor_t *who);

/* cx_db_schedule_write -- replace before by after (compare-and-set on before->revision; after carries
 * the new revision) with an audit row of action. CX_STATE when the schedule changed meanwhile,
 * CX_NOTFOUND when it is gone, CX_INVALID when a new pipeline_id names no pipeline. */
int cx_db_schedule_write(const cx_schedule_t *before, const cx_schedule_t *after, const char *action,
                         const cx_pipeline_actor_t *who);

/* cx_db_schedule_delete -- delete it, with its audit row. CX_NOTFOUND. */
int cx_db_schedule_delete(const char *id, const cx_pipeline_actor_t *who);

/* cx_db_schedules_due -- up to limit enabled schedules whose next_run_at is at or before now_ms,
 * oldest first; with unplanned, instead the enabled schedules without a next_run_at (rows written by
 * hand). */
int cx_db_schedules_due(int64_t now_ms, int unplanned, size_t limit, cx_schedule_t **items, size_t *n);

/* cx_db_schedules_ahead -- up to limit enabled schedules due after (after_ms, after_id) and at or before
 * until_ms, in (next_run_at, id) order: the next page of a scan ahead of time (after_id NULL or "": those
 * due after after_ms; else also those due at after_ms whose id is greater). */
int cx_db_schedules_ahead(int64_t after_ms, const char *after_id, int64_t until_ms, size_t limit, cx_schedule_t **items, size_t *n);

/* A claim of a schedule's fire, and what became of it. */
typedef struct cx_schedule_claim {
    const char *id;
    int cas;          /* 1: only while enabled with revision and next_run_at = due_ms; 0: unconditional (a trigger) */
    int64_t revision; /* cas */
    int64_t due_ms;   /* cas */
    int64_t next_ms;  /* cas: the new next_run_at, 0 for none */
    int fires, skipped, failures;
    int64_t missed;
    const char *last_run_id; /* the run started (or recorded failed), or NULL */
} cx_schedule_claim_t;

/* cx_db_schedule_claim -- one UPDATE: with cas, the compare-and-set that makes a fire happen once (under
 * the row lock until the caller's transaction ends; a row locked by another transaction is skipped, not
 * waited for); the counters and the last run. CX_OK, CX_STATE (cas: another scheduler claimed it or is
 * claiming it, or the schedule changed), CX_NOTFOUND (no cas: no such schedule). */
int cx_db_schedule_claim(const cx_schedule_claim_t *c);

/* cx_db_schedules_claim_lock -- the first half of the claims of a batch of fires, in the caller's
 * transaction, one SELECT: the rows of the cas claims locked FOR UPDATE SKIP LOCKED (a row another
 * transaction holds is another scheduler's claim in progress: skipped, not waited for); ok[i] = 1 when
 * claim i may go on (the row is there, enabled, with its revision and next_run_at = due_ms; a claim
 * without cas always may). The counters are written by cx_db_schedules_claim_settle. */
int cx_db_schedules_claim_lock(cx_schedule_claim_t *const *c, size_t n, int *ok);

/* cx_db_schedules_claim_settle -- the second half, one UPDATE over the n claims: the new next_run_at
 * (cas), the counters and the last run, compare-and-set as cx_db_schedule_claim. CX_OK, CX_STATE when
 * a row did not match (the caller rolls the transaction back). */
int cx_db_schedules_claim_settle(cx_schedule_claim_t *const *c, size_t n);

/* cx_db_schedules_enabled -- how many schedules are enabled. */
int cx_db_schedules_enabled(int64_t *n);

#endif
