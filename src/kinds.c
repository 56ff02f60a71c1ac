/*
 * kinds.c -- the table of process kinds (kinds.h) and what is computed from it.
 */
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/http.h"
#include "conduix/kinds.h"
#include "conduix/proc.h"

/* worker_main -- an HTTP worker on the listen socket the master opened. */
static int worker_main(void)
{
    return cx_worker_run(cx_listen_fd);
}

/* migrate_main -- the one-shot migrations child; any failure is fatal (exit 2): the master must not
 * start serving on a schema it could not bring up to date. */
static int migrate_main(void)
{
    return cx_migrate_run(cx_cfg, cx_cfg->migrations.dir, 0) == CX_OK ? 0 : 2;
}

static int one(const cx_config_t *cfg)
{
    (void)cfg;
    return 1;
}

static int workers(const cx_config_t *cfg)
{
    return cfg->server.workers_effective;
}

static int auto_migrate(const cx_config_t *cfg)
{
    return cfg->migrations.auto_run ? 1 : 0;
}

const cx_kind_def_t cx_kinds[CX_KIND_MAX] = {
#define CX_KIND_ROW_(id, name, main, count, max, flags) [CX_KIND_##id] = {name, main, count, max, flags},
    CX_KINDS(CX_KIND_ROW_)
#undef CX_KIND_ROW_
};

const char *cx_kind_name(cx_kind_t kind)
{
    return (unsigned)kind < CX_KIND_MAX ? cx_kinds[kind].name : "unknown";
}

int cx_kind_count(cx_kind_t kind, const cx_config_t *cfg)
{
    if ((unsigned)kind >= CX_KIND_MAX || cx_kinds[kind].count == NULL)
        return 0;
    return cx_kinds[kind].count(cfg);
}

int cx_kinds_slots(void)
{
    int n = 0;
    for (int k = 0; k < CX_KIND_MAX; k++)
        n += cx_kinds[k].max * (cx_kinds[k].flags & CX_KIND_POOL ? CX_POOL_GENERATIONS : 1);
    return n;
}

int cx_kinds_db_conns(const cx_config_t *cfg, int pools_too)
{
    int n = 0;
    for (int k = 0; k < CX_KIND_MAX; k++) {
        if (!(cx_kinds[k].flags & CX_KIND_DB) || (cx_kinds[k].flags & CX_KIND_ONESHOT) ||
            ((cx_kinds[k].flags & CX_KIND_POOL) && !pools_too))
            continue;
        n += cx_kind_count((cx_kind_t)k, cfg) * (cx_kinds[k].flags & CX_KIND_POOL ? CX_POOL_GENERATIONS : 1);
    }
    return n;
}

int cx_kinds_idle_rank(cx_kind_t kind, int index, const cx_config_t *cfg)
{
    int rank = 0;
    for (int pools = 0; pools <= 1; pools++)
        for (int k = 0; k < CX_KIND_MAX; k++) {
            if (!(cx_kinds[k].flags & CX_KIND_DB) || (cx_kinds[k].flags & CX_KIND_ONESHOT) ||
                !(cx_kinds[k].flags & CX_KIND_POOL) != !pools)
                continue;
            if (k == (int)kind)
                return rank + index;
            rank += cx_kind_count((cx_kind_t)k, cfg);
        }
    return rank + index; /* a kind without a connection of its own */
}
