/*
 * ctl.h -- the command-line verbs that do not serve: reload, stop, status (through the master's
 * pidfile), check-config, token, migrate.
 */
#ifndef CONDUIX_CTL_H
#define CONDUIX_CTL_H

#include "conduix/config.h"

int cx_ctl_signal(const cx_config_t *cfg, const char *verb, int graceful); /* reload | stop */
int cx_ctl_status(const cx_config_t *cfg);
int cx_ctl_token(const cx_config_t *cfg, const char *role, const char *sub, const char *email, const char *name, const char *ttl);

#endif
