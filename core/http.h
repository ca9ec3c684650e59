/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Http: one libcurl multi handle driven by the libuv loop (the pattern of curl's
 * docs/examples/multi-uv.c, with the deviations of STYLE.md section 7). Every outbound HTTP
 * request of tether goes through it, so no sink can ever block another.
 */
#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

typedef struct Http Http;

typedef struct HttpResult {
    CURLcode code;          /* CURLE_OK or the transport error */
    long status;            /* HTTP status, 0 when there was no response */
    const char *body;       /* response body (NUL-terminated), valid during the callback */
    size_t body_len;
    long retry_after_s;     /* Retry-After in seconds, -1 when absent */
    double total_ms;        /* time taken */
    const char *error;      /* human readable error (curl's error buffer) or "" */
    int truncated;          /* the body exceeded the cap given to http_start() */
} HttpResult;

typedef void (*HttpDoneFn)(void *ud, CURL *easy, const HttpResult *res);

int http_new(uv_loop_t *loop, Http **ret);

/*
 * http_easy_new() - an easy handle for @url with tether's defaults: total timeout @timeout_ms
 * (30 s when 0), connect timeout, no signals, User-Agent tether/<version>, http(s) only.
 */
CURL *http_easy_new(const char *url, long timeout_ms);

/*
 * http_start() - run @easy (configured by the caller: URL, method, headers, TLS) on the loop.
 * Takes ownership of @easy: it is cleaned up after @done returns. The caller must not set
 * CURLOPT_WRITEFUNCTION/WRITEDATA/PRIVATE/ERRORBUFFER. A response body beyond @max_body bytes
 * aborts the transfer (res->truncated). @done is called exactly once when 0 is returned, always
 * from the loop, never from inside http_start(). Make @easy with http_easy_new() so that it has
 * a timeout.
 * Return: 0 or a negative errno (then @done is never called and @easy is cleaned up).
 */
int http_start(Http *h, CURL *easy, size_t max_body, HttpDoneFn done, void *ud);

/*
 * HttpChunkFn - one piece of a streamed response body as it arrives (not NUL-terminated), e.g. a
 * Kubernetes watch. @easy may be queried (CURLINFO_RESPONSE_CODE). Return 0 to go on, non-zero
 * to abort the transfer (then @done sees CURLE_WRITE_ERROR).
 */
typedef int (*HttpChunkFn)(void *ud, CURL *easy, const char *data, size_t len);

/*
 * http_start_stream() - like http_start(), but the body is handed to @on_chunk as it arrives and
 * not collected: @done gets an empty body. For long-lived responses (watches) the caller sets
 * CURLOPT_TIMEOUT_MS itself (0 = none); the 30 s default of http_start() does not apply.
 */
int http_start_stream(Http *h, CURL *easy, HttpChunkFn on_chunk, HttpDoneFn done, void *ud);

/* http_cancel() - abort a started request; its @done runs with CURLE_ABORTED_BY_CALLBACK. */
void http_cancel(Http *h, CURL *easy);

/* http_pending() - requests in flight. */
size_t http_pending(const Http *h);

/*
 * http_close() - abort every request (their callbacks run with CURLE_ABORTED_BY_CALLBACK),
 * clean up the multi handle and close the handles; @done (may be NULL) runs once all are closed,
 * after @h is freed.
 */
void http_close(Http *h, void (*done)(void *ud), void *ud);
