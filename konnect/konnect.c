/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Konnect sink: keeps a read-only Konnect control plane equal to the newest revision the local
 * gateways accepted. Revisions land in a latest-wins slot; a round reads Konnect's entities
 * (only when its copy in memory is missing or stale), diffs them against the revision and
 * writes PUT/DELETE per entity in dependency order with a bounded number of requests in
 * flight. Each request is retried on 429 (Retry-After), 5xx and transport errors; a failed
 * round backs off exponentially with jitter; a 4xx parks the revision until a newer one.
 * Node reporting (nodes.c) runs beside it. Nothing here ever waits on the gateways' path.
 */
#include "konnect.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "konnect_int.h"
#include "konnect_sink.h"
#include "log.h"
#include "util.h"

#define MOD "konnect"
#define MAX_READ_BODY (64u << 20)
#define MAX_WRITE_BODY (4u << 20)
#define PAGE_SIZE 1000

static const SinkOps konnect_ops;

/* ---- small helpers ------------------------------------------------------------------------- */

static double jitter(void)
{
    /* 0.8 .. 1.2: spreads retries of many controllers hitting one Konnect region. A private
     * xorshift seeded per process, so replicas do not share rand()'s fixed sequence. */
    static uint64_t x;
    if (!x)
        x = (uv_hrtime() ^ ((uint64_t)getpid() << 32)) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return 0.8 + 0.4 * ((double)(x >> 11) / (double)(1ull << 53));
}

static long long unix_now(void)
{
    return (long long)time(NULL);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/*
 * konnect__tls_apply() - TLS options of every Konnect request: the client certificate and key
 * as in-memory blobs, the private CA (else the system roots), peer and host verification,
 * TLS 1.2 at least. One function so that rotation (mtls/) plugs in here.
 */
int konnect__tls_apply(KonnectSink *k, CURL *e)
{
    /* Client certificate, key and CA as blobs copied by libcurl, peer and host verification,
     * TLS 1.2 at least; rotated files are picked up by mtls/ for the next request. */
    return mtls_apply(k->mtls, e);
}

/*
 * konnect__easy() - an easy handle for @method @url with @body (copied; may be NULL), JSON
 * headers (*ret_hdrs, free after the transfer) and TLS. NULL on failure.
 */
CURL *konnect__easy(KonnectSink *k, const char *method, const char *url, const char *body,
                    struct curl_slist **ret_hdrs)
{
    CURL *e = http_easy_new(url, (long)(k->request_timeout_s * 1000));
    if (!e)
        return NULL;
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    struct curl_slist *h2 = h ? curl_slist_append(h, "Content-Type: application/json") : NULL;
    char ua[96];
    snprintf(ua, sizeof(ua), "tether/%s", k->version ? k->version : TETHER_VERSION);
    if (!h2 || konnect__tls_apply(k, e) < 0) {
        curl_slist_free_all(h2 ? h2 : h);
        curl_easy_cleanup(e);
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h2);
    curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    *ret_hdrs = h2;
    return e;
}

/* ---- jobs: one HTTP request of a round, with its retries ----------------------------------- */

enum { JOB_READ, JOB_WRITE };

typedef struct Job {
    KonnectSink *k;
    struct Job *next;
    int type;
    int kind;
    size_t op;    /* JOB_WRITE: index in k->ops */
    char *offset; /* JOB_READ: page token, NULL for the first page */
    char *group;  /* JOB_READ of memberships: the consumer group's id */
    int attempt;
    uint64_t due_ms; /* waiting for a retry until then */
    CURL *easy;
    struct Job *run_next; /* in k->running while in flight */
    struct curl_slist *hdrs;
    uint64_t start_ms;
} Job;

static void job_free(Job *j)
{
    if (!j)
        return;
    free(j->offset);
    free(j->group);
    free(j);
}

static void jobs_free(Job **list)
{
    while (*list) {
        Job *j = *list;
        *list = j->next;
        job_free(j);
    }
}

static void enqueue(KonnectSink *k, Job *j)
{
    j->next = NULL;
    Job **p = &k->queue;
    while (*p)
        p = &(*p)->next;
    *p = j;
}

static void pump(KonnectSink *k);
static void round_maybe_done(KonnectSink *k);
static void schedule(KonnectSink *k);

static void round_fail(KonnectSink *k, int reason, long status, long retry_after_s,
                       const char *what)
{
    if (!k->round_failed) {
        k->round_failed = true;
        k->fail_reason = reason;
        k->fail_status = status;
        k->fail_retry_after_s = retry_after_s;
        free(k->last_error);
        k->last_error = what ? strdup(what) : NULL;
    }
    /* Start nothing new; what is in flight finishes. */
    jobs_free(&k->queue);
    jobs_free(&k->waiting);
}

static void job_retry_or_fail(KonnectSink *k, Job *j, const HttpResult *res)
{
    int reason = res->code != CURLE_OK ? KFAIL_NETWORK : KFAIL_OTHER;
    char what[256];
    if (res->code != CURLE_OK)
        snprintf(what, sizeof(what), "transport: %s",
                 res->error && *res->error ? res->error : curl_easy_strerror(res->code));
    else
        snprintf(what, sizeof(what), "HTTP %ld", res->status);
    if (res->status == 429)
        k->m.retries_429++;
    else if (res->status >= 500)
        k->m.retries_5xx++;
    else
        k->m.retries_transport++;
    /* A newer revision is waiting and this request failed twice: stop spending retries on an
     * old revision (the next round takes the newest); one transient error is retried in-round. */
    if (j->attempt >= k->request_retries || (k->slot && j->attempt >= 1)) {
        log_event(LOG_WARN, MOD, "request failed, round aborted", "{s:s, s:i, s:s}", "error", what,
                  "attempts", j->attempt + 1, "why",
                  k->slot ? "newer revision waiting" : "retries exhausted");
        round_fail(k, reason, res->status, res->status == 429 ? res->retry_after_s : -1, what);
        job_free(j);
        return;
    }
    j->attempt++;
    double delay_s;
    if (res->status == 429 && res->retry_after_s > 0)
        delay_s = fmin((double)res->retry_after_s, k->backoff_max_s);
    else
        delay_s = fmin(0.5 * pow(2.0, j->attempt - 1), 30.0) * jitter();
    log_event(LOG_INFO, MOD, "request will be retried", "{s:s, s:i, s:f}", "error", what, "attempt",
              j->attempt, "delay_s", delay_s);
    j->due_ms = util_now_ms() + (uint64_t)(delay_s * 1000);
    j->next = k->waiting;
    k->waiting = j;
    uint64_t first = j->due_ms;
    for (Job *w = k->waiting; w; w = w->next)
        if (w->due_ms < first)
            first = w->due_ms;
    uint64_t now = util_now_ms();
    uv_timer_start(&k->retry_timer, konnect__on_retry_timer, first > now ? first - now : 0, 0);
}

void konnect__on_retry_timer(uv_timer_t *t)
{
    KonnectSink *k = t->data;
    uint64_t now = util_now_ms(), next = 0;
    Job **p = &k->waiting;
    while (*p) {
        Job *j = *p;
        if (j->due_ms <= now) {
            *p = j->next;
            enqueue(k, j);
        } else {
            if (!next || j->due_ms < next)
                next = j->due_ms;
            p = &j->next;
        }
    }
    if (next)
        uv_timer_start(&k->retry_timer, konnect__on_retry_timer, next - now, 0);
    pump(k);
}

/* A read job of @kind (of group @group's members when set) from page @offset (stolen). */
static int enqueue_read(KonnectSink *k, int kind, const char *group, char *offset)
{
    Job *n = calloc(1, sizeof(*n));
    if (!n || (group && !(n->group = strdup(group)))) {
        free(n);
        free(offset);
        return -ENOMEM;
    }
    n->offset = offset;
    n->k = k;
    n->type = JOB_READ;
    n->kind = kind;
    enqueue(k, n);
    return 0;
}

/* With every consumer group read, read each group's members (unless consumers are not synced). */
static int read_members(KonnectSink *k)
{
    const char *key;
    json_t *e;
    int r = 0;
    if (k->disable_consumers)
        return 0;
    json_object_foreach(k->reading, key, e)
    {
        if (r == 0 && !strncmp(key, "consumer_groups/", 16))
            r = enqueue_read(k, konnect__members_kind(), key + 16, NULL);
    }
    return r;
}

/* read_page_done() - one page of one kind: keep its entities, queue the next page. */
static int read_page_done(KonnectSink *k, Job *j, const HttpResult *res)
{
    bool groups = j->kind == konnect__kind_index("consumer_groups");
    if (res->status == 404) /* this control plane does not serve the kind (or the group went) */
        return groups ? read_members(k) : 0;
    char *off = NULL;
    int r = j->group ? konnect__parse_members(res->body, res->body_len, j->group, k->reading, &off)
                     : konnect__parse_page(res->body, res->body_len, j->kind, k->reading, &off);
    if (r < 0)
        return r;
    if (off)
        return enqueue_read(k, j->kind, j->group, off);
    return groups ? read_members(k) : 0;
}

static void write_done(KonnectSink *k, Job *j, const HttpResult *res)
{
    KOp *op = &k->ops[j->op];
    k->m.writes[op->kind][op->del ? 1 : 0]++;
    if (op->del) {
        json_object_del(k->state, op->key);
        json_object_del(k->written, op->key);
        return;
    }
    /* Konnect's copy (with its defaults) is what the next diff compares against. */
    bool member = op->kind == konnect__members_kind(); /* the answer is the group, not this */
    json_t *got = res->body_len && !member ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    if (!json_is_object(got) || !json_object_get(got, "id")) {
        json_decref(got);
        got = json_deep_copy(op->body);
    }
    json_object_set_new(k->state, op->key, got);
    json_object_set(k->written, op->key, op->body);
}

static void on_job_done(void *ud, CURL *easy, const HttpResult *res)
{
    Job *j = ud;
    KonnectSink *k = j->k;
    (void)easy;
    curl_slist_free_all(j->hdrs);
    j->hdrs = NULL;
    j->easy = NULL;
    k->inflight--;
    k->m.requests++;
    for (Job **p = &k->running; *p; p = &(*p)->run_next)
        if (*p == j) {
            *p = j->run_next;
            break;
        }
    if (k->closing) {
        job_free(j);
        konnect__maybe_closed(k);
        return;
    }
    bool ok = res->code == CURLE_OK && res->status >= 200 && res->status < 300;
    if (j->type == JOB_WRITE && res->code == CURLE_OK && res->status == 404 && k->ops[j->op].del)
        ok = true; /* already gone */
    if (j->type == JOB_READ && res->code == CURLE_OK && res->status == 404)
        ok = true;
    if (!ok && !k->round_failed) {
        bool transient =
            res->code != CURLE_OK || res->status == 429 || res->status == 408 || res->status >= 500;
        if (transient) {
            job_retry_or_fail(k, j, res);
            round_maybe_done(k);
            pump(k);
            return;
        }
        char what[256];
        snprintf(what, sizeof(what), "%s %s: HTTP %ld %.120s",
                 j->type == JOB_READ ? "GET" : (k->ops[j->op].del ? "DELETE" : "PUT"),
                 j->type == JOB_READ ? konnect__kinds[j->kind].name : k->ops[j->op].key,
                 res->status, res->body ? res->body : "");
        /* 401/403 (credentials) and 404 (no such control plane) are not the configuration's
         * fault: back off and try again. Any other 4xx is: park the revision (KIC's memo). */
        bool park = res->status != 401 && res->status != 403 && res->status != 404;
        log_event(LOG_ERROR, MOD,
                  park ? "Konnect refused a request, revision parked"
                       : "Konnect refused a request, backing off",
                  "{s:s, s:i}", "error", what, "status", (int)res->status);
        round_fail(k,
                   !park                ? KFAIL_OTHER
                   : res->status == 409 ? KFAIL_CONFLICT
                                        : KFAIL_REJECTED,
                   res->status, -1, what);
    } else if (ok && !k->round_failed) {
        int r = 0;
        if (j->type == JOB_READ)
            r = read_page_done(k, j, res);
        else
            write_done(k, j, res);
        if (r < 0)
            round_fail(k, KFAIL_OTHER, res->status, -1, "unreadable list response");
    }
    job_free(j);
    round_maybe_done(k);
    pump(k);
}

static int job_start(KonnectSink *k, Job *j)
{
    char *url = NULL, *body = NULL;
    const char *method = "GET";
    if (j->type == JOB_READ) {
        char *esc = j->offset ? curl_easy_escape(NULL, j->offset, 0) : NULL;
        char *list = j->group ? konnect__members_list_path(j->group)
                              : util_strdup_printf("/%s", konnect__kinds[j->kind].name);
        if (list)
            url = util_strdup_printf("%s%s?size=%d%s%s", k->base_url, list, PAGE_SIZE,
                                     esc ? "&offset=" : "", esc ? esc : "");
        free(list);
        curl_free(esc);
    } else {
        KOp *op = &k->ops[j->op];
        const char *id = strchr(op->key, '/') + 1;
        bool member = op->kind == konnect__members_kind();
        char *path = NULL;
        if (member && !op->del) /* joining a group: POST the consumer to its member list */
            konnect__member_add(op->body, &path, &body);
        else
            path = konnect__entity_path(op->kind, id, op->body);
        if (!path) {
            free(body);
            return -EINVAL;
        }
        url = util_strdup_printf("%s%s", k->base_url, path);
        free(path);
        method = op->del ? "DELETE" : member ? "POST" : "PUT";
        if (!op->del && !body && !(body = json_dumps(op->body, JSON_COMPACT))) {
            free(url);
            return -ENOMEM;
        }
    }
    if (!url) {
        free(body);
        return -ENOMEM;
    }
    CURL *e = konnect__easy(k, method, url, body, &j->hdrs);
    free(url);
    free(body);
    if (!e)
        return -ENOMEM;
    j->easy = e;
    j->start_ms = util_now_ms();
    int r = http_start(k->http, e, j->type == JOB_READ ? MAX_READ_BODY : MAX_WRITE_BODY,
                       on_job_done, j);
    if (r < 0) {
        curl_slist_free_all(j->hdrs);
        j->hdrs = NULL;
        j->easy = NULL;
        return r;
    }
    k->inflight++;
    j->run_next = k->running;
    k->running = j;
    return 0;
}

static void pump(KonnectSink *k)
{
    while (!k->closing && !k->round_failed && k->queue && k->inflight < k->concurrency) {
        Job *j = k->queue;
        k->queue = j->next;
        int r = job_start(k, j);
        if (r < 0) {
            job_free(j);
            round_fail(k, KFAIL_OTHER, 0, -1, "could not start a request");
            round_maybe_done(k);
            return;
        }
    }
}

/* ---- rounds -------------------------------------------------------------------------------- */

static void round_end(KonnectSink *k, bool ok);
static void start_diff(KonnectSink *k);

/* queue_phase() - queue the operations of the next phase; false when none is left. */
static bool queue_phase(KonnectSink *k)
{
    if (k->next_op >= k->nops)
        return false;
    int phase = konnect__phase(&k->ops[k->next_op]);
    while (k->next_op < k->nops && konnect__phase(&k->ops[k->next_op]) == phase) {
        Job *j = calloc(1, sizeof(*j));
        if (!j) {
            round_fail(k, KFAIL_OTHER, 0, -1, "out of memory");
            return true;
        }
        j->k = k;
        j->type = JOB_WRITE;
        j->op = k->next_op++;
        j->kind = k->ops[j->op].kind;
        enqueue(k, j);
    }
    return true;
}

/*
 * Flattening the revision and diffing it against Konnect's state cost tens of milliseconds for
 * thousands of entities: they run on the libuv thread pool so that the loop, which also pushes
 * to the local gateways, never waits for them. While the work runs the loop leaves the
 * revision, k->state and k->written alone (no requests are in flight), and only reads them.
 */
typedef struct DiffWork {
    uv_work_t req;
    KonnectSink *k;
    Revision *rev; /* ref */
    bool build;    /* flatten the revision (else reuse k->desired) */
    bool no_consumers;
    json_t *desired;         /* built here, or a ref of k->desired */
    json_t *state, *written; /* borrowed */
    KOp *ops;
    size_t nops;
    int r;
    double ms;
} DiffWork;

static void diff_work_free(DiffWork *w)
{
    revision_unref(w->rev);
    json_decref(w->desired);
    konnect__ops_free(w->ops, w->nops);
    free(w);
}

static void on_diff_work(uv_work_t *req)
{
    DiffWork *w = req->data;
    uint64_t t0 = uv_hrtime();
    if (w->build) {
        json_t *config = revision_load_config(w->rev);
        w->r = config ? konnect__desired(config, w->no_consumers, &w->desired) : -ENOMEM;
        json_decref(config);
    }
    if (w->r == 0)
        w->r = konnect__diff(w->desired, w->state, w->written, &w->ops, &w->nops);
    w->ms = (double)(uv_hrtime() - t0) / 1e6;
}

static void on_diff_done(uv_work_t *req, int status)
{
    DiffWork *w = req->data;
    KonnectSink *k = w->k;
    k->open_handles--;
    if (k->closing) {
        diff_work_free(w);
        konnect__maybe_closed(k);
        return;
    }
    k->round_phase = ROUND_WRITING;
    if (status < 0 || w->r < 0) {
        diff_work_free(w);
        round_fail(k, KFAIL_OTHER, 0, -1, "out of memory");
        round_maybe_done(k);
        return;
    }
    if (w->build) {
        json_decref(k->desired);
        k->desired = w->desired;
        w->desired = NULL;
        snprintf(k->desired_hash, sizeof(k->desired_hash), "%s", revision_hash(w->rev));
    }
    konnect__ops_free(k->ops, k->nops);
    k->ops = w->ops;
    k->nops = w->nops;
    k->next_op = 0;
    w->ops = NULL;
    w->nops = 0;
    if (k->nops)
        log_event(LOG_INFO, MOD, "syncing", "{s:I, s:i, s:I, s:f}", "seq",
                  (json_int_t)revision_seq(k->cur), "writes", (int)k->nops, "entities",
                  (json_int_t)json_object_size(k->desired), "diff_ms", w->ms);
    diff_work_free(w);
    if (!queue_phase(k)) {
        round_end(k, true);
        return;
    }
    pump(k);
}

static void start_diff(KonnectSink *k)
{
    DiffWork *w = calloc(1, sizeof(*w));
    if (!w) {
        k->round_phase = ROUND_WRITING;
        round_fail(k, KFAIL_OTHER, 0, -1, "out of memory");
        round_maybe_done(k);
        return;
    }
    w->req.data = w;
    w->k = k;
    w->rev = revision_ref(k->cur);
    w->build = !k->desired || strcmp(k->desired_hash, revision_hash(k->cur)) != 0;
    w->no_consumers = k->disable_consumers;
    w->desired = w->build ? NULL : json_incref(k->desired);
    w->state = k->state;
    w->written = k->written;
    k->round_phase = ROUND_DIFFING;
    int r = uv_queue_work(k->loop, &w->req, on_diff_work, on_diff_done);
    if (r < 0) {
        diff_work_free(w);
        k->round_phase = ROUND_WRITING;
        round_fail(k, KFAIL_OTHER, 0, -1, "cannot queue work");
        round_maybe_done(k);
        return;
    }
    k->open_handles++;
}

static void round_maybe_done(KonnectSink *k)
{
    if (k->round_phase == ROUND_IDLE || k->round_phase == ROUND_DIFFING || k->inflight ||
        k->queue || k->waiting)
        return;
    if (k->round_failed) {
        round_end(k, false);
        return;
    }
    if (k->round_phase == ROUND_READING) {
        json_decref(k->state);
        k->state = k->reading;
        k->reading = NULL;
        k->last_full_read_ms = util_now_ms();
        start_diff(k);
        return;
    }
    if (queue_phase(k)) {
        if (k->round_failed)
            round_maybe_done(k);
        else
            pump(k);
        return;
    }
    round_end(k, true);
}

static void observe_push(KonnectSink *k, bool ok, double ms)
{
    KPushHist *h = &k->m.push[ok ? 1 : 0];
    double bound = 100;
    for (int i = 0; i < KONNECT_BUCKETS; i++, bound *= 1.33)
        if (ms <= bound)
            h->buckets[i]++;
    h->count++;
    h->sum += ms;
}

static void round_end(KonnectSink *k, bool ok)
{
    Revision *rev = k->cur;
    k->cur = NULL;
    double ms = (double)(util_now_ms() - k->round_start_ms);
    k->round_phase = ROUND_IDLE;
    json_decref(k->reading);
    k->reading = NULL;
    konnect__ops_free(k->ops, k->nops);
    k->ops = NULL;
    k->nops = k->next_op = 0;
    bool wrote = k->round_requests != k->m.requests;
    if (ok) {
        k->m.rounds_ok++;
        if (wrote || k->synced_seq == 0) {
            k->m.push_ok++;
            observe_push(k, true, ms);
        }
        k->backoff_s = 0;
        k->backoff_until_ms = 0;
        k->parked_hash[0] = 0;
        k->out_of_sync = false;
        k->last_success_unix = unix_now();
        if (k->synced != rev) {
            revision_unref(k->synced);
            k->synced = revision_ref(rev);
        }
        k->synced_seq = revision_seq(rev);
        snprintf(k->synced_hash, sizeof(k->synced_hash), "%s", revision_hash(rev));
        free(k->last_error);
        k->last_error = NULL;
        if (wrote)
            log_event(LOG_INFO, MOD, "Konnect in sync", "{s:I, s:f}", "seq",
                      (json_int_t)revision_seq(rev), "ms", ms);
    } else {
        k->m.rounds_failed++;
        k->m.push_fail[k->fail_reason]++;
        observe_push(k, false, ms);
        /* Whatever was written, Konnect's state is no longer known for sure: re-read it. */
        json_decref(k->state);
        k->state = NULL;
        k->out_of_sync = true;
        k->backoff_s = k->backoff_s ? fmin(k->backoff_s * 2, k->backoff_max_s) : k->backoff_min_s;
        double wait = k->backoff_s * jitter();
        if (wait > k->backoff_max_s)
            wait = k->backoff_max_s;
        if (k->fail_retry_after_s > 0 && (double)k->fail_retry_after_s > wait)
            wait = fmin((double)k->fail_retry_after_s, k->backoff_max_s);
        k->backoff_until_ms = util_now_ms() + (uint64_t)(wait * 1000);
        if (k->fail_reason == KFAIL_REJECTED || k->fail_reason == KFAIL_CONFLICT) {
            snprintf(k->parked_hash, sizeof(k->parked_hash), "%s", revision_hash(rev));
            k->m.parked++;
        }
        log_event(LOG_WARN, MOD, "Konnect sync failed, backing off", "{s:I, s:s, s:f, s:b}", "seq",
                  (json_int_t)revision_seq(rev), "error", k->last_error ? k->last_error : "",
                  "backoff_s", wait, "parked", k->parked_hash[0] != 0);
    }
    k->round_failed = false;
    if (k->host && k->host->applied)
        k->host->applied(k->host, &k->base, rev, ok ? 1 : 0);
    if (!ok && !k->slot && !k->closing) {
        /* Nothing newer came: this one is retried after the backoff (or once unparked). */
        k->slot = rev;
        rev = NULL;
    }
    revision_unref(rev);
    konnect__nodes_status_check(k);
    schedule(k);
}

/* round_target() - the revision a round should sync now, or NULL (borrowed). */
static Revision *round_target(KonnectSink *k, bool *ret_from_slot)
{
    uint64_t now = util_now_ms();
    *ret_from_slot = false;
    if (k->slot && strcmp(revision_hash(k->slot), k->parked_hash) != 0) {
        *ret_from_slot = true;
        return k->slot;
    }
    if (k->slot)
        return NULL; /* parked: nothing until a newer revision arrives */
    /* Periodic full re-read: puts back what was changed behind tether's back. */
    if (k->synced && !k->slot &&
        (k->state == NULL || now - k->last_full_read_ms >= (uint64_t)(k->full_resync_s * 1000)))
        return k->synced;
    return NULL;
}

static void on_round_timer(uv_timer_t *t)
{
    KonnectSink *k = t->data;
    if (k->closing || k->round_phase != ROUND_IDLE)
        return;
    bool from_slot;
    Revision *target = round_target(k, &from_slot);
    if (!target) {
        schedule(k);
        return;
    }
    uint64_t now = util_now_ms();
    if (from_slot) {
        k->cur = k->slot;
        k->slot = NULL;
    } else {
        k->cur = revision_ref(target);
    }
    k->round_start_ms = k->last_round_ms = now;
    k->round_requests = k->m.requests;
    k->round_failed = false;
    k->fail_retry_after_s = -1;
    k->m.rounds++;
    bool reread = !k->state || now - k->last_full_read_ms >= (uint64_t)(k->full_resync_s * 1000);
    if (!reread) {
        start_diff(k);
        return;
    }
    k->m.full_reads++;
    k->round_phase = ROUND_READING;
    json_decref(k->reading);
    k->reading = json_object();
    for (size_t i = 0; k->reading && i < konnect__nkinds; i++) {
        if ((int)i == konnect__members_kind())
            continue; /* read per group, once the groups are */
        Job *j = calloc(1, sizeof(*j));
        if (!j) {
            round_fail(k, KFAIL_OTHER, 0, -1, "out of memory");
            break;
        }
        j->k = k;
        j->type = JOB_READ;
        j->kind = (int)i;
        enqueue(k, j);
    }
    if (!k->reading)
        round_fail(k, KFAIL_OTHER, 0, -1, "out of memory");
    pump(k);
    round_maybe_done(k);
}

/*
 * schedule() - arm the round timer for the next round: at once for a new revision unless the
 * last round started less than the upload period ago or a backoff is running; otherwise for
 * the next periodic re-read.
 */
static void schedule(KonnectSink *k)
{
    if (k->closing || k->round_phase != ROUND_IDLE)
        return;
    uint64_t now = util_now_ms();
    bool from_slot;
    Revision *target = round_target(k, &from_slot);
    uint64_t at;
    if (target) {
        at = k->last_round_ms ? k->last_round_ms + (uint64_t)(k->period_s * 1000) : now;
        if (k->backoff_until_ms > at)
            at = k->backoff_until_ms;
    } else if (k->synced && !k->slot) {
        at = k->last_full_read_ms + (uint64_t)(k->full_resync_s * 1000);
        if (k->backoff_until_ms > at)
            at = k->backoff_until_ms;
    } else {
        uv_timer_stop(&k->round_timer);
        return;
    }
    /* At least 1 ms: a 0 ms timer armed from its own callback would run again before the loop
     * polls for I/O. */
    uv_timer_start(&k->round_timer, on_round_timer, at > now ? at - now : 1, 0);
}

/* ---- Sink ops ------------------------------------------------------------------------------ */

static void konnect_publish(Sink *s, Revision *rev)
{
    KonnectSink *k = (KonnectSink *)s;
    if (k->closing)
        return;
    k->newest_seq = revision_seq(rev);
    if (!k->seen_revision || revision_failures(rev) != NULL) {
        bool partial = json_array_size(revision_failures(rev)) > 0;
        if (!k->seen_revision || partial != k->partial) {
            k->seen_revision = true;
            k->partial = partial;
            konnect__nodes_kick(k);
        }
    }
    if (k->slot)
        k->m.superseded++;
    revision_unref(k->slot);
    k->slot = revision_ref(rev);
    schedule(k);
}

static json_t *konnect_status(Sink *s)
{
    KonnectSink *k = (KonnectSink *)s;
    uint64_t now = util_now_ms();
    return json_pack(
        "{s:s, s:I, s:s, s:I, s:b, s:b, s:f, s:I, s:s?, s:s, s:s}", "sink", "konnect", "synced_seq",
        (json_int_t)k->synced_seq, "synced_hash", k->synced_hash, "pending_seq",
        (json_int_t)(k->slot ? revision_seq(k->slot) : 0), "parked", k->parked_hash[0] != 0,
        "in_sync", !k->out_of_sync && k->synced_seq, "backoff_s",
        k->backoff_until_ms > now ? (double)(k->backoff_until_ms - now) / 1000.0 : 0.0,
        "last_success_unix", (json_int_t)k->last_success_unix, "last_error", k->last_error, "round",
        k->round_phase == ROUND_IDLE      ? "idle"
        : k->round_phase == ROUND_READING ? "reading"
                                          : "writing",
        "node_status", konnect__node_status(k));
}

static void sink_free(KonnectSink *k)
{
    revision_unref(k->slot);
    revision_unref(k->cur);
    revision_unref(k->synced);
    json_decref(k->state);
    json_decref(k->reading);
    json_decref(k->written);
    json_decref(k->desired);
    konnect__ops_free(k->ops, k->nops);
    jobs_free(&k->queue);
    jobs_free(&k->waiting);
    konnect__nodes_free(k);
    free(k->base_url);
    free(k->address);
    free(k->cp_id);
    free(k->hostname);
    free(k->version);
    free(k->last_error);
    free(k);
}

void konnect__maybe_closed(KonnectSink *k)
{
    if (!k->closing || k->open_handles || k->inflight || konnect__nodes_busy(k) || k->in_close)
        return;
    void (*done)(void *) = k->close_done;
    void *ud = k->close_ud;
    sink_free(k);
    if (done)
        done(ud);
}

static void on_handle_closed(uv_handle_t *h)
{
    KonnectSink *k = h->data;
    k->open_handles--;
    konnect__maybe_closed(k);
}

static void on_mtls_closed(void *ud)
{
    KonnectSink *k = ud;
    k->mtls = NULL;
    k->open_handles--;
    konnect__maybe_closed(k);
}

static void konnect_close(Sink *s, void (*done)(void *ud), void *ud)
{
    KonnectSink *k = (KonnectSink *)s;
    k->closing = true;
    k->in_close = true;
    k->close_done = done;
    k->close_ud = ud;
    jobs_free(&k->queue);
    jobs_free(&k->waiting);
    /* http_cancel() completes a request at once; on_job_done sees closing and frees it. */
    while (k->running)
        http_cancel(k->http, k->running->easy);
    konnect__nodes_cancel(k);
    uv_timer_stop(&k->round_timer);
    uv_timer_stop(&k->retry_timer);
    uv_close((uv_handle_t *)&k->round_timer, on_handle_closed);
    uv_close((uv_handle_t *)&k->retry_timer, on_handle_closed);
    k->open_handles += 2;
    konnect__nodes_close_handles(k, on_handle_closed);
    if (k->mtls) {
        k->open_handles++;
        mtls_close(k->mtls, on_mtls_closed, k);
    }
    k->in_close = false;
    /* Handles close asynchronously: done runs from their callbacks, never from here. */
}

static const SinkOps konnect_ops = {
    .kind = "konnect",
    .publish = konnect_publish,
    .close = konnect_close,
    .status = konnect_status,
};

/* ---- construction ------------------------------------------------------------------------- */

static int check_config(const KonnectConfig *cfg, char **ret_err)
{
    if (!cfg->address || !*cfg->address) {
        *ret_err = strdup("--konnect-address must not be empty");
        return -EINVAL;
    }
    if (strncmp(cfg->address, "https://", 8) != 0) {
        *ret_err =
            util_strdup_printf("--konnect-address %s: must be an https:// URL", cfg->address);
        return -EINVAL;
    }
    if (!cfg->control_plane_id || !*cfg->control_plane_id ||
        strspn(cfg->control_plane_id, "0123456789abcdefABCDEF-") != strlen(cfg->control_plane_id)) {
        *ret_err = util_strdup_printf("--konnect-control-plane-id %s: expected a UUID",
                                      cfg->control_plane_id ? cfg->control_plane_id : "(empty)");
        return -EINVAL;
    }
    bool cert = (cfg->client_cert && *cfg->client_cert) ||
                (cfg->client_cert_file && *cfg->client_cert_file);
    bool key =
        (cfg->client_key && *cfg->client_key) || (cfg->client_key_file && *cfg->client_key_file);
    if (!cert || !key) {
        *ret_err = strdup("Konnect needs a client certificate and its key: "
                          "--konnect-tls-client-cert[-file] and --konnect-tls-client-key[-file]");
        return -EINVAL;
    }
    if (cfg->client_cert && *cfg->client_cert && cfg->client_cert_file && *cfg->client_cert_file) {
        *ret_err = strdup("--konnect-tls-client-cert and --konnect-tls-client-cert-file are "
                          "mutually exclusive");
        return -EINVAL;
    }
    if (cfg->client_key && *cfg->client_key && cfg->client_key_file && *cfg->client_key_file) {
        *ret_err = strdup("--konnect-tls-client-key and --konnect-tls-client-key-file are "
                          "mutually exclusive");
        return -EINVAL;
    }
    if (cfg->sync_concurrency < 0 || cfg->sync_concurrency > 64) {
        *ret_err = util_strdup_printf("--konnect-config-sync-concurrency %d: must be 1..64",
                                      cfg->sync_concurrency);
        return -EINVAL;
    }
    return 0;
}

static int setup_tls(KonnectSink *k, uv_loop_t *loop, const KonnectConfig *cfg, char **ret_err)
{
    MtlsConfig mc = {
        .flag_prefix = "konnect-tls-client",
        .cert = cfg->client_cert,
        .cert_file = cfg->client_cert_file,
        .key = cfg->client_key,
        .key_file = cfg->client_key_file,
        .ca_file = cfg->ca_cert_file,
        .ca_flag = "konnect-ca-cert-file",
    };
    return mtls_new(loop, &mc, &k->mtls, ret_err);
}

int konnect_sink_new(uv_loop_t *loop, Http *http, const KonnectConfig *cfg, SinkHost *host,
                     Sink **ret, char **ret_err)
{
    int r = check_config(cfg, ret_err);
    if (r < 0)
        return r;
    KonnectSink *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->base.ops = &konnect_ops;
    k->base.host = host;
    k->host = host;
    k->loop = loop;
    k->http = http;
    size_t alen = strlen(cfg->address);
    while (alen && cfg->address[alen - 1] == '/')
        alen--;
    k->address = strndup(cfg->address, alen);
    k->cp_id = strdup(cfg->control_plane_id);
    k->base_url = util_strdup_printf("%.*s/kic/api/control-planes/%s", (int)alen, cfg->address,
                                     cfg->control_plane_id);
    char hn[256] = "";
    if (!cfg->node_hostname || !*cfg->node_hostname)
        (void)gethostname(hn, sizeof(hn) - 1);
    k->hostname = strdup(cfg->node_hostname && *cfg->node_hostname ? cfg->node_hostname : hn);
    k->version = dup_or_null(cfg->version ? cfg->version : TETHER_VERSION);
    k->written = json_object();
    if (!k->address || !k->cp_id || !k->base_url || !k->hostname || !k->version || !k->written) {
        sink_free(k);
        return -ENOMEM;
    }
    k->period_s = cfg->upload_config_period_s > 0 ? cfg->upload_config_period_s : 30;
    k->concurrency = cfg->sync_concurrency > 0 ? cfg->sync_concurrency : 4;
    k->node_period_s = cfg->refresh_node_period_s > 0 ? cfg->refresh_node_period_s : 60;
    k->disable_consumers = cfg->disable_consumers_sync;
    k->full_resync_s = cfg->full_resync_period_s > 0 ? cfg->full_resync_period_s : 600;
    k->backoff_min_s = cfg->backoff_min_s > 0 ? cfg->backoff_min_s : 3;
    k->backoff_max_s = cfg->backoff_max_s > 0 ? cfg->backoff_max_s : 900;
    k->request_timeout_s = cfg->request_timeout_s > 0 ? cfg->request_timeout_s : 30;
    k->request_retries = cfg->request_retries > 0 ? cfg->request_retries : 5;
    k->dataplane_ok = true;
    k->fail_retry_after_s = -1;
    if ((r = setup_tls(k, loop, cfg, ret_err)) < 0) {
        sink_free(k);
        return r;
    }
    uv_timer_init(loop, &k->round_timer);
    uv_timer_init(loop, &k->retry_timer);
    k->round_timer.data = k;
    k->retry_timer.data = k;
    konnect__nodes_init(k);
    konnect__nodes_kick(k);
    log_event(LOG_INFO, MOD, "Konnect sync enabled", "{s:s, s:i, s:f}", "control_plane",
              k->base_url, "concurrency", k->concurrency, "upload_period_s", k->period_s);
    *ret = &k->base;
    return 0;
}

Mtls *konnect_sink_mtls(Sink *s)
{
    return ((KonnectSink *)s)->mtls;
}

void konnect_sink_set_dataplane_ok(Sink *s, bool ok)
{
    KonnectSink *k = (KonnectSink *)s;
    if (k->dataplane_ok != ok) {
        k->dataplane_ok = ok;
        konnect__nodes_kick(k);
    }
}

/* ---- metrics ------------------------------------------------------------------------------- */

/*
 * family_merge() - the text format wants every line of a family in one group, and the data plane
 * sink writes the same KIC families (protocol="db-less"): when @out already holds @family, the
 * samples go at the end of its group; otherwise the family is appended with its header.
 */
static void family_merge(Buf *out, const char *family, const char *type, const char *help,
                         const Buf *samples)
{
    if (!samples->len)
        return;
    char needle[192];
    snprintf(needle, sizeof(needle), "# TYPE %s ", family);
    char *at = out->data;
    while (at && (at = strstr(at, needle)) && at != out->data && at[-1] != '\n')
        at += strlen(needle);
    if (!at) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", family, help, family, type);
        buf_append(out, samples->data, samples->len);
        return;
    }
    char *end = out->data + out->len, *p = strchr(at, '\n');
    p = p ? p + 1 : end;
    while (p < end && *p != '#') { /* the family's samples */
        char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : end;
    }
    size_t off = (size_t)(p - out->data);
    if (buf_reserve(out, samples->len) < 0)
        return;
    memmove(out->data + off + samples->len, out->data + off, out->len - off + 1);
    memcpy(out->data + off, samples->data, samples->len);
    out->len += samples->len;
}

void konnect_sink_metrics(Sink *s, Buf *out)
{
    KonnectSink *k = (KonnectSink *)s;
    const char *dp = k->base_url;
    Buf f = BUF_INIT;
    /* KIC's failure_reason values: network, conflict, other (a parked 4xx counts as other). */
    uint64_t fail[3] = {k->m.push_fail[KFAIL_NETWORK], k->m.push_fail[KFAIL_CONFLICT],
                        k->m.push_fail[KFAIL_OTHER] + k->m.push_fail[KFAIL_REJECTED]};
    static const char *const reasons[3] = {"network", "conflict", "other"};
    buf_printf(&f,
               "ingress_controller_configuration_push_count{success=\"true\",protocol=\"deck\","
               "failure_reason=\"\",dataplane=\"%s\"} %llu\n",
               dp, (unsigned long long)k->m.push_ok);
    for (int r = 0; r < 3; r++)
        buf_printf(&f,
                   "ingress_controller_configuration_push_count{success=\"false\",protocol="
                   "\"deck\",failure_reason=\"%s\",dataplane=\"%s\"} %llu\n",
                   reasons[r], dp, (unsigned long long)fail[r]);
    family_merge(out, "ingress_controller_configuration_push_count", "counter",
                 "Count of successful/failed configuration pushes to Kong.", &f);
    buf_reset(&f);
    for (int ok = 1; ok >= 0; ok--) {
        KPushHist *h = &k->m.push[ok];
        const char *sc = ok ? "true" : "false";
        if (!h->count)
            continue;
        double bound = 100;
        for (int i = 0; i < KONNECT_BUCKETS; i++, bound *= 1.33)
            buf_printf(&f,
                       "ingress_controller_configuration_push_duration_milliseconds_bucket{"
                       "success=\"%s\",protocol=\"deck\",dataplane=\"%s\",le=\"%.6g\"} %llu\n",
                       sc, dp, bound, (unsigned long long)h->buckets[i]);
        buf_printf(&f,
                   "ingress_controller_configuration_push_duration_milliseconds_bucket{"
                   "success=\"%s\",protocol=\"deck\",dataplane=\"%s\",le=\"+Inf\"} %llu\n"
                   "ingress_controller_configuration_push_duration_milliseconds_sum{"
                   "success=\"%s\",protocol=\"deck\",dataplane=\"%s\"} %.3f\n"
                   "ingress_controller_configuration_push_duration_milliseconds_count{"
                   "success=\"%s\",protocol=\"deck\",dataplane=\"%s\"} %llu\n",
                   sc, dp, (unsigned long long)h->count, sc, dp, h->sum, sc, dp,
                   (unsigned long long)h->count);
    }
    family_merge(out, "ingress_controller_configuration_push_duration_milliseconds", "histogram",
                 "How long it took to push the configuration to Kong, in milliseconds.", &f);
    buf_reset(&f);
    if (k->last_success_unix)
        buf_printf(&f,
                   "ingress_controller_configuration_push_last_successful{dataplane=\"%s\"} "
                   "%lld\n",
                   dp, k->last_success_unix);
    family_merge(out, "ingress_controller_configuration_push_last_successful", "gauge",
                 "Time of the last successful configuration push (Unix seconds).", &f);
    buf_deinit(&f);
    buf_printf(out,
               "# HELP tether_konnect_sync_rounds_total Konnect sync rounds by result.\n"
               "# TYPE tether_konnect_sync_rounds_total counter\n"
               "tether_konnect_sync_rounds_total{result=\"success\"} %llu\n"
               "tether_konnect_sync_rounds_total{result=\"failure\"} %llu\n",
               (unsigned long long)k->m.rounds_ok, (unsigned long long)k->m.rounds_failed);
    buf_puts(out, "# HELP tether_konnect_writes_total Entity writes sent to Konnect.\n"
                  "# TYPE tether_konnect_writes_total counter\n");
    for (size_t i = 0; i < konnect__nkinds; i++)
        for (int d = 0; d < 2; d++)
            if (k->m.writes[i][d])
                buf_printf(out, "tether_konnect_writes_total{kind=\"%s\",method=\"%s\"} %llu\n",
                           konnect__kinds[i].name,
                           d                                      ? "DELETE"
                           : (int)i == konnect__members_kind() ? "POST"
                                                                  : "PUT",
                           (unsigned long long)k->m.writes[i][d]);
    uint64_t now = util_now_ms();
    buf_printf(
        out,
        "# HELP tether_konnect_requests_total Requests sent to Konnect's entity API.\n"
        "# TYPE tether_konnect_requests_total counter\n"
        "tether_konnect_requests_total %llu\n"
        "# HELP tether_konnect_full_reads_total Full reads of the control plane's entities.\n"
        "# TYPE tether_konnect_full_reads_total counter\n"
        "tether_konnect_full_reads_total %llu\n"
        "# HELP tether_konnect_retries_total Requests retried, by cause.\n"
        "# TYPE tether_konnect_retries_total counter\n"
        "tether_konnect_retries_total{reason=\"429\"} %llu\n"
        "tether_konnect_retries_total{reason=\"5xx\"} %llu\n"
        "tether_konnect_retries_total{reason=\"transport\"} %llu\n"
        "# HELP tether_konnect_backoff_seconds Time left before the next sync attempt.\n"
        "# TYPE tether_konnect_backoff_seconds gauge\n"
        "tether_konnect_backoff_seconds %g\n"
        "# HELP tether_konnect_parked Whether the newest revision is parked after a 4xx.\n"
        "# TYPE tether_konnect_parked gauge\n"
        "tether_konnect_parked %d\n"
        "# HELP tether_konnect_last_successful_sync_timestamp_seconds Unix time of the last "
        "successful sync.\n"
        "# TYPE tether_konnect_last_successful_sync_timestamp_seconds gauge\n"
        "tether_konnect_last_successful_sync_timestamp_seconds %lld\n"
        "# HELP tether_konnect_revision_lag Revisions published and not yet synced.\n"
        "# TYPE tether_konnect_revision_lag gauge\n"
        "tether_konnect_revision_lag %llu\n"
        "# HELP tether_konnect_revisions_superseded_total Revisions replaced in the slot before "
        "being synced.\n"
        "# TYPE tether_konnect_revisions_superseded_total counter\n"
        "tether_konnect_revisions_superseded_total %llu\n"
        "# HELP tether_konnect_node_updates_total Node reporting rounds by result.\n"
        "# TYPE tether_konnect_node_updates_total counter\n"
        "tether_konnect_node_updates_total{result=\"success\"} %llu\n"
        "tether_konnect_node_updates_total{result=\"failure\"} %llu\n",
        (unsigned long long)k->m.requests, (unsigned long long)k->m.full_reads,
        (unsigned long long)k->m.retries_429, (unsigned long long)k->m.retries_5xx,
        (unsigned long long)k->m.retries_transport,
        k->backoff_until_ms > now ? (double)(k->backoff_until_ms - now) / 1000.0 : 0.0,
        k->parked_hash[0] != 0, k->last_success_unix,
        (unsigned long long)(k->newest_seq > k->synced_seq ? k->newest_seq - k->synced_seq : 0),
        (unsigned long long)k->m.superseded, (unsigned long long)k->m.nodes_ok,
        (unsigned long long)k->m.nodes_failed);
}
