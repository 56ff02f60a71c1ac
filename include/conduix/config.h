/*
 * config.h -- the configuration of conduix-cp: one struct, filled from defaults, the YAML file and the
 * environment, in that order (spec/config.md). The key table in src/config.c is the single source of
 * names, types, defaults and reloadability.
 */
#ifndef CONDUIX_CONFIG_H
#define CONDUIX_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CX_CONFIG_DEFAULT_PATH "/etc/conduix-cp/config.yaml"
#define CX_WORKERS_MAX 256 /* the largest server.workers */

typedef struct cx_provider {
    char *provider; /* id used in URLs: google, github, keycloak … */
    char *type;     /* "oauth2" or "oidc" */
    char *client_id;
    char *client_secret;
    char *redirect_url;
    char *auth_url; /* oauth2 */
    char *token_url;
    char *userinfo_url;
    char *issuer_url; /* oidc */
    char **scopes;    /* NULL-terminated */
    size_t nscopes;
    char *name; /* display name (GET /auth/providers); default: known name, else the id capitalised */
    /* oauth2: where the userinfo answer holds the subject, e-mail and name (dotted paths) */
    char *id_field;
    char *email_field;
    char *name_field;
} cx_provider_t;

typedef struct cx_config {
    char *path; /* file read, or NULL when none */

    struct {
        char *host;  /* listen address; restart required */
        int port;    /* restart required */
        char *mode;  /* debug | release */
        int workers; /* 0 = 2 per core, within database.max_open_conns; resolved value in workers_effective */
        int workers_effective;
        int64_t shutdown_timeout_ms;
        int64_t max_body_size;
        int64_t write_timeout_ms; /* an answer's write may make no progress this long, then the connection is closed */
        char *pidfile;
        char *user; /* "" = stay who started us; restart required */
    } server;

    struct {
        char *host;
        int port;
        char *user;
        char *password;
        char *name;
        char *socket;
        int max_open_conns;
        int max_idle_conns;
        int64_t connect_timeout_ms;
        int64_t read_timeout_ms;
        int64_t query_timeout_ms; /* a worker's bound of each MySQL call; read/write timeouts elsewhere */
        int64_t write_timeout_ms;
    } database;

    struct {
        char *host;
        int port;
        char *password;
        int db;
        int64_t timeout_ms;
        int cb_failures;
        int64_t cb_cooldown_ms;
        int cb_half_open_successes;
    } redis;

    struct {
        char *jwt_secret;
        char *issuer;
        int64_t token_expiry_ms;
        int64_t provider_timeout_ms; /* each outbound call to an identity provider */
        char *frontend_url;
        char **admin_emails; /* NULL-terminated */
        size_t nadmin_emails;
        char **operator_emails;
        size_t noperator_emails;
        char *default_role;
        cx_provider_t *providers; /* oauth2 entries first, then oidc, in file order */
        size_t nproviders;
    } auth;

    struct {
        int enabled;
        char *timezone;
        int64_t starting_deadline_ms;
        int64_t leader_lease_ms;  /* the leader lease in Redis; another replica takes over within it */
        int64_t prepare_ahead_ms; /* fires written this long before their time, their starts held; 0: none */
    } scheduler;

    struct {
        int64_t heartbeat_timeout_ms;
        int64_t monitor_interval_ms;
        int failover;
    } agents;

    struct {
        int64_t ttl_ms;
        int64_t redeliver_interval_ms;
    } commands;

    struct {
        char **allowed_origins; /* NULL-terminated */
        size_t nallowed_origins;
    } cors;

    struct {
        int enabled;
        double requests_per_second;
        int burst;
    } rate_limit;

    struct {
        char *level;  /* debug | info | warn | error */
        char *format; /* json | text */
        char *file;   /* "" = stderr */
    } logging;

    struct {
        int auto_run;
        char *dir; /* "" = the copies built into the binary */
    } migrations;
} cx_config_t;

/* cx_config_load -- defaults, then the file (path, or the default path when it exists and path is NULL),
 * then the environment. On error returns NULL and writes one line naming the key and file:line into err. */
cx_config_t *cx_config_load(const char *path, char *err, size_t errlen);

/* cx_config_load_flags -- the same with flags: CX_CONFIG_ENV applies the environment; CX_CONFIG_NO_SECRET
 * skips the JWT secret check (for status, stop and reload, which sign nothing). */
#define CX_CONFIG_ENV 1
#define CX_CONFIG_NO_SECRET 2
cx_config_t *cx_config_load_flags(const char *path, int flags, char *err, size_t errlen);

/* cx_config_load_string -- the same from a YAML text (name is used in messages); for tests. */
cx_config_t *cx_config_load_string(const char *yaml, size_t len, const char *name, int use_env, char *err, size_t errlen);

void cx_config_free(cx_config_t *cfg);

/* cx_config_diff_restart -- log a warning for each restart-only key that differs between old and new, and
 * copy the old value into new (a reload never changes them). Returns how many differed. */
int cx_config_diff_restart(const cx_config_t *old, cx_config_t *new_cfg);

/* The configuration of this process; set by the master before fork and by a child after reload. */
extern cx_config_t *cx_cfg;

#endif
