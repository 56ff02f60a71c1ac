/*
 * migrate.c -- schema migrations: the files migrations/NNNN_name.sql, applied in version order on a
 * connection of their own and recorded, with the SHA-256 of their bytes, in schema_migrations. The
 * files are built into the binary (cx_migrations_builtin, generated at build time from the list in
 * Makefile.am), so a binary needs no data directory; migrations.dir names a directory to use instead.
 *
 * Everything runs under GET_LOCK('conduix_migrate'), so replicas starting together serialise: the
 * second one finds the rows of the first and applies nothing. Every applied file is checked against its
 * recorded checksum before anything new is applied; a changed file stops the run. A file may hold
 * several statements (CLIENT_MULTI_STATEMENTS). MySQL DDL commits implicitly, so a file that fails half
 * way leaves what ran before the failing statement; the files are written to be re-runnable (IF NOT
 * EXISTS) and the failure names the file and the MySQL error.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mysql.h>
#include <openssl/evp.h>

#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/db.h"

#define LOCK_NAME "conduix_migrate"
#define LOCK_WAIT_S 60
#define STR_(x) #x
#define STR(x) STR_(x)
#define IO_TIMEOUT_MS ((int64_t)3600 * 1000) /* DDL on a big table may take long */

typedef struct mfile {
    int version;
    char *name; /* file name, e.g. 0001_initial.sql */
    char sum[65];
    char *sql;
    size_t len;
} mfile_t;

typedef struct applied {
    int version;
    char name[256];
    char sum[65];
} applied_t;

/* valid_name -- ^[0-9]{4}_[a-z0-9_]+\.sql$ */
static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 10 || strcmp(s + n - 4, ".sql") != 0 || s[4] != '_')
        return 0;
    for (int i = 0; i < 4; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    for (size_t i = 5; i < n - 4; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* version_of -- the number a migration's name (or a schema_migrations version) starts with: the
 * digits valid_name checked, or the column's text; 0 for anything else. */
static int version_of(const char *s)
{
    long v = s != NULL ? strtol(s, NULL, 10) : 0;
    return v < 0 || v > INT_MAX ? 0 : (int)v;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const mfile_t *)a)->name, ((const mfile_t *)b)->name);
}

/* sha256_hex -- the SHA-256 of buf as 64 lowercase hex digits. */
static int sha256_hex(const char *buf, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -1;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + (size_t)2 * i, 3, "%02x", md[i]);
    return 0;
}

static int slurp(const char *path, char **out, size_t *outlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL)
        return -1;
    do {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 65536;
            buf = cx_realloc(buf, cap + 1);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        (void)fclose(f); /* read only: nothing to lose */
        free(buf);
        return -1;
    }
    (void)fclose(f);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static void files_free(mfile_t *fs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(fs[i].name);
        free(fs[i].sql);
    }
    free(fs);
}

/* check_files -- sorted by name, every version once. */
static int check_files(mfile_t *fs, size_t n)
{
    if (n > 0)
        qsort(fs, n, sizeof(*fs), by_name);
    for (size_t i = 1; i < n; i++) {
        if (fs[i].version == fs[i - 1].version) {
            cx_log_errorx("migrate: %s and %s have the same version number", fs[i - 1].name, fs[i].name);
            return CX_ERR;
        }
    }
    return CX_OK;
}

/* builtin -- the migrations built into the binary, checksummed, sorted by name. */
static int builtin(mfile_t **out, size_t *nout)
{
    size_t n = cx_migrations_builtin_count;
    mfile_t *fs = cx_calloc(n + 1, sizeof(*fs));

    for (size_t i = 0; i < n; i++) {
        const cx_migration_t *m = &cx_migrations_builtin[i];
        fs[i].name = cx_strdup(m->name);
        fs[i].version = version_of(m->name);
        fs[i].sql = cx_strndup((const char *)m->sql, m->len);
        fs[i].len = m->len;
        if (!valid_name(m->name) || sha256_hex(fs[i].sql, fs[i].len, fs[i].sum) != 0) {
            cx_log_errorx("migrate: built-in migration %s: bad name or checksum failure", m->name);
            files_free(fs, n);
            return CX_ERR;
        }
    }
    if (check_files(fs, n) != CX_OK) {
        files_free(fs, n);
        return CX_ERR;
    }
    *out = fs;
    *nout = n;
    return CX_OK;
}

/* scan -- the migration files of dir (NULL or "": the built-in ones), read and checksummed, sorted by
 * name. CX_OK or CX_ERR (logged). */
static int scan(const char *dir, mfile_t **out, size_t *nout)
{
    DIR *d;
    mfile_t *fs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    char path[4096];

    if (dir == NULL || dir[0] == '\0')
        return builtin(out, nout);
    if ((d = opendir(dir)) == NULL) {
        cx_log_error("migrate: cannot open the migrations directory %s", dir);
        return CX_ERR;
    }
    while ((de = readdir(d)) != NULL) {
        if (!valid_name(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            fs = cx_realloc(fs, cap * sizeof(*fs));
        }
        mfile_t *f = &fs[n];
        memset(f, 0, sizeof(*f));
        f->name = cx_strdup(de->d_name);
        f->version = version_of(de->d_name);
        n++;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (slurp(path, &f->sql, &f->len) != 0) {
            cx_log_error("migrate: cannot read %s", path);
            goto fail;
        }
        if (sha256_hex(f->sql, f->len, f->sum) != 0) {
            cx_log_errorx("migrate: SHA-256 of %s failed", path);
            goto fail;
        }
    }
    closedir(d);
    d = NULL;
    if (check_files(fs, n) != CX_OK)
        goto fail;
    *out = fs;
    *nout = n;
    return CX_OK;
fail:
    if (d != NULL)
        closedir(d);
    files_free(fs, n);
    return CX_ERR;
}

/* drain -- consume every result of the last (multi-statement) query. 0, or -1 when a statement failed. */
static int drain(MYSQL *m)
{
    int st;
    do {
        MYSQL_RES *r = mysql_store_result(m);
        if (r != NULL)
            mysql_free_result(r);
        else if (mysql_field_count(m) != 0)
            return -1;
        st = mysql_next_result(m);
    } while (st == 0);
    return st > 0 ? -1 : 0;
}

/* sql -- run statements without interesting results. 0, or -1 after logging what failed. */
static int sql(MYSQL *m, const char *q, const char *what)
{
    if (mysql_real_query(m, q, (unsigned long)strlen(q)) != 0 || drain(m) != 0) {
        cx_log_errorx("migrate: %s: %s (%u)", what, mysql_error(m), mysql_errno(m));
        return -1;
    }
    return 0;
}

/* lock -- GET_LOCK with a wait: CX_OK once held, CX_ERR (logged) on timeout or error. */
static int lock(MYSQL *m)
{
    static const char q[] = "SELECT GET_LOCK('" LOCK_NAME "', " STR(LOCK_WAIT_S) ")";
    MYSQL_RES *r;
    MYSQL_ROW row;
    int ok = 0;

    if (mysql_real_query(m, q, sizeof(q) - 1) != 0 || (r = mysql_store_result(m)) == NULL) {
        cx_log_errorx("migrate: GET_LOCK: %s (%u)", mysql_error(m), mysql_errno(m));
        return CX_ERR;
    }
    if ((row = mysql_fetch_row(r)) != NULL && row[0] != NULL && strcmp(row[0], "1") == 0)
        ok = 1;
    mysql_free_result(r);
    if (!ok) {
        cx_log_errorx("migrate: could not get the lock '%s' within %d s (another migration running?)", LOCK_NAME, LOCK_WAIT_S);
        return CX_ERR;
    }
    return CX_OK;
}

/* load_applied -- the rows of schema_migrations, by version. */
static int load_applied(MYSQL *m, applied_t **out, size_t *nout)
{
    static const char q[] = "SELECT version, name, checksum FROM schema_migrations ORDER BY version";
    MYSQL_RES *r;
    MYSQL_ROW row;
    applied_t *as;
    size_t n = 0;

    if (mysql_real_query(m, q, sizeof(q) - 1) != 0 || (r = mysql_store_result(m)) == NULL) {
        cx_log_errorx("migrate: reading schema_migrations: %s (%u)", mysql_error(m), mysql_errno(m));
        return CX_ERR;
    }
    as = cx_calloc((size_t)mysql_num_rows(r) + 1, sizeof(*as));
    while ((row = mysql_fetch_row(r)) != NULL) {
        as[n].version = version_of(row[0]);
        snprintf(as[n].name, sizeof(as[n].name), "%s", row[1] ? row[1] : "");
        snprintf(as[n].sum, sizeof(as[n].sum), "%s", row[2] ? row[2] : "");
        n++;
    }
    mysql_free_result(r);
    *out = as;
    *nout = n;
    return CX_OK;
}

static const applied_t *find_applied(const applied_t *as, size_t n, int version)
{
    for (size_t i = 0; i < n; i++)
        if (as[i].version == version)
            return &as[i];
    return NULL;
}

/* blank -- only white space: nothing to send (the server refuses an empty query). */
static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

/* apply -- run one file and record it. */
static int apply(MYSQL *m, const mfile_t *f)
{
    char q[512];

    if (!blank(f->sql, f->len) && (mysql_real_query(m, f->sql, (unsigned long)f->len) != 0 || drain(m) != 0)) {
        cx_log_errorx("migrate: migration %s failed: %s (%u); statements before the failing one may have been "
                      "applied",
                      f->name, mysql_error(m), mysql_errno(m));
        return CX_ERR;
    }
    /* The name matches [0-9a-z_.] and the checksum is hex: nothing to escape. */
    snprintf(q, sizeof(q),
             "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (%d, '%s', '%s', UTC_TIMESTAMP())",
             f->version, f->name, f->sum);
    if (sql(m, q, "recording the migration") != 0)
        return CX_ERR;
    return CX_OK;
}

int cx_migrate_run(const cx_config_t *cfg, const char *dir, int verbose)
{
    MYSQL *m = NULL;
    mfile_t *fs = NULL;
    applied_t *as = NULL;
    size_t nf = 0, na = 0, done = 0;
    int locked = 0, rc = CX_ERR, bad = 0;
    char err[512];
    const char *from;

    if (dir == NULL || dir[0] == '\0')
        dir = cfg->migrations.dir;
    from = dir != NULL && dir[0] != '\0' ? dir : "the binary (built in)";
    if (scan(dir, &fs, &nf) != CX_OK)
        return CX_ERR;
    m = cx_db_connect_new(cfg, CLIENT_MULTI_STATEMENTS, IO_TIMEOUT_MS, err, sizeof(err));
    if (m == NULL) {
        cx_log_errorx("migrate: cannot connect to MySQL: %s", err);
        goto out;
    }
    if (lock(m) != CX_OK)
        goto out;
    locked = 1;
    if (sql(m,
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INT NOT NULL PRIMARY KEY, "
            "name VARCHAR(255) NOT NULL, "
            "checksum CHAR(64) NOT NULL, "
            "applied_at DATETIME NOT NULL"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
            "creating schema_migrations") != 0)
        goto out;
    if (load_applied(m, &as, &na) != CX_OK)
        goto out;

    /* Check everything before applying anything. */
    for (size_t i = 0; i < nf; i++) {
        const applied_t *a = find_applied(as, na, fs[i].version);
        if (a == NULL)
            continue;
        if (strcmp(a->sum, fs[i].sum) != 0) {
            cx_log_errorx("migrate: migration %s was changed after it was applied (checksum %s, applied %s)", fs[i].name, fs[i].sum,
                          a->sum);
            bad = 1;
        } else if (strcmp(a->name, fs[i].name) != 0) {
            cx_log_warnx("migrate: migration %d was applied as %s and is now named %s", fs[i].version, a->name, fs[i].name);
        }
    }
    for (size_t i = 0; i < na; i++) {
        int found = 0;
        for (size_t j = 0; j < nf && !found; j++)
            found = fs[j].version == as[i].version;
        if (!found)
            cx_log_warnx("migrate: migration %s is recorded as applied but its file is missing in %s", as[i].name, from);
    }
    if (bad)
        goto out;

    for (size_t i = 0; i < nf; i++) {
        if (find_applied(as, na, fs[i].version) != NULL)
            continue;
        if (apply(m, &fs[i]) != CX_OK)
            goto out;
        done++;
        cx_log_info("migrate: applied %s", fs[i].name);
        if (verbose) {
            printf("applied %s\n", fs[i].name);
            fflush(stdout);
        }
    }
    cx_log_info("migrate: %zu applied, %zu already applied (migrations from %s)", done, nf - done, from);
    rc = CX_OK;
out:
    if (locked)
        (void)sql(m, "SELECT RELEASE_LOCK('" LOCK_NAME "')", "RELEASE_LOCK"); /* closing releases it anyway */
    if (m != NULL)
        mysql_close(m);
    free(as);
    files_free(fs, nf);
    return rc;
}
