/*
 * db.c -- this process's MySQL connection and the one way SQL is run (cx_db_exec): prepared statements
 * cached per SQL text, typed parameters, every result column fetched as a string.
 *
 * One blocking connection per process (static state; a process is single-threaded), opened after fork
 * by cx_db_open. MYSQL_OPT_RECONNECT stays off, because the library's silent reconnect invalidates every
 * prepared statement; instead a lost connection is dropped with all its statements, and the next call
 * reconnects and re-prepares. A failed connect starts a backoff (1 s doubling to 5 s) during which calls
 * fail at once with CX_UNAVAIL, so a dead MySQL costs a request at most one connect timeout.
 *
 * A statement is retried only when it cannot have run twice: its prepare failed on a dead connection,
 * the client could not send it (CR_SERVER_GONE_ERROR), it is a SELECT outside a transaction, or InnoDB
 * chose it as a deadlock victim outside a transaction (rolled back, up to 3 times). Before a statement
 * outside a transaction, a peek at the socket (and after a long idle time a ping) finds a connection the
 * server closed meanwhile, so that a MySQL restart or KILL costs no request an error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "conduix/backoff.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/db.h"
#include "conduix/hash.h"

#define CACHE_MAX 256        /* prepared statements kept per connection */
#define BACKOFF_MIN_MS 1000  /* first wait after a failed connect */
#define BACKOFF_MAX_MS 5000  /* longest wait between connect attempts */
#define DEADLOCK_RETRIES 3   /* re-runs of a deadlock victim outside a transaction */
#define IDLE_PING_MS 2000    /* ping before a write on a connection idle this long */
#define FETCH_BUF 256        /* initial per-column fetch buffer; longer values are re-fetched */
#define SQL_LOG_MAX 400      /* SQL text shown in a log line */
#define E_LOGGED 0xffffffffu /* pseudo error number: failure already logged */

#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_IO_MS 30000

typedef struct entry {
    uint64_t hash;
    char *sql;
    size_t len;
    MYSQL_STMT *st;
    uint64_t used; /* tick of last use, for LRU eviction */
} entry_t;

static struct {
    int opened;
    char *host, *user, *password, *name, *socket;
    int port;
    int64_t connect_ms, read_ms, write_ms;
    MYSQL *m;
    int64_t last_used_ms; /* cx_now_ms of the last successful round trip */
    int down;             /* the last connect attempt failed */
    int logged_down;      /* that failure was logged; the recovery will be too */
    cx_backoff_t backoff;
    int64_t next_try_ms;
    int in_tx;
    int tx_aborted; /* the server ended the transaction behind the caller: CX_UNAVAIL or CX_ERR for commit */
    entry_t cache[CACHE_MAX];
    size_t ncache;
    uint64_t tick;
    uint64_t insert_id;
    char conflict_key[128];
} D;

static char *dupz(const char *s)
{
    return cx_strdup(s != NULL ? s : "");
}

static unsigned secs(int64_t ms, int64_t dflt)
{
    if (ms <= 0)
        ms = dflt;
    int64_t s = (ms + 999) / 1000;
    if (s < 1)
        s = 1;
    if (s > 86400)
        s = 86400;
    return (unsigned)s;
}

/* dial -- a new connection, ready for use: timeouts, utf8mb4, UTC. NULL with the reason in err. */
static MYSQL *dial(const char *host, int port, const char *user, const char *password, const char *name, const char *sock,
                   unsigned connect_s, unsigned read_s, unsigned write_s, unsigned long flags, char *err, size_t errlen)
{
    MYSQL *m = mysql_init(NULL);
    my_bool off = 0;
    unsigned proto;

    if (m == NULL) {
        snprintf(err, errlen, "mysql_init: out of memory");
        return NULL;
    }
    if (sock == NULL || sock[0] == '\0') {
        if (host != NULL && host[0] == '/') {
            sock = host;
            host = NULL;
        } else {
            sock = NULL;
        }
    }
    proto = sock != NULL ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &read_s);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &write_s);
    mysql_options(m, MYSQL_OPT_RECONNECT, &off);
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(m, sock != NULL ? "localhost" : (host != NULL && host[0] ? host : "localhost"), user, password,
                           name != NULL && name[0] ? name : NULL, sock != NULL ? 0 : (unsigned)port, sock,
                           flags | CLIENT_FOUND_ROWS) == NULL) {
        snprintf(err, errlen, "connect: %s (%u)", mysql_error(m), mysql_errno(m));
        goto fail;
    }
    static const char tz[] = "SET time_zone = '+00:00'";
    if (mysql_real_query(m, tz, sizeof(tz) - 1) != 0) {
        snprintf(err, errlen, "%s: %s (%u)", tz, mysql_error(m), mysql_errno(m));
        goto fail;
    }
    return m;
fail:
    mysql_close(m);
    return NULL;
}

struct st_mysql *cx_db_connect_new(const cx_config_t *cfg, unsigned long client_flags, int64_t io_timeout_ms, char *err,
                                   size_t errlen)
{
    return dial(cfg->database.host, cfg->database.port, cfg->database.user, cfg->database.password, cfg->database.name,
                cfg->database.socket, secs(cfg->database.connect_timeout_ms, DEFAULT_CONNECT_MS),
                secs(io_timeout_ms > 0 ? io_timeout_ms : cfg->database.read_timeout_ms, DEFAULT_IO_MS),
                secs(io_timeout_ms > 0 ? io_timeout_ms : cfg->database.write_timeout_ms, DEFAULT_IO_MS), client_flags, err, errlen);
}

/* where -- "host:port/name" or "socket/name", for log lines. */
static const char *where(void)
{
    static char buf[512];
    if (D.socket[0] != '\0' || D.host[0] == '/')
        snprintf(buf, sizeof(buf), "%s/%s", D.socket[0] ? D.socket : D.host, D.name);
    else
        snprintf(buf, sizeof(buf), "%s:%d/%s", D.host, D.port, D.name);
    return buf;
}

static void forget(entry_t *e)
{
    if (e->st != NULL)
        mysql_stmt_close(e->st);
    free(e->sql);
    *e = D.cache[--D.ncache];
    memset(&D.cache[D.ncache], 0, sizeof(D.cache[0]));
}

/* drop -- close the connection and every statement prepared on it. */
static void drop(void)
{
    while (D.ncache > 0)
        forget(&D.cache[D.ncache - 1]);
    if (D.m != NULL) {
        mysql_close(D.m);
        D.m = NULL;
    }
}

/* lost -- the connection died under a call: drop it; a transaction on it is gone. */
static void lost(unsigned err, const char *msg)
{
    cx_log_warnx("mysql: connection to %s lost: %s (%u); reconnecting", where(), msg, err);
    drop();
    if (D.in_tx) {
        D.in_tx = 0;
        D.tx_aborted = CX_UNAVAIL;
    }
}

/* ensure -- a live connection, or CX_UNAVAIL at once while in backoff after a failed connect. */
static int ensure(void)
{
    char err[512];

    if (D.m != NULL)
        return CX_OK;
    if (!D.opened)
        return CX_UNAVAIL;
    if (D.down && cx_now_ms() < D.next_try_ms)
        return CX_UNAVAIL;
    D.m = dial(D.host, D.port, D.user, D.password, D.name, D.socket, secs(D.connect_ms, DEFAULT_CONNECT_MS),
               secs(D.read_ms, DEFAULT_IO_MS), secs(D.write_ms, DEFAULT_IO_MS), 0, err, sizeof(err));
    if (D.m == NULL) {
        int64_t wait;
        if (!D.down)
            cx_backoff_reset(&D.backoff);
        wait = cx_backoff_next(&D.backoff);
        D.down = 1;
        D.next_try_ms = cx_now_ms() + wait;
        if (!D.logged_down) {
            cx_log_errorx("mysql: cannot connect to %s: %s; retrying in the background", where(), err);
            D.logged_down = 1;
        } else {
            cx_log_debug("mysql: reconnect to %s failed: %s; next try in %lld ms", where(), err, (long long)wait);
        }
        return CX_UNAVAIL;
    }
    if (D.logged_down)
        cx_log_info("mysql: connected to %s again", where());
    D.down = 0;
    D.logged_down = 0;
    D.last_used_ms = cx_now_ms();
    return CX_OK;
}

int cx_db_open(const cx_config_t *cfg)
{
    cx_db_close();
    D.host = dupz(cfg->database.host);
    D.port = cfg->database.port > 0 ? cfg->database.port : 3306;
    D.user = dupz(cfg->database.user);
    D.password = dupz(cfg->database.password);
    D.name = dupz(cfg->database.name);
    D.socket = dupz(cfg->database.socket);
    D.connect_ms = cfg->database.connect_timeout_ms;
    D.read_ms = cfg->database.read_timeout_ms;
    D.write_ms = cfg->database.write_timeout_ms;
    cx_backoff_init(&D.backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    D.opened = 1;
    return ensure();
}

void cx_db_close(void)
{
    drop();
    free(D.host);
    free(D.user);
    free(D.password);
    free(D.name);
    free(D.socket);
    memset(&D, 0, sizeof(D));
}

int cx_db_close_idle(int64_t idle_ms)
{
    if (D.m == NULL || D.in_tx || cx_now_ms() - D.last_used_ms < idle_ms)
        return 0;
    cx_log_debug("mysql: closing the connection to %s, idle for %lld ms (database.max_idle_conns)", where(),
                 (long long)(cx_now_ms() - D.last_used_ms));
    drop();
    return 1;
}

/* is_conn_err -- errors after which the connection cannot be trusted any more. */
static int is_conn_err(unsigned e)
{
    switch (e) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case CR_COMMANDS_OUT_OF_SYNC:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_NET_READ_ERROR:
    case ER_NET_READ_INTERRUPTED:
    case ER_NET_ERROR_ON_WRITE:
    case ER_NET_WRITE_INTERRUPTED:
    case ER_NET_PACKETS_OUT_OF_ORDER:
    case 4031: /* ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8) */
        return 1;
    }
    return 0;
}

/* stale -- the server closed this idle connection (restart, wait_timeout, KILL), seen without a round
 * trip: the socket is readable (EOF, or an unsolicited error packet) when no query is in flight. After a
 * longer idle time a write is preceded by a ping too, for connections that died without a FIN. */
static int stale(void)
{
    char c;
    int fd = (int)mysql_get_socket(D.m);
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (cx_now_ms() - D.last_used_ms < IDLE_PING_MS || mysql_ping(D.m) == 0)
            return 0;
        cx_log_warnx("mysql: connection to %s idle since %lld ms failed a ping: %s (%u); reconnecting", where(),
                     (long long)(cx_now_ms() - D.last_used_ms), mysql_error(D.m), mysql_errno(D.m));
        return 1;
    }
    cx_log_info("mysql: connection to %s was closed by the server while idle; reconnecting", where());
    return 1;
}

/* read_only -- a SELECT or SHOW: safe to run again outside a transaction. */
static int read_only(const char *sql)
{
    while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r' || *sql == '(')
        sql++;
    return strncasecmp(sql, "SELECT", 6) == 0 || strncasecmp(sql, "SHOW", 4) == 0;
}

static entry_t *lookup(const char *sql, size_t len, uint64_t h)
{
    for (size_t i = 0; i < D.ncache; i++) {
        entry_t *e = &D.cache[i];
        if (e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0)
            return e;
    }
    return NULL;
}

/* prepare -- a cache entry for sql, evicting the least recently used one when full; NULL with
 * *err set (and *msg pointing at a copy of the message) on failure. */
static entry_t *prepare(const char *sql, size_t len, uint64_t h, unsigned *err, char *msg, size_t msglen)
{
    MYSQL_STMT *st = mysql_stmt_init(D.m);

    if (st == NULL) {
        *err = mysql_errno(D.m) ? mysql_errno(D.m) : CR_OUT_OF_MEMORY;
        snprintf(msg, msglen, "%s", mysql_error(D.m));
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)len) != 0) {
        *err = mysql_stmt_errno(st);
        snprintf(msg, msglen, "%s", mysql_stmt_error(st));
        mysql_stmt_close(st);
        return NULL;
    }
    if (D.ncache == CACHE_MAX) {
        size_t old = 0;
        for (size_t i = 1; i < D.ncache; i++)
            if (D.cache[i].used < D.cache[old].used)
                old = i;
        forget(&D.cache[old]);
    }
    entry_t *e = &D.cache[D.ncache++];
    e->hash = h;
    e->sql = cx_strndup(sql, len);
    e->len = len;
    e->st = st;
    return e;
}

void cx_db_result_free(cx_db_result_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nrows; i++) {
        if (r->rows[i] != NULL)
            for (unsigned c = 0; c < r->ncols; c++)
                free(r->rows[i][c]);
        free(r->rows[i]);
        free(r->lens[i]);
    }
    for (unsigned c = 0; c < r->ncols; c++)
        free(r->colnames[c]);
    free(r->colnames);
    free(r->rows);
    free(r->lens);
    free(r);
}

/* fetch -- the stored result of st, every column as a NUL-terminated string. A value longer than its
 * bound buffer (MYSQL_DATA_TRUNCATED) is fetched again whole with mysql_stmt_fetch_column. */
static unsigned fetch(MYSQL_STMT *st, cx_db_result_t **out, char *msg, size_t msglen)
{
    MYSQL_RES *meta = mysql_stmt_result_metadata(st);
    cx_db_result_t *r = NULL;
    MYSQL_BIND *b = NULL;
    char **bufs = NULL;
    unsigned long *lens = NULL;
    my_bool *nulls = NULL, *errs = NULL;
    unsigned err = 0, nc = 0;
    size_t cap;

    if (meta == NULL) {
        err = mysql_stmt_errno(st) ? mysql_stmt_errno(st) : CR_UNKNOWN_ERROR;
        snprintf(msg, msglen, "result metadata: %s", mysql_stmt_error(st));
        return err;
    }
    if (mysql_stmt_store_result(st) != 0)
        goto stmt_fail;
    nc = mysql_num_fields(meta);
    MYSQL_FIELD *f = mysql_fetch_fields(meta);
    r = cx_calloc(1, sizeof(*r));
    r->ncols = nc;
    r->colnames = cx_calloc(nc ? nc : 1, sizeof(char *));
    for (unsigned c = 0; c < nc; c++)
        r->colnames[c] = cx_strdup(f[c].name);
    cap = (size_t)mysql_stmt_num_rows(st);
    r->rows = cx_calloc(cap ? cap : 1, sizeof(char **));
    r->lens = cx_calloc(cap ? cap : 1, sizeof(unsigned long *));
    if (cap == 0)
        cap = 1;

    b = cx_calloc(nc ? nc : 1, sizeof(*b));
    bufs = cx_calloc(nc ? nc : 1, sizeof(char *));
    lens = cx_calloc(nc ? nc : 1, sizeof(unsigned long));
    nulls = cx_calloc(nc ? nc : 1, sizeof(my_bool));
    errs = cx_calloc(nc ? nc : 1, sizeof(my_bool));
    for (unsigned c = 0; c < nc; c++) {
        bufs[c] = cx_malloc(FETCH_BUF);
        b[c].buffer_type = MYSQL_TYPE_STRING;
        b[c].buffer = bufs[c];
        b[c].buffer_length = FETCH_BUF;
        b[c].length = &lens[c];
        b[c].is_null = &nulls[c];
        b[c].error = &errs[c];
    }
    if (nc > 0 && mysql_stmt_bind_result(st, b) != 0)
        goto stmt_fail;
    for (;;) {
        int rc = mysql_stmt_fetch(st);
        if (rc == MYSQL_NO_DATA)
            break;
        if (rc == 1)
            goto stmt_fail;
        if (r->nrows == cap) {
            cap *= 2;
            r->rows = cx_realloc(r->rows, cap * sizeof(char **));
            r->lens = cx_realloc(r->lens, cap * sizeof(unsigned long *));
        }
        char **row = cx_calloc(nc ? nc : 1, sizeof(char *));
        unsigned long *rl = cx_calloc(nc ? nc : 1, sizeof(unsigned long));
        r->rows[r->nrows] = row;
        r->lens[r->nrows] = rl;
        r->nrows++;
        for (unsigned c = 0; c < nc; c++) {
            if (nulls[c])
                continue;
            unsigned long n = lens[c];
            row[c] = cx_malloc((size_t)n + 1);
            rl[c] = n;
            if (n <= FETCH_BUF) {
                memcpy(row[c], bufs[c], n);
            } else {
                MYSQL_BIND one;
                unsigned long got = 0;
                my_bool isnull = 0, trunc = 0;
                memset(&one, 0, sizeof(one));
                one.buffer_type = MYSQL_TYPE_STRING;
                one.buffer = row[c];
                one.buffer_length = n + 1;
                one.length = &got;
                one.is_null = &isnull;
                one.error = &trunc;
                if (mysql_stmt_fetch_column(st, &one, c, 0) != 0)
                    goto stmt_fail;
            }
            row[c][n] = '\0';
        }
    }
    *out = r;
    r = NULL;
    goto done;
stmt_fail:
    err = mysql_stmt_errno(st) ? mysql_stmt_errno(st) : CR_UNKNOWN_ERROR;
    snprintf(msg, msglen, "fetch: %s", mysql_stmt_error(st));
done:
    for (unsigned c = 0; bufs != NULL && c < nc; c++)
        free(bufs[c]);
    free(bufs);
    free(b);
    free(lens);
    free(nulls);
    free(errs);
    cx_db_result_free(r);
    mysql_free_result(meta);
    return err;
}

/* run -- bind, execute and (when asked) fetch one cached statement. 0 or a MySQL error number with
 * its message in msg; *sent tells whether the statement may have reached the server. */
static unsigned run(entry_t *e, const cx_db_param_t *p, size_t n, cx_db_result_t **res, uint64_t *affected, char *msg,
                    size_t msglen, int *sent)
{
    MYSQL_STMT *st = e->st;
    MYSQL_BIND *b = NULL;
    long long *iv = NULL;
    unsigned err = 0;
    unsigned long want = mysql_stmt_param_count(st);

    *sent = 0;
    if (want != n) {
        snprintf(msg, msglen, "%zu parameters given, %lu expected", n, want);
        return E_LOGGED;
    }
    if (n > 0) {
        b = cx_calloc(n, sizeof(*b));
        iv = cx_calloc(n, sizeof(*iv));
        for (size_t i = 0; i < n; i++) {
            switch (p[i].type) {
            case CX_DB_STR:
                if (p[i].s == NULL) {
                    b[i].buffer_type = MYSQL_TYPE_NULL;
                    break;
                }
                b[i].buffer_type = MYSQL_TYPE_STRING;
                b[i].buffer = (void *)(uintptr_t)p[i].s;
                b[i].buffer_length = (unsigned long)(p[i].len == (size_t)-1 ? strlen(p[i].s) : p[i].len);
                break;
            case CX_DB_INT:
                iv[i] = p[i].i;
                b[i].buffer_type = MYSQL_TYPE_LONGLONG;
                b[i].buffer = &iv[i];
                break;
            default:
                b[i].buffer_type = MYSQL_TYPE_NULL;
                break;
            }
        }
        if (mysql_stmt_bind_param(st, b) != 0)
            goto stmt_fail;
    }
    *sent = 1;
    if (mysql_stmt_execute(st) != 0) {
        if (mysql_stmt_errno(st) == CR_SERVER_GONE_ERROR)
            *sent = 0; /* the client could not send the command */
        goto stmt_fail;
    }
    D.insert_id = mysql_stmt_insert_id(st);
    if (affected != NULL)
        *affected = mysql_stmt_affected_rows(st);
    if (mysql_stmt_field_count(st) > 0) {
        if (res != NULL) {
            err = fetch(st, res, msg, msglen);
            if (err == 0 && affected != NULL)
                *affected = (*res)->nrows;
        } else if (mysql_stmt_store_result(st) != 0) {
            goto stmt_fail;
        }
    }
    mysql_stmt_free_result(st);
    goto done;
stmt_fail:
    err = mysql_stmt_errno(st) ? mysql_stmt_errno(st) : CR_UNKNOWN_ERROR;
    snprintf(msg, msglen, "%s", mysql_stmt_error(st));
    mysql_stmt_free_result(st);
done:
    free(b);
    free(iv);
    return err;
}

/* conflict_key -- the key name in "Duplicate entry 'x' for key 'name'" (MySQL 8: 'table.name'). */
static void conflict_key(const char *msg)
{
    const char *k = strstr(msg, "for key '");
    D.conflict_key[0] = '\0';
    if (k == NULL)
        return;
    k += 9;
    const char *end = strrchr(k, '\'');
    if (end == NULL || end < k)
        return;
    const char *dot = memchr(k, '.', (size_t)(end - k));
    if (dot != NULL)
        k = dot + 1;
    snprintf(D.conflict_key, sizeof(D.conflict_key), "%.*s", (int)(end - k), k);
}

int cx_db_exec(const char *sql, const cx_db_param_t *params, size_t nparams, cx_db_result_t **res, uint64_t *affected)
{
    size_t len = strlen(sql);
    uint64_t h = cx_hash_fnv1a(sql, len);
    int ro = read_only(sql);
    int conn_retry = 0, deadlocks = 0, reprepared = 0, checked = 0;
    char msg[512];

    if (res != NULL)
        *res = NULL;
    if (affected != NULL)
        *affected = 0;
    D.insert_id = 0;
    for (;;) {
        unsigned err = 0;
        int sent = 0, rc;

        if ((rc = ensure()) != CX_OK)
            return rc;
        if (!D.in_tx && !checked++ && stale()) {
            drop(); /* nothing was sent: reconnect and go on */
            continue;
        }
        entry_t *e = lookup(sql, len, h);
        if (e == NULL)
            e = prepare(sql, len, h, &err, msg, sizeof(msg));
        if (e != NULL) {
            e->used = ++D.tick;
            err = run(e, params, nparams, res, affected, msg, sizeof(msg), &sent);
        }
        if (err == 0) {
            D.last_used_ms = cx_now_ms();
            return CX_OK;
        }
        if (is_conn_err(err)) {
            int in_tx = D.in_tx;
            lost(err, msg);
            if (!in_tx && !conn_retry && (!sent || ro)) {
                conn_retry = 1;
                continue;
            }
            return CX_UNAVAIL;
        }
        D.last_used_ms = cx_now_ms();
        if (err == ER_DUP_ENTRY || err == 1586 /* ER_DUP_ENTRY_WITH_KEY_NAME */) {
            conflict_key(msg);
            cx_log_debug("mysql: duplicate key %s: %.*s", D.conflict_key, SQL_LOG_MAX, sql);
            return CX_CONFLICT;
        }
        if (err == ER_LOCK_DEADLOCK) {
            if (!D.in_tx && deadlocks < DEADLOCK_RETRIES) {
                deadlocks++;
                cx_log_debug("mysql: deadlock, retry %d: %.*s", deadlocks, SQL_LOG_MAX, sql);
                continue;
            }
            if (D.in_tx) {
                D.in_tx = 0; /* InnoDB rolled the whole transaction back */
                D.tx_aborted = CX_ERR;
            }
        }
        /* The statement no longer matches the schema (an ALTER since it was prepared): prepare it again
         * when nothing ran, or when it only read (CR_NEW_STMT_METADATA comes after the execute). */
        if ((err == ER_NEED_REPREPARE || err == ER_UNKNOWN_STMT_HANDLER || (err == CR_NEW_STMT_METADATA && ro)) && !reprepared &&
            e != NULL) {
            reprepared = 1;
            forget(e);
            continue;
        }
        if (err == E_LOGGED)
            cx_log_errorx("mysql: %s: %.*s", msg, SQL_LOG_MAX, sql);
        else
            cx_log_errorx("mysql: error %u: %s; in: %.*s", err, msg, SQL_LOG_MAX, sql);
        return CX_ERR;
    }
}

const char *cx_db_value(const cx_db_result_t *res, size_t row, const char *col)
{
    if (res == NULL || row >= res->nrows)
        return NULL;
    for (unsigned c = 0; c < res->ncols; c++)
        if (strcasecmp(res->colnames[c], col) == 0)
            return res->rows[row][c];
    return NULL;
}

uint64_t cx_db_insert_id(void)
{
    return D.insert_id;
}

const char *cx_db_conflict_key(void)
{
    return D.conflict_key;
}

/* query -- one plain statement without result (transaction control). 0 or the MySQL error number. */
static unsigned query(const char *q)
{
    if (mysql_real_query(D.m, q, (unsigned long)strlen(q)) != 0)
        return mysql_errno(D.m) ? mysql_errno(D.m) : CR_UNKNOWN_ERROR;
    D.last_used_ms = cx_now_ms();
    return 0;
}

int cx_db_begin(void)
{
    if (D.in_tx) {
        cx_log_errorx("mysql: cx_db_begin inside a transaction");
        return CX_ERR;
    }
    D.tx_aborted = 0;
    for (int retry = 0;; retry++) {
        int rc = ensure();
        if (rc != CX_OK)
            return rc;
        unsigned err = query("START TRANSACTION");
        if (err == 0) {
            D.in_tx = 1;
            return CX_OK;
        }
        if (is_conn_err(err)) {
            lost(err, mysql_error(D.m));
            if (retry == 0)
                continue; /* nothing ran: safe to try on a new connection */
            return CX_UNAVAIL;
        }
        cx_log_errorx("mysql: START TRANSACTION: %s (%u)", mysql_error(D.m), err);
        return CX_ERR;
    }
}

int cx_db_commit(void)
{
    unsigned err;

    if (!D.in_tx) {
        int rc = D.tx_aborted;
        D.tx_aborted = 0;
        if (rc != 0)
            return rc; /* the transaction was lost or rolled back by the server */
        cx_log_errorx("mysql: cx_db_commit outside a transaction");
        return CX_ERR;
    }
    D.in_tx = 0;
    if (D.m == NULL)
        return CX_UNAVAIL;
    if ((err = query("COMMIT")) == 0)
        return CX_OK;
    if (is_conn_err(err)) {
        lost(err, mysql_error(D.m));
        return CX_UNAVAIL;
    }
    cx_log_errorx("mysql: COMMIT: %s (%u)", mysql_error(D.m), err);
    if (query("ROLLBACK") != 0)
        drop();
    return CX_ERR;
}

int cx_db_rollback(void)
{
    unsigned err;

    D.tx_aborted = 0;
    if (!D.in_tx)
        return CX_OK;
    D.in_tx = 0;
    if (D.m == NULL || (err = query("ROLLBACK")) == 0)
        return CX_OK;
    if (is_conn_err(err)) {
        lost(err, mysql_error(D.m));
        return CX_OK; /* the server rolls back a transaction whose connection is gone */
    }
    cx_log_errorx("mysql: ROLLBACK: %s (%u); dropping the connection", mysql_error(D.m), err);
    drop();
    return CX_ERR;
}

int cx_db_in_tx(void)
{
    return D.in_tx;
}

int cx_db_ping(void)
{
    for (int retry = 0;; retry++) {
        int rc = ensure();
        if (rc != CX_OK)
            return rc;
        if (mysql_ping(D.m) == 0) {
            D.last_used_ms = cx_now_ms();
            return CX_OK;
        }
        lost(mysql_errno(D.m), mysql_error(D.m));
        if (retry > 0)
            return CX_UNAVAIL;
    }
}

int cx_db_available(void)
{
    return D.opened && !D.down;
}

char *cx_db_take(cx_db_result_t *res, size_t row, const char *col)
{
    if (res == NULL || row >= res->nrows)
        return NULL;
    for (unsigned c = 0; c < res->ncols; c++)
        if (strcasecmp(res->colnames[c], col) == 0) {
            char *v = res->rows[row][c];
            res->rows[row][c] = NULL;
            return v;
        }
    return NULL;
}

int64_t cx_db_int(const cx_db_result_t *res, size_t row, const char *col, int64_t dflt)
{
    const char *v = cx_db_value(res, row, col);
    return v != NULL ? strtoll(v, NULL, 10) : dflt;
}

void cx_db_copy(const cx_db_result_t *res, size_t row, const char *col, char *out, size_t size)
{
    const char *v = cx_db_value(res, row, col);
    snprintf(out, size, "%s", v != NULL ? v : "");
}

int64_t cx_db_time_ms(const char *db)
{
    char buf[40];
    int64_t ms;

    if (db == NULL)
        return 0;
    snprintf(buf, sizeof(buf), "%.30sZ", db); /* the session's time zone is UTC */
    ms = cx_time_parse(buf);
    return ms > 0 ? ms : 0;
}

void cx_db_time_text(int64_t ms, char out[32])
{
    cx_time_format_ms(ms, out); /* "2026-11-25T21:00:00.123Z" */
    out[10] = ' ';
    out[23] = '\0';
}
