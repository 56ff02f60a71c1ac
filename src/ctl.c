/*
 * ctl.c -- `conduix-cp reload|stop|status|token`: find the master through its pidfile and signal it, or
 * mint a token with the configured secret (and record its jti in the sessions table). Exit codes follow LSB for status (0 running,
 * 3 not).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conduix/ctl.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/jwt.h"
#include "conduix/users.h"

/* master_pid -- the pid in the pidfile when that process is alive, else 0. */
static pid_t master_pid(const cx_config_t *cfg)
{
    FILE *f;
    char line[32], *end;
    long pid = 0;
    if (cfg->server.pidfile[0] == '\0' || (f = fopen(cfg->server.pidfile, "r")) == NULL)
        return 0;
    if (fgets(line, sizeof(line), f) != NULL) {
        errno = 0;
        pid = strtol(line, &end, 10);
        if (end == line || (*end != '\n' && *end != '\0') || errno != 0)
            pid = 0; /* not what the master writes: its pid and a newline */
    }
    (void)fclose(f); /* read only */
    if (pid <= 1 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
        return 0;
    return (pid_t)pid;
}

int cx_ctl_status(const cx_config_t *cfg)
{
    pid_t pid = master_pid(cfg);
    if (pid == 0) {
        printf("conduix-cp is not running\n");
        return 3;
    }
    printf("conduix-cp is running (pid %d)\n", (int)pid);
    return 0;
}

int cx_ctl_signal(const cx_config_t *cfg, const char *verb, int graceful)
{
    pid_t pid = master_pid(cfg);
    int stop = strcmp(verb, "stop") == 0;
    int64_t deadline;

    if (pid == 0) {
        fprintf(stderr, "conduix-cp: not running (no live master in pidfile %s)\n",
                cfg->server.pidfile[0] ? cfg->server.pidfile : "(none configured)");
        return stop ? 0 : 1;
    }
    if (kill(pid, stop ? (graceful ? SIGQUIT : SIGTERM) : SIGHUP) != 0) {
        fprintf(stderr, "conduix-cp: cannot signal pid %d: %s\n", (int)pid, strerror(errno));
        return 1;
    }
    if (!stop) {
        printf("reload signalled to conduix-cp master (pid %d)\n", (int)pid);
        return 0;
    }
    deadline = cx_now_ms() + cfg->server.shutdown_timeout_ms + 15000;
    while (kill(pid, 0) == 0 && cx_now_ms() < deadline)
        usleep(50000);
    if (kill(pid, 0) == 0) {
        fprintf(stderr, "conduix-cp: pid %d did not exit in time\n", (int)pid);
        return 1;
    }
    printf("conduix-cp stopped\n");
    return 0;
}

int cx_ctl_token(const cx_config_t *cfg, const char *role, const char *sub, const char *email, const char *name, const char *ttl)
{
    int64_t ttl_ms = ttl != NULL ? cx_duration_parse(ttl) : cfg->auth.token_expiry_ms, exp;
    char *tok, jti[37];

    if (role == NULL || cx_role_parse(role) == CX_ROLE_NONE) {
        fprintf(stderr, "conduix-cp token: --role must be one of viewer, operator, admin, agent\n");
        return 1;
    }
    if (sub == NULL || sub[0] == '\0' || strlen(sub) > 255) {
        fprintf(stderr, "conduix-cp token: --sub is required (1..255 characters)\n");
        return 1;
    }
    if (ttl_ms < 1000) {
        fprintf(stderr, "conduix-cp token: --ttl must be a duration of at least 1s, like 30m or 24h\n");
        return 1;
    }
    tok = cx_jwt_mint_ex(cfg->auth.jwt_secret, cfg->auth.issuer, sub, role, email, name, ttl_ms / 1000, jti, &exp);
    if (tok == NULL) {
        fprintf(stderr, "conduix-cp token: could not sign the token\n");
        return 1;
    }
    /* Recorded like every token we issue, so it can be listed and revoked by its jti. Without MySQL the
     * token is still printed: DELETE /api/v1/sessions/<jti> revokes a jti that was never recorded too. */
    if (cx_db_open(cfg) != CX_OK || cx_db_session_create(jti, sub, exp, NULL, "conduix-cp token", NULL) != CX_OK)
        fprintf(stderr, "conduix-cp token: warning: the token (jti %s) could not be recorded in the sessions table\n", jti);
    cx_db_close();
    printf("%s\n", tok);
    free(tok);
    return 0;
}
