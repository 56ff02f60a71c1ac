/*
 * proc.c -- process titles. The argv strings and the environment are one contiguous area; the
 * environment is moved to the heap so that the whole area can hold "conduix-cp: worker 0" (nginx
 * ngx_setproctitle.c, PostgreSQL ps_status.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "conduix/cx.h"
#include "conduix/proc.h"

extern char **environ;

static char *title_start;
static size_t title_len;
/* The strings of argv[1..] and of the environment, copied into one block that lives as long as the
 * process, and the new environ array. They are kept here, where leak checkers see them: argv[] is not
 * scanned by LeakSanitizer, glibc's clearenv at exit (valgrind runs __libc_freeres) drops environ, and
 * unsetenv (libfaketime calls it) takes a string out of the array but never frees it. */
static char *strings __attribute__((used));
static char **env_copy __attribute__((used));

void cx_proc_title_init(int argc, char **argv)
{
    char *end, *p;
    int i;
    size_t n = 0, total = 0;

    if (argc == 0 || argv[0] == NULL)
        return;
    end = argv[0] + strlen(argv[0]) + 1;
    for (i = 1; i < argc; i++) {
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
        total += strlen(argv[i]) + 1;
    }
    for (i = 0; environ[i] != NULL; i++) {
        if (environ[i] == end)
            end = environ[i] + strlen(environ[i]) + 1;
        total += strlen(environ[i]) + 1;
        n++;
    }
    p = strings = cx_malloc(total + 1);
    /* Copy the environment out of the way; the old area becomes title space. */
    env_copy = cx_calloc(n + 1, sizeof(char *));
    for (i = 0; environ[i] != NULL; i++) {
        size_t len = strlen(environ[i]) + 1;
        env_copy[i] = memcpy(p, environ[i], len);
        p += len;
    }
    environ = env_copy;
    /* Keep argv[] pointing at copies too, in case anything reads it later. */
    for (i = 1; i < argc; i++) {
        size_t len = strlen(argv[i]) + 1;
        argv[i] = memcpy(p, argv[i], len);
        p += len;
    }
    title_start = argv[0];
    title_len = (size_t)(end - argv[0]);
}

void cx_proc_set_title(const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    prctl(PR_SET_NAME, buf + (strncmp(buf, "conduix-cp: ", 12) == 0 ? 12 : 0), 0, 0, 0);
    if (title_start == NULL || title_len < 2)
        return;
    memset(title_start, 0, title_len);
    snprintf(title_start, title_len - 1, "%s", buf);
}
