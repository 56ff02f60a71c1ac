/*
 * test_log.c -- the log's write path (log.c) where a disk cannot easily be made to do it: a line cut
 * short is taken back when it is the end of the file and left alone otherwise (the next line then starts
 * on a line of its own); lines are at most PIPE_BUF bytes; the drop and recovery bookkeeping without a
 * shared segment. (The full disk itself is t/82-log-full.t's, through the real binary.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/log.c"

static char path[64];

static char *slurp_file(void)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static int setup(void **state)
{
    int fd;
    snprintf(path, sizeof(path), "/tmp/cx-test-log-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cx_log_init("info", "text", path), 0);
    cx_log_set_proc("test");
    return 0;
}

static int teardown(void **state)
{
    cx_log_init("info", "text", "");
    unlink(path);
    return 0;
}

static void test_take_back_at_end(void **state)
{
    static const char frag[] = "2026-01-01T00:00:00.000Z info  test[1] half a li";
    ssize_t w;

    cx_log_raw("first", 5);
    w = write(log_fd, frag, sizeof(frag) - 1); /* as a write cut short by a full disk leaves it */
    assert_int_equal(w, (ssize_t)sizeof(frag) - 1);
    take_back(frag, sizeof(frag) - 1);
    assert_int_equal(W.newline_first, 0);
    cx_log_raw("second", 6);
    assert_string_equal(slurp_file(), "first\nsecond\n");
}

static void test_foreign_bytes_after(void **state)
{
    static const char frag[] = "cut sho";
    ssize_t w;

    /* another process wrote a whole line after the fragment: nothing to take back, nothing to add */
    w = write(log_fd, frag, sizeof(frag) - 1);
    assert_int_equal(w, (ssize_t)sizeof(frag) - 1);
    w = write(log_fd, "other\n", 6);
    assert_int_equal(w, 6);
    take_back(frag, sizeof(frag) - 1);
    assert_int_equal(W.newline_first, 0);
    /* the end of the file is not the fragment and no newline: the next line starts on its own */
    w = write(log_fd, "foreign", 7);
    assert_int_equal(w, 7);
    take_back(frag, sizeof(frag) - 1);
    assert_int_equal(W.newline_first, 1);
    cx_log_raw("next", 4);
    assert_int_equal(W.newline_first, 0);
    assert_string_equal(slurp_file(), "cut shoother\nforeign\nnext\n");
}

static void test_line_bound(void **state)
{
    char big[3 * PIPE_BUF];
    const char *text;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cx_log_info("%s", big);
    cx_log_raw(big, strlen(big));
    text = slurp_file();
    const char *nl = strchr(text, '\n');
    assert_non_null(nl);
    assert_true((size_t)(nl - text) + 1 <= PIPE_BUF);
    assert_true(strlen(nl + 1) <= PIPE_BUF);
    assert_int_equal(nl[strlen(nl) - 1], '\n');
}

static void test_drop_and_recover(void **state)
{
    assert_null(cx_shm);
    dropped(ENOSPC);
    dropped(ENOSPC);
    dropped(ENOSPC);
    assert_int_equal(W.dropping, 1);
    assert_int_equal(W.dropped, 3);
    cx_log_raw("back", 4);
    assert_int_equal(W.dropping, 0);
    assert_int_equal(W.dropped, 0);
    assert_non_null(strstr(slurp_file(), "back\n"));
    assert_non_null(strstr(slurp_file(), "takes lines again; 3 lines were dropped while it did not\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_take_back_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_bytes_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_and_recover, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
