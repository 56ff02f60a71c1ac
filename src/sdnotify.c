/*
 * sdnotify.c -- the sd_notify datagram, written by hand: one send on an AF_UNIX socket, with Linux's
 * abstract namespace when the name starts with '@'. Not worth a dependency on libsystemd.
 *
 * Normally each message opens a socket and sends with sendto(). A master that is about to give up root
 * (server.user) first calls cx_sd_notify_keep(): the socket is connected while it may still reach a
 * NOTIFY_SOCKET that only root may write (start-stop-daemon --notify-await makes one under /run), and
 * every later message goes through that connection.
 *
 * start-stop-daemon --notify-await listens only until READY=1 and then removes its socket: when the
 * socket is gone (ECONNREFUSED, ENOENT) that is said once and nothing more is sent.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conduix/log.h"
#include "conduix/sdnotify.h"

static int kept_fd = -1;
static int gone; /* the listener went away: send nothing more */

/* sent -- the outcome of one send: 1, or -1 after logging (once, when the listener is gone). */
static int sent(ssize_t n)
{
    if (n >= 0)
        return 1;
    if (errno == ECONNREFUSED || errno == ENOENT) {
        cx_log_info("NOTIFY_SOCKET %s is gone (%s): no more service manager notifications", getenv("NOTIFY_SOCKET"),
                    strerror(errno));
        gone = 1;
        cx_sd_notify_close();
        return -1;
    }
    cx_log_warn("sd_notify to %s", getenv("NOTIFY_SOCKET"));
    return -1;
}

/* notify_addr -- NOTIFY_SOCKET as an address; 1 ok, 0 unset, -1 unusable (logged). */
static int notify_addr(struct sockaddr_un *sa, socklen_t *salen)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t plen;

    if (path == NULL || path[0] == '\0')
        return 0;
    plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa->sun_path)) {
        cx_log_warnx("NOTIFY_SOCKET %s is not a usable socket path", path);
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, plen);
    if (path[0] == '@')
        sa->sun_path[0] = '\0';
    *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    return 1;
}

int cx_sd_notify_keep(void)
{
    struct sockaddr_un sa;
    socklen_t salen;
    int rc, fd;

    if (kept_fd >= 0 || (rc = notify_addr(&sa, &salen)) <= 0)
        return kept_fd >= 0 ? 1 : rc;
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        cx_log_warn("socket for sd_notify");
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, salen) != 0) {
        cx_log_warn("connect to NOTIFY_SOCKET %s", getenv("NOTIFY_SOCKET"));
        close(fd);
        return -1;
    }
    kept_fd = fd;
    return 1;
}

void cx_sd_notify_close(void)
{
    if (kept_fd >= 0)
        close(kept_fd);
    kept_fd = -1;
}

int cx_sd_notify(const char *state)
{
    struct sockaddr_un sa;
    socklen_t salen;
    int fd, rc;

    if (gone)
        return 0;
    if (kept_fd >= 0)
        return sent(send(kept_fd, state, strlen(state), MSG_NOSIGNAL));
    if ((rc = notify_addr(&sa, &salen)) <= 0)
        return rc;
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        cx_log_warn("socket for sd_notify");
        return -1;
    }
    rc = sent(sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen));
    close(fd);
    return rc;
}
