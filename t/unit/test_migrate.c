/*
 * test_migrate.c -- the migrations built into the binary are the files of migrations/: the same names,
 * in the same order, byte for byte (so the same SHA-256 checksums), and no file of the directory is
 * missing from the build's list (Makefile.am, MIGRATIONS). Includes the .c to reach its statics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/db/migrate.c"

static const char *srcdir_migrations(void)
{
    static char dir[4096];
    const char *top = getenv("CX_SRCDIR");
    assert_non_null(top); /* make check exports it */
    snprintf(dir, sizeof(dir), "%s/migrations", top);
    return dir;
}

static void test_builtin_equals_files(void **state)
{
    mfile_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    (void)state;

    assert_int_equal(scan(NULL, &a, &na), CX_OK);
    assert_int_equal(scan(srcdir_migrations(), &b, &nb), CX_OK);
    assert_true(na >= 1);
    if (na != nb) {
        for (size_t i = 0; i < nb; i++) {
            int listed = 0;
            for (size_t j = 0; j < na; j++)
                listed |= strcmp(a[j].name, b[i].name) == 0;
            if (!listed)
                print_error("%s is in migrations/ but not in MIGRATIONS of Makefile.am\n", b[i].name);
        }
    }
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(a[i].name, b[i].name);
        assert_int_equal(a[i].version, b[i].version);
        assert_int_equal(a[i].len, b[i].len);
        assert_memory_equal(a[i].sql, b[i].sql, a[i].len);
        assert_string_equal(a[i].sum, b[i].sum);
        assert_int_equal(strlen(a[i].sum), 64);
    }
    files_free(a, na);
    files_free(b, nb);
}

static void test_builtin_table(void **state)
{
    (void)state;
    assert_true(cx_migrations_builtin_count >= 1);
    for (size_t i = 0; i < cx_migrations_builtin_count; i++) {
        const cx_migration_t *m = &cx_migrations_builtin[i];
        assert_true(valid_name(m->name));
        assert_int_equal(m->sql[m->len], '\0'); /* a NUL after the bytes */
        if (i > 0)
            assert_true(strcmp(cx_migrations_builtin[i - 1].name, m->name) < 0); /* listed in version order */
    }
}

/* The checksum is the SHA-256 of the file's bytes, as recorded in schema_migrations. */
static void test_checksum(void **state)
{
    char sum[65];
    (void)state;
    assert_int_equal(sha256_hex("abc", 3, sum), 0);
    assert_string_equal(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_equals_files),
        cmocka_unit_test(test_builtin_table),
        cmocka_unit_test(test_checksum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
