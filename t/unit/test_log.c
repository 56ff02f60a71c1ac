/*
 * test_log.c -- the log's write path (log.c) where a disk cannot easily be made to do it: a line cut
 * short is taken back when it is the end of the file and left alone otherwise (the next line then starts
 * on a line of its own); lines are at most PIPE_BUF bytes; the drop and recovery bookkeeping without a
 * shared segment; the access-log buffer: its lines come out in order, whole, before any other line, and a
 * block cut short keeps its whole lines; a dead process's buffer is written once by the master
 * (cx_log_salvage). (The full disk itself is t/82-log-full.t's, through the real binary.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <cmocka.h>
#include <signal.h>
#include <sys/resource.h>

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
    cx_log_flush();
    B.b = NULL;
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
    dropped(ENOSPC, 1);
    dropped(ENOSPC, 1);
    dropped(ENOSPC, 1);
    assert_int_equal(W.dropping, 1);
    assert_int_equal(W.dropped, 3);
    cx_log_raw("back", 4);
    assert_int_equal(W.dropping, 0);
    assert_int_equal(W.dropped, 0);
    assert_non_null(strstr(slurp_file(), "back\n"));
    assert_non_null(strstr(slurp_file(), "takes lines again; 3 lines were dropped while it did not\n"));
}

static void test_buffer_order(void **state)
{
    const char *text;

    cx_log_buffer_start();
    assert_int_equal(cx_log_flush_in(), -1);
    cx_log_raw("access one", 10);
    cx_log_raw("access two", 10);
    assert_string_equal(slurp_file(), ""); /* buffered */
    assert_true(cx_log_flush_in() >= 0 && cx_log_flush_in() <= CX_LOG_FLUSH_MS);
    cx_log_info("an event");
    text = slurp_file();
    assert_true(strncmp(text, "access one\naccess two\n", 22) == 0); /* written before the event's line */
    assert_non_null(strstr(text + 22, "an event\n"));
    assert_int_equal(cx_log_flush_in(), -1);
    cx_log_raw("access three", 12);
    cx_log_flush_due(); /* not due yet */
    assert_null(strstr(slurp_file(), "access three"));
    B.first_ms -= CX_LOG_FLUSH_MS;
    assert_int_equal(cx_log_flush_in(), 0);
    cx_log_flush_due();
    text = slurp_file();
    assert_string_equal(text + strlen(text) - 13, "access three\n");
}

static void test_buffer_full(void **state)
{
    char line[200];
    size_t lines = 0, expect = 0;
    const char *text;

    cx_log_buffer_start();
    memset(line, 'x', sizeof(line));
    for (int i = 0; i < 300; i++) { /* 60 KB: the 16 KB buffer fills and is written three times */
        int n = snprintf(line, sizeof(line), "{\"n\":%d,\"pad\":\"%0150d\"}", i, i);
        cx_log_raw(line, (size_t)n);
    }
    text = slurp_file();
    assert_true(strlen(text) > 3 * 16000 && strlen(text) <= 60000);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) { /* whole lines, in order */
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%zu,", expect++);
        assert_true(strncmp(p, want, strlen(want)) == 0);
        lines++;
    }
    cx_log_flush();
    assert_int_equal(count_lines(slurp_file(), strlen(slurp_file())), 300);
    assert_true(lines < 300);
}

static void test_salvage(void **state)
{
    static cx_shm_logbuf_t b;
    static const char text[] = "dead one\ndead two\nhalf a li";

    /* a dead process's buffer: whole lines only, whatever its length says */
    memcpy(b.buf, text, sizeof(text) - 1);
    b.len = sizeof(text) - 1;
    cx_log_salvage(&b);
    assert_string_equal(slurp_file(), "dead one\ndead two\n");
    assert_int_equal(b.len, 0);
    /* it died while writing the block, which is in the file already: not written twice */
    b.len = 18;
    b.flushing = 1;
    cx_log_salvage(&b);
    assert_string_equal(slurp_file(), "dead one\ndead two\n");
    /* it died while writing, and the block is not in the file: written */
    memcpy(b.buf, "new one\n", 8);
    b.len = 8;
    b.flushing = 1;
    cx_log_salvage(&b);
    assert_string_equal(slurp_file(), "dead one\ndead two\nnew one\n");
    /* a length beyond the buffer (a corrupt slot) reads no further than the buffer */
    memset(b.buf, 'z', sizeof(b.buf));
    b.len = 0xffffffffu;
    cx_log_salvage(&b);
    assert_string_equal(slurp_file(), "dead one\ndead two\nnew one\n");
}

static void test_block_cut_short(void **state)
{
    struct rlimit old, lim;
    struct stat st;
    uint64_t before = W.dropped;

    cx_log_raw("first", 5);
    assert_int_equal(fstat(log_fd, &st), 0);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 12; /* the block's write stops 3 bytes into its second line */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cx_log_buffer_start();
    cx_log_raw("line-one", 8);
    cx_log_raw("line-two", 8);
    cx_log_raw("line-three", 10);
    cx_log_flush();
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_string_equal(slurp_file(), "first\nline-one\n"); /* the torn line was taken back */
    assert_int_equal(W.dropped - before, 2);                /* and it and the next were counted */
    assert_int_equal(W.dropping, 1);
    cx_log_raw("again", 5);
    cx_log_flush();
    assert_non_null(strstr(slurp_file(), "first\nline-one\nagain\n"));
    assert_int_equal(W.dropping, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_take_back_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_bytes_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_and_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salvage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_cut_short, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
