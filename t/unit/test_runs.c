/*
 * test_runs.c -- the rules of runs, without a database: the state tables and transitions (states.c),
 * and the decisions of src/runs.c (included, to reach its statics): what an acknowledgement does to a
 * run, what a heartbeat that lists or does not list the pipeline does, which control commands are
 * refused, and the reading of a heartbeat's pipelines and pipeline_stats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/runs.c"

#define NONE CX_RUN_STATUS_COUNT

static void t_names(void **state)
{
    cx_run_status_t rs;
    cx_run_trigger_t tr;
    cx_command_type_t ct;
    cx_command_status_t cs;
    cx_agent_status_t as;
    (void)state;

    /* every value has a name that parses back to it */
    for (int i = 0; i < CX_RUN_STATUS_COUNT; i++) {
        assert_int_equal(cx_run_status_parse(cx_run_status_name((cx_run_status_t)i), &rs), CX_OK);
        assert_int_equal(rs, i);
    }
    for (int i = 0; i < CX_RUN_TRIGGER_COUNT; i++) {
        assert_int_equal(cx_run_trigger_parse(cx_run_trigger_name((cx_run_trigger_t)i), &tr), CX_OK);
        assert_int_equal(tr, i);
    }
    for (int i = 0; i < CX_COMMAND_TYPE_COUNT; i++) {
        assert_int_equal(cx_command_type_parse(cx_command_type_name((cx_command_type_t)i), &ct), CX_OK);
        assert_int_equal(ct, i);
    }
    for (int i = 0; i < CX_COMMAND_STATUS_COUNT; i++) {
        assert_int_equal(cx_command_status_parse(cx_command_status_name((cx_command_status_t)i), &cs), CX_OK);
        assert_int_equal(cs, i);
    }
    for (int i = 0; i < CX_AGENT_STATUS_COUNT; i++) {
        assert_int_equal(cx_agent_status_parse(cx_agent_status_name((cx_agent_status_t)i), &as), CX_OK);
        assert_int_equal(as, i);
    }
    /* the words of the contract */
    assert_string_equal(cx_run_status_name(CX_RUN_LOST), "lost");
    assert_string_equal(cx_run_trigger_name(CX_TRIGGER_FAILOVER), "failover");
    assert_string_equal(cx_command_type_name(CX_CMD_RESUME_PIPELINE), "resume_pipeline");
    assert_string_equal(cx_command_status_name(CX_CMDST_CANCELLED), "cancelled");
    assert_string_equal(cx_agent_status_name(CX_AGENT_OFFLINE), "offline");
    assert_int_equal(CX_COMMAND_STATUS_COUNT, 6);
    assert_int_equal(CX_RUN_STATUS_COUNT, 7);
    /* anything else is refused, and *out is left alone */
    rs = CX_RUN_PAUSED;
    assert_int_equal(cx_run_status_parse("Running", &rs), CX_INVALID);
    assert_int_equal(cx_run_status_parse("", &rs), CX_INVALID);
    assert_int_equal(cx_run_status_parse(NULL, &rs), CX_INVALID);
    assert_int_equal(rs, CX_RUN_PAUSED);
    assert_int_equal(cx_command_type_parse("stop", &ct), CX_INVALID);
    assert_int_equal(cx_agent_status_parse("online ", &as), CX_INVALID);
    assert_string_equal(cx_run_status_name(CX_RUN_STATUS_COUNT), "?");
}

static void t_transitions(void **state)
{
    (void)state;
    for (int from = 0; from < CX_RUN_STATUS_COUNT; from++)
        for (int to = 0; to < CX_RUN_STATUS_COUNT; to++) {
            int legal = cx_run_transition_legal((cx_run_status_t)from, (cx_run_status_t)to);
            int want = cx_run_status_active((cx_run_status_t)from) && from != to && to != CX_RUN_PENDING;
            if (legal != want)
                fail_msg("%s -> %s: %d", cx_run_status_name(from), cx_run_status_name(to), legal);
        }
    assert_true(cx_run_transition_legal(CX_RUN_PENDING, CX_RUN_PAUSED)); /* a start acknowledged late */
    assert_true(cx_run_transition_legal(CX_RUN_PAUSED, CX_RUN_LOST));
    assert_false(cx_run_transition_legal(CX_RUN_STOPPED, CX_RUN_RUNNING)); /* an ended run never changes */
    assert_false(cx_run_transition_legal(CX_RUN_RUNNING, NONE));
    assert_true(cx_run_status_active(CX_RUN_PENDING));
    assert_false(cx_run_status_active(CX_RUN_LOST));

    /* the pipeline shows its newest run, but completed and stopped (or none) are "stopped" */
    assert_int_equal(cx_pipeline_status_of(0, CX_RUN_RUNNING), CX_RUN_STOPPED);
    assert_int_equal(cx_pipeline_status_of(1, CX_RUN_COMPLETED), CX_RUN_STOPPED);
    assert_int_equal(cx_pipeline_status_of(1, CX_RUN_STOPPED), CX_RUN_STOPPED);
    assert_int_equal(cx_pipeline_status_of(1, CX_RUN_FAILED), CX_RUN_FAILED);
    assert_int_equal(cx_pipeline_status_of(1, CX_RUN_LOST), CX_RUN_LOST);
    assert_int_equal(cx_pipeline_status_of(1, CX_RUN_PAUSED), CX_RUN_PAUSED);

    /* commands: what they ask for, and their audit action */
    assert_int_equal(cx_command_goal(CX_CMD_START_PIPELINE), CX_RUN_RUNNING);
    assert_int_equal(cx_command_goal(CX_CMD_STOP_PIPELINE), CX_RUN_STOPPED);
    assert_int_equal(cx_command_goal(CX_CMD_PAUSE_PIPELINE), CX_RUN_PAUSED);
    assert_int_equal(cx_command_goal(CX_CMD_RESUME_PIPELINE), CX_RUN_RUNNING);
    assert_int_equal(cx_command_goal(CX_CMD_SHUTDOWN), NONE);
    assert_true(cx_command_is_control(CX_CMD_PAUSE_PIPELINE));
    assert_false(cx_command_is_control(CX_CMD_START_PIPELINE));
    assert_false(cx_command_is_control(CX_CMD_UPDATE_CONFIG));
    assert_string_equal(cx_command_action(CX_CMD_STOP_PIPELINE), "pipeline_stop");
    assert_string_equal(cx_command_action(CX_CMD_START_PIPELINE), "pipeline_start");
    assert_string_equal(cx_command_action(CX_CMD_RESUME_PIPELINE), "pipeline_resume");
}

static void t_ack_goal(void **state)
{
    (void)state;
    /* start: success runs a pending run; refused fails it, whatever it is now, unless it ended */
    assert_int_equal(ack_goal(CX_CMD_START_PIPELINE, 1, CX_RUN_PENDING), CX_RUN_RUNNING);
    assert_int_equal(ack_goal(CX_CMD_START_PIPELINE, 1, CX_RUN_RUNNING), NONE); /* the heartbeat was first */
    assert_int_equal(ack_goal(CX_CMD_START_PIPELINE, 1, CX_RUN_PAUSED), NONE);
    assert_int_equal(ack_goal(CX_CMD_START_PIPELINE, 0, CX_RUN_PENDING), CX_RUN_FAILED);
    assert_int_equal(ack_goal(CX_CMD_START_PIPELINE, 0, CX_RUN_RUNNING), CX_RUN_FAILED);
    assert_int_equal(ack_goal(CX_CMD_START_PIPELINE, 0, CX_RUN_LOST), NONE);
    /* pause/resume only from the status they apply to */
    assert_int_equal(ack_goal(CX_CMD_PAUSE_PIPELINE, 1, CX_RUN_RUNNING), CX_RUN_PAUSED);
    assert_int_equal(ack_goal(CX_CMD_PAUSE_PIPELINE, 1, CX_RUN_PENDING), NONE);
    assert_int_equal(ack_goal(CX_CMD_PAUSE_PIPELINE, 1, CX_RUN_PAUSED), NONE);
    assert_int_equal(ack_goal(CX_CMD_RESUME_PIPELINE, 1, CX_RUN_PAUSED), CX_RUN_RUNNING);
    assert_int_equal(ack_goal(CX_CMD_RESUME_PIPELINE, 1, CX_RUN_RUNNING), NONE);
    /* stop from any active status; never out of an end */
    assert_int_equal(ack_goal(CX_CMD_STOP_PIPELINE, 1, CX_RUN_PENDING), CX_RUN_STOPPED);
    assert_int_equal(ack_goal(CX_CMD_STOP_PIPELINE, 1, CX_RUN_PAUSED), CX_RUN_STOPPED);
    assert_int_equal(ack_goal(CX_CMD_STOP_PIPELINE, 1, CX_RUN_STOPPED), NONE);
    assert_int_equal(ack_goal(CX_CMD_STOP_PIPELINE, 1, CX_RUN_FAILED), NONE);
    /* a refused control command changes nothing */
    assert_int_equal(ack_goal(CX_CMD_STOP_PIPELINE, 0, CX_RUN_RUNNING), NONE);
    assert_int_equal(ack_goal(CX_CMD_PAUSE_PIPELINE, 0, CX_RUN_RUNNING), NONE);
    /* commands that ask nothing of a run */
    assert_int_equal(ack_goal(CX_CMD_UPDATE_CONFIG, 1, CX_RUN_RUNNING), NONE);
    assert_int_equal(ack_goal(CX_CMD_SHUTDOWN, 1, CX_RUN_RUNNING), NONE);
}

static void t_heartbeat_goals(void **state)
{
    cx_run_t run = {0};
    int why;
    (void)state;

    /* listed: pending becomes running; pipeline_stats running/paused is followed; nothing else */
    assert_int_equal(listed_goal(CX_RUN_PENDING, NULL), CX_RUN_RUNNING);
    assert_int_equal(listed_goal(CX_RUN_RUNNING, NULL), NONE);
    assert_int_equal(listed_goal(CX_RUN_RUNNING, "paused"), CX_RUN_PAUSED);
    assert_int_equal(listed_goal(CX_RUN_PAUSED, "running"), CX_RUN_RUNNING);
    assert_int_equal(listed_goal(CX_RUN_PENDING, "paused"), CX_RUN_PAUSED);
    assert_int_equal(listed_goal(CX_RUN_RUNNING, "completed"), NONE); /* ends come from events and acks */
    assert_int_equal(listed_goal(CX_RUN_PENDING, "bogus"), CX_RUN_RUNNING);

    /* not listed */
    run.status = CX_RUN_RUNNING;
    run.running_for_ms = 100;
    run.unlisted_for_ms = 100;
    assert_int_equal(unlisted_goal(&run, 1, 0, 3000, &why), CX_RUN_STOPPED); /* a stop was asked: done */
    assert_int_equal(why, WHY_NONE);
    assert_int_equal(unlisted_goal(&run, 0, 0, 3000, &why), NONE); /* may not have started yet */
    run.running_for_ms = 9000;
    run.unlisted_for_ms = 2999; /* running long, listed until 2999 ms ago: its end may be on its way */
    assert_int_equal(unlisted_goal(&run, 0, 0, 3000, &why), NONE);
    run.unlisted_for_ms = 3000;
    assert_int_equal(unlisted_goal(&run, 0, 0, 3000, &why), CX_RUN_FAILED);
    assert_int_equal(why, WHY_VANISHED);
    run.status = CX_RUN_PENDING;
    run.running_for_ms = -1;
    run.unlisted_for_ms = -1;
    assert_int_equal(unlisted_goal(&run, 0, 0, 3000, &why), NONE); /* its start is on its way */
    assert_int_equal(unlisted_goal(&run, 0, 1, 3000, &why), CX_RUN_FAILED);
    assert_int_equal(why, WHY_NEVER_STARTED);
    assert_int_equal(unlisted_goal(&run, 1, 1, 3000, &why), CX_RUN_STOPPED);
    run.status = CX_RUN_PAUSED;
    assert_int_equal(unlisted_goal(&run, 0, 1, 3000, &why), NONE); /* paused before it ever ran */
    run.running_for_ms = 3000;
    run.unlisted_for_ms = 3000;
    assert_int_equal(unlisted_goal(&run, 0, 0, 3000, &why), CX_RUN_FAILED); /* a paused pipeline stays listed */
    assert_int_equal(why, WHY_VANISHED);
}

static void t_refusal(void **state)
{
    cx_run_t run = {0};
    cx_command_t pending = {0};
    char msg[320];
    (void)state;

    snprintf(run.id, sizeof(run.id), "r-1");
    snprintf(pending.id, sizeof(pending.id), "c-1");
    run.status = CX_RUN_PAUSED;
    assert_int_equal(refusal(&run, CX_CMD_PAUSE_PIPELINE, NULL, msg, sizeof(msg)), CX_STATE);
    assert_string_equal(msg, "pipeline is not running (run r-1 is paused)");
    assert_int_equal(refusal(&run, CX_CMD_RESUME_PIPELINE, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(refusal(&run, CX_CMD_STOP_PIPELINE, NULL, msg, sizeof(msg)), 0);
    run.status = CX_RUN_RUNNING;
    assert_int_equal(refusal(&run, CX_CMD_RESUME_PIPELINE, NULL, msg, sizeof(msg)), CX_STATE);
    assert_string_equal(msg, "pipeline is not paused (run r-1 is running)");
    /* behind an unacknowledged pause: a pause or resume waits ... */
    pending.type = CX_CMD_PAUSE_PIPELINE;
    assert_int_equal(refusal(&run, CX_CMD_PAUSE_PIPELINE, &pending, msg, sizeof(msg)), CX_STATE);
    assert_non_null(strstr(msg, "pipeline is changing state: a pause_pipeline command (c-1)"));
    /* ... unless the run already reached what it asked (a legacy agent's heartbeat said so) */
    run.status = CX_RUN_PAUSED;
    assert_int_equal(refusal(&run, CX_CMD_RESUME_PIPELINE, &pending, msg, sizeof(msg)), 0);
    /* a stop waits only behind another stop, reached or not */
    pending.type = CX_CMD_STOP_PIPELINE;
    assert_int_equal(refusal(&run, CX_CMD_STOP_PIPELINE, &pending, msg, sizeof(msg)), CX_STATE);
    assert_non_null(strstr(msg, "pipeline is stopping"));
    run.status = CX_RUN_STOPPED;
    assert_int_equal(refusal(&run, CX_CMD_STOP_PIPELINE, &pending, msg, sizeof(msg)), CX_STATE);
}

static void t_beat_fields(void **state)
{
    json_object *beat = json_tokener_parse("{\"pipelines\":[\"p1\",7,\"p2\"],\"pipeline_stats\":[5,{\"pipeline_id\":\"p2\","
                                           "\"status\":\"paused\",\"processed_count\":12,\"error_count\":-1},"
                                           "{\"pipeline_id\":\"p3\",\"processed_count\":1.5}]}");
    json_object *pipelines = json_object_object_get(beat, "pipelines"), *stats = json_object_object_get(beat, "pipeline_stats");
    json_object *e;
    (void)state;

    assert_non_null(beat);
    assert_true(listed(pipelines, "p1"));
    assert_true(listed(pipelines, "p2"));
    assert_false(listed(pipelines, "p"));
    assert_false(listed(pipelines, "7"));
    e = stats_of(stats, "p2");
    assert_non_null(e);
    assert_string_equal(get_str(e, "status"), "paused");
    assert_int_equal(get_count(e, "processed_count"), 12);
    assert_int_equal(get_count(e, "error_count"), -1);                         /* negative: not a count */
    assert_int_equal(get_count(stats_of(stats, "p3"), "processed_count"), -1); /* not an integer */
    assert_null(stats_of(stats, "p1"));
    assert_null(stats_of(NULL, "p1"));
    assert_null(get_str(e, "processed_count"));
    json_object_put(beat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_names),           cmocka_unit_test(t_transitions), cmocka_unit_test(t_ack_goal),
        cmocka_unit_test(t_heartbeat_goals), cmocka_unit_test(t_refusal),     cmocka_unit_test(t_beat_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
