/*
 * child.c -- what every child does first after fork: die with the master (PR_SET_PDEATHSIG and a
 * getppid check for the race before it), reset signals, drop the master's pidfile duty, take its
 * shared-memory slot and set its title. Redis's closeChildUnusedResourceAfterFork, OpenBSD proc.c.
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
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/sdnotify.h"
#include "conduix/shm.h"

volatile sig_atomic_t cx_child_stop;

void cx_child_prologue(cx_kind_t kind, int index, int slot)
{
    static char procname[32];

    cx_signals_reset();
    cx_sd_notify_close(); /* only the master talks to the service manager */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        cx_log_warn("prctl(PR_SET_PDEATHSIG)");
    if (getppid() != cx_master_pid)
        _exit(0); /* the master died between fork and prctl */

    cx_shm_attach(slot);
    if (cx_shm_self != NULL) {
        cx_shm_self->kind = kind;
        cx_shm_self->index = index;
        cx_shm_self->started_ms = cx_wall_ms();
        cx_shm_self->up = 1;
        __atomic_store_n(&cx_shm_self->pid, getpid(), __ATOMIC_RELEASE);
    }
    if (kind == CX_KIND_WORKER) {
        snprintf(procname, sizeof(procname), "worker %d", index);
        cx_proc_set_title("conduix-cp: worker %d", index);
    } else {
        snprintf(procname, sizeof(procname), "%s", cx_kind_name(kind));
        cx_proc_set_title("conduix-cp: %s", cx_kind_name(kind));
    }
    cx_log_set_proc(procname);
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

        if (now >= next) {
            if ((rc = tick(arg)) != 0) {
                close(sfd);
                return rc - 1;
            }
            next = now + interval_ms;
            now = cx_now_ms();
        }
        wait = next > now ? next - now : 0;
        if (poll(pfd, fd >= 0 ? 2 : 1, (int)wait) < 0 && errno != EINTR)
            break;
        while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGQUIT)
                cx_child_stop = 1;
            else if (si.ssi_signo == SIGUSR1)
                cx_log_reopen();
        }
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
