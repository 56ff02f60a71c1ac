/*
 * kinds.h -- the kinds of process of conduix-cp, in one table (OpenBSD httpd's procs[]): the function a
 * child runs, how many of it the configuration asks for, whether it is a pool renewed by generations on
 * reload or a singleton restarted, whether /ready needs it, and so how many shared-memory slots, child
 * table entries and MySQL connections it can take. The master (master.c), the shared segment (shm.c),
 * the configuration checks (config.c), /ready (api/health.c) and /metrics (api/metrics.c) all read it:
 * adding a kind is one row of CX_KINDS below and the file with its main function.
 */
#ifndef CONDUIX_KINDS_H
#define CONDUIX_KINDS_H

#include "conduix/config.h"

/* Flags of a kind. */
#define CX_KIND_POOL 0x1    /* instances per generation: a reload starts a new generation, then drains the old */
#define CX_KIND_LISTENS 0x2 /* keeps the listen socket (every other child closes it) */
#define CX_KIND_READY 0x4   /* /ready is 503 while no process of the kind runs */
#define CX_KIND_ONESHOT 0x8 /* runs once, alone, before the others start (migrations); never respawned */
#define CX_KIND_DB 0x10     /* holds one MySQL connection (counted against database.max_open_conns) */

/* Generations of a pool that run at once: the serving one and the one draining after a reload. */
#define CX_POOL_GENERATIONS 2

/* The rows: X(ID, name, main, count, max, flags), in the order the master starts them.
 *   main   int main(void): the child's life after the prologue (child.c); returns its exit code, where
 *          2 means fatal: the master does not respawn it and shuts down
 *   count  int count(const cx_config_t *): how many the master keeps running, or for a one-shot how many
 *          it runs before starting the others (NULL for the master itself)
 *   max    the most instances any valid configuration asks for (sizes the shared-memory segment) */
// clang-format off
#define CX_KINDS(X)                                                                                                           \
    X(MASTER,     "master",     NULL,              NULL,         1,              0)                                           \
    X(MIGRATE,    "migrate",    migrate_main,      auto_migrate, 1,              CX_KIND_ONESHOT | CX_KIND_DB)                \
    X(WORKER,     "worker",     worker_main,       workers,      CX_WORKERS_MAX, CX_KIND_POOL | CX_KIND_LISTENS | CX_KIND_DB) \
    X(SCHEDULER,  "scheduler",  cx_scheduler_run,  one,          1,              CX_KIND_READY | CX_KIND_DB)                  \
    X(HBMON,      "hbmon",      cx_hbmon_run,      one,          1,              CX_KIND_READY | CX_KIND_DB)                  \
    X(DISPATCHER, "dispatcher", cx_dispatcher_run, one,          1,              CX_KIND_READY | CX_KIND_DB)
// clang-format on

typedef enum {
#define CX_KIND_ENUM_(id, name, main, count, max, flags) CX_KIND_##id,
    CX_KINDS(CX_KIND_ENUM_)
#undef CX_KIND_ENUM_
        CX_KIND_MAX
} cx_kind_t;

typedef struct cx_kind_def {
    const char *name;
    int (*main)(void);
    int (*count)(const cx_config_t *cfg);
    int max;
    unsigned flags;
} cx_kind_def_t;

extern const cx_kind_def_t cx_kinds[CX_KIND_MAX];

/* cx_kind_name -- "worker", "hbmon" …; "unknown" out of range. */
const char *cx_kind_name(cx_kind_t kind);

/* cx_kind_count -- how many processes of the kind the master keeps running under cfg (for a one-shot:
 * runs once; 0 for the master itself). */
int cx_kind_count(cx_kind_t kind, const cx_config_t *cfg);

/* cx_kinds_slots -- shared-memory slots (and child-table entries, plus the master's) that the largest
 * valid configuration can use at once: every pool with CX_POOL_GENERATIONS generations of its maximum,
 * one slot for each other kind. */
int cx_kinds_slots(void);

/* cx_kinds_db_conns -- MySQL connections the kinds kept running under cfg hold at the peak of a reload
 * (pools counted CX_POOL_GENERATIONS times; one-shots run alone, before the others, so they do not add
 * up); pools_too 0 leaves the pools out. */
int cx_kinds_db_conns(const cx_config_t *cfg, int pools_too);

/* cx_kinds_idle_rank -- the place of a process in the order in which processes may keep an idle MySQL
 * connection open (database.max_idle_conns): the singletons first, in table order, then the pools by
 * index. A process whose rank is max_idle_conns or more closes its connection when idle. */
int cx_kinds_idle_rank(cx_kind_t kind, int index, const cx_config_t *cfg);

#endif
