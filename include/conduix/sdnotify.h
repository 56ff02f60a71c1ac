/*
 * sdnotify.h -- systemd's notify protocol (READY=1, RELOADING=1, STOPPING=1, STATUS=…) over the datagram
 * socket named by NOTIFY_SOCKET; a no-op when it is unset.
 */
#ifndef CONDUIX_SDNOTIFY_H
#define CONDUIX_SDNOTIFY_H

/* cx_sd_notify -- send state (e.g. "READY=1\nSTATUS=serving"); 1 sent, 0 no socket, -1 error. */
int cx_sd_notify(const char *state);

/* cx_sd_notify_keep -- connect to NOTIFY_SOCKET now and send every later message through that
 * connection, so that messages still arrive after the process has given up the rights to reach the
 * socket (the privilege drop). 1 connected, 0 no socket, -1 error (logged). */
int cx_sd_notify_keep(void);

/* cx_sd_notify_close -- forget the kept connection (a child after fork: only the master notifies). */
void cx_sd_notify_close(void);

#endif
