/*
 * privdrop.h -- the master's switch from root to server.user, after it has opened what needs root (the
 * log, the pidfile, the listen socket) and before it forks any child.
 */
#ifndef CONDUIX_PRIVDROP_H
#define CONDUIX_PRIVDROP_H

#include "conduix/config.h"

/* cx_privdrop -- become cfg->server.user (its uid, primary group and supplementary groups). Nothing to
 * do when the key is empty or the process already runs as that user. CX_OK, or CX_ERR (logged) when the
 * user is unknown, when the process is neither root nor that user, or when a step fails. */
int cx_privdrop(const cx_config_t *cfg);

#endif
