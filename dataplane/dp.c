/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The data plane sink: keeps every local Kong gateway (static URLs or Gateway Discovery) on the
 * newest revision with POST /config (DB-less).
 *
 * Each gateway is independent: its own probe, its own push, its own backoff. A gateway is
 * "pending" until GET /status and GET / answer (version, router flavor), then "ready"; ready
 * gateways get the current revision at once and whenever a new one is published. /status is
 * polled every readiness interval: a failing one sends the gateway back to pending, an all-zero
 * configuration_hash means Kong restarted empty and the revision is pushed again.
 *
 * A 400 with flattened errors names the objects at fault; the host builds a fallback revision
 * without them (asked once per rejected revision) and the gateway gets that, or, failing that,
 * the last revision any gateway accepted. Transport errors, 5xx, 413 and 429 are retried per
 * gateway with exponential backoff and jitter (429 honours Retry-After).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dp.h"
#include "dp_internal.h"
#include "log.h"
#include "util.h"

#define MOD "dataplane"
#define MAX_PUSH_ANSWER (4u << 20) /* a 201 echoes the whole config: cut, the status suffices */
#define MAX_PROBE_ANSWER (256u << 10)
#define BACKOFF_BASE_MS 500.0
#define BACKOFF_MAX_MS 30000.0
#define RETRY_AFTER_MAX_S 300
#define NBUCKETS 30
#define ZERO_HASH "00000000000000000000000000000000"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

enum { GW_PENDING, GW_READY };
enum { STAGE_NORMAL, STAGE_FALLBACK, STAGE_RECOVERY };

typedef struct PushStats {
    uint64_t count[2][3];           /* [success][failure_reason: none, network, other] */
    uint64_t hist[2][NBUCKETS + 1]; /* [success][bucket], cumulative at print time */
    double sum_ms[2];
    long long size;
    int size_success;
    bool size_set;
    double last_ok_s; /* Unix seconds of the last success, 0 if none */
    long broken;
} PushStats;

typedef struct DpSink DpSink;

typedef struct Gateway {
    struct Gateway *next;
    DpSink *sink;
    char *url;  /* identity and metrics label: https://10.0.0.1:8444 */
    char *base; /* request base (host replaced by the TLS name when one is used) */
    struct curl_slist *connect_to;
    char *pod; /* ns/name of a discovered Pod */
    bool discovered, seen, removed, https;
    int state;
    bool probed; /* a probe has completed at least once */
    char *version, *flavor;
    char kong_hash[33];
    Revision *accepted; /* what the gateway runs, as far as we know */
    Revision *target;   /* what it should run */
    int stage;          /* of target */
    Revision *inflight;
    int inflight_stage;
    CURL *push_easy, *probe_easy;
    int probe_step;
    uint64_t push_start_ms;
    uv_timer_t retry;
    bool retry_armed;
    unsigned failures;
    unsigned probe_failures;
    PushStats stats[2]; /* [0] normal pushes, [1] fallback and recovery pushes */
} Gateway;

struct DpSink {
    Sink base;
    uv_loop_t *loop;
    Http *http;
    DpTls *tls;
    char *svc_ns, *svc_name, *port_names, *server_name;
    long proxy_timeout_ms, ready_interval_ms, ready_timeout_ms;
    struct curl_slist *post_headers, *get_headers;
    Gateway *gws;
    Revision *current;     /* newest published revision (the round) */
    int reported;          /* 0: round not reported, 1: reported failed, 2: reported ok */
    Revision *last_good;   /* newest revision some gateway accepted */
    Revision *fb_src, *fb; /* fallback built for fb_src (fb may be NULL: none) */
    bool fb_reported;
    uv_timer_t tick;
    int open_handles;
    bool closing;
    bool discovered_once;
    void (*close_done)(void *ud);
    void *close_ud;
};

static const SinkOps dp_ops;
static void gw_kick(Gateway *gw);
static void gw_probe(Gateway *gw);
static void check_round(DpSink *s);

static bool same_rev(const Revision *a, const Revision *b)
{
    return a && b && (a == b || strcmp(revision_hash(a), revision_hash(b)) == 0);
}

static void set_rev(Revision **slot, Revision *r)
{
    Revision *old = *slot;
    *slot = revision_ref(r);
    revision_unref(old);
}

/* ---- sink lifetime ------------------------------------------------------------------------- */


/* The settings copied in dp_sink_new(), and the sink itself. */
static void free_sink_settings(DpSink *s)
{
    curl_slist_free_all(s->post_headers);
    curl_slist_free_all(s->get_headers);
    free(s->svc_ns);
    free(s->svc_name);
    free(s->port_names);
    free(s->server_name);
    free(s);
}

static void maybe_done(DpSink *s)
{
    if (!s->closing || s->open_handles > 0)
        return;
    void (*done)(void *) = s->close_done;
    void *ud = s->close_ud;
    revision_unref(s->current);
    revision_unref(s->last_good);
    revision_unref(s->fb_src);
    revision_unref(s->fb);
    free_sink_settings(s);
    if (done)
        done(ud);
}

static void on_handle_closed(uv_handle_t *h)
{
    DpSink *s = h->data;
    if (h->type == UV_TIMER && h != (uv_handle_t *)&s->tick) {
        Gateway *gw = container_of((uv_timer_t *)h, Gateway, retry);
        revision_unref(gw->accepted);
        revision_unref(gw->target);
        revision_unref(gw->inflight);
        curl_slist_free_all(gw->connect_to);
        free(gw->url);
        free(gw->base);
        free(gw->pod);
        free(gw->version);
        free(gw->flavor);
        free(gw);
    }
    s->open_handles--;
    maybe_done(s);
}

/* ---- gateways ------------------------------------------------------------------------------ */

static void gw_init_timer(Gateway *gw)
{
    uv_timer_init(gw->sink->loop, &gw->retry);
    gw->retry.data = gw->sink;
    gw->sink->open_handles++;
}

/* gw_new() - allocate and link a gateway; its timer is initialised by gw_init_timer(). */
static int gw_new(DpSink *s, const char *url, const char *server_name, const char *pod,
                  bool discovered, Gateway **ret)
{
    Gateway *gw = calloc(1, sizeof(*gw));
    if (!gw)
        return -ENOMEM;
    gw->sink = s;
    gw->discovered = discovered;
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/')
        ul--;
    gw->url = strndup(url, ul);
    gw->pod = pod ? strdup(pod) : NULL;
    gw->https = strncasecmp(url, "https://", 8) == 0;
    int r = gw->url ? 0 : -ENOMEM;
    if (r == 0 && gw->https && server_name && *server_name) {
        char *ct = NULL;
        r = dp__connect_to(gw->url, server_name, &gw->base, &ct);
        if (r == 0) {
            gw->connect_to = curl_slist_append(NULL, ct);
            if (!gw->connect_to)
                r = -ENOMEM;
        }
        free(ct);
    } else if (r == 0) {
        gw->base = strdup(gw->url);
    }
    if (r == 0 && (!gw->url || !gw->base || (pod && !gw->pod)))
        r = -ENOMEM;
    if (r < 0) {
        curl_slist_free_all(gw->connect_to);
        free(gw->url);
        free(gw->base);
        free(gw->pod);
        free(gw);
        return r;
    }
    gw->target = revision_ref(s->current);
    gw->next = s->gws;
    s->gws = gw;
    *ret = gw;
    return 0;
}

/* gw_remove() - drop at once: abort its requests (their callbacks run now), free on close. */
static void gw_remove(Gateway *gw)
{
    DpSink *s = gw->sink;
    gw->removed = true;
    for (Gateway **p = &s->gws; *p; p = &(*p)->next) {
        if (*p == gw) {
            *p = gw->next;
            break;
        }
    }
    if (gw->push_easy)
        http_cancel(s->http, gw->push_easy);
    if (gw->probe_easy)
        http_cancel(s->http, gw->probe_easy);
    uv_timer_stop(&gw->retry);
    uv_close((uv_handle_t *)&gw->retry, on_handle_closed);
}

static CURL *gw_easy(Gateway *gw, const char *path, long timeout_ms, struct curl_slist *headers)
{
    DpSink *s = gw->sink;
    char *url = util_strdup_printf("%s%s", gw->base, path);
    if (!url)
        return NULL;
    CURL *easy = http_easy_new(url, timeout_ms);
    free(url);
    if (!easy)
        return NULL;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (gw->connect_to)
        curl_easy_setopt(easy, CURLOPT_CONNECT_TO, gw->connect_to);
    if (gw->https && dp__tls_apply(s->tls, easy) < 0) {
        curl_easy_cleanup(easy);
        return NULL;
    }
    return easy;
}

/* ---- metrics ------------------------------------------------------------------------------- */

static double bucket_le(int i)
{
    return 100.0 * pow(1.33, i);
}

static void record(Gateway *gw, int stage, bool ok, int reason, double ms, size_t size)
{
    PushStats *st = &gw->stats[stage != STAGE_NORMAL];
    st->count[ok][ok ? 0 : reason]++;
    int b = 0;
    while (b < NBUCKETS && ms > bucket_le(b))
        b++;
    st->hist[ok][b]++;
    st->sum_ms[ok] += ms;
    st->size = (long long)size;
    st->size_success = ok;
    st->size_set = true;
    if (ok) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        st->last_ok_s = (double)ts.tv_sec + ts.tv_nsec / 1e9;
        st->broken = 0;
    }
}

/* ---- pushing ------------------------------------------------------------------------------- */

static const char *stage_name(int stage)
{
    return stage == STAGE_FALLBACK ? "fallback" : stage == STAGE_RECOVERY ? "last-good" : "current";
}

static void on_retry(uv_timer_t *t)
{
    Gateway *gw = container_of(t, Gateway, retry);
    gw->retry_armed = false;
    if (gw->state == GW_PENDING)
        gw_probe(gw);
    else
        gw_kick(gw);
}

/*
 * schedule_probe() - a pending gateway is probed again sooner than the readiness interval,
 * backing off from 500 ms up to it: a gateway that starts a moment after tether is configured
 * a moment later, not one interval later.
 */
static void schedule_probe(Gateway *gw)
{
    DpSink *s = gw->sink;
    if (gw->retry_armed || gw->removed || s->closing)
        return;
    unsigned n = gw->probe_failures < 16 ? gw->probe_failures : 16;
    gw->probe_failures++;
    double ms = BACKOFF_BASE_MS * pow(2.0, n);
    if (ms > (double)s->ready_interval_ms)
        return; /* the periodic tick takes over */
    ms *= 0.75 + 0.5 * drand48();
    gw->retry_armed = true;
    uv_timer_start(&gw->retry, on_retry, (uint64_t)ms, 0);
}

static void schedule_retry(Gateway *gw, long retry_after_s)
{
    double ms;
    gw->failures++;
    if (retry_after_s > 0) {
        if (retry_after_s > RETRY_AFTER_MAX_S)
            retry_after_s = RETRY_AFTER_MAX_S;
        ms = retry_after_s * 1000.0 * (1.0 + 0.1 * drand48());
    } else {
        unsigned n = gw->failures > 16 ? 16 : gw->failures;
        ms = BACKOFF_BASE_MS * pow(2.0, n - 1);
        if (ms > BACKOFF_MAX_MS)
            ms = BACKOFF_MAX_MS;
        /* Jitter so that gateways that failed together do not retry together. */
        ms *= 0.5 + 0.5 * drand48();
    }
    gw->retry_armed = true;
    uv_timer_start(&gw->retry, on_retry, (uint64_t)ms, 0);
    log_event(LOG_INFO, MOD, "retrying push later", "{s:s, s:I, s:I}", "gateway", gw->url,
              "attempt", (json_int_t)gw->failures, "delay_ms", (json_int_t)ms);
}

static Revision *get_fallback(DpSink *s, Revision *rev, json_t *broken)
{
    if (same_rev(s->fb_src, rev))
        return s->fb;
    set_rev(&s->fb_src, rev);
    s->fb = revision_unref(s->fb);
    s->fb_reported = false;
    if (s->base.host && s->base.host->rejected)
        s->fb = s->base.host->rejected(s->base.host, &s->base, rev, broken);
    return s->fb;
}

/* recover() - @rev was rejected and no fallback applies: go back to the last good revision. */
static void recover(Gateway *gw, Revision *rev)
{
    DpSink *s = gw->sink;
    Revision *lg = s->last_good;
    if (!lg || same_rev(lg, rev)) {
        log_event(LOG_ERROR, MOD, "no configuration to fall back to; the gateway keeps its own",
                  "{s:s}", "gateway", gw->url);
        return;
    }
    set_rev(&gw->target, lg);
    gw->stage = STAGE_RECOVERY;
    gw_kick(gw);
}

/* ascii_snippet() - the start of an answer body, printable ASCII only (a log never gets invalid
 * UTF-8 from a cut multi-byte character). Returns its length. */
static size_t ascii_snippet(const HttpResult *res, char *out, size_t cap)
{
    size_t n = res->body_len < cap - 1 ? res->body_len : cap - 1;
    for (size_t j = 0; j < n; j++) {
        unsigned char c = (unsigned char)res->body[j];
        out[j] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
    return n;
}

static void log_rejection(Gateway *gw, Revision *rev, int stage, json_t *broken, size_t unmapped,
                          const HttpResult *res)
{
    json_t *objs = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(broken, i, b)
    {
        if (i >= 50)
            break;
        json_array_append_new(
            objs, json_pack("{s:O, s:O, s:O, s:O}", "kind", json_object_get(b, "kind"), "namespace",
                            json_object_get(b, "namespace"), "name", json_object_get(b, "name"),
                            "message", json_object_get(b, "message")));
    }
    char snippet[512];
    size_t n = ascii_snippet(res, snippet, sizeof(snippet));
    log_event(LOG_ERROR, MOD, "gateway rejected the configuration",
              "{s:s, s:s, s:s, s:I, s:I, s:o, s:s%}", "gateway", gw->url, "revision",
              revision_hash(rev), "stage", stage_name(stage), "broken",
              (json_int_t)json_array_size(broken), "unmapped_entities", (json_int_t)unmapped,
              "objects", objs, "body", snippet, n);
}

static void on_push_done(void *ud, CURL *easy, const HttpResult *res)
{
    Gateway *gw = ud;
    DpSink *s = gw->sink;
    Revision *rev = gw->inflight;
    int stage = gw->inflight_stage;
    gw->inflight = NULL;
    gw->push_easy = NULL;
    if (gw->removed || s->closing || res->code == CURLE_ABORTED_BY_CALLBACK) {
        revision_unref(rev);
        return;
    }
    size_t size = 0;
    (void)revision_json(rev, &size);
    double ms = (double)(util_now_ms() - gw->push_start_ms);
    bool answered = res->code == CURLE_OK || (res->truncated && res->status > 0);
    long st = answered ? res->status : 0;

    if (st >= 200 && st < 400) {
        record(gw, stage, true, 0, ms, size);
        gw->failures = 0;
        set_rev(&gw->accepted, rev);
        set_rev(&s->last_good, rev);
        log_event(LOG_INFO, MOD, "configuration pushed", "{s:s, s:s, s:s, s:I, s:I, s:i}",
                  "gateway", gw->url, "revision", revision_hash(rev), "stage", stage_name(stage),
                  "bytes", (json_int_t)size, "ms", (json_int_t)ms, "status", (int)st);
        if (stage == STAGE_FALLBACK && rev == s->fb && !s->fb_reported && s->base.host &&
            s->base.host->applied) {
            s->fb_reported = true;
            s->base.host->applied(s->base.host, &s->base, rev, 1);
        }
        revision_unref(rev);
        gw_kick(gw); /* a newer revision may have been published meanwhile */
        check_round(s);
        return;
    }

    if (st == 400) {
        size_t unmapped = 0;
        json_t *broken =
            res->truncated ? NULL : dp__flattened_errors(res->body, res->body_len, &unmapped);
        record(gw, stage, false, 2, ms, size);
        gw->stats[stage != STAGE_NORMAL].broken = (long)json_array_size(broken);
        gw->failures = 0;
        log_rejection(gw, rev, stage, broken, unmapped, res);
        Revision *fb = NULL;
        if (stage == STAGE_NORMAL && json_array_size(broken) > 0 && same_rev(gw->target, rev))
            fb = get_fallback(s, rev, broken);
        json_decref(broken);
        if (stage == STAGE_RECOVERY) {
            log_event(LOG_ERROR, MOD,
                      "gateway rejected the last good configuration too; it keeps "
                      "running its own",
                      "{s:s}", "gateway", gw->url);
        } else if (fb && same_rev(gw->target, rev)) {
            /* Pushed even when equal to @rev (as KIC does): the objects Kong named may not be
             * in the configuration at all, and then the same bytes are the right answer. */
            set_rev(&gw->target, fb);
            gw->stage = STAGE_FALLBACK;
            gw_kick(gw);
        } else if (same_rev(gw->target, rev)) {
            recover(gw, rev);
        } else {
            gw_kick(gw); /* a newer revision is waiting */
        }
        revision_unref(rev);
        check_round(s);
        return;
    }

    /* Everything else is retried on this gateway alone. */
    int reason = answered ? 2 : 1;
    record(gw, stage, false, reason, ms, size);
    if (!answered) {
        log_event(LOG_WARN, MOD,
                  res->code == CURLE_OPERATION_TIMEDOUT
                      ? "push timed out; consider increasing --proxy-timeout-seconds"
                      : "push failed",
                  "{s:s, s:s, s:s}", "gateway", gw->url, "revision", revision_hash(rev), "err",
                  res->error);
    } else if (st == 413) {
        log_event(
            LOG_ERROR, MOD,
            "gateway refused the configuration as too large: raise Kong's "
            "nginx_admin_client_max_body_size and nginx_admin_client_body_buffer_size "
            "(KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE, KONG_NGINX_ADMIN_CLIENT_BODY_BUFFER_SIZE)"
            ", or lmdb_map_size (KONG_LMDB_MAP_SIZE) if it does not fit in LMDB",
            "{s:s, s:I}", "gateway", gw->url, "bytes", (json_int_t)size);
    } else {
        char snippet[300];
        size_t n = ascii_snippet(res, snippet, sizeof(snippet));
        log_event(LOG_WARN, MOD, "push failed", "{s:s, s:s, s:i, s:s%}", "gateway", gw->url,
                  "revision", revision_hash(rev), "status", (int)st, "body", snippet, n);
    }
    revision_unref(rev);
    schedule_retry(gw, st == 429 ? res->retry_after_s : -1);
    check_round(s);
}

static void gw_push(Gateway *gw, Revision *rev, int stage)
{
    DpSink *s = gw->sink;
    size_t len = 0;
    const char *body = revision_json(rev, &len);
    CURL *easy =
        gw_easy(gw, "/config?check_hash=1&flatten_errors=1", s->proxy_timeout_ms, s->post_headers);
    if (!easy) {
        log_event(LOG_ERROR, MOD, "cannot create a request", "{s:s}", "gateway", gw->url);
        schedule_retry(gw, -1);
        return;
    }
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    gw->inflight = revision_ref(rev);
    gw->inflight_stage = stage;
    gw->push_easy = easy;
    gw->push_start_ms = util_now_ms();
    int r = http_start(s->http, easy, MAX_PUSH_ANSWER, on_push_done, gw);
    if (r < 0) {
        gw->push_easy = NULL;
        gw->inflight = revision_unref(gw->inflight);
        if (r != -ECANCELED)
            schedule_retry(gw, -1);
    }
}

/* gw_kick() - push the gateway's target unless it runs it already or is busy or backing off. */
static void gw_kick(Gateway *gw)
{
    DpSink *s = gw->sink;
    if (gw->removed || s->closing || gw->state != GW_READY || gw->push_easy || gw->retry_armed ||
        !gw->target)
        return;
    if (same_rev(gw->accepted, gw->target)) {
        log_event(LOG_DEBUG, MOD, "gateway already runs this configuration", "{s:s, s:s}",
                  "gateway", gw->url, "revision", revision_hash(gw->target));
        return;
    }
    gw_push(gw, gw->target, gw->stage);
}

/*
 * check_round() - report the current revision to the host once every ready gateway has an
 * answer for it (ok when all of them run it); report again when a failed round later succeeds.
 */
static void check_round(DpSink *s)
{
    if (!s->current || s->closing || s->reported == 2)
        return;
    /* With discovery, no answer before the first list of EndpointSlices: "no gateway" would
     * only mean "not looked yet". */
    if (s->svc_name && !s->discovered_once)
        return;
    int ready = 0;
    bool ok = true;
    for (Gateway *gw = s->gws; gw; gw = gw->next) {
        if (gw->state != GW_READY) {
            if (!gw->probed)
                return; /* its first probe is still out: it may become ready */
            continue;
        }
        ready++;
        if (gw->push_easy)
            return;
        if (!same_rev(gw->accepted, s->current))
            ok = false;
    }
    if (ready == 0)
        ok = false;
    if (!ok && s->reported)
        return;
    s->reported = ok ? 2 : 1;
    if (s->base.host && s->base.host->applied) {
        Revision *r = revision_ref(s->current);
        s->base.host->applied(s->base.host, &s->base, r, ok);
        revision_unref(r);
    }
}

/* ---- probing ------------------------------------------------------------------------------- */

static void probe_failed(Gateway *gw, const HttpResult *res, const char *what)
{
    if (gw->state == GW_READY)
        log_event(LOG_WARN, MOD, "gateway not ready", "{s:s, s:s, s:i, s:s}", "gateway", gw->url,
                  "check", what, "status", (int)res->status, "err", res->error);
    else
        log_event(LOG_DEBUG, MOD, "gateway still pending", "{s:s, s:s, s:i, s:s}", "gateway",
                  gw->url, "check", what, "status", (int)res->status, "err", res->error);
    gw->state = GW_PENDING;
    gw->probed = true;
    schedule_probe(gw);
    check_round(gw->sink);
}

/* version_below() - whether "3.9.1" (or "3.4.0.0-enterprise") is below @maj.@min.@pat. */
static bool version_below(const char *v, long maj, long min, long pat)
{
    long want[3] = {maj, min, pat};
    const char *p = v;
    for (int i = 0; i < 3; i++) {
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p)
            return false; /* not a version we can read: do not warn */
        if (n != want[i])
            return n < want[i];
        p = *end == '.' ? end + 1 : end;
    }
    return false;
}

static void on_probe_done(void *ud, CURL *easy, const HttpResult *res)
{
    Gateway *gw = ud;
    DpSink *s = gw->sink;
    gw->probe_easy = NULL;
    if (gw->removed || s->closing || res->code == CURLE_ABORTED_BY_CALLBACK)
        return;
    if (res->code != CURLE_OK || res->status != 200) {
        probe_failed(gw, res, gw->probe_step == 0 ? "/status" : "/");
        return;
    }
    json_t *doc = json_loadb(res->body, res->body_len, 0, NULL);
    if (gw->probe_step == 0) {
        const char *h = json_string_value(json_object_get(doc, "configuration_hash"));
        snprintf(gw->kong_hash, sizeof(gw->kong_hash), "%s", h ? h : "");
        log_event(LOG_DEBUG, MOD, "gateway status", "{s:s, s:s}", "gateway", gw->url,
                  "configuration_hash", gw->kong_hash);
        json_decref(doc);
        if (gw->state == GW_PENDING) {
            gw->probe_step = 1;
            CURL *e = gw_easy(gw, "/", s->ready_timeout_ms, s->get_headers);
            if (e && http_start(s->http, e, MAX_PROBE_ANSWER, on_probe_done, gw) == 0) {
                gw->probe_easy = e;
            } else {
                gw->probed = true;
                schedule_probe(gw);
                check_round(s);
            }
            return;
        }
        /* Kong answers the all-zero hash when it runs no configuration: it restarted. */
        if (strcmp(gw->kong_hash, ZERO_HASH) == 0 && gw->accepted && !gw->push_easy &&
            !revision_is_empty(gw->accepted)) {
            log_event(LOG_WARN, MOD, "gateway lost its configuration (restarted?); pushing again",
                      "{s:s}", "gateway", gw->url);
            gw->accepted = revision_unref(gw->accepted);
            gw_kick(gw);
            check_round(s);
        }
        return;
    }
    const char *ver = json_string_value(json_object_get(doc, "version"));
    const char *flavor =
        json_string_value(json_object_get(json_object_get(doc, "configuration"), "router_flavor"));
    free(gw->version);
    free(gw->flavor);
    gw->version = strdup(ver ? ver : "");
    gw->flavor = strdup(flavor ? flavor : "traditional_compatible");
    json_decref(doc);
    gw->state = GW_READY;
    gw->probed = true;
    gw->failures = 0;
    gw->probe_failures = 0;
    if (gw->retry_armed) { /* a probe retry: the gateway gets its push now instead */
        uv_timer_stop(&gw->retry);
        gw->retry_armed = false;
    }
    /* Kong kept nothing we know of across a pending period: trust its hash only if not zero. */
    if (strcmp(gw->kong_hash, ZERO_HASH) == 0)
        gw->accepted = revision_unref(gw->accepted);
    log_event(LOG_INFO, MOD, "gateway ready", "{s:s, s:s, s:s, s:s?}", "gateway", gw->url,
              "version", gw->version, "router_flavor", gw->flavor, "pod", gw->pod);
    for (Gateway *o = s->gws; o; o = o->next)
        if (o != gw && o->state == GW_READY && o->flavor && strcmp(o->flavor, gw->flavor) != 0) {
            log_event(LOG_WARN, MOD,
                      "gateways disagree on the router flavor; routes are "
                      "translated for one of them only",
                      "{s:s, s:s, s:s, s:s}", "gateway", gw->url, "router_flavor", gw->flavor,
                      "other", o->url, "other_flavor", o->flavor);
            break;
        }
    if (version_below(gw->version, 3, 4, 1))
        log_event(LOG_WARN, MOD,
                  "gateway runs a Kong older than 3.4.1, which KIC 3 does not "
                  "support; configurations may be refused",
                  "{s:s, s:s}", "gateway", gw->url, "version", gw->version);
    gw_kick(gw);
    check_round(s);
}

static void gw_probe(Gateway *gw)
{
    DpSink *s = gw->sink;
    if (gw->probe_easy || gw->removed || s->closing)
        return;
    gw->probe_step = 0;
    CURL *e = gw_easy(gw, "/status", s->ready_timeout_ms, s->get_headers);
    if (e && http_start(s->http, e, MAX_PROBE_ANSWER, on_probe_done, gw) == 0) {
        gw->probe_easy = e;
        return;
    }
    /* Out of memory or the HTTP client closing: count it as a failed probe. */
    gw->probed = true;
    schedule_probe(gw);
}

static void on_tick(uv_timer_t *t)
{
    DpSink *s = t->data;
    for (Gateway *gw = s->gws; gw; gw = gw->next)
        gw_probe(gw);
}

/* ---- SinkOps ------------------------------------------------------------------------------- */

static void dp_publish(Sink *sink, Revision *rev)
{
    DpSink *s = (DpSink *)sink;
    if (s->closing || !rev)
        return;
    bool same = same_rev(s->current, rev);
    set_rev(&s->current, rev);
    s->reported = 0;
    if (same) {
        /* Nothing changed: gateways on a fallback keep it rather than being refused again. */
        check_round(s);
        return;
    }
    for (Gateway *gw = s->gws; gw; gw = gw->next) {
        set_rev(&gw->target, rev);
        gw->stage = STAGE_NORMAL;
    }
    for (Gateway *gw = s->gws; gw; gw = gw->next)
        gw_kick(gw);
    check_round(s);
}

static void on_tls_closed(void *ud)
{
    DpSink *s = ud;
    s->tls = NULL;
    s->open_handles--;
    maybe_done(s);
}

static void dp_close(Sink *sink, void (*done)(void *ud), void *ud)
{
    DpSink *s = (DpSink *)sink;
    s->closing = true;
    s->close_done = done;
    s->close_ud = ud;
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, on_handle_closed);
    while (s->gws)
        gw_remove(s->gws);
    s->open_handles++;
    dp__tls_close(s->tls, on_tls_closed, s);
}

static json_t *gateway_json(Gateway *gw)
{
    return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s}", "url", gw->url, "state",
                     gw->state == GW_READY ? "ready" : "pending", "hash",
                     gw->accepted ? revision_hash(gw->accepted) : NULL, "version", gw->version,
                     "hostname", gw->pod, "router_flavor", gw->flavor, "kong_hash", gw->kong_hash);
}

json_t *dp_sink_gateways(Sink *sink)
{
    DpSink *s = (DpSink *)sink;
    json_t *a = json_array();
    for (Gateway *gw = s->gws; gw && a; gw = gw->next)
        json_array_append_new(a, gateway_json(gw));
    return a;
}

static json_t *dp_status(Sink *sink)
{
    DpSink *s = (DpSink *)sink;
    int ready = 0, pending = 0;
    for (Gateway *gw = s->gws; gw; gw = gw->next)
        gw->state == GW_READY ? ready++ : pending++;
    return json_pack("{s:s, s:i, s:i, s:s?, s:s?, s:o*}", "kind", "dataplane", "ready", ready,
                     "pending", pending, "revision", s->current ? revision_hash(s->current) : NULL,
                     "last_good", s->last_good ? revision_hash(s->last_good) : NULL, "gateways",
                     dp_sink_gateways(sink));
}

static const SinkOps dp_ops = {
    .kind = "dataplane",
    .publish = dp_publish,
    .close = dp_close,
    .status = dp_status,
};

const char *dp_router_flavor(Sink *sink)
{
    DpSink *s = (DpSink *)sink;
    const char *any = NULL;
    for (Gateway *gw = s->gws; gw; gw = gw->next) {
        if (gw->flavor && gw->state == GW_READY)
            return gw->flavor;
        if (gw->flavor && !any)
            any = gw->flavor;
    }
    return any;
}

void dp_sink_discovered(Sink *sink, json_t *slices)
{
    DpSink *s = (DpSink *)sink;
    if (s->closing)
        return;
    json_t *found = dp__discover(slices, s->svc_ns, s->svc_name, s->port_names);
    if (!found) {
        log_error(MOD, "out of memory reading EndpointSlices");
        return;
    }
    s->discovered_once = true;
    for (Gateway *gw = s->gws; gw; gw = gw->next)
        gw->seen = !gw->discovered;
    size_t i;
    json_t *e;
    json_array_foreach(found, i, e)
    {
        const char *url = json_string_value(json_object_get(e, "url"));
        Gateway *gw;
        for (gw = s->gws; gw; gw = gw->next)
            if (gw->discovered && strcmp(gw->url, url) == 0)
                break;
        if (gw) {
            gw->seen = true;
            continue;
        }
        if (gw_new(s, url, json_string_value(json_object_get(e, "server_name")),
                   json_string_value(json_object_get(e, "pod")), true, &gw) < 0) {
            log_error(MOD, "out of memory adding a gateway");
            continue;
        }
        gw_init_timer(gw);
        gw->seen = true;
        log_event(LOG_INFO, MOD, "gateway discovered", "{s:s, s:s?}", "gateway", gw->url, "pod",
                  gw->pod);
        gw_probe(gw); /* at once: a new gateway gets the current revision without a tick */
    }
    json_decref(found);
    Gateway *next;
    for (Gateway *gw = s->gws; gw; gw = next) {
        next = gw->next;
        if (!gw->seen) {
            log_event(LOG_INFO, MOD, "gateway gone", "{s:s}", "gateway", gw->url);
            gw_remove(gw);
        }
    }
    check_round(s);
}

/* ---- metrics text -------------------------------------------------------------------------- */

/*
 * Prometheus text groups every line of one metric family together, so the output walks the
 * families and, inside each, the gateways. Fallback and last-good pushes go to KIC's
 * ingress_controller_fallback_configuration_push_* families.
 */
enum { FAM_COUNT, FAM_DURATION, FAM_SIZE, FAM_LAST, FAM_BROKEN, NFAM };

static void family_header(Buf *out, const char *name, const char *type, const char *help)
{
    (void)buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void family_lines(Gateway *gw, Buf *out, const char *p, int fb, int fam)
{
    PushStats *st = &gw->stats[fb];
    static const char *const reasons[3] = {"", "network", "other"};
    switch (fam) {
    case FAM_COUNT:
        for (int ok = 1; ok >= 0; ok--)
            for (int r = 0; r < 3; r++)
                if (st->count[ok][r])
                    (void)buf_printf(out,
                                     "%s_count{success=\"%s\",protocol=\"db-less\","
                                     "failure_reason=\"%s\",dataplane=\"%s\"} %llu\n",
                                     p, ok ? "true" : "false", reasons[r], gw->url,
                                     (unsigned long long)st->count[ok][r]);
        break;
    case FAM_DURATION:
        for (int ok = 1; ok >= 0; ok--) {
            uint64_t total = 0, cum = 0;
            for (int b = 0; b <= NBUCKETS; b++)
                total += st->hist[ok][b];
            if (!total)
                continue;
            const char *sc = ok ? "true" : "false";
            for (int b = 0; b < NBUCKETS; b++) {
                cum += st->hist[ok][b];
                (void)buf_printf(
                    out,
                    "%s_duration_milliseconds_bucket{success=\"%s\",protocol=\"db-less\","
                    "dataplane=\"%s\",le=\"%.6g\"} %llu\n",
                    p, sc, gw->url, bucket_le(b), (unsigned long long)cum);
            }
            (void)buf_printf(out,
                             "%s_duration_milliseconds_bucket{success=\"%s\",protocol=\"db-less\","
                             "dataplane=\"%s\",le=\"+Inf\"} %llu\n"
                             "%s_duration_milliseconds_sum{success=\"%s\",protocol=\"db-less\","
                             "dataplane=\"%s\"} %.3f\n"
                             "%s_duration_milliseconds_count{success=\"%s\",protocol=\"db-less\","
                             "dataplane=\"%s\"} %llu\n",
                             p, sc, gw->url, (unsigned long long)total, p, sc, gw->url,
                             st->sum_ms[ok], p, sc, gw->url, (unsigned long long)total);
        }
        break;
    case FAM_SIZE:
        if (st->size_set)
            (void)buf_printf(out,
                             "%s_size{dataplane=\"%s\",protocol=\"db-less\",success=\"%s\"} %lld\n",
                             p, gw->url, st->size_success ? "true" : "false", st->size);
        break;
    case FAM_LAST:
        if (st->last_ok_s > 0)
            (void)buf_printf(out, "%s_last%s{dataplane=\"%s\"} %.3f\n", p, fb ? "" : "_successful",
                             gw->url, st->last_ok_s);
        break;
    case FAM_BROKEN:
        (void)buf_printf(out, "%s_broken_resource_count{dataplane=\"%s\"} %ld\n", p, gw->url,
                         st->broken);
        break;
    }
}

void dp_sink_metrics(Sink *sink, Buf *out)
{
    DpSink *s = (DpSink *)sink;
    static const char *const fams[NFAM][3] = {
        {"_count", "counter", "Count of successful/failed configuration pushes to Kong."},
        {"_duration_milliseconds", "histogram",
         "How long it took to push the configuration to Kong, in milliseconds."},
        {"_size", "gauge", "Size of the configuration pushed to Kong, in bytes."},
        {"_last", "gauge", "Time of the last successful configuration push (Unix seconds)."},
        {"_broken_resource_count", "gauge", "Number of resources Kong rejected in the last push."},
    };
    int ready = 0, pending = 0;
    bool any_fb = false;
    for (Gateway *gw = s->gws; gw; gw = gw->next) {
        gw->state == GW_READY ? ready++ : pending++;
        for (int ok = 0; ok < 2; ok++)
            for (int r = 0; r < 3; r++)
                any_fb |= gw->stats[1].count[ok][r] != 0;
    }
    for (int fb = 0; fb <= (any_fb ? 1 : 0); fb++) {
        const char *p = fb ? "ingress_controller_fallback_configuration_push"
                           : "ingress_controller_configuration_push";
        for (int fam = 0; fam < NFAM; fam++) {
            char name[128];
            snprintf(name, sizeof(name), "%s%s%s", p, fams[fam][0],
                     fam == FAM_LAST && !fb ? "_successful" : "");
            family_header(out, name, fams[fam][1], fams[fam][2]);
            for (Gateway *gw = s->gws; gw; gw = gw->next)
                family_lines(gw, out, p, fb, fam);
        }
    }
    (void)buf_printf(
        out,
        "# HELP tether_dataplane_gateways Kong gateways known to the data plane sink.\n"
        "# TYPE tether_dataplane_gateways gauge\n"
        "tether_dataplane_gateways{state=\"ready\"} %d\n"
        "tether_dataplane_gateways{state=\"pending\"} %d\n",
        ready, pending);
}

/* ---- construction -------------------------------------------------------------------------- */

static struct curl_slist *headers_new(const DpConfig *cfg, const char *token, bool post, int *err)
{
    struct curl_slist *l = NULL, *n;
#define ADD(h)                                                                                     \
    do {                                                                                           \
        n = curl_slist_append(l, (h));                                                             \
        if (!n)                                                                                    \
            goto fail;                                                                             \
        l = n;                                                                                     \
    } while (0)
    if (post) {
        ADD("Content-Type: application/json");
        ADD("Expect:"); /* no 100-continue round trip before a large body */
    }
    for (const char *const *h = cfg->headers; h && *h; h++) {
        if (!strchr(*h, ':')) {
            *err = -EINVAL;
            goto fail;
        }
        ADD(*h);
    }
    if (token) {
        char *t = util_strdup_printf("Kong-Admin-Token: %s", token);
        if (!t)
            goto fail;
        n = curl_slist_append(l, t);
        memset(t, 0, strlen(t));
        free(t);
        if (!n)
            goto fail;
        l = n;
    }
#undef ADD
    return l;
fail:
    if (!*err)
        *err = -ENOMEM;
    curl_slist_free_all(l);
    return NULL;
}

int dp_sink_new(uv_loop_t *loop, Http *http, const DpConfig *cfg, SinkHost *host, Sink **ret,
                char **ret_err)
{
    int r = 0;
    char *token = NULL;
    DpSink *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->base.ops = &dp_ops;
    s->base.host = host;
    s->loop = loop;
    s->http = http;
    s->proxy_timeout_ms = (long)((cfg->proxy_timeout_s > 0 ? cfg->proxy_timeout_s : 30) * 1000);
    s->ready_interval_ms =
        (long)((cfg->readiness_interval_s > 0 ? cfg->readiness_interval_s : 10) * 1000);
    s->ready_timeout_ms =
        (long)((cfg->readiness_timeout_s > 0 ? cfg->readiness_timeout_s : 5) * 1000);
    s->port_names = strdup(cfg->admin_svc_port_names && *cfg->admin_svc_port_names
                               ? cfg->admin_svc_port_names
                               : "admin-tls,kong-admin-tls");
    if (!s->port_names) {
        r = -ENOMEM;
        goto fail;
    }
    bool have_urls = cfg->admin_urls && cfg->admin_urls[0];
    if (cfg->admin_svc && *cfg->admin_svc) {
        const char *slash = strchr(cfg->admin_svc, '/');
        if (have_urls) {
            *ret_err = strdup("can't set both --kong-admin-svc and --kong-admin-url");
            r = -EINVAL;
            goto fail;
        }
        if (!slash || slash == cfg->admin_svc || !slash[1] || strchr(slash + 1, '/')) {
            *ret_err =
                util_strdup_printf("--kong-admin-svc %s: expected NAMESPACE/NAME", cfg->admin_svc);
            r = -EINVAL;
            goto fail;
        }
        s->svc_ns = strndup(cfg->admin_svc, (size_t)(slash - cfg->admin_svc));
        s->svc_name = strdup(slash + 1);
        if (!s->svc_ns || !s->svc_name) {
            r = -ENOMEM;
            goto fail;
        }
    }
    if (cfg->readiness_timeout_s > 0 && cfg->readiness_interval_s > 0 &&
        cfg->readiness_timeout_s >= cfg->readiness_interval_s) {
        *ret_err = strdup("--gateway-discovery-readiness-check-timeout must be less than "
                          "--gateway-discovery-readiness-check-interval");
        r = -EINVAL;
        goto fail;
    }
    if (cfg->token && *cfg->token && cfg->token_file && *cfg->token_file) {
        *ret_err = strdup("--kong-admin-token and --kong-admin-token-file are mutually exclusive");
        r = -EINVAL;
        goto fail;
    }
    if (cfg->token && *cfg->token) {
        token = strdup(cfg->token);
    } else if (cfg->token_file && *cfg->token_file) {
        size_t len;
        r = util_read_file(cfg->token_file, 64 * 1024, &token, &len);
        if (r < 0) {
            *ret_err =
                util_strdup_printf("--kong-admin-token-file %s: %s", cfg->token_file, strerror(-r));
            goto fail;
        }
        while (len > 0 &&
               (token[len - 1] == '\n' || token[len - 1] == '\r' || token[len - 1] == ' '))
            token[--len] = '\0';
    }
    if (token && strpbrk(token, "\r\n")) {
        *ret_err = strdup("--kong-admin-token: must be a single line");
        r = -EINVAL;
        goto fail;
    }
    s->post_headers = headers_new(cfg, token, true, &r);
    if (s->post_headers)
        s->get_headers = headers_new(cfg, token, false, &r);
    if (r < 0 || !s->post_headers || (!s->get_headers && (cfg->headers || token))) {
        if (r == -EINVAL)
            *ret_err = strdup("--kong-admin-header: expected NAME:VALUE");
        if (r == 0)
            r = -ENOMEM;
        goto fail;
    }
    if (cfg->tls_server_name && *cfg->tls_server_name) {
        s->server_name = strdup(cfg->tls_server_name);
        if (!s->server_name) {
            r = -ENOMEM;
            goto fail;
        }
    }
    for (const char *const *u = have_urls ? cfg->admin_urls : NULL; u && *u; u++) {
        Gateway *gw;
        if (strncasecmp(*u, "http://", 7) != 0 && strncasecmp(*u, "https://", 8) != 0) {
            *ret_err = util_strdup_printf("--kong-admin-url %s: expected http:// or https://", *u);
            r = -EINVAL;
        } else {
            r = gw_new(s, *u, s->server_name, NULL, false, &gw);
            if (r == -EINVAL)
                *ret_err = util_strdup_printf("--kong-admin-url %s: not a valid URL", *u);
        }
        if (r < 0)
            goto fail;
    }
    /* Last step that can fail: with mtls/ it starts watching files (handles on the loop). */
    r = dp__tls_new(loop, cfg, &s->tls, ret_err);
    if (r < 0)
        goto fail;
    if (cfg->tls_skip_verify)
        log_event(LOG_WARN, MOD,
                  "TLS verification of the Kong Admin API is OFF (--kong-admin-tls-skip-verify): "
                  "anyone on the path can read and change the gateway configuration",
                  "{}");
    /* No handle of the sink exists before this point, so the failures above free at once. */
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    s->open_handles = 1;
    for (Gateway *gw = s->gws; gw; gw = gw->next)
        gw_init_timer(gw);
    free(token);
    srand48((long)util_now_ms() ^ (long)getpid());
    /* The first probe runs from the loop, not from here (no I/O in _new). */
    uv_timer_start(&s->tick, on_tick, 0, (uint64_t)s->ready_interval_ms);
    *ret = &s->base;
    return 0;
fail:
    if (token)
        memset(token, 0, strlen(token));
    free(token);
    while (s->gws) {
        Gateway *gw = s->gws;
        s->gws = gw->next;
        revision_unref(gw->target);
        curl_slist_free_all(gw->connect_to);
        free(gw->url);
        free(gw->base);
        free(gw->pod);
        free(gw);
    }
    free_sink_settings(s);
    return r;
}

struct Mtls *dp_sink_mtls(Sink *sink)
{
    return dp__tls_mtls(((DpSink *)sink)->tls);
}
