/*
 * test_hash.c -- FNV-1a against the published test vectors, and the intrusive table: put, get, keys
 * that are prefixes of one another or contain NUL bytes, growth to many entries, remove, clear, and a walk
 * over every entry that removes and frees entries as it goes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conduix/cx.h"
#include "conduix/hash.h"

typedef struct item {
    cx_hentry_t he;
    int value;
    size_t len;
    char key[32];
} item_t;

static item_t *item(const char *key, size_t len, int value)
{
    item_t *it = cx_calloc(1, sizeof(*it));
    memcpy(it->key, key, len);
    it->len = len;
    it->value = value;
    return it;
}

static item_t *get(const cx_htab_t *t, const char *key, size_t len)
{
    cx_hentry_t *e = cx_htab_get(t, key, len);
    return e != NULL ? CX_CONTAINER_OF(e, item_t, he) : NULL;
}

static void t_fnv1a(void **state)
{
    (void)state;
    /* the FNV-1a 64-bit test vectors (Fowler, Noll, Vo) */
    assert_true(cx_hash_fnv1a("", 0) == 0xcbf29ce484222325ULL);
    assert_true(cx_hash_fnv1a("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(cx_hash_fnv1a("foobar", 6) == 0x85944171f73967e8ULL);
    /* n bytes, not up to a NUL */
    assert_true(cx_hash_fnv1a("a\0b", 3) != cx_hash_fnv1a("a", 1));
}

static void t_put_get(void **state)
{
    cx_htab_t t = {0};
    item_t *a = item("agent-1", 7, 1), *b = item("agent-10", 8, 2), *c = item("a\0x", 3, 3);
    (void)state;

    assert_null(cx_htab_get(&t, "agent-1", 7));
    assert_int_equal(cx_htab_count(&t), 0);
    cx_htab_put(&t, &a->he, a->key, a->len);
    cx_htab_put(&t, &b->he, b->key, b->len);
    cx_htab_put(&t, &c->he, c->key, c->len);
    assert_int_equal(cx_htab_count(&t), 3);
    assert_ptr_equal(get(&t, "agent-1", 7), a);
    assert_ptr_equal(get(&t, "agent-10", 8), b);
    /* a prefix is another key; so is a key cut at a NUL */
    assert_null(get(&t, "agent-", 6));
    assert_ptr_equal(get(&t, "agent-10", 7), a); /* the first 7 bytes are "agent-1" */
    assert_null(get(&t, "agent-100", 9));
    assert_ptr_equal(get(&t, "a\0x", 3), c);
    assert_null(get(&t, "a", 1));
    assert_int_equal(get(&t, "agent-10", 8)->value, 2);

    cx_htab_remove(&t, &b->he);
    assert_null(get(&t, "agent-10", 8));
    assert_ptr_equal(get(&t, "agent-1", 7), a);
    assert_int_equal(cx_htab_count(&t), 2);
    cx_htab_clear(&t);
    assert_int_equal(cx_htab_count(&t), 0);
    assert_null(get(&t, "agent-1", 7));
    free(a);
    free(b);
    free(c);
}

static void t_many(void **state)
{
    enum { N = 50000 };
    cx_htab_t t = {0};
    item_t **v = cx_calloc(N, sizeof(*v));
    char key[32];
    (void)state;

    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "agent-%05d", i);
        v[i] = item(key, (size_t)n, i);
        cx_htab_put(&t, &v[i]->he, v[i]->key, v[i]->len);
    }
    assert_int_equal(cx_htab_count(&t), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "agent-%05d", i);
        item_t *it = get(&t, key, (size_t)n);
        assert_non_null(it);
        assert_int_equal(it->value, i);
    }
    assert_null(get(&t, "agent-50000", 11));
    /* every other one removed: the rest are still found */
    for (int i = 0; i < N; i += 2)
        cx_htab_remove(&t, &v[i]->he);
    assert_int_equal(cx_htab_count(&t), N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "agent-%05d", i);
        item_t *it = get(&t, key, (size_t)n);
        if (i % 2 == 0)
            assert_null(it);
        else
            assert_ptr_equal(it, v[i]);
    }
    cx_htab_clear(&t);
    for (int i = 0; i < N; i++)
        free(v[i]);
    free(v);
}

static void t_walk(void **state)
{
    enum { N = 1000 };
    cx_htab_t t = {0};
    char key[32], seen[N] = {0};
    cx_hentry_t *e, *next;
    size_t walked = 0;
    (void)state;

    assert_null(cx_htab_first(&t));
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "jti-%d", i);
        item_t *it = item(key, (size_t)n, i);
        cx_htab_put(&t, &it->he, it->key, it->len);
    }
    /* every entry once; the odd ones removed and freed during the walk */
    for (e = cx_htab_first(&t); e != NULL; e = next) {
        item_t *it = CX_CONTAINER_OF(e, item_t, he);
        next = cx_htab_next(e);
        assert_int_equal(seen[it->value], 0);
        seen[it->value] = 1;
        walked++;
        if (it->value % 2 == 1) {
            cx_htab_remove(&t, e);
            free(it);
        }
    }
    assert_int_equal(walked, N);
    assert_int_equal(cx_htab_count(&t), N / 2);
    assert_non_null(get(&t, "jti-2", 5));
    assert_null(get(&t, "jti-3", 5));
    /* the rest, freed with a second walk */
    walked = 0;
    for (e = cx_htab_first(&t); e != NULL; e = next) {
        item_t *it = CX_CONTAINER_OF(e, item_t, he);
        next = cx_htab_next(e);
        assert_int_equal(it->value % 2, 0);
        cx_htab_remove(&t, e);
        free(it);
        walked++;
    }
    assert_int_equal(walked, N / 2);
    assert_int_equal(cx_htab_count(&t), 0);
    assert_null(cx_htab_first(&t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_fnv1a),
        cmocka_unit_test(t_put_get),
        cmocka_unit_test(t_many),
        cmocka_unit_test(t_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
