/*
 * hbmon.c -- the heartbeat monitor child: finds agents' heartbeats, keeps the agents table current and
 * records every online/offline transition.
 *
 * Agents write `SET agent:{id}:heartbeat <json> EX 30` and nothing else, so the value does not say when
 * it arrived. Each tick (agents.monitor_interval) hbmon SCANs the keys (COUNT 1000) and reads their PTTL
 * in one pipelined round trip per batch; a key whose expiry moved later than hbmon last saw it was
 * written again, and only those keys (and new ones) are fetched, with one MGET per batch. A fresh
 * `EX 30` puts the expiry 30 s after the write, so expiry - 30 s estimates the write time, clamped
 * between hbmon's previous read of the key and now: that is the beat's receive time, judged by the
 * control plane's clock, never the agent's. A value that changed, or an expiry that jumped by more than
 * JUMP_MS even with the same content, is a new beat; smaller jumps are measurement noise.
 *
 * REST heartbeats arrive through the same key; when a worker could not reach Redis it wrote the beat to
 * MySQL (agent_rest_heartbeats), which hbmon polls each tick. An online agent goes offline when its last
 * beat is older than agents.heartbeat_timeout as of the moment hbmon last looked at its key (or, when
 * the scan failed, as of now: with Redis down only the REST beats in MySQL keep agents online).
 *
 * Everything is kept in a hash table of known agents, loaded from MySQL at start so a respawned hbmon
 * continues where the last one stopped; a tick's changes (new beats, transitions) go to MySQL in a few
 * multi-row statements inside one transaction per chunk, and are retried on the next tick when MySQL
 * is down. Unchanged agents cost no write.
 */
#include <stdlib.h>
#include <string.h>

#include "conduix/agents.h"
#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/db.h"
#include "conduix/log.h"
#include "conduix/proc.h"
#include "conduix/redis.h"
#include "conduix/runs.h"
#include "conduix/shm.h"

#define SCAN_COUNT 1000
#define KEY_MATCH "agent:*:heartbeat"
#define TTL_MS ((int64_t)CX_HB_TTL_S * 1000)
#define GET_TOL_MS 100      /* an expiry later by more than this: fetch the value */
#define JUMP_MS 500         /* same value, expiry later by more than this: a new beat */
#define SAME_BEAT_MS 250    /* first read of a key whose beat is already recorded (respawn) */
#define REST_MARGIN_MS 5000 /* direct REST beats may commit late: re-read this far back */
#define CHUNK 512           /* agents per flush transaction */
#define STATS_MS 60000      /* a line of tick statistics this often */
#define LOG_TRANSITIONS 50  /* transition lines per tick; the rest are summed up */

enum { ST_NONE = 0, ST_UNKNOWN, ST_ONLINE, ST_OFFLINE };
static const char *const st_names[] = {"unknown", "unknown", "online", "offline"};

typedef struct agent {
    struct agent *next;
    uint64_t h;
    int64_t last_seen;    /* receive time of the last accepted beat (wall ms), 0 never */
    int64_t expire_at;    /* key expiry as of the last read (wall ms): 0 never read, -1 no TTL */
    int64_t observed;     /* when the key was last read */
    int64_t changed_ms;   /* when the in-memory status was decided */
    int64_t rest_seen;    /* received_at of the last direct REST beat taken */
    uint64_t vhash;       /* hash of the value last read */
    cx_heartbeat_t *beat; /* accepted, not yet written */
    uint32_t gen;         /* the scan that last read the key */
    uint32_t runs_tick;   /* the tick in which it was seen to have active runs */
    uint8_t status;       /* decided */
    uint8_t db_status;    /* recorded (ST_NONE: no row known) */
    uint8_t queued;
    uint8_t bad; /* a key whose id is not a valid agent id */
    char id[];
} agent_t;

static struct {
    agent_t **tab;
    size_t cap, n;
    agent_t **work;
    size_t nwork, capwork;
    int loaded;
    uint32_t gen;
    int64_t rest_mark;
    int64_t timeout_ms;
    char reason_off[64];
    int logged; /* transition lines this tick */
    uint32_t tick;
    int64_t stats_at, tick_ms_sum, tick_ms_max;
    uint64_t stats_ticks, stats_beats;
    int runs_known; /* 1: runs_tick marks are current for this tick; -1: the query failed */
} H;

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h | 1; /* never 0: 0 means "no value read" */
}

static void grow(void)
{
    size_t cap = H.cap ? H.cap * 2 : 1024;
    agent_t **tab = cx_calloc(cap, sizeof(*tab));
    for (size_t i = 0; i < H.cap; i++) {
        agent_t *a = H.tab[i], *next;
        for (; a != NULL; a = next) {
            next = a->next;
            a->next = tab[a->h & (cap - 1)];
            tab[a->h & (cap - 1)] = a;
        }
    }
    free(H.tab);
    H.tab = tab;
    H.cap = cap;
}

/* find -- the agent named id (len bytes), created (status ST_NONE) when add is set. */
static agent_t *find(const char *id, size_t len, int add)
{
    uint64_t h = fnv(id, len);
    agent_t *a;

    if (H.cap > 0)
        for (a = H.tab[h & (H.cap - 1)]; a != NULL; a = a->next)
            if (a->h == h && strncmp(a->id, id, len) == 0 && a->id[len] == '\0')
                return a;
    if (!add)
        return NULL;
    if (H.n >= H.cap)
        grow();
    a = cx_calloc(1, sizeof(*a) + len + 1);
    memcpy(a->id, id, len);
    a->h = h;
    a->next = H.tab[h & (H.cap - 1)];
    H.tab[h & (H.cap - 1)] = a;
    H.n++;
    return a;
}

static void queue(agent_t *a)
{
    if (a->queued)
        return;
    if (H.nwork == H.capwork) {
        H.capwork = H.capwork ? H.capwork * 2 : 1024;
        H.work = cx_realloc(H.work, H.capwork * sizeof(*H.work));
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
    if (a->status != ST_ONLINE) {
        a->status = ST_ONLINE;
        a->changed_ms = cx_wall_ms();
    }
    queue(a);
}

static int status_of(const char *s)
{
    if (strcmp(s, "online") == 0)
        return ST_ONLINE;
    if (strcmp(s, "offline") == 0)
        return ST_OFFLINE;
    return ST_UNKNOWN;
}

/* ---- start: the registry as MySQL has it ---- */

static void on_load(void *arg, const char *id, const char *status, int64_t last_hb_ms)
{
    agent_t *a = find(id, strlen(id), 1);
    (void)arg;
    a->status = a->db_status = (uint8_t)status_of(status);
    a->last_seen = last_hb_ms;
    a->bad = !cx_agent_id_valid(id, strlen(id));
}

static int load(void)
{
    int64_t now = cx_wall_ms();
    size_t online = 0;
    int rc;

    if ((rc = cx_db_agents_load(on_load, NULL)) != CX_OK)
        return rc;
    for (size_t i = 0; i < H.cap; i++)
        for (agent_t *a = H.tab[i]; a != NULL; a = a->next) {
            online += a->db_status == ST_ONLINE;
            /* a beat written to MySQL directly (Redis down) while no hbmon recorded it */
            if (a->status != ST_ONLINE && a->last_seen > 0 && now - a->last_seen < H.timeout_ms && !a->bad) {
                a->status = ST_ONLINE;
                a->changed_ms = now;
                queue(a);
            }
        }
    H.loaded = 1;
    H.rest_mark = now - H.timeout_ms;
    cx_log_info("hbmon: %zu agents known, %zu recorded online; timeout %lld ms, every %lld ms", H.n, online,
                (long long)H.timeout_ms, (long long)cx_cfg->agents.monitor_interval_ms);
    return CX_OK;
}

/* ---- the Redis scan ---- */

typedef struct need {
    agent_t *a;
    int64_t exp, prev_observed;
    const redisReply *key;
} need_t;

/* reject_key -- count a bad value once per write of the key. */
static void reject_key(agent_t *a, const char *field, const char *msg)
{
    cx_hb_error_t err = {0};
    snprintf(err.field, sizeof(err.field), "%s", field);
    snprintf(err.msg, sizeof(err.msg), "%s", msg);
    cx_heartbeat_rejected("redis", a->bad ? a->id + 1 : a->id, &err);
}

/* value -- a fetched value of a key that was written since hbmon's previous read (or is new to it). */
static void value(const need_t *nd, const redisReply *v, int64_t tr)
{
    agent_t *a = nd->a;
    int first = a->expire_at == 0;
    int64_t exp = nd->exp, est, recv;
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    uint64_t h;
    int fresh;

    if (v == NULL || v->type != REDIS_REPLY_STRING) {
        /* not a string (MGET gives nil), or gone since the PTTL: only a key with time left is bad */
        if (exp > 0 && exp - tr < 1000)
            return;
        h = 2;
    } else {
        h = fnv(v->str, v->len);
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
    est = exp > 0 ? exp - TTL_MS : tr;
    recv = est > tr ? tr : est;
    if (!first && recv < nd->prev_observed)
        recv = nd->prev_observed; /* written after the previous read, whatever its TTL */
    if (first && a->last_seen > 0 && recv <= a->last_seen + SAME_BEAT_MS)
        return; /* already recorded (a respawned hbmon reading the keys again) */
    if (recv <= a->last_seen)
        return; /* older than a beat taken from MySQL */
    if (cx_heartbeat_parse(v->str, v->len, a->id, &hb, &err) != CX_OK) {
        cx_heartbeat_rejected("redis", a->id, &err);
        return;
    }
    cx_shm_count(CX_C_HEARTBEATS_REDIS, 1);
    accept_beat(a, &hb, recv);
}

/* batch -- one SCAN batch of keys: PTTL of each (one pipelined round trip), then MGET of those written
 * since the last read. 0, or -1 when Redis failed. */
static int batch(const redisReply *keys)
{
    size_t n = keys->elements, nn = 0, i;
    int *argcs = cx_malloc(n * sizeof(*argcs));
    const char ***argvs = cx_malloc(n * sizeof(*argvs));
    const size_t **lens = cx_malloc(n * sizeof(*lens));
    const char **argv = cx_malloc(2 * n * sizeof(*argv));
    size_t *len = cx_malloc(2 * n * sizeof(*len));
    redisReply **rep = cx_calloc(n, sizeof(*rep));
    need_t *need = cx_malloc(n * sizeof(*need));
    int rc = -1;
    int64_t tr;

    for (i = 0; i < n; i++) {
        const redisReply *k = keys->element[i];
        argv[2 * i] = "PTTL";
        len[2 * i] = 4;
        argv[2 * i + 1] = k->type == REDIS_REPLY_STRING ? k->str : "";
        len[2 * i + 1] = k->type == REDIS_REPLY_STRING ? k->len : 0;
        argcs[i] = 2;
        argvs[i] = &argv[2 * i];
        lens[i] = &len[2 * i];
    }
    if (cx_redis_pipeline((int)n, argcs, argvs, lens, rep) != CX_OK)
        goto out;
    tr = cx_wall_ms();
    for (i = 0; i < n; i++) {
        const redisReply *k = keys->element[i];
        char id[CX_AGENT_ID_MAX + 2];
        agent_t *a;
        int64_t exp, prev;

        if (k->type != REDIS_REPLY_STRING || rep[i] == NULL || rep[i]->type != REDIS_REPLY_INTEGER || rep[i]->integer == -2)
            continue;
        exp = rep[i]->integer >= 0 ? tr + rep[i]->integer : -1;
        if (cx_heartbeat_key_id(k->str, k->len, id) >= 0) {
            a = find(id, strlen(id), 1);
        } else {
            /* tracked under "\x01<key>" (no valid id starts so) to count each write once */
            size_t kl = k->len > CX_AGENT_ID_MAX ? CX_AGENT_ID_MAX : k->len;
            id[0] = '\x01';
            memcpy(id + 1, k->str, kl);
            id[kl + 1] = '\0';
            a = find(id, strnlen(id, kl + 1), 1);
            a->bad = 1;
        }
        prev = a->observed;
        a->observed = tr;
        a->gen = H.gen;
        if (a->expire_at == 0 || exp == -1 || a->expire_at == -1 || exp > a->expire_at + GET_TOL_MS)
            need[nn++] = (need_t){a, exp, prev, k};
    }
    if (nn > 0) {
        const char **mv = cx_malloc((nn + 1) * sizeof(*mv));
        size_t *ml = cx_malloc((nn + 1) * sizeof(*ml));
        redisReply *r;

        mv[0] = "MGET";
        ml[0] = 4;
        for (i = 0; i < nn; i++) {
            mv[i + 1] = need[i].key->str;
            ml[i + 1] = need[i].key->len;
        }
        r = cx_redis_cmdargv((int)nn + 1, mv, ml);
        free(mv);
        free(ml);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != nn) {
            if (r != NULL)
                freeReplyObject(r);
            goto out;
        }
        tr = cx_wall_ms();
        for (i = 0; i < nn; i++)
            value(&need[i], r->element[i], tr);
        freeReplyObject(r);
    }
    rc = 0;
out:
    for (i = 0; i < n; i++)
        if (rep[i] != NULL)
            freeReplyObject(rep[i]);
    free(argcs);
    free(argvs);
    free(lens);
    free(argv);
    free(len);
    free(rep);
    free(need);
    return rc;
}

/* scan -- one full SCAN of the heartbeat keys. 1 when it completed, 0 when Redis failed. */
static int scan(void)
{
    char cursor[32] = "0";
    redisReply *r;

    H.gen++;
    do {
        r = cx_redis_cmd("SCAN %s MATCH " KEY_MATCH " COUNT %d", cursor, SCAN_COUNT);
        if (r == NULL)
            return 0;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof(cursor) || r->element[1]->type != REDIS_REPLY_ARRAY) {
            cx_log_warnx("hbmon: unexpected SCAN reply (type %d)", r->type);
            freeReplyObject(r);
            return 0;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
        if (r->element[1]->elements > 0 && batch(r->element[1]) != 0) {
            freeReplyObject(r);
            return 0;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && !cx_child_stop);
    return strcmp(cursor, "0") == 0;
}

/* ---- REST beats that reached MySQL directly ---- */

static void on_rest(void *arg, const char *id, const char *text, size_t len, int64_t recv)
{
    int64_t *max = arg;
    cx_heartbeat_t hb;
    cx_hb_error_t err;
    agent_t *a;

    if (recv > *max)
        *max = recv;
    if (!cx_agent_id_valid(id, strlen(id)))
        return;
    a = find(id, strlen(id), 1);
    if (recv <= a->rest_seen)
        return;
    a->rest_seen = recv;
    if (recv <= a->last_seen)
        return;
    if (cx_heartbeat_parse(text, len, id, &hb, &err) != CX_OK) {
        cx_heartbeat_rejected("rest", id, &err);
        return;
    }
    accept_beat(a, &hb, recv);
}

static void rest_poll(void)
{
    int64_t max = 0, floor = cx_wall_ms() - H.timeout_ms - REST_MARGIN_MS;

    if (cx_db_agents_rest_beats(H.rest_mark, on_rest, &max) != CX_OK)
        return;
    if (max - REST_MARGIN_MS > H.rest_mark)
        H.rest_mark = max - REST_MARGIN_MS;
    if (H.rest_mark < floor)
        H.rest_mark = floor;
}

/* ---- offline detection ---- */

/* judge -- online agents whose last beat is older than the timeout as of when their key was last looked
 * at go offline. t0 is the scan's start: a key the whole scan did not return did not exist then. */
static void judge(int64_t t0, int scan_ok)
{
    int64_t now = cx_wall_ms();

    for (size_t i = 0; i < H.cap; i++)
        for (agent_t *a = H.tab[i]; a != NULL; a = a->next) {
            int64_t at;
            if (a->status != ST_ONLINE)
                continue;
            at = a->gen == H.gen ? a->observed : scan_ok ? t0 : now;
            if (a->last_seen + H.timeout_ms < at) {
                a->status = ST_OFFLINE;
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
    c->beat_ms = a->last_seen;
    c->status = st_names[a->status];
    if (a->status != a->db_status && !(a->db_status == ST_NONE && a->status == ST_UNKNOWN)) {
        c->from = st_names[a->db_status];
        c->changed_ms = a->changed_ms;
        c->reason = a->status == ST_ONLINE ? "heartbeat received" : H.reason_off;
    }
}

static void on_runs(void *arg, const char *id)
{
    agent_t *a = find(id, strlen(id), 0);
    (void)arg;
    if (a != NULL)
        a->runs_tick = H.tick;
}

/* has_runs -- may the agent have active runs? Asked once per tick, for all agents at once: at 100,000
 * agents a query per beat would cost more than the whole scan, and cx_runs_heartbeat only reconciles
 * the agent's active runs, so an agent without any has nothing to reconcile. When the query fails,
 * every agent may. */
static int has_runs(agent_t *a)
{
    if (H.runs_known == 0)
        H.runs_known = cx_db_agents_with_runs(on_runs, NULL) == CX_OK ? 1 : -1;
    return H.runs_known < 0 || a->runs_tick == H.tick;
}

/* done -- a change is recorded: count, log, tell the run bookkeeping. */
static void done(agent_t *a, const cx_agent_change_t *c)
{
    if (c->from != NULL) {
        int on = a->status == ST_ONLINE;
        cx_shm_count(on ? CX_C_AGENT_TRANSITIONS_ONLINE : CX_C_AGENT_TRANSITIONS_OFFLINE, 1);
        if (H.logged++ < LOG_TRANSITIONS)
            cx_log_info("hbmon: agent %s %s -> %s (%s)", a->id, c->from, c->status, c->reason);
    }
    a->db_status = a->status;
    a->queued = 0;
    if (c->from != NULL && a->status == ST_OFFLINE)
        cx_runs_agent_offline(a->id);
    if (a->beat != NULL) {
        if (has_runs(a))
            cx_runs_heartbeat(a->id, a->beat->obj);
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

static void flush(void)
{
    cx_agent_change_t *ch;
    size_t i = 0, keep = 0;
    int unavail = 0;

    if (H.nwork == 0)
        return;
    H.logged = 0;
    ch = cx_malloc(CHUNK * sizeof(*ch));
    while (i < H.nwork && !unavail) {
        size_t k = 0, j, start = i;
        agent_t *chunk[CHUNK];
        int rc;

        for (; i < H.nwork && k < CHUNK; i++) {
            agent_t *a = H.work[i];
            fill(&ch[k], a);
            if (ch[k].beat == NULL && ch[k].from == NULL) {
                a->queued = 0;
                continue;
            }
            chunk[k++] = a;
        }
        rc = cx_db_agents_flush(ch, k);
        if (rc == CX_OK) {
            for (j = 0; j < k; j++)
                done(chunk[j], &ch[j]);
        } else if (rc == CX_UNAVAIL) {
            unavail = 1;
            i = start; /* this chunk and the rest wait for the next tick */
        } else {
            for (j = 0; j < k; j++) {
                if (cx_db_agents_flush(&ch[j], 1) == CX_OK)
                    done(chunk[j], &ch[j]);
                else
                    failed(chunk[j]);
            }
        }
    }
    if (H.logged > LOG_TRANSITIONS)
        cx_log_info("hbmon: %d more transitions this tick", H.logged - LOG_TRANSITIONS);
    for (; i < H.nwork; i++)
        if (H.work[i]->queued)
            H.work[keep++] = H.work[i];
    H.nwork = keep;
    free(ch);
}

static void gauges(void)
{
    int64_t n[4] = {0};
    for (size_t i = 0; i < H.cap; i++)
        for (agent_t *a = H.tab[i]; a != NULL; a = a->next)
            n[a->db_status]++;
    cx_shm_gauge_set(CX_G_AGENTS_ONLINE, n[ST_ONLINE]);
    cx_shm_gauge_set(CX_G_AGENTS_OFFLINE, n[ST_OFFLINE]);
    cx_shm_gauge_set(CX_G_AGENTS_UNKNOWN, n[ST_UNKNOWN]);
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
    cx_log_info("hbmon: %zu agents; %llu ticks in %lld s, %lld ms on average, %lld ms at most; %llu beats", H.n,
                (unsigned long long)H.stats_ticks, (long long)(t0 - H.stats_at) / 1000,
                (long long)(H.tick_ms_sum / (int64_t)H.stats_ticks), (long long)H.tick_ms_max, (unsigned long long)H.stats_beats);
    H.stats_at = t0;
    H.stats_ticks = 0;
    H.tick_ms_sum = H.tick_ms_max = 0;
    H.stats_beats = 0;
}

static int tick(void *arg)
{
    int64_t t0, m0 = cx_now_ms();
    int ok;

    (void)arg;
    H.tick++;
    H.runs_known = 0;
    if (!H.loaded && load() != CX_OK)
        return 0; /* MySQL down: nothing can be recorded yet; try again next tick */
    t0 = cx_wall_ms();
    ok = scan();
    rest_poll();
    judge(t0, ok);
    flush();
    gauges();
    stats(m0);
    return 0;
}

static void cleanup(void)
{
    for (size_t i = 0; i < H.cap; i++) {
        agent_t *a = H.tab[i], *next;
        for (; a != NULL; a = next) {
            next = a->next;
            drop_beat(a);
            free(a);
        }
    }
    free(H.tab);
    free(H.work);
    memset(&H, 0, sizeof(H));
}

int cx_hbmon_run(void)
{
    int rc;

    memset(&H, 0, sizeof(H));
    H.timeout_ms = cx_cfg->agents.heartbeat_timeout_ms;
    snprintf(H.reason_off, sizeof(H.reason_off), "no heartbeat for %.1f s", (double)H.timeout_ms / 1000.0);
    cx_db_open(cx_cfg);
    cx_redis_open(cx_cfg);
    rc = cx_child_loop(cx_cfg->agents.monitor_interval_ms, tick, NULL);
    cleanup();
    cx_db_close();
    cx_redis_close();
    return rc;
}
