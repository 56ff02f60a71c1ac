/*
 * master.c -- the supervisor. It loads nothing but the config, forks the children (a one-shot migrate
 * child, N HTTP workers, the scheduler, hbmon), reaps them, respawns them with backoff, and acts on
 * signals read from a signalfd in a fixed order: reap, terminate, quit, reconfigure, reopen (nginx
 * ngx_master_process_cycle). It never touches MySQL, Redis or a request, so it cannot hang on them.
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

#include "conduix/cx.h"
#include "conduix/config.h"
#include "conduix/db.h"
#include "conduix/http.h"
#include "conduix/log.h"
#include "conduix/privdrop.h"
#include "conduix/proc.h"
#include "conduix/sdnotify.h"
#include "conduix/shm.h"

#define MAX_CHILDREN 80
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
    int64_t backoff_ms;
} child_t;

static child_t children[MAX_CHILDREN];
static int generation;
static const char *cfg_path;
static int pidfile_written;

static struct {
    int reap, terminate, quit, reconfigure, reopen;
} sig;

static int stopping; /* 1 after TERM/INT/QUIT or a fatal child */
static int64_t stop_deadline;
static int exit_code;

/* ---- pidfile ---- */

static int pidfile_check_running(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    long pid;
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    pid = strtol(buf, NULL, 10);
    if (pid <= 1 || pid == getpid())
        return 0;
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
        return (int)pid;
    return 0;
}

static int pidfile_write(const char *path)
{
    char buf[32], tmp[PATH_MAX], dir[PATH_MAX];
    int fd, running;
    char *slash;

    if (path == NULL || path[0] == '\0')
        return 0;
    if ((running = pidfile_check_running(path)) > 0) {
        cx_log_errorx("another conduix-cp master is running (pid %d, pidfile %s)", running, path);
        return -1;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            cx_log_error("mkdir %s for the pidfile", dir);
            return -1;
        }
    }
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        cx_log_error("open pidfile %s", tmp);
        return -1;
    }
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (write(fd, buf, (size_t)len) != len || close(fd) != 0 || rename(tmp, path) != 0) {
        cx_log_error("write pidfile %s", path);
        unlink(tmp);
        return -1;
    }
    pidfile_written = 1;
    return 0;
}

static void pidfile_remove(void)
{
    if (pidfile_written && cx_cfg->server.pidfile[0] != '\0' && pidfile_check_running(cx_cfg->server.pidfile) == 0)
        unlink(cx_cfg->server.pidfile);
    pidfile_written = 0;
}

/* ---- children ---- */

static child_t *child_new(cx_kind_t kind, int index)
{
    int i;
    for (i = 0; i < MAX_CHILDREN; i++)
        if (children[i].state == CH_FREE) {
            memset(&children[i], 0, sizeof(children[i]));
            children[i].kind = kind;
            children[i].index = index;
            children[i].slot = -1;
            children[i].backoff_ms = BACKOFF_MIN_MS;
            return &children[i];
        }
    cx_log_errorx("child table full (%d)", MAX_CHILDREN);
    return NULL;
}

static int child_main(child_t *c)
{
    switch (c->kind) {
    case CX_KIND_WORKER:
        return cx_worker_run(cx_listen_fd, c->index);
    case CX_KIND_SCHEDULER:
        return cx_scheduler_run();
    case CX_KIND_HBMON:
        return cx_hbmon_run();
    case CX_KIND_DISPATCHER:
        return cx_dispatcher_run();
    case CX_KIND_MIGRATE:
        return cx_migrate_run(cx_cfg, cx_cfg->migrations.dir, 0) == CX_OK ? 0 : 2;
    default:
        return 2;
    }
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
        c->respawn_at = cx_now_ms() + c->backoff_ms;
        return -1;
    }
    if (pid == 0) {
        cx_child_prologue(c->kind, c->index, c->slot);
        if (c->kind != CX_KIND_WORKER) {
            close(cx_listen_fd);
            cx_listen_fd = -1;
        }
        exit(child_main(c));
    }
    if (c->slot >= 0) {
        cx_shm->slots[c->slot].pid = pid;
        cx_shm->slots[c->slot].up = 1;
        cx_shm->slots[c->slot].started_ms = cx_wall_ms();
    }
    c->pid = pid;
    c->state = CH_RUNNING;
    c->started_ms = cx_now_ms();
    if (c->kind == CX_KIND_WORKER)
        cx_log_info("started worker %d (pid %d, generation %d)", c->index, (int)pid, generation);
    else
        cx_log_info("started %s (pid %d)", cx_kind_name(c->kind), (int)pid);
    return 0;
}

static void start_workers(void)
{
    int i;
    for (i = 0; i < cx_cfg->server.workers_effective; i++) {
        child_t *c = child_new(CX_KIND_WORKER, i);
        if (c != NULL)
            spawn(c);
    }
}

static void start_singletons(void)
{
    child_t *c;
    if ((c = child_new(CX_KIND_SCHEDULER, 0)) != NULL)
        spawn(c);
    if ((c = child_new(CX_KIND_HBMON, 0)) != NULL)
        spawn(c);
    if ((c = child_new(CX_KIND_DISPATCHER, 0)) != NULL)
        spawn(c);
}

static void signal_children(int signo, int (*match)(const child_t *))
{
    int i;
    for (i = 0; i < MAX_CHILDREN; i++) {
        child_t *c = &children[i];
        if ((c->state == CH_RUNNING || c->state == CH_STOPPING || c->state == CH_RESTARTING) && c->pid > 0 &&
            (match == NULL || match(c)))
            kill(c->pid, signo);
    }
}

static int live_children(void)
{
    int i, n = 0;
    for (i = 0; i < MAX_CHILDREN; i++)
        if (children[i].state == CH_RUNNING || children[i].state == CH_STOPPING || children[i].state == CH_RESTARTING)
            n++;
    return n;
}

static child_t *child_by_pid(pid_t pid)
{
    int i;
    for (i = 0; i < MAX_CHILDREN; i++)
        if (children[i].pid == pid && children[i].state != CH_FREE && children[i].state != CH_WAIT_RESPAWN)
            return &children[i];
    return NULL;
}

static void begin_stop(int signo, const char *why)
{
    int i;
    if (!stopping) {
        cx_log_info("stopping (%s)", why);
        cx_sd_notify("STOPPING=1");
    }
    stopping = 1;
    stop_deadline = cx_now_ms() + cx_cfg->server.shutdown_timeout_ms + 1000;
    for (i = 0; i < MAX_CHILDREN; i++) {
        if (children[i].state == CH_WAIT_RESPAWN)
            children[i].state = CH_FREE;
        else if (children[i].state == CH_RUNNING || children[i].state == CH_RESTARTING)
            children[i].state = CH_STOPPING;
    }
    signal_children(signo, NULL);
}

/* reap -- collect every exited child; log it once, and decide: forget, respawn now, respawn later, or
 * (exit code 2) shut the whole server down. */
static void reap(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        child_t *c = child_by_pid(pid);
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
            continue;
        }
        cx_shm_slot_release(c->slot);
        c->slot = -1;
        c->pid = 0;
        if (c->state == CH_STOPPING) {
            cx_log_info("%s %d (pid %d, generation %d) %s", cx_kind_name(c->kind), c->index, (int)pid, c->generation, how);
            c->state = CH_FREE;
            continue;
        }
        if (c->state == CH_RESTARTING) {
            cx_log_info("%s (pid %d) %s; starting it with the new configuration", cx_kind_name(c->kind), (int)pid, how);
            c->backoff_ms = BACKOFF_MIN_MS;
            spawn(c);
            continue;
        }
        if (code == 2) {
            cx_log_errorx("%s %d (pid %d) %s: fatal, not respawning; shutting down", cx_kind_name(c->kind), c->index, (int)pid,
                          how);
            c->state = CH_FREE;
            exit_code = 1;
            begin_stop(SIGTERM, "fatal child exit");
            continue;
        }
        if (cx_now_ms() - c->started_ms >= STABLE_UPTIME_MS)
            c->backoff_ms = BACKOFF_MIN_MS;
        cx_log_warnx("%s %d (pid %d) %s unexpectedly; respawning in %lld ms", cx_kind_name(c->kind), c->index, (int)pid, how,
                     (long long)c->backoff_ms);
        cx_shm_count(c->kind == CX_KIND_WORKER      ? CX_C_CHILD_RESTARTS_WORKER
                     : c->kind == CX_KIND_SCHEDULER ? CX_C_CHILD_RESTARTS_SCHEDULER
                     : c->kind == CX_KIND_HBMON     ? CX_C_CHILD_RESTARTS_HBMON
                                                    : CX_C_CHILD_RESTARTS_DISPATCHER,
                     1);
        c->state = CH_WAIT_RESPAWN;
        c->respawn_at = cx_now_ms() + c->backoff_ms;
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    }
}

static void respawn_due(int64_t now)
{
    int i;
    for (i = 0; i < MAX_CHILDREN; i++) {
        child_t *c = &children[i];
        if (c->state != CH_WAIT_RESPAWN || c->respawn_at > now)
            continue;
        /* a worker of an older generation is not brought back: the new generation serves */
        if (c->kind == CX_KIND_WORKER && c->generation != generation) {
            c->state = CH_FREE;
            continue;
        }
        spawn(c);
    }
}

static int is_old_worker(const child_t *c)
{
    return c->kind == CX_KIND_WORKER && c->generation != generation;
}

/* reconfigure -- all-or-nothing reload: a config that does not load changes nothing; a good one starts a
 * new worker generation on the same socket, then drains the old one and restarts the singletons. */
static void reconfigure(void)
{
    char err[1024];
    cx_config_t *next;
    int i;

    cx_sd_notify("RELOADING=1");
    cx_log_info("reloading configuration from %s", cfg_path ? cfg_path : "(defaults and environment)");
    next = cx_config_load(cfg_path, err, sizeof(err));
    if (next == NULL) {
        cx_log_errorx("reload refused, keeping the running configuration: %s", err);
        cx_shm_count(CX_C_RELOAD_FAILURES, 1);
        cx_sd_notify("READY=1\nSTATUS=reload refused: invalid configuration");
        return;
    }
    cx_config_diff_restart(cx_cfg, next);
    if (cx_log_init(next->logging.level, next->logging.format, next->logging.file) != 0)
        cx_log_warn("reopening log %s", next->logging.file);
    cx_config_free(cx_cfg);
    cx_cfg = next;
    generation++;
    cx_shm->generation = generation;

    for (i = 0; i < MAX_CHILDREN; i++) {
        child_t *c = &children[i];
        if (c->kind == CX_KIND_WORKER && c->state == CH_WAIT_RESPAWN)
            c->state = CH_FREE;
        else if (c->kind == CX_KIND_WORKER && c->state == CH_RUNNING)
            c->state = CH_STOPPING;
    }
    start_workers();
    signal_children(SIGQUIT, is_old_worker);
    for (i = 0; i < MAX_CHILDREN; i++) {
        child_t *c = &children[i];
        if (c->kind == CX_KIND_SCHEDULER || c->kind == CX_KIND_HBMON || c->kind == CX_KIND_DISPATCHER) {
            if (c->state == CH_RUNNING) {
                c->state = CH_RESTARTING;
                kill(c->pid, SIGTERM);
            } else if (c->state == CH_WAIT_RESPAWN) {
                c->respawn_at = 0;
            }
        }
    }
    cx_shm_count(CX_C_RELOADS, 1);
    cx_log_info("configuration reloaded: generation %d with %d workers", generation, cx_cfg->server.workers_effective);
    cx_sd_notify("READY=1\nSTATUS=serving");
}

/* run_migrations -- the one-shot migrate child; the master waits for it (still answering TERM). */
static int run_migrations(int sfd)
{
    child_t *c = child_new(CX_KIND_MIGRATE, 0);
    int status;

    if (c == NULL)
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
                    cx_log_info("stopping during migrations");
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
        cx_log_errorx("migrations failed; not starting");
        return -1;
    }
    return 0;
}

static int64_t next_timeout(int64_t now)
{
    int64_t t = 1000;
    int i;
    for (i = 0; i < MAX_CHILDREN; i++)
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

int cx_master_run(const char *config_path, int daemon_mode)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    sigset_t set;
    int sfd;

    cfg_path = config_path;
    if (daemon_mode && daemonize() != 0) {
        cx_log_error("daemonize");
        return 1;
    }
    cx_master_pid = getpid();
    cx_log_set_proc("master");
    cx_proc_set_title("conduix-cp: master");
    signal(SIGPIPE, SIG_IGN);
    if (cx_signals_block(sigs, (int)CX_ARRAY_SIZE(sigs), &set) != 0 || (sfd = cx_signals_fd(&set)) < 0)
        return 1;
    if (pidfile_write(cx_cfg->server.pidfile) != 0)
        return 1;
    if ((cx_listen_fd = cx_listen_open(cx_cfg->server.host, cx_cfg->server.port)) < 0)
        goto fail;
    if (cx_privdrop(cx_cfg) != CX_OK) /* server.user: after the log, pidfile and socket, before any fork */
        goto fail;
    if (cx_shm_create() != 0)
        goto fail;
    cx_shm->generation = generation;
    if (cx_cfg->migrations.auto_run && run_migrations(sfd) != 0)
        goto fail;

    start_workers();
    start_singletons();
    cx_log_info("conduix-cp %s serving on %s:%d with %d workers (master pid %d)", CX_VERSION, cx_cfg->server.host,
                cx_cfg->server.port, cx_cfg->server.workers_effective, (int)getpid());
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
    pidfile_remove();
    cx_log_info("stopped");
    return exit_code;

fail:
    if (cx_listen_fd >= 0)
        close(cx_listen_fd);
    pidfile_remove();
    return 1;
}
