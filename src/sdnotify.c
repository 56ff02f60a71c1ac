/*
 * sdnotify.c -- the sd_notify datagram, written by hand: one sendto() on an AF_UNIX socket, with
 * Linux's abstract namespace when the name starts with '@'. Not worth a dependency on libsystemd.
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

int cx_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t plen;
    int fd, rc = 1;

    if (path == NULL || path[0] == '\0')
        return 0;
    plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path)) {
        cx_log_warnx("NOTIFY_SOCKET %s is not a usable socket path", path);
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        cx_log_warn("socket for sd_notify");
        return -1;
    }
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen)) < 0) {
        cx_log_warn("sd_notify to %s", path);
        rc = -1;
    }
    close(fd);
    return rc;
}
