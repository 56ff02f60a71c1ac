/*
 * master.c -- the supervisor. It loads nothing but the config, runs the one-shot children (migrations),
 * then keeps the children of every kind of the kinds table (kinds.h) running: it forks them, reaps
 * them, respawns them with backoff, and acts on signals read from a signalfd in a fixed order: reap,
 * terminate, quit, reconfigure, reopen (nginx ngx_master_process_cycle). It never touches MySQL, Redis
 * or a request, so it cannot hang on them.
 *
 * The child table has one entry per shared-memory slot, both sized from the kinds table for the largest
 * configuration. A reload starts a new generation of every pool next to the one that drains; if an
 * older generation still drains and the new one does not fit (slots, or database.max_open_conns), the
 * reload waits until it has exited, and a reload that could never fit is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conduix/api.h"
#include "conduix/backoff.h"
#include "conduix/cx.h"
#include "conduix/config.h"
#include "conduix/http.h"
#include "conduix/kinds.h"
#include "conduix/log.h"
#include "conduix/pidfile.h"
#include "conduix/privdrop.h"
#include "conduix/proc.h"
#include "conduix/sdnotify.h"
#include "conduix/shm.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define STABLE_UPTIME_MS 60000

pid_t cx_master_pid;
int cx_listen_fd = -1;

typedef enum { CH_FREE = 0, CH_RUNNING, CH_STOPPING, CH_RESTARTING, CH_WAIT_RESPAWN } ch_state_t;

typedef struct child {
    ch_state_t state;
    pid_t pid;
    cx_kind_t kind;
    int index;
    int generation;
    int slot;
    int64_t started_ms;
    int64_t respawn_at;
    cx_backoff_t backoff;
} child_t;

static child_t *children;
static int nchildren; /* entries of children[] */
static int generation;
static const char *cfg_path;
static int pid_fd = -1;
static cx_config_t *pending;  /* a loaded configuration waiting for room to start its generation */
static int pending_announced; /* the wait was logged */

static struct {
    int reap, terminate, quit, reconfigure, reopen;
} sig;

static int stopping; /* 1 after TERM/INT/QUIT or a fatal child */
static int64_t stop_deadline;
static int exit_code;

static int is_live(const child_t *c)
{
    return c->state == CH_RUNNING || c->state == CH_STOPPING || c->state == CH_RESTARTING;
}

static int is_pool(const child_t *c)
{
    return (cx_kinds[c->kind].flags & CX_KIND_POOL) != 0;
}

/* children_init -- the table, one entry per shared-memory slot but the master's. */
static void children_init(int n)
{
    free(children);
    children = cx_calloc((size_t)n, sizeof(*children));
    nchildren = n;
}

static child_t *child_new(cx_kind_t kind, int index)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i].state == CH_FREE) {
            memset(&children[i], 0, sizeof(children[i]));
            children[i].kind = kind;
            children[i].index = index;
            children[i].slot = -1;
            cx_backoff_init(&children[i].backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
            return &children[i];
        }
    /* reload_room() keeps this from happening; if it does anyway, say so loudly */
    cx_log_errorx("child table full (%d entries): %s %d not started", nchildren, cx_kind_name(kind), index);
    return NULL;
}

/* spawn -- fork one child for the record c; the child never returns from here. */
static int spawn(child_t *c)
{
    pid_t pid;

    c->generation = generation;
    c->slot = cx_shm_slot_alloc(c->kind, c->index);
    if (c->slot < 0)
        cx_log_warnx("no shared-memory slot left for %s %d: its metrics are not counted", cx_kind_name(c->kind), c->index);
    else {
        /* reserve the slot before fork so that the next allocation does not take it */
        cx_shm->slots[c->slot].pid = -1;
        cx_shm->slots[c->slot].kind = c->kind;
        cx_shm->slots[c->slot].index = c->index;
        cx_shm->slots[c->slot].generation = generation;
    }
    pid = fork();
    if (pid < 0) {
        cx_log_error("fork for %s %d", cx_kind_name(c->kind), c->index);
        cx_shm_slot_release(c->slot);
        c->slot = -1;
        c->state = CH_WAIT_RESPAWN;
        c->respawn_at = cx_now_ms() + cx_backoff_next(&c->backoff);
        return -1;
    }
    if (pid == 0) {
        cx_child_prologue(c->kind, c->index, c->slot);
        exit(cx_kinds[c->kind].main());
    }
    if (c->slot >= 0) {
        cx_shm->slots[c->slot].pid = pid;
        cx_shm->slots[c->slot].up = 1;
        cx_shm->slots[c->slot].started_ms = cx_wall_ms();
    }
    c->pid = pid;
    c->state = CH_RUNNING;
    c->started_ms = cx_now_ms();
    if (is_pool(c))
        cx_log_info("started %s %d (pid %d, generation %d)", cx_kind_name(c->kind), c->index, (int)pid, generation);
    else
        cx_log_info("started %s (pid %d)", cx_kind_name(c->kind), (int)pid);
    return 0;
}

static void start(cx_kind_t kind, int index)
{
    child_t *c = child_new(kind, index);
    if (c != NULL)
        spawn(c);
}

/* start_children -- every kind the master keeps running, in table order: a new generation of each pool,
 * and the instances of the other kinds that have no entry yet. */
static void start_children(void)
{
    for (int k = 0; k < CX_KIND_MAX; k++) {
        int n = cx_kinds[k].flags & CX_KIND_ONESHOT ? 0 : cx_kind_count((cx_kind_t)k, cx_cfg);
        for (int i = 0; i < n; i++) {
            int have = 0;
            for (int j = 0; j < nchildren && !(cx_kinds[k].flags & CX_KIND_POOL) && !have; j++)
                have = children[j].state != CH_FREE && children[j].kind == (cx_kind_t)k && children[j].index == i;
            if (!have)
                start((cx_kind_t)k, i);
        }
    }
}

static void signal_children(int signo, int (*match)(const child_t *))
{
    for (int i = 0; i < nchildren; i++) {
        child_t *c = &children[i];
        if (is_live(c) && c->pid > 0 && (match == NULL || match(c)))
            kill(c->pid, signo);
    }
}

static int live_children(void)
{
    int n = 0;
    for (int i = 0; i < nchildren; i++)
        n += is_live(&children[i]);
    return n;
}

static child_t *child_by_pid(pid_t pid)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i].pid == pid && children[i].state != CH_FREE && children[i].state != CH_WAIT_RESPAWN)
            return &children[i];
    return NULL;
}

static void begin_stop(int signo, const char *why)
{
    if (!stopping) {
        cx_log_info("stopping (%s)", why);
        cx_sd_notify("STOPPING=1");
    }
    stopping = 1;
    stop_deadline = cx_now_ms() + cx_cfg->server.shutdown_timeout_ms + 1000;
    for (int i = 0; i < nchildren; i++) {
        if (children[i].state == CH_WAIT_RESPAWN)
            children[i].state = CH_FREE;
        else if (children[i].state == CH_RUNNING || children[i].state == CH_RESTARTING)
            children[i].state = CH_STOPPING;
    }
    cx_config_free(pending);
    pending = NULL;
    signal_children(signo, NULL);
}

/* exited -- what the master does when child c has ended with status: forget it, respawn it now or
 * later, or (exit code 2) shut the whole server down. Logged once. */
static void exited(child_t *c, pid_t pid, int status)
{
    char how[64];
    int code = -1;

    if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
        snprintf(how, sizeof(how), "exited with code %d", code);
    } else if (WIFSIGNALED(status)) {
        snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        snprintf(how, sizeof(how), "ended with status %d", status);
    }
    if (c == NULL) {
        cx_log_info("unknown child pid %d %s", (int)pid, how);
        return;
    }
    cx_shm_slot_release(c->slot);
    c->slot = -1;
    c->pid = 0;
    if (c->state == CH_STOPPING) {
        cx_log_info("%s %d (pid %d, generation %d) %s", cx_kind_name(c->kind), c->index, (int)pid, c->generation, how);
        c->state = CH_FREE;
        return;
    }
    if (c->state == CH_RESTARTING) {
        cx_log_info("%s (pid %d) %s; starting it with the new configuration", cx_kind_name(c->kind), (int)pid, how);
        cx_backoff_reset(&c->backoff);
        spawn(c);
        return;
    }
    if (code == 2) {
        cx_log_errorx("%s %d (pid %d) %s: fatal, not respawning; shutting down", cx_kind_name(c->kind), c->index, (int)pid, how);
        c->state = CH_FREE;
        exit_code = 1;
        begin_stop(SIGTERM, "fatal child exit");
        return;
    }
    if (cx_now_ms() - c->started_ms >= STABLE_UPTIME_MS)
        cx_backoff_reset(&c->backoff);
    int64_t delay = cx_backoff_next(&c->backoff);
    cx_log_warnx("%s %d (pid %d) %s unexpectedly; respawning in %lld ms", cx_kind_name(c->kind), c->index, (int)pid, how,
                 (long long)delay);
    cx_shm_restart(c->kind);
    c->state = CH_WAIT_RESPAWN;
    c->respawn_at = cx_now_ms() + delay;
}

/* reap -- collect every exited child. Each is first looked at without being reaped (WNOWAIT): while it
 * is a zombie its pid cannot be given to a new process, so the shared-memory locks it died holding are
 * freed with no risk of freeing a newcomer's. */
static void reap(void)
{
    for (;;) {
        siginfo_t si;
        int status;
        pid_t pid;

        memset(&si, 0, sizeof(si));
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
            break;
        pid = si.si_pid;
        if (cx_shm_locks_release(pid) > 0)
            cx_log_warnx("pid %d died holding a shared-memory lock; released", (int)pid);
        if (waitpid(pid, &status, 0) != pid)
            break;
        exited(child_by_pid(pid), pid, status);
    }
}

static void respawn_due(int64_t now)
{
    for (int i = 0; i < nchildren; i++) {
        child_t *c = &children[i];
        if (c->state != CH_WAIT_RESPAWN || c->respawn_at > now)
            continue;
        /* a pool child of an older generation is not brought back: the new generation serves */
        if (is_pool(c) && c->generation != generation) {
            c->state = CH_FREE;
            continue;
        }
        spawn(c);
    }
}

static int is_old_pool(const child_t *c)
{
    return is_pool(c) && c->generation != generation;
}

/* reload_room -- can the generation of next start now? 1 yes; 0 not yet: an older generation still drains
 * and holds what the new one needs; -1 never: even with every older generation gone, the running
 * processes and the new generation would hold more MySQL connections than next allows (why says so). */
static int reload_room(const cx_config_t *next, char *why, size_t len)
{
    int entries = 0, conns = 0, draining = 0, fresh = 0;

    for (int i = 0; i < nchildren; i++) {
        const child_t *c = &children[i];
        if (c->state == CH_FREE || (c->state == CH_WAIT_RESPAWN && is_pool(c)))
            continue; /* pool entries waiting to respawn are dropped by the reload */
        entries++;
        conns += (cx_kinds[c->kind].flags & CX_KIND_DB) != 0;
        draining += is_old_pool(c);
    }
    for (int k = 0; k < CX_KIND_MAX; k++) {
        if (cx_kinds[k].flags & CX_KIND_ONESHOT)
            continue;
        /* a new generation of each pool; of the other kinds, only the instances the new count adds */
        int n = cx_kind_count((cx_kind_t)k, next);
        if (!(cx_kinds[k].flags & CX_KIND_POOL))
            n = n > cx_kind_count((cx_kind_t)k, cx_cfg) ? n - cx_kind_count((cx_kind_t)k, cx_cfg) : 0;
        fresh += n;
        if (cx_kinds[k].flags & CX_KIND_DB)
            conns += n;
    }
    entries += fresh;
    if (entries <= nchildren && conns <= next->database.max_open_conns)
        return 1;
    if (draining > 0)
        return 0;
    snprintf(why, len,
             "the %d running processes and %d new ones would hold %d MySQL connections during the switch, more "
             "than database.max_open_conns %d; restart the service to apply it",
             entries - fresh, fresh, conns, next->database.max_open_conns);
    return -1;
}

/* stop_child -- ask a running child to end (as TERM does), in the given state. */
static void stop_child(child_t *c, ch_state_t state)
{
    c->state = state;
    if (c->pid > 0)
        kill(c->pid, SIGTERM);
}

/* next_generation -- the child table for a new generation under cx_cfg: the pools' children become the
 * old generation (told to drain by the caller), the other kinds are restarted, or stopped when the
 * configuration wants fewer of them. */
static void next_generation(void)
{
    generation++;
    cx_shm->generation = generation;
    for (int i = 0; i < nchildren; i++) {
        child_t *c = &children[i];
        if (c->state == CH_FREE)
            continue;
        if (is_pool(c)) {
            if (c->state == CH_WAIT_RESPAWN)
                c->state = CH_FREE;
            else if (c->state == CH_RUNNING)
                c->state = CH_STOPPING;
        } else if (c->index >= cx_kind_count(c->kind, cx_cfg)) {
            if (c->state == CH_RUNNING)
                stop_child(c, CH_STOPPING);
            else if (c->state == CH_WAIT_RESPAWN)
                c->state = CH_FREE;
        } else if (c->state == CH_RUNNING) {
            stop_child(c, CH_RESTARTING); /* respawned with the new configuration when reaped */
        } else if (c->state == CH_WAIT_RESPAWN) {
            c->respawn_at = 0;
        }
    }
}

/* apply -- switch to next: a new generation of every pool on the same socket, the old one told to drain,
 * the other kinds restarted with the new configuration. */
static void apply(cx_config_t *next)
{
    if (cx_log_init(next->logging.level, next->logging.format, next->logging.file) != 0)
        cx_log_warn("reopening log %s", next->logging.file);
    cx_config_free(cx_cfg);
    cx_cfg = next;
    next_generation();
    start_children();
    signal_children(SIGQUIT, is_old_pool);
    cx_shm_count(CX_C_RELOADS, 1);
    cx_log_info("configuration reloaded: generation %d with %d workers", generation, cx_kind_count(CX_KIND_WORKER, cx_cfg));
    cx_sd_notify("READY=1\nSTATUS=serving");
}

/* try_pending -- apply the pending configuration if there is room for it, refuse it if there never will
 * be, or keep waiting. */
static void try_pending(void)
{
    char why[512];
    int rc;

    if (pending == NULL || stopping)
        return;
    rc = reload_room(pending, why, sizeof(why));
    if (rc > 0) {
        cx_config_t *next = pending;
        pending = NULL;
        apply(next);
    } else if (rc < 0) {
        cx_log_errorx("reload refused, keeping the running configuration: %s", why);
        cx_shm_count(CX_C_RELOAD_FAILURES, 1);
        cx_config_free(pending);
        pending = NULL;
        cx_sd_notify("READY=1\nSTATUS=reload refused: no room for the new generation");
    } else if (!pending_announced) {
        int draining = 0;
        for (int i = 0; i < nchildren; i++)
            draining += is_old_pool(&children[i]) && children[i].state != CH_FREE;
        cx_log_warnx("reload deferred: %d process(es) of an older generation still drain; the new generation starts when "
                     "they have exited",
                     draining);
        pending_announced = 1;
    }
}

/* reconfigure -- all-or-nothing reload: a config that does not load changes nothing; a good one becomes
 * the pending configuration (replacing one that was still waiting) and starts as soon as it fits. */
static void reconfigure(void)
{
    char err[1024];
    cx_config_t *next;

    cx_sd_notify("RELOADING=1");
    cx_log_info("reloading configuration from %s", cfg_path ? cfg_path : "(defaults and environment)");
    next = cx_config_load(cfg_path, err, sizeof(err));
    if (next == NULL) {
        cx_log_errorx("reload refused, keeping the running configuration: %s", err);
        cx_shm_count(CX_C_RELOAD_FAILURES, 1);
        cx_sd_notify(pending != NULL ? "STATUS=reload refused: invalid configuration"
                                     : "READY=1\nSTATUS=reload refused: invalid configuration");
        return;
    }
    cx_config_diff_restart(cx_cfg, next);
    cx_config_free(pending);
    pending = next;
    pending_announced = 0;
    try_pending();
}

/* run_oneshots -- every one-shot kind (migrations), one after the other, before anything else starts;
 * the master waits for each (still answering TERM). Any failure means no start. */
static int run_oneshots(int sfd)
{
    for (int k = 0; k < CX_KIND_MAX; k++) {
        child_t *c;
        int status;

        if (!(cx_kinds[k].flags & CX_KIND_ONESHOT) || cx_kind_count((cx_kind_t)k, cx_cfg) == 0)
            continue;
        if ((c = child_new((cx_kind_t)k, 0)) == NULL)
            return -1;
        spawn(c);
        for (;;) {
            struct pollfd pfd = {.fd = sfd, .events = POLLIN};
            pid_t pid = waitpid(c->pid, &status, WNOHANG);
            if (pid == c->pid)
                break;
            if (poll(&pfd, 1, 200) > 0) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) == sizeof(si))
                    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGQUIT) {
                        cx_log_info("stopping during %s", cx_kind_name((cx_kind_t)k));
                        kill(c->pid, SIGTERM);
                        waitpid(c->pid, &status, 0);
                        cx_shm_slot_release(c->slot);
                        c->state = CH_FREE;
                        return -1;
                    }
            }
        }
        cx_shm_slot_release(c->slot);
        c->state = CH_FREE;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            cx_log_errorx("%s failed; not starting", cx_kind_name((cx_kind_t)k));
            return -1;
        }
    }
    return 0;
}

static int64_t next_timeout(int64_t now)
{
    int64_t t = 1000;
    for (int i = 0; i < nchildren; i++)
        if (children[i].state == CH_WAIT_RESPAWN && children[i].respawn_at - now < t)
            t = children[i].respawn_at - now;
    if (stopping && stop_deadline - now < t)
        t = stop_deadline - now;
    return t < 0 ? 0 : t;
}

static void read_signals(int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            sig.reap = 1;
            break;
        case SIGTERM:
        case SIGINT:
            sig.terminate = 1;
            break;
        case SIGQUIT:
            sig.quit = 1;
            break;
        case SIGHUP:
            sig.reconfigure = 1;
            break;
        case SIGUSR1:
            sig.reopen = 1;
            break;
        }
    }
}

static int daemonize(void)
{
    pid_t pid = fork();
    int fd;
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        return -1;
    if ((fd = open("/dev/null", O_RDWR)) >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (cx_cfg->logging.file[0] != '\0')
            dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

/* announce_mode -- server.mode debug: say so, and list the routes (what a developer wants to see first). */
static void announce_mode(void)
{
    if (strcmp(cx_cfg->server.mode, "debug") != 0)
        return;
    cx_log_warnx("server.mode is debug: the log level defaults to debug and the routes are listed; use release in "
                 "production");
    for (size_t i = 0; i < cx_nroutes; i++)
        cx_log_info("route %-6s %s (%s)", cx_routes[i].method, cx_routes[i].pattern, cx_routes[i].name);
}

int cx_master_run(const char *config_path, int daemon_mode)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    sigset_t set;
    pid_t holder;
    int sfd;

    cfg_path = config_path;
    if (daemon_mode && daemonize() != 0) {
        cx_log_error("daemonize");
        return 1;
    }
    cx_master_pid = getpid();
    cx_log_set_proc("master");
    cx_proc_set_title("conduix-cp: master");
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail: a valid signal and disposition */
    if (cx_signals_block(sigs, (int)CX_ARRAY_SIZE(sigs), &set) != 0 || (sfd = cx_signals_fd(&set)) < 0)
        return 1;
    cx_child_parent_fd(sfd);
    if ((pid_fd = cx_pidfile_create(cx_cfg->server.pidfile, &holder)) == -1)
        return 1;
    cx_child_parent_fd(pid_fd);
    if ((cx_listen_fd = cx_listen_open(cx_cfg->server.host, cx_cfg->server.port)) < 0)
        goto fail;
    if (cx_privdrop(cx_cfg) != CX_OK) /* server.user: after the log, pidfile and socket, before any fork */
        goto fail;
    if (cx_shm_create(cx_kinds_slots()) != 0)
        goto fail;
    children_init(cx_shm->nslots - 1);
    cx_shm->generation = generation;
    announce_mode();
    if (run_oneshots(sfd) != 0)
        goto fail;

    start_children();
    cx_log_info("conduix-cp %s serving on %s:%d with %d workers (master pid %d)", CX_VERSION, cx_cfg->server.host,
                cx_cfg->server.port, cx_kind_count(CX_KIND_WORKER, cx_cfg), (int)getpid());
    cx_sd_notify("READY=1\nSTATUS=serving");

    for (;;) {
        int64_t now = cx_now_ms();
        struct pollfd pfd = {.fd = sfd, .events = POLLIN};

        if (poll(&pfd, 1, (int)next_timeout(now)) < 0 && errno != EINTR) {
            cx_log_error("poll");
            break;
        }
        read_signals(sfd);
        if (sig.reap) {
            sig.reap = 0;
            reap();
            try_pending();
        }
        if (sig.terminate) {
            sig.terminate = 0;
            begin_stop(SIGTERM, "SIGTERM");
        }
        if (sig.quit) {
            sig.quit = 0;
            begin_stop(SIGQUIT, "SIGQUIT, graceful");
        }
        if (sig.reconfigure) {
            sig.reconfigure = 0;
            if (!stopping)
                reconfigure();
        }
        if (sig.reopen) {
            sig.reopen = 0;
            cx_log_reopen();
            signal_children(SIGUSR1, NULL);
        }
        now = cx_now_ms();
        if (stopping) {
            if (live_children() == 0)
                break;
            if (now >= stop_deadline) {
                cx_log_warnx("children still running after shutdown_timeout: killing them");
                signal_children(SIGKILL, NULL);
                stop_deadline = now + 5000;
            }
        } else {
            respawn_due(now);
        }
    }
    close(cx_listen_fd);
    cx_pidfile_remove(cx_cfg->server.pidfile, pid_fd);
    cx_log_info("stopped");
    return exit_code;

fail:
    if (cx_listen_fd >= 0)
        close(cx_listen_fd);
    cx_pidfile_remove(cx_cfg->server.pidfile, pid_fd);
    return 1;
}
