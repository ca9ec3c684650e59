/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One libcurl multi handle driven by libuv: curl's docs/examples/multi-uv.c with the deviations
 * listed in STYLE.md section 7 (drain messages after every action, map poll errors to
 * CURL_CSELECT_ERR, check every allocation, tear down while the loop is alive).
 */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct Http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    size_t pending;
    int closing;
    void (*close_done)(void *ud);
    void *close_ud;
    int open_handles; /* timer + socket polls still to be closed */
    struct HttpReq *reqs; /* every request in flight, so close can abort them */
    int close_armed;      /* http_close() has handed over the last handles */
};

typedef struct HttpSock {
    uv_poll_t poll;
    curl_socket_t fd;
    Http *http;
} HttpSock;

typedef struct HttpReq {
    struct HttpReq *next, *prev;
    Http *http;
    CURL *easy;
    Buf body;
    size_t max_body;
    int truncated;
    HttpDoneFn done;
    HttpChunkFn on_chunk; /* streamed body (http_start_stream) instead of collecting it */
    void *ud;
    char errbuf[CURL_ERROR_SIZE];
} HttpReq;

static void maybe_close_done(Http *h)
{
    if (h->closing && h->close_armed && h->open_handles == 0) {
        void (*done)(void *) = h->close_done;
        void *ud = h->close_ud;
        free(h);
        if (done)
            done(ud);
    }
}

static void on_handle_closed(uv_handle_t *handle)
{
    Http *h = handle->data;
    if (handle->type == UV_POLL)
        free(container_of((uv_poll_t *)handle, HttpSock, poll));
    h->open_handles--;
    maybe_close_done(h);
}

static void finish(Http *h, CURL *easy, CURLcode code)
{
    HttpReq *req = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
    curl_multi_remove_handle(h->multi, easy);
    h->pending--;
    if (req->prev)
        req->prev->next = req->next;
    else
        h->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;

    HttpResult res = {0};
    res.code = req->truncated ? CURLE_WRITE_ERROR : code;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status);
    curl_off_t ra = -1;
    if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
        ra = -1;
    /* curl reports 0 both for "absent" and "Retry-After: 0"; treat 0 as absent. */
    res.retry_after_s = (long)ra;
    double t = 0;
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &t);
    res.total_ms = t * 1000.0;
    res.body = req->body.data ? req->body.data : "";
    res.body_len = req->body.len;
    res.truncated = req->truncated;
    if (req->truncated)
        res.error = "response body too large";
    else if (code != CURLE_OK)
        res.error = req->errbuf[0] ? req->errbuf : curl_easy_strerror(code);
    else
        res.error = "";
    req->done(req->ud, easy, &res);
    curl_easy_cleanup(easy);
    buf_deinit(&req->body);
    free(req);
}

/* Drain every message, every time: a transfer that ends by timeout must still be reaped. */
static void drain(Http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result; /* copy: msg dies with the handle */
        finish(h, easy, code);
    }
}

static void on_timer(uv_timer_t *t)
{
    Http *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    HttpSock *s = container_of(p, HttpSock, poll);
    Http *h = s->http;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    drain(h);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    Http *h = userp;
    HttpSock *s = socketp;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_handle_closed);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->http = h;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->poll.data = h;
        h->open_handles++;
        curl_multi_assign(h->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&s->poll, ev, on_poll) < 0 ? -1 : 0;
}

static int on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    Http *h = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, timeout_ms ? (uint64_t)timeout_ms : 1, 0);
    return 0;
}

int http_new(uv_loop_t *loop, Http **ret)
{
    Http *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->loop = loop;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return -ENOMEM;
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timeout);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    *ret = h;
    return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    HttpReq *req = ud;
    size_t len = size * n;
    if (req->on_chunk)
        return req->on_chunk(req->ud, req->easy, p, len) ? 0 : len;
    if (req->body.len + len > req->max_body) {
        req->truncated = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (buf_append(&req->body, p, len) < 0)
        return 0;
    return len;
}

int http_start(Http *h, CURL *easy, size_t max_body, HttpDoneFn done, void *ud)
{
    if (h->closing) {
        curl_easy_cleanup(easy);
        return -ECANCELED;
    }
    HttpReq *req = calloc(1, sizeof(*req));
    if (!req) {
        curl_easy_cleanup(easy);
        return -ENOMEM;
    }
    req->http = h;
    req->easy = easy;
    req->max_body = max_body;
    req->done = done;
    req->ud = ud;
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (curl_multi_add_handle(h->multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        free(req);
        return -EIO;
    }
    h->pending++;
    req->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = req;
    h->reqs = req;
    return 0;
}

int http_start_stream(Http *h, CURL *easy, HttpChunkFn on_chunk, HttpDoneFn done, void *ud)
{
    int r = http_start(h, easy, 0, done, ud);
    if (r < 0)
        return r;
    /* No transfer runs before the loop turns, so the request can still be switched to streaming. */
    HttpReq *req = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
    req->on_chunk = on_chunk;
    return 0;
}

CURL *http_easy_new(const char *url, long timeout_ms)
{
    CURL *easy = curl_easy_init();
    if (!easy)
        return NULL;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 30000L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms > 0 && timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "tether/" TETHER_VERSION);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    return easy;
}

void http_cancel(Http *h, CURL *easy)
{
    /* Removing the handle skips curl's DONE message, so complete the request ourselves. */
    finish(h, easy, CURLE_ABORTED_BY_CALLBACK);
}

size_t http_pending(const Http *h)
{
    return h->pending;
}

void http_close(Http *h, void (*done)(void *ud), void *ud)
{
    h->closing = 1;
    /* Abort what is in flight; their callbacks may start nothing new (http_start refuses). */
    while (h->reqs)
        finish(h, h->reqs->easy, CURLE_ABORTED_BY_CALLBACK);
    h->close_done = done;
    h->close_ud = ud;
    h->close_armed = 1;
    /* curl_multi_cleanup can call the socket callback: the loop and h must still be alive. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
