/*
 * backoff.c -- the exponential backoff of backoff.h.
 */
#include "conduix/backoff.h"

void cx_backoff_init(cx_backoff_t *b, int64_t min_ms, int64_t max_ms)
{
    b->min_ms = min_ms > 0 ? min_ms : 1;
    b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
    b->next_ms = b->min_ms;
}

int64_t cx_backoff_next(cx_backoff_t *b)
{
    int64_t d = b->next_ms;
    b->next_ms = d > b->max_ms / 2 ? b->max_ms : d * 2;
    return d;
}

void cx_backoff_reset(cx_backoff_t *b)
{
    b->next_ms = b->min_ms;
}
