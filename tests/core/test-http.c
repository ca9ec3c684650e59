/* SPDX-License-Identifier: Apache-2.0 */
/*
 * core/http on a real loop against a tiny HTTP server on loopback (same loop): bodies, status,
 * Retry-After, the body cap, timeouts, and close with requests in flight; the loop must close
 * with no handle left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http.h"
#include "util.h"

typedef struct Conn {
    uv_tcp_t tcp;
    Buf in;
    int answered;
} Conn;

static uv_tcp_t server;
static int port;

static void on_conn_closed(uv_handle_t *h)
{
    Conn *c = h->data;
    buf_deinit(&c->in);
    free(c);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->data, on_conn_closed);
    free(w);
}

static void alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(s);
    b->len = s;
}

static char big_body[2 * 1024 * 1024];

static void respond(Conn *c)
{
    const char *path = c->in.data + 4; /* after "GET " */
    static char head[256];
    uv_buf_t bufs[2];
    int nb = 1;
    if (!strncmp(path, "/hang", 5))
        return; /* never answer */
    if (!strncmp(path, "/ok", 3)) {
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    } else if (!strncmp(path, "/retry", 6)) {
        snprintf(head, sizeof(head), "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else if (!strncmp(path, "/big", 4)) {
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                 sizeof(big_body));
        bufs[1] = uv_buf_init(big_body, sizeof(big_body));
        nb = 2;
    } else {
        snprintf(head, sizeof(head), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    bufs[0] = uv_buf_init(head, (unsigned)strlen(head));
    uv_write_t *w = calloc(1, sizeof(*w));
    w->data = &c->tcp;
    c->answered = 1;
    uv_write(w, (uv_stream_t *)&c->tcp, bufs, (unsigned)nb, on_written);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    Conn *c = s->data;
    if (n > 0)
        buf_append(&c->in, b->base, (size_t)n);
    free(b->base);
    if (n < 0) {
        if (!c->answered)
            uv_close((uv_handle_t *)s, on_conn_closed);
        return;
    }
    if (!c->answered && c->in.data && strstr(c->in.data, "\r\n\r\n"))
        respond(c);
}

static void on_connection(uv_stream_t *srv, int status)
{
    assert_int_equal(status, 0);
    Conn *c = calloc(1, sizeof(*c));
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

typedef struct Result {
    int done;
    CURLcode code;
    long status;
    char body[64];
    long retry_after;
    int truncated;
} Result;

static void on_done(void *ud, CURL *easy, const HttpResult *res)
{
    Result *r = ud;
    (void)easy;
    r->done++;
    r->code = res->code;
    r->status = res->status;
    snprintf(r->body, sizeof(r->body), "%s", res->body);
    r->retry_after = res->retry_after_s;
    r->truncated = res->truncated;
}

static void start(Http *h, const char *path, long timeout_ms, size_t cap, Result *r)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *e = http_easy_new(url, timeout_ms);
    assert_non_null(e);
    assert_int_equal(http_start(h, e, cap, on_done, r), 0);
    assert_int_equal(r->done, 0); /* never called from inside http_start */
}

static int closed;
static void on_http_closed(void *ud)
{
    (void)ud;
    closed = 1;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    uv_close(h, h == (uv_handle_t *)&server ? NULL : on_conn_closed);
}

static void test_http(void **state)
{
    uv_loop_t loop;
    Http *h;
    struct sockaddr_in addr;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    uv_tcp_init(&loop, &server);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&server, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server, 16, on_connection), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    assert_int_equal(http_new(&loop, &h), 0);
    Result ok = {0}, retry = {0}, big = {0}, hang = {0}, missing = {0};
    start(h, "/ok", 5000, 1024, &ok);
    start(h, "/retry", 5000, 1024, &retry);
    start(h, "/big", 5000, 1024, &big);
    start(h, "/hang", 300, 1024, &hang);
    start(h, "/nothing", 5000, 1024, &missing);
    assert_int_equal(http_pending(h), 5);
    while (http_pending(h))
        uv_run(&loop, UV_RUN_ONCE);

    assert_int_equal(ok.done, 1);
    assert_int_equal(ok.code, CURLE_OK);
    assert_int_equal(ok.status, 200);
    assert_string_equal(ok.body, "hello");
    assert_int_equal(ok.retry_after, -1);
    assert_int_equal(retry.status, 429);
    assert_int_equal(retry.retry_after, 7);
    assert_int_equal(big.done, 1);
    assert_true(big.truncated);
    assert_int_not_equal(big.code, CURLE_OK);
    assert_int_equal(hang.code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(missing.status, 404);

    /* Closing with a request in flight completes it, aborted, exactly once. */
    Result pending = {0};
    start(h, "/hang", 60000, 1024, &pending);
    uv_run(&loop, UV_RUN_NOWAIT);
    http_close(h, on_http_closed, NULL);
    assert_int_equal(pending.done, 1);
    assert_int_equal(pending.code, CURLE_ABORTED_BY_CALLBACK);
    uv_walk(&loop, on_walk_close, NULL); /* the server and its connections */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
