/*
 * hash.c -- FNV-1a and the intrusive table of string keys (hash.h), a thin typed layer over uthash so
 * that no other file includes uthash's macros or depends on how it is configured here.
 */
#include <stdlib.h>

#include "conduix/cx.h"

/* uthash allocates its bucket arrays; failure aborts like every allocation of the project. */
#define uthash_malloc(sz) cx_malloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#define uthash_fatal(msg) abort()

#include "conduix/hash.h"

uint64_t cx_hash_fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

cx_hentry_t *cx_htab_get(const cx_htab_t *t, const char *key, size_t len)
{
    cx_hentry_t *e = NULL;
    HASH_FIND(hh, t->head, key, len, e);
    return e;
}

void cx_htab_put(cx_htab_t *t, cx_hentry_t *e, const char *key, size_t len)
{
    HASH_ADD_KEYPTR(hh, t->head, key, len, e);
}

void cx_htab_remove(cx_htab_t *t, cx_hentry_t *e)
{
    HASH_DELETE(hh, t->head, e);
}

size_t cx_htab_count(const cx_htab_t *t)
{
    return HASH_COUNT(t->head);
}

void cx_htab_clear(cx_htab_t *t)
{
    HASH_CLEAR(hh, t->head);
}

cx_hentry_t *cx_htab_first(const cx_htab_t *t)
{
    return t->head;
}

cx_hentry_t *cx_htab_next(const cx_hentry_t *e)
{
    return e->hh.next; /* uthash's element: the cx_hentry_t itself, which the handle begins */
}
