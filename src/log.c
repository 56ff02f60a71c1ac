/*
 * log.c -- the daemon's log: one line per event, JSON ({"time","level","proc","pid","msg"}) or text,
 * written with one write(2) so that lines of concurrent processes never interleave. The file (if any)
 * is opened O_APPEND and reopened on SIGUSR1 for logrotate.
 *
 * Whole lines or none. A line is at most PIPE_BUF bytes, so a write to a pipe is atomic. A file on a
 * full disk would take part of a line and refuse the rest, and the next line written once there is room
 * again would be glued onto that fragment; so before writing to a file this process checks that it has
 * room (a budget of free space measured with fstatvfs, measured again when spent), and a line that would
 * not fit is dropped instead. Should a write still be cut short (another writer took the space between
 * the measure and the write), the fragment is taken back when it is the end of the file, or else the next
 * line starts with a newline, so that it is not glued on. Dropped lines are counted
 * (conduix_log_lines_dropped_total), and said on stderr once per outage for the whole instance (a flag
 * in the shared segment), and once again when lines are written again, with how many were dropped (that
 * line goes into the log too).
 *
 * The access log is buffered (like nginx's access_log ... buffer=): a worker's access lines collect in
 * its shared-memory slot and go out in blocks of whole lines, one write(2) per block (at most PIPE_BUF
 * bytes when the log is not a regular file, so that a pipe or socket still takes each block whole; an
 * O_APPEND write to a file is not interleaved with others). The rules above apply to a block: as many of
 * its first lines as there is room for are written, the rest dropped and counted; a block cut short
 * keeps its whole lines, and its torn last line is taken back. A block is written when the buffer is
 * full, within CX_LOG_FLUSH_MS of its oldest line, before any other line of the process, before a reopen
 * and at exit; a process that dies first leaves it in its slot, and the master writes it when it
 * releases the slot (cx_log_salvage). Only a SIGKILL of the master itself loses buffered lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/shm.h"
#include "conduix/utf8.h"

#define LINE_MAX_ PIPE_BUF /* the longest line, newline included */
#define ROOM_RESERVE 65536 /* free bytes left untouched, for writers between a measure and a write */
#define ROOM_SHARE 32      /* of the free space measured, this process counts on 1/ROOM_SHARE */

static int log_level = CX_LOG_INFO;
static int log_json = 1;
static int log_fd = 2;
static char log_path[4096];
static const char *log_proc = "main";

/* The write path's state (per process). */
static struct {
    int is_file;       /* log_fd is a regular file: room is measured before writing */
    int64_t budget;    /* bytes this process may still write before measuring again */
    int dropping;      /* the last line of this process could not be written */
    int newline_first; /* a cut line could not be taken back: the next one starts with a newline */
    uint64_t dropped;  /* lines dropped since the log last worked (without a shared segment) */
} W;

/* The access-log buffer: in this process's shared-memory slot (or here, without a slot). NULL while
 * lines are written one by one. */
static struct {
    cx_shm_logbuf_t *b;
    int64_t first_ms; /* cx_now_ms of the oldest line in it */
} B;
static cx_shm_logbuf_t local_buf;

static size_t format_line(int level, const char *msg, char *line, size_t cap);

/* say -- a line about the log itself on stderr, when the log is not stderr. */
static void say(int level, const char *msg)
{
    char line[LINE_MAX_];
    size_t len = format_line(level, msg, line, sizeof(line));
    if (log_fd != 2) {
        ssize_t w = write(2, line, len);
        (void)w;
    }
}

/* adopt -- log_fd is new: learn what it is. */
static void adopt(void)
{
    struct stat st;
    W.is_file = fstat(log_fd, &st) == 0 && S_ISREG(st.st_mode);
    W.budget = 0;
    W.newline_first = 0;
}

/* room -- how many of len more bytes may be written to the file now (all of them when it is not a file,
 * or cannot be measured); measures the free space when the budget is spent. */
static size_t room(size_t len)
{
    struct statvfs v;
    int64_t free_bytes;

    if (!W.is_file)
        return len;
    /* While the log takes no lines, every process measures before each line, so that all of them agree
     * on when it takes lines again (a budget measured earlier would let one write into the reserve). */
    if ((int64_t)len <= W.budget && !W.dropping && (cx_shm == NULL || !__atomic_load_n(&cx_shm->log_failing, __ATOMIC_RELAXED)))
        goto yes;
    if (fstatvfs(log_fd, &v) != 0)
        return len; /* cannot tell: let write(2) say */
    free_bytes = (int64_t)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * (int64_t)v.f_frsize - ROOM_RESERVE;
    W.budget = free_bytes > 0 ? free_bytes / ROOM_SHARE : 0;
    if ((int64_t)len > W.budget && free_bytes < (int64_t)len) {
        W.budget = 0;
        return free_bytes > 0 ? (size_t)free_bytes : 0;
    }
    if ((int64_t)len > W.budget)
        W.budget = (int64_t)len; /* little room, but enough for these lines */
yes:
    W.budget -= (int64_t)len;
    return len;
}

/* whole -- the length of the longest prefix of p[0..n) made of whole lines. */
static size_t whole(const char *p, size_t n)
{
    const char *nl = n > 0 ? memrchr(p, '\n', n) : NULL;
    return nl != NULL ? (size_t)(nl - p) + 1 : 0;
}

static uint64_t count_lines(const char *p, size_t n)
{
    const char *end = p + n;
    uint64_t k = 0;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* take_back -- a write put only the first n bytes of frag into the file: remove them when they are the end
 * of the file (read back to be sure no other process wrote after them); else make the next line start on
 * a line of its own. */
static void take_back(const char *frag, size_t n)
{
    char back[LINE_MAX_ + 1];
    struct stat st;

    if (W.is_file && n <= sizeof(back) && fstat(log_fd, &st) == 0 && st.st_size >= (off_t)n &&
        pread(log_fd, back, n, st.st_size - (off_t)n) == (ssize_t)n && memcmp(back, frag, n) == 0 &&
        ftruncate(log_fd, st.st_size - (off_t)n) == 0)
        return;
    /* a file that ends with a newline (another process's whole line came after the fragment) needs none */
    W.newline_first =
        !(W.is_file && fstat(log_fd, &st) == 0 && st.st_size > 0 && pread(log_fd, back, 1, st.st_size - 1) == 1 && back[0] == '\n');
}

/* dropped -- n lines could not be written (err says why). */
static void dropped(int err, uint64_t n)
{
    char msg[4300];

    if (n == 0)
        return;
    cx_shm_count(CX_C_LOG_LINES_DROPPED, n);
    if (cx_shm != NULL)
        __atomic_fetch_add(&cx_shm->log_dropped, n, __ATOMIC_RELAXED);
    else
        W.dropped += n;
    if (W.dropping)
        return;
    W.dropping = 1;
    int first = 0;
    if (cx_shm == NULL || __atomic_compare_exchange_n(&cx_shm->log_failing, &first, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        snprintf(msg, sizeof(msg),
                 "log: cannot write to %s: %s; lines are dropped (whole, counted in conduix_log_lines_dropped_total) until it "
                 "takes them again",
                 log_path[0] ? log_path : "stderr", strerror(err));
        say(CX_LOG_ERROR, msg);
    }
}

static void put(const char *line, size_t len);

/* recovered -- a line was written: the end of an outage is said once, with the count of dropped lines.
 * It clears W.dropping and the shared log_failing before its own put, so that put does not come back. */
// NOLINTNEXTLINE(misc-no-recursion): one level, see above
static void recovered(void)
{
    char msg[4300], text[LINE_MAX_];
    uint64_t n;
    int failing = 1;

    W.dropping = 0;
    if (cx_shm != NULL) {
        if (!__atomic_compare_exchange_n(&cx_shm->log_failing, &failing, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return; /* another process said it */
        n = __atomic_exchange_n(&cx_shm->log_dropped, 0, __ATOMIC_RELAXED);
    } else {
        n = W.dropped;
        W.dropped = 0;
    }
    snprintf(msg, sizeof(msg), "log: %s takes lines again; %llu lines were dropped while it did not",
             log_path[0] ? log_path : "stderr", (unsigned long long)n);
    say(CX_LOG_WARN, msg);
    put(text, format_line(CX_LOG_WARN, msg, text, sizeof(text)));
}

/* put -- write the whole lines p[0..len) (each ends with a newline) with one write(2), or as many of the
 * first ones as there is room for; the others are dropped. */
// NOLINTNEXTLINE(misc-no-recursion): through recovered, one level
static void put(const char *p, size_t len)
{
    struct iovec iov[2] = {{.iov_base = (void *)"\n", .iov_len = 1}, {.iov_base = (void *)p, .iov_len = len}};
    size_t lead = W.newline_first ? 1 : 0, n = len, allow = room(len + lead), done;
    ssize_t w;

    if (allow < len + lead) {
        n = allow > lead ? whole(p, allow - lead) : 0;
        if (n == 0) {
            dropped(ENOSPC, count_lines(p, len));
            return;
        }
        iov[1].iov_len = n;
    }
    do
        w = writev(log_fd, iov + 1 - lead, 1 + (int)lead);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)(n + lead)) {
        W.newline_first = 0;
        if (n < len)
            dropped(ENOSPC, count_lines(p + n, len - n)); /* still no room for the rest */
        else if (W.dropping || (cx_shm != NULL && __atomic_load_n(&cx_shm->log_failing, __ATOMIC_ACQUIRE)))
            recovered();
        return;
    }
    int err = w < 0 ? errno : ENOSPC;
    done = 0;
    if (w > 0) {
        if (lead) { /* the newline went first */
            w--;
            W.newline_first = 0;
        }
        done = whole(p, (size_t)w); /* these lines are in the file */
        if ((size_t)w > done)
            take_back(p + done, (size_t)w - done);
    }
    W.budget = 0;
    dropped(err, count_lines(p + done, len - done));
}

/* put_lines -- put p[0..len) (whole lines) in blocks a write takes whole: all of it to a file, at most
 * PIPE_BUF bytes to anything else. */
static void put_lines(const char *p, size_t len)
{
    while (len > 0) {
        size_t n = W.is_file || len <= LINE_MAX_ ? len : whole(p, LINE_MAX_);
        if (n == 0)
            n = len; /* cannot happen: no line is longer than LINE_MAX_ */
        put(p, n);
        p += n;
        len -= n;
    }
}

static int level_parse(const char *s)
{
    if (s == NULL || strcmp(s, "info") == 0)
        return CX_LOG_INFO;
    if (strcmp(s, "debug") == 0)
        return CX_LOG_DEBUG;
    if (strcmp(s, "warn") == 0)
        return CX_LOG_WARN;
    if (strcmp(s, "error") == 0)
        return CX_LOG_ERROR;
    return -1;
}

int cx_log_init(const char *level, const char *format, const char *file)
{
    int lv = level_parse(level);
    if (lv < 0)
        return -1;
    log_level = lv;
    log_json = format == NULL || strcmp(format, "text") != 0;
    if (file != NULL && file[0] != '\0') {
        /* read too: a line cut short is read back before it is taken back (take_back) */
        int fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0 && (fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0)
            return -1;
        if (log_fd > 2)
            close(log_fd);
        log_fd = fd;
        snprintf(log_path, sizeof(log_path), "%s", file);
    } else {
        if (log_fd > 2)
            close(log_fd);
        log_fd = 2;
        log_path[0] = '\0';
    }
    adopt();
    return 0;
}

int cx_log_reopen(void)
{
    cx_log_flush(); /* what was logged before the reopen goes to the file that was open then */
    if (log_path[0] == '\0')
        return 0;
    int fd = open(log_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 && (fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0)
        return -1;
    dup2(fd, log_fd);
    close(fd);
    adopt();
    return 0;
}

void cx_log_set_proc(const char *kind)
{
    log_proc = kind;
}

int cx_log_enabled(int level)
{
    return level >= log_level;
}

/* json_escape -- append s to buf as JSON string content; returns the new length (bounded by cap). */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    return len + cx_json_escape(buf + len, cap - len, s, strlen(s));
}

/* format_line -- a log line of msg at level, newline included, in at most cap bytes; its length. */
static size_t format_line(int level, const char *msg, char *line, size_t cap)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char ts[40];
    struct timeval tv;
    struct tm tm;
    size_t len;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    len = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + len, sizeof(ts) - len, ".%03dZ", (int)(tv.tv_usec / 1000));

    if (log_json) {
        len = (size_t)snprintf(line, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\",\"pid\":%d,\"msg\":\"", ts,
                               names[level], log_proc, cx_pid());
        len = json_escape(line, len, cap - 4, msg);
        line[len++] = '"';
        line[len++] = '}';
    } else {
        len = (size_t)snprintf(line, cap, "%s %-5s %s[%d] %s", ts, names[level], log_proc, cx_pid(), msg);
        if (len > cap - 2)
            len = cap - 2;
    }
    line[len++] = '\n';
    return len;
}

static void emit(int level, int with_errno, const char *fmt, va_list ap)
{
    int saved = errno;
    char msg[2048], line[LINE_MAX_];

    if (level < log_level)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (with_errno) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
    }
    cx_log_flush(); /* the buffered access lines came first */
    put(line, format_line(level, msg, line, sizeof(line)));
    errno = saved;
}

#define DEFINE_LOG(fn, level, with_errno)                                                                                          \
    void fn(const char *fmt, ...)                                                                                                  \
    {                                                                                                                              \
        va_list ap;                                                                                                                \
        va_start(ap, fmt);                                                                                                         \
        emit(level, with_errno, fmt, ap);                                                                                          \
        va_end(ap);                                                                                                                \
    }

DEFINE_LOG(cx_log_debug, CX_LOG_DEBUG, 0)
DEFINE_LOG(cx_log_info, CX_LOG_INFO, 0)
DEFINE_LOG(cx_log_warn, CX_LOG_WARN, 1)
DEFINE_LOG(cx_log_warnx, CX_LOG_WARN, 0)
DEFINE_LOG(cx_log_error, CX_LOG_ERROR, 1)
DEFINE_LOG(cx_log_errorx, CX_LOG_ERROR, 0)

void cx_log_raw(const char *line, size_t len)
{
    char buf[LINE_MAX_];
    int saved = errno;
    cx_shm_logbuf_t *b = B.b;

    if (len > sizeof(buf) - 1)
        len = sizeof(buf) - 1;
    if (b == NULL) {
        memcpy(buf, line, len);
        buf[len++] = '\n';
        put(buf, len);
        errno = saved;
        return;
    }
    if (b->len + len + 1 > sizeof(b->buf))
        cx_log_flush();
    if (b->len == 0)
        B.first_ms = cx_now_ms();
    memcpy(b->buf + b->len, line, len);
    b->buf[b->len + len] = '\n';
    /* the length covers the line only once it is all there: a salvage never reads half a line */
    __atomic_store_n(&b->len, b->len + (uint32_t)len + 1, __ATOMIC_RELEASE);
    errno = saved;
}

void cx_log_buffer_start(void)
{
    B.b = cx_shm_self != NULL ? &cx_shm_self->log : &local_buf;
    B.b->len = 0;
    B.b->flushing = 0;
}

long cx_log_flush_in(void)
{
    int64_t left;

    if (B.b == NULL || B.b->len == 0)
        return -1;
    left = B.first_ms + CX_LOG_FLUSH_MS - cx_now_ms();
    return left > 0 ? (long)left : 0;
}

void cx_log_flush_due(void)
{
    if (cx_log_flush_in() == 0)
        cx_log_flush();
}

void cx_log_flush(void)
{
    cx_shm_logbuf_t *b = B.b;
    int saved = errno;

    if (b == NULL || b->len == 0)
        return;
    __atomic_store_n(&b->flushing, 1, __ATOMIC_RELEASE);
    put_lines(b->buf, b->len);
    __atomic_store_n(&b->len, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&b->flushing, 0, __ATOMIC_RELEASE);
    errno = saved;
}

/* written -- do the last n bytes of the file equal p[0..n)? (A block a process was writing when it died
 * may be in the file already.) */
static int written(const char *p, size_t n)
{
    struct stat st;
    char *back;
    int same;

    if (!W.is_file || fstat(log_fd, &st) != 0 || st.st_size < (off_t)n)
        return 0;
    back = cx_malloc(n);
    same = pread(log_fd, back, n, st.st_size - (off_t)n) == (ssize_t)n && memcmp(back, p, n) == 0;
    free(back);
    return same;
}

void cx_log_salvage(cx_shm_logbuf_t *b)
{
    int saved = errno;
    size_t n = __atomic_load_n(&b->len, __ATOMIC_ACQUIRE);

    /* the slot belonged to another process, which may have died anywhere: trust only its whole lines */
    if (n > sizeof(b->buf))
        n = sizeof(b->buf);
    n = whole(b->buf, n);
    if (n > 0 && !(b->flushing && written(b->buf, n)))
        put_lines(b->buf, n);
    b->len = 0;
    b->flushing = 0;
    errno = saved;
}
