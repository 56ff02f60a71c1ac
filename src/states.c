/*
 * states.c -- the name tables of the state enums and the roles (states.h), made from their lists, and the
 * few rules that belong to a state itself: which run statuses are active, which transitions are legal,
 * what a command asks for, which roles a person may hold. Pure; unit-tested in t/unit/test_runs.c.
 */
#include <string.h>

#include "conduix/cx.h"
#include "conduix/states.h"

#define CX_STATE_NAME(e, name) [e] = (name),

static const char *const role_names[] = {[CX_ROLE_NONE] = "none", CX_ROLES(CX_STATE_NAME)};
static const char *const run_status_names[] = {CX_RUN_STATUSES(CX_STATE_NAME)};
static const char *const run_trigger_names[] = {CX_RUN_TRIGGERS(CX_STATE_NAME)};
static const char *const command_type_names[] = {CX_COMMAND_TYPES(CX_STATE_NAME)};
static const char *const command_status_names[] = {CX_COMMAND_STATUSES(CX_STATE_NAME)};
static const char *const agent_status_names[] = {CX_AGENT_STATUSES(CX_STATE_NAME)};
static const char *const overlap_names[] = {CX_OVERLAP_POLICIES(CX_STATE_NAME)};

/* name -- the name of value v of a table of n, "?" for a value out of range. */
static const char *name(const char *const *names, size_t n, unsigned v)
{
    return v < n ? names[v] : "?";
}

/* parse -- the index of s in the table, or -1. */
static int parse(const char *const *names, size_t n, const char *s)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

/* type is a type name, which cannot be parenthesised. */
// NOLINTBEGIN(bugprone-macro-parentheses)
#define NAME_AND_PARSE(fname, fparse, type, table)                                                                                 \
    const char *fname(type v)                                                                                                      \
    {                                                                                                                              \
        return name(table, CX_ARRAY_SIZE(table), (unsigned)v);                                                                     \
    }                                                                                                                              \
    int fparse(const char *s, type *out)                                                                                           \
    {                                                                                                                              \
        int i = parse(table, CX_ARRAY_SIZE(table), s);                                                                             \
        if (i < 0)                                                                                                                 \
            return CX_INVALID;                                                                                                     \
        *out = (type)i;                                                                                                            \
        return CX_OK;                                                                                                              \
    }
// NOLINTEND(bugprone-macro-parentheses)

NAME_AND_PARSE(cx_run_status_name, cx_run_status_parse, cx_run_status_t, run_status_names)
NAME_AND_PARSE(cx_run_trigger_name, cx_run_trigger_parse, cx_run_trigger_t, run_trigger_names)
NAME_AND_PARSE(cx_command_type_name, cx_command_type_parse, cx_command_type_t, command_type_names)
NAME_AND_PARSE(cx_command_status_name, cx_command_status_parse, cx_command_status_t, command_status_names)
NAME_AND_PARSE(cx_agent_status_name, cx_agent_status_parse, cx_agent_status_t, agent_status_names)
NAME_AND_PARSE(cx_overlap_name, cx_overlap_parse, cx_overlap_t, overlap_names)

int cx_run_status_active(cx_run_status_t s)
{
    return s == CX_RUN_PENDING || s == CX_RUN_RUNNING || s == CX_RUN_PAUSED;
}

int cx_run_transition_legal(cx_run_status_t from, cx_run_status_t to)
{
    return cx_run_status_active(from) && (unsigned)to < CX_RUN_STATUS_COUNT && from != to && to != CX_RUN_PENDING;
}

cx_run_status_t cx_pipeline_status_of(int has_run, cx_run_status_t newest)
{
    if (!has_run || newest == CX_RUN_COMPLETED || newest == CX_RUN_STOPPED)
        return CX_RUN_STOPPED;
    return newest;
}

int cx_command_is_control(cx_command_type_t t)
{
    return t == CX_CMD_STOP_PIPELINE || t == CX_CMD_PAUSE_PIPELINE || t == CX_CMD_RESUME_PIPELINE;
}

cx_run_status_t cx_command_goal(cx_command_type_t t)
{
    switch (t) {
    case CX_CMD_START_PIPELINE:
    case CX_CMD_RESUME_PIPELINE:
        return CX_RUN_RUNNING;
    case CX_CMD_STOP_PIPELINE:
        return CX_RUN_STOPPED;
    case CX_CMD_PAUSE_PIPELINE:
        return CX_RUN_PAUSED;
    default:
        return CX_RUN_STATUS_COUNT;
    }
}

const char *cx_command_action(cx_command_type_t t)
{
    switch (t) {
    case CX_CMD_START_PIPELINE:
        return "pipeline_start";
    case CX_CMD_STOP_PIPELINE:
        return "pipeline_stop";
    case CX_CMD_PAUSE_PIPELINE:
        return "pipeline_pause";
    case CX_CMD_RESUME_PIPELINE:
        return "pipeline_resume";
    case CX_CMD_UPDATE_CONFIG:
        return "pipeline_update_config";
    case CX_CMD_SHUTDOWN:
        return "agent_shutdown";
    default:
        return "command";
    }
}

const char *cx_role_name(cx_role_t r)
{
    return name(role_names, CX_ARRAY_SIZE(role_names), (unsigned)r);
}

cx_role_t cx_role_parse(const char *s)
{
    int i = parse(role_names, CX_ARRAY_SIZE(role_names), s);
    return i > 0 ? (cx_role_t)i : CX_ROLE_NONE; /* "none" names no role either */
}

int cx_role_is_user(cx_role_t r)
{
    return r == CX_ROLE_VIEWER || r == CX_ROLE_OPERATOR || r == CX_ROLE_ADMIN;
}
