/*
 * config.c -- the configuration of conduix-cp (include/conduix/config.h, spec/config.md).
 *
 * One declarative table (keys[] below) holds every key: its dotted name, type, default, whether a reload
 * may change it, and where it lives in cx_config_t. Loading is: every default from the table, then the
 * YAML file (libyaml's document API), then the environment, then the checks that involve more than one
 * key. Any error stops the load with one line naming the key and file:line, and the caller keeps what it
 * had (a reload is all-or-nothing, STYLE.md habit 3). The OAuth2/OIDC provider lists are the only keys
 * that do not fit a scalar type; they are parsed by hand further down.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "conduix/config.h"
#include "conduix/tz.h"
#include "conduix/cx.h"
#include "conduix/kinds.h"
#include "conduix/log.h"

#define MAX_FILE_SIZE (4 << 20) /* a config file larger than this is a mistake */
#define MAX_DEPTH 16            /* nesting levels accepted in the YAML text */
#define MIN_JWT_SECRET 32

cx_config_t *cx_cfg;

typedef enum {
    K_INT,   /* int, within [min, max] */
    K_BOOL,  /* int 0/1 */
    K_STR,   /* char *; min 1 = must not be empty */
    K_ENUM,  /* char *, one of choices */
    K_DUR,   /* int64_t milliseconds >= min */
    K_SIZE,  /* int64_t bytes >= min */
    K_FLOAT, /* double > min */
    K_LIST,  /* char ** NULL-terminated + size_t count at off2 */
    K_PROV,  /* auth.oauth2 / auth.oidc: parsed by parse_providers() */
} ktype_t;

enum { RESTART = 0, RELOAD = 1 };

typedef struct key {
    const char *name;
    const char *def;     /* default, in the syntax of the file */
    const char *choices; /* K_ENUM: "a|b|c" */
    size_t off, off2;
    int64_t min, max;
    ktype_t type;
    int reload;
} key_t_;

/* One entry per key, on one line: type, name, field, default (in the file's syntax), reload, then the
 * type's limits: INT min, max; STR 1 = must not be empty; DUR and SIZE the minimum; ENUM the choices;
 * LIST the count field. Restart-only keys must be scalars (cx_config_diff_restart compares them). */
// clang-format off
#define PIDFILE    "/run/conduix-cp/conduix-cp.pid"
#define WMAX       CX_WORKERS_MAX
#define MODES      "debug|release"
#define LEVELS     "debug|info|warn|error"
#define FORMATS    "json|text"
#define ROLES      "viewer|operator|admin"

#define F(m) offsetof(cx_config_t, m)
#define KEY(n, t, d, r, o, o2, lo, hi, ch) {.name = (n), .def = (d), .choices = (ch), .off = (o), .off2 = (o2), \
                                            .min = (lo), .max = (hi), .type = (t), .reload = (r)}
#define INT(n, m, d, r, lo, hi)   KEY(n, K_INT, d, r, F(m), 0, lo, hi, NULL)
#define BOOL(n, m, d, r)          KEY(n, K_BOOL, d, r, F(m), 0, 0, 0, NULL)
#define STR(n, m, d, r, nonempty) KEY(n, K_STR, d, r, F(m), 0, nonempty, 0, NULL)
#define ENUM(n, m, d, r, ch)      KEY(n, K_ENUM, d, r, F(m), 0, 0, 0, ch)
#define DUR(n, m, d, r, lo)       KEY(n, K_DUR, d, r, F(m), 0, lo, 0, NULL)
#define SIZE(n, m, d, r, lo)      KEY(n, K_SIZE, d, r, F(m), 0, lo, 0, NULL)
#define REAL(n, m, d, r)          KEY(n, K_FLOAT, d, r, F(m), 0, 0, 0, NULL)
#define LIST(n, m, d, r, cnt)     KEY(n, K_LIST, d, r, F(m), F(cnt), 0, 0, NULL)
#define PROV(n, m, d, r)          KEY(n, K_PROV, d, r, 0, 0, 0, 0, NULL)

static const key_t_ keys[] = {
    STR ("server.host",                               server.host,                    "0.0.0.0",    RESTART, 1),
    INT ("server.port",                               server.port,                    "8080",       RESTART, 1, 65535),
    ENUM("server.mode",                               server.mode,                    "release",    RELOAD,  MODES),
    INT ("server.workers",                            server.workers,                 "0",          RELOAD,  0, WMAX),
    DUR ("server.shutdown_timeout",                   server.shutdown_timeout_ms,     "30s",        RELOAD,  0),
    SIZE("server.max_body_size",                      server.max_body_size,           "1MiB",       RELOAD,  1),
    DUR ("server.write_timeout",                      server.write_timeout_ms,        "30s",        RELOAD,  1),
    STR ("server.pidfile",                            server.pidfile,                 PIDFILE,      RESTART, 0),
    STR ("server.user",                               server.user,                    "",           RESTART, 0),

    STR ("database.host",                             database.host,                  "localhost",  RELOAD,  0),
    INT ("database.port",                             database.port,                  "3306",       RELOAD,  1, 65535),
    STR ("database.user",                             database.user,                  "root",       RELOAD,  1),
    STR ("database.password",                         database.password,              "",           RELOAD,  0),
    STR ("database.name",                             database.name,                  "conduix",    RELOAD,  1),
    STR ("database.socket",                           database.socket,                "",           RELOAD,  0),
    INT ("database.max_open_conns",                   database.max_open_conns,        "100",        RELOAD,  1, 100000),
    INT ("database.max_idle_conns",                   database.max_idle_conns,        "10",         RELOAD,  0, 100000),
    DUR ("database.connect_timeout",                  database.connect_timeout_ms,    "5s",         RELOAD,  1),
    DUR ("database.read_timeout",                     database.read_timeout_ms,       "10s",        RELOAD,  1),
    DUR ("database.write_timeout",                    database.write_timeout_ms,      "10s",        RELOAD,  1),
    DUR ("database.query_timeout",                    database.query_timeout_ms,      "800ms",      RELOAD,  1),

    STR ("redis.host",                                redis.host,                     "localhost",  RELOAD,  1),
    INT ("redis.port",                                redis.port,                     "6379",       RELOAD,  1, 65535),
    STR ("redis.password",                            redis.password,                 "",           RELOAD,  0),
    INT ("redis.db",                                  redis.db,                       "0",          RELOAD,  0, 65535),
    DUR ("redis.timeout",                             redis.timeout_ms,               "1s",         RELOAD,  1),
    INT ("redis.circuit_breaker.failures",            redis.cb_failures,              "5",          RELOAD,  1, 1000000),
    DUR ("redis.circuit_breaker.cooldown",            redis.cb_cooldown_ms,           "30s",        RELOAD,  1),
    INT ("redis.circuit_breaker.half_open_successes", redis.cb_half_open_successes,   "2",          RELOAD,  1, 1000000),

    STR ("auth.jwt_secret",                           auth.jwt_secret,                "",           RELOAD,  0),
    STR ("auth.issuer",                               auth.issuer,                    "conduix-cp", RELOAD,  1),
    DUR ("auth.token_expiry",                         auth.token_expiry_ms,           "24h",        RELOAD,  1000),
    DUR ("auth.provider_timeout",                     auth.provider_timeout_ms,       "10s",        RELOAD,  100),
    STR ("auth.frontend_url",                         auth.frontend_url,              "",           RELOAD,  0),
    LIST("auth.admin_emails",                         auth.admin_emails,              "[]",         RELOAD,  auth.nadmin_emails),
    LIST("auth.operator_emails",                      auth.operator_emails,           "[]",         RELOAD,  auth.noperator_emails),
    ENUM("auth.default_role",                         auth.default_role,              "viewer",     RELOAD,  ROLES),
    PROV("auth.oauth2",                               auth.providers,                 "[]",         RELOAD),
    PROV("auth.oidc",                                 auth.providers,                 "[]",         RELOAD),

    BOOL("scheduler.enabled",                         scheduler.enabled,              "true",       RELOAD),
    STR ("scheduler.timezone",                        scheduler.timezone,             "UTC",        RELOAD,  1),
    DUR ("scheduler.starting_deadline",               scheduler.starting_deadline_ms, "5m",         RELOAD,  0),
    DUR ("scheduler.leader_lease",                    scheduler.leader_lease_ms,      "10s",        RELOAD,  1000),
    DUR ("scheduler.prepare_ahead",                   scheduler.prepare_ahead_ms,     "3s",         RELOAD,  0),

    DUR ("agents.heartbeat_timeout",                  agents.heartbeat_timeout_ms,    "30s",        RELOAD,  1),
    DUR ("agents.monitor_interval",                   agents.monitor_interval_ms,     "1s",         RELOAD,  1),
    BOOL("agents.failover",                           agents.failover,                "false",      RELOAD),

    DUR ("commands.ttl",                              commands.ttl_ms,                "5m",         RELOAD,  1),
    DUR ("commands.redeliver_interval",               commands.redeliver_interval_ms, "10s",        RELOAD,  1),

    LIST("cors.allowed_origins",                      cors.allowed_origins,           "[]",         RELOAD,  cors.nallowed_origins),

    BOOL("rate_limit.enabled",                        rate_limit.enabled,             "true",       RELOAD),
    REAL("rate_limit.requests_per_second",            rate_limit.requests_per_second, "50",         RELOAD),
    INT ("rate_limit.burst",                          rate_limit.burst,               "100",        RELOAD,  1, 1000000),

    ENUM("logging.level",                             logging.level,                  "info",       RELOAD,  LEVELS),
    ENUM("logging.format",                            logging.format,                 "json",       RELOAD,  FORMATS),
    STR ("logging.file",                              logging.file,                   "",           RELOAD,  0),

    BOOL("migrations.auto",                           migrations.auto_run,            "true",       RELOAD),
    STR ("migrations.dir",                            migrations.dir,                 "",           RESTART, 0),
};
// clang-format on

#define NKEYS CX_ARRAY_SIZE(keys)

/* The environment, applied after the file (spec/config.md). The provider variables are handled apart. */
static const struct {
    const char *var, *key;
} envs[] = {
    {"PORT", "server.port"},
    {"DB_HOST", "database.host"},
    {"DB_PORT", "database.port"},
    {"DB_USER", "database.user"},
    {"DB_PASSWORD", "database.password"},
    {"DB_NAME", "database.name"},
    {"DB_SOCKET", "database.socket"},
    {"REDIS_HOST", "redis.host"},
    {"REDIS_PORT", "redis.port"},
    {"REDIS_PASSWORD", "redis.password"},
    {"JWT_SECRET", "auth.jwt_secret"},
};

/* Well-known endpoints, userinfo fields and display names filled in for an oauth2 provider that names
 * them. */
static const struct {
    const char *provider, *name, *auth_url, *token_url, *userinfo_url, *scopes, *id_field;
} known[] = {
    {"google", "Google", "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token",
     "https://openidconnect.googleapis.com/v1/userinfo", "openid email profile", "sub"},
    {"github", "GitHub", "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token",
     "https://api.github.com/user", "read:user user:email", "id"},
};
#define OIDC_DEFAULT_SCOPES "openid email profile"

/* A provider while loading: where it came from, for messages after the environment is applied. */
typedef struct prov {
    cx_provider_t p;
    int line;
    int index; /* in its own list */
} prov_t;

/* The state of one load. origin[i] says who set keys[i] last: 0 default, > 0 the file line, -1 env. */
typedef struct load {
    cx_config_t *cfg;
    const char *name;
    char *err;
    size_t errlen;
    int origin[NKEYS];
    const char *origin_env[NKEYS];
    prov_t *oauth2, *oidc;
    size_t noauth2, noidc;
} load_t;

/* seterr -- the one-line message into the caller's buffer, if it gave one. */
static void __attribute__((format(printf, 3, 4))) seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* one line whatever a value quoted in it holds (fuzz_config found a folded scalar's line break) */
    for (char *p = err; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* fail -- "where: what" (or only "what" when where is NULL) as the load's error. */
static int __attribute__((format(printf, 3, 4))) fail(load_t *L, const char *where, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (where)
        seterr(L->err, L->errlen, "%s: %s", where, what);
    else
        seterr(L->err, L->errlen, "%s", what);
    return CX_INVALID;
}

/* at -- "file:line" for messages; the buffer is the caller's. */
static const char *at(load_t *L, int line, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%d", L->name, line);
    return buf;
}

/* show -- a value quoted for a message, cut short and with control characters replaced. */
static const char *show(const char *s, char *buf, size_t len)
{
    size_t n = 0, max = len < 72 ? len : 72;
    buf[n++] = '"';
    // cppcheck-suppress knownConditionTrueFalse ; max is up to 72 (the callers' buffers have 80 bytes)
    for (; *s && n + 5 < max; s++, n++) {
        buf[n] = *s;
        if ((unsigned char)*s < 0x20)
            buf[n] = '?';
    }
    if (*s) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

static const key_t_ *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* is_section -- does any key live below "name."? */
static int is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.')
            return 1;
    return 0;
}

static void free_list(char **list)
{
    if (list == NULL)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

/* split_words -- a space-separated word list into a NULL-terminated array. */
static char **split_words(const char *s, size_t *n)
{
    char **v = cx_calloc(1, sizeof(*v));
    *n = 0;
    while (*s) {
        while (*s == ' ')
            s++;
        size_t w = strcspn(s, " ");
        if (w == 0)
            break;
        v = cx_realloc(v, (*n + 2) * sizeof(*v));
        v[(*n)++] = cx_strndup(s, w);
        v[*n] = NULL;
        s += w;
    }
    return v;
}

static int in_choices(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        size_t w = strcspn(p, "|");
        if (w == n && strncmp(p, s, n) == 0)
            return 1;
        p += w + (p[w] == '|');
    }
    return 0;
}

/* set_scalar -- convert text into the field of key k.
 * plain is 0 for a quoted YAML scalar: numbers and booleans must then be written without quotes, as
 * YAML types them. On error writes "expected ..., got ..." into why and returns CX_INVALID. */
static int set_scalar(cx_config_t *cfg, const key_t_ *k, const char *text, int plain, char *why, size_t whylen)
{
    void *field = (char *)cfg + k->off;
    char shown[80];
    char *end;

    switch (k->type) {
    case K_INT: {
        errno = 0;
        long long v = plain && *text ? strtoll(text, &end, 10) : 0;
        if (!plain || !*text || *end || errno || v < k->min || v > k->max) {
            snprintf(why, whylen, "expected an integer %lld..%lld, got %s%s", (long long)k->min, (long long)k->max,
                     plain ? "" : "the quoted string ", show(text, shown, sizeof(shown)));
            return CX_INVALID;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case K_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
        for (size_t i = 0; plain && i < CX_ARRAY_SIZE(yes); i++) {
            if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
                *(int *)field = strcasecmp(text, yes[i]) == 0;
                return 0;
            }
        }
        snprintf(why, whylen, "expected true or false, got %s%s", plain ? "" : "the quoted string ",
                 show(text, shown, sizeof(shown)));
        return CX_INVALID;
    }
    case K_FLOAT: {
        errno = 0;
        double v = plain && *text ? strtod(text, &end) : 0;
        if (!plain || !*text || *end || errno || !isfinite(v) || v <= (double)k->min) {
            snprintf(why, whylen, "expected a number greater than %lld, got %s%s", (long long)k->min,
                     plain ? "" : "the quoted string ", show(text, shown, sizeof(shown)));
            return CX_INVALID;
        }
        *(double *)field = v;
        return 0;
    }
    case K_DUR: {
        int64_t v = cx_duration_parse(text);
        if (v < 0) {
            snprintf(why, whylen, "expected a duration such as 250ms, 30s, 5m or 1h30m, got %s", show(text, shown, sizeof(shown)));
            return CX_INVALID;
        }
        if (v < k->min) {
            snprintf(why, whylen, "must be at least %lldms, got %s", (long long)k->min, show(text, shown, sizeof(shown)));
            return CX_INVALID;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case K_SIZE: {
        int64_t v = cx_size_parse(text);
        if (v < k->min) {
            snprintf(why, whylen, "expected a size of at least %lld bytes such as 1MiB, 512KiB or 1048576, got %s",
                     (long long)k->min, show(text, shown, sizeof(shown)));
            return CX_INVALID;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case K_ENUM:
        if (!in_choices(k->choices, text)) {
            snprintf(why, whylen, "expected one of %s, got %s", k->choices, show(text, shown, sizeof(shown)));
            return CX_INVALID;
        }
        /* fall through */
    case K_STR:
        if (k->min > 0 && *text == '\0') {
            snprintf(why, whylen, "must not be empty");
            return CX_INVALID;
        }
        free(*(char **)field);
        *(char **)field = cx_strdup(text);
        return 0;
    case K_LIST: /* only defaults come here, and they are all "[]" */
        free_list(*(char ***)field);
        *(char ***)field = cx_calloc(1, sizeof(char *));
        *(size_t *)((char *)cfg + k->off2) = 0;
        return strcmp(text, "[]") == 0 ? 0 : CX_INVALID;
    case K_PROV:
        return 0;
    }
    return CX_INVALID;
}

/* ---- YAML ---------------------------------------------------------------------------------------- */

static int line_of(yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static const char *kind_name(yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* is_null -- a plain empty, "~" or "null" scalar: YAML's null. */
static int is_null(yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* scalar_text -- the text of a scalar node, refusing embedded NUL bytes ("\0" in a quoted string). */
static const char *scalar_text(load_t *L, yaml_node_t *n, const char *path)
{
    char w[PATH_MAX + 32];
    if (n->type != YAML_SCALAR_NODE) {
        fail(L, at(L, line_of(n), w, sizeof(w)), "%s: expected a scalar, got %s", path, kind_name(n));
        return NULL;
    }
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
        fail(L, at(L, line_of(n), w, sizeof(w)), "%s: contains a NUL byte", path);
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* distance -- Levenshtein distance, for "did you mean" on unknown keys; short strings only. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 64 || lb >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* unknown -- the error for a key not known below prefix, with a suggestion when a sibling is close. */
static int unknown(load_t *L, int line, const char *prefix, const char *name, const char *const *cands, size_t ncands)
{
    char w[PATH_MAX + 32];
    const char *best = NULL;
    size_t bd = 3;
    for (size_t i = 0; i < ncands; i++) {
        size_t d = distance(name, cands[i]);
        if (d < bd && d < strlen(name)) {
            bd = d;
            best = cands[i];
        }
    }
    const char *dot = *prefix ? "." : "";
    if (best)
        return fail(L, at(L, line, w, sizeof(w)), "%s%s%s: unknown key (did you mean %s%s%s?)", prefix, dot, name, prefix, dot,
                    best);
    return fail(L, at(L, line, w, sizeof(w)), "%s%s%s: unknown key", prefix, dot, name);
}

/* unknown_key -- unknown() with the names the table knows right below prefix as candidates. */
static int unknown_key(load_t *L, int line, const char *prefix, const char *name)
{
    char sib[NKEYS][64];
    const char *cands[NKEYS];
    size_t n = 0, pl = strlen(prefix);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *k = keys[i].name;
        if (pl > 0 && (strncmp(k, prefix, pl) != 0 || k[pl] != '.'))
            continue;
        k += pl ? pl + 1 : 0;
        size_t len = strcspn(k, ".");
        if (len >= sizeof(sib[0]))
            continue;
        size_t j;
        for (j = 0; j < n; j++)
            if (strlen(cands[j]) == len && strncmp(cands[j], k, len) == 0)
                break;
        if (j < n)
            continue;
        memcpy(sib[n], k, len);
        sib[n][len] = '\0';
        cands[n] = sib[n];
        n++;
    }
    return unknown(L, line, prefix, name, cands, n);
}

/* check_pairs -- every key of a mapping is a scalar and appears once. */
static int check_pairs(load_t *L, yaml_document_t *doc, yaml_node_t *map, const char *prefix)
{
    char w[PATH_MAX + 32];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(L, at(L, line_of(k), w, sizeof(w)), "%s%sa key must be a scalar, got %s", prefix, *prefix ? ": " : "",
                        kind_name(k));
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = yaml_document_get_node(doc, q->key);
            if (k2->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, (char *)k2->data.scalar.value) == 0)
                return fail(L, at(L, line_of(k), w, sizeof(w)), "%s%s%s: duplicate key (first at line %d)", prefix,
                            *prefix ? "." : "", (char *)k->data.scalar.value, line_of(k2));
        }
    }
    return 0;
}

/* set_list -- a YAML list of strings (or null) into a K_LIST field. */
static int set_list(load_t *L, yaml_document_t *doc, yaml_node_t *v, const char *path, char ***out, size_t *nout)
{
    char w[PATH_MAX + 32], item[256];
    if (is_null(v)) {
        free_list(*out);
        *out = cx_calloc(1, sizeof(**out));
        *nout = 0;
        return 0;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(L, at(L, line_of(v), w, sizeof(w)), "%s: expected a list of strings, got %s", path, kind_name(v));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start), i = 0;
    char **list = cx_calloc(n + 1, sizeof(*list));
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++, i++) {
        snprintf(item, sizeof(item), "%s[%zu]", path, i);
        const char *s = scalar_text(L, yaml_document_get_node(doc, *it), item);
        if (s == NULL) {
            free_list(list);
            return CX_INVALID;
        }
        list[i] = cx_strdup(s);
    }
    free_list(*out);
    *out = list;
    *nout = n;
    return 0;
}

/* parse_providers -- auth.oauth2 or auth.oidc: a list of mappings with the fields below.
 * Required fields and defaults are checked later, in check_providers(), because the environment
 * may still supply the client id or the issuer. */
static int parse_providers(load_t *L, yaml_document_t *doc, yaml_node_t *v, const char *path)
{
    static const char *const oauth2_fields[] = {"provider",     "name",     "client_id",   "client_secret",
                                                "redirect_url", "auth_url", "token_url",   "userinfo_url",
                                                "scopes",       "id_field", "email_field", "name_field"};
    static const char *const oidc_fields[] = {"provider",      "name",         "issuer_url", "client_id",
                                              "client_secret", "redirect_url", "scopes"};
    int oidc = strcmp(path, "auth.oidc") == 0;
    const char *const *fields = oidc ? oidc_fields : oauth2_fields;
    size_t nfields = oidc ? CX_ARRAY_SIZE(oidc_fields) : CX_ARRAY_SIZE(oauth2_fields);
    prov_t **list = oidc ? &L->oidc : &L->oauth2;
    size_t *nlist = oidc ? &L->noidc : &L->noauth2;
    char w[PATH_MAX + 32], item[128], fpath[192];

    if (is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(L, at(L, line_of(v), w, sizeof(w)), "%s: expected a list of providers, got %s", path, kind_name(v));
    size_t i = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++, i++) {
        yaml_node_t *m = yaml_document_get_node(doc, *it);
        snprintf(item, sizeof(item), "%s[%zu]", path, i);
        if (m->type != YAML_MAPPING_NODE)
            return fail(L, at(L, line_of(m), w, sizeof(w)), "%s: expected a mapping, got %s", item, kind_name(m));
        int rc = check_pairs(L, doc, m, item);
        if (rc)
            return rc;
        *list = cx_realloc(*list, (*nlist + 1) * sizeof(**list));
        prov_t *pv = &(*list)[(*nlist)++];
        memset(pv, 0, sizeof(*pv));
        pv->line = line_of(m);
        pv->index = (int)i;
        pv->p.type = cx_strdup(oidc ? "oidc" : "oauth2");
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key), *val = yaml_document_get_node(doc, p->value);
            const char *name = (const char *)k->data.scalar.value;
            snprintf(fpath, sizeof(fpath), "%s.%s", item, name);
            size_t f;
            for (f = 0; f < nfields; f++)
                if (strcmp(fields[f], name) == 0)
                    break;
            if (f == nfields)
                return unknown(L, line_of(k), item, name, fields, nfields);
            if (strcmp(name, "scopes") == 0) {
                if ((rc = set_list(L, doc, val, fpath, &pv->p.scopes, &pv->p.nscopes)) != 0)
                    return rc;
                continue;
            }
            const char *s = is_null(val) ? "" : scalar_text(L, val, fpath);
            if (s == NULL)
                return CX_INVALID;
            char **dst = strcmp(name, "provider") == 0        ? &pv->p.provider
                         : strcmp(name, "name") == 0          ? &pv->p.name
                         : strcmp(name, "id_field") == 0      ? &pv->p.id_field
                         : strcmp(name, "email_field") == 0   ? &pv->p.email_field
                         : strcmp(name, "name_field") == 0    ? &pv->p.name_field
                         : strcmp(name, "client_id") == 0     ? &pv->p.client_id
                         : strcmp(name, "client_secret") == 0 ? &pv->p.client_secret
                         : strcmp(name, "redirect_url") == 0  ? &pv->p.redirect_url
                         : strcmp(name, "auth_url") == 0      ? &pv->p.auth_url
                         : strcmp(name, "token_url") == 0     ? &pv->p.token_url
                         : strcmp(name, "userinfo_url") == 0  ? &pv->p.userinfo_url
                                                              : &pv->p.issuer_url;
            *dst = cx_strdup(s);
        }
    }
    return 0;
}

/* walk -- a mapping of the file at the dotted prefix ("" for the top level, "redis.circuit_breaker" …). */
// NOLINTNEXTLINE(misc-no-recursion): at most MAX_DEPTH levels (checked before each call)
static int walk(load_t *L, yaml_document_t *doc, yaml_node_t *map, const char *prefix, int depth)
{
    char w[PATH_MAX + 32], path[256], why[256];
    int rc;
    if ((rc = check_pairs(L, doc, map, prefix)) != 0)
        return rc;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", (char *)k->data.scalar.value);
        const key_t_ *key = find_key(path);
        if (key == NULL) {
            if (!is_section(path))
                return unknown_key(L, line_of(k), prefix, (const char *)k->data.scalar.value);
            if (is_null(v))
                continue; /* "server:" with nothing below: all defaults */
            if (v->type != YAML_MAPPING_NODE)
                return fail(L, at(L, line_of(v), w, sizeof(w)), "%s: expected a mapping, got %s", path, kind_name(v));
            if (depth >= MAX_DEPTH)
                return fail(L, at(L, line_of(v), w, sizeof(w)), "%s: nested too deeply", path);
            if ((rc = walk(L, doc, v, path, depth + 1)) != 0)
                return rc;
            continue;
        }
        size_t idx = (size_t)(key - keys);
        L->origin[idx] = line_of(k);
        if (key->type == K_PROV) {
            if ((rc = parse_providers(L, doc, v, path)) != 0)
                return rc;
            continue;
        }
        if (key->type == K_LIST) {
            char ***list = (char ***)((char *)L->cfg + key->off);
            size_t *count = (size_t *)((char *)L->cfg + key->off2);
            if ((rc = set_list(L, doc, v, path, list, count)) != 0)
                return rc;
            continue;
        }
        const char *s = scalar_text(L, v, path);
        if (s == NULL)
            return CX_INVALID;
        /* a null string value is the empty string; for any other type it is a wrong value */
        int plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if ((key->type == K_STR || key->type == K_ENUM) && is_null(v))
            s = "";
        if (set_scalar(L->cfg, key, s, plain, why, sizeof(why)) != 0)
            return fail(L, at(L, line_of(v), w, sizeof(w)), "%s: %s", path, why);
    }
    return 0;
}

/* prescan -- refuse anchors, aliases and deep nesting before the document is built.
 * The document API resolves an alias into a second reference to the anchored node and keeps no trace of
 * the anchor, so the tokens are the only place to see them with their line; refusing them also closes
 * the door on "billion laughs" expansion. */
static int prescan(load_t *L, const unsigned char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_token_t tok;
    char w[PATH_MAX + 32];
    int depth = 0, rc = 0;

    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, text, len);
    for (;;) {
        if (!yaml_parser_scan(&parser, &tok)) {
            rc = fail(L, at(L, (int)parser.problem_mark.line + 1, w, sizeof(w)), "YAML syntax error: %s%s%s",
                      parser.problem ? parser.problem : "unknown error", parser.context ? " " : "",
                      parser.context ? parser.context : "");
            break;
        }
        yaml_token_type_t t = tok.type;
        int line = (int)tok.start_mark.line + 1;
        yaml_token_delete(&tok);
        if (t == YAML_STREAM_END_TOKEN)
            break;
        if (t == YAML_ANCHOR_TOKEN || t == YAML_ALIAS_TOKEN) {
            rc = fail(L, at(L, line, w, sizeof(w)), "YAML anchors and aliases are not supported");
            break;
        }
        if (t == YAML_BLOCK_MAPPING_START_TOKEN || t == YAML_BLOCK_SEQUENCE_START_TOKEN || t == YAML_FLOW_MAPPING_START_TOKEN ||
            t == YAML_FLOW_SEQUENCE_START_TOKEN) {
            if (++depth > MAX_DEPTH) {
                rc = fail(L, at(L, line, w, sizeof(w)), "YAML nested deeper than %d levels", MAX_DEPTH);
                break;
            }
        } else if (t == YAML_BLOCK_END_TOKEN || t == YAML_FLOW_MAPPING_END_TOKEN || t == YAML_FLOW_SEQUENCE_END_TOKEN) {
            depth--;
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* parse_yaml -- the file's text into L->cfg. */
static int parse_yaml(load_t *L, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    char w[PATH_MAX + 32];
    int rc;

    if ((rc = prescan(L, (const unsigned char *)text, len)) != 0)
        return rc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = fail(L, at(L, (int)parser.problem_mark.line + 1, w, sizeof(w)), "YAML error: %s%s%s",
                  parser.problem ? parser.problem : "unknown error", parser.context ? " " : "",
                  parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL) {
        /* a second document would be ignored silently: refuse it */
        if (!yaml_parser_load(&parser, &extra)) {
            rc = fail(L, at(L, (int)parser.problem_mark.line + 1, w, sizeof(w)), "YAML error: %s",
                      parser.problem ? parser.problem : "unknown error");
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2 != NULL)
                rc = fail(L, at(L, line_of(r2), w, sizeof(w)), "only one YAML document is allowed");
            yaml_document_delete(&extra);
        }
        if (rc == 0) {
            if (root->type == YAML_MAPPING_NODE)
                rc = walk(L, &doc, root, "", 0);
            else if (!is_null(root))
                rc = fail(L, at(L, line_of(root), w, sizeof(w)), "the top level must be a mapping, got %s", kind_name(root));
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- environment, checks --------------------------------------------------------------------------- */

static int apply_env(load_t *L)
{
    char where[64], why[256];
    for (size_t i = 0; i < CX_ARRAY_SIZE(envs); i++) {
        const char *v = getenv(envs[i].var);
        if (v == NULL || *v == '\0')
            continue; /* an empty variable counts as unset */
        const key_t_ *k = find_key(envs[i].key);
        snprintf(where, sizeof(where), "environment %s", envs[i].var);
        if (set_scalar(L->cfg, k, v, 1, why, sizeof(why)) != 0)
            return fail(L, where, "%s", why);
        L->origin[k - keys] = -1;
        L->origin_env[k - keys] = envs[i].var;
    }
    const char *id = getenv("OAUTH2_CLIENT_ID"), *secret = getenv("OAUTH2_CLIENT_SECRET");
    const char *issuer = getenv("OIDC_ISSUER_URL");
    if (L->noauth2 > 0 && id && *id) {
        free(L->oauth2[0].p.client_id);
        L->oauth2[0].p.client_id = cx_strdup(id);
    }
    if (L->noauth2 > 0 && secret && *secret) {
        free(L->oauth2[0].p.client_secret);
        L->oauth2[0].p.client_secret = cx_strdup(secret);
    }
    if (L->noidc > 0 && issuer && *issuer) {
        free(L->oidc[0].p.issuer_url);
        L->oidc[0].p.issuer_url = cx_strdup(issuer);
    }
    return 0;
}

/* key_where -- where a key was last set, for a message about its final value. */
static const char *key_where(load_t *L, const char *name, char *buf, size_t len)
{
    size_t i = (size_t)(find_key(name) - keys);
    if (L->origin[i] > 0)
        snprintf(buf, len, "%s:%d: %s", L->name, L->origin[i], name);
    else if (L->origin[i] < 0)
        snprintf(buf, len, "environment %s: %s", L->origin_env[i], name);
    else
        snprintf(buf, len, "%s", name);
    return buf;
}

static int empty(const char *s)
{
    return s == NULL || *s == '\0';
}

static void fill(char **dst, const char *def)
{
    if (*dst == NULL)
        *dst = cx_strdup(def);
}

/* field_path_ok -- a userinfo field: names of letters, digits, _ and -, joined by dots. */
static int field_path_ok(const char *s)
{
    int seg = 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (seg == 0)
                return 0;
            seg = 0;
        } else if (isalnum((unsigned char)*s) || *s == '_' || *s == '-') {
            seg++;
        } else {
            return 0;
        }
    }
    return seg > 0;
}

/* check_providers -- required fields, well-known defaults, unique URL-safe names. */
static int check_providers(load_t *L)
{
    char w[PATH_MAX + 32], item[64];
    for (int oidc = 0; oidc <= 1; oidc++) {
        prov_t *list = oidc ? L->oidc : L->oauth2;
        size_t n = oidc ? L->noidc : L->noauth2;
        for (size_t i = 0; i < n; i++) {
            cx_provider_t *p = &list[i].p;
            snprintf(item, sizeof(item), "auth.%s[%d]", oidc ? "oidc" : "oauth2", list[i].index);
            at(L, list[i].line, w, sizeof(w));
            if (empty(p->provider))
                return fail(L, w, "%s.provider: is required", item);
            for (const char *c = p->provider; *c; c++)
                if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
                    return fail(L, w, "%s.provider: only letters, digits, - and _ are allowed, got \"%s\"", item, p->provider);
            for (int o2 = 0; o2 <= oidc; o2++) {
                prov_t *l2 = o2 ? L->oidc : L->oauth2;
                size_t n2 = o2 == oidc ? i : L->noauth2;
                for (size_t j = 0; j < n2; j++)
                    if (strcmp(l2[j].p.provider, p->provider) == 0)
                        return fail(L, w, "%s.provider: duplicate provider \"%s\"", item, p->provider);
            }
            if (empty(p->client_id))
                return fail(L, w, "%s.client_id: is required%s", item, oidc ? "" : " (or OAUTH2_CLIENT_ID for the first)");
            if (oidc) {
                if (empty(p->issuer_url))
                    return fail(L, w, "%s.issuer_url: is required (or OIDC_ISSUER_URL for the first)", item);
                if (p->scopes == NULL)
                    p->scopes = split_words(OIDC_DEFAULT_SCOPES, &p->nscopes);
            } else {
                for (size_t k = 0; k < CX_ARRAY_SIZE(known); k++) {
                    if (strcmp(known[k].provider, p->provider) != 0)
                        continue;
                    if (empty(p->name))
                        free(p->name), p->name = cx_strdup(known[k].name);
                    if (empty(p->id_field))
                        free(p->id_field), p->id_field = cx_strdup(known[k].id_field);
                    if (empty(p->auth_url))
                        free(p->auth_url), p->auth_url = cx_strdup(known[k].auth_url);
                    if (empty(p->token_url))
                        free(p->token_url), p->token_url = cx_strdup(known[k].token_url);
                    if (empty(p->userinfo_url))
                        free(p->userinfo_url), p->userinfo_url = cx_strdup(known[k].userinfo_url);
                    if (p->scopes == NULL)
                        p->scopes = split_words(known[k].scopes, &p->nscopes);
                }
                if (empty(p->auth_url))
                    return fail(L, w, "%s.auth_url: is required for provider \"%s\"", item, p->provider);
                if (empty(p->token_url))
                    return fail(L, w, "%s.token_url: is required for provider \"%s\"", item, p->provider);
                if (empty(p->userinfo_url))
                    return fail(L, w, "%s.userinfo_url: is required for provider \"%s\"", item, p->provider);
                if (p->scopes == NULL)
                    p->scopes = cx_calloc(1, sizeof(char *));
            }
            const char *fields[] = {p->id_field, p->email_field, p->name_field};
            static const char *const field_keys[] = {"id_field", "email_field", "name_field"};
            for (size_t f = 0; f < CX_ARRAY_SIZE(fields); f++)
                if (!empty(fields[f]) && !field_path_ok(fields[f]))
                    return fail(L, w, "%s.%s: expected a field name or a dotted path of names (like response.id), got \"%s\"", item,
                                field_keys[f], fields[f]);
            /* every string is non-NULL; "" when absent */
            if (empty(p->name)) {
                free(p->name);
                p->name = cx_strdup(p->provider);
                p->name[0] = (char)toupper((unsigned char)p->name[0]);
            }
            fill(&p->id_field, "sub");
            fill(&p->email_field, "email");
            fill(&p->name_field, "name");
            fill(&p->client_secret, "");
            fill(&p->redirect_url, "");
            fill(&p->auth_url, "");
            fill(&p->token_url, "");
            fill(&p->userinfo_url, "");
            fill(&p->issuer_url, "");
        }
    }
    return 0;
}

/* timezone_ok -- the zone loads from the tz database (TZDIR or /usr/share/zoneinfo) as the schedules'
 * zones do (cron's tz.h), and is not the server's own (localtime): an unknown zone must not silently
 * become UTC, which would fire every schedule at the wrong hour. */
static int timezone_ok(const char *tz)
{
    const char *dir = getenv("TZDIR");
    cx_tz_t *z;
    if (strcmp(tz, "localtime") == 0)
        return 0;
    if ((z = cx_tz_load_dir(dir && *dir ? dir : CX_TZ_DIR, tz, NULL, 0)) == NULL)
        return 0;
    cx_tz_free(z);
    return 1;
}

/* check_workers -- server.workers within database.max_open_conns: every process but the master holds one
 * MySQL connection, and during a reload the draining generation of workers still holds its own, so
 * 2 x workers + the other children must fit (kinds.h says how many there are). server.workers 0 is 2
 * per online CPU, as many as fit. */
static int check_workers(load_t *L)
{
    cx_config_t *c = L->cfg;
    char w[PATH_MAX + 64];
    int max = c->database.max_open_conns, others, fit, n;

    c->server.workers_effective = 0;
    others = cx_kinds_db_conns(c, 0);
    fit = (max - others) / CX_POOL_GENERATIONS;
    if (c->server.workers > 0) {
        n = c->server.workers;
    } else {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)(cpus > CX_WORKERS_MAX / 2 ? CX_WORKERS_MAX : 2 * cpus) : 2;
        if (n > fit)
            n = fit > 1 ? fit : 1;
    }
    c->server.workers_effective = n;
    if (n > fit)
        return fail(L, key_where(L, c->server.workers > 0 ? "server.workers" : "database.max_open_conns", w, sizeof(w)),
                    "%d workers (%d during a reload, old and new generation) and %d other processes need %d MySQL "
                    "connections, more than database.max_open_conns %d",
                    n, CX_POOL_GENERATIONS * n, others, cx_kinds_db_conns(c, 1), max);
    return 0;
}

/* check -- the rules that look at the final values, after file and environment. */
static int check(load_t *L, int flags)
{
    cx_config_t *c = L->cfg;
    char w[PATH_MAX + 64];
    int rc;

    if (!(flags & CX_CONFIG_NO_SECRET) && strlen(c->auth.jwt_secret) < MIN_JWT_SECRET) {
        /* the secret itself never goes into a message */
        size_t i = (size_t)(find_key("auth.jwt_secret") - keys);
        const char *where = NULL;
        if (L->origin[i] > 0)
            where = at(L, L->origin[i], w, sizeof(w));
        else if (L->origin[i] < 0)
            where = "environment JWT_SECRET";
        return fail(L, where, "auth.jwt_secret (JWT_SECRET) is required and must be at least %d bytes, got %zu", MIN_JWT_SECRET,
                    strlen(c->auth.jwt_secret));
    }
    if (c->database.max_idle_conns > c->database.max_open_conns)
        return fail(L, key_where(L, "database.max_idle_conns", w, sizeof(w)), "%d is more than database.max_open_conns %d",
                    c->database.max_idle_conns, c->database.max_open_conns);
    if (c->server.user[0] != '\0' && getpwnam(c->server.user) == NULL)
        return fail(L, key_where(L, "server.user", w, sizeof(w)), "no such user \"%s\"", c->server.user);
    if (!timezone_ok(c->scheduler.timezone))
        return fail(L, key_where(L, "scheduler.timezone", w, sizeof(w)), "unknown time zone \"%s\"", c->scheduler.timezone);
    if ((rc = check_providers(L)) != 0)
        return rc;

    /* oauth2 entries first, then oidc, in file order */
    c->auth.nproviders = L->noauth2 + L->noidc;
    c->auth.providers = cx_calloc(c->auth.nproviders + 1, sizeof(cx_provider_t));
    for (size_t i = 0; i < L->noauth2; i++)
        c->auth.providers[i] = L->oauth2[i].p;
    for (size_t i = 0; i < L->noidc; i++)
        c->auth.providers[L->noauth2 + i] = L->oidc[i].p;
    free(L->oauth2);
    free(L->oidc);
    L->oauth2 = L->oidc = NULL;
    L->noauth2 = L->noidc = 0;

    if ((rc = check_workers(L)) != 0)
        return rc;
    /* debug mode: debug lines unless the level is set */
    if (strcmp(c->server.mode, "debug") == 0 && L->origin[find_key("logging.level") - keys] == 0) {
        free(c->logging.level);
        c->logging.level = cx_strdup("debug");
    }
    return 0;
}

static void free_provider(cx_provider_t *p)
{
    free(p->provider);
    free(p->type);
    free(p->client_id);
    free(p->client_secret);
    free(p->redirect_url);
    free(p->auth_url);
    free(p->token_url);
    free(p->userinfo_url);
    free(p->issuer_url);
    free(p->name);
    free(p->id_field);
    free(p->email_field);
    free(p->name_field);
    free_list(p->scopes);
}

/* load -- defaults, then the YAML text (when text is not NULL), then the environment, then the checks. */
static cx_config_t *load(const char *text, size_t len, const char *name, int flags, char *err, size_t errlen)
{
    load_t L = {.name = name ? name : "(config)", .err = err, .errlen = errlen};
    char why[256];

    if (err && errlen)
        err[0] = '\0';
    L.cfg = cx_calloc(1, sizeof(cx_config_t));
    for (size_t i = 0; i < NKEYS; i++) {
        if (set_scalar(L.cfg, &keys[i], keys[i].def, 1, why, sizeof(why)) != 0) {
            fprintf(stderr, "conduix-cp: bad default for %s: %s\n", keys[i].name, why);
            abort(); /* a programming error in keys[] */
        }
    }
    if (text != NULL && parse_yaml(&L, text, len) != 0)
        goto fail;
    if ((flags & CX_CONFIG_ENV) && apply_env(&L) != 0)
        goto fail;
    if (check(&L, flags) != 0)
        goto fail;
    return L.cfg;

fail:
    for (size_t i = 0; i < L.noauth2; i++)
        free_provider(&L.oauth2[i].p);
    for (size_t i = 0; i < L.noidc; i++)
        free_provider(&L.oidc[i].p);
    free(L.oauth2);
    free(L.oidc);
    cx_config_free(L.cfg);
    return NULL;
}

cx_config_t *cx_config_load_string(const char *yaml, size_t len, const char *name, int use_env, char *err, size_t errlen)
{
    return load(yaml ? yaml : "", yaml ? len : 0, name, use_env ? CX_CONFIG_ENV : 0, err, errlen);
}

/* cx_config_load -- read the file (or the default one when it exists) and load it with the environment. */
cx_config_t *cx_config_load(const char *path, char *err, size_t errlen)
{
    return cx_config_load_flags(path, CX_CONFIG_ENV, err, errlen);
}

cx_config_t *cx_config_load_flags(const char *path, int flags, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = NULL;
    cx_config_t *cfg = NULL;

    if (path == NULL && access(CX_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = CX_CONFIG_DEFAULT_PATH;
    if (path == NULL)
        return load(NULL, 0, NULL, flags, err, errlen);

    if ((f = fopen(path, "r")) == NULL) {
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    text = cx_malloc(MAX_FILE_SIZE + 1);
    len = fread(text, 1, MAX_FILE_SIZE + 1, f);
    if (ferror(f)) {
        seterr(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (len > MAX_FILE_SIZE) {
        seterr(err, errlen, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
        goto fail;
    }
    text[len] = '\0';
    if ((cfg = load(text, len, path, flags, err, errlen)) != NULL)
        cfg->path = cx_strdup(path);

fail:
    free(text);
    (void)fclose(f); /* read only */
    return cfg;
}

void cx_config_free(cx_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        void *field = (char *)cfg + keys[i].off;
        if (keys[i].type == K_STR || keys[i].type == K_ENUM)
            free(*(char **)field);
        else if (keys[i].type == K_LIST)
            free_list(*(char ***)field);
    }
    for (size_t i = 0; i < cfg->auth.nproviders; i++)
        free_provider(&cfg->auth.providers[i]);
    free(cfg->auth.providers);
    free(cfg->path);
    free(cfg);
}

/* format_value -- a scalar key's value as text, for the reload warning. */
static const char *format_value(const cx_config_t *cfg, const key_t_ *k, char *buf, size_t len)
{
    const void *field = (const char *)cfg + k->off;
    switch (k->type) {
    case K_INT:
    case K_BOOL:
        snprintf(buf, len, "%d", *(const int *)field);
        break;
    case K_DUR:
        snprintf(buf, len, "%lldms", (long long)*(const int64_t *)field);
        break;
    case K_SIZE:
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)field);
        break;
    case K_FLOAT:
        snprintf(buf, len, "%g", *(const double *)field);
        break;
    case K_STR:
    case K_ENUM:
        snprintf(buf, len, "\"%s\"", *(char *const *)field);
        break;
    default:
        snprintf(buf, len, "(list)");
    }
    return buf;
}

/* cx_config_diff_restart -- keep the restart-only keys of the running configuration across a reload. */
int cx_config_diff_restart(const cx_config_t *old, cx_config_t *new_cfg)
{
    int n = 0;
    char a[PATH_MAX + 8], b[PATH_MAX + 8];
    for (size_t i = 0; i < NKEYS; i++) {
        const key_t_ *k = &keys[i];
        if (k->reload)
            continue;
        const void *of = (const char *)old + k->off;
        void *nf = (char *)new_cfg + k->off;
        int differ;
        switch (k->type) {
        case K_INT:
        case K_BOOL:
            differ = *(const int *)of != *(int *)nf;
            break;
        case K_DUR:
        case K_SIZE:
            differ = *(const int64_t *)of != *(int64_t *)nf;
            break;
        case K_FLOAT:
            differ = *(const double *)of != *(double *)nf;
            break;
        case K_STR:
        case K_ENUM:
            differ = strcmp(*(char *const *)of, *(char **)nf) != 0;
            break;
        default:
            differ = 0; /* XXX lists and providers are never restart-only */
        }
        if (!differ)
            continue;
        cx_log_warnx("config reload: %s changed from %s to %s; it needs a restart, keeping %s", k->name,
                     format_value(old, k, a, sizeof(a)), format_value(new_cfg, k, b, sizeof(b)), a);
        n++;
        switch (k->type) {
        case K_STR:
        case K_ENUM:
            free(*(char **)nf);
            *(char **)nf = cx_strdup(*(char *const *)of);
            break;
        case K_DUR:
        case K_SIZE:
            *(int64_t *)nf = *(const int64_t *)of;
            break;
        case K_FLOAT:
            *(double *)nf = *(const double *)of;
            break;
        default:
            *(int *)nf = *(const int *)of;
        }
    }
    return n;
}
