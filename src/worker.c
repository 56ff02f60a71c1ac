/*
 * worker.c -- an HTTP worker: the h2o event loop on the listen socket inherited from the master, its
 * own MySQL and Redis connections, and signals from a signalfd on the loop. SIGQUIT (reload, graceful
 * stop) and SIGTERM/SIGINT (stop) both stop accepting and let every connection end (a request whose body
 * is still arriving is read and answered), bounded by server.shutdown_timeout: systemd stops services
 * with SIGTERM, and a stop must not cut a request in flight.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "conduix/api.h"
#include "conduix/authz.h"
#include "conduix/client.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/http.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/redis.h"
#include "conduix/shm.h"

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
static h2o_socket_t *listener;
static h2o_socket_t *sigsock; /* the signalfd on the loop, for the process's life */
static h2o_timeout_entry_t accept_pause;
static h2o_timeout_t yield_timeout; /* a busier worker looks at the listen socket again after this */
static int draining;                /* 1 after SIGQUIT/SIGTERM: no more accepts, waiting for connections to end */
static int64_t drain_deadline;

static void on_accept(h2o_socket_t *l, const char *err);

/* batch_policy -- a worker runs under SCHED_BATCH when it was started under the default SCHED_OTHER
 * (any other policy it inherits, from chrt or a unit's CPUSchedulingPolicy=, is the operator's and
 * stays). A batch task woken by the kernel does not preempt the task running on its core: with more
 * workers than cores and the clients on the same cores, every answer written woke a client that took
 * the core from the worker, and every request read woke a worker that took it back, 0.38-0.43 switches
 * between processes a request on /health with 4 workers on 2 cores, 0.11 under SCHED_BATCH (what h2o's
 * threads do); a worker still gets its fair share of the CPU, preempted at the tick instead
 * (bench/README.md). An idle core runs a woken worker at once, as before. */
static void batch_policy(void)
{
    struct sched_param sp = {.sched_priority = 0};
    int policy = sched_getscheduler(0);

    if (policy == SCHED_OTHER && sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
        cx_log_debug("worker keeps SCHED_OTHER: sched_setscheduler(SCHED_BATCH): %s", strerror(errno));
}

static void on_accept_resume(h2o_timeout_entry_t *e)
{
    (void)e;
    if (listener != NULL)
        h2o_socket_read_start(listener, on_accept);
}

/* busier -- does this worker hold more connections than another worker of its generation that is
 * serving (its loop turned within LIVE_MS: one stuck in a long call is not waited for) by more than
 * one? The listen socket is shared and every idle worker is woken by a new connection; whoever woke
 * first took them (h2o's example takes up to 16 a wake-up): wrk's 64 connections were seen spread 40,
 * 10, 7 and 7, and 64 and 0, over four workers, and the loaded ones made the long tail of every
 * latency and left a core idle. A busier worker leaves the connection to the others. */
#define LIVE_MS 50
static int busier(void)
{
    int mine = cx_conn_count();
    int64_t now = cx_now_ms();

    if (cx_shm == NULL || cx_shm_self == NULL || mine == 0)
        return 0;
    for (int i = 1; i < cx_shm->nused; i++) {
        const cx_shm_slot_t *o = &cx_shm->slots[i];
        if (o != cx_shm_self && o->pid > 0 && o->kind == CX_KIND_WORKER && o->generation == cx_shm_self->generation &&
            o->accepting && now - o->loop_ms < LIVE_MS && o->conns + 1 < mine)
            return 1;
    }
    return 0;
}

/* on_accept -- take the waiting connections, unless another worker should (busier): then stop
 * looking at the listen socket for a moment, which would otherwise wake this worker again at once. */
static void on_accept(h2o_socket_t *l, const char *err)
{
    static int64_t last_warn;
    int i;
    if (err != NULL)
        return;
    for (i = 0; i < 16; i++) {
        if (busier()) {
            h2o_socket_read_stop(l);
            h2o_timeout_link(ctx.loop, &yield_timeout, &accept_pause);
            return;
        }
        errno = 0;
        h2o_socket_t *s = h2o_evloop_socket_accept(l);
        if (s == NULL) {
            if (errno == EMFILE || errno == ENFILE) {
                /* out of descriptors: the listen socket stays readable, so stop looking at it for a
                 * moment instead of spinning; the waiting connections stay in the backlog */
                if (cx_now_ms() - last_warn > 10000) {
                    cx_log_warn("accept: pausing for 100 ms with %d connections open", cx_conn_count());
                    last_warn = cx_now_ms();
                }
                h2o_socket_read_stop(l);
                h2o_timeout_link(ctx.loop, &ctx.hundred_ms_timeout, &accept_pause);
            }
            return;
        }
        cx_conn_accept(&accept_ctx, s);
    }
}

static void stop_accepting(void)
{
    if (!draining) {
        drain_deadline = cx_now_ms() + cx_cfg->server.shutdown_timeout_ms;
        draining = 1;
    }
    if (h2o_timeout_is_linked(&accept_pause))
        h2o_timeout_unlink(&accept_pause);
    if (cx_shm_self != NULL)
        cx_shm_self->accepting = 0;
    if (listener != NULL) {
        h2o_socket_read_stop(listener);
        h2o_socket_close(listener);
        listener = NULL;
        h2o_context_request_shutdown(&ctx);
    }
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
    struct signalfd_siginfo si;
    int fd = h2o_socket_get_fd(sock);
    (void)err;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGQUIT:
        case SIGTERM:
        case SIGINT:
            stop_accepting();
            break;
        case SIGUSR1:
            cx_log_reopen();
            break;
        default:
            break;
        }
    }
}

int cx_worker_run(int listen_fd)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    sigset_t set;
    int sfd;

    if (cx_signals_block(sigs, (int)CX_ARRAY_SIZE(sigs), &set) != 0 || (sfd = cx_signals_fd(&set)) < 0)
        return 1;
    batch_policy();
    cx_server_init(&config, cx_routes, cx_nroutes, cx_authz_request);
    h2o_context_init(&ctx, h2o_evloop_create(), &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    accept_pause.cb = on_accept_resume;
    h2o_timeout_init(ctx.loop, &yield_timeout, 2);
    cx_conn_init(&ctx);
    sigsock = h2o_evloop_socket_create(ctx.loop, sfd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(sigsock, on_signal);

    cx_db_set_call_timeout(cx_cfg->database.query_timeout_ms); /* a request waits no longer for MySQL */
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    if (cx_client_init(ctx.loop) != CX_OK) /* outbound calls to identity providers */
        return 1;

    listener = h2o_evloop_socket_create(ctx.loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
    if (cx_shm_self != NULL)
        cx_shm_self->accepting = 1;
    cx_log_buffer_start(); /* the access log goes out in blocks (log.c) */

    /* The loop wakes at least once a second for cx_child_idle (database.max_idle_conns), as often as a
     * MySQL probe in flight wants (cx_db_probe: the reconnect after an outage, never inside a request),
     * and when buffered access-log lines are due. */
    while (!draining || (cx_conn_count() > 0 && cx_now_ms() < drain_deadline)) {
        int64_t wait = draining ? 50 : 1000, probe = cx_db_probe(), flush = cx_log_flush_in();
        if (probe >= 0 && probe < wait)
            wait = probe;
        if (flush >= 0 && flush < wait)
            wait = flush;
        if (cx_shm_self != NULL)
            cx_shm_self->loop_ms = cx_now_ms();
        h2o_evloop_run(ctx.loop, (int32_t)wait);
        cx_log_flush_due();
        cx_child_idle(draining);
    }
    if (cx_conn_count() > 0)
        cx_log_info("exiting with %d connection(s) still open", cx_conn_count());
    cx_db_close();
    cx_redis_close();
    cx_log_flush();
    /* the signalfd's socket, closed as the listener was: the loop holds both until it frees them */
    h2o_socket_read_stop(sigsock);
    h2o_socket_close(sigsock);
    return 0;
}
