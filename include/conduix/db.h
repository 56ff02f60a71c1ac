/*
 * db.h -- this process's MySQL connection and the one way SQL is run: prepared statements with typed
 * parameters, results as strings. Connections are opened after fork; every call waits for MySQL at most
 * its call timeout; a connection that timed out or could not be made opens a circuit breaker (calls fail
 * at once with CX_UNAVAIL) until a probe run by the process's loop (cx_db_probe) has reconnected.
 *
 * The data layer is src/db/: one file per table family (pipelines.c, runs.c, commands.c, agents.c,
 * audit.c), each declared in the header of its family, built on cx_db_exec, and the only place with
 * SQL. Every function of it keeps one convention; a new module (schedules, users, sessions) keeps it
 * too:
 *
 *   - Return: CX_OK, or a negative code of cx.h: CX_NOTFOUND (no such row), CX_CONFLICT (a unique key;
 *     cx_db_conflict_key names it), CX_STATE (a compare-and-set found another state), CX_INVALID (an
 *     argument that names nothing usable, e.g. a cursor that is no row), CX_UNAVAIL (MySQL is down),
 *     CX_ERR (anything else, logged where it happened). The expected outcomes (CX_NOTFOUND, CX_CONFLICT,
 *     CX_STATE, CX_INVALID) are not logged: the caller decides what they mean. A pointer result is NULL
 *     on failure.
 *   - Data: C structs of the family's header, owned by the caller and filled only on CX_OK. Bounded
 *     columns are fixed arrays (ids) or enums (statuses, states.h); text is a malloc'ed string, NULL for
 *     SQL NULL. cx_<thing>_free(&x) frees what a struct owns (not the struct) and accepts a zeroed
 *     struct, so `cx_thing_t x = {0}; ... cx_thing_free(&x);` is always right. Several rows come as an
 *     array (cx_<thing>_t **items, size_t *n), freed with cx_db_<things>_free(items, n); a page also
 *     gives int64_t *total, the number of matches. hbmon's bulk reads hand each row to a callback.
 *   - Times: Unix milliseconds, UTC (int64_t; 0 for SQL NULL). cx_db_time_ms reads a DATETIME value,
 *     cx_db_time_text writes one for a parameter.
 *   - No JSON and nothing of HTTP: src/api/ turns the structs into answers (shapes.h). The data layer
 *     touches JSON only as text it stores: JSON columns, and the before/after of audit rows (built with
 *     shapes.h, so an audit row shows what the API shows).
 *   - A change and its audit row are one transaction (cx_db_begin ... cx_db_commit, or roll back).
 */
#ifndef CONDUIX_DB_H
#define CONDUIX_DB_H

#include <stddef.h>
#include <stdint.h>
#include "conduix/config.h"
#include "conduix/cx.h"

typedef enum { CX_DB_NULL = 0, CX_DB_STR, CX_DB_INT } cx_db_type_t;

typedef struct cx_db_param {
    cx_db_type_t type;
    const char *s; /* CX_DB_STR */
    size_t len;    /* CX_DB_STR; (size_t)-1 = strlen(s) */
    long long i;   /* CX_DB_INT */
} cx_db_param_t;

/* A CX_DB_STR parameter whose s is NULL is bound as SQL NULL (so CX_DB_P_STR(NULL) is NULL, and a char
 * array can be passed without a -Waddress warning). */
#define CX_DB_P_STR(v) ((cx_db_param_t){.type = CX_DB_STR, .s = (v), .len = (size_t)-1})
#define CX_DB_P_STRN(v, n) ((cx_db_param_t){.type = CX_DB_STR, .s = (v), .len = (n)})
#define CX_DB_P_INT(v) ((cx_db_param_t){.type = CX_DB_INT, .i = (v)})
#define CX_DB_P_NULL ((cx_db_param_t){.type = CX_DB_NULL})

/* cx_db_text_or_null -- s, or NULL when s is NULL or "": the fixed arrays of a struct hold "" for SQL NULL,
 * and CX_DB_P_TEXT binds them back so. */
static inline const char *cx_db_text_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}
#define CX_DB_P_TEXT(v) CX_DB_P_STR(cx_db_text_or_null(v))

typedef struct cx_db_result {
    unsigned ncols;
    size_t nrows;
    char **colnames;      /* ncols */
    char ***rows;         /* nrows x ncols; NULL for SQL NULL; NUL-terminated */
    unsigned long **lens; /* nrows x ncols */
} cx_db_result_t;

/* cx_db_open -- connect this process (after fork). Failure is not fatal: the breaker opens and
 * cx_db_probe reconnects later. Returns CX_OK, or CX_UNAVAIL (logged once) when MySQL cannot be reached
 * now. A socket in
 * database.socket (or a host starting with '/') means a UNIX socket, anything else TCP. The session runs
 * in UTC (time_zone '+00:00'), utf8mb4, with CLIENT_FOUND_ROWS: an UPDATE's affected count is the
 * number of rows matched, changed or not. */
int cx_db_open(const cx_config_t *cfg);
void cx_db_close(void);

/* cx_db_set_call_timeout -- the longest one call waits for MySQL (a statement, its result, a ping, a
 * connect made inside the call), in milliseconds; 0 = database.read_timeout. A worker sets
 * database.query_timeout. A call that reaches it drops the connection and opens the breaker. */
void cx_db_set_call_timeout(int64_t ms);

/* cx_db_probe -- the reconnect of a process whose breaker is open, for its loop to call now and then:
 * starts a non-blocking connect when the backoff allows, and looks at one in flight, never blocking. The
 * connection it makes becomes this process's and closes the breaker. Returns how many milliseconds the
 * loop may wait before calling again, or -1 when nothing is pending (the breaker is closed). */
int64_t cx_db_probe(void);

/* cx_db_close_idle -- close the connection when nothing ran on it for idle_ms and no transaction is
 * open (database.max_idle_conns); the next call connects again. 1 when it was closed. */
int cx_db_close_idle(int64_t idle_ms);

/* cx_db_exec -- prepare (cached per SQL text) and execute sql with params. With res non-NULL, the
 * result set is returned (free with cx_db_result_free); affected may be NULL (rows changed or matched,
 * or rows returned). Every value is text: DATETIME(3) reads "2026-11-25 21:00:00.123" (UTC), DATETIME
 * "2026-11-25 21:00:00"; the same forms are accepted as string parameters.
 * Returns CX_OK, CX_CONFLICT (duplicate key), CX_UNAVAIL (breaker open, timed out, or lost; one
 * reconnect and retry is made when the server closed the connection and nothing could have been executed,
 * never after a timeout), CX_ERR (other, logged with the MySQL error).
 * Retried inside: a statement that could not have run, a SELECT outside a transaction after a lost
 * connection, a deadlock victim outside a transaction (up to 3 times). A deadlock inside a transaction
 * returns CX_ERR: InnoDB rolled the transaction back, cx_db_commit then returns CX_ERR too, and
 * cx_db_deadlocked() is 1.
 * Name the columns (no SELECT *): a cached statement keeps the column names it was prepared with. */
int cx_db_exec(const char *sql, const cx_db_param_t *params, size_t nparams, cx_db_result_t **res, uint64_t *affected);

void cx_db_result_free(cx_db_result_t *res);

/* cx_db_insert_id -- the AUTO_INCREMENT value of the last INSERT run by cx_db_exec (0 if none). */
uint64_t cx_db_insert_id(void);

/* cx_db_conflict_key -- the name of the unique key violated by the last cx_db_exec that returned
 * CX_CONFLICT ("PRIMARY", "uq_pipelines_name", …), or "" when unknown. */
const char *cx_db_conflict_key(void);

/* cx_db_value -- the value of column name in row i, or NULL (SQL NULL, or no such column). */
const char *cx_db_value(const cx_db_result_t *res, size_t row, const char *col);

/* cx_db_col -- the index of column name (-1: none); cx_db_value_at and cx_db_take_at are cx_db_value and
 * cx_db_take by that index, for a result read row by row (a page). */
int cx_db_col(const cx_db_result_t *res, const char *col);
const char *cx_db_value_at(const cx_db_result_t *res, size_t row, int col);
char *cx_db_take_at(cx_db_result_t *res, size_t row, int col);

/* cx_db_take -- the value of column name in row i, taken out of the result (the caller frees it;
 * the result holds NULL there now), or NULL (SQL NULL, or no such column). Saves a copy of large
 * texts (config_yaml) on the way into a struct. */
char *cx_db_take(cx_db_result_t *res, size_t row, const char *col);

/* cx_db_int -- the integer value of column name in row i; dflt for NULL or no such column. */
int64_t cx_db_int(const cx_db_result_t *res, size_t row, const char *col, int64_t dflt);

/* cx_db_copy -- the value of column name in row i into out (size bytes, truncated), "" for NULL. */
void cx_db_copy(const cx_db_result_t *res, size_t row, const char *col, char *out, size_t size);

/* cx_db_time_ms -- a DATETIME value as MySQL returns it ("2026-11-25 21:00:00.123", UTC) in Unix
 * milliseconds; 0 for NULL or anything unreadable. */
int64_t cx_db_time_ms(const char *db);

/* cx_db_sql_rows -- the text of a statement over n rows: head, then item n times separated by sep, then
 * tail (malloc'ed; free it). For "... WHERE id IN (?, ?, ...)" and multi-row "VALUES (...), (...)". */
char *cx_db_sql_rows(const char *head, const char *item, const char *sep, size_t n, const char *tail);

/* cx_db_sql_case -- "CASE key WHEN ? THEN ? ... ELSE col END" over n rows (malloc'ed; free it): a
 * multi-row UPDATE's value of col per row, bound as key, value pairs. */
char *cx_db_sql_case(const char *key, const char *col, size_t n);

/* cx_db_time_text -- Unix milliseconds as a DATETIME(3) parameter ("2026-11-25 21:00:00.123"). */
void cx_db_time_text(int64_t ms, char out[32]);

/* Transactions on this process's connection. cx_db_begin fails with CX_UNAVAIL when MySQL is down.
 * A connection lost inside a transaction ends it: the statement returns CX_UNAVAIL, cx_db_in_tx() is 0,
 * and cx_db_commit returns CX_UNAVAIL; cx_db_rollback always ends the transaction (CX_OK when the
 * server has rolled it back by itself). */
int cx_db_begin(void);
int cx_db_commit(void);
int cx_db_rollback(void);

/* cx_db_end -- the end of a transaction whose statements gave rc: commit when rc is CX_OK (the commit's
 * result), else roll back and return rc (the first failure wins). */
static inline int cx_db_end(int rc)
{
    if (rc == CX_OK)
        return cx_db_commit();
    cx_db_rollback();
    return rc;
}

/* cx_db_in_tx -- 1 inside cx_db_begin … commit/rollback. A handler that returns with it set forgot
 * to end its transaction; the caller can roll back. */
int cx_db_in_tx(void);

/* cx_db_deadlocked -- 1 when InnoDB chose the transaction begun last as a deadlock victim and rolled it
 * back whole (its statement returned CX_ERR, logged as info and counted in conduix_db_deadlocks_total,
 * not as an error): nothing of it happened, so the caller may run it again from cx_db_begin, which
 * clears this. */
int cx_db_deadlocked(void);

/* A statement of a batch: SQL with ? placeholders, their parameters, and where to put its affected rows
 * (may be NULL). */
typedef struct cx_db_stmt {
    const char *sql;
    const cx_db_param_t *params;
    size_t nparams;
    uint64_t *affected;
    void *owned; /* what the parameters point into, freed with the statement (or NULL) */
} cx_db_stmt_t;

/* cx_db_batch -- stmts[0..n) as one transaction in one round trip: START TRANSACTION, each statement,
 * COMMIT, sent as one multi-statement text with the parameters as literals escaped for the connection
 * (the statements must be writes without a result, and hold no ? but their placeholders). Either all of
 * it is committed or nothing: CX_OK; CX_CONFLICT (a unique key, cx_db_conflict_key names it); CX_UNAVAIL;
 * CX_ERR (logged). Retried as cx_db_exec retries a statement outside a transaction (not sent, or a
 * deadlock victim). Not inside cx_db_begin. */
int cx_db_batch(const cx_db_stmt_t *stmts, size_t n);

/* cx_db_exec_many -- stmts[0..n) of a transaction in one round trip, in order, sent as one
 * multi-statement text with the parameters as literals escaped for the connection (the statements hold
 * no ? but their placeholders). With CX_DB_BEGIN the transaction is begun first (START TRANSACTION in the
 * same text; not inside one), without it the statements join the open one; with CX_DB_COMMIT it is
 * committed after them (COMMIT in the same text). res (may be NULL) gets one result per statement, NULL
 * for a statement without rows, each freed with cx_db_result_free; an affected pointer gets the rows a
 * write changed, or the rows a read returned. The server runs none after a statement that failed: then
 * every result is NULL and the codes are cx_db_exec's inside a transaction, which stays open (roll it
 * back) but after a deadlock (rolled back, cx_db_deadlocked) or a lost connection (CX_UNAVAIL), or a
 * failed COMMIT (rolled back, CX_ERR). A lost connection under a CX_DB_BEGIN call without CX_DB_COMMIT is
 * tried once more on a new one (nothing of it was committed). */
#define CX_DB_BEGIN 1
#define CX_DB_COMMIT 2
int cx_db_exec_many(const cx_db_stmt_t *stmts, size_t n, int flags, cx_db_result_t **res);

/* cx_db_stmt_free -- the text and parameters of a statement a builder below malloc'ed (not what they
 * point to). */
void cx_db_stmt_free(cx_db_stmt_t *st);

/* cx_db_ping -- CX_OK when MySQL answers now, else CX_UNAVAIL (at once while the breaker is open). */
int cx_db_ping(void);

/* cx_db_available -- cheap: 1 while the breaker is closed. */
int cx_db_available(void);

/* Migrations (db/migrate.c): apply migrations/NNNN_name.sql in order under GET_LOCK('conduix_migrate'),
 * recorded with their SHA-256 in schema_migrations. An applied file whose checksum changed is an error
 * naming the file. The files are the copies built into the binary, or those of dir when it is not empty
 * (else of cfg->migrations.dir when that is not empty). Returns CX_OK or CX_ERR (logged). Prints one
 * line per applied file when verbose. */
int cx_migrate_run(const cx_config_t *cfg, const char *dir, int verbose);

/* The migrations built into the binary (generated by scripts/embed-migrations from the MIGRATIONS list
 * of Makefile.am), in version order; sql has len bytes and a NUL after them. */
typedef struct cx_migration {
    const char *name; /* 0001_initial.sql */
    const unsigned char *sql;
    size_t len;
} cx_migration_t;
extern const cx_migration_t cx_migrations_builtin[];
extern const size_t cx_migrations_builtin_count;

/* cx_db_connect_new -- a separate connection with this process's settings (utf8mb4, UTC, no
 * auto-reconnect) and extra client_flags (e.g. CLIENT_MULTI_STATEMENTS); io_timeout_ms > 0 replaces
 * the configured read/write timeouts. NULL with the reason in err (not logged). Close it with
 * mysql_close. */
struct st_mysql;
struct st_mysql *cx_db_connect_new(const cx_config_t *cfg, unsigned long client_flags, int64_t io_timeout_ms, char *err,
                                   size_t errlen);

#endif
