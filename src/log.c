/*
 * log.c -- the daemon's log: one line per event, JSON ({"time","level","proc","pid","msg"}) or text,
 * written with one write(2) so that lines of concurrent processes never interleave. The file (if any)
 * is opened O_APPEND and reopened on SIGUSR1 for logrotate.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/log.h"
#include "conduix/utf8.h"

static int log_level = CX_LOG_INFO;
static int log_json = 1;
static int log_fd = 2;
static char log_path[4096];
static const char *log_proc = "main";

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
        int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
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
    return 0;
}

int cx_log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    dup2(fd, log_fd);
    close(fd);
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

static void emit(int level, int with_errno, const char *fmt, va_list ap)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    int saved = errno;
    char msg[2048], line[4608], ts[40];
    struct timeval tv;
    struct tm tm;
    size_t len;

    if (level < log_level)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (with_errno) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    len = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + len, sizeof(ts) - len, ".%03dZ", (int)(tv.tv_usec / 1000));

    if (log_json) {
        len = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\",\"pid\":%d,\"msg\":\"", ts,
                               names[level], log_proc, (int)getpid());
        len = json_escape(line, len, sizeof(line) - 4, msg);
        line[len++] = '"';
        line[len++] = '}';
    } else {
        len = (size_t)snprintf(line, sizeof(line), "%s %-5s %s[%d] %s", ts, names[level], log_proc, (int)getpid(), msg);
        if (len > sizeof(line) - 2)
            len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;
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
    char buf[4096];
    if (len > sizeof(buf) - 1)
        len = sizeof(buf) - 1;
    memcpy(buf, line, len);
    buf[len++] = '\n';
    ssize_t w = write(log_fd, buf, len);
    (void)w;
}
