/*
 * client.c -- outbound HTTP calls on the worker's h2o event loop, with libcurl's multi interface, so a slow
 * or dead identity provider costs the worker nothing but a pending handle: every other request keeps being
 * served while the call waits.
 *
 * libcurl tells us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and when it next needs the
 * clock (CURLMOPT_TIMERFUNCTION). Its sockets go into an epoll set of our own, and its timer is a timerfd;
 * the loop watches only those two descriptors (an epoll descriptor is readable when one of its members
 * is ready). So libcurl may open and close sockets as it likes: a socket it closes leaves the epoll set by
 * itself, and h2o never holds a descriptor that libcurl owns (wrapping them in h2o sockets would, and a
 * reused descriptor number would then confuse the loop).
 *
 * Completed transfers are collected after each curl_multi_socket_action and handed to their callback
 * outside of any libcurl callback, so a callback may start the next call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <curl/curl.h>

#include "conduix/client.h"
#include "conduix/cx.h"
#include "conduix/log.h"

#define CONNECT_TIMEOUT_MAX_MS 5000
#define EVENTS_MAX 32

struct cx_client_call {
    CURL *easy;
    struct curl_slist *headers;
    char *form;
    char *user, *pass;
    char *buf;
    size_t len, cap;
    int too_big;
    int64_t start_ms, timeout_ms;
    cx_client_cb cb;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
};

static struct {
    CURLM *multi;
    int efd, tfd;
    h2o_socket_t *esock, *tsock; /* the two on the worker's loop, for the process's life */
    int pending;
} C = {NULL, -1, -1, NULL, NULL, 0};

static void check_done(void);

/* on_socket -- libcurl wants s watched for what (or no longer watched). socketp is non-NULL once s is in the
 * epoll set. */
// cppcheck-suppress constParameter ; the signature of libcurl's CURLMOPT_SOCKETFUNCTION
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct epoll_event ev = {0};
    (void)easy;
    (void)userp;

    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(C.efd, EPOLL_CTL_DEL, s, NULL); /* may already be gone with a closed socket */
        curl_multi_assign(C.multi, s, NULL);
        return 0;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = s;
    if (epoll_ctl(C.efd, socketp != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) != 0) {
        /* a descriptor libcurl closed and reopened without telling us, or one we never saw: retry the other way */
        if (epoll_ctl(C.efd, socketp != NULL ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s, &ev) != 0) {
            cx_log_warn("client: epoll_ctl(%d)", (int)s);
            return -1;
        }
    }
    curl_multi_assign(C.multi, s, (void *)1);
    return 0;
}

/* on_timer -- libcurl wants to be called after timeout_ms (-1: never, 0: as soon as possible). It must not
 * be called from inside this callback, so even 0 goes through the timerfd. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct itimerspec its = {0};
    (void)multi;
    (void)userp;

    if (timeout_ms >= 0) {
        its.it_value.tv_sec = timeout_ms / 1000;
        its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L;
        if (timeout_ms == 0)
            its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(C.tfd, 0, &its, NULL) != 0) {
        cx_log_warn("client: timerfd_settime");
        return -1;
    }
    return 0;
}

static void on_epoll_ready(h2o_socket_t *sock, const char *err)
{
    struct epoll_event evs[EVENTS_MAX];
    int n, i, running;
    (void)sock;
    (void)err;

    n = epoll_wait(C.efd, evs, EVENTS_MAX, 0);
    for (i = 0; i < n; i++) {
        int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                    ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(C.multi, evs[i].data.fd, flags, &running);
    }
    check_done();
}

static void on_timer_ready(h2o_socket_t *sock, const char *err)
{
    uint64_t expirations;
    int running;
    (void)sock;
    (void)err;

    if (read(C.tfd, &expirations, sizeof(expirations)) != (ssize_t)sizeof(expirations) && errno == EAGAIN)
        return;
    curl_multi_socket_action(C.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done();
}

int cx_client_init(h2o_loop_t *loop)
{
    if (C.multi != NULL)
        return CX_OK;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cx_log_errorx("client: curl_global_init failed");
        return CX_ERR;
    }
    if ((C.efd = epoll_create1(EPOLL_CLOEXEC)) < 0 || (C.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
        cx_log_error("client: epoll_create1/timerfd_create");
        return CX_ERR;
    }
    C.multi = curl_multi_init();
    curl_multi_setopt(C.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(C.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    C.esock = h2o_evloop_socket_create(loop, C.efd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(C.esock, on_epoll_ready);
    C.tsock = h2o_evloop_socket_create(loop, C.tfd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(C.tsock, on_timer_ready);
    return CX_OK;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cx_client_call_t *c = userdata;
    size_t n = size * nmemb;

    if (c->len + n > CX_CLIENT_MAX_BODY) {
        c->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (c->len + n + 1 > c->cap) {
        c->cap = (c->len + n + 1) * 2;
        if (c->cap > CX_CLIENT_MAX_BODY + 1)
            c->cap = CX_CLIENT_MAX_BODY + 1;
        c->buf = cx_realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, ptr, n);
    c->len += n;
    c->buf[c->len] = '\0';
    return n;
}

static void call_free(cx_client_call_t *c)
{
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c->form);
    free(c->user);
    free(c->pass);
    free(c->buf);
    free(c);
}

/* escape -- s percent-encoded (RFC 3986: all but letters, digits and -._~), malloc'd: libcurl's encoder,
 * copied so that it is freed with free() like the rest. */
static char *escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0), *out;

    if (e == NULL)
        abort(); /* libcurl fails only when it cannot allocate */
    out = cx_strdup(e);
    curl_free(e);
    return out;
}

char *cx_form_append(char *buf, char sep, const char *name, const char *value)
{
    char *n = escape(name), *v = escape(value);
    size_t have = buf ? strlen(buf) : 0, need = have + 1 + strlen(n) + 1 + strlen(v) + 1;

    buf = cx_realloc(buf, need);
    if (have > 0)
        buf[have++] = sep;
    snprintf(buf + have, need - have, "%s=%s", n, v);
    free(n);
    free(v);
    return buf;
}

cx_client_call_t *cx_client_start(const char *url, const char *form, const char *const *headers, const char *basic_user,
                                  const char *basic_pass, int64_t timeout_ms, cx_client_cb cb, void *arg)
{
    cx_client_call_t *c;
    CURLMcode mc;

    if (C.multi == NULL) {
        cx_log_errorx("client: not initialised in this process");
        return NULL;
    }
    c = cx_calloc(1, sizeof(*c));
    if ((c->easy = curl_easy_init()) == NULL) {
        free(c);
        cx_log_errorx("client: curl_easy_init failed");
        return NULL;
    }
    c->cb = cb;
    c->arg = arg;
    c->timeout_ms = timeout_ms;
    c->start_ms = cx_now_ms();
    c->buf = cx_calloc(1, 1);
    for (; headers != NULL && *headers != NULL; headers++)
        c->headers = curl_slist_append(c->headers, *headers);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout_ms < CONNECT_TIMEOUT_MAX_MS ? timeout_ms : CONNECT_TIMEOUT_MAX_MS));
    curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "conduix-cp/" CX_VERSION);
    curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    if (form != NULL) {
        c->form = cx_strdup(form);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->form);
    }
    if (basic_user != NULL) {
        /* RFC 6749 2.3.1: the client id and secret are form-encoded before they go into Basic */
        c->user = escape(basic_user);
        c->pass = escape(basic_pass != NULL ? basic_pass : "");
        curl_easy_setopt(c->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c->easy, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(c->easy, CURLOPT_PASSWORD, c->pass);
    }
    if ((mc = curl_multi_add_handle(C.multi, c->easy)) != CURLM_OK) {
        cx_log_errorx("client: curl_multi_add_handle: %s", curl_multi_strerror(mc));
        call_free(c);
        return NULL;
    }
    C.pending++;
    return c;
}

void cx_client_cancel(cx_client_call_t *c)
{
    if (c == NULL)
        return;
    curl_multi_remove_handle(C.multi, c->easy);
    C.pending--;
    call_free(c);
}

int cx_client_pending(void)
{
    return C.pending;
}

/* check_done -- hand every finished transfer to its callback. */
static void check_done(void)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(C.multi, &left)) != NULL) {
        cx_client_call_t *c = NULL;
        cx_client_res_t res = {0};
        char why[CURL_ERROR_SIZE + 64];
        long status = 0;
        char *ctype = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode result = msg->data.result;
        curl_multi_remove_handle(C.multi, c->easy);
        C.pending--;
        res.ms = cx_now_ms() - c->start_ms;
        res.body = c->buf;
        res.len = c->len;
        res.ctype = "";
        if (result == CURLE_OK) {
            curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ctype);
            res.status = (int)status;
            res.ctype = ctype != NULL ? ctype : "";
        } else {
            if (c->too_big)
                snprintf(why, sizeof(why), "the answer is larger than %d bytes", CX_CLIENT_MAX_BODY);
            else if (result == CURLE_OPERATION_TIMEDOUT)
                snprintf(why, sizeof(why), "no answer within %lld ms", (long long)c->timeout_ms);
            else
                snprintf(why, sizeof(why), "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(result));
            res.error = why;
            res.body = "";
            res.len = 0;
        }
        c->cb(c->arg, &res);
        call_free(c);
    }
}
