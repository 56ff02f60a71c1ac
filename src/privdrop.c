/*
 * privdrop.c -- give up root for server.user (OpenBSD httpd's proc.c, nginx's worker user; here the
 * master itself switches, before fork, so that no process of the server keeps root). Run as root by an
 * init script, the master opens its log file, writes its pidfile and binds the socket, then comes here.
 * Under systemd (User=) and in the container the process already is that user, and nothing happens.
 *
 * What the master keeps using after the switch is handed over first: the log file is chowned to the
 * user (a reload or SIGUSR1 reopens it by name), and the sd_notify socket is connected while it is
 * still reachable (start-stop-daemon --notify-await creates it root-only under /run).
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/privdrop.h"
#include "conduix/sdnotify.h"

/* pidfile_dir_check -- warn when the user will not be able to remove the pidfile at exit. */
static void pidfile_dir_check(const char *pidfile, const struct passwd *pw)
{
    char dir[PATH_MAX];
    char *slash;
    struct stat st;

    if (pidfile[0] == '\0' || strlen(pidfile) >= sizeof(dir))
        return;
    memcpy(dir, pidfile, strlen(pidfile) + 1);
    if ((slash = strrchr(dir, '/')) == NULL)
        return;
    *(slash == dir ? slash + 1 : slash) = '\0';
    if (stat(dir, &st) == 0 && st.st_uid != pw->pw_uid && !(st.st_mode & S_IWOTH) &&
        !(st.st_gid == pw->pw_gid && (st.st_mode & S_IWGRP)))
        cx_log_warnx("server.user %s cannot write %s: the pidfile %s will be left behind at exit (make the directory "
                     "owned by %s)",
                     pw->pw_name, dir, pidfile, pw->pw_name);
}

int cx_privdrop(const cx_config_t *cfg)
{
    const char *user = cfg->server.user;
    struct passwd *pw;

    if (user == NULL || user[0] == '\0')
        return CX_OK;
    errno = 0;
    if ((pw = getpwnam(user)) == NULL) {
        cx_log_errorx("server.user: no such user \"%s\"", user);
        return CX_ERR;
    }
    if (geteuid() == pw->pw_uid && getuid() == pw->pw_uid)
        return CX_OK;
    if (geteuid() != 0) {
        cx_log_errorx("server.user is \"%s\" but the server runs as uid %d, not root: it cannot switch users", user,
                      (int)geteuid());
        return CX_ERR;
    }

    if (cfg->logging.file[0] != '\0' && chown(cfg->logging.file, pw->pw_uid, pw->pw_gid) != 0)
        cx_log_warn("chown %s to %s", cfg->logging.file, user);
    pidfile_dir_check(cfg->server.pidfile, pw);
    if (cx_sd_notify_keep() < 0)
        return CX_ERR;

    if (initgroups(pw->pw_name, pw->pw_gid) != 0) {
        cx_log_error("initgroups(%s)", user);
        return CX_ERR;
    }
    if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0) {
        cx_log_error("setresgid(%d)", (int)pw->pw_gid);
        return CX_ERR;
    }
    if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0) {
        cx_log_error("setresuid(%d)", (int)pw->pw_uid);
        return CX_ERR;
    }
    /* the switch must be one way */
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        cx_log_errorx("still able to become root after switching to %s", user);
        return CX_ERR;
    }
    cx_log_info("running as user %s (uid %d, gid %d)", user, (int)pw->pw_uid, (int)pw->pw_gid);
    return CX_OK;
}
