/*
 * sim.h -- conduix-agent-sim: N simulated pipeline agents in one process, speaking the agent protocol
 * (docs/agent-simulator.md). sim.c holds the options, the connections and the main loop with the
 * heartbeats; proto.c the command side (commands, acknowledgements, run events, metrics, checkpoints);
 * rest.c the REST fallback heartbeats and the agents' tokens.
 */
#ifndef CONDUIX_AGENT_SIM_H
#define CONDUIX_AGENT_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <hiredis.h>

#define SIM_SEEN 32 /* command ids remembered per agent */

enum { PIPE_RUNNING = 1, PIPE_PAUSED };

typedef struct sim_pipe {
    struct sim_pipe *next;
    char *pipeline_id;
    char *run_id;
    int status;
    int64_t processed, errors;
    int64_t since_ms; /* wall ms when processed was last brought up to date */
    int64_t ends_at;  /* --run-for: monotonic ms when the run completes by itself; 0 never */
} sim_pipe_t;

typedef struct sim_seen {
    char id[40];
    int success;
} sim_seen_t;

typedef struct sim_agent {
    char *id;
    int64_t last_beat_ms; /* wall ms of the last heartbeat sent, 0 none */
    int stopped;          /* shut down by a command */
    sim_pipe_t *pipes;
    sim_seen_t seen[SIM_SEEN];
    int nseen, seen_pos;
    char *token; /* REST */
    unsigned seed;
} sim_agent_t;

typedef struct sim_opts {
    const char *redis_host;
    int redis_port;
    const char *redis_password;
    int redis_db;
    int nagents;
    const char *prefix;
    int start_index;
    int64_t interval_ms;
    int ttl_s;
    int legacy;
    const char *rest_url;
    int rest_fallback; /* 1: Redis first, REST when Redis fails; 0 with rest_url: REST only */
    const char *jwt_secret;
    const char *issuer;
    const char *token;
    const char *token_cmd;
    int64_t stop_beating_after_ms; /* -1 never */
    int64_t crash_after_ms;
    int64_t duration_ms;
    int64_t slow_ack_ms;
    int fail_start;
    int64_t run_for_ms; /* a started pipeline completes after this; 0 never */
    int64_t metrics_interval_ms;
    int rate; /* events per second per running pipeline */
    const char *log_path;
    const char *beats_path;
    const char *hostname;
    const char *version;
    const char *labels; /* JSON object text */
    int no_subscribe;
    int quiet;
} sim_opts_t;

typedef struct sim {
    sim_opts_t o;
    sim_agent_t *agents;
    size_t n;
    size_t *index; /* open-addressing table of agent indexes + 1, by id */
    size_t index_cap;
    redisContext *cmd; /* SET, PUBLISH */
    redisContext *sub; /* SUBSCRIBE agent:commands:{id} for every agent */
    int64_t cmd_retry_ms, sub_retry_ms;
    FILE *log;
    uint64_t beats, beats_rest, beat_errors, commands, acks, events;
    int pending_out; /* commands appended to cmd, replies not read yet */
} sim_t;

/* sim.c */
void sim_time_rfc3339(char out[48]); /* now, RFC 3339 with nanoseconds like Go's time.RFC3339Nano */
sim_agent_t *sim_find(sim_t *s, const char *id, size_t len);
int sim_cmd_append(sim_t *s, int argc, const char **argv, const size_t *lens);
int sim_cmd_flush(sim_t *s);
void sim_json_str(char *out, size_t cap, size_t *off, const char *s);

/* proto.c */
void sim_on_command(sim_t *s, sim_agent_t *a, const char *payload, size_t len);
void sim_acks_due(sim_t *s, int64_t now_mono);
int64_t sim_acks_next(sim_t *s); /* mono ms of the next delayed ack, or -1 */
void sim_metrics(sim_t *s);
void sim_pipes_update(sim_t *s, sim_agent_t *a, int64_t now_wall);
void sim_runs_done(sim_t *s, int64_t now_mono); /* --run-for: complete the runs that are due */

/* rest.c */
int sim_rest_init(sim_t *s);
int sim_rest_beat(sim_t *s, sim_agent_t *a, const char *body, size_t len);
void sim_rest_close(sim_t *s);

#endif
