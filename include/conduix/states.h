/*
 * states.h -- the states of conduix-cp's objects as enums, each with its one table of names: the words
 * the API, the agent protocol and the database columns use. Run status and trigger, command type and
 * status, a schedule's overlap policy, agent status.
 *
 * Each family is one list below; the enum, the name table (src/states.c) and the SQL lists of the
 * data layer are made from it. Adding a state is a line in its list, then the rules that must know it:
 * cx_run_transition_legal (src/states.c), the run bookkeeping (src/runs.c), hbmon (src/hbmon.c).
 */
#ifndef CONDUIX_STATES_H
#define CONDUIX_STATES_H

#include <stddef.h>

#define CX_STATE_ENUM(e, name) e,

/* ---- run status: pending -> running <-> paused -> completed | failed | stopped | lost ---- */

/* clang-format off */
#define CX_RUN_STATUSES(X) \
    X(CX_RUN_PENDING, "pending") X(CX_RUN_RUNNING, "running") X(CX_RUN_PAUSED, "paused") \
    X(CX_RUN_COMPLETED, "completed") X(CX_RUN_FAILED, "failed") X(CX_RUN_STOPPED, "stopped") X(CX_RUN_LOST, "lost")
/* clang-format on */

typedef enum { CX_RUN_STATUSES(CX_STATE_ENUM) CX_RUN_STATUS_COUNT } cx_run_status_t;

/* The active statuses (a run holds its pipeline) as an SQL list; the generated column
 * pipeline_runs.active_pipeline_id of migrations/0001_initial.sql says the same. */
#define CX_RUN_ACTIVE_SQL "('pending', 'running', 'paused')"
#define CX_RUN_ENDED_SQL "('completed', 'failed', 'stopped', 'lost')"

const char *cx_run_status_name(cx_run_status_t s);

/* cx_run_status_parse -- the status named s into *out: CX_OK, or CX_INVALID (s may be NULL). */
int cx_run_status_parse(const char *s, cx_run_status_t *out);

/* cx_run_status_active -- pending, running or paused. */
int cx_run_status_active(cx_run_status_t s);

/* cx_run_transition_legal -- may a run go from `from` to `to`? From an active status anywhere but back
 * to pending (pending may jump straight to paused or an end: a start acknowledged late), and never
 * out of an end. */
int cx_run_transition_legal(cx_run_status_t from, cx_run_status_t to);

/* cx_pipeline_status_of -- where a pipeline stands after its newest run (has_run 0: it never ran), as
 * GET /pipelines/:id/status tells it: a completed or stopped run, or none, leaves it `stopped`; any
 * other run shows as it is (failed and lost included). A Pipeline's own status is its active run's. */
cx_run_status_t cx_pipeline_status_of(int has_run, cx_run_status_t newest);

/* ---- run trigger ---- */

/* clang-format off */
#define CX_RUN_TRIGGERS(X) \
    X(CX_TRIGGER_MANUAL, "manual") X(CX_TRIGGER_SCHEDULE, "schedule") X(CX_TRIGGER_FAILOVER, "failover")
/* clang-format on */

typedef enum { CX_RUN_TRIGGERS(CX_STATE_ENUM) CX_RUN_TRIGGER_COUNT } cx_run_trigger_t;

const char *cx_run_trigger_name(cx_run_trigger_t t);
int cx_run_trigger_parse(const char *s, cx_run_trigger_t *out);

/* ---- command type: the protocol's command names, the run status a control command asks for, and the
 * audit action of the API call that sends it ---- */

/* clang-format off */
#define CX_COMMAND_TYPES(X) \
    X(CX_CMD_START_PIPELINE, "start_pipeline") X(CX_CMD_STOP_PIPELINE, "stop_pipeline") \
    X(CX_CMD_PAUSE_PIPELINE, "pause_pipeline") X(CX_CMD_RESUME_PIPELINE, "resume_pipeline") \
    X(CX_CMD_UPDATE_CONFIG, "update_config") X(CX_CMD_SHUTDOWN, "shutdown")
/* clang-format on */

typedef enum { CX_COMMAND_TYPES(CX_STATE_ENUM) CX_COMMAND_TYPE_COUNT } cx_command_type_t;

/* The control commands (stop, pause, resume) as an SQL list. */
#define CX_COMMAND_CONTROL_SQL "('stop_pipeline', 'pause_pipeline', 'resume_pipeline')"

const char *cx_command_type_name(cx_command_type_t t);
int cx_command_type_parse(const char *s, cx_command_type_t *out);

/* cx_command_is_control -- stop, pause or resume_pipeline. */
int cx_command_is_control(cx_command_type_t t);

/* cx_command_goal -- the run status a start or control command asks for (start: running, stop:
 * stopped, pause: paused, resume: running); CX_RUN_STATUS_COUNT for the others. */
cx_run_status_t cx_command_goal(cx_command_type_t t);

/* cx_command_action -- the audit action of the API call that sends it: "pipeline_start",
 * "pipeline_stop", "pipeline_pause", "pipeline_resume", "pipeline_update_config", "agent_shutdown". */
const char *cx_command_action(cx_command_type_t t);

/* ---- command status: queued -> sent -> acked | failed | expired (queued -> expired too); cancelled:
 * withdrawn because its run ended before it was delivered ---- */

/* clang-format off */
#define CX_COMMAND_STATUSES(X) \
    X(CX_CMDST_QUEUED, "queued") X(CX_CMDST_SENT, "sent") X(CX_CMDST_ACKED, "acked") X(CX_CMDST_FAILED, "failed") \
    X(CX_CMDST_EXPIRED, "expired") X(CX_CMDST_CANCELLED, "cancelled")
/* clang-format on */

typedef enum { CX_COMMAND_STATUSES(CX_STATE_ENUM) CX_COMMAND_STATUS_COUNT } cx_command_status_t;

/* The statuses of a command that still waits for its agent (delivery or acknowledgement). */
#define CX_COMMAND_OUTSTANDING_SQL "('queued', 'sent')"

const char *cx_command_status_name(cx_command_status_t s);
int cx_command_status_parse(const char *s, cx_command_status_t *out);

/* ---- overlap policy of a schedule: what a fire does while the pipeline still has an active run ---- */

/* clang-format off */
#define CX_OVERLAP_POLICIES(X) \
    X(CX_OVERLAP_SKIP, "skip") X(CX_OVERLAP_ALLOW, "allow") X(CX_OVERLAP_REPLACE, "replace")
/* clang-format on */

typedef enum { CX_OVERLAP_POLICIES(CX_STATE_ENUM) CX_OVERLAP_POLICY_COUNT } cx_overlap_t;

const char *cx_overlap_name(cx_overlap_t p);
int cx_overlap_parse(const char *s, cx_overlap_t *out);

/* ---- agent status, as hbmon records it ---- */

/* clang-format off */
#define CX_AGENT_STATUSES(X) \
    X(CX_AGENT_UNKNOWN, "unknown") X(CX_AGENT_ONLINE, "online") X(CX_AGENT_OFFLINE, "offline")
/* clang-format on */

typedef enum { CX_AGENT_STATUSES(CX_STATE_ENUM) CX_AGENT_STATUS_COUNT } cx_agent_status_t;

const char *cx_agent_status_name(cx_agent_status_t s);
int cx_agent_status_parse(const char *s, cx_agent_status_t *out);

/* ---- roles: a token's `role` claim and a user's role. viewer < operator < admin rank by their values
 * (the route table gives each route its least role); agent stands apart. CX_ROLE_NONE is no role. ---- */

/* clang-format off */
#define CX_ROLES(X) \
    X(CX_ROLE_AGENT, "agent") X(CX_ROLE_VIEWER, "viewer") X(CX_ROLE_OPERATOR, "operator") X(CX_ROLE_ADMIN, "admin")
/* clang-format on */

typedef enum { CX_ROLE_NONE = 0, CX_ROLES(CX_STATE_ENUM) CX_ROLE_COUNT } cx_role_t;

/* The roles a person may hold (cx_role_is_user), as the API's messages list them. */
#define CX_USER_ROLES_TEXT "viewer, operator, admin"

/* cx_role_name -- "viewer" … "agent"; "none" for CX_ROLE_NONE. */
const char *cx_role_name(cx_role_t r);

/* cx_role_parse -- the role named s (exactly, lower case); CX_ROLE_NONE for NULL or any other text. */
cx_role_t cx_role_parse(const char *s);

/* cx_role_is_user -- viewer, operator or admin: what a sign-in gives and an admin may set (never agent). */
int cx_role_is_user(cx_role_t r);

#endif
