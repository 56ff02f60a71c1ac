/*
 * pidfile.h -- the master's pidfile, locked with flock(2) for the master's whole life: a second master
 * started at the same moment finds it locked and exits without touching it, so two masters can never
 * delete or overwrite each other's pidfile. The descriptor is one children must not keep (child.c closes
 * it after fork), so the lock dies with the master and with nobody else.
 */
#ifndef CONDUIX_PIDFILE_H
#define CONDUIX_PIDFILE_H

#include <sys/types.h>

/* cx_pidfile_create -- create (or take over a stale) pidfile at path, lock it and write this process's
 * pid. Returns the locked descriptor; -1 after logging, with *holder set to the pid of the master that
 * holds the lock when that is the reason (0 otherwise). An empty path is no pidfile: returns -2. */
int cx_pidfile_create(const char *path, pid_t *holder);

/* cx_pidfile_remove -- unlink the pidfile and close fd, still holding the lock while unlinking. */
void cx_pidfile_remove(const char *path, int fd);

#endif
