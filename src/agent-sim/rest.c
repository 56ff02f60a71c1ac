/*
 * rest.c -- heartbeats over the REST fallback (POST {url}/api/v1/agents/{id}/heartbeat, Bearer token of
 * role agent) with libcurl, one kept-alive handle for all agents, and the agents' tokens: minted with
 * --jwt-secret (sub = the agent id, role agent, issuer --issuer), one --token for all, or the output of
 * `--token-cmd ID`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "conduix/cx.h"
#include "conduix/jwt.h"
#include "sim.h"

#define TOKEN_TTL_S ((int64_t)7 * 24 * 3600)
#define LOG_MAX 20

static CURL *curl;
static struct curl_slist *base_headers;
static int logged;

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    char *buf = arg;
    size_t have = strlen(buf), add = size * n;
    if (have + 1 < 256) {
        size_t k = add < 255 - have ? add : 255 - have;
        memcpy(buf + have, p, k);
        buf[have + k] = '\0';
    }
    return size * n;
}

/* token_of -- the output of `cmd id` (first line), or NULL. */
static char *token_of(const char *cmd, const char *id)
{
    char line[8192], *full;
    size_t n = strlen(cmd) + strlen(id) + 8;
    FILE *f;

    for (const char *p = id; *p; p++)
        if (*p == '\'')
            return NULL;
    full = cx_malloc(n);
    snprintf(full, n, "%s '%s'", cmd, id);
    f = popen(full, "r"); // NOLINT(cert-env33-c): the user's own --token-cmd, run for them; the id is quoted, without quotes
    free(full);
    if (f == NULL)
        return NULL;
    if (fgets(line, sizeof(line), f) == NULL) {
        pclose(f);
        return NULL;
    }
    pclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return line[0] ? cx_strdup(line) : NULL;
}

int sim_rest_init(sim_t *s)
{
    if (s->o.jwt_secret == NULL && s->o.token == NULL && s->o.token_cmd == NULL) {
        fprintf(stderr, "conduix-agent-sim: --rest needs --jwt-secret, --token or --token-cmd\n");
        return -1;
    }
    for (size_t i = 0; i < s->n; i++) {
        sim_agent_t *a = &s->agents[i];
        if (s->o.token != NULL)
            a->token = cx_strdup(s->o.token);
        else if (s->o.jwt_secret != NULL)
            a->token = cx_jwt_mint(s->o.jwt_secret, s->o.issuer, a->id, "agent", NULL, NULL, TOKEN_TTL_S);
        else
            a->token = token_of(s->o.token_cmd, a->id);
        if (a->token == NULL) {
            fprintf(stderr, "conduix-agent-sim: no token for agent %s\n", a->id);
            return -1;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if ((curl = curl_easy_init()) == NULL)
        return -1;
    base_headers = curl_slist_append(NULL, "Content-Type: application/json");
    return 0;
}

int sim_rest_beat(sim_t *s, sim_agent_t *a, const char *body, size_t len)
{
    char url[2048], auth[8300], reply[256] = "";
    struct curl_slist *h;
    char *esc;
    long code = 0;
    CURLcode rc;

    esc = curl_easy_escape(curl, a->id, 0);
    snprintf(url, sizeof(url), "%s/api/v1/agents/%s/heartbeat", s->o.rest_url, esc ? esc : a->id);
    curl_free(esc);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", a->token);
    h = curl_slist_append(NULL, auth);
    h->next = base_headers; /* borrowed: unlinked before freeing */
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    rc = curl_easy_perform(curl);
    h->next = NULL;
    curl_slist_free_all(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code == 200)
        return 0;
    if (logged++ < LOG_MAX && !s->o.quiet)
        fprintf(stderr, "conduix-agent-sim: REST heartbeat of %s: %s %ld %s\n", a->id,
                rc == CURLE_OK ? "HTTP" : curl_easy_strerror(rc), code, reply);
    return -1;
}

void sim_rest_close(sim_t *s)
{
    (void)s;
    if (curl != NULL)
        curl_easy_cleanup(curl);
    curl_slist_free_all(base_headers);
    curl_global_cleanup();
}
