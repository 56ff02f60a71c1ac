/*
 * hash.h -- the one string hash of conduix-cp (64-bit FNV-1a), and a table of entries found by a
 * string key.
 *
 * The table is intrusive: the caller allocates and owns its entries, each of which embeds a
 * cx_hentry_t and holds its own key (a table of 100,000 agents costs no allocation per entry beyond
 * the agent itself). Under it is uthash (the Debian package uthash-dev), whose buckets grow as entries
 * are added; allocation failure aborts, as everywhere (cx.h).
 */
#ifndef CONDUIX_HASH_H
#define CONDUIX_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

/* cx_hash_fnv1a -- 64-bit FNV-1a of n bytes (offset basis 14695981039346656037, prime 1099511628211).
 * Only ever used in memory (caches, tables, the rate limiter's buckets): nothing stored depends on
 * its values. */
uint64_t cx_hash_fnv1a(const void *p, size_t n);

/* An entry: embed it in a struct and get the struct back with CX_CONTAINER_OF. */
typedef struct cx_hentry {
    UT_hash_handle hh;
} cx_hentry_t;

/* A table; zero-initialised it is empty. */
typedef struct cx_htab {
    cx_hentry_t *head;
} cx_htab_t;

#define CX_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* cx_htab_get -- the entry whose key is key[0..len), or NULL. */
cx_hentry_t *cx_htab_get(const cx_htab_t *t, const char *key, size_t len);

/* cx_htab_put -- add e under key[0..len), which must stay valid and unchanged while e is in the table
 * (keep it inside the entry's struct). The key must not be in the table yet. */
void cx_htab_put(cx_htab_t *t, cx_hentry_t *e, const char *key, size_t len);

/* cx_htab_remove -- take e out of the table (the caller still owns it). */
void cx_htab_remove(cx_htab_t *t, cx_hentry_t *e);

/* cx_htab_count -- the number of entries. */
size_t cx_htab_count(const cx_htab_t *t);

/* cx_htab_clear -- empty the table and free what it allocated; the entries are the caller's. */
void cx_htab_clear(cx_htab_t *t);

/* cx_htab_first, cx_htab_next -- walk the entries, in no particular order: NULL after the last. An entry
 * may be removed (and freed) during the walk once the next one has been taken:
 *   for (e = cx_htab_first(t); e != NULL; e = next) { next = cx_htab_next(e); ... } */
cx_hentry_t *cx_htab_first(const cx_htab_t *t);
cx_hentry_t *cx_htab_next(const cx_hentry_t *e);

#endif
