/*
 * test_shm.c -- the shared-memory metrics: slot ownership across respawns, counters and the latency
 * histogram, status-code folding, process liveness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conduix/shm.h"

static int setup(void **state)
{
    (void)state;
    return cx_shm_create();
}

static void test_slots_continue_counts(void **state)
{
    int a, b, c;
    (void)state;
    a = cx_shm_slot_alloc(CX_KIND_WORKER, 0);
    assert_true(a > 0);
    cx_shm->slots[a].pid = 1234;
    cx_shm->slots[a].kind = CX_KIND_WORKER;
    cx_shm->slots[a].index = 0;
    cx_shm->slots[a].started_ms = 1;
    cx_shm_attach(a);
    cx_shm_count(CX_C_HEARTBEATS_REST, 3);
    /* a different worker gets a different slot while the first is alive */
    b = cx_shm_slot_alloc(CX_KIND_WORKER, 1);
    assert_true(b > 0 && b != a);
    /* the first dies: its successor for the same index takes the same slot and continues its counts */
    cx_shm_slot_release(a);
    c = cx_shm_slot_alloc(CX_KIND_WORKER, 0);
    assert_int_equal(c, a);
    assert_int_equal(cx_shm->slots[c].counters[CX_C_HEARTBEATS_REST], 3);
}

static void test_observe_request(void **state)
{
    int s;
    (void)state;
    s = cx_shm_slot_alloc(CX_KIND_WORKER, 7);
    cx_shm->slots[s].pid = 99;
    cx_shm_attach(s);
    cx_shm_observe_request(2, 200, 300);     /* 0.3 ms: first bucket (0.5 ms) */
    cx_shm_observe_request(2, 404, 20000);   /* 20 ms: the 25 ms bucket */
    cx_shm_observe_request(2, 599, 9000000); /* 9 s: no bucket, only +Inf; unknown status folds to "other" */
    cx_shm_observe_request(-1, 404, 10);     /* unmatched route: the last row */
    cx_shm_slot_t *p = &cx_shm->slots[s];
    assert_int_equal(p->requests[2][0], 1);
    assert_int_equal(p->requests[2][CX_SHM_NSTATUS - 1], 1);
    assert_int_equal(p->latency_buckets[2][0], 1);
    assert_int_equal(p->latency_buckets[2][5], 1);
    assert_int_equal(p->latency_count[2], 3);
    assert_int_equal(p->latency_sum_us[2], 300 + 20000 + 9000000);
    assert_int_equal(p->latency_count[CX_SHM_ROUTES - 1], 1);
}

static void test_kind_up(void **state)
{
    int s;
    (void)state;
    assert_false(cx_shm_kind_up(CX_KIND_HBMON));
    s = cx_shm_slot_alloc(CX_KIND_HBMON, 0);
    cx_shm->slots[s].kind = CX_KIND_HBMON;
    cx_shm->slots[s].pid = getpid();
    cx_shm->slots[s].up = 1;
    assert_true(cx_shm_kind_up(CX_KIND_HBMON));
    cx_shm_slot_release(s);
    assert_false(cx_shm_kind_up(CX_KIND_HBMON));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_continue_counts),
        cmocka_unit_test(test_observe_request),
        cmocka_unit_test(test_kind_up),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
