/*
 * proc.h -- the master (supervisor) and the child prologue every forked process runs.
 */
#ifndef CONDUIX_PROC_H
#define CONDUIX_PROC_H

#include <signal.h>
#include <sys/types.h>
#include "conduix/config.h"
#include "conduix/shm.h"

/* cx_master_run -- the master's life after the config is loaded: pidfile, listen socket, shared memory,
 * migrations, children, supervision. Returns the process exit code. */
int cx_master_run(const char *config_path, int daemonize);

/* cx_child_prologue -- in a freshly forked child: die with the master, reset signals, close what belongs
 * to the master, take the shared-memory slot, set the process title. */
void cx_child_prologue(cx_kind_t kind, int index, int slot);

/* cx_child_parent_fd -- fd is the master's alone (it stays open for the master's life): every child
 * closes it in its prologue. */
void cx_child_parent_fd(int fd);

/* cx_child_idle -- called by a child's loop about once a second: closes its MySQL connection after a
 * while unused when database.max_idle_conns does not let this process keep it, or when draining. */
void cx_child_idle(int draining);

/* cx_proc_set_title -- "conduix-cp: worker 0" in ps (overwrites argv). cx_proc_title_init must run first
 * in main with argc/argv. */
void cx_proc_title_init(int argc, char **argv);
void cx_proc_set_title(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Signals (signals.c): the master and each child block the signals they handle and read them from a
 * signalfd in their loop, so no handler runs in a signal context. */
int cx_signals_block(const int *sigs, int n, sigset_t *set);
int cx_signals_fd(const sigset_t *set);
void cx_signals_reset(void);

/* Single-purpose child loops, the main functions of the kinds table (kinds.h). Each returns the exit
 * code (0 clean, 2 fatal: do not respawn). */
int cx_scheduler_run(void);
int cx_hbmon_run(void);
int cx_dispatcher_run(void);

/* Flags the singleton loops poll (set from their signalfd). */
extern volatile sig_atomic_t cx_child_stop;

/* The master's pid as seen by its children (for getppid checks). */
extern pid_t cx_master_pid;
extern int cx_listen_fd;

#endif

#ifndef CONDUIX_PROC_LOOP
#define CONDUIX_PROC_LOOP
/* cx_child_loop -- the loop of a singleton child: signals from a signalfd (TERM/INT/QUIT stop, USR1
 * reopens the log), and tick(arg) every interval_ms (and once at start). tick returns 0 to go on, or an
 * exit code + 1 to leave the loop with that code. Returns the exit code. */
int cx_child_loop(int64_t interval_ms, int (*tick)(void *arg), void *arg);
/* cx_child_loop_fd -- the same, also calling on_fd(arg) when fd is readable (e.g. a Redis subscription);
 * fd -1 for none. */
int cx_child_loop_fd(int64_t interval_ms, int (*tick)(void *arg), int fd, int (*on_fd)(void *arg), void *arg);
#endif
