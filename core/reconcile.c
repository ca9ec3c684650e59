/* SPDX-License-Identifier: Apache-2.0 */
/* Debounced translation of the store into revisions. See reconcile.h. */
#include "reconcile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "jarena.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"

struct Recon {
    uv_loop_t *loop;
    Store *store;
    ReconConfig cfg;
    uv_timer_t timer;
    bool dirty;
    uint64_t first_dirty_ms; /* loop time of the first change since the last translation */
    uint64_t first_dirty_ns; /* the same in uv_hrtime(), for the latency metric */
    Revision *current;       /* last published */
    json_t *last_failures;   /* failures of the last translation */
    /* metrics */
    unsigned long long ok_count, fail_count, published, unchanged, refreshes;
    size_t broken;           /* objects named by failures of the last translation */
    MetricsHist duration[2]; /* translation time, ms: [0] with failures, [1] without */
    MetricsHist latency;     /* first change to revision, ms */
    /* off-loop translation */
    uv_work_t work;
    bool busy;  /* a translation runs in the thread pool */
    bool again; /* the timer fired while busy: translate once more */
    bool closing;
    Store *snapshot;        /* the worker's private copy of the store */
    Revision *wprev;        /* the worker refreshes this one's targets, when set */
    bool full_next;         /* a refresh failed: translate everything next time */
    XlateOptions wopts;     /* the worker's copy of the options */
    uint64_t snap_first_ns; /* first change covered by the snapshot */
    Revision *wrev;         /* the worker's result */
    bool wfailed;           /* the worker's translation reported failures */
    bool wrefreshed;        /* the worker only refreshed targets */
    int werr;
    double wms;
    /* namespace plans (cfg.ns_plans) */
    NsPlan *ns_plan;        /* a plan of the store at some generation, or NULL */
    bool ns_building;       /* a plan is being made in the thread pool */
    uint64_t ns_retry_ms;   /* loop time before which no plan is tried (the store did not split) */
    bool ns_off;            /* a check found a mismatch: no more plans */
    bool unverified;        /* the current revision was merged from namespaces, not yet checked */
    uv_timer_t verify_timer;
    bool wns;               /* the worker merges namespaces from wns_plan */
    bool verifying;         /* a full translation checks the current revision in the pool */
    uint64_t last_verify;   /* loop time the last check started (0: none yet) */
    NsPlan *wns_plan, *wns_next;
    const char *wwhy;       /* why merging namespaces did not work out */
    uint64_t wgen;          /* store generation of the worker's snapshot */
    unsigned long long ns_refreshes, ns_builds, ns_checks[2];
    int open_timers;
    bool timers_closing;
    void (*done)(void *ud);
    void *done_ud;
};

/* A revision merged from namespaces is checked once the store has been quiet this long. */
#define VERIFY_QUIET_MS 1000
/* A store that did not split is tried again after this long, not after every translation. */
#define NS_RETRY_MS 60000

static const double dur_buckets[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

int recon_new(uv_loop_t *loop, Store *store, const ReconConfig *cfg, Recon **ret)
{
    if (!cfg->translate || !cfg->revision)
        return -EINVAL;
    Recon *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->loop = loop;
    r->store = store;
    r->cfg = *cfg;
    if (r->cfg.max_wait_ms < r->cfg.debounce_ms)
        r->cfg.max_wait_ms = r->cfg.debounce_ms;
    r->timer.data = r;
    uv_timer_init(loop, &r->timer);
    r->verify_timer.data = r;
    uv_timer_init(loop, &r->verify_timer);
    r->open_timers = 2;
    for (int i = 0; i < 2; i++)
        metrics_hist_init(&r->duration[i], dur_buckets,
                          sizeof(dur_buckets) / sizeof(dur_buckets[0]));
    metrics_hist_init(&r->latency, dur_buckets, sizeof(dur_buckets) / sizeof(dur_buckets[0]));
    *ret = r;
    return 0;
}

static const char *str_or(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static size_t count_broken(json_t *failures)
{
    /* distinct objects named by any failure */
    json_t *seen = json_object();
    size_t i, j, n;
    json_t *f, *o;
    if (!seen)
        return 0;
    json_array_foreach(failures, i, f)
    {
        json_array_foreach(json_object_get(f, "objects"), j, o)
        {
            char key[768];
            snprintf(key, sizeof(key), "%s/%s/%s", str_or(o, "kind"), str_or(o, "namespace"),
                     str_or(o, "name"));
            json_object_set_new(seen, key, json_true());
        }
    }
    n = json_object_size(seen);
    json_decref(seen);
    return n;
}

/*
 * The failures of a translation as a set (canonical text -> true): a cluster with thousands of
 * broken objects compared them pairwise before, 10,000 x 10,000 json_equal() on the loop.
 */
static json_t *failure_set(json_t *failures)
{
    json_t *set = json_object();
    size_t i;
    json_t *f;
    json_array_foreach(failures, i, f)
    {
        char *k = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
        if (k)
            json_object_set_new(set, k, json_true());
        free(k);
    }
    return set;
}

static bool failure_seen(json_t *set, json_t *f)
{
    char *k = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
    bool seen = k && json_object_get(set, k);
    free(k);
    return seen;
}

static void log_failure(json_t *f)
{
    Buf names = BUF_INIT;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(f, "objects"), i, o)
    {
        const char *k = json_string_value(json_object_get(o, "kind"));
        const char *ns = json_string_value(json_object_get(o, "namespace"));
        const char *n = json_string_value(json_object_get(o, "name"));
        (void)buf_printf(&names, "%s%s %s%s%s", i ? ", " : "", k ? k : "?", ns && *ns ? ns : "",
                         ns && *ns ? "/" : "", n ? n : "?");
    }
    const char *msg = json_string_value(json_object_get(f, "message"));
    log_event(LOG_WARN, "reconcile", "translation failure", "{s:s, s:s}", "error", msg ? msg : "",
              "objects", names.data ? names.data : "");
    buf_deinit(&names);
}

/* Translate @store; no shared state is touched, so it may run in the thread pool. */
static int build_rev(ReconTranslateFn fn, Store *store, const XlateOptions *o, int fallback,
                     Revision **ret, double *ret_ms, bool *ret_failed)
{
    json_t *config = NULL, *failures = NULL;
    uint64_t t0 = uv_hrtime();
    int e = fn(store, o, &config, &failures);
    if (e < 0 || !config) {
        json_decref(config);
        json_decref(failures);
        *ret_ms = (double)(uv_hrtime() - t0) / 1e6;
        return e < 0 ? e : -ENOMEM;
    }
    *ret_failed = failures && json_array_size(failures);
    Revision *rev = revision_new_consume(config, failures, fallback);
    *ret_ms = (double)(uv_hrtime() - t0) / 1e6; /* translation plus canonical JSON and hash */
    if (!rev)
        return -ENOMEM;
    *ret = rev;
    return 0;
}

/*
 * Translate @store for publishing. With @prev (only EndpointSlices changed since its plan), redo
 * its targets; otherwise, or if that fails, translate everything, with a plan when configured.
 * @partial: @store holds only xlate_refresh_kinds, so a failed refresh is -EAGAIN. Touches no
 * shared state: runs in the thread pool.
 */
static int build_store_rev(const ReconConfig *cfg, Store *store, const XlateOptions *o,
                           Revision *prev, bool partial, Revision **ret, double *ret_ms,
                           bool *ret_failed, bool *ret_refreshed)
{
    uint64_t t0 = uv_hrtime();
    *ret_refreshed = false;
    if (prev) {
        char *json;
        size_t len, plen;
        XlatePlan *plan;
        const char *pjson = revision_json(prev, &plen);
        if (xlate_refresh_targets(store, revision_plan(prev), pjson, plen, &json, &len, &plan) ==
            0) {
            /* Targets never fail: the failures are the previous translation's. */
            json_t *failures = json_incref(revision_failures(prev));
            *ret_failed = json_array_size(failures) > 0;
            *ret = revision_new_planned(NULL, failures, plan, json, len);
            *ret_ms = (double)(uv_hrtime() - t0) / 1e6;
            *ret_refreshed = true;
            return *ret ? 0 : -ENOMEM;
        }
        if (partial) /* a snapshot of only the refresh's kinds: nothing else to do with it */
            return -EAGAIN;
    }
    if (!cfg->translate_plan)
        return build_rev(cfg->translate, store, o, 0, ret, ret_ms, ret_failed);
    json_t *config = NULL, *failures = NULL;
    XlatePlan *plan = NULL;
    int e = cfg->translate_plan(store, o, &config, &failures, &plan);
    if (e < 0 || !config) {
        json_decref(config);
        json_decref(failures);
        xlate_plan_free(plan);
        *ret_ms = (double)(uv_hrtime() - t0) / 1e6;
        return e < 0 ? e : -ENOMEM;
    }
    *ret_failed = failures && json_array_size(failures);
    *ret = revision_new_planned(config, failures, plan, NULL, 0);
    *ret_ms = (double)(uv_hrtime() - t0) / 1e6;
    return *ret ? 0 : -ENOMEM;
}

/* The current revision, when only its targets need redoing for the store as it is now. */
static Revision *refreshable(Recon *r)
{
    if (!r->cfg.translate_plan || !r->current || r->full_next) {
        r->full_next = false;
        return NULL;
    }
    const XlatePlan *p = revision_plan(r->current);
    return xlate_plan_reusable(p, r->store, &r->cfg.xopts) ? r->current : NULL;
}

static void count_translation(Recon *r, int e, double ms, bool failed)
{
    metrics_hist_observe(&r->duration[!(e < 0 || failed)], ms);
    if (e < 0 || failed)
        r->fail_count++;
    else
        r->ok_count++;
}

static void free_later(Recon *r, Store *store, json_t *tree);

int recon_build(Recon *r, Store *store, int fallback, Revision **ret)
{
    double ms = 0;
    bool failed = false;
    int e = build_rev(r->cfg.translate, store, &r->cfg.xopts, fallback, ret, &ms, &failed);
    count_translation(r, e, ms, failed);
    if (e == 0) {
        log_event(LOG_DEBUG, "reconcile", "translated", "{s:f, s:s, s:b}", "ms", ms, "hash",
                  revision_hash(*ret), "fallback", fallback);
        free_later(r, NULL, revision_take_tree(*ret));
    }
    return e;
}

/* A translation of the store finished (on the loop thread): report failures, publish. */
static void finish(Recon *r, Revision *rev, uint64_t first_ns)
{
    json_t *failures = revision_failures(rev);
    size_t i;
    json_t *f;
    json_t *prev = json_array_size(failures) ? failure_set(r->last_failures) : NULL;
    json_array_foreach(failures, i, f)
    {
        if (failure_seen(prev, f))
            continue;
        log_failure(f);
        if (r->cfg.failure)
            r->cfg.failure(r->cfg.ud, f);
    }
    json_decref(prev);
    json_decref(r->last_failures);
    r->last_failures = json_incref(failures);
    r->broken = count_broken(failures);

    if (r->current && !strcmp(revision_hash(r->current), revision_hash(rev))) {
        r->unchanged++;
        revision_move_plan(rev, r->current); /* it knows the store as it is now */
        revision_unref(rev);
        log_event(LOG_DEBUG, "reconcile", "configuration unchanged", "{s:s}", "hash",
                  revision_hash(r->current));
        r->cfg.revision(r->cfg.ud, r->current, false);
        return;
    }
    metrics_hist_observe(&r->latency, (double)(uv_hrtime() - first_ns) / 1e6);
    Revision *old = r->current; /* freed after publishing: a big config takes a while */
    r->current = rev;
    r->published++;
    size_t bytes;
    revision_json(rev, &bytes);
    log_event(LOG_INFO, "reconcile", "new configuration", "{s:s, s:I, s:I, s:i}", "hash",
              revision_hash(rev), "revision", (json_int_t)revision_seq(rev), "bytes",
              (json_int_t)bytes, "failures", (int)json_array_size(failures));
    r->cfg.revision(r->cfg.ud, rev, true);
    /* Sinks that want a tree have taken a reference by now; later ones load it from the bytes. */
    free_later(r, NULL, revision_take_tree(rev));
    revision_unref(old);
}

static void translate_now(Recon *r);

/* Merge the namespaces that changed since r->wns_plan (in the thread pool). */
static void do_ns_work(Recon *r)
{
    uint64_t t0 = uv_hrtime();
    Bytes *bytes = NULL;
    json_t *failures = NULL;
    r->wns_next = NULL;
    int e = xlate_ns_refresh(r->snapshot, r->wns_plan, &r->wopts, &bytes, &failures,
                             &r->wns_next, &r->wwhy);
    if (e == 0) {
        r->wfailed = json_array_size(failures) > 0;
        r->wrev = revision_new_bytes(failures, bytes);
        e = r->wrev ? 0 : -ENOMEM;
        if (r->wrev) /* the next merge writes into its bytes once it is replaced */
            revision_recycle_bytes(r->wrev);
    }
    /* The snapshot holds only what the merge reads: anything else is a full translation. */
    r->werr = e == -EXDEV ? -EAGAIN : e;
    r->wms = (double)(uv_hrtime() - t0) / 1e6;
}

static void do_work(uv_work_t *w)
{
    Recon *r = w->data;
    bool failed = false;
    r->wrev = NULL;
    if (r->wns) {
        do_ns_work(r);
        return;
    }
    r->werr = build_store_rev(&r->cfg, r->snapshot, &r->wopts, r->wprev, r->wprev != NULL,
                              &r->wrev, &r->wms, &failed, &r->wrefreshed);
    r->wfailed = failed;
}

typedef struct Garbage {
    uv_work_t work;
    Store *store;
    json_t *tree;
} Garbage;

static void garbage_work(uv_work_t *w)
{
    Garbage *g = w->data;
    bool tree = g->tree != NULL;
    /* A snapshot of a few namespaces is small: trimming would only hold the arenas' locks. */
    bool big = tree || store_count(g->store, NULL) > 1000;
    g->store = store_free(g->store);
    json_decref(g->tree);
    g->tree = NULL;
    if (big) /* the pool threads' malloc arenas and the translation arena keep what was freed */
        memtrim_released();
}

static void garbage_done(uv_work_t *w, int status)
{
    if (status < 0) /* cancelled: the loop is going away, free it here */
        garbage_work(w);
    free(w->data);
}

/*
 * Free a worker's snapshot and a published revision's tree in the thread pool: ~40 ms and
 * ~100 ms at 10,000 sets that neither the loop nor the next change's latency should pay. The
 * snapshot's objects are shared with the live store through jansson's atomic reference counts.
 */
static void free_later(Recon *r, Store *store, json_t *tree)
{
    Garbage *g = store || tree ? malloc(sizeof(*g)) : NULL;
    if (g) {
        *g = (Garbage){.store = store, .tree = tree};
        g->work.data = g;
        if (uv_queue_work(r->loop, &g->work, garbage_work, garbage_done) == 0)
            return;
        free(g);
    }
    store_free(store);
    json_decref(tree);
}

static void free_snapshot(Recon *r)
{
    free_later(r, r->snapshot, NULL);
    r->snapshot = NULL;
}

static void on_closed(uv_handle_t *h);

/*
 * Once closing and the pool holds nothing of ours (a translation, a plan being made, a check),
 * close the timers; the last close callback frees @r. Every one of those calls this when done.
 */
static void maybe_close(Recon *r)
{
    if (!r->closing || r->busy || r->ns_building || r->verifying || r->timers_closing)
        return;
    r->timers_closing = true;
    uv_close((uv_handle_t *)&r->timer, on_closed);
    uv_close((uv_handle_t *)&r->verify_timer, on_closed);
}

/* ---- namespace plans ---- */

typedef struct NsBuild {
    uv_work_t work;
    Recon *r;
    Store *snapshot;
    Revision *rev; /* the full translation of the snapshot */
    XlateOptions o;
    NsPlan *plan;
    const char *why;
    double ms;
} NsBuild;

static void ns_build_work(uv_work_t *w)
{
    NsBuild *b = w->data;
    uint64_t t0 = uv_hrtime();
    size_t len = revision_bytes(b->rev)->len;
    b->why = NULL;
    if (xlate_ns_build(b->snapshot, &b->o, revision_bytes(b->rev), &b->plan, &b->why) < 0 &&
        !b->why)
        b->why = "out of memory";
    /* The first merge writes into a buffer already in memory too, like those after it. */
    size_t cap = len + len / 8;
    char *spare = b->plan && len >= (1 << 20) ? malloc(cap) : NULL;
    if (spare) {
        memset(spare, 0, cap);
        util_spare_give(spare, cap);
    }
    b->ms = (double)(uv_hrtime() - t0) / 1e6;
}

static void set_ns_plan(Recon *r, NsPlan *p)
{
    xlate_ns_plan_free(r->ns_plan);
    r->ns_plan = p;
}

static void ns_build_done(uv_work_t *w, int status)
{
    NsBuild *b = w->data;
    Recon *r = b->r;
    r->ns_building = false;
    if (status == 0 && !r->closing && !r->ns_off) {
        if (b->plan) {
            r->ns_builds++;
            log_event(LOG_DEBUG, "reconcile", "namespace plan made", "{s:f}", "ms", b->ms);
            set_ns_plan(r, b->plan);
            b->plan = NULL;
        } else {
            log_event(LOG_DEBUG, "reconcile", "no namespace plan", "{s:s}", "why", b->why);
            r->ns_retry_ms = uv_now(r->loop) + NS_RETRY_MS;
        }
    }
    xlate_ns_plan_free(b->plan);
    revision_unref(b->rev);
    free_later(r, b->snapshot, NULL);
    free(b);
    maybe_close(r);
}

/* After a full translation: make a namespace plan of its snapshot (stolen) in the pool. */
static void start_ns_build(Recon *r, Store *snapshot, Revision *rev)
{
    NsBuild *b = NULL;
    if (r->cfg.ns_plans && !r->ns_off && !r->ns_building && uv_now(r->loop) >= r->ns_retry_ms &&
        (b = calloc(1, sizeof(*b)))) {
        *b = (NsBuild){.r = r, .snapshot = snapshot, .rev = revision_ref(rev), .o = r->cfg.xopts};
        b->work.data = b;
        if (uv_queue_work(r->loop, &b->work, ns_build_work, ns_build_done) == 0) {
            r->ns_building = true;
            return;
        }
        revision_unref(b->rev);
        free(b);
    }
    free_later(r, snapshot, NULL);
}

static void on_verify(uv_timer_t *t);

static void arm_verify(Recon *r)
{
    uint64_t wait = VERIFY_QUIET_MS, now = uv_now(r->loop);
    uint64_t next = r->last_verify + r->cfg.verify_every_ms;
    if (r->last_verify && next > now + wait)
        wait = next - now;
    uv_timer_start(&r->verify_timer, on_verify, wait, 0);
}

/*
 * The check of a merged revision: a full translation of a snapshot, on a work slot of its own so
 * that changes meanwhile are not held up behind it.
 */
typedef struct Verify {
    uv_work_t work;
    Recon *r;
    Store *snapshot;
    XlateOptions o;
    uint64_t gen;     /* the store's generation at the snapshot */
    Revision *merged; /* the revision checked */
    Revision *full;
} Verify;

static void verify_work(uv_work_t *w)
{
    Verify *v = w->data;
    json_t *cfg = NULL, *failures = NULL;
    if (xlate_run(v->snapshot, &v->o, &cfg, &failures) == 0 && cfg)
        v->full = revision_new_consume(cfg, failures, 0);
    else {
        json_decref(cfg);
        json_decref(failures);
    }
    if (v->full) { /* only its bytes are compared */
        json_decref(revision_take_tree(v->full));
        jarena_trim(); /* a check is rare: keep no translation's worth of free blocks for it */
    }
}

static void verify_done(uv_work_t *w, int status)
{
    Verify *v = w->data;
    Recon *r = v->r;
    r->verifying = false;
    bool current = v->merged == r->current && store_generation(r->store) == v->gen;
    if (status < 0 || r->closing || !v->full || !current || !r->unverified) {
        /* Inconclusive: the store moved on, or a newer revision is out. */
        if (!r->closing && r->unverified)
            arm_verify(r);
    } else if (!strcmp(revision_hash(v->full), revision_hash(r->current))) {
        r->unverified = false;
        r->ns_checks[0]++;
    } else {
        /* A bug: the merge missed something that reaches across namespaces. Correct it, loudly. */
        r->unverified = false;
        r->ns_checks[1]++;
        r->ns_off = true;
        set_ns_plan(r, NULL);
        log_event(LOG_ERROR, "reconcile",
                  "configuration merged from namespaces differs from a full translation; "
                  "publishing the full one and translating everything from now on",
                  "{s:s, s:s}", "merged", revision_hash(r->current), "full",
                  revision_hash(v->full));
        finish(r, v->full, uv_hrtime());
        v->full = NULL;
    }
    revision_unref(v->full);
    revision_unref(v->merged);
    free_later(r, v->snapshot, NULL);
    free(v);
    maybe_close(r);
}

static void after_work(uv_work_t *w, int status)
{
    Recon *r = w->data;
    Revision *rev = r->wrev;
    bool ns = r->wns;
    r->busy = false;
    r->wrev = NULL;
    r->wns = false;
    r->wprev = revision_unref(r->wprev);
    xlate_ns_plan_free(r->wns_plan);
    r->wns_plan = NULL;
    NsPlan *next = r->wns_next;
    r->wns_next = NULL;
    int e = status < 0 ? status : r->werr;
    if (e != -EAGAIN)
        count_translation(r, e, r->wms, r->wfailed);
    if (e == 0 && r->wrefreshed)
        r->refreshes++;
    if (r->closing) {
        revision_unref(rev);
        xlate_ns_plan_free(next);
        r->snapshot = store_free(r->snapshot);
        maybe_close(r);
        return;
    }
    if (e == -EAGAIN) {
        /* Redoing targets or namespaces did not work out: translate everything, at once. */
        if (ns)
            log_event(LOG_DEBUG, "reconcile", "translating everything", "{s:s}", "why",
                      r->wwhy ? r->wwhy : "");
        else
            log_f(LOG_WARN, "reconcile", "refreshing targets failed; translating everything");
        r->full_next = true;
        r->again = true;
        r->dirty = true;
    } else if (e < 0) {
        log_event(LOG_ERROR, "reconcile", "translation failed", "{s:s}", "err", strerror(-e));
    } else {
        log_event(LOG_DEBUG, "reconcile", "translated", "{s:f, s:s, s:b, s:b}", "ms", r->wms,
                  "hash", revision_hash(rev), "targets_only", r->wrefreshed, "namespaces", ns);
        if (ns) {
            r->ns_refreshes++;
            set_ns_plan(r, next);
            next = NULL;
        }
        bool full = !ns && !r->wrefreshed;
        Revision *keep = full ? revision_ref(rev) : NULL;
        Revision *before = r->current;
        finish(r, rev, r->snap_first_ns);
        if (ns && r->current != before) {
            r->unverified = true;
            arm_verify(r);
        } else if (full) {
            r->unverified = false; /* everything was translated: nothing to check */
        }
        if (full) { /* the snapshot is the whole store: make a plan of it */
            start_ns_build(r, r->snapshot, keep);
            r->snapshot = NULL;
            revision_unref(keep);
        }
    }
    xlate_ns_plan_free(next);
    free_snapshot(r);
    if (r->again) {
        r->again = false;
        translate_now(r);
    }
}

/* Start the worker on r->snapshot; false when the pool refused (the snapshot is then freed). */
static bool start_worker(Recon *r, uint64_t first_ns)
{
    r->wopts = r->cfg.xopts;
    r->snap_first_ns = first_ns;
    r->wgen = store_generation(r->store);
    r->work.data = r;
    if (uv_queue_work(r->loop, &r->work, do_work, after_work) == 0) {
        r->busy = true;
        return true;
    }
    r->snapshot = store_free(r->snapshot);
    r->wprev = revision_unref(r->wprev);
    xlate_ns_plan_free(r->wns_plan);
    r->wns_plan = NULL;
    r->wns = false;
    return false;
}

static void on_verify(uv_timer_t *t)
{
    Recon *r = t->data;
    if (r->closing || !r->unverified || r->verifying)
        return;
    if (r->busy || r->dirty) { /* not quiet yet */
        arm_verify(r);
        return;
    }
    Verify *v = calloc(1, sizeof(*v));
    if (!v || store_clone(r->store, &v->snapshot) < 0) {
        free(v);
        return;
    }
    v->r = r;
    v->o = r->cfg.xopts;
    v->gen = store_generation(r->store);
    v->merged = revision_ref(r->current);
    v->work.data = v;
    if (uv_queue_work(r->loop, &v->work, verify_work, verify_done) == 0) {
        r->verifying = true;
        r->last_verify = uv_now(r->loop);
        return;
    }
    revision_unref(v->merged);
    store_free(v->snapshot);
    free(v);
}

static void translate_now(Recon *r)
{
    uint64_t first_ns = r->first_dirty_ns;
    r->dirty = false;
    uv_timer_stop(&r->timer);
    if (r->busy) {
        r->again = true; /* the store moved on while translating: once more afterwards */
        r->dirty = true;
        return;
    }
    bool full = r->full_next;
    Revision *prev = refreshable(r);
    if (r->cfg.threaded && !prev && !full && r->cfg.ns_plans && !r->ns_off &&
        xlate_ns_plan_usable(r->ns_plan, &r->cfg.xopts)) {
        /* Only the namespaces that changed are translated again (in a small snapshot). */
        const char *why = NULL;
        int e = xlate_ns_snapshot(r->store, r->ns_plan, &r->snapshot, &why);
        if (e == 0) {
            r->wns = true;
            r->wns_plan = xlate_ns_plan_ref(r->ns_plan);
            if (start_worker(r, first_ns))
                return;
        } else {
            log_event(LOG_DEBUG, "reconcile", "translating everything", "{s:s}", "why",
                      why ? why : strerror(-e));
        }
    }
    /* A refresh reads only a few kinds: copying just those keeps the snapshot cheap. */
    if (r->cfg.threaded &&
        store_clone_kinds(r->store, prev ? xlate_refresh_kinds : NULL, &r->snapshot) == 0) {
        /* translate a private snapshot in the thread pool: the loop keeps serving */
        r->wprev = revision_ref(prev);
        if (start_worker(r, first_ns))
            return;
    }
    Revision *rev = NULL;
    double ms = 0;
    bool failed = false, refreshed;
    int e = build_store_rev(&r->cfg, r->store, &r->cfg.xopts, prev, false, &rev, &ms, &failed,
                            &refreshed);
    count_translation(r, e, ms, failed);
    if (e == 0 && refreshed)
        r->refreshes++;
    if (e < 0) {
        log_event(LOG_ERROR, "reconcile", "translation failed", "{s:s}", "err", strerror(-e));
        return;
    }
    log_event(LOG_DEBUG, "reconcile", "translated", "{s:f, s:s, s:b}", "ms", ms, "hash",
              revision_hash(rev), "targets_only", refreshed);
    finish(r, rev, first_ns);
}

static void on_timer(uv_timer_t *t)
{
    translate_now(t->data);
}

void recon_mark_dirty(Recon *r)
{
    uint64_t now = uv_now(r->loop);
    if (!r->dirty) {
        r->dirty = true;
        r->first_dirty_ms = now;
        r->first_dirty_ns = uv_hrtime();
        uv_timer_start(&r->timer, on_timer, r->cfg.debounce_ms, 0);
        return;
    }
    /* restart the quiet period, but never beyond the bound counted from the first change */
    uint64_t deadline = r->first_dirty_ms + r->cfg.max_wait_ms;
    uint64_t due = now + r->cfg.debounce_ms;
    if (due > deadline)
        due = deadline;
    uv_timer_start(&r->timer, on_timer, due > now ? due - now : 0, 0);
}

void recon_flush(Recon *r)
{
    if (r->dirty)
        translate_now(r);
}

bool recon_ns_ready(const Recon *r)
{
    return r->ns_plan && !r->ns_building;
}

bool recon_pending(const Recon *r)
{
    return r->dirty || r->busy;
}

void recon_set_current(Recon *r, Revision *rev)
{
    revision_ref(rev);
    revision_unref(r->current);
    r->current = rev;
}

Revision *recon_current(Recon *r)
{
    return r->current;
}

void recon_set_expressions(Recon *r, bool on)
{
    if (r->cfg.xopts.expressions == on)
        return;
    r->cfg.xopts.expressions = on;
    log_event(LOG_INFO, "reconcile", "router flavor changed", "{s:s}", "flavor",
              on ? "expressions" : "traditional_compatible");
    recon_mark_dirty(r);
}

const XlateOptions *recon_options(const Recon *r)
{
    return &r->cfg.xopts;
}

void recon_metrics(Recon *r, Buf *out)
{
    size_t n = 0;
    metrics_header(out, "ingress_controller_translation_count", "counter",
                   "Count of translations from Kubernetes state to Kong state.");
    buf_printf(out, "ingress_controller_translation_count{success=\"true\"} %llu\n", r->ok_count);
    buf_printf(out, "ingress_controller_translation_count{success=\"false\"} %llu\n",
               r->fail_count);
    metrics_header(out, "ingress_controller_translation_duration_milliseconds", "histogram",
                   "Time of one translation in milliseconds.");
    metrics_hist_write(&r->duration[1], out, "ingress_controller_translation_duration_milliseconds",
                       "success=\"true\"");
    metrics_hist_write(&r->duration[0], out, "ingress_controller_translation_duration_milliseconds",
                       "success=\"false\"");
    metrics_header(out, "ingress_controller_translation_broken_resource_count", "gauge",
                   "Kubernetes objects that failed to translate in the last translation.");
    buf_printf(out, "ingress_controller_translation_broken_resource_count %zu\n", r->broken);
    metrics_header(out, "tether_revisions_published_total", "counter",
                   "Configuration revisions with a new hash handed to the sinks.");
    buf_printf(out, "tether_revisions_published_total %llu\n", r->published);
    metrics_header(out, "tether_translation_targets_only_total", "counter",
                   "Translations that only redid upstream targets (nothing but EndpointSlices "
                   "changed).");
    buf_printf(out, "tether_translation_targets_only_total %llu\n", r->refreshes);
    metrics_header(out, "tether_translation_namespaces_only_total", "counter",
                   "Translations that redid only the namespaces that changed.");
    buf_printf(out, "tether_translation_namespaces_only_total %llu\n", r->ns_refreshes);
    metrics_header(out, "tether_translation_namespace_checks_total", "counter",
                   "Configurations merged from namespaces checked against a full translation.");
    buf_printf(out,
               "tether_translation_namespace_checks_total{result=\"match\"} %llu\n"
               "tether_translation_namespace_checks_total{result=\"mismatch\"} %llu\n",
               r->ns_checks[0], r->ns_checks[1]);
    metrics_header(out, "tether_revisions_unchanged_total", "counter",
                   "Translations whose hash equalled the published one (nothing published).");
    buf_printf(out, "tether_revisions_unchanged_total %llu\n", r->unchanged);
    if (r->current)
        revision_json(r->current, &n);
    metrics_header(out, "tether_revision_size_bytes", "gauge",
                   "Size of the current configuration (canonical JSON).");
    buf_printf(out, "tether_revision_size_bytes %zu\n", n);
    metrics_header(out, "tether_revision_sequence", "gauge",
                   "Sequence number of the current revision.");
    buf_printf(out, "tether_revision_sequence %llu\n",
               r->current ? (unsigned long long)revision_seq(r->current) : 0ULL);
    metrics_header(out, "tether_reconcile_latency_milliseconds", "histogram",
                   "Time from the first store change to the new revision, in milliseconds.");
    metrics_hist_write(&r->latency, out, "tether_reconcile_latency_milliseconds", "");
    json_t *kinds = r->store ? store_kinds(r->store) : NULL;
    size_t i;
    json_t *k;
    metrics_header(out, "tether_store_objects", "gauge", "Objects in the store by kind.");
    json_array_foreach(kinds, i, k)
    {
        buf_printf(out, "tether_store_objects{kind=\"%s\"} %zu\n", json_string_value(k),
                   store_count(r->store, json_string_value(k)));
    }
}

static void on_closed(uv_handle_t *h)
{
    Recon *r = h->data;
    if (--r->open_timers > 0)
        return;
    void (*done)(void *) = r->done;
    void *ud = r->done_ud;
    xlate_ns_plan_free(r->ns_plan);
    revision_unref(r->current);
    json_decref(r->last_failures);
    free(r);
    if (done)
        done(ud);
}

void recon_close(Recon *r, void (*done)(void *ud), void *ud)
{
    r->done = done;
    r->done_ud = ud;
    r->closing = true;
    uv_timer_stop(&r->timer);
    uv_timer_stop(&r->verify_timer);
    maybe_close(r); /* or the last pool job, once it is done with its snapshot */
}
