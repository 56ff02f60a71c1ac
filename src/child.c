/*
 * child.c -- what every child does first after fork: die with the master (PR_SET_PDEATHSIG and a
 * getppid check for the race before it), reset signals, close the descriptors that are the master's
 * alone (its signalfd, the locked pidfile, the listen socket for a kind that does not serve), take its
 * shared-memory slot and set its title. Redis's closeChildUnusedResourceAfterFork, OpenBSD proc.c: there
 * is no exec, so close-on-exec does not help.
 *
 * Also the loop of the singleton children, and the database.max_idle_conns rule every child follows.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/kinds.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/sdnotify.h"
#include "conduix/shm.h"

#define MAX_PARENT_FDS 16
#define IDLE_CLOSE_MS 2000 /* a connection unused this long counts as idle (database.max_idle_conns) */

volatile sig_atomic_t cx_child_stop;

static int parent_fds[MAX_PARENT_FDS];
static int nparent_fds;
static int keep_idle = 1; /* may this process keep an idle MySQL connection open? */

void cx_child_parent_fd(int fd)
{
    if (fd < 0)
        return;
    for (int i = 0; i < nparent_fds; i++)
        if (parent_fds[i] == fd)
            return;
    if (nparent_fds == MAX_PARENT_FDS) {
        cx_log_errorx("too many parent-only descriptors; fd %d stays open in children", fd); /* a programming error */
        return;
    }
    parent_fds[nparent_fds++] = fd;
}

void cx_child_prologue(cx_kind_t kind, int index, int slot)
{
    static char procname[32];

    cx_signals_reset();
    cx_sd_notify_close(); /* only the master talks to the service manager */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        cx_log_warn("prctl(PR_SET_PDEATHSIG)");
    if (getppid() != cx_master_pid)
        _exit(0); /* the master died between fork and prctl */

    for (int i = 0; i < nparent_fds; i++)
        close(parent_fds[i]);
    nparent_fds = 0;
    if (!(cx_kinds[kind].flags & CX_KIND_LISTENS) && cx_listen_fd >= 0) {
        close(cx_listen_fd);
        cx_listen_fd = -1;
    }
    keep_idle = cx_kinds_idle_rank(kind, index, cx_cfg) < cx_cfg->database.max_idle_conns;

    cx_shm_attach(slot);
    if (cx_shm_self != NULL) {
        cx_shm_self->kind = kind;
        cx_shm_self->index = index;
        cx_shm_self->started_ms = cx_wall_ms();
        cx_shm_self->up = 1;
        __atomic_store_n(&cx_shm_self->pid, getpid(), __ATOMIC_RELEASE);
    }
    if (cx_kinds[kind].flags & CX_KIND_POOL) {
        snprintf(procname, sizeof(procname), "%s %d", cx_kind_name(kind), index);
        cx_proc_set_title("conduix-cp: %s %d", cx_kind_name(kind), index);
    } else {
        snprintf(procname, sizeof(procname), "%s", cx_kind_name(kind));
        cx_proc_set_title("conduix-cp: %s", cx_kind_name(kind));
    }
    cx_log_set_proc(procname);
}

void cx_child_idle(int draining)
{
    if (!keep_idle || draining)
        cx_db_close_idle(IDLE_CLOSE_MS);
}

int cx_child_loop_fd(int64_t interval_ms, int (*tick)(void *arg), int fd, int (*on_fd)(void *arg), void *arg)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    sigset_t set;
    int sfd, rc;
    int64_t next = 0;

    if (cx_signals_block(sigs, (int)CX_ARRAY_SIZE(sigs), &set) != 0 || (sfd = cx_signals_fd(&set)) < 0)
        return 1;
    while (!cx_child_stop) {
        int64_t now = cx_now_ms(), wait;
        struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
        struct signalfd_siginfo si;

        int64_t probe = cx_db_probe(); /* the MySQL reconnect after an outage, never inside a tick's calls */

        if (now >= next) {
            if ((rc = tick(arg)) != 0) {
                close(sfd);
                return rc - 1;
            }
            next = now + interval_ms;
            now = cx_now_ms();
        }
        wait = next > now ? next - now : 0;
        if (probe >= 0 && probe < wait)
            wait = probe;
        if (poll(pfd, fd >= 0 ? 2 : 1, (int)wait) < 0 && errno != EINTR)
            break;
        while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGQUIT)
                cx_child_stop = 1;
            else if (si.ssi_signo == SIGUSR1)
                cx_log_reopen();
        }
        cx_child_idle(0);
        if (!cx_child_stop && fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && on_fd != NULL) {
            if ((rc = on_fd(arg)) != 0) {
                close(sfd);
                return rc - 1;
            }
        }
    }
    close(sfd);
    return 0;
}

int cx_child_loop(int64_t interval_ms, int (*tick)(void *arg), void *arg)
{
    return cx_child_loop_fd(interval_ms, tick, -1, NULL, arg);
}
