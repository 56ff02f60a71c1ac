/*
 * sdnotify.h -- systemd's notify protocol (READY=1, RELOADING=1, STOPPING=1, STATUS=…) over the datagram
 * socket named by NOTIFY_SOCKET; a no-op when it is unset.
 */
#ifndef CONDUIX_SDNOTIFY_H
#define CONDUIX_SDNOTIFY_H

/* cx_sd_notify -- send state (e.g. "READY=1\nSTATUS=serving"); 1 sent, 0 no socket, -1 error. */
int cx_sd_notify(const char *state);

#endif
