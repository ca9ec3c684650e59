/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Httpd: a tiny HTTP/1.1 server on the libuv loop for the health, metrics and diagnostics
 * endpoints. GET (and HEAD) only, one request per connection (Connection: close), request size
 * and client count capped, idle clients dropped. Loop thread only.
 */
#include <uv.h>

#include "util.h"

typedef struct Httpd Httpd;

/*
 * HttpdHandler - fill @body for @path (query string removed) and return the HTTP status.
 * *ret_ctype defaults to "text/plain; charset=utf-8".
 */
typedef int (*HttpdHandler)(void *ud, const char *path, Buf *body, const char **ret_ctype);

enum {
    HTTPD_MAX_REQUEST = 8192, /* bytes of request head */
    HTTPD_MAX_CLIENTS = 256,  /* concurrent connections; more are closed at once */
    HTTPD_IDLE_MS = 10000,    /* a client must send its request within this time */
    HTTPD_DRAIN_MS = 1000,    /* after the response, wait this long for the client's EOF */
};

/*
 * httpd_new() - listen on @addr (":PORT", "HOST:PORT", "[V6]:PORT"; port 0 picks one) and log
 * the bound address with @name. *ret_err (malloc'd) says why it failed.
 */
int httpd_new(uv_loop_t *loop, const char *name, const char *addr, HttpdHandler handler, void *ud,
              Httpd **ret, char **ret_err);
/*
 * httpd_parse_head() - parse the request head in @buf (@len bytes; @buf has room for @len + 1,
 * modified in place). Return: 0 with *ret_method ("GET"/"HEAD") and *ret_path (query removed)
 * pointing into @buf; 1 when the head is not complete yet; 400, 405, or 431 when @len reached
 * @cap without a complete head. Untrusted input: fuzzed.
 */
int httpd_parse_head(char *buf, size_t len, size_t cap, char **ret_method, char **ret_path);

/* httpd_port() - the bound port. */
int httpd_port(const Httpd *h);
/* httpd_close() - stop listening, drop clients; @done (may be NULL) runs once all are closed. */
void httpd_close(Httpd *h, void (*done)(void *ud), void *ud);
