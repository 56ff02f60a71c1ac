/*
 * pidfile.c -- the master's pidfile (pidfile.h).
 *
 * The lock is taken on the file itself, then the pid is written into it: readers (conduix-cp status,
 * start-stop-daemon, an init script) never see a second master's pid in it. A lock won on a file that
 * another master unlinked or replaced in the meantime is worthless, so after locking, the descriptor
 * and the path must still name the same inode, else we try again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conduix/log.h"
#include "conduix/pidfile.h"

#define ATTEMPTS 5

/* read_pid -- the pid written in fd, or 0. */
static pid_t read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long pid;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    pid = strtol(buf, NULL, 10);
    return pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
}

/* holder_pid -- the pid of the master holding the lock on fd. It writes its pid right after locking,
 * so a file still empty, or naming a process that is gone (a master killed with -9 left it), is read
 * again for a moment. 0 when none showed up. */
static pid_t holder_pid(int fd)
{
    for (int i = 0; i < 40; i++) {
        pid_t pid = read_pid(fd);
        struct timespec ts = {0, 5L * 1000 * 1000};
        if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM))
            return pid;
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* make_dir -- the pidfile's directory (one level), as /run/conduix-cp after a reboot. */
static int make_dir(const char *path)
{
    char dir[PATH_MAX];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        cx_log_error("mkdir %s for the pidfile", dir);
        return -1;
    }
    return 0;
}

int cx_pidfile_create(const char *path, pid_t *holder)
{
    char buf[32];
    struct stat fst, pst;
    int fd = -1, len;

    *holder = 0;
    if (path == NULL || path[0] == '\0')
        return -2;
    if (make_dir(path) != 0)
        return -1;
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
            cx_log_error("open pidfile %s", path);
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                *holder = holder_pid(fd);
                if (*holder > 0)
                    cx_log_errorx("another conduix-cp master is running (pid %d, pidfile %s locked); not starting", (int)*holder,
                                  path);
                else
                    cx_log_errorx("another conduix-cp master holds the pidfile %s locked; not starting", path);
            } else {
                cx_log_error("flock pidfile %s", path);
            }
            close(fd);
            return -1;
        }
        /* locked: is it still the file at path, or did its owner unlink it meanwhile? */
        if (fstat(fd, &fst) == 0 && stat(path, &pst) == 0 && fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        cx_log_errorx("pidfile %s keeps being replaced by another process; not starting", path);
        return -1;
    }
    /* the new pid over the start of the old text, then cut: a reader never sees an empty file */
    len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (pwrite(fd, buf, (size_t)len, 0) != len || ftruncate(fd, len) != 0) {
        cx_log_error("write pidfile %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

void cx_pidfile_remove(const char *path, int fd)
{
    struct stat fst, pst;

    if (fd < 0)
        return;
    /* only the file this lock is on: never one somebody else put at path since */
    if (path != NULL && path[0] != '\0' && fstat(fd, &fst) == 0 && stat(path, &pst) == 0 && fst.st_dev == pst.st_dev &&
        fst.st_ino == pst.st_ino && unlink(path) != 0 && errno != ENOENT)
        cx_log_warn("unlink pidfile %s", path);
    close(fd);
}
