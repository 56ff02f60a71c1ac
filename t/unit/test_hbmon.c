/*
 * test_hbmon.c -- hbmon's policy without Redis or MySQL (src/hbmon.c included, to reach its statics):
 * the table of known agents, the agent of a heartbeat key, when a value read from a key is a new beat
 * and when it arrived (never for a key that merely exists without a TTL that dates it), the age of a
 * REST beat from MySQL, the offline verdict (and none while Redis cannot be seen), and the change
 * written for an agent. Times are monotonic, as in hbmon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/hbmon.c"

#define BEAT "{\"agent_id\":\"a1\",\"timestamp\":\"2024-03-01T18:04:05Z\",\"cpu_usage\":1,\"pipelines\":[]}"
#define BEAT_R1 "{\"agent_id\":\"r1\",\"pipelines\":[]}"

static int setup(void **state)
{
    (void)state;
    memset(&H, 0, sizeof(H));
    H.timeout_ms = 3000;
    H.interval_ms = 500;
    H.check_ms = 500;
    H.gen = 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cleanup();
    return 0;
}

/* read_value -- agent a's key read at tr with expiry exp holds v: what value() makes of it. */
static void read_value(agent_t *a, const char *v, int64_t exp, int64_t tr)
{
    need_t nd = {a, exp, a->observed, NULL};
    a->observed = tr;
    value(&nd, v, v != NULL ? strlen(v) : 0, tr);
}

static void t_table(void **state)
{
    agent_t *a, *b;
    (void)state;

    assert_null(find("a1", 2, 0));
    a = find("a1", 2, 1);
    assert_non_null(a);
    assert_string_equal(a->id, "a1");
    assert_int_equal(a->status, CX_AGENT_UNKNOWN); /* no beat yet */
    assert_int_equal(a->db_status, ST_NONE);       /* and no row known */
    b = find("a10", 3, 1);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(find("a1", 2, 0), a);
    assert_ptr_equal(find("a10xyz", 3, 0), b); /* by length, not up to a NUL */
    assert_int_equal(H.n, 2);
    assert_ptr_equal(H.all[0], a);
    assert_ptr_equal(H.all[1], b);
    for (int i = 0; i < 3000; i++) {
        char id[16];
        int n = snprintf(id, sizeof(id), "x%d", i);
        find(id, (size_t)n, 1);
    }
    assert_int_equal(H.n, 3002);
    assert_int_equal(cx_htab_count(&H.tab), 3002);
    assert_ptr_equal(find("a10", 3, 0), b);
}

static void t_key_agent(void **state)
{
    const char *k = "agent:a1:heartbeat", *bad = "agent:has space:heartbeat";
    agent_t *a;
    (void)state;

    assert_null(key_agent(k, strlen(k), 0)); /* unknown and not to be added */
    a = key_agent(k, strlen(k), 1);
    assert_non_null(a);
    assert_string_equal(a->id, "a1");
    assert_false(a->bad);
    assert_ptr_equal(key_agent(k, strlen(k), 0), a);
    /* a key whose id is not a valid agent id is tracked apart, only to count its writes once */
    a = key_agent(bad, strlen(bad), 1);
    assert_non_null(a);
    assert_true(a->bad);
    assert_int_equal(a->id[0], '\x01');
    assert_string_equal(a->id + 1, bad);
    assert_ptr_equal(key_agent(bad, strlen(bad), 1), a);
    assert_int_equal(H.n, 2);
}

static void t_value(void **state)
{
    int64_t now = cx_now_ms(), first;
    agent_t *a = find("a1", 2, 1);
    (void)state;

    /* a new key: the beat is accepted; written 30 s before its expiry, so 1 s ago here */
    read_value(a, BEAT, now + 29000, now);
    assert_non_null(a->beat);
    assert_int_equal(a->status, CX_AGENT_ONLINE);
    assert_true(a->queued);
    assert_int_equal(a->last_seen, now - 1000);
    assert_string_equal(a->beat->agent_id, "a1");
    first = a->last_seen;
    drop_beat(a);

    /* the same write read again (expiry within the noise): no new beat */
    read_value(a, BEAT, now + 29000 + JUMP_MS / 2, now + 500);
    assert_null(a->beat);
    assert_int_equal(a->last_seen, first);

    /* the same content SET again (its expiry jumped): a new beat, received 0.2 s before the read */
    read_value(a, BEAT, now + 32000 + 29800, now + 32000);
    assert_non_null(a->beat);
    assert_int_equal(a->last_seen, now + 32000 - 200);
    drop_beat(a);

    /* an expiry in the future of the read (clock skew, within the tolerance) never puts the beat after the read */
    read_value(a, "{\"agent_id\":\"a1\",\"pipelines\":[\"p\"]}", now + 40000 + 30050, now + 40000);
    assert_non_null(a->beat);
    assert_int_equal(a->last_seen, now + 40000);
    drop_beat(a);

    /* garbage, a beat of another agent, no string: rejected, nothing changes */
    read_value(a, "{not json", now + 50000 + 30000, now + 50000);
    assert_null(a->beat);
    read_value(a, "{\"agent_id\":\"a2\"}", now + 60000 + 30000, now + 60000);
    assert_null(a->beat);
    read_value(a, NULL, now + 70000 + 30000, now + 70000);
    assert_null(a->beat);
    assert_int_equal(a->last_seen, now + 40000);
}

static void t_value_respawn(void **state)
{
    int64_t now = cx_now_ms();
    agent_t *a = find("a1", 2, 1);
    (void)state;

    /* a respawned hbmon reads a key whose beat MySQL already has (loaded as last_seen): not again */
    a->last_seen = now - 1000;
    read_value(a, BEAT, now + 29000 + 100, now);
    assert_null(a->beat);
    /* a write after it is a beat */
    read_value(a, BEAT, now + 5000 + 30000, now + 5000);
    assert_non_null(a->beat);
    assert_int_equal(a->last_seen, now + 5000);
}

/* t_value_untimed -- a key without a TTL, or with one longer than agents set, says nothing of when it
 * was written: its first read is no beat (a dead agent's key left behind, or a phantom), only a write
 * seen between two reads is, as of the earlier read. */
static void t_value_untimed(void **state)
{
    int64_t now = cx_now_ms();
    agent_t *a = find("a1", 2, 1), *b = find("b1", 2, 1);
    (void)state;

    /* no TTL (-1): read, remembered, not a beat; even by an hbmon that never saw the agent */
    read_value(a, BEAT, -1, now);
    assert_null(a->beat);
    assert_int_equal(a->status, CX_AGENT_UNKNOWN);
    assert_int_equal(a->last_seen, 0);
    read_value(a, BEAT, -1, now + 1000); /* the same value: nothing */
    assert_null(a->beat);
    /* written again (another value) while hbmon watches: a beat, received after the read before */
    read_value(a, "{\"agent_id\":\"a1\",\"pipelines\":[]}", -1, now + 2000);
    assert_non_null(a->beat);
    assert_int_equal(a->last_seen, now + 1000);
    assert_int_equal(a->status, CX_AGENT_ONLINE);
    drop_beat(a);

    /* EX 100000000: the expiry does not date the write */
    read_value(b, "{\"agent_id\":\"b1\",\"pipelines\":[]}", now + 100000000000LL, now);
    assert_null(b->beat);
    assert_int_equal(b->status, CX_AGENT_UNKNOWN);
    /* a dead agent's old beat, known to MySQL, read first by a new leader: not a beat either */
    b->last_seen = now - 600000;
    b->expire_at = 0;
    read_value(b, "{\"agent_id\":\"b1\",\"pipelines\":[]}", now + 100000000000LL, now + 1000);
    assert_null(b->beat);
    assert_int_equal(b->last_seen, now - 600000);
    /* the same content SET again with the same long TTL (its expiry jumped): someone wrote it: a beat */
    read_value(b, "{\"agent_id\":\"b1\",\"pipelines\":[]}", now + 100000000000LL + 5000, now + 5000);
    assert_non_null(b->beat);
    assert_int_equal(b->last_seen, now + 1000);
    /* a value that is not a beat is still counted once, TTL or not */
    read_value(b, "{not json", -1, now + 6000);
    assert_non_null(b->beat); /* the earlier one, not yet written */
    assert_int_equal(b->last_seen, now + 1000);
}

/* t_rest_age -- a REST beat from MySQL is dated by its age as MySQL measures it, on the monotonic clock;
 * a newer beat from Redis wins; the same row is taken once. */
static void t_rest_age(void **state)
{
    int64_t max = 0, before = cx_now_ms();
    agent_t *a;
    (void)state;

    on_rest(&max, "r1", BEAT_R1, strlen(BEAT_R1), 1000000, 2500);
    a = find("r1", 2, 0);
    assert_non_null(a);
    assert_non_null(a->beat);
    assert_int_equal(a->status, CX_AGENT_ONLINE);
    assert_true(a->last_seen >= before - 2500 && a->last_seen <= cx_now_ms() - 2500);
    assert_int_equal(max, 1000000);
    drop_beat(a);
    on_rest(&max, "r1", BEAT_R1, strlen(BEAT_R1), 1000000, 2600); /* the same row again */
    assert_null(a->beat);
    a->last_seen = cx_now_ms(); /* a Redis beat since */
    on_rest(&max, "r1", BEAT_R1, strlen(BEAT_R1), 1000500, 100);
    assert_null(a->beat);
}

static void t_judge(void **state)
{
    int64_t now = cx_now_ms();
    agent_t *fresh = find("fresh", 5, 1), *stale = find("stale", 5, 1), *unseen = find("unseen", 6, 1);
    (void)state;

    fresh->status = stale->status = unseen->status = CX_AGENT_ONLINE;
    fresh->last_seen = now - 1000;
    stale->last_seen = now - 3500;
    unseen->last_seen = now - 3500;
    /* stale's key was looked at in this tick; unseen's not (judged as of now) */
    fresh->gen = stale->gen = H.gen;
    fresh->observed = stale->observed = now;
    unseen->gen = H.gen - 1;

    /* Redis could not be read: nobody goes offline */
    judge(0);
    assert_true(H.blind);
    assert_int_equal(stale->status, CX_AGENT_ONLINE);
    assert_int_equal(unseen->status, CX_AGENT_ONLINE);
    /* back: every agent has a whole timeout from now to be heard */
    judge(1);
    assert_false(H.blind);
    assert_int_equal(stale->status, CX_AGENT_ONLINE);
    assert_int_equal(unseen->status, CX_AGENT_ONLINE);

    /* later, with Redis seen all along */
    H.sight_ms = 0;
    judge(1);
    assert_int_equal(fresh->status, CX_AGENT_ONLINE);
    assert_int_equal(stale->status, CX_AGENT_OFFLINE);
    assert_int_equal(unseen->status, CX_AGENT_OFFLINE);
    assert_true(stale->queued);
    assert_false(fresh->queued);
}

static void t_change(void **state)
{
    cx_agent_change_t c;
    agent_t *a = find("a1", 2, 1);
    (void)state;

    /* registered through REST (no row known to hbmon) and not seen yet: nothing to record */
    a->db_status = ST_NONE;
    a->status = CX_AGENT_UNKNOWN;
    fill(&c, a);
    assert_false(c.transition);
    assert_null(c.beat);
    /* its first beat: unknown -> online */
    a->status = CX_AGENT_ONLINE;
    a->changed_ms = 1234;
    fill(&c, a);
    assert_true(c.transition);
    assert_int_equal(c.from, CX_AGENT_UNKNOWN);
    assert_int_equal(c.status, CX_AGENT_ONLINE);
    /* written for MySQL on the wall clock: the same moment, however far the two clocks are apart */
    assert_true(llabs(c.changed_ms - (cx_wall_ms() - (cx_now_ms() - 1234))) <= 5);
    assert_string_equal(c.reason, "heartbeat received");
    /* recorded online, now offline */
    snprintf(H.reason_off, sizeof(H.reason_off), "no heartbeat for 3.0 s");
    a->db_status = CX_AGENT_ONLINE;
    a->status = CX_AGENT_OFFLINE;
    fill(&c, a);
    assert_true(c.transition);
    assert_int_equal(c.from, CX_AGENT_ONLINE);
    assert_string_equal(c.reason, "no heartbeat for 3.0 s");
    /* no change of status: only a beat, if any */
    a->db_status = CX_AGENT_OFFLINE;
    fill(&c, a);
    assert_false(c.transition);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_table, setup, teardown),
        cmocka_unit_test_setup_teardown(t_key_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(t_value, setup, teardown),
        cmocka_unit_test_setup_teardown(t_value_respawn, setup, teardown),
        cmocka_unit_test_setup_teardown(t_value_untimed, setup, teardown),
        cmocka_unit_test_setup_teardown(t_rest_age, setup, teardown),
        cmocka_unit_test_setup_teardown(t_judge, setup, teardown),
        cmocka_unit_test_setup_teardown(t_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
