/*
 * conn.c -- what the server keeps per client connection, beside libh2o: the check of every HTTP/1
 * request head before h2o parses it, and the sending of answers with a bound on the memory they hold
 * and on how long their write may stall.
 *
 * Request heads. h2o 2.2.5 answers a head it cannot parse -- malformed, HTTP/0.9, more than 100 header
 * fields, larger than H2O_MAX_REQLEN (about 400 KiB) -- with a fixed plain-text "400 Bad Request"
 * written straight to the socket (lib/http1.c, send_bad_request): no envelope, no request id, no log
 * line, and no hook to change it. It also takes the first of two differing Content-Length headers,
 * lets Transfer-Encoding override a Content-Length (both are request-smuggling material) and reads a
 * body up to its own limit, which server.c keeps above server.max_body_size (for HTTP/2, see body.c).
 * So the reader h2o installs on an HTTP/1 socket gets ours in front of it (h2o_socket_t's read
 * callback): it runs h2o's own parser (picohttpparser, in libh2o) on the bytes buffered so far, with
 * h2o's limits, and answers what h2o would refuse, and what it would wrongly take, itself: 400 or 431
 * in the envelope, logged and counted, then the connection is closed; a Content-Length over
 * server.max_body_size is 413 before the body is read. A head h2o can parse goes on to h2o, and ours
 * steps aside until the answer is sent (h2o sets its reader again for each request: ours is put back
 * from the zero timeout after the request ends). XXX: a request already buffered when the previous
 * answer ends (pipelining) reaches h2o before ours is back: its head, if broken, gets h2o's plain 400.
 *
 * Answers. h2o 2.2.5 has no write timeout: a client that sends requests and reads nothing keeps its
 * answers in the worker's memory for as long as it keeps the connection. cx_conn_send gives h2o an
 * answer in pieces of CHUNK bytes, the next when the previous is written, and arms a timer on each: when
 * a piece makes no progress for server.write_timeout the connection is aborted (SO_LINGER 0 and
 * shutdown(2): h2o sees the socket fail and frees the request). A worker holds at most HELD_MAX bytes of
 * unsent answers; an answer that would exceed it is refused with 503 (reply.c) instead of sent.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "conduix/config.h"
#include "conduix/cx.h"
#include "conduix/http.h"
#include "conduix/log.h"
#include "conduix/reply.h"
#include "conduix/shm.h"

#define CHUNK ((size_t)16 * 1024)           /* bytes handed to h2o at a time: one HTTP/2 DATA frame */
#define HELD_MAX ((size_t)64 * 1024 * 1024) /* bytes of unsent answers one worker may hold */

/* picohttpparser (h2o's HTTP/1 parser, in libh2o-evloop; no Debian package has its header). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers, size_t *num_headers, size_t last_len);

typedef struct cx_conn {
    h2o_socket_t *sock;
    h2o_socket_cb h2o_read; /* h2o's HTTP/1 reader, while ours is in front of it */
    int hooked;
    h2o_timeout_entry_t rehook; /* puts ours back after a request */
    char *refusal;              /* our answer to a refused head, while it is written */
    h2o_timeout_entry_t linger; /* after it: how long what the client still sends is read and dropped */
    int64_t start_us;
} cx_conn_t;

static h2o_context_t *ctx;
static h2o_timeout_t stall_timeout;
static int nconns;
static size_t held; /* bytes of answers handed to cx_conn_send and not yet written */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the head check ---- */

enum { HEAD_INCOMPLETE, HEAD_PASS, HEAD_REFUSE };

typedef struct verdict {
    int status;
    const char *code;
    char msg[160];
    h2o_iovec_t method, target; /* for the log, when the head was parsed */
} verdict_t;

static int refuse(verdict_t *v, int status, const char *code, const char *msg)
{
    v->status = status;
    v->code = code;
    snprintf(v->msg, sizeof(v->msg), "%s", msg);
    return HEAD_REFUSE;
}

static int crlf_only(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/* trimmed -- a header value without surrounding blanks. */
static h2o_iovec_t trimmed(const char *s, size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return h2o_iovec_init(s, len);
}

/* check_lengths -- a parsed head's framing: one Content-Length (repeats must agree), not with a
 * Transfer-Encoding, and not over server.max_body_size. */
static int check_lengths(const struct phr_header *h, size_t n, verdict_t *v)
{
    h2o_iovec_t cl = {NULL, 0};
    int te = 0;
    char msg[160];

    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == 14 && strncasecmp(h[i].name, "content-length", 14) == 0) {
            h2o_iovec_t val = trimmed(h[i].value, h[i].value_len);
            if (cl.base != NULL && !h2o_memis(cl.base, cl.len, val.base, val.len))
                return refuse(v, 400, "BAD_REQUEST", "conflicting Content-Length headers");
            cl = val;
        } else if (h[i].name_len == 17 && strncasecmp(h[i].name, "transfer-encoding", 17) == 0) {
            te = 1;
        }
    }
    if (cl.base != NULL && te)
        return refuse(v, 400, "BAD_REQUEST", "both Content-Length and Transfer-Encoding: the body's length is ambiguous");
    if (cl.base != NULL) {
        size_t len = h2o_strtosize(cl.base, cl.len);
        if (len != SIZE_MAX && (int64_t)len > cx_cfg->server.max_body_size) {
            snprintf(msg, sizeof(msg), "request body larger than %lld bytes", (long long)cx_cfg->server.max_body_size);
            return refuse(v, 413, "PAYLOAD_TOO_LARGE", msg);
        }
    }
    return HEAD_PASS;
}

/* check_head -- what h2o would make of the bytes buffered so far, with its own parser and limits. */
static int check_head(const char *buf, size_t size, verdict_t *v)
{
    static struct phr_header many[4096];
    struct phr_header h[H2O_MAX_HEADERS];
    size_t len = size < H2O_MAX_REQLEN ? size : H2O_MAX_REQLEN, n = H2O_MAX_HEADERS, mlen, plen;
    const char *m, *p;
    char msg[160];
    int minor, rc;

    rc = phr_parse_request(buf, len, &m, &mlen, &p, &plen, &minor, h, &n, 0);
    if (rc >= 0) {
        v->method = h2o_iovec_init(m, mlen);
        v->target = h2o_iovec_init(p, plen);
        return check_lengths(h, n, v);
    }
    if (rc == -2) {
        if (len < H2O_MAX_REQLEN)
            return HEAD_INCOMPLETE;
        snprintf(msg, sizeof(msg), "request head larger than %d bytes", (int)H2O_MAX_REQLEN);
        return refuse(v, 431, "HEADERS_TOO_LARGE", msg);
    }
    /* h2o's own exceptions: the HTTP/2 preface (prior knowledge), and a few stray line ends */
    if (size >= 12 && memcmp(buf, "PRI * HTTP/2", 12) == 0)
        return HEAD_PASS;
    if (len <= 4 && crlf_only(buf, len))
        return HEAD_PASS;
    n = CX_ARRAY_SIZE(many);
    rc = phr_parse_request(buf, len, &m, &mlen, &p, &plen, &minor, many, &n, 0);
    if (rc >= 0 || rc == -2) {
        snprintf(msg, sizeof(msg), "more than %d header fields", (int)H2O_MAX_HEADERS);
        return refuse(v, 431, "HEADERS_TOO_LARGE", msg);
    }
    return refuse(v, 400, "BAD_REQUEST", "malformed HTTP request head (HTTP/1.0 or HTTP/1.1 expected)");
}

/* ---- our reader in front of h2o's ---- */

static void on_read(h2o_socket_t *sock, const char *err);

static void hook(cx_conn_t *c)
{
    h2o_socket_t *s = c->sock;

    if (c->h2o_read == NULL)
        c->h2o_read = s->_cb.read;
    if (s->_cb.read != c->h2o_read || c->h2o_read == NULL)
        return; /* not h2o's HTTP/1 reader now: HTTP/2, an upgrade, or not reading */
    s->_cb.read = on_read;
    c->hooked = 1;
}

static void unhook(cx_conn_t *c)
{
    if (c->hooked && c->sock->_cb.read == on_read)
        c->sock->_cb.read = c->h2o_read;
    c->hooked = 0;
}

/* close_refused -- h2o's reader, told the connection failed, closes it and frees its state (and then,
 * in on_close, ours). */
static void close_refused(cx_conn_t *c)
{
    if (h2o_timeout_is_linked(&c->linger))
        h2o_timeout_unlink(&c->linger);
    c->h2o_read(c->sock, "request refused");
}

static void on_linger_timeout(h2o_timeout_entry_t *e)
{
    close_refused(H2O_STRUCT_FROM_MEMBER(cx_conn_t, linger, e));
}

static void on_linger_read(h2o_socket_t *sock, const char *err)
{
    cx_conn_t *c = sock->on_close.data;

    h2o_buffer_consume(&sock->input, sock->input->size);
    if (err != NULL) /* the client has closed its side, or gone */
        close_refused(c);
}

/* on_refusal_sent -- a lingering close: our side is shut (the client reads the answer, then the end),
 * and what the client still sends (the rest of a huge head, a body) is read and dropped for a second.
 * Closing at once with unread input would send a reset, which can destroy the answer before the client
 * reads it. */
static void on_refusal_sent(h2o_socket_t *sock, const char *err)
{
    cx_conn_t *c = sock->on_close.data;

    if (err != NULL || shutdown(h2o_socket_get_fd(sock), SHUT_WR) != 0) {
        close_refused(c);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    h2o_socket_read_start(sock, on_linger_read);
    h2o_timeout_link(ctx->loop, &ctx->one_sec_timeout, &c->linger);
}

/* answer -- write our refusal and close: the connection's next bytes cannot be trusted to start a
 * request. */
static void answer(cx_conn_t *c, verdict_t *v)
{
    char rid[37];
    size_t len;
    h2o_iovec_t iov;

    unhook(c);
    h2o_socket_read_stop(c->sock);
    cx_uuid(rid);
    c->refusal = cx_reply_error_http1(v->status, v->code, v->msg, rid, &len);
    cx_shm_count(CX_C_HTTP_HEADS_REFUSED, 1);
    cx_access_log_head(rid, v->method, v->target, v->status, len, c->start_us);
    iov = h2o_iovec_init(c->refusal, len);
    h2o_socket_write(c->sock, &iov, 1, on_refusal_sent);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    cx_conn_t *c = sock->on_close.data;
    verdict_t v = {0};

    if (c->start_us == 0)
        c->start_us = now_us();
    if (err == NULL) {
        switch (check_head(sock->input->bytes, sock->input->size, &v)) {
        case HEAD_REFUSE:
            answer(c, &v);
            return;
        case HEAD_PASS:
            unhook(c); /* a head h2o can take: its body is h2o's to read */
            break;
        default:
            break;
        }
    } else {
        unhook(c);
    }
    c->h2o_read(sock, err);
}

static void on_rehook(h2o_timeout_entry_t *e)
{
    cx_conn_t *c = H2O_STRUCT_FROM_MEMBER(cx_conn_t, rehook, e);

    /* only while h2o waits for the next head, with nothing of it buffered yet */
    if (c->refusal == NULL && c->sock->input->size == 0 && h2o_socket_is_reading(c->sock)) {
        c->start_us = 0;
        hook(c);
    }
}

static void on_close(void *data)
{
    cx_conn_t *c = data;

    nconns--;
    if (cx_shm_self != NULL)
        cx_shm_self->conns = nconns;
    if (h2o_timeout_is_linked(&c->rehook))
        h2o_timeout_unlink(&c->rehook);
    if (h2o_timeout_is_linked(&c->linger))
        h2o_timeout_unlink(&c->linger);
    free(c->refusal);
    free(c);
}

static cx_conn_t *conn_of(h2o_req_t *req)
{
    h2o_socket_t *s = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return s != NULL && s->on_close.cb == on_close ? s->on_close.data : NULL;
}

void cx_conn_accept(h2o_accept_ctx_t *actx, h2o_socket_t *sock)
{
    cx_conn_t *c = cx_calloc(1, sizeof(*c));

    c->sock = sock;
    c->rehook.cb = on_rehook;
    c->linger.cb = on_linger_timeout;
    sock->on_close.cb = on_close;
    sock->on_close.data = c;
    nconns++;
    if (cx_shm_self != NULL)
        cx_shm_self->conns = nconns;
    h2o_accept(actx, sock);
    if (actx->ssl_ctx == NULL && !actx->expect_proxy_line)
        hook(c); /* h2o_accept has made it an HTTP/1 connection reading its first head */
}

void cx_conn_request_done(h2o_req_t *req)
{
    cx_conn_t *c;

    if (req->version >= 0x200 || (c = conn_of(req)) == NULL || h2o_timeout_is_linked(&c->rehook))
        return;
    h2o_timeout_link(ctx->loop, &ctx->zero_timeout, &c->rehook);
}

int cx_conn_count(void)
{
    return nconns;
}

/* ---- answers ---- */

typedef struct sender {
    h2o_generator_t super;
    h2o_req_t *req;
    const char *request_id;
    const char *p; /* the rest of the answer, after the piece in flight */
    size_t left;
    size_t held; /* bytes of this answer counted in held */
    size_t inflight;
    h2o_timeout_entry_t stall;
} sender_t;

static void send_next(sender_t *sd)
{
    h2o_iovec_t iov = h2o_iovec_init(sd->p, sd->left < CHUNK ? sd->left : CHUNK);

    sd->p += iov.len;
    sd->left -= iov.len;
    sd->inflight = iov.len;
    h2o_timeout_link(ctx->loop, &stall_timeout, &sd->stall);
    h2o_send(sd->req, &iov, 1, sd->left > 0 ? H2O_SEND_STATE_IN_PROGRESS : H2O_SEND_STATE_FINAL);
}

/* publish_held -- this worker's unsent bytes, and the most it has held at once, for /metrics. */
static void publish_held(void)
{
    if (cx_shm_self == NULL)
        return;
    cx_shm_self->unsent = (int64_t)held;
    if ((int64_t)held > cx_shm_self->unsent_max)
        cx_shm_self->unsent_max = (int64_t)held;
}

static void release(sender_t *sd, size_t n)
{
    if (n > sd->held)
        n = sd->held;
    sd->held -= n;
    held -= n;
    publish_held();
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    sender_t *sd = (sender_t *)g;
    (void)req;
    if (h2o_timeout_is_linked(&sd->stall))
        h2o_timeout_unlink(&sd->stall);
    release(sd, sd->inflight);
    if (sd->left > 0)
        send_next(sd);
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    sender_t *sd = (sender_t *)g;
    (void)req;
    if (h2o_timeout_is_linked(&sd->stall))
        h2o_timeout_unlink(&sd->stall);
}

static void on_sender_dispose(void *p)
{
    sender_t *sd = p;
    if (h2o_timeout_is_linked(&sd->stall))
        h2o_timeout_unlink(&sd->stall);
    release(sd, sd->held);
}

/* on_stall -- a piece of the answer made no progress for server.write_timeout: abort the connection.
 * SO_LINGER 0 makes the close a reset that drops what the kernel still holds; shutdown(2) makes h2o's
 * pending write (or read) fail at once, and h2o then closes the connection and frees its requests. */
static void on_stall(h2o_timeout_entry_t *e)
{
    sender_t *sd = H2O_STRUCT_FROM_MEMBER(sender_t, stall, e);
    h2o_socket_t *s = sd->req->conn->callbacks->get_socket(sd->req->conn);
    struct linger lg = {1, 0};
    int fd;

    cx_shm_count(CX_C_HTTP_WRITE_TIMEOUTS, 1);
    cx_log_warnx("request %s: closing the connection: its client read nothing for %lld ms (%zu bytes of the answer unsent)",
                 sd->request_id, (long long)cx_cfg->server.write_timeout_ms, sd->left + sd->inflight);
    if (s == NULL || (fd = h2o_socket_get_fd(s)) < 0)
        return;
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        cx_log_warn("setsockopt(SO_LINGER)");
    if (shutdown(fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        cx_log_warn("shutdown");
}

int cx_conn_may_hold(size_t len)
{
    return len <= CHUNK || held + len <= HELD_MAX;
}

void cx_conn_send(h2o_req_t *req, const char *request_id, const char *body, size_t len)
{
    sender_t *sd = h2o_mem_alloc_shared(&req->pool, sizeof(*sd), on_sender_dispose);
    char *copy = h2o_mem_alloc_pool(&req->pool, len);

    memset(sd, 0, sizeof(*sd));
    memcpy(copy, body, len);
    sd->super.proceed = on_proceed;
    sd->super.stop = on_stop;
    sd->req = req;
    sd->request_id = request_id;
    sd->p = copy;
    sd->left = len;
    sd->held = len;
    sd->stall.cb = on_stall;
    held += len;
    publish_held();
    h2o_start_response(req, &sd->super);
    send_next(sd);
}

void cx_conn_init(h2o_context_t *c)
{
    ctx = c;
    h2o_timeout_init(ctx->loop, &stall_timeout, (uint64_t)cx_cfg->server.write_timeout_ms);
    if (cx_shm_self != NULL) /* the slot may be a dead worker's: these are this process's own */
        cx_shm_self->unsent = cx_shm_self->unsent_max = 0;
}
