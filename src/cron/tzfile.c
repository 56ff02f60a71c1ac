/*
 * tzfile.c -- the one place of the cron engine that does I/O: read a zone's TZif file from the tz
 * database directory once and hand it to the pure parser (tz.c). Callers keep the result as long as they
 * like (the scheduler caches one cx_tz_t per zone name).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/tz.h"

/* TZif files are a few kilobytes; anything much larger is not one. */
#define TZFILE_MAX (1 << 20)

cx_tz_t *cx_tz_load(const char *name, char *err, size_t errlen)
{
    return cx_tz_load_dir(CX_TZ_DIR, name, err, errlen);
}

cx_tz_t *cx_tz_load_dir(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    unsigned char *buf = NULL;
    cx_tz_t *z = NULL;
    int fd;

    if (cx_tz_check_name(name, err, errlen) < 0)
        return NULL;
    if (strcmp(name, "UTC") == 0) /* like Go's time.LoadLocation: UTC needs no tz database */
        return cx_tz_posix("UTC", "UTC0", err, errlen);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err != NULL && errlen > 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                snprintf(err, errlen, "unknown time zone \"%s\"", name);
            else
                snprintf(err, errlen, "time zone %s: open %s: %s", name, path, strerror(errno));
        }
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TZFILE_MAX) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "unknown time zone \"%s\"", name);
        goto done;
    }
    buf = cx_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "time zone %s: read %s: %s", name, path, n < 0 ? strerror(errno) : "short read");
            goto done;
        }
        got += (size_t)n;
    }
    z = cx_tz_parse(name, buf, got, err, errlen);
done:
    free(buf);
    close(fd);
    return z;
}
