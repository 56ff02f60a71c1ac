/*
 * sim.c -- conduix-agent-sim: N simulated pipeline agents in one process (docs/agent-simulator.md).
 *
 * Two Redis connections serve all agents: one for commands out (heartbeat SETs, PUBLISHes of acks and
 * run events, metrics), pipelined in batches of BATCH, and one that SUBSCRIBEs every agent's command
 * channel. Heartbeats follow the original Go agents: SET agent:{id}:heartbeat <json> EX 30 every
 * interval, with an RFC 3339 nanosecond timestamp. All agents beat once at start, then agent i beats at
 * start + k * interval + i * interval / N, so the load is spread evenly over the interval.
 *
 * The main loop is single-threaded: poll() on the subscriber socket with a timeout up to the next due
 * beat, delayed acknowledgement or metrics round. Lost connections are retried every second; in
 * --rest-fallback mode heartbeats go over REST while Redis is away.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conduix/cx.h"
#include "conduix/hash.h"
#include "sim.h"

#define BATCH 1000     /* pipelined commands per round trip */
#define SUB_BATCH 1000 /* channels per SUBSCRIBE */
#define RETRY_MS 1000  /* reconnect interval */
#define STATS_MS 10000 /* progress line interval */
#define IO_TIMEOUT_MS 5000

static volatile sig_atomic_t stop_flag, stop_beating;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        stop_beating = 1;
    else
        stop_flag = 1;
}

static void say(const sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const sim_t *s, const char *fmt, ...)
{
    va_list ap;
    if (s != NULL && s->o.quiet)
        return;
    fprintf(stderr, "conduix-agent-sim: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void sim_time_rfc3339(char out[48])
{
    struct timespec ts;
    struct tm tm;
    size_t n;
    char frac[16];
    int i;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, 48, "%Y-%m-%dT%H:%M:%S", &tm);
    /* like Go's RFC3339Nano: nine digits with trailing zeros removed, none at all for a whole second */
    snprintf(frac, sizeof(frac), ".%09ld", ts.tv_nsec);
    for (i = 9; i > 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(out + n, 48 - n, "%sZ", i > 0 ? frac : "");
}

/* sim_json_str -- append s as a JSON string at out + *off. */
void sim_json_str(char *out, size_t cap, size_t *off, const char *s)
{
    size_t o = *off;
    if (o + 2 >= cap)
        return;
    out[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    *off = o;
}

/* ---- agents ---- */

sim_agent_t *sim_find(sim_t *s, const char *id, size_t len)
{
    size_t i = cx_hash_fnv1a(id, len) & (s->index_cap - 1);
    for (; s->index[i] != 0; i = (i + 1) & (s->index_cap - 1)) {
        sim_agent_t *a = &s->agents[s->index[i] - 1];
        if (strncmp(a->id, id, len) == 0 && a->id[len] == '\0')
            return a;
    }
    return NULL;
}

static void make_agents(sim_t *s)
{
    char id[256];

    s->n = (size_t)s->o.nagents;
    s->agents = cx_calloc(s->n, sizeof(*s->agents));
    s->index_cap = 16;
    while (s->index_cap < s->n * 2)
        s->index_cap <<= 1;
    s->index = cx_calloc(s->index_cap, sizeof(*s->index));
    for (size_t k = 0; k < s->n; k++) {
        sim_agent_t *a = &s->agents[k];
        size_t i;
        snprintf(id, sizeof(id), "%s%04d", s->o.prefix, s->o.start_index + (int)k);
        a->id = cx_strdup(id);
        a->seed = (unsigned)(k * 2654435761u + 7);
        i = cx_hash_fnv1a(a->id, strlen(a->id)) & (s->index_cap - 1);
        while (s->index[i] != 0)
            i = (i + 1) & (s->index_cap - 1);
        s->index[i] = k + 1;
    }
}

/* ---- Redis ---- */

static redisContext *rconnect(sim_t *s, const char *what)
{
    struct timeval tv = {IO_TIMEOUT_MS / 1000, (suseconds_t)(IO_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(s->o.redis_host, s->o.redis_port, tv);
    redisReply *r;

    if (c == NULL || c->err) {
        say(s, "redis %s:%d (%s): %s", s->o.redis_host, s->o.redis_port, what, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    if (s->o.redis_password != NULL) {
        r = redisCommand(c, "AUTH %s", s->o.redis_password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            say(s, "redis AUTH failed: %s", r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (s->o.redis_db != 0) {
        r = redisCommand(c, "SELECT %d", s->o.redis_db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            say(s, "redis SELECT failed: %s", r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

static void cmd_lost(sim_t *s)
{
    if (s->cmd != NULL) {
        say(s, "redis connection lost (%s); retrying every second", s->cmd->errstr[0] ? s->cmd->errstr : "no reply");
        redisFree(s->cmd);
        s->cmd = NULL;
    }
    s->pending_out = 0;
    s->cmd_retry_ms = cx_now_ms() + RETRY_MS;
}

/* sim_cmd_flush -- read the replies of the commands appended so far. -1 when the connection failed. */
int sim_cmd_flush(sim_t *s)
{
    int bad = 0;
    while (s->pending_out > 0) {
        void *r = NULL;
        if (s->cmd == NULL || redisGetReply(s->cmd, &r) != REDIS_OK || r == NULL) {
            s->beat_errors += (uint64_t)s->pending_out;
            cmd_lost(s);
            return -1;
        }
        if (((redisReply *)r)->type == REDIS_REPLY_ERROR && bad++ == 0)
            say(s, "redis refused a command: %s", ((redisReply *)r)->str);
        freeReplyObject(r);
        s->pending_out--;
    }
    return 0;
}

int sim_cmd_append(sim_t *s, int argc, const char **argv, const size_t *lens)
{
    if (s->cmd == NULL)
        return -1;
    if (redisAppendCommandArgv(s->cmd, argc, argv, lens) != REDIS_OK) {
        cmd_lost(s);
        return -1;
    }
    if (++s->pending_out >= BATCH)
        return sim_cmd_flush(s);
    return 0;
}

static void on_message(sim_t *s, redisReply *r)
{
    static const char pre[] = "agent:commands:";
    const redisReply *ch, *msg;
    sim_agent_t *a;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message") != 0)
        return;
    ch = r->element[1];
    msg = r->element[2];
    if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING || ch->len <= sizeof(pre) - 1 ||
        memcmp(ch->str, pre, sizeof(pre) - 1) != 0)
        return;
    if ((a = sim_find(s, ch->str + sizeof(pre) - 1, ch->len - (sizeof(pre) - 1))) == NULL)
        return;
    sim_on_command(s, a, msg->str, msg->len);
}

static void sub_lost(sim_t *s)
{
    if (s->sub != NULL) {
        say(s, "subscriber connection lost (%s); retrying every second", s->sub->errstr[0] ? s->sub->errstr : "closed");
        redisFree(s->sub);
        s->sub = NULL;
    }
    s->sub_retry_ms = cx_now_ms() + RETRY_MS;
}

/* subscribe -- a new subscriber connection with every agent's command channel. */
static int subscribe(sim_t *s)
{
    size_t i, k, expect = 0;
    char **names;
    const char **argv;

    if ((s->sub = rconnect(s, "subscriber")) == NULL) {
        s->sub_retry_ms = cx_now_ms() + RETRY_MS;
        return -1;
    }
    names = cx_calloc(SUB_BATCH, sizeof(*names));
    argv = cx_calloc(SUB_BATCH + 1, sizeof(*argv));
    argv[0] = "SUBSCRIBE";
    for (i = 0; i < s->n; i += k) {
        for (k = 0; k < SUB_BATCH && i + k < s->n; k++) {
            size_t len = strlen(s->agents[i + k].id) + 16;
            names[k] = cx_malloc(len);
            snprintf(names[k], len, "agent:commands:%s", s->agents[i + k].id);
            argv[k + 1] = names[k];
        }
        redisAppendCommandArgv(s->sub, (int)k + 1, argv, NULL);
        for (size_t j = 0; j < k; j++)
            free(names[j]);
        expect += k;
    }
    free(names);
    free(argv);
    while (expect > 0) {
        void *r = NULL;
        if (redisGetReply(s->sub, &r) != REDIS_OK || r == NULL) {
            sub_lost(s);
            return -1;
        }
        redisReply *rr = r;
        if (rr->type == REDIS_REPLY_ARRAY && rr->elements == 3 && rr->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(rr->element[0]->str, "subscribe") == 0)
            expect--;
        else
            on_message(s, rr);
        freeReplyObject(r);
    }
    return 0;
}

/* drain_sub -- the complete messages hiredis has buffered (never reads the socket). */
static void drain_sub(sim_t *s)
{
    void *r;
    while (s->sub != NULL) {
        r = NULL;
        if (redisGetReplyFromReader(s->sub, &r) != REDIS_OK) {
            sub_lost(s);
            return;
        }
        if (r == NULL)
            return;
        on_message(s, r);
        freeReplyObject(r);
    }
}

/* read_sub -- read what the subscriber socket has (poll said readable), then the messages in it. */
static void read_sub(sim_t *s)
{
    if (redisBufferRead(s->sub) != REDIS_OK) {
        sub_lost(s);
        return;
    }
    drain_sub(s);
}

/* ---- heartbeats ---- */

/* beat_json -- the heartbeat of a, as the Go agents write it (newer fields unless --legacy). */
static size_t beat_json(sim_t *s, sim_agent_t *a, size_t k, char *out, size_t cap)
{
    char ts[48];
    size_t o = 0;
    sim_pipe_t *p;
    int first;

    sim_time_rfc3339(ts);
    o += (size_t)snprintf(out + o, cap - o, "{\"agent_id\":");
    sim_json_str(out, cap, &o, a->id);
    if (s->o.legacy) {
        o += (size_t)snprintf(out + o, cap - o, ",\"timestamp\":\"%s\",\"cpu_usage\":0,\"memory_usage\":0,\"disk_usage\":0", ts);
    } else {
        o +=
            (size_t)snprintf(out + o, cap - o, ",\"timestamp\":\"%s\",\"cpu_usage\":%.1f,\"memory_usage\":%.1f,\"disk_usage\":%.1f",
                             ts, (double)(rand_r(&a->seed) % 1000) / 10.0, (double)(rand_r(&a->seed) % 1000) / 10.0,
                             (double)(rand_r(&a->seed) % 1000) / 10.0);
    }
    o += (size_t)snprintf(out + o, cap - o, ",\"pipelines\":[");
    for (first = 1, p = a->pipes; p != NULL && o + 300 < cap; p = p->next, first = 0) {
        if (!first)
            out[o++] = ',';
        sim_json_str(out, cap, &o, p->pipeline_id);
    }
    o += (size_t)snprintf(out + o, cap - o, "]");
    if (!s->o.legacy) {
        o += (size_t)snprintf(out + o, cap - o, ",\"pipeline_stats\":[");
        for (first = 1, p = a->pipes; p != NULL && o + 400 < cap; p = p->next, first = 0) {
            o += (size_t)snprintf(out + o, cap - o, "%s{\"pipeline_id\":", first ? "" : ",");
            sim_json_str(out, cap, &o, p->pipeline_id);
            o += (size_t)snprintf(out + o, cap - o, ",\"status\":\"%s\",\"processed_count\":%lld,\"error_count\":%lld}",
                                  p->status == PIPE_PAUSED ? "paused" : "running", (long long)p->processed, (long long)p->errors);
        }
        o += (size_t)snprintf(out + o, cap - o, "],\"hostname\":");
        if (s->o.hostname != NULL) {
            sim_json_str(out, cap, &o, s->o.hostname);
        } else {
            char h[300];
            snprintf(h, sizeof(h), "host-%s", a->id);
            sim_json_str(out, cap, &o, h);
        }
        o += (size_t)snprintf(out + o, cap - o, ",\"ip_address\":\"10.%zu.%zu.%zu\",\"version\":", ((k + 1) >> 16) & 255,
                              ((k + 1) >> 8) & 255, (k + 1) & 255);
        sim_json_str(out, cap, &o, s->o.version);
        o += (size_t)snprintf(out + o, cap - o, ",\"labels\":%s", s->o.labels);
    }
    o += (size_t)snprintf(out + o, cap - o, "}");
    return o < cap ? o : cap - 1;
}

static void beat(sim_t *s, size_t k)
{
    static char body[65536];
    sim_agent_t *a = &s->agents[k];
    char key[300], ttl[16];
    size_t len;

    if (a->stopped)
        return;
    sim_pipes_update(s, a, cx_wall_ms());
    len = beat_json(s, a, k, body, sizeof(body));
    a->last_beat_ms = cx_wall_ms();
    if (s->o.rest_url != NULL && (!s->o.rest_fallback || s->cmd == NULL)) {
        if (sim_rest_beat(s, a, body, len) == 0)
            s->beats_rest++;
        else
            s->beat_errors++;
        return;
    }
    if (s->cmd == NULL) {
        s->beat_errors++;
        return;
    }
    snprintf(key, sizeof(key), "agent:%s:heartbeat", a->id);
    snprintf(ttl, sizeof(ttl), "%d", s->o.ttl_s);
    const char *argv[] = {"SET", key, body, "EX", ttl};
    const size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
    if (sim_cmd_append(s, 5, argv, lens) == 0)
        s->beats++;
}

static void write_beats(sim_t *s)
{
    FILE *f;
    if (s->o.beats_path == NULL)
        return;
    if ((f = fopen(s->o.beats_path, "w")) == NULL) {
        say(NULL, "%s: %s", s->o.beats_path, strerror(errno));
        return;
    }
    for (size_t i = 0; i < s->n; i++)
        fprintf(f, "{\"agent_id\":\"%s\",\"last_beat_ms\":%lld}\n", s->agents[i].id, (long long)s->agents[i].last_beat_ms);
    if (fclose(f) != 0)
        say(NULL, "%s: %s", s->o.beats_path, strerror(errno));
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: conduix-agent-sim [options]\n"
               "  -n, --agents N              simulated agents (default 1)\n"
               "      --prefix P              agent ids P0001, P0002 … (default sim-agent-)\n"
               "      --start-index I         number of the first agent (default 1)\n"
               "  -H, --redis-host HOST       (default 127.0.0.1)\n"
               "  -p, --redis-port PORT       (default 6379)\n"
               "      --redis-password PW, --redis-db N\n"
               "  -i, --interval DUR          heartbeat interval (default 10s; a bare number is seconds)\n"
               "      --ttl SECONDS           EX of the heartbeat key (default 30)\n"
               "      --legacy                an original agent: no acks, no events, no metrics, no newer fields\n"
               "      --rest URL              heartbeats over REST (POST URL/api/v1/agents/{id}/heartbeat)\n"
               "      --rest-fallback         with --rest: Redis first, REST only while Redis is down\n"
               "      --jwt-secret S          mint each agent's token (role agent, sub = its id)\n"
               "      --issuer I              issuer of minted tokens (default conduix-cp)\n"
               "      --token T               one token for every agent\n"
               "      --token-cmd CMD         run `CMD ID` to get each agent's token\n"
               "      --stop-beating-after D  stop heartbeats (the agents hang) after D (seconds); SIGUSR1: now\n"
               "      --crash-after D         exit at once without cleanup after D (seconds)\n"
               "      --duration D            run D (seconds), then exit 0\n"
               "      --slow-ack D            delay every acknowledgement by D (a bare number is ms)\n"
               "      --fail-start            acknowledge start_pipeline with success:false\n"
               "      --run-for D             a started pipeline completes by itself after D (seconds)\n"
               "      --metrics-interval D    pipeline metrics and checkpoints (default 5s)\n"
               "      --rate N                events per second per running pipeline (default 100)\n"
               "      --log FILE              one JSON line per received command (and a ready line)\n"
               "      --beats-file FILE       each agent's last heartbeat time, written when beats stop\n"
               "      --hostname H, --version V, --labels JSON   reported in heartbeats\n"
               "      --no-subscribe          do not listen for commands\n"
               "  -q, --quiet                 no progress lines\n");
}

/* dur -- a duration option: a bare number in unit_ms, else "250ms", "10s", "1m" …; -2 when malformed. */
static int64_t dur(const char *v, int64_t unit_ms)
{
    char *end;
    double d = strtod(v, &end);
    if (end != v && *end == '\0' && d >= 0)
        return (int64_t)(d * (double)unit_ms);
    int64_t ms = cx_duration_parse(v);
    return ms < 0 ? -2 : ms;
}

/* num -- an integer option: decimal digits only (atoi would take "12x" as 12 and "x" as 0); -1 when
 * malformed or beyond INT_MAX. */
static int num(const char *v)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || errno != 0 || n < 0 || n > INT_MAX)
        return -1;
    return (int)n;
}

static int parse_opts(sim_opts_t *o, int argc, char **argv)
{
    enum {
        O_PREFIX = 256,
        O_START,
        O_PW,
        O_DB,
        O_TTL,
        O_LEGACY,
        O_REST,
        O_REST_FB,
        O_SECRET,
        O_ISSUER,
        O_TOKEN,
        O_TOKEN_CMD,
        O_STOP,
        O_CRASH,
        O_DURATION,
        O_SLOW,
        O_FAIL,
        O_RUN_FOR,
        O_METRICS,
        O_RATE,
        O_LOG,
        O_BEATS,
        O_HOST,
        O_VERSION,
        O_LABELS,
        O_NOSUB
    };
    static const struct option lo[] = {{"agents", 1, 0, 'n'},
                                       {"prefix", 1, 0, O_PREFIX},
                                       {"start-index", 1, 0, O_START},
                                       {"redis-host", 1, 0, 'H'},
                                       {"redis-port", 1, 0, 'p'},
                                       {"redis-password", 1, 0, O_PW},
                                       {"redis-db", 1, 0, O_DB},
                                       {"interval", 1, 0, 'i'},
                                       {"ttl", 1, 0, O_TTL},
                                       {"legacy", 0, 0, O_LEGACY},
                                       {"rest", 1, 0, O_REST},
                                       {"rest-fallback", 0, 0, O_REST_FB},
                                       {"jwt-secret", 1, 0, O_SECRET},
                                       {"issuer", 1, 0, O_ISSUER},
                                       {"token", 1, 0, O_TOKEN},
                                       {"token-cmd", 1, 0, O_TOKEN_CMD},
                                       {"stop-beating-after", 1, 0, O_STOP},
                                       {"crash-after", 1, 0, O_CRASH},
                                       {"duration", 1, 0, O_DURATION},
                                       {"slow-ack", 1, 0, O_SLOW},
                                       {"fail-start", 0, 0, O_FAIL},
                                       {"run-for", 1, 0, O_RUN_FOR},
                                       {"metrics-interval", 1, 0, O_METRICS},
                                       {"rate", 1, 0, O_RATE},
                                       {"log", 1, 0, O_LOG},
                                       {"beats-file", 1, 0, O_BEATS},
                                       {"hostname", 1, 0, O_HOST},
                                       {"version", 1, 0, O_VERSION},
                                       {"labels", 1, 0, O_LABELS},
                                       {"no-subscribe", 0, 0, O_NOSUB},
                                       {"quiet", 0, 0, 'q'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    int64_t *dst = NULL;
    int *idst = NULL;

    while ((c = getopt_long(argc, argv, "n:H:p:i:qh", lo, NULL)) != -1) {
        const char *name = NULL, *iname = NULL;
        int64_t unit = 1000;
        switch (c) {
        case 'n':
            iname = "agents", idst = &o->nagents;
            break;
        case O_PREFIX:
            o->prefix = optarg;
            break;
        case O_START:
            iname = "start-index", idst = &o->start_index;
            break;
        case 'H':
            o->redis_host = optarg;
            break;
        case 'p':
            iname = "redis-port", idst = &o->redis_port;
            break;
        case O_PW:
            o->redis_password = optarg;
            break;
        case O_DB:
            iname = "redis-db", idst = &o->redis_db;
            break;
        case O_TTL:
            iname = "ttl", idst = &o->ttl_s;
            break;
        case O_LEGACY:
            o->legacy = 1;
            break;
        case O_REST:
            o->rest_url = optarg;
            break;
        case O_REST_FB:
            o->rest_fallback = 1;
            break;
        case O_SECRET:
            o->jwt_secret = optarg;
            break;
        case O_ISSUER:
            o->issuer = optarg;
            break;
        case O_TOKEN:
            o->token = optarg;
            break;
        case O_TOKEN_CMD:
            o->token_cmd = optarg;
            break;
        case O_FAIL:
            o->fail_start = 1;
            break;
        case O_RATE:
            iname = "rate", idst = &o->rate;
            break;
        case O_LOG:
            o->log_path = optarg;
            break;
        case O_BEATS:
            o->beats_path = optarg;
            break;
        case O_HOST:
            o->hostname = optarg;
            break;
        case O_VERSION:
            o->version = optarg;
            break;
        case O_LABELS:
            o->labels = optarg;
            break;
        case O_NOSUB:
            o->no_subscribe = 1;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'i':
            name = "interval", dst = &o->interval_ms;
            break;
        case O_STOP:
            name = "stop-beating-after", dst = &o->stop_beating_after_ms;
            break;
        case O_CRASH:
            name = "crash-after", dst = &o->crash_after_ms;
            break;
        case O_DURATION:
            name = "duration", dst = &o->duration_ms;
            break;
        case O_SLOW:
            name = "slow-ack", dst = &o->slow_ack_ms, unit = 1;
            break;
        case O_METRICS:
            name = "metrics-interval", dst = &o->metrics_interval_ms;
            break;
        case O_RUN_FOR:
            name = "run-for", dst = &o->run_for_ms;
            break;
        default:
            usage(stderr);
            return -1;
        }
        if (name != NULL && (*dst = dur(optarg, unit)) < 0) {
            say(NULL, "--%s: not a duration: %s", name, optarg);
            return -1;
        }
        if (iname != NULL && (*idst = num(optarg)) < 0) {
            say(NULL, "--%s: not a number: %s", iname, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        say(NULL, "unexpected argument: %s", argv[optind]);
        return -1;
    }
    if (o->nagents < 1 || o->nagents > 10000000 || o->interval_ms < 10 || o->ttl_s < 1 || o->redis_port <= 0 ||
        o->metrics_interval_ms < 10 || o->rate < 0 || strlen(o->prefix) > 200) {
        say(NULL, "bad --agents, --interval, --ttl, --redis-port, --metrics-interval, --rate or --prefix");
        return -1;
    }
    if (o->rest_fallback && o->rest_url == NULL) {
        say(NULL, "--rest-fallback needs --rest URL");
        return -1;
    }
    return 0;
}

/* ---- main loop ---- */

static void stats(sim_t *s)
{
    say(s, "%zu agents: %llu heartbeats (%llu over REST, %llu failed), %llu commands, %llu acks, %llu events", s->n,
        (unsigned long long)s->beats, (unsigned long long)s->beats_rest, (unsigned long long)s->beat_errors,
        (unsigned long long)s->commands, (unsigned long long)s->acks, (unsigned long long)s->events);
}

static int run(sim_t *s)
{
    int64_t t0 = cx_now_ms(), next_metrics = t0 + s->o.metrics_interval_ms, next_stats = t0 + STATS_MS;
    int64_t iv = s->o.interval_ms;
    size_t cursor = 0;
    int64_t round = 0;
    int beats_written = 0;

    while (!stop_flag) {
        int64_t now = cx_now_ms(), wake, next_beat = -1, ack;
        struct pollfd pfd = {.fd = -1, .events = POLLIN};
        int beating;

        if (s->o.crash_after_ms >= 0 && now - t0 >= s->o.crash_after_ms) {
            if (s->log != NULL) {
                fprintf(s->log, "{\"event\":\"crash\",\"ts\":%lld}\n", (long long)cx_wall_ms());
                fflush(s->log);
            }
            _exit(3); /* no cleanup: connections and keys are left as a crashed agent leaves them */
        }
        if (s->o.duration_ms >= 0 && now - t0 >= s->o.duration_ms)
            break;
        if (s->cmd == NULL && now >= s->cmd_retry_ms && (s->cmd = rconnect(s, "commands")) == NULL)
            s->cmd_retry_ms = now + RETRY_MS;
        if (!s->o.no_subscribe && s->sub == NULL && now >= s->sub_retry_ms && subscribe(s) == 0)
            drain_sub(s);

        beating = !stop_beating && !(s->o.stop_beating_after_ms >= 0 && now - t0 >= s->o.stop_beating_after_ms);
        if (!beating && !beats_written) {
            sim_cmd_flush(s);
            write_beats(s);
            beats_written = 1;
            if (s->log != NULL) {
                fprintf(s->log, "{\"event\":\"stop_beating\",\"ts\":%lld}\n", (long long)cx_wall_ms());
                fflush(s->log);
            }
            say(s, "stopped beating");
        }
        while (beating) {
            int64_t due = round == 0 ? t0 : t0 + round * iv + (int64_t)((double)iv * (double)cursor / (double)s->n);
            if (due > now) {
                next_beat = due;
                break;
            }
            beat(s, cursor);
            if (++cursor == s->n) {
                cursor = 0;
                round++;
            }
        }
        sim_cmd_flush(s);
        if (now >= next_metrics) {
            sim_metrics(s);
            next_metrics = now + s->o.metrics_interval_ms;
        }
        sim_runs_done(s, now);
        sim_acks_due(s, now);
        if (now >= next_stats) {
            stats(s);
            next_stats = now + STATS_MS;
        }

        wake = now + 200;
        if (next_beat >= 0 && next_beat < wake)
            wake = next_beat;
        if (next_metrics < wake)
            wake = next_metrics;
        if ((ack = sim_acks_next(s)) >= 0 && ack < wake)
            wake = ack;
        if (s->sub != NULL)
            pfd.fd = s->sub->fd;
        if (poll(&pfd, 1, (int)(wake > now ? wake - now : 0)) > 0 && s->sub != NULL && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            read_sub(s);
    }
    sim_cmd_flush(s);
    if (!beats_written)
        write_beats(s);
    stats(s);
    return 0;
}

int main(int argc, char **argv)
{
    sim_t s;
    struct sigaction sa;
    int rc;

    memset(&s, 0, sizeof(s));
    s.o = (sim_opts_t){.redis_host = "127.0.0.1",
                       .redis_port = 6379,
                       .nagents = 1,
                       .prefix = "sim-agent-",
                       .start_index = 1,
                       .interval_ms = 10000,
                       .ttl_s = 30,
                       .issuer = "conduix-cp",
                       .stop_beating_after_ms = -1,
                       .crash_after_ms = -1,
                       .duration_ms = -1,
                       .metrics_interval_ms = 5000,
                       .rate = 100,
                       .version = "sim-1.0",
                       .labels = "{\"simulated\":\"true\"}"};
    if (parse_opts(&s.o, argc, argv) != 0)
        return 2;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    (void)signal(SIGPIPE, SIG_IGN);

    if (s.o.log_path != NULL && (s.log = fopen(s.o.log_path, "a")) == NULL) {
        say(NULL, "%s: %s", s.o.log_path, strerror(errno));
        return 2;
    }
    make_agents(&s);
    if (s.o.rest_url != NULL && sim_rest_init(&s) != 0)
        return 2;
    if ((s.cmd = rconnect(&s, "commands")) == NULL)
        s.cmd_retry_ms = cx_now_ms() + RETRY_MS;
    if (!s.o.no_subscribe && subscribe(&s) == 0)
        drain_sub(&s);
    say(&s, "%zu agents %s%04d… on redis %s:%d, every %lld ms%s%s", s.n, s.o.prefix, s.o.start_index, s.o.redis_host,
        s.o.redis_port, (long long)s.o.interval_ms, s.o.legacy ? ", legacy" : "",
        s.o.rest_url == NULL ? ""
        : s.o.rest_fallback  ? ", REST when Redis is down"
                             : ", heartbeats over REST");
    if (s.log != NULL) {
        fprintf(s.log, "{\"event\":\"ready\",\"agents\":%zu,\"subscribed\":%s,\"ts\":%lld}\n", s.n,
                s.sub != NULL ? "true" : "false", (long long)cx_wall_ms());
        fflush(s.log);
    }
    rc = run(&s);
    if (s.log != NULL) {
        fprintf(s.log, "{\"event\":\"exit\",\"ts\":%lld}\n", (long long)cx_wall_ms());
        if (fclose(s.log) != 0)
            say(NULL, "%s: %s", s.o.log_path, strerror(errno));
    }
    if (s.o.rest_url != NULL)
        sim_rest_close(&s);
    if (s.cmd)
        redisFree(s.cmd);
    if (s.sub)
        redisFree(s.sub);
    for (size_t i = 0; i < s.n; i++) {
        sim_pipe_t *p, *next;
        for (p = s.agents[i].pipes; p != NULL; p = next) {
            next = p->next;
            free(p->pipeline_id);
            free(p->run_id);
            free(p);
        }
        free(s.agents[i].id);
        free(s.agents[i].token);
    }
    free(s.agents);
    free(s.index);
    return rc;
}
