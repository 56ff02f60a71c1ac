/*
 * hbmon.c -- the heartbeat monitor child: finds agents' heartbeats, keeps the agents table current and
 * records every online/offline transition.
 *
 * One hbmon leads, across all the instances on one database: the one whose MySQL session holds the
 * advisory lock cx_hbmon:<database> (GET_LOCK, taken without waiting and checked every tick). The
 * others stand by and only keep their instance's agent gauges; the lock goes with the leader's session
 * when it dies, and the next hbmon to ask takes over. So the instances never disagree about an agent:
 * one process decides, and MySQL has what it decided. A new leader loads the registry from MySQL and
 * gives every agent recorded online a whole heartbeat_timeout to be heard again.
 *
 * Agents write `SET agent:{id}:heartbeat <json> EX 30` and nothing else, so the value does not say when
 * it arrived. hbmon reads keys' PTTLs (pipelined, 1000 a round trip): a key whose expiry moved later than
 * when hbmon last read it was written again, and only those keys (and new ones) are fetched, with one
 * MGET per batch. A fresh `EX 30` puts the expiry 30 s after the write, so expiry - 30 s estimates the
 * write time, clamped between hbmon's previous read of the key and now: that is the beat's receive time,
 * judged by the control plane's clock, never the agent's, and exact to a few milliseconds however late
 * hbmon reads it. A value that changed, or an expiry that jumped by more than JUMP_MS even with the same
 * content, is a new beat; smaller jumps are measurement noise. A key without a TTL, or with one longer
 * than agents set, says nothing of when it was written: it is a beat only when hbmon sees it written
 * (its value or expiry changes between two reads), never because it exists.
 *
 * Every time is kept on the monotonic clock, and the timeout is judged on it: a step of the wall clock
 * neither ages every beat at once nor keeps a dead agent young. Wall-clock times are made only for
 * MySQL (last_heartbeat, the transitions), and REST beats that reached MySQL directly carry their age
 * as the database measures it.
 *
 * Each tick (agents.monitor_interval) continues a SCAN (MATCH agent:*:heartbeat COUNT 1000) for a slice
 * of the keyspace, so that a whole pass takes at most check_ms (every key each tick below SLICE_MIN keys),
 * and reads by name the keys that cannot wait: online agents near their timeout, and agents not online
 * whose key may still exist. An online agent goes offline when its last beat is older than
 * agents.heartbeat_timeout as of the moment hbmon looked at its key in this tick (or, when Redis failed,
 * as of now: then only REST beats in MySQL keep agents online).
 *
 * REST heartbeats arrive through the same key; when a worker could not reach Redis it wrote the beat to
 * MySQL (agent_rest_heartbeats), which hbmon polls each tick.
 *
 * This file is the policy; the Redis reads are src/redis/heartbeat.c's (batches of keys with their
 * PTTLs and values), the table of known agents is src/hash.c, the writes are src/db/agents.c's.
 * Everything is kept in the table of known agents, loaded from MySQL when hbmon takes the lead, so a
 * respawned hbmon continues where the last one stopped. A tick's changes go to MySQL in multi-row
 * statements, one transaction per chunk: transitions first, then new beats within the rest of the
 * tick's time; what is left (MySQL slow or down) is retried next tick. Unchanged agents cost no write.
 * The beats of agents that run pipelines go to the run bookkeeping (src/runs.c), which follows legacy
 * agents' runs and stops what an agent runs without an active run of ours there (strays).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conduix/agents.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/hash.h"
#include "conduix/heartbeat.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/redis.h"
#include "conduix/runs.h"
#include "conduix/shm.h"

#define SCAN_COUNT 1000
#define TTL_MS ((int64_t)CX_HB_TTL_S * 1000)
#define GET_TOL_MS 100      /* an expiry later by more than this: fetch the value */
#define JUMP_MS 500         /* same value, expiry later by more than this: a new beat */
#define SAME_BEAT_MS 250    /* first read of a key whose beat is already recorded (respawn) */
#define REST_MARGIN_MS 5000 /* direct REST beats may commit late: re-read this far back */
#define CHECK_MAX_MS 5000   /* the longest a SCAN pass may take (see slice) */
#define SLICE_MIN 20000     /* keys a tick reads at least (every key, when there are fewer) */
#define CHUNK 512           /* agents per flush transaction */
#define STATS_MS 60000      /* a line of tick statistics this often */
#define LOG_TRANSITIONS 50  /* transition lines per tick; the rest are summed up */
#define STANDBY_MS 5000     /* a standby hbmon reads the agent counts for its gauges this often */
#define TTL_TOL_MS 100      /* a PTTL above TTL_MS by more than this is no EX 30 an agent set */

#define ST_NONE CX_AGENT_STATUS_COUNT /* db_status of an agent MySQL has no row of yet */

/* Times of an agent are monotonic milliseconds (cx_now_ms), but rest_seen. */
typedef struct agent {
    cx_hentry_t he;       /* in H.tab, keyed by id */
    int64_t last_seen;    /* receive time of the last accepted beat, 0 never */
    int64_t expire_at;    /* key expiry as of the last read: 0 never read, -1 no TTL */
    int64_t observed;     /* when the key was last read */
    int64_t changed_ms;   /* when the in-memory status was decided */
    int64_t stray_at;     /* when its beats may be looked at for strays again */
    int64_t rest_seen;    /* received_at of the last direct REST beat taken (database clock, ms) */
    uint64_t vhash;       /* hash of the value last read */
    cx_heartbeat_t *beat; /* accepted, not yet written */
    uint32_t gen;         /* the scan that last read the key */
    uint32_t runs_tick;   /* H.runs_gen when it was last seen to have active runs */
    uint8_t status;       /* decided (cx_agent_status_t) */
    uint8_t db_status;    /* recorded (cx_agent_status_t; ST_NONE: no row known) */
    uint8_t queued;
    uint8_t bad; /* a key whose id is not a valid agent id */
    char id[];
} agent_t;

static struct {
    cx_htab_t tab; /* every agent by id */
    size_t n;
    agent_t **all; /* every agent, for the sweeps (denser than the buckets) */
    size_t capall;
    int64_t count[CX_AGENT_STATUS_COUNT + 1]; /* agents by recorded status (and ST_NONE), for the gauges */
    agent_t **work;
    size_t nwork, capwork;
    int loaded;
    uint32_t gen;
    int64_t rest_mark;
    int64_t timeout_ms, interval_ms;
    int64_t check_ms;            /* a pass of the SCAN lasts about this long (see slice) */
    char cursor[32];             /* of the SCAN pass under way */
    size_t pass_keys, pass_last; /* keys seen in this pass, in the last whole pass */
    char reason_off[64];
    int logged; /* transition lines this tick */
    int64_t stats_at, tick_ms_sum, tick_ms_max, scan_ms_sum, flush_ms_sum;
    uint64_t stats_ticks, stats_beats;
    int runs_known;     /* 1: agents' runs_tick marks are current; 0: ask again; -1: the query failed */
    uint32_t runs_gen;  /* one per query of the agents with active runs */
    int blind;          /* the last scan failed: Redis is down and its beats cannot be seen */
    int64_t sight_ms;   /* when Redis came back after an outage, or hbmon took the lead; beats count from here */
    int leading;        /* this hbmon holds the lock: it decides */
    int64_t standby_at; /* when a standby hbmon reads the counts again */
} H;

/* find -- the agent named id (len bytes), created when add is set (status unknown, no row known). */
static agent_t *find(const char *id, size_t len, int add)
{
    cx_hentry_t *e = cx_htab_get(&H.tab, id, len);
    agent_t *a;

    if (e != NULL)
        return CX_CONTAINER_OF(e, agent_t, he);
    if (!add)
        return NULL;
    a = cx_calloc(1, sizeof(*a) + len + 1);
    memcpy(a->id, id, len);
    a->status = CX_AGENT_UNKNOWN;
    a->db_status = ST_NONE;
    cx_htab_put(&H.tab, &a->he, a->id, len);
    if (H.n == H.capall) {
        H.capall = H.capall ? H.capall * 2 : 1024;
        H.all = cx_realloc(H.all, H.capall * sizeof(agent_t *));
    }
    H.all[H.n++] = a;
    return a;
}

static void queue(agent_t *a)
{
    if (a->queued)
        return;
    if (H.nwork == H.capwork) {
        H.capwork = H.capwork ? H.capwork * 2 : 1024;
        H.work = cx_realloc(H.work, H.capwork * sizeof(agent_t *));
    }
    H.work[H.nwork++] = a;
    a->queued = 1;
}

static void drop_beat(agent_t *a)
{
    if (a->beat != NULL) {
        cx_heartbeat_free(a->beat);
        free(a->beat);
        a->beat = NULL;
    }
}

/* accept -- a valid beat received at recv: the agent is alive; write it on the next flush. */
static void accept_beat(agent_t *a, cx_heartbeat_t *hb, int64_t recv)
{
    drop_beat(a);
    a->beat = cx_malloc(sizeof(*hb));
    *a->beat = *hb;
    if (recv > a->last_seen)
        a->last_seen = recv;
    H.stats_beats++;
    if (a->status != CX_AGENT_ONLINE) {
        a->status = CX_AGENT_ONLINE;
        a->changed_ms = cx_now_ms();
    }
    queue(a);
}

/* mono_of -- a wall-clock time (from MySQL) on the monotonic clock; wall_of -- the other way (for
 * MySQL). Used once per value, so a step of the wall clock moves no time kept in memory. */
static int64_t mono_of(int64_t wall_ms)
{
    return wall_ms > 0 ? cx_now_ms() - (cx_wall_ms() - wall_ms) : 0;
}

static int64_t wall_of(int64_t mono_ms)
{
    return cx_wall_ms() - (cx_now_ms() - mono_ms);
}

/* ---- start: the registry as MySQL has it ---- */

static void on_load(void *arg, const char *id, cx_agent_status_t status, int64_t last_hb_ms)
{
    agent_t *a = find(id, strlen(id), 1);
    (void)arg;
    a->status = a->db_status = (uint8_t)status;
    H.count[a->db_status]++;
    a->last_seen = mono_of(last_hb_ms);
    a->bad = !cx_agent_id_valid(id, strlen(id));
}

/* load -- the registry as MySQL has it, when this hbmon takes the lead. Every agent recorded online is
 * given a whole timeout from now (sight_ms) to be heard: what the last leader saw is not known here, and
 * a wall-clock time from MySQL is no measure of age. REST beats that reached MySQL directly are polled
 * next (rest_poll), with their age as MySQL measures it. */
static int load(void)
{
    size_t online = 0;
    int rc;

    if ((rc = cx_db_agents_load(on_load, NULL)) != CX_OK)
        return rc;
    for (size_t i = 0; i < H.n; i++)
        online += H.all[i]->db_status == CX_AGENT_ONLINE;
    H.loaded = 1;
    H.rest_mark = 0;
    H.sight_ms = cx_now_ms();
    cx_log_info("hbmon: leading; %zu agents known, %zu recorded online; timeout %lld ms, every %lld ms", H.n, online,
                (long long)H.timeout_ms, (long long)cx_cfg->agents.monitor_interval_ms);
    return CX_OK;
}

/* ---- the Redis scan ---- */

/* A key that was written since hbmon's last read of it (or is new to it): its value is fetched. */
typedef struct need {
    agent_t *a;
    int64_t exp, prev_observed;
    cx_hb_key_t *key;
} need_t;

/* The batch of keys a tick reads, and the needs of its check, kept from one tick to the next: at
 * 100,000 agents hbmon frees some 300,000 small blocks a second (reply objects, parsed beats), and
 * every malloc of a large block would make glibc consolidate them all again. */
static cx_hb_batch_t B;
static struct {
    need_t *v;
    cx_hb_key_t **keys;
    size_t cap;
} N;

static void needs(size_t n)
{
    if (n <= N.cap)
        return;
    N.cap = n;
    N.v = cx_realloc(N.v, n * sizeof(*N.v));
    N.keys = cx_realloc(N.keys, n * sizeof(cx_hb_key_t *));
}

/* reject_key -- count a bad value once per write of the key. */
static void reject_key(agent_t *a, const char *field, const char *msg)
{
    cx_hb_error_t err = {0};
    snprintf(err.field, sizeof(err.field), "%s", field);
    snprintf(err.msg, sizeof(err.msg), "%s", msg);
    cx_heartbeat_rejected("redis", a->bad ? a->id + 1 : a->id, &err);
}

/* credible -- does an expiry read at tr date the write (an agent's EX 30, TTL_MS or less left)? A key
 * without a TTL, or with a longer one, does not: it may have been written long ago. */
static int credible(int64_t exp, int64_t tr)
{
    return exp > 0 && exp - tr <= TTL_MS + TTL_TOL_MS;
}

/* value -- the fetched value (v, len; v NULL when the key held no string) of a key that was written
 * since hbmon's previous read (or is new to it), read at tr. */
static void value(const need_t *nd, const char *v, size_t len, int64_t tr)
{
    agent_t *a = nd->a;
    int first = a->expire_at == 0;
    int64_t exp = nd->exp, est, recv;
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    uint64_t h;
    int fresh;

    if (v == NULL) {
        /* not a string (MGET gives nil), or gone since the PTTL: only a key with time left is bad */
        if (exp > 0 && exp - tr < 1000)
            return;
        h = 2;
    } else {
        h = cx_hash_fnv1a(v, len) | 1; /* never 0 (never read) nor 2 (not a string) */
    }
    fresh =
        first || h != a->vhash || (exp > 0 && a->expire_at > 0 && exp - a->expire_at > JUMP_MS) || (exp > 0 && a->expire_at == -1);
    a->vhash = h;
    if (!fresh)
        return; /* the same write: keep the expiry first measured, so noise never accumulates */
    a->expire_at = exp;
    if (a->bad) {
        reject_key(a, "agent_id", "the key's agent id is empty, too long or not printable UTF-8");
        return;
    }
    if (h == 2) {
        reject_key(a, "body", "the key does not hold a string");
        return;
    }
    if (credible(exp, tr)) {
        est = exp - TTL_MS;
        recv = est > tr ? tr : est;
        if (!first && recv < nd->prev_observed)
            recv = nd->prev_observed; /* written after the previous read, whatever its TTL */
    } else {
        /* no TTL, or a longer one than agents set: the key's existence says nothing of when it was
         * written, so only a write hbmon saw happen counts, as of the read before it */
        recv = first ? -1 : nd->prev_observed;
    }
    if (first && a->last_seen > 0 && recv <= a->last_seen + SAME_BEAT_MS)
        recv = -1; /* already recorded (a respawned hbmon reading the keys again) */
    if (cx_heartbeat_parse(v, len, a->id, &hb, &err) != CX_OK) {
        cx_heartbeat_rejected("redis", a->id, &err); /* counted once per write, beat or not */
        return;
    }
    if (recv < 0 || recv <= a->last_seen) {
        cx_heartbeat_free(&hb); /* not a beat received now, or older than one taken from MySQL */
        return;
    }
    cx_shm_count(CX_C_HEARTBEATS_REDIS, 1);
    accept_beat(a, &hb, recv);
}

/* key_agent -- the agent of a heartbeat key (created when add is set). A key whose id is not a valid
 * agent id is tracked as "\x01<key>" (no valid id starts so), only to count each of its writes once. */
static agent_t *key_agent(const char *key, size_t len, int add)
{
    const size_t pre = sizeof(CX_HB_KEY_PREFIX) - 1, suf = sizeof(CX_HB_KEY_SUFFIX) - 1;
    char id[CX_AGENT_ID_MAX + 2];
    agent_t *a;
    size_t kl;

    if (len > pre + suf && (a = find(key + pre, len - pre - suf, 0)) != NULL)
        return a; /* known, hence valid */
    if (cx_heartbeat_key_id(key, len, id) >= 0)
        return find(id, strlen(id), add);
    kl = len > CX_AGENT_ID_MAX ? CX_AGENT_ID_MAX : len;
    id[0] = '\x01';
    memcpy(id + 1, key, kl);
    id[kl + 1] = '\0';
    a = find(id, strnlen(id, kl + 1), add);
    if (a != NULL)
        a->bad = 1;
    return a;
}

/* check -- n keys of the batch with their PTTL read at tr: the keys written since hbmon's last read of
 * them (their expiry moved later) and the keys new to it are fetched with one MGET and looked at. 0,
 * or -1 when Redis failed. */
static int check(cx_hb_key_t *keys, size_t n, int64_t tr)
{
    size_t nn = 0, i;

    needs(n);
    for (i = 0; i < n; i++) {
        cx_hb_key_t *k = &keys[i];
        agent_t *a;
        int64_t exp, prev;

        if (k->pttl == CX_HB_UNREAD)
            continue;
        if (k->pttl == -2) {
            /* no such key at tr: nothing new from this agent, and that is worth knowing */
            if ((a = k->user != NULL ? k->user : key_agent(k->key, k->len, 0)) != NULL) {
                a->observed = tr;
                a->gen = H.gen;
            }
            continue;
        }
        exp = k->pttl >= 0 ? tr + k->pttl : -1;
        a = k->user != NULL ? k->user : key_agent(k->key, k->len, 1);
        prev = a->observed;
        a->observed = tr;
        a->gen = H.gen;
        if (a->expire_at == 0 || exp == -1 || a->expire_at == -1 || exp > a->expire_at + GET_TOL_MS) {
            N.v[nn] = (need_t){a, exp, prev, k};
            N.keys[nn++] = k;
        }
    }
    if (nn > 0) {
        if (cx_redis_hb_mget(&B, N.keys, nn) != CX_OK)
            return -1;
        tr = cx_now_ms();
        for (i = 0; i < nn; i++)
            value(&N.v[i], N.keys[i]->value, N.keys[i]->vlen, tr);
    }
    return 0;
}

/* look -- the PTTL of keys[from .. from+n) of the batch in one round trip, then check. 0, or -1 when
 * Redis failed. */
static int look(size_t from, size_t n)
{
    if (n == 0)
        return 0;
    if (cx_redis_hb_pttl(&B, from, n) != CX_OK)
        return -1;
    return check(B.keys + from, n, cx_now_ms());
}

/* slice -- continue the SCAN of the heartbeat keys where the last tick left it, for at least SLICE_MIN
 * keys or the share of a pass that makes a whole pass last check_ms, whichever is more, and never past
 * the end of a pass. So a new key (a new agent) is found within one tick when there are fewer than
 * SLICE_MIN keys, and within check_ms otherwise; at 100,000 agents a tick reads a fifth of the keys.
 * The keys of agents whose timeout is near are read by name every tick (direct). 0, or -1 when Redis
 * failed (the cursor is kept: the pass goes on next tick). */
static int slice(void)
{
    size_t want = H.pass_last * (size_t)H.interval_ms / (size_t)H.check_ms + 1, got = 0;
    char next[32];

    if (want < SLICE_MIN)
        want = SLICE_MIN;
    do {
        if (cx_redis_hb_scan(&B, H.cursor, next, SCAN_COUNT) != CX_OK || look(0, B.n) != 0)
            return -1;
        memcpy(H.cursor, next, sizeof(H.cursor));
        got += B.n;
        H.pass_keys += B.n;
        if (strcmp(H.cursor, "0") == 0) {
            H.pass_last = H.pass_keys;
            H.pass_keys = 0;
            break;
        }
    } while (got < want && !cx_child_stop);
    return 0;
}

/* direct -- read by name the keys that cannot wait for the scan: online agents within check_ms + two
 * intervals of their timeout (an offline verdict needs a look at the key first), and agents not online
 * whose key may still exist (one that recovers re-SETs it). Agents read by this tick's slice are
 * skipped. 0, or -1 when Redis failed. */
static int direct(void)
{
    int64_t now = cx_now_ms();
    size_t i;
    int rc = 0;

    cx_hb_batch_reset(&B);
    for (i = 0; i < H.n; i++) {
        agent_t *a = H.all[i];
        if (a->bad || a->gen == H.gen)
            continue;
        if (a->status == CX_AGENT_ONLINE ? a->last_seen + H.timeout_ms - now >= H.check_ms + 2 * H.interval_ms
                                         : !(a->expire_at == -1 || a->expire_at > now))
            continue;
        cx_hb_batch_add(&B, a->id, a);
    }
    for (i = 0; i < B.n && rc == 0; i += SCAN_COUNT)
        rc = look(i, B.n - i < SCAN_COUNT ? B.n - i : SCAN_COUNT);
    return rc;
}

/* scan -- this tick's look at Redis. 1 when it went through, 0 when Redis failed. */
static int scan(void)
{
    H.gen++;
    return slice() == 0 && direct() == 0;
}

/* ---- REST beats that reached MySQL directly ---- */

/* on_rest -- a REST beat that reached MySQL directly: received received_at (database clock, ms),
 * age_ms ago as the database measures it. */
static void on_rest(void *arg, const char *id, const char *text, size_t len, int64_t received_at, int64_t age_ms)
{
    int64_t *max = arg, recv = cx_now_ms() - (age_ms > 0 ? age_ms : 0);
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    agent_t *a;

    if (received_at > *max)
        *max = received_at;
    if (!cx_agent_id_valid(id, strlen(id)))
        return;
    a = find(id, strlen(id), 1);
    if (received_at <= a->rest_seen)
        return;
    a->rest_seen = received_at;
    if (a->status == CX_AGENT_ONLINE && recv <= a->last_seen)
        return; /* a newer beat came through Redis */
    if (cx_heartbeat_parse(text, len, id, &hb, &err) != CX_OK) {
        cx_heartbeat_rejected("rest", id, &err);
        return;
    }
    accept_beat(a, &hb, recv);
}

/* rest_poll -- the direct REST beats received since the last poll (a margin back, for transactions that
 * committed late), and at first those of the last timeout; marks are database times. */
static void rest_poll(void)
{
    int64_t max = 0;

    if (cx_db_agents_rest_beats(H.rest_mark, H.timeout_ms + REST_MARGIN_MS, on_rest, &max) != CX_OK)
        return;
    if (max - REST_MARGIN_MS > H.rest_mark)
        H.rest_mark = max - REST_MARGIN_MS;
}

/* ---- offline detection ---- */

/* judge -- online agents whose last beat is older than the timeout as of the moment hbmon last looked at
 * their key in this tick go offline; agents near their timeout are always looked at (direct).
 *
 * While Redis is down hbmon is blind to the beats agents write there, so it records no offline verdict
 * at all: a Redis outage must not turn into "every agent lost, every run failed over". REST beats that
 * reached MySQL still bring agents online meanwhile. When Redis is back, every agent is given a full
 * heartbeat_timeout from that moment (agents write every 10 s, so a live one is seen again well within
 * it); only then are the silent ones declared offline. */
static void judge(int seen)
{
    int64_t now = cx_now_ms();

    if (!seen) {
        if (!H.blind)
            cx_log_warnx("hbmon: Redis unavailable: no agent is declared offline until it is back");
        H.blind = 1;
        return;
    }
    if (H.blind) {
        H.blind = 0;
        H.sight_ms = now;
        cx_log_info("hbmon: Redis is back: agents silent for %lld ms from now will be declared offline", (long long)H.timeout_ms);
    }
    for (size_t i = 0; i < H.n; i++) {
        agent_t *a = H.all[i];
        int64_t at, last;
        if (a->status != CX_AGENT_ONLINE)
            continue;
        at = a->gen == H.gen ? a->observed : now;
        last = a->last_seen > H.sight_ms ? a->last_seen : H.sight_ms;
        if (last + H.timeout_ms < at) {
            a->status = CX_AGENT_OFFLINE;
            a->changed_ms = now;
            queue(a);
        }
    }
}

/* ---- writing a tick's changes ---- */

static void fill(cx_agent_change_t *c, agent_t *a)
{
    memset(c, 0, sizeof(*c));
    c->id = a->id;
    c->beat = a->beat;
    c->beat_ms = wall_of(a->last_seen);
    c->status = (cx_agent_status_t)a->status;
    if (a->status != a->db_status && !(a->db_status == ST_NONE && a->status == CX_AGENT_UNKNOWN)) {
        c->transition = 1;
        c->from = a->db_status == ST_NONE ? CX_AGENT_UNKNOWN : (cx_agent_status_t)a->db_status;
        c->changed_ms = wall_of(a->changed_ms);
        c->reason = a->status == CX_AGENT_ONLINE ? "heartbeat received" : H.reason_off;
    }
}

static void on_runs(void *arg, const char *id)
{
    agent_t *a = find(id, strlen(id), 0);
    (void)arg;
    if (a != NULL)
        a->runs_tick = H.runs_gen;
}

/* has_runs -- may the agent have active runs? Asked once per written chunk, for all agents at once: at
 * 100,000 agents a query per beat would cost more than the whole scan, and cx_runs_heartbeat and
 * cx_runs_agent_offline only act on the agent's active runs, so an agent without any has nothing for
 * them (a run started meanwhile is seen by the next chunk or tick: its agent was online, and a beat of
 * it comes every few seconds). When the query fails, every agent may. */
static int has_runs(agent_t *a)
{
    if (H.runs_known == 0) {
        H.runs_gen++;
        H.runs_known = cx_db_agents_with_runs(on_runs, NULL) == CX_OK ? 1 : -1;
    }
    return H.runs_known < 0 || a->runs_tick == H.runs_gen;
}

/* done -- a change is recorded: count, log, tell the run bookkeeping. */
static void done(agent_t *a, const cx_agent_change_t *c)
{
    if (c->transition) {
        int on = a->status == CX_AGENT_ONLINE;
        cx_shm_count(on ? CX_C_AGENT_TRANSITIONS_ONLINE : CX_C_AGENT_TRANSITIONS_OFFLINE, 1);
        if (H.logged++ < LOG_TRANSITIONS)
            cx_log_info("hbmon: agent %s %s -> %s (%s)", a->id, cx_agent_status_name(c->from), cx_agent_status_name(c->status),
                        c->reason);
    }
    if (a->db_status != a->status) {
        H.count[a->db_status]--;
        H.count[a->status]++;
        a->db_status = a->status;
    }
    a->queued = 0;
    if (c->transition && a->status == CX_AGENT_OFFLINE && has_runs(a))
        cx_runs_agent_offline(a->id);
    if (a->beat != NULL) {
        /* strays (pipelines it runs without an active run of ours) are looked for at most twice a
         * timeout per agent: one that keeps running a pipeline unknown here costs a query that often */
        int64_t now = cx_now_ms();
        int strays = a->beat->npipelines > 0 && now >= a->stray_at;
        if (strays)
            a->stray_at = now + H.timeout_ms / 2;
        if (strays || has_runs(a))
            cx_runs_heartbeat(a->id, a->beat->obj, strays);
        drop_beat(a);
    }
}

/* failed -- a change MySQL refused even alone: drop the beat, and let the status be decided again. */
static void failed(agent_t *a)
{
    cx_log_errorx("hbmon: could not record agent %s; its beat is dropped", a->id);
    drop_beat(a);
    a->status = a->db_status;
    a->queued = 0;
}

/* pass -- write the queued agents that have a transition (transitions set) or the others, in chunks of
 * one transaction each, until deadline (cx_now_ms). -1 when MySQL is unavailable. */
static int pass(int transitions, int64_t deadline)
{
    cx_agent_change_t *ch = cx_malloc(CHUNK * sizeof(*ch));
    agent_t **chunk = cx_malloc(CHUNK * sizeof(agent_t *));
    size_t i = 0;
    int rc = 0;

    while (i < H.nwork && cx_now_ms() < deadline) {
        size_t k = 0, j;
        for (; i < H.nwork && k < CHUNK; i++) {
            agent_t *a = H.work[i];
            if (!a->queued)
                continue;
            fill(&ch[k], a);
            if (ch[k].transition != transitions)
                continue;
            if (ch[k].beat == NULL && !ch[k].transition) {
                a->queued = 0;
                continue;
            }
            chunk[k++] = a;
        }
        if (k == 0)
            break;
        rc = cx_db_agents_flush(ch, k);
        if (rc == CX_UNAVAIL) {
            rc = -1;
            break; /* this chunk and the rest wait for the next tick */
        }
        H.runs_known = 0; /* who has active runs: asked again after each commit (see has_runs) */
        for (j = 0; j < k; j++) {
            if (rc == CX_OK || cx_db_agents_flush(&ch[j], 1) == CX_OK)
                done(chunk[j], &ch[j]);
            else
                failed(chunk[j]);
        }
        rc = 0;
    }
    free(ch);
    free(chunk);
    return rc;
}

/* flush -- the tick's changes to MySQL: every transition first, whatever it takes, then the new beats
 * until deadline; beats left over stay queued for the next tick (a newer beat of the same agent
 * replaces its older one), so a slow MySQL delays last_heartbeat in the table, never a transition. */
static void flush(int64_t deadline)
{
    size_t i, keep = 0;

    if (H.nwork == 0)
        return;
    H.logged = 0;
    if (pass(1, INT64_MAX) == 0)
        pass(0, deadline);
    if (H.logged > LOG_TRANSITIONS)
        cx_log_info("hbmon: %d more transitions this tick", H.logged - LOG_TRANSITIONS);
    for (i = 0; i < H.nwork; i++)
        if (H.work[i]->queued)
            H.work[keep++] = H.work[i];
    H.nwork = keep;
}

static void gauges(void)
{
    cx_shm_gauge_set(CX_G_AGENTS_ONLINE, H.count[CX_AGENT_ONLINE]);
    cx_shm_gauge_set(CX_G_AGENTS_OFFLINE, H.count[CX_AGENT_OFFLINE]);
    cx_shm_gauge_set(CX_G_AGENTS_UNKNOWN, H.count[CX_AGENT_UNKNOWN]);
}

/* stats -- one line a minute: how long ticks take and how many beats they took. */
static void stats(int64_t t0)
{
    int64_t ms = cx_now_ms() - t0;

    H.stats_ticks++;
    H.tick_ms_sum += ms;
    if (ms > H.tick_ms_max)
        H.tick_ms_max = ms;
    if (H.stats_at == 0)
        H.stats_at = t0;
    if (t0 - H.stats_at < STATS_MS)
        return;
    cx_log_info("hbmon: %zu agents; %llu ticks in %lld s, %lld ms on average (scan %lld, writes %lld), %lld ms at most; "
                "%llu beats",
                H.n, (unsigned long long)H.stats_ticks, (long long)(t0 - H.stats_at) / 1000,
                (long long)(H.tick_ms_sum / (int64_t)H.stats_ticks), (long long)(H.scan_ms_sum / (int64_t)H.stats_ticks),
                (long long)(H.flush_ms_sum / (int64_t)H.stats_ticks), (long long)H.tick_ms_max, (unsigned long long)H.stats_beats);
    H.stats_at = t0;
    H.stats_ticks = 0;
    H.tick_ms_sum = H.tick_ms_max = H.scan_ms_sum = H.flush_ms_sum = 0;
    H.stats_beats = 0;
}

/* forget -- drop every agent known in memory (not the configuration): when this hbmon stops leading, or
 * takes the lead and must read the registry as the last leader left it. */
static void forget(void)
{
    cx_htab_clear(&H.tab); /* first: it reads the entries */
    for (size_t i = 0; i < H.n; i++) {
        drop_beat(H.all[i]);
        free(H.all[i]);
    }
    free(H.all);
    free(H.work);
    H.all = H.work = NULL;
    H.n = H.capall = H.nwork = H.capwork = 0;
    memset(H.count, 0, sizeof(H.count));
    H.loaded = 0;
    H.blind = 0;
    strcpy(H.cursor, "0");
    H.pass_keys = H.pass_last = 0;
}

/* standby -- the gauges of an instance whose hbmon does not lead, from MySQL, every STANDBY_MS. */
static void standby(void)
{
    int64_t n[CX_AGENT_STATUS_COUNT] = {0};

    if (cx_now_ms() < H.standby_at)
        return;
    H.standby_at = cx_now_ms() + STANDBY_MS;
    cx_shm_gauge_set(CX_G_HBMON_LEADER, 0);
    if (cx_db_agents_count(n) != CX_OK)
        return;
    cx_shm_gauge_set(CX_G_AGENTS_ONLINE, n[CX_AGENT_ONLINE]);
    cx_shm_gauge_set(CX_G_AGENTS_OFFLINE, n[CX_AGENT_OFFLINE]);
    cx_shm_gauge_set(CX_G_AGENTS_UNKNOWN, n[CX_AGENT_UNKNOWN]);
}

/* lead -- does this hbmon decide, now? Asked every tick (one query): a lost session lost the lock with
 * it, and another hbmon may hold it now. While MySQL cannot be asked nothing could be recorded either,
 * so the tick is skipped and the role kept until MySQL answers. */
static int lead(void)
{
    int rc = cx_db_agents_lead();

    if (rc == CX_OK && H.leading)
        return 1;
    if (rc == CX_OK || rc == CX_STATE) {
        /* taken now (or kept by a session this process no longer knows): another hbmon may have led
         * since, so read the registry as it was left */
        if (H.leading)
            cx_log_warnx("hbmon: the lead was lost with the MySQL session and taken again; reloading the registry");
        forget();
        H.leading = 1;
        cx_shm_gauge_set(CX_G_HBMON_LEADER, 1);
        return 1;
    }
    if (rc != CX_CONFLICT)
        return 0;
    if (H.leading || H.standby_at == 0)
        cx_log_info("hbmon: another hbmon leads agent liveness for this database; standing by");
    if (H.leading) {
        forget();
        H.leading = 0;
    }
    standby();
    return 0;
}

static int tick(void *arg)
{
    int64_t m0 = cx_now_ms(), m1;

    (void)arg;
    H.runs_known = 0;
    if (!lead())
        return 0;
    if (!H.loaded && load() != CX_OK)
        return 0; /* MySQL down: nothing can be recorded yet; try again next tick */
    int seen = scan();
    rest_poll();
    judge(seen);
    m1 = cx_now_ms();
    H.scan_ms_sum += m1 - m0;
    flush(m0 + H.interval_ms * 3 / 4);
    H.flush_ms_sum += cx_now_ms() - m1;
    gauges();
    stats(m0);
    return 0;
}

static void cleanup(void)
{
    forget();
    cx_hb_batch_free(&B);
    free(N.v);
    free(N.keys);
    memset(&N, 0, sizeof(N));
    memset(&H, 0, sizeof(H));
}

int cx_hbmon_run(void)
{
    int rc;

    memset(&H, 0, sizeof(H));
    /* No fastbins: hbmon frees hundreds of thousands of small blocks a second (Redis replies, parsed
     * beats) between large allocations (the reply buffer growing), and with fastbins glibc consolidates
     * them all at each large one; that cost more than the parsing (perf, 100,000 agents). */
    mallopt(M_MXFAST, 0);
    H.timeout_ms = cx_cfg->agents.heartbeat_timeout_ms;
    H.interval_ms = cx_cfg->agents.monitor_interval_ms;
    strcpy(H.cursor, "0");
    H.check_ms = H.timeout_ms / 6 < CHECK_MAX_MS ? H.timeout_ms / 6 : CHECK_MAX_MS;
    if (H.check_ms < H.interval_ms)
        H.check_ms = H.interval_ms;
    snprintf(H.reason_off, sizeof(H.reason_off), "no heartbeat for %.1f s", (double)H.timeout_ms / 1000.0);
    cx_shm_gauge_set(CX_G_HBMON_LEADER, 0);
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    rc = cx_child_loop(cx_cfg->agents.monitor_interval_ms, tick, NULL);
    cleanup();
    cx_db_close();
    cx_redis_close();
    return rc;
}
