/*
 * breaker.h -- a circuit breaker: closed, open after N consecutive failures, half-open when the wait is
 * over (one probe at a time), closed again after M successes in half-open; a failure in half-open opens
 * it again. The wait doubles from CX_BREAKER_PROBE_MS after each failed probe, up to the cooldown. Pure:
 * the caller passes the clock, so the state machine is unit-tested.
 */
#ifndef CONDUIX_BREAKER_H
#define CONDUIX_BREAKER_H

#include <stdint.h>

#include "conduix/backoff.h"

#define CX_BREAKER_PROBE_MS 250 /* the first wait after opening */

typedef enum { CX_BREAKER_CLOSED = 0, CX_BREAKER_OPEN, CX_BREAKER_HALF_OPEN } cx_breaker_state_t;

typedef struct cx_breaker {
    cx_breaker_state_t state;
    int failures;            /* consecutive, in closed */
    int successes;           /* in half-open */
    int64_t open_until;      /* ms, when open */
    int max_failures;        /* N */
    int64_t cooldown_ms;     /* the longest wait between probes */
    cx_backoff_t probe;      /* the wait before the next probe */
    int half_open_successes; /* M */
    uint64_t opened_total;   /* how many times it opened */
} cx_breaker_t;

void cx_breaker_init(cx_breaker_t *b, int max_failures, int64_t cooldown_ms, int half_open_successes);
/* cx_breaker_set_probe -- the wait before the first probe after opening (instead of CX_BREAKER_PROBE_MS);
 * it still doubles after each failed probe up to the cooldown. */
void cx_breaker_set_probe(cx_breaker_t *b, int64_t first_ms);
/* cx_breaker_allow -- may a call be made now? Moves open to half-open when the cooldown is over. */
int cx_breaker_allow(cx_breaker_t *b, int64_t now_ms);
void cx_breaker_success(cx_breaker_t *b, int64_t now_ms);
void cx_breaker_failure(cx_breaker_t *b, int64_t now_ms);
const char *cx_breaker_state_name(cx_breaker_state_t s);

#endif
