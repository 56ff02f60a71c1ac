/*
 * test_shm.c -- the shared-memory segment: slot ownership across respawns, counters and the latency
 * histogram, status-code folding, process liveness, and the lock words under contention from forked
 * processes (mutual exclusion, a slow holder is never taken over, a dead holder's lock is freed by its
 * reaper).
 */
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "conduix/cx.h"
#include "conduix/kinds.h"
#include "conduix/shm.h"

#define NSLOTS 16

static int setup(void **state)
{
    (void)state;
    return cx_shm_create(NSLOTS);
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

/* A slot is taken only up to nslots; never used slots are handed out last, in order. */
static void test_slots_bounded(void **state)
{
    int got[NSLOTS], n = 0, s;
    (void)state;
    while ((s = cx_shm_slot_alloc(CX_KIND_SCHEDULER, 100 + n)) >= 0) {
        assert_true(s > 0 && s < NSLOTS);
        cx_shm->slots[s].pid = 4242; /* taken */
        got[n++] = s;
        assert_true(n < NSLOTS);
    }
    assert_int_equal(cx_shm->nused, NSLOTS);
    for (int i = 0; i < n; i++)
        cx_shm_slot_release(got[i]);
    assert_true(cx_shm_slot_alloc(CX_KIND_SCHEDULER, 100) > 0);
}

/* ---- locks: several processes, one lock word ---- */

typedef struct shared {
    volatile int inside;     /* 1 while someone is between lock and unlock */
    volatile int violations; /* entries that found it 1 */
    volatile uint64_t counter;
    volatile int64_t released_ms; /* when the slow holder unlocked */
    volatile int64_t acquired_ms; /* when the waiter got the lock */
    volatile int holding;         /* the slow holder has the lock */
} shared_t;

static shared_t *shared_new(void)
{
    void *p = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0, sizeof(shared_t));
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int wait_child(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define NPROC 4
#define ITER 20000

/* Four processes add one ITER times each to a plain (non-atomic) counter under the lock, with a yield
 * inside now and then so that holders get descheduled while holding it: nothing is lost, and nobody
 * ever enters while another is inside. */
static void test_lock_mutual_exclusion(void **state)
{
    shared_t *sh = shared_new();
    cx_shm_lock_t *l = &cx_shm->ratelimit[0].lock;
    pid_t kids[NPROC];
    (void)state;

    for (int k = 0; k < NPROC; k++) {
        if ((kids[k] = fork()) == 0) {
            for (int i = 0; i < ITER; i++) {
                cx_shm_lock(l);
                if (sh->inside)
                    sh->violations++;
                sh->inside = 1;
                uint64_t v = sh->counter;
                if (i % 512 == 0)
                    sched_yield();
                sh->counter = v + 1;
                sh->inside = 0;
                cx_shm_unlock(l);
            }
            _exit(0);
        }
        assert_true(kids[k] > 0);
    }
    for (int k = 0; k < NPROC; k++)
        assert_int_equal(wait_child(kids[k]), 0);
    assert_int_equal(sh->violations, 0);
    assert_int_equal(sh->counter, (uint64_t)NPROC * ITER);
    assert_int_equal(atomic_load(&l->owner), 0);
}

/* A holder that is merely slow (300 ms, far longer than any spin budget) keeps the lock: the waiter gets
 * it only after the holder let it go. */
static void test_lock_slow_holder_kept(void **state)
{
    shared_t *sh = shared_new();
    cx_shm_lock_t *l = &cx_shm->ratelimit[1].lock;
    pid_t a, b;
    (void)state;

    if ((a = fork()) == 0) {
        cx_shm_lock(l);
        sh->holding = 1;
        sleep_ms(300);
        sh->holding = 0;
        sh->released_ms = cx_now_ms();
        cx_shm_unlock(l);
        _exit(0);
    }
    while (!sh->holding)
        sleep_ms(1);
    if ((b = fork()) == 0) {
        cx_shm_lock(l);
        sh->acquired_ms = cx_now_ms();
        if (sh->holding)
            sh->violations++;
        cx_shm_unlock(l);
        _exit(0);
    }
    assert_int_equal(wait_child(a), 0);
    assert_int_equal(wait_child(b), 0);
    assert_int_equal(sh->violations, 0);
    assert_true(sh->released_ms > 0);
    assert_true(sh->acquired_ms >= sh->released_ms);
}

/* A holder killed with the lock: the lock word names it; its reaper (the master) frees it while the
 * child is still a zombie, and only its own locks; then anyone can take it. */
static void test_lock_dead_holder_released(void **state)
{
    shared_t *sh = shared_new();
    cx_shm_lock_t *l = &cx_shm->ratelimit[2].lock, *other = &cx_shm->ratelimit[3].lock;
    siginfo_t si;
    pid_t a, b;
    (void)state;

    atomic_store(&other->owner, 1); /* somebody else's: must stay */
    if ((a = fork()) == 0) {
        cx_shm_lock(l);
        sh->holding = 1;
        for (;;)
            pause();
    }
    while (!sh->holding)
        sleep_ms(1);
    kill(a, SIGKILL);
    memset(&si, 0, sizeof(si));
    assert_int_equal(waitid(P_PID, (id_t)a, &si, WEXITED | WNOWAIT), 0);
    assert_int_equal(atomic_load(&l->owner), a);
    assert_int_equal(cx_shm_locks_release(a), 1);
    assert_int_equal(atomic_load(&l->owner), 0);
    assert_int_equal(atomic_load(&other->owner), 1);
    assert_int_equal(wait_child(a), 128 + SIGKILL);
    if ((b = fork()) == 0) {
        alarm(10); /* a wedged lock fails the test instead of hanging it */
        cx_shm_lock(l);
        cx_shm_unlock(l);
        _exit(0);
    }
    assert_int_equal(wait_child(b), 0);
    atomic_store(&other->owner, 0);
}

/* The rate limiter on top of the locks: four processes take from one bucket of burst 1000 with no
 * refill: exactly 1000 grants in all. */
static void test_rate_take_shared(void **state)
{
    shared_t *sh = shared_new();
    pid_t kids[NPROC];
    (void)state;

    for (int k = 0; k < NPROC; k++) {
        if ((kids[k] = fork()) == 0) {
            for (int i = 0; i < 600; i++)
                if (cx_shm_rate_take("t-rate-shared", 0.000001, 1000, 1000, NULL))
                    __atomic_fetch_add(&sh->counter, 1, __ATOMIC_RELAXED);
            _exit(0);
        }
    }
    for (int k = 0; k < NPROC; k++)
        assert_int_equal(wait_child(kids[k]), 0);
    assert_int_equal(sh->counter, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_continue_counts),
        cmocka_unit_test(test_observe_request),
        cmocka_unit_test(test_kind_up),
        cmocka_unit_test(test_slots_bounded),
        cmocka_unit_test(test_lock_mutual_exclusion),
        cmocka_unit_test(test_lock_slow_holder_kept),
        cmocka_unit_test(test_lock_dead_holder_released),
        cmocka_unit_test(test_rate_take_shared),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
