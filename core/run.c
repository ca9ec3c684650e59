/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `tether run`: the controller. One libuv loop carries everything: a source (manifests folder or
 * a Kubernetes cluster) feeds the store, the reconciler turns changes into revisions, and the
 * sinks (declarative file, local gateways, Konnect) pick them up. This file wires the modules
 * and plays SinkHost: it tracks what each sink applied, saves accepted revisions to
 * --state-dir, feeds Konnect with what the gateways accepted, builds fallback revisions, and
 * serves the health, metrics and diagnostics endpoints.
 */
#include "run.h"
#include "mtls.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "httpd.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "reconcile.h"
#include "revision.h"
#include "run_features.h"
#include "sink.h"
#include "sink_file.h"
#include "source_manifests.h"
#include "state.h"
#include "store.h"
#include "util.h"
#include "xlate.h"

#if RUN_HAVE_K8S
#include "k8s.h"
#endif
#if RUN_HAVE_DP
#include "dp.h"
#endif
#if RUN_HAVE_KONNECT
#include "konnect.h"
#endif

#define MOD "run"
#define DEFAULT_ADMIN_URL "http://localhost:8001"
/* How long the first translation waits for the gateways to report their router flavor. */
#define FLAVOR_WAIT_MS 3000
#define HOUSEKEEPING_MS 200

enum { SLOT_FILE, SLOT_DP, SLOT_KONNECT, SLOT_N };

typedef struct Slot {
    Sink *sink;
    uint64_t seq;  /* last revision reported through applied() */
    int ok;        /* its result */
    bool reported; /* applied() was called at least once */
} Slot;

typedef struct Ctl {
    uv_loop_t loop;
    RunConfig cfg;
    XlateOptions xopts;
    Http *http;
    Store *store;
    Recon *recon;
    State *state;
    ManifestSource *msrc;
#if RUN_HAVE_K8S
    K8s *k8s;
#endif
    Slot slots[SLOT_N];
    SinkHost host;
    Metrics *metrics;
    Httpd *health, *metrics_srv, *diag;
    uv_signal_t sigterm, sigint;
    uv_timer_t housekeeping;
    uv_timer_t discover;

    bool leader;       /* may publish (always, unless leader election says otherwise) */
    bool synced;       /* the source delivered its initial state */
    bool ready;        /* a revision was handed to the sinks */
    bool flavor_known; /* router flavor fixed by flag or reported by a gateway */
    uint64_t start_ms;
    Revision *held;      /* first revision, held until the router flavor is known */
    Revision *published; /* last revision handed to the sinks */
    Revision *accepted;  /* last revision the gateways (or the primary sink) accepted */
    uint64_t restored_seq;
    json_t *gateways_sent; /* last gateway list given to Konnect */
    uint64_t once_seq;     /* --once: the revision every sink must report; 0 until known */
    bool once_done;
    int exit_code;
    bool stopping;
    int closing; /* close callbacks still outstanding in the current stage */
    int stage;
} Ctl;

/* ---- publishing ----------------------------------------------------------------------------- */

static Sink *primary_sink(Ctl *c)
{
    /* whose acceptance counts as "accepted": the gateways, else the file, else Konnect */
    if (c->slots[SLOT_DP].sink)
        return c->slots[SLOT_DP].sink;
    if (c->slots[SLOT_FILE].sink)
        return c->slots[SLOT_FILE].sink;
    return c->slots[SLOT_KONNECT].sink;
}

static void publish(Ctl *c, Revision *rev)
{
    if (c->stopping)
        return;
    if (!c->leader) {
        log_event(LOG_DEBUG, MOD, "not the leader: revision kept, not published", "{s:s}", "hash",
                  revision_hash(rev));
        return;
    }
    revision_ref(rev);
    revision_unref(c->published);
    c->published = rev;
    for (int i = 0; i < SLOT_N; i++) {
        Sink *s = c->slots[i].sink;
        /* Konnect only gets what the gateways accepted; without gateways, the revision itself */
        if (!s || (i == SLOT_KONNECT && c->slots[SLOT_DP].sink))
            continue;
        s->ops->publish(s, rev);
    }
    if (!c->ready) {
        c->ready = true;
        log_event(LOG_INFO, MOD, "ready: first configuration handed to the sinks", "{s:s}", "hash",
                  revision_hash(rev));
    }
}

static void check_once(Ctl *c);

static void on_revision(void *ud, Revision *rev, bool changed)
{
    Ctl *c = ud;
    if (c->cfg.once && !c->once_seq)
        c->once_seq = revision_seq(rev);
    if (!c->leader && !c->ready) {
        /* a follower with warm caches is ready to take over; it publishes nothing */
        c->ready = true;
        log_event(LOG_INFO, MOD, "ready (follower): caches synced and translated", "{}");
    }
    if (c->held && c->flavor_known) {
        /* the held revision waited for the router flavor: this result replaces or confirms it */
        if (!changed)
            publish(c, c->held);
        c->held = revision_unref(c->held);
        if (!changed)
            return;
    }
    if (!changed) {
        /* e.g. the sources produced what --state-dir restored: nothing to publish */
        check_once(c);
        return;
    }
    if (!c->flavor_known) {
        revision_unref(c->held);
        c->held = revision_ref(rev);
        return;
    }
    publish(c, rev);
}

#if RUN_HAVE_K8S
/*
 * An object reference for an Event from a failure's {"kind","namespace","name","uid","group",
 * "version"} (new reference): the object's own metadata when the store has it.
 */
static json_t *event_ref(Ctl *c, json_t *o)
{
    const char *kind = json_string_value(json_object_get(o, "kind"));
    const char *ns = json_string_value(json_object_get(o, "namespace"));
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *uid = json_string_value(json_object_get(o, "uid"));
    const char *group = json_string_value(json_object_get(o, "group"));
    const char *version = json_string_value(json_object_get(o, "version"));
    if (!kind || !name)
        return NULL;
    json_t *have = store_get(c->store, kind, ns ? ns : "", name);
    if (have && (!uid || !*uid))
        uid = obj_uid(have);
    char api[256];
    if (have && *obj_api_version(have))
        snprintf(api, sizeof(api), "%s", obj_api_version(have));
    else
        snprintf(api, sizeof(api), "%s%s%s", group && *group ? group : "",
                 group && *group ? "/" : "", version ? version : "v1");
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "kind", kind, "apiVersion", api, "metadata",
                     "name", name, "namespace", ns ? ns : "", "uid", uid ? uid : "");
}
#endif

static void on_translation_failure(void *ud, json_t *failure)
{
    Ctl *c = ud;
#if RUN_HAVE_K8S
    if (c->k8s && c->cfg.emit_events && c->leader) {
        const char *msg = json_string_value(json_object_get(failure, "message"));
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(failure, "objects"), i, o)
        {
            json_t *ref = event_ref(c, o);
            if (ref)
                k8s_event(c->k8s, ref, "Warning", "KongConfigurationTranslationFailed",
                          msg ? msg : "translation failed");
            json_decref(ref);
        }
    }
#else
    (void)c;
    (void)failure;
#endif
}

/* ---- SinkHost ------------------------------------------------------------------------------- */

static int slot_of(Ctl *c, Sink *s)
{
    for (int i = 0; i < SLOT_N; i++)
        if (c->slots[i].sink == s)
            return i;
    return -1;
}

static void check_once(Ctl *c)
{
    if (!c->cfg.once || !c->once_seq || c->once_done || c->stopping)
        return;
    int ok = 1;
    for (int i = 0; i < SLOT_N; i++) {
        Slot *sl = &c->slots[i];
        if (!sl->sink)
            continue;
        if (i == SLOT_KONNECT && c->slots[SLOT_DP].sink) {
            Slot *dp = &c->slots[SLOT_DP];
            /* Konnect never sees a revision the gateways refused: that settles it */
            if (dp->reported && dp->seq >= c->once_seq && !dp->ok)
                continue;
        }
        if (!sl->reported || sl->seq < c->once_seq)
            return;
        ok = ok && sl->ok;
    }
    c->once_done = true;
    c->exit_code = ok ? 0 : 1;
    log_event(ok ? LOG_INFO : LOG_ERROR, MOD, "--once: every sink handled the configuration",
              "{s:b}", "success", ok);
    uv_stop(&c->loop); /* run_main() then closes everything */
}

static void on_applied(SinkHost *h, Sink *sink, Revision *rev, int ok)
{
    Ctl *c = h->ud;
    int i = slot_of(c, sink);
    if (i < 0 || c->stopping)
        return;
    Slot *sl = &c->slots[i];
    if (!sl->reported || revision_seq(rev) >= sl->seq) {
        sl->seq = revision_seq(rev);
        sl->ok = ok;
        sl->reported = true;
    }
    log_event(ok ? LOG_DEBUG : LOG_WARN, MOD,
              ok ? "sink applied the configuration" : "sink failed to apply the configuration",
              "{s:s, s:s, s:I}", "sink", sink->ops->kind, "hash", revision_hash(rev), "revision",
              (json_int_t)revision_seq(rev));
#if RUN_HAVE_KONNECT
    if (i == SLOT_DP && c->slots[SLOT_KONNECT].sink)
        konnect_sink_set_dataplane_ok(c->slots[SLOT_KONNECT].sink, ok);
#endif
    if (ok && sink == primary_sink(c)) {
        revision_ref(rev);
        revision_unref(c->accepted);
        c->accepted = rev;
        if (c->state)
            state_save(c->state, rev);
        if (i == SLOT_DP && c->slots[SLOT_KONNECT].sink) {
            Sink *k = c->slots[SLOT_KONNECT].sink;
            k->ops->publish(k, rev);
        }
    }
    check_once(c);
}

static Revision *on_rejected(SinkHost *h, Sink *sink, Revision *rev, json_t *broken)
{
    Ctl *c = h->ud;
    (void)sink;
#if RUN_HAVE_DP
    if (c->stopping || revision_seq(rev) == c->restored_seq)
        return NULL; /* the restored revision has no store behind it */
    Store *fb_store = NULL;
    Revision *fb = NULL;
    int r = dp_fallback_store(c->store, broken, &fb_store);
    if (r == 0)
        r = recon_build(c->recon, fb_store, 1, &fb);
    store_free(fb_store);
    if (r < 0) {
        log_event(LOG_ERROR, MOD, "cannot build a fallback configuration", "{s:s}", "err",
                  strerror(-r));
        return NULL;
    }
    log_event(LOG_WARN, MOD, "fallback configuration built without the rejected objects",
              "{s:s, s:s, s:i}", "rejected", revision_hash(rev), "fallback", revision_hash(fb),
              "broken", (int)json_array_size(broken));
    return fb;
#else
    (void)c;
    (void)rev;
    (void)broken;
    return NULL;
#endif
}

/* ---- store changes -------------------------------------------------------------------------- */

static void store_changed(Ctl *c)
{
    if (c->synced)
        recon_mark_dirty(c->recon);
}

static void on_manifests_changed(void *ud)
{
    store_changed(ud);
}

#if RUN_HAVE_DP
static void on_discover(uv_timer_t *t)
{
    Ctl *c = t->data;
    Sink *dp = c->slots[SLOT_DP].sink;
    const char *svc = c->cfg.kong_admin_svc;
    if (!dp || !svc || c->stopping)
        return;
    const char *slash = strchr(svc, '/');
    size_t nsl = (size_t)(slash - svc);
    json_t *slices = json_array();
    size_t n = 0;
    json_t *const *all = store_list(c->store, "EndpointSlice", &n);
    for (size_t i = 0; i < n; i++) {
        const char *ns = obj_ns(all[i]);
        const char *owner = obj_label(all[i], "kubernetes.io/service-name");
        if (strlen(ns) == nsl && !strncmp(ns, svc, nsl) && owner && !strcmp(owner, slash + 1))
            json_array_append_new(slices, obj_slice_expand(all[i])); /* as the API has it */
    }
    dp_sink_discovered(dp, slices);
    json_decref(slices);
}
#endif

#if RUN_HAVE_K8S
/* An EndpointSlice of the Admin API Service changed: tell the gateway discovery soon. */
static void maybe_discover(Ctl *c, const char *kind, const char *ns)
{
#if RUN_HAVE_DP
    const char *svc = c->cfg.kong_admin_svc;
    if (!svc || strcmp(kind, "EndpointSlice"))
        return;
    const char *slash = strchr(svc, '/');
    if (strlen(ns) != (size_t)(slash - svc) || strncmp(ns, svc, (size_t)(slash - svc)))
        return;
    if (!uv_is_active((uv_handle_t *)&c->discover))
        uv_timer_start(&c->discover, on_discover, 0, 0);
#else
    (void)c;
    (void)kind;
    (void)ns;
#endif
}

static void on_k8s_upsert(void *ud, json_t *obj)
{
    Ctl *c = ud;
    int r = store_put(c->store, obj);
    if (r < 0) {
        log_event(LOG_WARN, MOD, "object ignored", "{s:s, s:s, s:s, s:s}", "kind", obj_kind(obj),
                  "namespace", obj_ns(obj), "name", obj_name(obj), "err", strerror(-r));
        return;
    }
    if (r > 0) {
        maybe_discover(c, obj_kind(obj), obj_ns(obj));
        store_changed(c);
    }
}

static void on_k8s_remove(void *ud, const char *kind, const char *ns, const char *name)
{
    Ctl *c = ud;
    if (store_delete(c->store, kind, ns, name) > 0) {
        maybe_discover(c, kind, ns ? ns : "");
        store_changed(c);
    }
}

static void on_k8s_synced(void *ud)
{
    Ctl *c = ud;
    if (c->synced)
        return;
    c->synced = true;
    store_bulk(c->store, false); /* watch events from now on: single updates */
    log_event(LOG_INFO, MOD, "Kubernetes caches synced", "{s:i}", "objects",
              (int)store_count(c->store, NULL));
    recon_mark_dirty(c->recon);
}

static void on_k8s_leader(void *ud, bool is_leader)
{
    Ctl *c = ud;
    if (c->leader == is_leader)
        return;
    c->leader = is_leader;
    log_event(LOG_INFO, MOD, is_leader ? "became the leader" : "lost the leadership", "{s:s}",
              "identity", c->cfg.identity);
    Revision *cur = recon_current(c->recon);
    if (is_leader && cur && c->flavor_known)
        publish(c, cur);
}
#endif

/* ---- housekeeping: router flavor, Konnect's gateway list ------------------------------------ */

static void on_housekeeping(uv_timer_t *t)
{
    Ctl *c = t->data;
    if (c->stopping)
        return;
    memtrim_tick(&c->loop);
#if RUN_HAVE_DP
    Sink *dp = c->slots[SLOT_DP].sink;
    if (dp && !c->cfg.router_flavor) {
        const char *f = dp_router_flavor(dp);
        if (f)
            recon_set_expressions(c->recon, !strcmp(f, "expressions"));
        if (!c->flavor_known && (f || util_now_ms() - c->start_ms >= FLAVOR_WAIT_MS)) {
            c->flavor_known = true;
            if (!f)
                log_event(LOG_WARN, MOD,
                          "no gateway reported its router flavor yet, translating "
                          "for traditional_compatible",
                          "{s:i}", "waited_ms", FLAVOR_WAIT_MS);
            /*
             * Publish what is held, unless a translation is coming (the flavor changed, or the
             * store did): then on_revision() publishes its result, or the held one if equal.
             */
            if (c->held && !recon_pending(c->recon)) {
                publish(c, c->held);
                c->held = revision_unref(c->held);
            }
        }
    }
#if RUN_HAVE_KONNECT
    Sink *k = c->slots[SLOT_KONNECT].sink;
    if (dp && k) {
        json_t *gws = dp_sink_gateways(dp);
        if (gws && !json_equal(gws, c->gateways_sent)) {
            konnect_sink_set_gateways(k, gws);
            json_decref(c->gateways_sent);
            c->gateways_sent = json_incref(gws);
        }
        json_decref(gws);
    }
#endif
#endif
    (void)c;
}

/* ---- endpoints ------------------------------------------------------------------------------ */

static int on_health(void *ud, const char *path, Buf *body, const char **ctype)
{
    Ctl *c = ud;
    (void)ctype;
    if (!strcmp(path, "/healthz")) {
        buf_puts(body, "ok\n");
        return 200;
    }
    if (!strcmp(path, "/readyz")) {
        buf_puts(body, c->ready ? "ok\n" : "no configuration handed to the sinks yet\n");
        return c->ready ? 200 : 503;
    }
    buf_puts(body, "not found\n");
    return 404;
}

static int on_metrics(void *ud, const char *path, Buf *body, const char **ctype)
{
    Ctl *c = ud;
    if (strcmp(path, "/metrics")) {
        buf_puts(body, "not found\n");
        return 404;
    }
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    metrics_render(c->metrics, body);
    return 200;
}

static int on_diag(void *ud, const char *path, Buf *body, const char **ctype)
{
    Ctl *c = ud;
    Revision *cur = c->published ? c->published : recon_current(c->recon);
    *ctype = "application/json";
    if (!strcmp(path, "/debug/config")) {
        if (!cur) {
            buf_puts(body, "{}\n");
            return 503;
        }
        size_t n;
        const char *js = revision_json(cur, &n);
        buf_append(body, js, n);
        return 200;
    }
    json_t *out = NULL;
    if (!strcmp(path, "/debug/failures")) {
        Revision *last = recon_current(c->recon);
        out = json_pack("{s:s?, s:O}", "hash", last ? revision_hash(last) : NULL, "failures",
                        last ? revision_failures(last) : json_array());
        if (!last)
            json_decref(json_object_get(out, "failures")); /* the O above took its own ref */
    } else if (!strcmp(path, "/debug/sinks")) {
        out = json_object();
        json_t *arr = json_array();
        for (int i = 0; i < SLOT_N; i++) {
            Slot *sl = &c->slots[i];
            if (!sl->sink)
                continue;
            json_t *st = sl->sink->ops->status ? sl->sink->ops->status(sl->sink) : NULL;
            if (!st)
                st = json_object();
            json_object_set_new(st, "kind", json_string(sl->sink->ops->kind));
            json_object_set_new(st, "applied_revision", json_integer((json_int_t)sl->seq));
            json_object_set_new(st, "applied_ok",
                                sl->reported ? json_boolean(sl->ok) : json_null());
#if RUN_HAVE_DP
            if (i == SLOT_DP)
                json_object_set_new(st, "gateways", dp_sink_gateways(sl->sink));
#endif
            json_array_append_new(arr, st);
        }
        json_object_set_new(out, "sinks", arr);
        json_object_set_new(out, "published",
                            c->published ? json_string(revision_hash(c->published)) : json_null());
        json_object_set_new(out, "accepted",
                            c->accepted ? json_string(revision_hash(c->accepted)) : json_null());
        json_object_set_new(out, "leader", json_boolean(c->leader));
        json_object_set_new(out, "ready", json_boolean(c->ready));
    } else {
        buf_puts(body, "{\"error\":\"not found\"}\n");
        return 404;
    }
    char *s = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
    json_decref(out);
    if (!s)
        return 500;
    buf_puts(body, s);
    buf_putc(body, '\n');
    free(s);
    return 200;
}

static void collect_recon(void *ud, Buf *out)
{
    Ctl *c = ud;
    recon_metrics(c->recon, out);
    metrics_header(out, "tether_ready", "gauge", "1 once a configuration was handed to the sinks.");
    buf_printf(out, "tether_ready %d\n", c->ready);
    metrics_header(out, "tether_leader", "gauge", "1 when this replica may publish.");
    buf_printf(out, "tether_leader %d\n", c->leader);
    metrics_header(out, "tether_sink_applied_revision", "gauge",
                   "Last revision each sink reported, with its result.");
    for (int i = 0; i < SLOT_N; i++) {
        Slot *sl = &c->slots[i];
        if (sl->sink)
            buf_printf(out, "tether_sink_applied_revision{sink=\"%s\",success=\"%s\"} %llu\n",
                       sl->sink->ops->kind, sl->ok ? "true" : "false", (unsigned long long)sl->seq);
    }
}

static void collect_modules(void *ud, Buf *out)
{
    Ctl *c = ud;
#if RUN_HAVE_DP
    if (c->slots[SLOT_DP].sink)
        dp_sink_metrics(c->slots[SLOT_DP].sink, out);
#endif
#if RUN_HAVE_KONNECT
    if (c->slots[SLOT_KONNECT].sink)
        konnect_sink_metrics(c->slots[SLOT_KONNECT].sink, out);
#endif
#if RUN_HAVE_DP || RUN_HAVE_KONNECT
    {
        /* Expiry and reloads of the client certificates of both sinks (mtls/). */
        Mtls *list[2];
        size_t n = 0;
#if RUN_HAVE_DP
        if (c->slots[SLOT_DP].sink && dp_sink_mtls(c->slots[SLOT_DP].sink))
            list[n++] = dp_sink_mtls(c->slots[SLOT_DP].sink);
#endif
#if RUN_HAVE_KONNECT
        if (c->slots[SLOT_KONNECT].sink && konnect_sink_mtls(c->slots[SLOT_KONNECT].sink))
            list[n++] = konnect_sink_mtls(c->slots[SLOT_KONNECT].sink);
#endif
        if (n)
            mtls_metrics(list, n, out);
    }
#endif
#if RUN_HAVE_K8S
    if (c->k8s)
        k8s_metrics(c->k8s, out);
#endif
    (void)c;
    (void)out;
}

static int start_server(Ctl *c, const char *name, const char *addr, HttpdHandler fn, Httpd **ret,
                        bool fatal)
{
    char *err = NULL;
    if (!*addr || !strcmp(addr, "0") || !strcmp(addr, "off"))
        return 0;
    int r = httpd_new(&c->loop, name, addr, fn, c, ret, &err);
    if (r < 0) {
        log_event(fatal ? LOG_ERROR : LOG_WARN, MOD,
                  fatal ? "cannot start server" : "cannot start server, going on without it",
                  "{s:s, s:s}", "server", name, "err", err ? err : strerror(-r));
        free(err);
        return fatal ? r : 0;
    }
    return 0;
}

/* ---- shutdown -------------------------------------------------------------------------------- */

static void close_stage(Ctl *c);

static void on_closed(void *ud)
{
    Ctl *c = ud;
    if (--c->closing == 0)
        close_stage(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    on_closed(h->data);
}

/*
 * Stage 1: sources, reconciler, sinks, servers, timers (sinks finish or abort their requests).
 * Stage 2: state (its last write completes) and the shared Http, once nobody uses it.
 */
static void close_stage(Ctl *c)
{
    c->stage++;
    c->closing = 1; /* guard: the stage ends when this drops to 0 */
    if (c->stage == 1) {
        if (c->msrc) {
            c->closing++;
            msrc_close(c->msrc, on_closed, c);
            c->msrc = NULL;
        }
#if RUN_HAVE_K8S
        if (c->k8s) {
            c->closing++;
            k8s_close(c->k8s, on_closed, c);
            c->k8s = NULL;
        }
#endif
        if (c->recon) {
            c->closing++;
            recon_close(c->recon, on_closed, c);
        }
        for (int i = 0; i < SLOT_N; i++) {
            if (c->slots[i].sink) {
                c->closing++;
                c->slots[i].sink->ops->close(c->slots[i].sink, on_closed, c);
                c->slots[i].sink = NULL;
            }
        }
        Httpd **srv[] = {&c->health, &c->metrics_srv, &c->diag};
        for (size_t i = 0; i < 3; i++) {
            if (*srv[i]) {
                c->closing++;
                httpd_close(*srv[i], on_closed, c);
                *srv[i] = NULL;
            }
        }
        uv_handle_t *hs[] = {(uv_handle_t *)&c->sigterm, (uv_handle_t *)&c->sigint,
                             (uv_handle_t *)&c->housekeeping, (uv_handle_t *)&c->discover};
        for (size_t i = 0; i < 4; i++) {
            if (hs[i]->data && !uv_is_closing(hs[i])) {
                c->closing++;
                uv_close(hs[i], on_handle_closed);
            }
        }
    } else if (c->stage == 2) {
        if (c->state) {
            c->closing++;
            state_close(c->state, on_closed, c);
            c->state = NULL;
        }
        if (c->http) {
            c->closing++;
            http_close(c->http, on_closed, c);
            c->http = NULL;
        }
    } else {
        return; /* all closed: uv_run() returns */
    }
    on_closed(c);
}

static void shutdown_ctl(Ctl *c, const char *why)
{
    if (c->stopping)
        return;
    c->stopping = true;
    log_event(LOG_INFO, MOD, "shutting down", "{s:s}", "reason", why);
    close_stage(c);
}

static void on_signal(uv_signal_t *s, int signum)
{
    Ctl *c = s->data;
    if (c->cfg.once && !c->once_done)
        c->exit_code = 1;
    shutdown_ctl(c, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- set-up --------------------------------------------------------------------------------- */

static int setup_sinks(Ctl *c)
{
    RunConfig *f = &c->cfg;
    char *err = NULL;
    int r;

    (void)err;
    if (f->kong_config_out) {
        r = sink_file_new(&c->loop, f->kong_config_out, &c->host, &c->slots[SLOT_FILE].sink);
        if (r < 0)
            return r;
    }
    bool want_dp =
        f->kong_admin_url || f->kong_admin_svc || (!f->kong_config_out && !f->konnect_sync_enabled);
#if RUN_HAVE_DP
    if (want_dp) {
        static const char *const def_urls[] = {DEFAULT_ADMIN_URL, NULL};
        DpConfig d = {
            .admin_urls = f->kong_admin_url ? (const char *const *)f->kong_admin_url
                                            : (f->kong_admin_svc ? NULL : def_urls),
            .admin_svc = f->kong_admin_svc,
            .admin_svc_port_names = f->port_names_joined,
            .ca_cert = f->kong_admin_ca_cert,
            .ca_cert_file = f->kong_admin_ca_cert_file,
            .client_cert = f->kong_admin_client_cert,
            .client_cert_file = f->kong_admin_client_cert_file,
            .client_key = f->kong_admin_client_key,
            .client_key_file = f->kong_admin_client_key_file,
            .tls_server_name = f->kong_admin_tls_server_name,
            .tls_skip_verify = f->kong_admin_tls_skip_verify,
            .token = f->kong_admin_token,
            .token_file = f->kong_admin_token_file,
            .headers = (const char *const *)f->kong_admin_header,
            .proxy_timeout_s = f->proxy_timeout_s,
            .readiness_interval_s = (double)f->readiness_interval_ms / 1000.0,
            .readiness_timeout_s = (double)f->readiness_timeout_ms / 1000.0,
            .state_dir = f->state_dir,
        };
        r = dp_sink_new(&c->loop, c->http, &d, &c->host, &c->slots[SLOT_DP].sink, &err);
        if (r < 0) {
            log_event(LOG_ERROR, MOD, "cannot configure the gateways", "{s:s}", "err",
                      err ? err : strerror(-r));
            free(err);
            return r;
        }
        if (f->kong_admin_url || !f->kong_admin_svc)
            log_event(LOG_INFO, MOD, "gateways", "{s:s}", "admin_url",
                      f->kong_admin_url ? f->kong_admin_url[0] : DEFAULT_ADMIN_URL);
    }
#else
    if (want_dp) {
        log_event(LOG_ERROR, MOD, "this build has no data plane sink: use --kong-config-out", "{}");
        return -ENOTSUP;
    }
#endif
#if RUN_HAVE_KONNECT
    if (f->konnect_sync_enabled) {
        KonnectConfig k = {
            .address = f->konnect_address,
            .control_plane_id = f->konnect_control_plane_id,
            .client_cert = f->konnect_client_cert,
            .client_cert_file = f->konnect_client_cert_file,
            .client_key = f->konnect_client_key,
            .client_key_file = f->konnect_client_key_file,
            .ca_cert_file = f->konnect_ca_cert_file,
            .upload_config_period_s = (double)f->konnect_upload_period_ms / 1000.0,
            .sync_concurrency = (int)f->konnect_sync_concurrency,
            .refresh_node_period_s = (double)f->konnect_refresh_node_ms / 1000.0,
            .disable_consumers_sync = f->konnect_disable_consumers_sync,
            .node_hostname = f->identity,
            .version = TETHER_VERSION,
        };
        r = konnect_sink_new(&c->loop, c->http, &k, &c->host, &c->slots[SLOT_KONNECT].sink, &err);
        if (r < 0) {
            log_event(LOG_ERROR, MOD, "cannot configure Konnect", "{s:s}", "err",
                      err ? err : strerror(-r));
            free(err);
            return r;
        }
    }
#else
    if (f->konnect_sync_enabled) {
        log_event(LOG_ERROR, MOD, "this build has no Konnect sink", "{}");
        return -ENOTSUP;
    }
#endif
    return 0;
}

static void restore_state(Ctl *c)
{
    json_t *config = NULL;
    char *err = NULL;
    int r = state_load(c->state, &config, &err);
    if (r == -ENOENT)
        return;
    if (r < 0) {
        log_event(LOG_WARN, MOD, "cannot restore the saved configuration, ignoring", "{s:s}", "err",
                  err ? err : strerror(-r));
        free(err);
        return;
    }
    Revision *rev = revision_new_consume(config, NULL, 0);
    if (!rev)
        return;
    c->restored_seq = revision_seq(rev);
    recon_set_current(c->recon, rev);
    log_event(LOG_INFO, MOD, "restored the last accepted configuration", "{s:s, s:s}", "dir",
              c->cfg.state_dir, "hash", revision_hash(rev));
    /* Published at once, leader or not: without an API server nobody can be the leader, and
     * this is what the gateways ran last. */
    bool leader = c->leader;
    c->leader = true;
    publish(c, rev);
    c->leader = leader;
    revision_unref(rev);
}

static int setup_sources(Ctl *c)
{
    RunConfig *f = &c->cfg;
    int r;

    if (f->manifests) {
        r = msrc_new(&c->loop, c->store, f->manifests, on_manifests_changed, c, &c->msrc);
        if (r < 0)
            return r;
        store_bulk(c->store, true); /* the first load; later edits are single updates */
        msrc_start(c->msrc);
        store_bulk(c->store, false);
        c->synced = true;
        recon_mark_dirty(c->recon);
        return 0;
    }
    /* The Kubernetes client also reads $KUBECONFIG and takes --apiserver-host on its own. */
    bool cluster = f->kubeconfig || f->apiserver_host || getenv("KUBECONFIG") ||
                   getenv("KUBERNETES_SERVICE_HOST");
    if (!cluster) {
        log_event(LOG_ERROR, MOD,
                  "no source: give --manifests PATH, --kubeconfig FILE (or $KUBECONFIG), "
                  "--apiserver-host URL, or run in a cluster",
                  "{}");
        return -EINVAL;
    }
#if RUN_HAVE_K8S
    bool le = f->kong_admin_svc || f->konnect_sync_enabled;
    if (!strcmp(f->force_leader_election, "enabled"))
        le = true;
    else if (!strcmp(f->force_leader_election, "disabled"))
        le = false;
    K8sConfig kc;
    cfg_k8s_config(f, le, &kc);
    K8sCallbacks cb = {
        .ud = c,
        .upsert = on_k8s_upsert,
        .remove = on_k8s_remove,
        .synced = on_k8s_synced,
        .leader = on_k8s_leader,
    };
    char *err = NULL;
    c->leader = !le;
    r = k8s_new(&c->loop, c->http, &kc, &cb, &c->k8s, &err);
    if (r < 0) {
        log_event(LOG_ERROR, MOD, "cannot use the Kubernetes API", "{s:s}", "err",
                  err ? err : strerror(-r));
        free(err);
        return r;
    }
    log_event(LOG_INFO, MOD, "Kubernetes source", "{s:b, s:s}", "leader_election", le, "identity",
              f->identity);
    store_bulk(c->store, true); /* the first lists, until the caches sync */
    return k8s_start(c->k8s);
#else
    log_event(LOG_ERROR, MOD, "this build has no Kubernetes client: use --manifests", "{}");
    return -ENOTSUP;
#endif
}

static int setup(Ctl *c)
{
    RunConfig *f = &c->cfg;
    int r;

    c->start_ms = util_now_ms();
    c->leader = true;
    c->host = (SinkHost){.ud = c, .applied = on_applied, .rejected = on_rejected};
    if ((r = http_new(&c->loop, &c->http)) < 0 || (r = store_new(&c->store)) < 0 ||
        (r = metrics_new(&c->metrics)) < 0)
        return r;
    metrics_add(c->metrics, collect_recon, c);
    metrics_add(c->metrics, collect_modules, c);

    if ((r = start_server(c, "health", f->health_addr, on_health, &c->health, true)) < 0 ||
        (r = start_server(c, "metrics", f->metrics_addr, on_metrics, &c->metrics_srv, true)) < 0 ||
        (r = start_server(c, "diagnostics", f->diag_addr, on_diag, &c->diag, false)) < 0)
        return r;

    ReconConfig rc = {
        .debounce_ms = f->sync_debounce_ms,
        .max_wait_ms = f->sync_max_wait_ms,
        .xopts = c->xopts,
        .translate = xlate_run,
        .translate_plan = xlate_run_plan,
        .threaded = true,
        .ns_plans = !c->cfg.once, /* --once exits after one revision: no plan to make */
        .verify_every_ms = 30000,
        .ud = c,
        .revision = on_revision,
        .failure = on_translation_failure,
    };
    if ((r = recon_new(&c->loop, c->store, &rc, &c->recon)) < 0)
        return r;
    if ((r = setup_sinks(c)) < 0)
        return r;
    /* the gateways report their router flavor; translation waits a little for it */
    c->flavor_known = f->router_flavor || !c->slots[SLOT_DP].sink;
    if (f->state_dir) {
        char *err = NULL;
        r = state_new(&c->loop, f->state_dir, &c->state, &err);
        if (r < 0) {
            log_event(LOG_ERROR, MOD, "cannot use the state folder", "{s:s}", "err",
                      err ? err : strerror(-r));
            free(err);
            return r;
        }
        restore_state(c);
    }
    c->sigterm.data = c->sigint.data = c->housekeeping.data = c->discover.data = c;
    uv_signal_init(&c->loop, &c->sigterm);
    uv_signal_init(&c->loop, &c->sigint);
    uv_signal_start(&c->sigterm, on_signal, SIGTERM);
    uv_signal_start(&c->sigint, on_signal, SIGINT);
    uv_timer_init(&c->loop, &c->housekeeping);
    uv_timer_init(&c->loop, &c->discover);
    uv_timer_start(&c->housekeeping, on_housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
    return setup_sources(c);
}

int run_main(int argc, char **argv)
{
    char err[512] = "";
    Ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return 1;
    int r = cfg_parse(&c->cfg, argc, argv, stdout, err, sizeof(err));
    if (r == CFG_HELP || r < 0) {
        if (r < 0)
            fprintf(stderr, "tether run: %s\n", err[0] ? err : strerror(-r));
        cfg_free(&c->cfg);
        free(c);
        return r < 0 ? 2 : 0;
    }
    log_set_level(log_parse_level(c->cfg.log_level));
    log_set_output_text(!strcmp(c->cfg.log_format, "text"));
    if (cfg_xlate_options(&c->cfg, &c->xopts, err, sizeof(err)) < 0) {
        fprintf(stderr, "tether run: %s\n", err);
        cfg_free(&c->cfg);
        free(c);
        return 2;
    }
    /* a client that hangs up must not kill the controller */
    signal(SIGPIPE, SIG_IGN);
    r = uv_loop_init(&c->loop);
    if (r < 0) {
        fprintf(stderr, "tether run: %s\n", uv_strerror(r));
        cfg_free(&c->cfg);
        free(c);
        return 1;
    }
    log_event(LOG_INFO, MOD, "starting", "{s:s, s:s}", "version", TETHER_VERSION, "identity",
              c->cfg.identity);
    revision_free_off_loop(&c->loop);
    /* the pages of freed trees serve a burst of changes */
    memtrim_defer(MEMTRIM_QUIET_MS, MEMTRIM_MAX_MS);
    r = setup(c);
    if (r < 0) {
        c->exit_code = 1;
        shutdown_ctl(c, "start-up failed");
    }
    uv_run(&c->loop, UV_RUN_DEFAULT);
    if (!c->stopping) {
        shutdown_ctl(c, "--once finished");
        uv_run(&c->loop, UV_RUN_DEFAULT);
    }
    revision_free_off_loop(NULL); /* the loop no longer runs */
    memtrim_defer(0, 0);
    revision_unref(c->held);
    revision_unref(c->published);
    revision_unref(c->accepted);
    json_decref(c->gateways_sent);
    store_free(c->store);
    metrics_free(c->metrics);
    r = uv_loop_close(&c->loop);
    if (r < 0) {
        log_event(LOG_ERROR, MOD, "event loop did not close cleanly", "{s:s}", "err",
                  uv_strerror(r));
        if (c->exit_code == 0)
            c->exit_code = 1;
    }
    int code = c->exit_code;
    log_event(LOG_INFO, MOD, "stopped", "{s:i}", "exit_code", code);
    cfg_free(&c->cfg);
    free(c);
    return code;
}
