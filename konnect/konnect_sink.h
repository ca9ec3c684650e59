/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* The Konnect sink's state, shared by konnect.c (entity sync) and nodes.c (node reporting). */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "konnect.h"
#include "konnect_int.h"
#include "mtls.h"
#include "revision.h"

#define KONNECT_BUCKETS 30

enum { ROUND_IDLE, ROUND_READING, ROUND_DIFFING, ROUND_WRITING };
/* Why a round failed: the failure_reason label of KIC's push metrics, plus parking causes. */
enum { KFAIL_NETWORK, KFAIL_CONFLICT, KFAIL_OTHER, KFAIL_REJECTED, KFAIL_N };

typedef struct KPushHist {
    uint64_t buckets[KONNECT_BUCKETS];
    uint64_t count;
    double sum;
} KPushHist;

typedef struct KMetrics {
    uint64_t push_ok, push_fail[KFAIL_N];
    KPushHist push[2];
    uint64_t rounds, rounds_ok, rounds_failed, full_reads, requests, superseded, parked;
    uint64_t retries_429, retries_5xx, retries_transport;
    uint64_t writes[32][2];
    uint64_t nodes_ok, nodes_failed;
} KMetrics;

struct Job;
struct NodeReq;

typedef struct KonnectSink {
    Sink base;
    SinkHost *host;
    uv_loop_t *loop;
    Http *http;
    Mtls *mtls; /* client certificate, key, CA; rotated without restart */
    char *address, *cp_id, *base_url, *hostname, *version;
    double period_s, node_period_s, full_resync_s, backoff_min_s, backoff_max_s;
    double request_timeout_s;
    int request_retries, concurrency;
    bool disable_consumers;

    /* Revisions: the latest-wins slot, the one a round works on, the last synced. */
    Revision *slot, *cur, *synced;
    uint64_t newest_seq, synced_seq;
    char synced_hash[65], parked_hash[65], desired_hash[65];
    bool seen_revision, partial, dataplane_ok, out_of_sync;

    /* Konnect's entities as last read or written ("kind/id" -> body); NULL: read them again. */
    json_t *state, *reading, *written, *desired;
    KOp *ops;
    size_t nops, next_op;
    int round_phase;
    bool round_failed;
    int fail_reason;
    long fail_status, fail_retry_after_s;
    char *last_error;
    uint64_t round_start_ms, last_round_ms, last_full_read_ms, backoff_until_ms, round_requests;
    double backoff_s;
    long long last_success_unix;

    struct Job *queue, *waiting, *running;
    int inflight;
    uv_timer_t round_timer, retry_timer;

    /* Node reporting (nodes.c). */
    uv_timer_t node_timer;
    json_t *gateways; /* deduplicated [{hostname, node_id, version}] */
    char instance_id[37];
    struct NodeReq *node_req; /* the request in flight */
    json_t *node_items;       /* nodes listed so far */
    json_t *node_actions;     /* [{method, path, body}] left to send */
    char *node_cursor;
    int node_phase;
    bool node_dirty;
    double node_backoff_s;
    char node_status[96];
    char node_reported[96]; /* the status last sent */

    KMetrics m;

    bool closing, in_close;
    int open_handles;
    void (*close_done)(void *ud);
    void *close_ud;
} KonnectSink;

int konnect__tls_apply(KonnectSink *k, CURL *e);
CURL *konnect__easy(KonnectSink *k, const char *method, const char *url, const char *body,
                    struct curl_slist **ret_hdrs);
void konnect__on_retry_timer(uv_timer_t *t);
void konnect__maybe_closed(KonnectSink *k);

/* nodes.c */
void konnect__nodes_init(KonnectSink *k);
void konnect__nodes_kick(KonnectSink *k);
void konnect__nodes_status_check(KonnectSink *k);
const char *konnect__node_status(KonnectSink *k);
bool konnect__nodes_busy(KonnectSink *k);
void konnect__nodes_cancel(KonnectSink *k);
void konnect__nodes_close_handles(KonnectSink *k, uv_close_cb cb);
void konnect__nodes_free(KonnectSink *k);
