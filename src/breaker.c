/*
 * breaker.c -- the circuit breaker state machine of breaker.h, one per process for Redis (redis.c) and
 * one for MySQL (db/db.c): closed (consecutive failures counted, a success resets the count), open
 * after max_failures (calls refused until open_until), half-open once the wait is over, closed again
 * after half_open_successes successes, open again on any failure in half-open. Pure: no clock, no I/O,
 * no logging; the caller passes now_ms.
 *
 * The wait before a probe is an exponential backoff: CX_BREAKER_PROBE_MS after opening (or what
 * cx_breaker_set_probe says), doubling after each failed probe up to the cooldown, and back to the
 * start once the breaker closes. A Redis that returns after a short outage is noticed within about a
 * second, and a long outage still costs a probe only once per cooldown.
 *
 * "One probe at a time" in half-open is not enforced: each process (worker, scheduler …) owns its breaker
 * and makes its calls from one thread, so at most one call is in flight anyway, and its result is
 * recorded before the next allow().
 */
#include "conduix/breaker.h"

void cx_breaker_init(cx_breaker_t *b, int max_failures, int64_t cooldown_ms, int half_open_successes)
{
    int64_t cooldown = cooldown_ms > 0 ? cooldown_ms : 0;

    b->state = CX_BREAKER_CLOSED;
    b->failures = 0;
    b->successes = 0;
    b->open_until = 0;
    b->max_failures = max_failures > 0 ? max_failures : 1;
    b->cooldown_ms = cooldown;
    b->half_open_successes = half_open_successes > 0 ? half_open_successes : 1;
    b->opened_total = 0;
    cx_backoff_init(&b->probe, cooldown < CX_BREAKER_PROBE_MS ? cooldown : CX_BREAKER_PROBE_MS, cooldown);
}

void cx_breaker_set_probe(cx_breaker_t *b, int64_t first_ms)
{
    cx_backoff_init(&b->probe, first_ms < b->cooldown_ms ? first_ms : b->cooldown_ms, b->cooldown_ms);
}

/* trip -- open: calls are refused until the next probe. first: opened from closed, so the probe wait
 * starts over; else a probe failed, and the wait doubles. */
static void trip(cx_breaker_t *b, int64_t now_ms, int first)
{
    if (first)
        cx_backoff_reset(&b->probe);
    b->state = CX_BREAKER_OPEN;
    b->open_until = now_ms + (b->cooldown_ms > 0 ? cx_backoff_next(&b->probe) : 0);
    b->failures = 0;
    b->successes = 0;
    b->opened_total++;
}

/* cx_breaker_allow -- may a call be made now?
 * Open turns half-open when the wait is over (now_ms >= open_until); the call then allowed is the
 * probe whose outcome decides between closed and open. */
int cx_breaker_allow(cx_breaker_t *b, int64_t now_ms)
{
    switch (b->state) {
    case CX_BREAKER_CLOSED:
    case CX_BREAKER_HALF_OPEN:
        return 1;
    case CX_BREAKER_OPEN:
        if (now_ms < b->open_until)
            return 0;
        b->state = CX_BREAKER_HALF_OPEN;
        b->successes = 0;
        return 1;
    }
    return 0;
}

void cx_breaker_success(cx_breaker_t *b, int64_t now_ms)
{
    (void)now_ms;
    switch (b->state) {
    case CX_BREAKER_CLOSED:
        b->failures = 0;
        break;
    case CX_BREAKER_HALF_OPEN:
        if (++b->successes >= b->half_open_successes) {
            b->state = CX_BREAKER_CLOSED;
            b->failures = 0;
            b->successes = 0;
            cx_backoff_reset(&b->probe);
        }
        break;
    case CX_BREAKER_OPEN:
        /* A call allowed before the breaker opened that finished late: it changes nothing. */
        break;
    }
}

void cx_breaker_failure(cx_breaker_t *b, int64_t now_ms)
{
    switch (b->state) {
    case CX_BREAKER_CLOSED:
        if (++b->failures >= b->max_failures)
            trip(b, now_ms, 1);
        break;
    case CX_BREAKER_HALF_OPEN:
        trip(b, now_ms, 0);
        break;
    case CX_BREAKER_OPEN:
        break;
    }
}

const char *cx_breaker_state_name(cx_breaker_state_t s)
{
    switch (s) {
    case CX_BREAKER_CLOSED:
        return "closed";
    case CX_BREAKER_OPEN:
        return "open";
    case CX_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}
