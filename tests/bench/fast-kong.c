/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal, fast fake Kong Admin API for benchmarks (plain HTTP/1.1, keep-alive): N listeners
 * on 127.0.0.1 (port 0), one epoll loop. GET /status answers the configuration hash (zeros until
 * a config was accepted), GET / a version and router flavor, POST /config reads and discards
 * the body and answers 201. Prints "PORTS p1 p2 ..." then serves until killed; on each 201 it
 * prints "ACCEPTED <port> <bytes> <monotonic ms>" so a benchmark can time the last one.
 * Usage: fast-kong N
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 16384

typedef struct Conn {
    int fd, port;
    char head[MAX_HEAD];
    size_t head_len;
    long long body_left;
    long long body_len;
    int is_post;
    int is_status;
    int listener;
} Conn;

static int accepted_any[1024];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void reply(Conn *c, int code, const char *body)
{
    char buf[512];
    int n = snprintf(
        buf, sizeof(buf),
        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", code,
        code == 201   ? "Created"
        : code == 200 ? "OK"
                      : "Not Found",
        strlen(body), body);
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(c->fd, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EAGAIN)
            continue;
        if (w <= 0)
            return;
        off += w;
    }
}

static void finish_request(Conn *c)
{
    if (c->is_post) {
        accepted_any[c->port % 1024] = 1;
        reply(c, 201, "{}");
        printf("ACCEPTED %d %lld %.3f\n", c->port, c->body_len, now_ms());
        fflush(stdout);
    } else if (c->is_status) {
        reply(c, 200,
              accepted_any[c->port % 1024]
                  ? "{\"configuration_hash\":\"0123456789abcdef0123456789abcdef\"}"
                  : "{\"configuration_hash\":\"00000000000000000000000000000000\"}");
    } else {
        reply(c, 200,
              "{\"version\":\"3.9.1\",\"configuration\":{\"database\":\"off\","
              "\"router_flavor\":\"traditional_compatible\"}}");
    }
    c->head_len = 0;
    c->is_post = c->is_status = 0;
    c->body_left = c->body_len = 0;
}

/* Returns 0 to keep the connection, -1 to close it. */
static int on_data(Conn *c)
{
    static char buf[1 << 20];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        char *p = buf;
        size_t left = (size_t)n;
        while (left > 0) {
            if (c->body_left > 0) {
                size_t take = left < (size_t)c->body_left ? left : (size_t)c->body_left;
                c->body_left -= (long long)take;
                p += take;
                left -= take;
                if (c->body_left == 0)
                    finish_request(c);
                continue;
            }
            size_t room = MAX_HEAD - 1 - c->head_len;
            size_t take = left < room ? left : room;
            memcpy(c->head + c->head_len, p, take);
            c->head_len += take;
            c->head[c->head_len] = '\0';
            char *end = strstr(c->head, "\r\n\r\n");
            if (!end) {
                if (c->head_len >= MAX_HEAD - 1)
                    return -1;
                p += take;
                left -= take;
                continue;
            }
            size_t used = (size_t)(end + 4 - c->head) - (c->head_len - take);
            p += used;
            left -= used;
            c->is_post = strncmp(c->head, "POST ", 5) == 0;
            c->is_status = strncmp(c->head, "GET /status", 11) == 0;
            char *cl = strcasestr(c->head, "\r\nContent-Length:");
            c->body_len = cl ? strtoll(cl + 17, NULL, 10) : 0;
            c->body_left = c->body_len;
            if (c->body_left == 0)
                finish_request(c);
            else
                c->head_len = 0;
        }
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1;
    int ep = epoll_create1(0);
    printf("PORTS");
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        socklen_t al = sizeof(a);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
            perror("listen");
            return 1;
        }
        Conn *l = calloc(1, sizeof(*l));
        l->fd = fd;
        l->listener = 1;
        l->port = ntohs(a.sin_port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        printf(" %d", l->port);
    }
    printf("\n");
    fflush(stdout);
    struct epoll_event evs[64];
    for (;;) {
        int k = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < k; i++) {
            Conn *c = evs[i].data.ptr;
            if (c->listener) {
                int fd;
                while ((fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    Conn *nc = calloc(1, sizeof(*nc));
                    nc->fd = fd;
                    nc->port = c->port;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (on_data(c) < 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                free(c);
            }
        }
    }
}
