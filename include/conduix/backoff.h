/*
 * backoff.h -- exponential backoff: the delay before the next attempt doubles after every failure, from
 * min_ms up to max_ms, and a success starts it over. One helper for every retry loop of the server (the
 * master respawning a child, the Redis breaker probing, MySQL reconnects, the dispatcher's subscription).
 * Pure: no clock; the caller adds the delay to its own now.
 */
#ifndef CONDUIX_BACKOFF_H
#define CONDUIX_BACKOFF_H

#include <stdint.h>

typedef struct cx_backoff {
    int64_t min_ms;
    int64_t max_ms;
    int64_t next_ms; /* the delay cx_backoff_next returns next */
} cx_backoff_t;

/* cx_backoff_init -- min_ms is clamped to at least 1, max_ms to at least min_ms. */
void cx_backoff_init(cx_backoff_t *b, int64_t min_ms, int64_t max_ms);

/* cx_backoff_next -- the delay to wait after this failure; the following one is twice as long, at most
 * max_ms. */
int64_t cx_backoff_next(cx_backoff_t *b);

/* cx_backoff_reset -- after a success: the next delay is min_ms again. */
void cx_backoff_reset(cx_backoff_t *b);

#endif
