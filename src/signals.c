/*
 * signals.c -- signals are blocked and read from a signalfd by the process's own loop, so nothing runs
 * in a signal context (the strict form of nginx's "the handler sets a flag, the loop acts").
 */
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>

#include "conduix/log.h"
#include "conduix/proc.h"

int cx_signals_block(const int *sigs, int n, sigset_t *set)
{
    int i;
    sigemptyset(set);
    for (i = 0; i < n; i++)
        sigaddset(set, sigs[i]);
    if (sigprocmask(SIG_BLOCK, set, NULL) != 0) {
        cx_log_error("sigprocmask");
        return -1;
    }
    return 0;
}

int cx_signals_fd(const sigset_t *set)
{
    int fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        cx_log_error("signalfd");
    return fd;
}

/* cx_signals_reset -- default dispositions and an empty mask, as a freshly exec'd process would have. */
void cx_signals_reset(void)
{
    static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM};
    struct sigaction sa;
    sigset_t none;
    size_t i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}
