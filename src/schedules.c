/*
 * schedules.c -- the schedule service (schedules.h): an expression compiled with its zone, next and
 * upcoming fire times, what a due fire becomes after an outage, and the API's writes: create, update
 * (also enable and disable) and trigger. The scheduler child and the workers both use it, each with its
 * own cache of loaded zones.
 *
 * An update is a compare-and-set on the schedule's revision: the schedule is read, the change applied and
 * next_run_at computed from it, then written only if nobody changed the schedule meanwhile (else read
 * again, up to UPDATE_TRIES times). The scheduler's claim of a fire names the revision too, so a fire
 * computed from an expression that is being replaced is never claimed.
 *
 * Rules where the contract is silent (docs/schedules.md):
 *   - a schedule created without a timezone takes scheduler.timezone as it is then: changing the key
 *     later changes only new schedules (a schedule must not change meaning behind its owner's back);
 *   - next_run_at is computed again from now when the expression or the zone changes or the schedule is
 *     enabled; fire times that passed while it was disabled are not caught up; a disabled schedule has no
 *     next_run_at;
 *   - @every counts from the previous fire time, not from when the run started, so it does not drift.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/audit.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/schedules.h"
#include "conduix/shapes.h"

#define UPDATE_TRIES 5

/* ---- zones ---- */

/* The zones this process loaded, by name; never freed (there are a few hundred names at most). */
static struct {
    char name[CX_TZ_NAME_MAX + 1];
    cx_tz_t *tz;
} * zones;
static size_t nzones, zones_cap;

const cx_tz_t *cx_schedule_zone(const char *name, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR");
    cx_tz_t *tz;

    for (size_t i = 0; i < nzones; i++)
        if (strcmp(zones[i].name, name) == 0)
            return zones[i].tz;
    if ((tz = cx_tz_load_dir(dir != NULL && *dir ? dir : CX_TZ_DIR, name, err, errlen)) == NULL)
        return NULL;
    if (nzones == zones_cap) {
        zones_cap = zones_cap ? 2 * zones_cap : 16;
        zones = cx_realloc(zones, zones_cap * sizeof(*zones));
    }
    snprintf(zones[nzones].name, sizeof(zones[nzones].name), "%s", name);
    zones[nzones].tz = tz;
    return zones[nzones++].tz;
}

/* ---- fire times ---- */

static const char *default_zone(void)
{
    return cx_cfg != NULL && cx_cfg->scheduler.timezone != NULL ? cx_cfg->scheduler.timezone : "UTC";
}

int cx_schedule_compile(const char *expr, const char *timezone, cx_schedule_cron_t *out, const char **field, char *err,
                        size_t errlen)
{
    const char *zone;
    char why[200];

    memset(out, 0, sizeof(*out));
    *field = "cron_expression";
    if (cx_cron_parse(&out->cron, expr, err, errlen) < 0)
        return CX_INVALID;
    if ((zone = cx_cron_zone(&out->cron)) == NULL) {
        zone = timezone != NULL && *timezone ? timezone : default_zone();
        *field = "timezone";
    }
    if ((out->tz = cx_schedule_zone(zone, why, sizeof(why))) == NULL) {
        if (strcmp(*field, "timezone") == 0 && (timezone == NULL || *timezone == '\0'))
            snprintf(err, errlen, "scheduler.timezone: %s", why); /* the default itself does not load */
        else
            snprintf(err, errlen, "%s", why);
        return CX_INVALID;
    }
    return CX_OK;
}

int64_t cx_schedule_next(const cx_schedule_cron_t *c, int64_t after)
{
    if (c->cron.flags & CX_CRON_EVERY)
        return after <= CX_CRON_MAX_TIME - c->cron.every ? after + c->cron.every : CX_CRON_NONE;
    return cx_cron_next(&c->cron, c->tz, after);
}

int cx_schedule_upcoming(const cx_schedule_cron_t *c, int64_t first, int64_t *out, int n)
{
    int k = 0;
    for (int64_t t = first; k < n && t != CX_CRON_NONE; t = cx_schedule_next(c, t))
        out[k++] = t;
    return k;
}

void cx_schedule_plan(const cx_schedule_cron_t *c, int64_t due, int64_t now, int64_t deadline, cx_fire_plan_t *p)
{
    int64_t latest = due, t;

    memset(p, 0, sizeof(*p));
    if (due > now) { /* not due: nothing to do but wait (a caller's clock that went back) */
        p->fire_at = CX_CRON_NONE;
        p->next = due;
        return;
    }
    if (c->cron.flags & CX_CRON_EVERY) {
        int64_t k = (now - due) / c->cron.every;
        latest = due + k * c->cron.every;
        p->missed = k;
        t = cx_schedule_next(c, latest);
    } else {
        for (;;) {
            t = cx_cron_next(&c->cron, c->tz, latest);
            if (t == CX_CRON_NONE || t > now)
                break;
            latest = t;
            if (++p->missed >= CX_SCHEDULE_CATCHUP_MAX && !p->capped) {
                /* Years of every-minute fires: count no further, go on from the deadline's window. */
                p->capped = 1;
                if (now - deadline - 1 > latest)
                    latest = now - deadline - 1;
            }
        }
    }
    if (now - latest > deadline) {
        p->fire_at = CX_CRON_NONE;
        p->missed++;
    } else {
        p->fire_at = latest;
    }
    p->next = t;
}

/* ---- writes ---- */

static void set_why(char *field, char *why, const char *f, const char *w)
{
    if (field != NULL)
        snprintf(field, 32, "%s", f);
    if (why != NULL)
        snprintf(why, 256, "%s", w);
}

/* plan_next -- s->next_run_at for a schedule written now: its first fire time after now when enabled, else
 * none. CX_INVALID (field, why) when its expression cannot be compiled. */
static int plan_next(cx_schedule_t *s, char *field, char *why)
{
    cx_schedule_cron_t c;
    const char *f;
    char err[256];
    int64_t next;

    if (cx_schedule_compile(s->cron_expression, s->timezone, &c, &f, err, sizeof(err)) != CX_OK) {
        set_why(field, why, f, err);
        return CX_INVALID;
    }
    next = s->enabled ? cx_schedule_next(&c, cx_wall_ms() / 1000) : CX_CRON_NONE;
    s->next_run_at = next != CX_CRON_NONE ? next * 1000 : 0;
    return CX_OK;
}

int cx_schedules_create(const cx_schedule_input_t *in, const cx_pipeline_actor_t *who, cx_schedule_t *out, char *field, char *why)
{
    cx_schedule_t s = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    cx_uuid_v7(s.id);
    snprintf(s.pipeline_id, sizeof(s.pipeline_id), "%s", in->pipeline_id);
    snprintf(s.cron_expression, sizeof(s.cron_expression), "%s", in->cron_expression);
    snprintf(s.timezone, sizeof(s.timezone), "%s", in->timezone != NULL ? in->timezone : default_zone());
    s.enabled = in->enabled != 0;
    s.overlap_policy = in->has_overlap ? in->overlap_policy : CX_OVERLAP_SKIP;
    s.revision = 1;
    s.created_by = cx_strdup(who->actor);
    s.updated_by = cx_strdup(who->actor);
    s.created_at = s.updated_at = cx_wall_ms();
    if ((rc = plan_next(&s, field, why)) != CX_OK)
        goto fail;
    rc = cx_db_schedule_insert(&s, who);
    if (rc == CX_INVALID)
        set_why(field, why, "pipeline_id", "no pipeline has this id");
    if (rc != CX_OK)
        goto fail;
    *out = s;
    return CX_OK;
fail:
    cx_schedule_free(&s);
    return rc;
}

/* apply -- after = before with the fields of in; 1 when anything changed, *retime when next_run_at must be
 * computed again. */
static int apply(const cx_schedule_t *before, const cx_schedule_input_t *in, cx_schedule_t *after, int *retime)
{
    const char *tz;

    *after = *before;
    after->created_by = before->created_by ? cx_strdup(before->created_by) : NULL;
    after->updated_by = before->updated_by ? cx_strdup(before->updated_by) : NULL;
    if (in->pipeline_id != NULL)
        snprintf(after->pipeline_id, sizeof(after->pipeline_id), "%s", in->pipeline_id);
    if (in->cron_expression != NULL)
        snprintf(after->cron_expression, sizeof(after->cron_expression), "%s", in->cron_expression);
    if (in->timezone_given) {
        tz = in->timezone != NULL ? in->timezone : default_zone();
        snprintf(after->timezone, sizeof(after->timezone), "%s", tz);
    }
    if (in->enabled >= 0)
        after->enabled = in->enabled;
    if (in->has_overlap)
        after->overlap_policy = in->overlap_policy;
    *retime = strcmp(after->cron_expression, before->cron_expression) != 0 || strcmp(after->timezone, before->timezone) != 0 ||
              after->enabled != before->enabled || (after->enabled && before->next_run_at == 0);
    return *retime || strcmp(after->pipeline_id, before->pipeline_id) != 0 || after->overlap_policy != before->overlap_policy;
}

int cx_schedules_update(const char *id, const cx_schedule_input_t *in, const char *action, const cx_pipeline_actor_t *who,
                        cx_schedule_t *out, char *field, char *why)
{
    int rc;

    memset(out, 0, sizeof(*out));
    for (int attempt = 0; attempt < UPDATE_TRIES; attempt++) {
        cx_schedule_t before, after;
        int retime;

        if ((rc = cx_db_schedule_get(id, &before)) != CX_OK)
            return rc;
        if (!apply(&before, in, &after, &retime)) {
            cx_schedule_free(&after);
            *out = before; /* nothing changes: nothing written, no audit row */
            return CX_OK;
        }
        after.revision = before.revision + 1;
        free(after.updated_by);
        after.updated_by = cx_strdup(who->actor);
        after.updated_at = cx_wall_ms();
        rc = retime ? plan_next(&after, field, why) : CX_OK;
        if (rc == CX_OK) {
            rc = cx_db_schedule_write(&before, &after, action, who);
            if (rc == CX_INVALID)
                set_why(field, why, "pipeline_id", "no pipeline has this id");
        }
        cx_schedule_free(&before);
        if (rc == CX_OK) {
            /* the last run's status comes with a read; the write did not touch it */
            cx_schedule_free(&after);
            return cx_db_schedule_get(id, out);
        }
        cx_schedule_free(&after);
        if (rc != CX_STATE)
            return rc;
    }
    set_why(field, why, "schedule", "the schedule kept changing while it was being updated; try again");
    return CX_CONFLICT;
}

/* The claim of a trigger: the schedule's fires and last run, and the audit row, in the start's
 * transaction. */
typedef struct trigger_claim {
    cx_schedule_claim_t c;
    const cx_pipeline_actor_t *who;
    const char *at;
    int force;
} trigger_claim_t;

static int trigger_claim(void *arg)
{
    trigger_claim_t *t = arg;
    json_object *after;
    int rc;

    if ((rc = cx_db_schedule_claim(&t->c)) != CX_OK)
        return rc;
    after = json_object_new_object();
    json_object_object_add(after, "run_id", json_object_new_string(t->c.last_run_id));
    json_object_object_add(after, "at", json_object_new_string(t->at));
    json_object_object_add(after, "force", json_object_new_boolean(t->force));
    rc = cx_audit_write(t->who->actor, "schedule_trigger", "schedule", t->c.id, t->who->request_id, NULL, after);
    json_object_put(after);
    return rc;
}

int cx_schedules_trigger(const char *id, int force, const cx_pipeline_actor_t *who, cx_runs_result_t *res)
{
    cx_schedule_t s;
    char run_id[37], at[32], reason[160];
    int rc;

    memset(res, 0, sizeof(*res));
    if ((rc = cx_db_schedule_get(id, &s)) != CX_OK)
        return rc;
    cx_uuid_v7(run_id);
    cx_db_time_text(cx_wall_ms(), at);
    snprintf(reason, sizeof(reason), "replaced by a run of schedule %s triggered by %.100s", id, who->actor);
    trigger_claim_t tc = {.c = {.id = id, .cas = 0, .fires = 1, .last_run_id = run_id}, .who = who, .at = at, .force = force};
    cx_runs_start_opts_t o = {
        .pipeline_id = s.pipeline_id,
        .trigger = CX_TRIGGER_SCHEDULE,
        .schedule_id = id,
        .scheduled_for = NULL, /* none of the schedule's fire times: those stay unique and keep their runs */
        .actor = who->actor,
        .request_id = who->request_id,
        .run_id = run_id,
        .replace = force || s.overlap_policy == CX_OVERLAP_REPLACE,
        .replace_reason = reason,
        .claim = trigger_claim,
        .claim_arg = &tc,
    };
    rc = cx_runs_start_ex(&o, res);
    if (rc == CX_STATE && !o.replace) {
        char m[sizeof(res->message)];
        snprintf(m, sizeof(m), "%.200s; the schedule's overlap policy is %s: ?force=true replaces the active run", res->message,
                 cx_overlap_name(s.overlap_policy));
        snprintf(res->message, sizeof(res->message), "%s", m);
    }
    cx_schedule_free(&s);
    return rc;
}
