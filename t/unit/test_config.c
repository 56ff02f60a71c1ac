/*
 * test_config.c -- src/config.c: defaults, the YAML file, the environment, the one-line errors that name
 * key and file:line, the provider lists, reload of restart-only keys, and the shipped conf/config.yaml.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conduix/config.h"
#include "conduix/cx.h"

#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */

static const char *const env_vars[] = {"PORT",
                                       "DB_HOST",
                                       "DB_PORT",
                                       "DB_USER",
                                       "DB_PASSWORD",
                                       "DB_NAME",
                                       "DB_SOCKET",
                                       "REDIS_HOST",
                                       "REDIS_PORT",
                                       "REDIS_PASSWORD",
                                       "JWT_SECRET",
                                       "OAUTH2_CLIENT_ID",
                                       "OAUTH2_CLIENT_SECRET",
                                       "OIDC_ISSUER_URL",
                                       "TZDIR"};

static char err[1024];

/* setup -- every test starts from a clean environment with only a valid JWT_SECRET. */
static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < CX_ARRAY_SIZE(env_vars); i++)
        unsetenv(env_vars[i]);
    setenv("JWT_SECRET", SECRET, 1);
    err[0] = '\0';
    return 0;
}

static cx_config_t *load(const char *yaml)
{
    return cx_config_load_string(yaml, strlen(yaml), "t.yaml", 1, err, sizeof(err));
}

/* load_err -- the load must fail, and the message is one line. */
static const char *load_err(const char *yaml)
{
    cx_config_t *c = load(yaml);
    if (c != NULL) {
        cx_config_free(c);
        fail_msg("loaded, but an error was expected for:\n%s", yaml);
    }
    assert_true(err[0] != '\0');
    assert_null(strchr(err, '\n'));
    return err;
}

static void expect_err(const char *yaml, const char *want)
{
    const char *e = load_err(yaml);
    if (strstr(e, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", e, want);
}

static void t_defaults(void **state)
{
    (void)state;
    cx_config_t *c = load("");
    assert_non_null(c);
    assert_null(c->path);
    assert_string_equal(c->server.host, "0.0.0.0");
    assert_int_equal(c->server.port, 8080);
    assert_string_equal(c->server.mode, "release");
    assert_int_equal(c->server.workers, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    /* 2 per CPU, at most what max_open_conns 100 leaves two generations of: (100 - 3) / 2 */
    assert_int_equal(c->server.workers_effective, 2 * cpus < 48 ? 2 * cpus : 48);
    assert_int_equal(c->server.shutdown_timeout_ms, 30000);
    assert_int_equal(c->server.max_body_size, 1048576);
    assert_string_equal(c->server.pidfile, "/run/conduix-cp/conduix-cp.pid");
    assert_string_equal(c->database.host, "localhost");
    assert_int_equal(c->database.port, 3306);
    assert_string_equal(c->database.user, "root");
    assert_string_equal(c->database.password, "");
    assert_string_equal(c->database.name, "conduix");
    assert_string_equal(c->database.socket, "");
    assert_int_equal(c->database.max_open_conns, 100);
    assert_int_equal(c->database.max_idle_conns, 10);
    assert_int_equal(c->database.connect_timeout_ms, 5000);
    assert_int_equal(c->database.read_timeout_ms, 10000);
    assert_int_equal(c->database.write_timeout_ms, 10000);
    assert_int_equal(c->database.query_timeout_ms, 800);
    assert_string_equal(c->redis.host, "localhost");
    assert_int_equal(c->redis.port, 6379);
    assert_string_equal(c->redis.password, "");
    assert_int_equal(c->redis.db, 0);
    assert_int_equal(c->redis.timeout_ms, 1000);
    assert_int_equal(c->redis.cb_failures, 5);
    assert_int_equal(c->redis.cb_cooldown_ms, 30000);
    assert_int_equal(c->redis.cb_half_open_successes, 2);
    assert_string_equal(c->auth.jwt_secret, SECRET);
    assert_string_equal(c->auth.issuer, "conduix-cp");
    assert_int_equal(c->auth.token_expiry_ms, 86400000);
    assert_string_equal(c->auth.frontend_url, "");
    assert_non_null(c->auth.admin_emails);
    assert_null(c->auth.admin_emails[0]);
    assert_int_equal(c->auth.nadmin_emails, 0);
    assert_non_null(c->auth.operator_emails);
    assert_int_equal(c->auth.noperator_emails, 0);
    assert_string_equal(c->auth.default_role, "viewer");
    assert_int_equal(c->auth.nproviders, 0);
    assert_int_equal(c->scheduler.enabled, 1);
    assert_string_equal(c->scheduler.timezone, "UTC");
    assert_int_equal(c->scheduler.starting_deadline_ms, 300000);
    assert_int_equal(c->agents.heartbeat_timeout_ms, 30000);
    assert_int_equal(c->agents.monitor_interval_ms, 1000);
    assert_int_equal(c->agents.failover, 0);
    assert_int_equal(c->commands.ttl_ms, 300000);
    assert_int_equal(c->commands.redeliver_interval_ms, 10000);
    assert_non_null(c->cors.allowed_origins);
    assert_int_equal(c->cors.nallowed_origins, 0);
    assert_int_equal(c->rate_limit.enabled, 1);
    assert_true(c->rate_limit.requests_per_second == 50.0);
    assert_int_equal(c->rate_limit.burst, 100);
    assert_string_equal(c->logging.level, "info");
    assert_string_equal(c->logging.format, "json");
    assert_string_equal(c->logging.file, "");
    assert_int_equal(c->migrations.auto_run, 1);
    assert_string_equal(c->migrations.dir, ""); /* the migrations built into the binary */
    cx_config_free(c);

    /* comments only, an explicit null document, and empty sections are defaults too */
    static const char *const empties[] = {"# nothing\n", "~\n", "---\n", "server:\nredis:\n  circuit_breaker:\n"};
    for (size_t i = 0; i < CX_ARRAY_SIZE(empties); i++) {
        c = load(empties[i]);
        if (c == NULL)
            fail_msg("\"%s\": %s", empties[i], err);
        assert_int_equal(c->server.port, 8080);
        cx_config_free(c);
    }
}

static void t_file_values(void **state)
{
    (void)state;
    cx_config_t *c = load("server:\n"
                          "  host: 127.0.0.1\n"
                          "  port: 9000\n"
                          "  mode: debug\n"
                          "  workers: 3\n"
                          "  shutdown_timeout: 1m30s\n"
                          "  max_body_size: 512KiB\n"
                          "  pidfile: /tmp/x.pid\n"
                          "database:\n"
                          "  user: vpuser\n"
                          "  password: \"p: w#d\"\n"
                          "  socket: /run/mysqld/mysqld.sock\n"
                          "  read_timeout: 2500ms\n"
                          "redis:\n"
                          "  db: 3\n"
                          "  timeout: 250ms\n"
                          "  circuit_breaker:\n"
                          "    failures: 7\n"
                          "    cooldown: 1m\n"
                          "auth:\n"
                          "  admin_emails: [a@example.com, b@example.com]\n"
                          "  operator_emails:\n"
                          "    - o@example.com\n"
                          "  default_role: operator\n"
                          "  token_expiry: 1h\n"
                          "scheduler:\n"
                          "  enabled: false\n"
                          "  timezone: UTC\n"
                          "agents:\n"
                          "  failover: yes\n"
                          "cors:\n"
                          "  allowed_origins: ['https://ui.example.com']\n"
                          "rate_limit:\n"
                          "  requests_per_second: 2.5\n"
                          "logging:\n"
                          "  level: debug\n"
                          "  format: text\n"
                          "migrations:\n"
                          "  auto: false\n"
                          "  dir: /srv/migrations\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_string_equal(c->server.host, "127.0.0.1");
    assert_int_equal(c->server.port, 9000);
    assert_string_equal(c->server.mode, "debug");
    assert_int_equal(c->server.workers, 3);
    assert_int_equal(c->server.workers_effective, 3);
    assert_int_equal(c->server.shutdown_timeout_ms, 90000);
    assert_int_equal(c->server.max_body_size, 524288);
    assert_string_equal(c->server.pidfile, "/tmp/x.pid");
    assert_string_equal(c->database.user, "vpuser");
    assert_string_equal(c->database.password, "p: w#d");
    assert_string_equal(c->database.socket, "/run/mysqld/mysqld.sock");
    assert_int_equal(c->database.read_timeout_ms, 2500);
    assert_int_equal(c->redis.db, 3);
    assert_int_equal(c->redis.timeout_ms, 250);
    assert_int_equal(c->redis.cb_failures, 7);
    assert_int_equal(c->redis.cb_cooldown_ms, 60000);
    assert_int_equal(c->redis.cb_half_open_successes, 2);
    assert_int_equal(c->auth.nadmin_emails, 2);
    assert_string_equal(c->auth.admin_emails[0], "a@example.com");
    assert_string_equal(c->auth.admin_emails[1], "b@example.com");
    assert_null(c->auth.admin_emails[2]);
    assert_int_equal(c->auth.noperator_emails, 1);
    assert_string_equal(c->auth.operator_emails[0], "o@example.com");
    assert_string_equal(c->auth.default_role, "operator");
    assert_int_equal(c->auth.token_expiry_ms, 3600000);
    assert_int_equal(c->scheduler.enabled, 0);
    assert_int_equal(c->agents.failover, 1);
    assert_int_equal(c->cors.nallowed_origins, 1);
    assert_string_equal(c->cors.allowed_origins[0], "https://ui.example.com");
    assert_true(c->rate_limit.requests_per_second == 2.5);
    assert_string_equal(c->logging.level, "debug");
    assert_string_equal(c->logging.format, "text");
    assert_int_equal(c->migrations.auto_run, 0);
    assert_string_equal(c->migrations.dir, "/srv/migrations");
    cx_config_free(c);
}

static void t_env_overrides_file(void **state)
{
    (void)state;
    setenv("PORT", "9100", 1);
    setenv("DB_HOST", "db.internal", 1);
    setenv("DB_PORT", "3307", 1);
    setenv("DB_USER", "cx", 1);
    setenv("DB_PASSWORD", "s3cret", 1);
    setenv("DB_NAME", "cxdb", 1);
    setenv("DB_SOCKET", "/tmp/mysql.sock", 1);
    setenv("REDIS_HOST", "redis.internal", 1);
    setenv("REDIS_PORT", "6380", 1);
    setenv("REDIS_PASSWORD", "rpass", 1);
    setenv("DB_NAME", "", 1); /* empty counts as unset: the file's value stays */
    cx_config_t *c = load("server:\n  port: 9000\ndatabase:\n  host: filehost\n  name: filedb\n"
                          "auth:\n  jwt_secret: ffffffffffffffffffffffffffffffffffff\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->server.port, 9100);
    assert_string_equal(c->database.host, "db.internal");
    assert_int_equal(c->database.port, 3307);
    assert_string_equal(c->database.user, "cx");
    assert_string_equal(c->database.password, "s3cret");
    assert_string_equal(c->database.name, "filedb");
    assert_string_equal(c->database.socket, "/tmp/mysql.sock");
    assert_string_equal(c->redis.host, "redis.internal");
    assert_int_equal(c->redis.port, 6380);
    assert_string_equal(c->redis.password, "rpass");
    assert_string_equal(c->auth.jwt_secret, SECRET);
    cx_config_free(c);

    /* without use_env the file wins */
    const char *y = "server:\n  port: 9000\nauth:\n  jwt_secret: " SECRET "\n";
    c = cx_config_load_string(y, strlen(y), "t.yaml", 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->server.port, 9000);
    cx_config_free(c);
}

static void t_env_bad(void **state)
{
    (void)state;
    setenv("PORT", "x", 1);
    expect_err("", "environment PORT: expected an integer 1..65535, got \"x\"");
    setenv("PORT", "65536", 1);
    expect_err("", "environment PORT: expected an integer 1..65535, got \"65536\"");
    unsetenv("PORT");
    setenv("REDIS_PORT", "-1", 1);
    expect_err("", "environment REDIS_PORT: expected an integer 1..65535, got \"-1\"");
}

static void t_unknown_key(void **state)
{
    (void)state;
    expect_err("server:\n  port: 8080\n  prot: 8080\n", "t.yaml:3: server.prot: unknown key (did you mean server.port?)");
    expect_err("sever:\n  port: 8080\n", "t.yaml:1: sever: unknown key");
    expect_err("redis:\n  circuit_breaker:\n    failure: 3\n", "t.yaml:3: redis.circuit_breaker.failure: unknown key");
    expect_err("logging: {level: info, colour: true}\n", "t.yaml:1: logging.colour: unknown key");
}

static void t_wrong_type(void **state)
{
    (void)state;
    expect_err("server:\n  port: [8080]\n", "t.yaml:2: server.port: expected a scalar, got a list");
    expect_err("server: 8080\n", "t.yaml:1: server: expected a mapping, got a scalar");
    expect_err("server:\n  workers: \"4\"\n", "t.yaml:2: server.workers: expected an integer 0..256, got the quoted string \"4\"");
    expect_err("server:\n  workers: 257\n", "t.yaml:2: server.workers: expected an integer 0..256, got \"257\"");
    expect_err("scheduler:\n  enabled: maybe\n", "t.yaml:2: scheduler.enabled: expected true or false, got \"maybe\"");
    expect_err("auth:\n  admin_emails: a@example.com\n", "t.yaml:2: auth.admin_emails: expected a list of strings, got a scalar");
    expect_err("auth:\n  admin_emails: [[a]]\n", "t.yaml:2: auth.admin_emails[0]: expected a scalar, got a list");
    expect_err("rate_limit:\n  requests_per_second: 0\n", "rate_limit.requests_per_second: expected a number greater than 0");
    expect_err("server:\n  max_body_size: lots\n", "t.yaml:2: server.max_body_size: expected a size");
    expect_err("- a\n- b\n", "t.yaml:1: the top level must be a mapping, got a list");
    expect_err("database:\n  name: \"\"\n", "t.yaml:2: database.name: must not be empty");
    expect_err("database:\n  password: \"a\\0b\"\n", "t.yaml:2: database.password: contains a NUL byte");
}

static void t_bad_port(void **state)
{
    (void)state;
    expect_err("server:\n  port: abc\n", "t.yaml:2: server.port: expected an integer 1..65535, got \"abc\"");
    expect_err("server:\n  port: -1\n", "t.yaml:2: server.port: expected an integer 1..65535, got \"-1\"");
    expect_err("server:\n  port: 65536\n", "t.yaml:2: server.port: expected an integer 1..65535, got \"65536\"");
    expect_err("server:\n  port: 0\n", "server.port: expected an integer 1..65535");
    expect_err("server:\n  port: 80.5\n", "server.port: expected an integer 1..65535");
    expect_err("server:\n  port: 99999999999999999999\n", "server.port: expected an integer 1..65535");
    expect_err("server:\n  port:\n", "t.yaml:2: server.port: expected an integer 1..65535, got \"\"");
}

static void t_bad_duration(void **state)
{
    (void)state;
    expect_err("server:\n  shutdown_timeout: 30\n",
               "t.yaml:2: server.shutdown_timeout: expected a duration such as 250ms, 30s, 5m or 1h30m, got \"30\"");
    expect_err("agents:\n\n  heartbeat_timeout: soon\n", "t.yaml:3: agents.heartbeat_timeout: expected a duration");
    expect_err("commands:\n  ttl: 0\n", "t.yaml:2: commands.ttl: must be at least 1ms");
    expect_err("auth:\n  token_expiry: 10ms\n", "auth.token_expiry: must be at least 1000ms");
}

static void t_bad_enum(void **state)
{
    (void)state;
    expect_err("server:\n  mode: production\n", "t.yaml:2: server.mode: expected one of debug|release, got \"production\"");
    expect_err("logging:\n  level: verbose\n", "t.yaml:2: logging.level: expected one of debug|info|warn|error");
    expect_err("logging:\n  format: xml\n", "logging.format: expected one of json|text");
    expect_err("auth:\n  default_role: root\n", "auth.default_role: expected one of viewer|operator|admin");
    expect_err("logging:\n  level: INFO\n", "logging.level: expected one of");
}

static void t_duplicate_key(void **state)
{
    (void)state;
    expect_err("server:\n  port: 1\n  port: 2\n", "t.yaml:3: server.port: duplicate key (first at line 2)");
    expect_err("server:\n  port: 1\nserver:\n  mode: debug\n", "t.yaml:3: server: duplicate key (first at line 1)");
    expect_err("redis:\n  circuit_breaker: { failures: 1, failures: 2 }\n", "redis.circuit_breaker.failures: duplicate key");
}

static void t_alias_rejected(void **state)
{
    (void)state;
    expect_err("database:\n  host: &h db1\nredis:\n  host: *h\n", "t.yaml:2: YAML anchors and aliases are not supported");
    expect_err("server: &s\n  port: 1\n", "anchors and aliases are not supported");
    expect_err("server:\n  port: 1\n<<: {a: 1}\n", "t.yaml:3: <<: unknown key");
}

static void t_syntax_errors(void **state)
{
    (void)state;
    const char *e = load_err("server:\n  port: 1\n mode: x\n");
    assert_non_null(strstr(e, "t.yaml:3: YAML"));
    e = load_err("server:\n\tport: 1\n");
    assert_non_null(strstr(e, "t.yaml:2: YAML"));
    expect_err("server:\n  port: 1\n---\nserver:\n  port: 2\n", "t.yaml:4: only one YAML document is allowed");
    /* deep nesting is refused before anything is built */
    char deep[200] = "a: ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    expect_err(deep, "nested deeper than");
}

static void t_secret(void **state)
{
    (void)state;
    unsetenv("JWT_SECRET");
    expect_err("", "auth.jwt_secret (JWT_SECRET) is required and must be at least 32 bytes");
    assert_string_equal(err, "auth.jwt_secret (JWT_SECRET) is required and must be at least 32 bytes, got 0");
    setenv("JWT_SECRET", "short", 1);
    expect_err("", "environment JWT_SECRET: auth.jwt_secret (JWT_SECRET) is required and must be at least 32 bytes");
    assert_null(strstr(err, "short")); /* never echoed */
    unsetenv("JWT_SECRET");
    expect_err("auth:\n  issuer: me\n  jwt_secret: tooshort\n", "t.yaml:3: auth.jwt_secret (JWT_SECRET) is required");
    cx_config_t *c = load("auth:\n  jwt_secret: " SECRET "\n");
    assert_non_null(c);
    cx_config_free(c);
}

static void t_oauth2_google(void **state)
{
    (void)state;
    cx_config_t *c = load("auth:\n"
                          "  oidc:\n"
                          "    - provider: keycloak\n"
                          "      issuer_url: http://keycloak:8080/realms/r\n"
                          "      client_id: kc\n"
                          "  oauth2:\n"
                          "    - provider: google\n"
                          "      client_id: gid\n"
                          "      client_secret: gsecret\n"
                          "      redirect_url: http://localhost:8080/api/v1/auth/callback/google\n"
                          "    - provider: github\n"
                          "      client_id: hid\n"
                          "      scopes: [user:email]\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->auth.nproviders, 3);
    cx_provider_t *g = &c->auth.providers[0], *h = &c->auth.providers[1], *k = &c->auth.providers[2];
    assert_string_equal(g->provider, "google");
    assert_string_equal(g->type, "oauth2");
    assert_string_equal(g->client_id, "gid");
    assert_string_equal(g->client_secret, "gsecret");
    assert_string_equal(g->redirect_url, "http://localhost:8080/api/v1/auth/callback/google");
    assert_string_equal(g->auth_url, "https://accounts.google.com/o/oauth2/v2/auth");
    assert_string_equal(g->token_url, "https://oauth2.googleapis.com/token");
    assert_string_equal(g->userinfo_url, "https://openidconnect.googleapis.com/v1/userinfo");
    assert_string_equal(g->issuer_url, "");
    assert_int_equal(g->nscopes, 3);
    assert_string_equal(g->scopes[0], "openid");
    assert_string_equal(g->scopes[1], "email");
    assert_string_equal(g->scopes[2], "profile");
    assert_null(g->scopes[3]);
    assert_string_equal(h->provider, "github");
    assert_string_equal(h->auth_url, "https://github.com/login/oauth/authorize");
    assert_string_equal(h->token_url, "https://github.com/login/oauth/access_token");
    assert_string_equal(h->userinfo_url, "https://api.github.com/user");
    assert_string_equal(h->client_secret, "");
    assert_int_equal(h->nscopes, 1); /* given scopes are kept */
    assert_string_equal(h->scopes[0], "user:email");
    assert_string_equal(k->provider, "keycloak");
    assert_string_equal(k->type, "oidc");
    assert_string_equal(k->issuer_url, "http://keycloak:8080/realms/r");
    assert_string_equal(k->client_id, "kc");
    assert_string_equal(k->auth_url, "");
    assert_int_equal(k->nscopes, 3);
    /* display names and userinfo fields */
    assert_string_equal(g->name, "Google");
    assert_string_equal(h->name, "GitHub");
    assert_string_equal(k->name, "Keycloak");
    assert_string_equal(g->id_field, "sub");
    assert_string_equal(h->id_field, "id");
    assert_string_equal(h->email_field, "email");
    assert_string_equal(h->name_field, "name");
    assert_int_equal(c->auth.provider_timeout_ms, 10000);
    cx_config_free(c);

    c = load("auth:\n"
             "  provider_timeout: 2500ms\n"
             "  oauth2:\n"
             "    - provider: naver\n"
             "      name: Naver Login\n"
             "      client_id: n\n"
             "      auth_url: https://a\n"
             "      token_url: https://t\n"
             "      userinfo_url: https://u\n"
             "      id_field: response.id\n"
             "      email_field: response.email\n"
             "      name_field: response.nick_name\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_string_equal(c->auth.providers[0].name, "Naver Login");
    assert_string_equal(c->auth.providers[0].id_field, "response.id");
    assert_string_equal(c->auth.providers[0].email_field, "response.email");
    assert_string_equal(c->auth.providers[0].name_field, "response.nick_name");
    assert_int_equal(c->auth.provider_timeout_ms, 2500);
    cx_config_free(c);
}

static void t_oauth2_custom(void **state)
{
    (void)state;
    expect_err("auth:\n  oauth2:\n    - provider: gitea\n      client_id: x\n      token_url: https://t\n",
               "t.yaml:3: auth.oauth2[0].auth_url: is required for provider \"gitea\"");
    expect_err("auth:\n  oauth2:\n    - provider: google\n      client_id: a\n    - provider: gitea\n      client_id: x\n"
               "      auth_url: https://a\n      token_url: https://t\n",
               "t.yaml:5: auth.oauth2[1].userinfo_url: is required for provider \"gitea\"");
    expect_err("auth:\n  oauth2:\n    - provider: google\n", "t.yaml:3: auth.oauth2[0].client_id: is required");
    expect_err("auth:\n  oauth2:\n    - client_id: a\n", "t.yaml:3: auth.oauth2[0].provider: is required");
    expect_err("auth:\n  oauth2:\n    - provider: google\n      client_id: a\n      clientsecret: b\n",
               "t.yaml:5: auth.oauth2[0].clientsecret: unknown key (did you mean auth.oauth2[0].client_secret?)");
    expect_err("auth:\n  oauth2:\n    - provider: google\n      client_id: a\n      scopes: email\n",
               "t.yaml:5: auth.oauth2[0].scopes: expected a list of strings, got a scalar");
    expect_err("auth:\n  oauth2:\n    - provider: google\n      client_id: a\n  oidc:\n    - provider: google\n"
               "      client_id: b\n      issuer_url: https://i\n",
               "t.yaml:6: auth.oidc[0].provider: duplicate provider \"google\"");
    expect_err("auth:\n  oauth2:\n    - provider: my/idp\n      client_id: a\n", "auth.oauth2[0].provider: only letters");
    expect_err("auth:\n  oidc:\n    - provider: kc\n      client_id: a\n", "t.yaml:3: auth.oidc[0].issuer_url: is required");
    expect_err("auth:\n  oidc:\n    - provider: kc\n      issuer_url: https://i\n",
               "t.yaml:3: auth.oidc[0].client_id: is required");
    expect_err("auth:\n  oauth2:\n    provider: google\n", "t.yaml:3: auth.oauth2: expected a list of providers, got a mapping");
    expect_err("auth:\n  oauth2: [google]\n", "t.yaml:2: auth.oauth2[0]: expected a mapping, got a scalar");
    expect_err("auth:\n  oauth2:\n    - provider: github\n      client_id: a\n      id_field: response..id\n",
               "t.yaml:3: auth.oauth2[0].id_field: expected a field name or a dotted path of names");
    expect_err("auth:\n  oauth2:\n    - provider: github\n      client_id: a\n      email_field: \"$.email\"\n",
               "t.yaml:3: auth.oauth2[0].email_field: expected a field name");
    expect_err("auth:\n  oidc:\n    - provider: kc\n      issuer_url: https://i\n      client_id: a\n      id_field: x\n",
               "t.yaml:6: auth.oidc[0].id_field: unknown key");
    expect_err("auth:\n  provider_timeout: 10ms\n", "t.yaml:2: auth.provider_timeout:");
    /* fuzz_config found it: a value quoted in a message kept its line break (a folded plain scalar) */
    expect_err("auth:\n  oauth2:\n    - provider: ab\n\n        cd\n",
               "auth.oauth2[0].provider: only letters, digits, - and _ are allowed, got \"ab?cd\"");
    expect_err("auth:\n  oauth2:\n    - provider: \"a\\tb\\u0001c\"\n", "got \"a?b?c\"");
}

static void t_provider_env(void **state)
{
    (void)state;
    /* no provider: the variables are ignored */
    setenv("OAUTH2_CLIENT_ID", "envid", 1);
    setenv("OAUTH2_CLIENT_SECRET", "envsecret", 1);
    setenv("OIDC_ISSUER_URL", "https://env.example.com/realms/x", 1);
    cx_config_t *c = load("");
    assert_non_null(c);
    assert_int_equal(c->auth.nproviders, 0);
    cx_config_free(c);

    /* the first provider of each kind takes them, and may leave them out of the file */
    c = load("auth:\n  oauth2:\n    - provider: google\n    - provider: github\n      client_id: h\n"
             "  oidc:\n    - provider: kc\n      client_id: k\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->auth.nproviders, 3);
    assert_string_equal(c->auth.providers[0].client_id, "envid");
    assert_string_equal(c->auth.providers[0].client_secret, "envsecret");
    assert_string_equal(c->auth.providers[1].client_id, "h");
    assert_string_equal(c->auth.providers[1].client_secret, "");
    assert_string_equal(c->auth.providers[2].issuer_url, "https://env.example.com/realms/x");
    cx_config_free(c);
}

static void t_flow_breaker(void **state)
{
    (void)state;
    cx_config_t *c = load("redis:\n  circuit_breaker: { failures: 9, cooldown: 45s, half_open_successes: 4 }\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->redis.cb_failures, 9);
    assert_int_equal(c->redis.cb_cooldown_ms, 45000);
    assert_int_equal(c->redis.cb_half_open_successes, 4);
    cx_config_free(c);
    expect_err("redis:\n  circuit_breaker: { failures: 0 }\n", "t.yaml:2: redis.circuit_breaker.failures: expected an integer 1..");
    expect_err("redis:\n  circuit_breaker: 5\n", "t.yaml:2: redis.circuit_breaker: expected a mapping, got a scalar");
}

static void t_cross_checks(void **state)
{
    (void)state;
    expect_err("database:\n  max_open_conns: 5\n  max_idle_conns: 6\n",
               "t.yaml:3: database.max_idle_conns: 6 is more than database.max_open_conns 5");
    setenv("TZDIR", "/nonexistent", 1);
    expect_err("scheduler:\n  timezone: Asia/Seoul\n", "t.yaml:2: scheduler.timezone: unknown time zone \"Asia/Seoul\"");
    expect_err("scheduler:\n  timezone: ../../etc/passwd\n", "unknown time zone");
    cx_config_t *c = load("scheduler:\n  timezone: UTC\n");
    assert_non_null(c);
    cx_config_free(c);
}

/* database.max_open_conns bounds the MySQL connections of the whole instance: one per worker of two
 * generations (a reload) and one per other child (3). An explicit worker count that does not fit is an
 * error naming it; server.workers 0 takes as many as fit. */
static void t_max_open_conns(void **state)
{
    cx_config_t *c;
    (void)state;

    c = load("server:\n  workers: 45\n"); /* 2 x 45 + 3 = 93 <= 100 */
    assert_non_null(c);
    assert_int_equal(c->server.workers_effective, 45);
    cx_config_free(c);
    c = load("server:\n  workers: 4\ndatabase:\n  max_open_conns: 11\n  max_idle_conns: 2\n"); /* exactly */
    assert_non_null(c);
    cx_config_free(c);
    expect_err("server:\n  workers: 49\n", "t.yaml:2: server.workers: 49 workers (98 during a reload, old and new generation) "
                                           "and 3 other processes need 101 MySQL connections, more than "
                                           "database.max_open_conns 100");
    expect_err("server:\n  workers: 4\ndatabase:\n  max_open_conns: 10\n  max_idle_conns: 2\n",
               "t.yaml:2: server.workers: 4 workers");
    /* auto: as many as fit, at least one */
    c = load("database:\n  max_open_conns: 7\n  max_idle_conns: 2\n");
    assert_non_null(c);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->server.workers_effective, 2 * cpus < 2 ? 2 * cpus : 2);
    cx_config_free(c);
    expect_err("database:\n  max_open_conns: 4\n  max_idle_conns: 2\n",
               "t.yaml:2: database.max_open_conns: 1 workers (2 during a reload, old and new generation) and 3 other processes "
               "need 5 MySQL connections, more than database.max_open_conns 4");
}

/* server.mode debug: the log level is debug unless logging.level says otherwise. */
static void t_mode(void **state)
{
    cx_config_t *c;
    (void)state;

    c = load("server:\n  mode: debug\n");
    assert_non_null(c);
    assert_string_equal(c->logging.level, "debug");
    cx_config_free(c);
    c = load("server:\n  mode: debug\nlogging:\n  level: warn\n");
    assert_non_null(c);
    assert_string_equal(c->logging.level, "warn");
    cx_config_free(c);
    c = load("server:\n  mode: release\n");
    assert_non_null(c);
    assert_string_equal(c->logging.level, "info");
    cx_config_free(c);
}

static void t_diff_restart(void **state)
{
    (void)state;
    cx_config_t *old = load("server:\n  port: 9000\n  host: 127.0.0.1\n");
    cx_config_t *nw = load("server:\n  port: 9001\n  host: 127.0.0.1\n  mode: debug\nlogging:\n  level: debug\n"
                           "migrations:\n  dir: /elsewhere\n");
    assert_non_null(old);
    assert_non_null(nw);
    assert_int_equal(cx_config_diff_restart(old, nw), 2);
    assert_int_equal(nw->server.port, 9000); /* kept */
    assert_string_equal(nw->migrations.dir, old->migrations.dir);
    assert_string_equal(nw->server.host, "127.0.0.1");
    assert_string_equal(nw->server.mode, "debug"); /* reloadable: taken */
    assert_string_equal(nw->logging.level, "debug");
    assert_int_equal(cx_config_diff_restart(old, nw), 0); /* nothing left to differ */
    cx_config_free(old);
    cx_config_free(nw);
}

static void t_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/cx-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "server:\n  port: 7000\n  mode: nope\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    cx_config_t *c = cx_config_load(path, err, sizeof(err));
    assert_null(c);
    char want[128];
    snprintf(want, sizeof(want), "%s:3: server.mode: expected one of debug|release, got \"nope\"", path);
    assert_string_equal(err, want);

    FILE *f = fopen(path, "w");
    fputs("server:\n  port: 7000\n", f);
    fclose(f);
    c = cx_config_load(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_string_equal(c->path, path);
    assert_int_equal(c->server.port, 7000);
    cx_config_free(c);
    unlink(path);

    c = cx_config_load("/nonexistent/conduix.yaml", err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "/nonexistent/conduix.yaml"));
    assert_null(strchr(err, '\n'));
}

static void t_shipped_config(void **state)
{
    (void)state;
    const char *src = getenv("CX_SRCDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/conf/config.yaml", src && *src ? src : ".");
    cx_config_t *c = cx_config_load(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    /* the shipped file states the defaults */
    cx_config_t *d = load("");
    assert_non_null(d);
    assert_int_equal(c->server.port, d->server.port);
    assert_string_equal(c->server.host, d->server.host);
    assert_string_equal(c->server.pidfile, d->server.pidfile);
    assert_int_equal(c->server.max_body_size, d->server.max_body_size);
    assert_int_equal(c->database.max_open_conns, d->database.max_open_conns);
    assert_int_equal(c->redis.cb_cooldown_ms, d->redis.cb_cooldown_ms);
    assert_string_equal(c->database.user, d->database.user);
    assert_string_equal(c->scheduler.timezone, d->scheduler.timezone);
    assert_string_equal(c->migrations.dir, d->migrations.dir);
    assert_int_equal(c->auth.nproviders, 0);
    cx_config_free(d);
    cx_config_free(c);

    /* and refuses to start without JWT_SECRET */
    unsetenv("JWT_SECRET");
    c = cx_config_load(path, err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "auth.jwt_secret (JWT_SECRET) is required"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(t_defaults, setup),
        cmocka_unit_test_setup(t_file_values, setup),
        cmocka_unit_test_setup(t_env_overrides_file, setup),
        cmocka_unit_test_setup(t_env_bad, setup),
        cmocka_unit_test_setup(t_unknown_key, setup),
        cmocka_unit_test_setup(t_wrong_type, setup),
        cmocka_unit_test_setup(t_bad_port, setup),
        cmocka_unit_test_setup(t_bad_duration, setup),
        cmocka_unit_test_setup(t_bad_enum, setup),
        cmocka_unit_test_setup(t_duplicate_key, setup),
        cmocka_unit_test_setup(t_alias_rejected, setup),
        cmocka_unit_test_setup(t_syntax_errors, setup),
        cmocka_unit_test_setup(t_secret, setup),
        cmocka_unit_test_setup(t_oauth2_google, setup),
        cmocka_unit_test_setup(t_oauth2_custom, setup),
        cmocka_unit_test_setup(t_provider_env, setup),
        cmocka_unit_test_setup(t_flow_breaker, setup),
        cmocka_unit_test_setup(t_cross_checks, setup),
        cmocka_unit_test_setup(t_max_open_conns, setup),
        cmocka_unit_test_setup(t_mode, setup),
        cmocka_unit_test_setup(t_diff_restart, setup),
        cmocka_unit_test_setup(t_load_file, setup),
        cmocka_unit_test_setup(t_shipped_config, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
