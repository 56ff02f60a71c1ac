/*
 * db.c -- this process's MySQL connection and the one way SQL is run (cx_db_exec): prepared statements
 * cached per SQL text, typed parameters, every result column fetched as a string.
 *
 * One connection per process (static state; a process is single-threaded), opened after fork by
 * cx_db_open. MYSQL_OPT_RECONNECT stays off, because the library's silent reconnect invalidates every
 * prepared statement; instead a lost connection is dropped with all its statements.
 *
 * Every call runs on MariaDB's non-blocking API and waits for the server with poll(2) up to its own
 * deadline (cx_db_set_call_timeout: database.query_timeout in a worker, database.read_timeout
 * elsewhere), to the millisecond: the library's own timeouts count whole seconds. A wait that reaches its
 * deadline makes the library fail the call like a lost connection.
 *
 * A circuit breaker (breaker.c, one failure opens it) keeps a process from waiting on MySQL twice: a
 * call that timed out, or a connect that failed, opens it, and from then on every call fails at once with
 * CX_UNAVAIL, without I/O, so a worker answers 503 at once and keeps serving everything else. Reconnects
 * are probes, never part of a call: cx_db_probe, run by the process's loop (the worker's event loop, the
 * singletons' child loop), makes a non-blocking connect now and then (at once after opening, then with a
 * backoff doubling to PROBE_MAX_MS) and looks at it without ever blocking; the connection it makes becomes
 * this process's and closes the breaker. A call connects by itself only while the breaker is closed: the
 * first connect, one after database.max_idle_conns closed an idle connection, or one after the server
 * closed the connection (a restart, a KILL), each bounded like any other wait of the call.
 *
 * A statement is retried only when it cannot have run twice: its prepare failed on a dead connection,
 * the client could not send it (CR_SERVER_GONE_ERROR), it is a SELECT outside a transaction, or InnoDB
 * chose it as a deadlock victim outside a transaction (rolled back, up to 3 times); never after a
 * timeout. A deadlock inside a transaction rolls all of it back: the statement fails, and
 * cx_db_deadlocked tells the caller it may run the whole transaction again (runs.c does). Before a statement outside a transaction,
 * a peek at the socket (and after a long idle time a ping) finds a connection the server closed meanwhile, so that a MySQL restart
 * or KILL costs no request an error.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "conduix/breaker.h"
#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/db.h"
#include "conduix/hash.h"
#include "conduix/shm.h"

#define CACHE_MAX 256        /* prepared statements kept per connection */
#define PROBE_FIRST_MS 1     /* the first probe after the breaker opened: at once, so a spurious timeout costs little */
#define PROBE_MAX_MS 500     /* the longest wait between two probes while MySQL is away */
#define PROBE_POLL_MS 20     /* how soon cx_db_probe wants to look at a probe in flight again */
#define DEADLOCK_RETRIES 3   /* re-runs of a deadlock victim outside a transaction */
#define IDLE_PING_MS 2000    /* ping before a write on a connection idle this long */
#define FETCH_BUF 256        /* initial per-column fetch buffer; longer values are re-fetched */
#define SQL_LOG_MAX 400      /* SQL text shown in a log line */
#define E_LOGGED 0xffffffffu /* pseudo error number: failure already logged */

/* The process's own connection takes multi-statement texts: cx_db_batch sends a transaction in one. Every
 * other text sent on it is a constant (transaction control); parameters go through prepared statements
 * or, in a batch, escaped literals. */
#define OWN_FLAGS CLIENT_MULTI_STATEMENTS
#define BATCH_MAX_BYTES ((size_t)64 * 1024 * 1024) /* a batch's text; longer is refused (max_allowed_packet is smaller anyway) */

#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_IO_MS 30000

static const char TZ_SQL[] = "SET time_zone = '+00:00'";

typedef struct entry {
    uint64_t hash;
    char *sql;
    size_t len;
    MYSQL_STMT *st;
    uint64_t used; /* tick of last use, for LRU eviction */
} entry_t;

/* Where and how to connect. */
typedef struct target {
    const char *host, *user, *password, *name, *sock;
    int port;
    unsigned connect_s, read_s, write_s; /* the library's own timeouts (whole seconds), a backstop */
} target_t;

/* A connect on the non-blocking API, in steps: the connect, then the session's time zone. */
typedef struct dialer {
    MYSQL *m;   /* the connection being made; the result once finished (NULL: failed, err says why) */
    MYSQL *ret; /* mysql_real_connect's result */
    int iret;   /* mysql_real_query's result */
    int status; /* what the call in progress waits for (MYSQL_WAIT_*); 0 when it has finished */
    int stage;  /* 0 connecting, 1 setting the time zone, 2 done */
    int timed_out;
    int64_t deadline, timeout_ms;
    char err[512];
} dialer_t;

static struct {
    int opened;
    char *host, *user, *password, *name, *socket;
    int port;
    int64_t connect_ms, read_ms, write_ms;
    int64_t call_ms; /* the bound of each call's wait for MySQL (a statement, a ping, a connect in a call) */
    MYSQL *m;
    int64_t last_used_ms; /* cx_now_ms of the last successful round trip */
    cx_breaker_t br;      /* open: calls fail at once with CX_UNAVAIL until a probe reconnects */
    int64_t down_since;   /* cx_now_ms when the breaker opened; 0 while closed */
    int timed_out;        /* the last wait on D.m ended at its deadline */
    dialer_t probe;       /* the reconnect in flight (probe.m != NULL), driven by cx_db_probe */
    int in_tx;
    int tx_aborted; /* the server ended the transaction behind the caller: CX_UNAVAIL or CX_ERR for commit */
    int deadlocked; /* InnoDB rolled the transaction begun last back as a deadlock victim */
    entry_t cache[CACHE_MAX];
    size_t ncache;
    uint64_t tick;
    uint64_t insert_id;
    char conflict_key[128];
} D;

static int64_t call_timeout_ms; /* cx_db_set_call_timeout; kept across cx_db_open */

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

/* poll_io -- poll the socket of m for what a non-blocking call waits for (status), up to timeout_ms:
 * the events for its _cont call, 0 when none came, -1 on EINTR. */
static int poll_io(MYSQL *m, int status, int64_t timeout_ms)
{
    struct pollfd p = {.fd = (int)mysql_get_socket(m), .events = 0};
    int n, ev = 0;

    if (status & MYSQL_WAIT_READ)
        p.events |= POLLIN;
    if (status & MYSQL_WAIT_WRITE)
        p.events |= POLLOUT;
    if (status & MYSQL_WAIT_EXCEPT)
        p.events |= POLLPRI;
    n = poll(&p, 1, timeout_ms > 0 ? (int)(timeout_ms < 86400000 ? timeout_ms : 86400000) : 0);
    if (n <= 0)
        return n < 0 && errno == EINTR ? -1 : 0;
    if (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
        ev |= MYSQL_WAIT_READ;
    if (p.revents & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
        ev |= MYSQL_WAIT_WRITE;
    if (p.revents & POLLPRI)
        ev |= MYSQL_WAIT_EXCEPT;
    return ev != 0 ? ev : (status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT));
}

/* wait_io -- wait until the socket of m is ready for what a non-blocking call waits for (status), or
 * until deadline (or the library's own timeout, when it asks for one); the events for its _cont call.
 * MYSQL_WAIT_TIMEOUT, with *timed_out set, when the time is up: the library then fails the call. */
static int wait_io(MYSQL *m, int status, int64_t deadline, int *timed_out)
{
    int64_t now = cx_now_ms(), until = deadline;
    int ev;

    if (status & MYSQL_WAIT_TIMEOUT) {
        int64_t lib = now + (int64_t)mysql_get_timeout_value_ms(m);
        if (lib < until)
            until = lib;
    }
    while ((ev = poll_io(m, status, until - now)) <= 0) {
        if ((now = cx_now_ms()) >= until && ev == 0) {
            *timed_out = 1;
            return MYSQL_WAIT_TIMEOUT;
        }
    }
    return ev;
}

/* dial_fail -- the connect failed: the reason in d->err, the connection freed. 0 (finished). */
static int dial_fail(dialer_t *d, const char *what)
{
    if (d->timed_out)
        snprintf(d->err, sizeof(d->err), "%s: no answer within %lld ms", what, (long long)d->timeout_ms);
    else
        snprintf(d->err, sizeof(d->err), "%s: %s (%u)", what, mysql_error(d->m), mysql_errno(d->m));
    mysql_close(d->m);
    d->m = NULL;
    d->status = 0;
    d->stage = 2;
    return 0;
}

/* dial_step -- go on with a connect, events being what its socket is ready for (or MYSQL_WAIT_TIMEOUT).
 * Returns what it waits for next, or 0 when it has finished: d->m is the connection, or NULL with the
 * reason in d->err. */
static int dial_step(dialer_t *d, int events)
{
    if (d->status != 0) {
        if (d->stage == 0)
            d->status = mysql_real_connect_cont(&d->ret, d->m, events);
        else
            d->status = mysql_real_query_cont(&d->iret, d->m, events);
        if (d->status != 0)
            return d->status;
    }
    if (d->stage == 0) {
        if (d->ret == NULL)
            return dial_fail(d, "connect");
        d->stage = 1;
        d->status = mysql_real_query_start(&d->iret, d->m, TZ_SQL, sizeof(TZ_SQL) - 1);
        if (d->status != 0)
            return d->status;
    }
    if (d->iret != 0)
        return dial_fail(d, TZ_SQL);
    d->stage = 2;
    return 0;
}

/* dial_start -- begin a connect to t (timeouts, utf8mb4, the non-blocking API), to finish within
 * timeout_ms; returns as dial_step. */
static int dial_start(dialer_t *d, const target_t *t, unsigned long flags, int64_t timeout_ms)
{
    const char *host = t->host, *sock = t->sock;
    my_bool off = 0;
    unsigned proto;

    memset(d, 0, sizeof(*d));
    d->timeout_ms = timeout_ms;
    d->deadline = cx_now_ms() + timeout_ms;
    d->stage = 2;
    if ((d->m = mysql_init(NULL)) == NULL) {
        snprintf(d->err, sizeof(d->err), "mysql_init: out of memory");
        return 0;
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
    mysql_options(d->m, MYSQL_OPT_NONBLOCK, 0);
    mysql_options(d->m, MYSQL_OPT_CONNECT_TIMEOUT, &t->connect_s);
    mysql_options(d->m, MYSQL_OPT_READ_TIMEOUT, &t->read_s);
    mysql_options(d->m, MYSQL_OPT_WRITE_TIMEOUT, &t->write_s);
    mysql_options(d->m, MYSQL_OPT_RECONNECT, &off);
    mysql_options(d->m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(d->m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    d->stage = 0;
    d->status = mysql_real_connect_start(&d->ret, d->m, sock != NULL ? "localhost" : (host != NULL && host[0] ? host : "localhost"),
                                         t->user, t->password, t->name != NULL && t->name[0] ? t->name : NULL,
                                         sock != NULL ? 0 : (unsigned)t->port, sock, flags | CLIENT_FOUND_ROWS);
    return d->status != 0 ? d->status : dial_step(d, 0);
}

/* dial -- a new connection, ready for use, within timeout_ms; NULL with the reason in err. */
static MYSQL *dial(const target_t *t, unsigned long flags, int64_t timeout_ms, char *err, size_t errlen)
{
    dialer_t d;
    int st = dial_start(&d, t, flags, timeout_ms);

    while (st != 0)
        st = dial_step(&d, wait_io(d.m, st, d.deadline, &d.timed_out));
    if (d.m == NULL)
        snprintf(err, errlen, "%s", d.err);
    return d.m;
}

/* dial_abort -- end a connect in flight (the process closes its connection). */
static void dial_abort(dialer_t *d)
{
    if (d->m == NULL)
        return;
    if (d->status != 0) {
        int fd = (int)mysql_get_socket(d->m);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        d->timed_out = 1;
        while (dial_step(d, MYSQL_WAIT_TIMEOUT) != 0)
            ;
    }
    if (d->m != NULL)
        mysql_close(d->m);
    memset(d, 0, sizeof(*d));
}

static void target_of(target_t *t, const cx_config_t *cfg, int64_t io_ms)
{
    t->host = cfg->database.host;
    t->port = cfg->database.port > 0 ? cfg->database.port : 3306;
    t->user = cfg->database.user;
    t->password = cfg->database.password;
    t->name = cfg->database.name;
    t->sock = cfg->database.socket;
    t->connect_s = secs(cfg->database.connect_timeout_ms, DEFAULT_CONNECT_MS);
    t->read_s = secs(io_ms > 0 ? io_ms : cfg->database.read_timeout_ms, DEFAULT_IO_MS);
    t->write_s = secs(io_ms > 0 ? io_ms : cfg->database.write_timeout_ms, DEFAULT_IO_MS);
}

static void target_own(target_t *t)
{
    t->host = D.host;
    t->port = D.port;
    t->user = D.user;
    t->password = D.password;
    t->name = D.name;
    t->sock = D.socket;
    t->connect_s = secs(D.connect_ms, DEFAULT_CONNECT_MS);
    t->read_s = secs(D.read_ms, DEFAULT_IO_MS);
    t->write_s = secs(D.write_ms, DEFAULT_IO_MS);
}

struct st_mysql *cx_db_connect_new(const cx_config_t *cfg, unsigned long client_flags, int64_t io_timeout_ms, char *err,
                                   size_t errlen)
{
    target_t t;

    target_of(&t, cfg, io_timeout_ms);
    return dial(&t, client_flags, cfg->database.connect_timeout_ms > 0 ? cfg->database.connect_timeout_ms : DEFAULT_CONNECT_MS, err,
                errlen);
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

/* ---- one call on the non-blocking API, to its end or its deadline (D.call_ms from now) ---- */

#define NB_CALL(start, cont)                                                                                                       \
    do {                                                                                                                           \
        int64_t dl_ = cx_now_ms() + D.call_ms;                                                                                     \
        int st_ = (start);                                                                                                         \
        D.timed_out = 0;                                                                                                           \
        while (st_ != 0) {                                                                                                         \
            int ev_ = wait_io(D.m, st_, dl_, &D.timed_out);                                                                        \
            st_ = cont;                                                                                                            \
        }                                                                                                                          \
    } while (0)

static int nb_query(const char *q, size_t len)
{
    int ret = 1;
    NB_CALL(mysql_real_query_start(&ret, D.m, q, (unsigned long)len), mysql_real_query_cont(&ret, D.m, ev_));
    return ret;
}

static int nb_ping(void)
{
    int ret = 1;
    NB_CALL(mysql_ping_start(&ret, D.m), mysql_ping_cont(&ret, D.m, ev_));
    return ret;
}

static int nb_next_result(void)
{
    int ret = 1;
    NB_CALL(mysql_next_result_start(&ret, D.m), mysql_next_result_cont(&ret, D.m, ev_));
    return ret;
}

static int nb_prepare(MYSQL_STMT *st, const char *sql, size_t len)
{
    int ret = 1;
    NB_CALL(mysql_stmt_prepare_start(&ret, st, sql, (unsigned long)len), mysql_stmt_prepare_cont(&ret, st, ev_));
    return ret;
}

static int nb_execute(MYSQL_STMT *st)
{
    int ret = 1;
    NB_CALL(mysql_stmt_execute_start(&ret, st), mysql_stmt_execute_cont(&ret, st, ev_));
    return ret;
}

static int nb_store(MYSQL_STMT *st)
{
    int ret = 1;
    NB_CALL(mysql_stmt_store_result_start(&ret, st), mysql_stmt_store_result_cont(&ret, st, ev_));
    return ret;
}

static void nb_stmt_close(MYSQL_STMT *st)
{
    my_bool ret = 0;
    if (D.m == NULL) {
        mysql_stmt_close(st); /* detached from a closed connection: nothing is sent */
        return;
    }
    NB_CALL(mysql_stmt_close_start(&ret, st), mysql_stmt_close_cont(&ret, st, ev_));
    (void)ret;
}

static void forget(entry_t *e)
{
    if (e->st != NULL)
        nb_stmt_close(e->st);
    free(e->sql);
    *e = D.cache[--D.ncache];
    memset(&D.cache[D.ncache], 0, sizeof(D.cache[0]));
}

/* drop -- close the connection and every statement prepared on it. The connection goes first (the
 * server forgets a session's statements with it, and the library detaches them); a dead one is shut down
 * before, so that closing it sends nothing that could wait. */
static void drop(int dead)
{
    if (D.m != NULL) {
        int fd = (int)mysql_get_socket(D.m);
        if (dead && fd >= 0)
            shutdown(fd, SHUT_RDWR);
        mysql_close(D.m);
        D.m = NULL;
    }
    while (D.ncache > 0)
        forget(&D.cache[D.ncache - 1]);
}

/* down -- MySQL could not be reached (a connect failed, or a wait reached its deadline): the breaker
 * opens, so every call fails at once until a probe reconnects. Logged once per outage. */
static void down(const char *cause)
{
    int64_t now = cx_now_ms();
    int was_closed = D.br.state == CX_BREAKER_CLOSED;

    cx_shm_count(CX_C_DB_ERRORS, 1);
    cx_breaker_failure(&D.br, now);
    if (was_closed) {
        D.down_since = now;
        cx_shm_count(CX_C_DB_BREAKER_OPENS, 1);
        cx_log_errorx("mysql: %s: %s; circuit breaker open: calls fail at once until a probe reconnects", where(), cause);
    } else {
        cx_log_debug("mysql: probe of %s failed: %s; next in %lld ms", where(), cause, (long long)(D.br.open_until - now));
    }
}

/* up -- m is this process's connection now; the breaker closes. */
static void up(MYSQL *m)
{
    int64_t now = cx_now_ms();

    D.m = m;
    D.last_used_ms = now;
    cx_breaker_success(&D.br, now);
    if (D.down_since != 0) {
        cx_log_info("mysql: connected to %s again after %lld ms; circuit breaker closed", where(), (long long)(now - D.down_since));
        D.down_since = 0;
    }
}

/* lost -- the connection died under a call: drop it; a transaction on it is gone. A call that timed out
 * opens the breaker: the server does not answer, and nobody else should wait for it. */
static void lost(unsigned err, const char *msg)
{
    char cause[640];
    int timed_out = D.timed_out;

    if (timed_out)
        snprintf(cause, sizeof(cause), "no answer within %lld ms (%s, %u)", (long long)D.call_ms, msg, err);
    else
        snprintf(cause, sizeof(cause), "%s (%u)", msg, err);
    drop(1);
    if (D.in_tx) {
        D.in_tx = 0;
        D.tx_aborted = CX_UNAVAIL;
    }
    if (timed_out) {
        down(cause);
    } else {
        cx_shm_count(CX_C_DB_ERRORS, 1);
        cx_log_warnx("mysql: connection to %s lost: %s", where(), cause);
    }
}

/* connect_now -- connect inside a call (the breaker is closed), within the call's bound. */
static int connect_now(void)
{
    char err[512];
    target_t t;
    MYSQL *m;
    int64_t bound = D.call_ms < D.connect_ms ? D.call_ms : D.connect_ms;

    target_own(&t);
    if ((m = dial(&t, OWN_FLAGS, bound, err, sizeof(err))) == NULL) {
        down(err);
        return CX_UNAVAIL;
    }
    up(m);
    return CX_OK;
}

/* ensure -- a live connection; CX_UNAVAIL at once while the breaker is open (a probe reconnects). */
static int ensure(void)
{
    if (D.m != NULL)
        return CX_OK;
    if (!D.opened || D.br.state != CX_BREAKER_CLOSED)
        return CX_UNAVAIL;
    return connect_now();
}

void cx_db_set_call_timeout(int64_t ms)
{
    call_timeout_ms = ms;
    if (D.opened && ms > 0)
        D.call_ms = ms;
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
    D.connect_ms = cfg->database.connect_timeout_ms > 0 ? cfg->database.connect_timeout_ms : DEFAULT_CONNECT_MS;
    D.read_ms = cfg->database.read_timeout_ms;
    D.write_ms = cfg->database.write_timeout_ms;
    D.call_ms = call_timeout_ms > 0 ? call_timeout_ms : D.read_ms > 0 ? D.read_ms : DEFAULT_IO_MS;
    cx_breaker_init(&D.br, 1, PROBE_MAX_MS, 1);
    cx_breaker_set_probe(&D.br, PROBE_FIRST_MS);
    D.opened = 1;
    return ensure();
}

void cx_db_close(void)
{
    dial_abort(&D.probe);
    drop(0);
    free(D.host);
    free(D.user);
    free(D.password);
    free(D.name);
    free(D.socket);
    memset(&D, 0, sizeof(D));
}

/* probed -- the probe in flight has finished: its connection is ours, or the breaker stays open. */
static int64_t probed(void)
{
    MYSQL *m = D.probe.m;

    if (m != NULL) {
        memset(&D.probe, 0, sizeof(D.probe));
        up(m);
        return -1;
    }
    down(D.probe.err);
    memset(&D.probe, 0, sizeof(D.probe));
    int64_t left = D.br.open_until - cx_now_ms();
    return left > 0 ? left : 0;
}

int64_t cx_db_probe(void)
{
    int64_t now = cx_now_ms();
    dialer_t *p = &D.probe;
    int ev;

    if (!D.opened || (p->m == NULL && (D.m != NULL || D.br.state == CX_BREAKER_CLOSED)))
        return -1; /* nothing to mend: a closed breaker lets a call connect by itself */
    if (p->m == NULL) {
        target_t t;
        if (!cx_breaker_allow(&D.br, now)) {
            int64_t left = D.br.open_until - now;
            return left > 0 ? left : 0;
        }
        target_own(&t);
        if (dial_start(p, &t, OWN_FLAGS, D.connect_ms) == 0)
            return probed();
    }
    if ((ev = poll_io(p->m, p->status, 0)) <= 0) {
        if (now < p->deadline)
            return PROBE_POLL_MS;
        p->timed_out = 1;
        ev = MYSQL_WAIT_TIMEOUT;
    }
    if (dial_step(p, ev) != 0)
        return PROBE_POLL_MS;
    return probed();
}

int cx_db_close_idle(int64_t idle_ms)
{
    if (D.m == NULL || D.in_tx || cx_now_ms() - D.last_used_ms < idle_ms)
        return 0;
    cx_log_debug("mysql: closing the connection to %s, idle for %lld ms (database.max_idle_conns)", where(),
                 (long long)(cx_now_ms() - D.last_used_ms));
    drop(0);
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
 * longer idle time a write is preceded by a ping too, for connections that died without a FIN.
 * 0: the connection is good; 1: it was closed, a new one may be made; -1: the ping timed out (the
 * breaker is open now). */
static int stale(void)
{
    char c;
    int fd = (int)mysql_get_socket(D.m);
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (cx_now_ms() - D.last_used_ms < IDLE_PING_MS || nb_ping() == 0)
            return 0;
        if (D.timed_out) {
            lost(mysql_errno(D.m), mysql_error(D.m));
            return -1;
        }
        cx_log_warnx("mysql: connection to %s idle since %lld ms failed a ping: %s (%u); reconnecting", where(),
                     (long long)(cx_now_ms() - D.last_used_ms), mysql_error(D.m), mysql_errno(D.m));
        drop(1);
        return 1;
    }
    cx_log_info("mysql: connection to %s was closed by the server while idle; reconnecting", where());
    drop(1);
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
    if (nb_prepare(st, sql, len) != 0) {
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

/* is_time -- a DATETIME, TIMESTAMP or DATE column, which fetch reads as a MYSQL_TIME and writes as text
 * itself: libmariadb's conversion of one to a string is a snprintf (two on every row of a page of
 * pipelines: a fifth of the list's instructions). */
static int is_time(const MYSQL_FIELD *f)
{
    return (f->type == MYSQL_TYPE_DATETIME || f->type == MYSQL_TYPE_TIMESTAMP || f->type == MYSQL_TYPE_DATE) && f->decimals <= 6;
}

/* time_text -- t as the server writes it: "YYYY-MM-DD" for a DATE, else "YYYY-MM-DD HH:MM:SS" and, for
 * a column with fractional seconds, '.' and as many digits as it has. Returns the length (at most 26). */
static size_t time_text(const MYSQL_TIME *t, enum enum_field_types type, unsigned decimals, char *out)
{
    const unsigned v[6] = {t->year, t->month, t->day, t->hour, t->minute, t->second}, w[6] = {4, 2, 2, 2, 2, 2};
    const char sep[6] = {'-', '-', ' ', ':', ':', '\0'};
    size_t o = 0, parts = type == MYSQL_TYPE_DATE ? 3 : 6;

    for (size_t i = 0; i < parts; i++) {
        for (unsigned k = w[i], x = v[i]; k > 0; k--, x /= 10)
            out[o + k - 1] = (char)('0' + x % 10);
        o += w[i];
        if (i + 1 < parts)
            out[o++] = sep[i];
    }
    if (type != MYSQL_TYPE_DATE && decimals > 0) {
        unsigned long x = t->second_part;
        out[o++] = '.';
        for (unsigned k = 6; k > decimals; k--)
            x /= 10;
        for (unsigned k = decimals; k > 0; k--, x /= 10)
            out[o + k - 1] = (char)('0' + x % 10);
        o += decimals;
    }
    return o;
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
    MYSQL_TIME *times = NULL;
    unsigned err = 0, nc = 0;
    size_t cap;

    if (meta == NULL) {
        err = mysql_stmt_errno(st) ? mysql_stmt_errno(st) : CR_UNKNOWN_ERROR;
        snprintf(msg, msglen, "result metadata: %s", mysql_stmt_error(st));
        return err;
    }
    if (nb_store(st) != 0)
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
    times = cx_calloc(nc ? nc : 1, sizeof(MYSQL_TIME));
    for (unsigned c = 0; c < nc; c++) {
        bufs[c] = cx_malloc(FETCH_BUF);
        b[c].buffer_type = MYSQL_TYPE_STRING;
        b[c].buffer = bufs[c];
        b[c].buffer_length = FETCH_BUF;
        if (is_time(&f[c])) {
            b[c].buffer_type = f[c].type == MYSQL_TYPE_DATE ? MYSQL_TYPE_DATE : MYSQL_TYPE_DATETIME;
            b[c].buffer = &times[c];
            b[c].buffer_length = sizeof(MYSQL_TIME);
        }
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
            if (is_time(&f[c])) {
                char text[32];
                size_t n = time_text(&times[c], f[c].type, f[c].decimals, text);
                row[c] = cx_malloc(n + 1);
                rl[c] = (unsigned long)n;
                memcpy(row[c], text, n);
                row[c][n] = '\0';
                continue;
            }
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
    free(times);
    cx_db_result_free(r);
    mysql_free_result(meta);
    return err;
}

/* run -- bind, execute and (when asked) fetch one cached statement. 0 or a MySQL error number with
 * its message in msg; *sent tells whether the statement may have reached the server; *spoiled that it
 * failed while its result was read (see cx_db_exec). */
static unsigned run(entry_t *e, const cx_db_param_t *p, size_t n, cx_db_result_t **res, uint64_t *affected, char *msg,
                    size_t msglen, int *sent, int *spoiled)
{
    MYSQL_STMT *st = e->st;
    MYSQL_BIND *b = NULL;
    long long *iv = NULL;
    unsigned err = 0;
    unsigned long want = mysql_stmt_param_count(st);

    *sent = *spoiled = 0;
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
                b[i].buffer = (char *)p[i].s; /* not const in MYSQL_BIND; an input buffer is only read */
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
    if (nb_execute(st) != 0) {
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
            *spoiled = err != 0;
            if (err == 0 && affected != NULL)
                *affected = (*res)->nrows;
        } else if (nb_store(st) != 0) {
            *spoiled = 1;
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
    int conn_retry = 0, deadlocks = 0, reprepared = 0, checked = 0, spoiled = 0;
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
        if (!D.in_tx && !checked++) {
            int gone = stale();
            if (gone < 0)
                return CX_UNAVAIL;
            if (gone > 0)
                continue; /* nothing was sent: reconnect and go on */
        }
        entry_t *e = lookup(sql, len, h);
        if (e == NULL)
            e = prepare(sql, len, h, &err, msg, sizeof(msg));
        if (e != NULL) {
            e->used = ++D.tick;
            err = run(e, params, nparams, res, affected, msg, sizeof(msg), &sent, &spoiled);
        }
        if (err == 0) {
            D.last_used_ms = cx_now_ms();
            return CX_OK;
        }
        if (spoiled && e != NULL && !is_conn_err(err)) {
            /* It failed while its result was read: an INSERT … RETURNING whose row a unique key refused
             * (or that waited for a lock) sends its columns, then the error. Connector/C leaves such a
             * handle unusable (its next execute waits for an answer that never comes), so it is closed
             * here and prepared again at its next use. */
            forget(e);
            e = NULL;
        }
        if (is_conn_err(err)) {
            int in_tx = D.in_tx, timed_out = D.timed_out;
            lost(err, msg);
            if (!in_tx && !timed_out && !conn_retry && (!sent || ro)) {
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
                /* InnoDB rolled the whole transaction back: nothing of it happened, and its caller
                 * may run it again (cx_db_deadlocked); not an error of the server's */
                D.in_tx = 0;
                D.tx_aborted = CX_ERR;
                D.deadlocked = 1;
                cx_shm_count(CX_C_DB_DEADLOCKS, 1);
                cx_log_info("mysql: deadlock victim, the transaction was rolled back: %.*s", SQL_LOG_MAX, sql);
                return CX_ERR;
            }
        }
        /* The statement no longer matches the schema (an ALTER since it was prepared): prepare it again
         * when nothing ran, or when it only read (CR_NEW_STMT_METADATA comes after the execute). */
        if ((err == ER_NEED_REPREPARE || err == ER_UNKNOWN_STMT_HANDLER || (err == CR_NEW_STMT_METADATA && ro)) && !reprepared &&
            (e != NULL || spoiled)) {
            reprepared = 1;
            if (e != NULL)
                forget(e);
            continue;
        }
        cx_shm_count(CX_C_DB_ERRORS, 1);
        if (err == E_LOGGED)
            cx_log_errorx("mysql: %s: %.*s", msg, SQL_LOG_MAX, sql);
        else
            cx_log_errorx("mysql: error %u: %s; in: %.*s", err, msg, SQL_LOG_MAX, sql);
        return CX_ERR;
    }
}

int cx_db_col(const cx_db_result_t *res, const char *col)
{
    if (res == NULL)
        return -1;
    for (unsigned c = 0; c < res->ncols; c++)
        if (strcasecmp(res->colnames[c], col) == 0)
            return (int)c;
    return -1;
}

const char *cx_db_value_at(const cx_db_result_t *res, size_t row, int col)
{
    if (res == NULL || row >= res->nrows || col < 0 || (unsigned)col >= res->ncols)
        return NULL;
    return res->rows[row][col];
}

char *cx_db_take_at(cx_db_result_t *res, size_t row, int col)
{
    char *v = (char *)cx_db_value_at(res, row, col);
    if (v != NULL)
        res->rows[row][col] = NULL;
    return v;
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
    if (nb_query(q, strlen(q)) != 0)
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
    D.deadlocked = 0;
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
            int timed_out = D.timed_out;
            lost(err, mysql_error(D.m));
            if (retry == 0 && !timed_out)
                continue; /* nothing ran: safe to try on a new connection */
            return CX_UNAVAIL;
        }
        cx_shm_count(CX_C_DB_ERRORS, 1);
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
    cx_shm_count(CX_C_DB_ERRORS, 1);
    cx_log_errorx("mysql: COMMIT: %s (%u)", mysql_error(D.m), err);
    if (query("ROLLBACK") != 0)
        drop(1);
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
    cx_shm_count(CX_C_DB_ERRORS, 1);
    cx_log_errorx("mysql: ROLLBACK: %s (%u); dropping the connection", mysql_error(D.m), err);
    drop(1);
    return CX_ERR;
}

int cx_db_in_tx(void)
{
    return D.in_tx;
}

char *cx_db_sql_rows(const char *head, const char *item, const char *sep, size_t n, const char *tail)
{
    size_t len = strlen(head) + n * (strlen(item) + strlen(sep)) + strlen(tail) + 1, at;
    char *sql = cx_malloc(len);

    at = (size_t)snprintf(sql, len, "%s", head);
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(sql + at, len - at, "%s%s", i > 0 ? sep : "", item);
    snprintf(sql + at, len - at, "%s", tail);
    return sql;
}

char *cx_db_sql_case(const char *key, const char *col, size_t n)
{
    size_t len = strlen(key) + strlen(col) + 32;
    char *head = cx_malloc(len), *tail = cx_malloc(len), *sql;

    snprintf(head, len, "CASE %s ", key);
    snprintf(tail, len, " ELSE %s END", col);
    sql = cx_db_sql_rows(head, "WHEN ? THEN ?", " ", n, tail);
    free(head);
    free(tail);
    return sql;
}

int cx_db_deadlocked(void)
{
    return D.deadlocked;
}

int cx_db_ping(void)
{
    for (int retry = 0;; retry++) {
        int rc = ensure();
        if (rc != CX_OK)
            return rc;
        if (nb_ping() == 0) {
            D.last_used_ms = cx_now_ms();
            return CX_OK;
        }
        int timed_out = D.timed_out;
        lost(mysql_errno(D.m), mysql_error(D.m));
        if (retry > 0 || timed_out)
            return CX_UNAVAIL;
    }
}

int cx_db_available(void)
{
    return D.opened && D.br.state == CX_BREAKER_CLOSED;
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
    size_t n;
    int64_t ms;

    if (db == NULL)
        return 0;
    n = strnlen(db, 30);
    memcpy(buf, db, n);
    memcpy(buf + n, "Z", 2); /* the session's time zone is UTC */
    ms = cx_time_parse(buf);
    return ms > 0 ? ms : 0;
}

void cx_db_time_text(int64_t ms, char out[32])
{
    cx_time_format_ms(ms, out); /* "2026-11-25T21:00:00.123Z" */
    out[10] = ' ';
    out[23] = '\0';
}

/* ---- a transaction in one round trip ---- */

/* The text of a batch, grown as it is written. */
typedef struct text {
    char *p;
    size_t len, cap;
} text_t;

static char *text_reserve(text_t *t, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 > 1024 ? (t->len + n) * 2 : 1024;
        t->p = cx_realloc(t->p, t->cap);
    }
    return t->p + t->len;
}

static void text_add(text_t *t, const char *s, size_t n)
{
    memcpy(text_reserve(t, n), s, n);
    t->len += n;
}

/* literal -- append parameter p as an SQL literal to buf (escaped for this connection's character set
 * and SQL mode). */
static void literal(text_t *buf, const cx_db_param_t *p)
{
    switch (p->type) {
    case CX_DB_STR: {
        if (p->s == NULL) {
            text_add(buf, "NULL", 4);
            break;
        }
        size_t n = p->len == (size_t)-1 ? strlen(p->s) : p->len;
        char *to = text_reserve(buf, 2 * n + 3);
        to[0] = '\'';
        unsigned long k = mysql_real_escape_string(D.m, to + 1, p->s, (unsigned long)n);
        to[k + 1] = '\'';
        buf->len += k + 2;
        break;
    }
    case CX_DB_INT: {
        char num[32];
        int k = snprintf(num, sizeof(num), "%lld", p->i);
        text_add(buf, num, (size_t)k);
        break;
    }
    default:
        text_add(buf, "NULL", 4);
        break;
    }
}

/* many_text -- the statements as one multi-statement text, every ? replaced by its parameter,
 * "START TRANSACTION;" before them with begin and ";COMMIT" after them with commit; -1 when the
 * parameters do not match. (Our statements hold no ? inside quotes.) */
static int many_text(text_t *buf, const cx_db_stmt_t *stmts, size_t n, int begin, int commit)
{
    if (begin)
        text_add(buf, "START TRANSACTION;", 18);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        if (i > 0)
            text_add(buf, ";", 1);
        for (const char *c = stmts[i].sql; *c != '\0'; c++) {
            if (*c != '?') {
                text_add(buf, c, 1);
                continue;
            }
            if (k == stmts[i].nparams)
                return -1;
            literal(buf, &stmts[i].params[k++]);
        }
        if (k != stmts[i].nparams)
            return -1;
    }
    if (commit)
        text_add(buf, ";COMMIT", 7);
    return 0;
}

/* batch_run -- send the text, read one outcome per statement (n + 2 with START and COMMIT). 0, or the
 * MySQL error number of the statement that failed (the server ran none after it) with its message. */
static unsigned batch_run(const text_t *text, const cx_db_stmt_t *stmts, size_t n, char *msg, size_t msglen, int *sent)
{
    unsigned err;
    int st;

    *sent = 1;
    st = nb_query(text->p, text->len);
    for (size_t k = 0;; k++) {
        if (st != 0) {
            err = mysql_errno(D.m) ? mysql_errno(D.m) : CR_UNKNOWN_ERROR;
            if (k == 0 && err == CR_SERVER_GONE_ERROR)
                *sent = 0; /* the client could not send it */
            snprintf(msg, msglen, "%s", mysql_error(D.m));
            return err;
        }
        MYSQL_RES *res = mysql_store_result(D.m); /* none for our statements; drained all the same */
        if (res != NULL)
            mysql_free_result(res);
        if (k >= 1 && k <= n && stmts[k - 1].affected != NULL)
            *stmts[k - 1].affected = mysql_affected_rows(D.m);
        if (k == n + 1)
            return 0;
        if ((st = nb_next_result()) < 0) {
            snprintf(msg, msglen, "the server answered %zu of %zu statements", k + 1, n + 2);
            return E_LOGGED;
        }
    }
}

int cx_db_batch(const cx_db_stmt_t *stmts, size_t n)
{
    int deadlocks = 0, conn_retry = 0, checked = 0;
    char msg[512];

    if (D.in_tx) {
        cx_log_errorx("mysql: cx_db_batch inside a transaction");
        return CX_ERR;
    }
    for (;;) {
        text_t text = {0};
        unsigned err;
        int sent = 0, rc;

        if ((rc = ensure()) != CX_OK)
            return rc;
        if (!checked++) {
            int gone = stale();
            if (gone < 0)
                return CX_UNAVAIL;
            if (gone > 0)
                continue;
        }
        if (many_text(&text, stmts, n, 1, 1) != 0 || text.len > BATCH_MAX_BYTES) {
            cx_log_errorx("mysql: batch of %zu statements: %s", n,
                          text.len > BATCH_MAX_BYTES ? "too long" : "parameters do not match");
            free(text.p);
            return CX_ERR;
        }
        err = batch_run(&text, stmts, n, msg, sizeof(msg), &sent);
        free(text.p);
        if (err == 0) {
            D.last_used_ms = cx_now_ms();
            return CX_OK;
        }
        if (is_conn_err(err)) {
            int timed_out = D.timed_out;
            lost(err, msg); /* the server rolls back a transaction whose connection is gone */
            if (!timed_out && !sent && !conn_retry) {
                conn_retry = 1;
                continue;
            }
            return CX_UNAVAIL;
        }
        D.last_used_ms = cx_now_ms();
        /* A statement failed and the rest did not run: the transaction is still open (a deadlock
         * victim's was rolled back by InnoDB; a ROLLBACK then is harmless). */
        if (query("ROLLBACK") != 0)
            drop(1);
        if (err == ER_DUP_ENTRY || err == 1586 /* ER_DUP_ENTRY_WITH_KEY_NAME */) {
            conflict_key(msg);
            cx_log_debug("mysql: duplicate key %s in a batch", D.conflict_key);
            return CX_CONFLICT;
        }
        if (err == ER_LOCK_DEADLOCK && deadlocks < DEADLOCK_RETRIES) {
            deadlocks++; /* nothing of it was committed: run it again */
            cx_log_debug("mysql: deadlock in a batch, retry %d", deadlocks);
            continue;
        }
        cx_shm_count(CX_C_DB_ERRORS, 1);
        cx_log_errorx("mysql: batch of %zu statements: error %u: %s; in: %.*s", n, err, msg, SQL_LOG_MAX, stmts[0].sql);
        return CX_ERR;
    }
}

/* ---- several statements of a transaction in one round trip ---- */

static int nb_store_result(MYSQL_RES **out)
{
    MYSQL_RES *ret = NULL;
    NB_CALL(mysql_store_result_start(&ret, D.m), mysql_store_result_cont(&ret, D.m, ev_));
    *out = ret;
    return ret == NULL && mysql_errno(D.m) != 0 ? 1 : 0;
}

/* text_result -- a text-protocol result as fetch makes one from a prepared statement's: every column a
 * NUL-terminated string, NULL for SQL NULL (the server writes a DATETIME(3) as time_text does). */
static cx_db_result_t *text_result(MYSQL_RES *m)
{
    cx_db_result_t *r = cx_calloc(1, sizeof(*r));
    unsigned nc = mysql_num_fields(m);
    MYSQL_FIELD *f = mysql_fetch_fields(m);
    size_t nr = (size_t)mysql_num_rows(m);
    MYSQL_ROW row;

    r->ncols = nc;
    r->colnames = cx_calloc(nc ? nc : 1, sizeof(char *));
    for (unsigned c = 0; c < nc; c++)
        r->colnames[c] = cx_strdup(f[c].name);
    r->rows = cx_calloc(nr ? nr : 1, sizeof(char **));
    r->lens = cx_calloc(nr ? nr : 1, sizeof(unsigned long *));
    while (r->nrows < nr && (row = mysql_fetch_row(m)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(m);
        char **out = cx_calloc(nc ? nc : 1, sizeof(char *));
        unsigned long *ol = cx_calloc(nc ? nc : 1, sizeof(unsigned long));
        for (unsigned c = 0; c < nc; c++) {
            if (row[c] == NULL)
                continue;
            out[c] = cx_malloc((size_t)len[c] + 1);
            memcpy(out[c], row[c], len[c]);
            out[c][len[c]] = '\0';
            ol[c] = len[c];
        }
        r->rows[r->nrows] = out;
        r->lens[r->nrows++] = ol;
    }
    return r;
}

/* many_run -- send the text and read the outcome of each of its statements (total of them, the first
 * one START TRANSACTION when first is 1): the results of stmts into res. 0, or the MySQL error number of
 * the statement that failed (the server ran none after it; *failed its index among all) with its
 * message. */
static unsigned many_run(const text_t *text, const cx_db_stmt_t *stmts, size_t n, int first, size_t total, cx_db_result_t **res,
                         char *msg, size_t msglen, int *sent, size_t *failed)
{
    int st;

    *sent = 1;
    st = nb_query(text->p, text->len);
    for (size_t k = 0;; k++) {
        MYSQL_RES *m = NULL;
        size_t i = k - (size_t)first; /* the index in stmts, when first <= k < first + n */
        int mine = k >= (size_t)first && i < n;
        *failed = k;
        if (st == 0 && mysql_field_count(D.m) > 0 && nb_store_result(&m) != 0)
            st = 1; /* an INSERT … RETURNING refused by a key sends its columns, then the error */
        if (st != 0) {
            unsigned err = mysql_errno(D.m) ? mysql_errno(D.m) : CR_UNKNOWN_ERROR;
            if (k == 0 && err == CR_SERVER_GONE_ERROR)
                *sent = 0;
            snprintf(msg, msglen, "%s", mysql_error(D.m));
            return err;
        }
        if (mine && stmts[i].affected != NULL)
            *stmts[i].affected = m != NULL ? (uint64_t)mysql_num_rows(m) : (uint64_t)mysql_affected_rows(D.m);
        if (m != NULL) {
            if (mine && res != NULL)
                res[i] = text_result(m);
            mysql_free_result(m);
        }
        if (k + 1 == total)
            return 0;
        if ((st = nb_next_result()) < 0) {
            snprintf(msg, msglen, "the server answered %zu of %zu statements", k + 1, total);
            *failed = k + 1;
            return E_LOGGED;
        }
    }
}

int cx_db_exec_many(const cx_db_stmt_t *stmts, size_t n, int flags, cx_db_result_t **res)
{
    int begin = (flags & CX_DB_BEGIN) != 0, commit = (flags & CX_DB_COMMIT) != 0, conn_retry = 0;
    size_t total = n + (size_t)begin + (size_t)commit;
    char msg[512];

    for (size_t i = 0; res != NULL && i < n; i++)
        res[i] = NULL;
    if (begin == D.in_tx) {
        cx_log_errorx("mysql: cx_db_exec_many %s a transaction", begin ? "beginning inside" : "outside");
        return CX_ERR;
    }
    if (begin) {
        D.tx_aborted = 0;
        D.deadlocked = 0;
    }
    if (total == 0)
        return CX_OK;
    for (;;) {
        text_t text = {0};
        unsigned err;
        size_t failed = 0;
        int sent = 0, rc;

        if ((rc = ensure()) != CX_OK)
            return rc;
        if (many_text(&text, stmts, n, begin, commit) != 0 || text.len > BATCH_MAX_BYTES) {
            cx_log_errorx("mysql: %zu statements in one call: %s", n,
                          text.len > BATCH_MAX_BYTES ? "too long" : "parameters do not match");
            free(text.p);
            return CX_ERR;
        }
        if (begin)
            D.in_tx = 1;
        err = many_run(&text, stmts, n, begin, total, res, msg, sizeof(msg), &sent, &failed);
        free(text.p);
        if (err == 0) {
            D.last_used_ms = cx_now_ms();
            if (commit)
                D.in_tx = 0;
            return CX_OK;
        }
        for (size_t i = 0; res != NULL && i < n; i++) {
            cx_db_result_free(res[i]);
            res[i] = NULL;
        }
        if (is_conn_err(err)) {
            int timed_out = D.timed_out;
            lost(err, msg); /* ends the transaction: the server rolls back one whose connection is gone */
            if (begin && !commit && !timed_out && !conn_retry) {
                conn_retry = 1; /* nothing of a transaction begun here can have been committed */
                continue;
            }
            return CX_UNAVAIL;
        }
        D.last_used_ms = cx_now_ms();
        const char *sql = failed >= (size_t)begin && failed - (size_t)begin < n ? stmts[failed - (size_t)begin].sql : "COMMIT";
        if (err == ER_DUP_ENTRY || err == 1586 /* ER_DUP_ENTRY_WITH_KEY_NAME */) {
            conflict_key(msg);
            cx_log_debug("mysql: duplicate key %s: %.*s", D.conflict_key, SQL_LOG_MAX, sql);
            return CX_CONFLICT; /* the transaction stays open, as after cx_db_exec */
        }
        if (err == ER_LOCK_DEADLOCK) {
            /* InnoDB rolled the whole transaction back (cx_db_exec, cx_db_deadlocked) */
            D.in_tx = 0;
            D.tx_aborted = CX_ERR;
            D.deadlocked = 1;
            cx_shm_count(CX_C_DB_DEADLOCKS, 1);
            cx_log_info("mysql: deadlock victim, the transaction was rolled back: %.*s", SQL_LOG_MAX, sql);
            return CX_ERR;
        }
        cx_shm_count(CX_C_DB_ERRORS, 1);
        if (err == E_LOGGED)
            cx_log_errorx("mysql: %s: %.*s", msg, SQL_LOG_MAX, sql);
        else
            cx_log_errorx("mysql: error %u: %s; in: %.*s", err, msg, SQL_LOG_MAX, sql);
        if (commit && failed + 1 == total) {
            /* the COMMIT itself failed: as cx_db_commit, the transaction is rolled back and over */
            D.in_tx = 0;
            if (query("ROLLBACK") != 0)
                drop(1);
        } else if (begin && failed == 0) {
            D.in_tx = 0; /* START TRANSACTION failed: none is open */
        }
        return CX_ERR;
    }
}

void cx_db_stmt_free(cx_db_stmt_t *st)
{
    free((char *)st->sql);
    free((cx_db_param_t *)st->params);
    free(st->owned);
    st->sql = NULL;
    st->params = NULL;
    st->owned = NULL;
    st->nparams = 0;
}
