/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Minimal HTTP/1.1 server for the controller's endpoints. Each connection reads one request
 * head (capped), answers it with Connection: close and closes. See httpd.h.
 */
#include "httpd.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct Conn Conn;

struct Httpd {
    uv_loop_t *loop;
    uv_tcp_t server;
    char *name;
    HttpdHandler handler;
    void *ud;
    int port;
    Conn *conns; /* doubly linked list of open clients */
    size_t nconns;
    int closing;
    int server_closed;
    void (*done)(void *ud);
    void *done_ud;
};

struct Conn {
    Httpd *h;
    Conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t shut;
    char req[HTTPD_MAX_REQUEST + 1];
    size_t len;
    char *resp;
    int handles; /* open handles; freed when 0 */
    int responded;
};

static void maybe_done(Httpd *h)
{
    if (!h->closing || !h->server_closed || h->conns)
        return;
    void (*done)(void *) = h->done;
    void *ud = h->done_ud;
    free(h->name);
    free(h);
    if (done)
        done(ud);
}

static void on_conn_closed(uv_handle_t *hd)
{
    Conn *c = hd->data;
    if (--c->handles > 0)
        return;
    Httpd *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    free(c->resp);
    free(c);
    maybe_done(h);
}

static void conn_close(Conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_idle(uv_timer_t *t);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void on_written(uv_write_t *wr, int status)
{
    Conn *c = wr->data;
    /*
     * Closing a socket with unread input sends a reset that can destroy the response in
     * flight; so half-close, drain what the client still sends, close on its EOF or soon.
     */
    if (status < 0 || uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_idle, HTTPD_DRAIN_MS, 0);
}

static const char *reason(int st)
{
    switch (st) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void respond(Conn *c, int status, const char *ctype, const Buf *body, int head_only)
{
    Buf out = BUF_INIT;
    size_t blen = body && body->data ? body->len : 0;
    c->responded = 1;
    c->len = 0; /* the request buffer now only receives what is drained */
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if (buf_printf(&out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\nCache-Control: no-store\r\n\r\n",
                   status, reason(status), ctype, blen) < 0 ||
        /* HEAD: the same head, no body */
        (!head_only && blen && buf_append(&out, body->data, blen) < 0)) {
        buf_deinit(&out);
        conn_close(c);
        return;
    }
    size_t total = out.len;
    c->resp = buf_take(&out);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)total);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

static void respond_text(Conn *c, int status, const char *text)
{
    Buf b = BUF_INIT;
    (void)buf_puts(&b, text);
    respond(c, status, "text/plain; charset=utf-8", &b, 0);
    buf_deinit(&b);
}

int httpd_parse_head(char *buf, size_t len, size_t cap, char **ret_method, char **ret_path)
{
    if (memchr(buf, 0, len))
        return 400;
    buf[len] = 0;
    if (!strstr(buf, "\r\n\r\n") && !strstr(buf, "\n\n"))
        return len >= cap ? 431 : 1;
    char *sp1 = strchr(buf, ' ');
    char *eol = strstr(buf, "\r\n");
    if (!sp1 || !eol || sp1 > eol)
        return 400;
    char *path = sp1 + 1;
    char *sp2 = memchr(path, ' ', (size_t)(eol - path));
    if (!sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) || *path != '/')
        return 400;
    *sp2 = 0;
    char *q = strchr(path, '?');
    if (q)
        *q = 0;
    *sp1 = 0;
    if (strcmp(buf, "GET") && strcmp(buf, "HEAD"))
        return 405;
    *ret_method = buf;
    *ret_path = path;
    return 0;
}

static void handle_request(Conn *c, char *method, char *path)
{
    Buf body = BUF_INIT;
    const char *ctype = "text/plain; charset=utf-8";
    int status = c->h->handler(c->h->ud, path, &body, &ctype);
    respond(c, status, ctype, &body, !strcmp(method, "HEAD"));
    buf_deinit(&body);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    Conn *c = hd->data;
    (void)suggested;
    b->base = c->req + c->len;
    b->len = HTTPD_MAX_REQUEST - c->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    Conn *c = s->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    if (c->responded) {
        c->len = 0; /* draining after the response */
        return;
    }
    c->len += (size_t)n;
    char *method, *path;
    int r = httpd_parse_head(c->req, c->len, HTTPD_MAX_REQUEST, &method, &path);
    if (r == 0)
        handle_request(c, method, path);
    else if (r == 400)
        respond_text(c, 400, "bad request\n");
    else if (r == 405)
        respond_text(c, 405, "only GET\n");
    else if (r == 431)
        respond_text(c, 431, "request too large\n");
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    Httpd *h = server->data;
    if (status < 0 || h->closing)
        return;
    Conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->h = h;
    c->tcp.data = c->timer.data = c;
    if (uv_tcp_init(h->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->handles = 1;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    if (uv_timer_init(h->loop, &c->timer) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->handles = 2;
    if (h->nconns > HTTPD_MAX_CLIENTS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_idle, HTTPD_IDLE_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

/* Resolve @addr into @ss; ":PORT" means every address (dual-stack "::", else 0.0.0.0). */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, int *any_v6)
{
    char host[256];
    const char *c = strrchr(addr, ':');
    *any_v6 = 0;
    if (!c)
        return -EINVAL;
    char *end;
    long port = strtol(c + 1, &end, 10);
    if (!c[1] || *end || port < 0 || port > 65535)
        return -EINVAL;
    size_t hl = (size_t)(c - addr);
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, addr, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = 0;
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss);
    }
    if (!*host) {
        *any_v6 = 1;
        return uv_ip6_addr("::", (int)port, (struct sockaddr_in6 *)ss);
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -ENOENT;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static void on_server_closed(uv_handle_t *hd)
{
    Httpd *h = hd->data;
    h->server_closed = 1;
    maybe_done(h);
}

static void free_unstarted(uv_handle_t *hd)
{
    Httpd *h = hd->data;
    free(h->name);
    free(h);
}

int httpd_new(uv_loop_t *loop, const char *name, const char *addr, HttpdHandler handler, void *ud,
              Httpd **ret, char **ret_err)
{
    struct sockaddr_storage ss;
    int any_v6, r;

    *ret_err = NULL;
    if (parse_addr(addr, &ss, &any_v6) < 0) {
        *ret_err = util_strdup_printf("invalid or unresolvable address \"%s\"", addr);
        return -EINVAL;
    }
    Httpd *h = calloc(1, sizeof(*h));
    if (!h || !(h->name = strdup(name))) {
        free(h);
        return -ENOMEM;
    }
    h->loop = loop;
    h->handler = handler;
    h->ud = ud;
    h->server.data = h;
    r = uv_tcp_init(loop, &h->server);
    if (r < 0) {
        free(h->name);
        free(h);
        return r;
    }
    r = uv_tcp_bind(&h->server, (struct sockaddr *)&ss, 0);
    if (r == UV_EAFNOSUPPORT && any_v6) {
        /* no IPv6 on this host: every IPv4 address instead */
        int port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&ss);
        r = uv_tcp_bind(&h->server, (struct sockaddr *)&ss, 0);
    }
    if (r == 0)
        r = uv_listen((uv_stream_t *)&h->server, 128, on_connection);
    if (r < 0) {
        *ret_err = util_strdup_printf("cannot listen on %s: %s", addr, uv_strerror(r));
        uv_close((uv_handle_t *)&h->server, free_unstarted);
        return r;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (uv_tcp_getsockname(&h->server, (struct sockaddr *)&bound, &blen) == 0) {
        if (bound.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof(ip));
            h->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof(ip));
            h->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        }
    }
    char *shown =
        util_strdup_printf(bound.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, h->port);
    log_event(LOG_INFO, "httpd", "listening", "{s:s, s:s, s:i}", "server", name, "address",
              shown ? shown : "?", "port", h->port);
    free(shown);
    *ret = h;
    return 0;
}

int httpd_port(const Httpd *h)
{
    return h->port;
}

void httpd_close(Httpd *h, void (*done)(void *ud), void *ud)
{
    h->closing = 1;
    h->done = done;
    h->done_ud = ud;
    for (Conn *c = h->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&h->server, on_server_closed);
}
