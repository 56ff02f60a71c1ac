/*
 * test_master.c -- the supervisor's decisions, on its own child table (master.c is included to reach its
 * statics, as h2o's t/00unit does): the table's size from the kinds table, the room a reload needs and
 * when it must wait or be refused, what an exit does to a child (respawn with doubling backoff, forget,
 * fatal stop), the respawn of an older generation, and the reaping of real children, with the shared
 * locks a dead child held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/master.c"

#define SECRET "auth:\n  jwt_secret: 0123456789abcdef0123456789abcdef\n"

static cx_config_t *config(const char *yaml)
{
    char text[2048], err[1024];
    cx_config_t *c;

    snprintf(text, sizeof(text), "%s%s", SECRET, yaml);
    c = cx_config_load_string(text, strlen(text), "t.yaml", 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    return c;
}

/* table -- a fresh master: shared segment, child table, no children, generation 0. */
static int table(void **state)
{
    (void)state;
    if (cx_shm == NULL && cx_shm_create(cx_kinds_slots()) != 0)
        return -1;
    children_init(cx_shm->nslots - 1);
    generation = 0;
    stopping = 0;
    exit_code = 0;
    cx_config_free(pending);
    pending = NULL;
    cx_config_free(cx_cfg);
    cx_cfg = config("server:\n  workers: 4\n");
    return 0;
}

/* put -- an entry as if spawned (no process: pid 0, so nothing is ever signalled). */
static child_t *put(cx_kind_t kind, int index, int gen, ch_state_t state)
{
    child_t *c = child_new(kind, index);
    assert_non_null(c);
    c->generation = gen;
    c->state = state;
    c->started_ms = cx_now_ms();
    return c;
}

static void put_running(int workers, int gen)
{
    for (int i = 0; i < workers; i++)
        put(CX_KIND_WORKER, i, gen, CH_RUNNING);
    put(CX_KIND_SCHEDULER, 0, gen, CH_RUNNING);
    put(CX_KIND_HBMON, 0, gen, CH_RUNNING);
    put(CX_KIND_DISPATCHER, 0, gen, CH_RUNNING);
}

/* The kinds table sizes everything: two generations of the largest pool and one of each other kind. */
static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(cx_kinds_slots(), 1 + 1 + 2 * CX_WORKERS_MAX + 3);
    assert_int_equal(nchildren, cx_kinds_slots() - 1);
    assert_int_equal(cx_kind_count(CX_KIND_WORKER, cx_cfg), 4);
    assert_int_equal(cx_kind_count(CX_KIND_HBMON, cx_cfg), 1);
    assert_int_equal(cx_kind_count(CX_KIND_MASTER, cx_cfg), 0);
    assert_int_equal(cx_kinds_db_conns(cx_cfg, 0), 3);
    assert_int_equal(cx_kinds_db_conns(cx_cfg, 1), 3 + 2 * 4);
    for (int k = 0; k < CX_KIND_MAX; k++) {
        assert_non_null(cx_kinds[k].name);
        assert_true(k == CX_KIND_MASTER || cx_kinds[k].main != NULL);
        assert_true(cx_kinds[k].max >= 1);
    }
    assert_string_equal(cx_kind_name(CX_KIND_DISPATCHER), "dispatcher");
    assert_string_equal(cx_kind_name(CX_KIND_MAX), "unknown");
}

/* 45 workers and their next generation fit in the table: the reload that lost 13 of them once. */
static void test_reload_room_many(void **state)
{
    char why[512];
    cx_config_t *next = config("server:\n  workers: 45\n");
    (void)state;

    put_running(45, 0);
    assert_int_equal(reload_room(next, why, sizeof(why)), 1);
    cx_config_free(cx_cfg);
    cx_cfg = next;
    next_generation(); /* what apply does before starting the new generation */
    assert_int_equal(generation, 1);
    for (int i = 0; i < 45; i++)
        put(CX_KIND_WORKER, i, 1, CH_RUNNING); /* start_children, without the forks */
    int stopping_old = 0, restarting = 0, live = 0;
    for (int i = 0; i < nchildren; i++) {
        live += children[i].state != CH_FREE;
        stopping_old += children[i].state == CH_STOPPING && children[i].generation == 0;
        restarting += children[i].state == CH_RESTARTING;
    }
    assert_int_equal(stopping_old, 45);
    assert_int_equal(restarting, 3);
    assert_int_equal(live, 45 + 45 + 3);
}

/* max_open_conns 11: 4 + 3 running and 4 new fit exactly; with one older worker still draining the next
 * reload waits; with 40 running workers and no older generation it can never fit: refused. */
static void test_reload_room_conns(void **state)
{
    char why[512];
    cx_config_t *next = config("server:\n  workers: 4\ndatabase:\n  max_open_conns: 11\n  max_idle_conns: 2\n");
    (void)state;

    put_running(4, 1);
    assert_int_equal(reload_room(next, why, sizeof(why)), 1);
    generation = 1;
    child_t *old = put(CX_KIND_WORKER, 2, 0, CH_STOPPING);
    assert_int_equal(reload_room(next, why, sizeof(why)), 0);
    old->state = CH_FREE;
    assert_int_equal(reload_room(next, why, sizeof(why)), 1);
    /* a worker of the current generation waiting to respawn is dropped by the reload: not counted */
    put(CX_KIND_WORKER, 9, 1, CH_WAIT_RESPAWN);
    assert_int_equal(reload_room(next, why, sizeof(why)), 1);

    for (int i = 4; i < 40; i++)
        put(CX_KIND_WORKER, i, 1, CH_RUNNING);
    assert_int_equal(reload_room(next, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "more than database.max_open_conns 11"));
    cx_config_free(next);
}

/* An unexpected exit: respawn after 100 ms, then 200, 400 …; after a stable minute from 100 again. */
static void test_exit_backoff(void **state)
{
    child_t *c = put(CX_KIND_HBMON, 0, 0, CH_RUNNING);
    int64_t now;
    (void)state;

    for (int64_t want = 100; want <= 800; want *= 2) {
        c->state = CH_RUNNING;
        now = cx_now_ms();
        exited(c, 1234, 1 << 8); /* exit code 1 */
        assert_int_equal(c->state, CH_WAIT_RESPAWN);
        assert_true(c->respawn_at - now >= want && c->respawn_at - now <= want + 50);
    }
    assert_int_equal(cx_shm->restarts[CX_KIND_HBMON], 4);
    c->state = CH_RUNNING;
    c->started_ms = cx_now_ms() - STABLE_UPTIME_MS;
    now = cx_now_ms();
    exited(c, 1234, SIGSEGV); /* killed by a signal */
    assert_true(c->respawn_at - now <= 150);
    assert_true(next_timeout(now) <= 150);
}

static void test_exit_states(void **state)
{
    (void)state;
    child_t *a = put(CX_KIND_WORKER, 0, 0, CH_STOPPING);
    exited(a, 1, 0);
    assert_int_equal(a->state, CH_FREE); /* an old generation's worker: forgotten */
    child_t *b = put(CX_KIND_WORKER, 1, 0, CH_RUNNING);
    exited(b, 2, 2 << 8); /* exit code 2: fatal */
    assert_int_equal(b->state, CH_FREE);
    assert_true(stopping);
    assert_int_equal(exit_code, 1);
}

/* A pool child of an older generation waiting to respawn is dropped, not respawned. */
static void test_respawn_old_generation(void **state)
{
    (void)state;
    generation = 3;
    child_t *old = put(CX_KIND_WORKER, 0, 2, CH_WAIT_RESPAWN);
    old->respawn_at = 0;
    child_t *cur = put(CX_KIND_WORKER, 1, 3, CH_WAIT_RESPAWN);
    cur->respawn_at = cx_now_ms() + 60000; /* not due: nothing is forked */
    respawn_due(cx_now_ms());
    assert_int_equal(old->state, CH_FREE);
    assert_int_equal(cur->state, CH_WAIT_RESPAWN);
}

/* reap on real children: one exits 3, one dies holding a shared lock, which is freed before its pid can
 * be reused. */
static void test_reap(void **state)
{
    pid_t a, b;
    (void)state;

    if ((a = fork()) == 0)
        _exit(3);
    if ((b = fork()) == 0) {
        cx_shm_lock(&cx_shm->ratelimit[5].lock);
        _exit(0);
    }
    child_t *ca = put(CX_KIND_WORKER, 0, 0, CH_RUNNING), *cb = put(CX_KIND_WORKER, 1, 0, CH_RUNNING);
    ca->pid = a;
    cb->pid = b;
    for (int i = 0; i < 200 && (ca->state == CH_RUNNING || cb->state == CH_RUNNING); i++) {
        usleep(10000);
        reap();
    }
    assert_int_equal(ca->state, CH_WAIT_RESPAWN);
    assert_int_equal(cb->state, CH_WAIT_RESPAWN);
    assert_int_equal(atomic_load(&cx_shm->ratelimit[5].lock.owner), 0);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* nothing left to reap */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sizes, table),
        cmocka_unit_test_setup(test_reload_room_many, table),
        cmocka_unit_test_setup(test_reload_room_conns, table),
        cmocka_unit_test_setup(test_exit_backoff, table),
        cmocka_unit_test_setup(test_exit_states, table),
        cmocka_unit_test_setup(test_respawn_old_generation, table),
        cmocka_unit_test_setup(test_reap, table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
