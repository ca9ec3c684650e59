/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-reconcile: the controller's reconcile path at scale. Fills a store with N Ingress sets
 * (Ingress + Service + EndpointSlice) plus M unrelated Secrets, then measures the time from a
 * watched object's change (store_put + recon_mark_dirty, as the sources do) to the new revision
 * reaching the publish callback, with the real translator and the default 100 ms debounce.
 * Prints: RSS of the full store, first translation time, and change-to-publish latencies
 * (median, max) over several changes of Ingresses (a full translation each) and then of
 * EndpointSlices (only targets are redone). Target: latency <= debounce + 50 ms; RSS <= 200 MB.
 *
 * Usage: bench-reconcile [SETS=10000] [SECRETS=20000] [ROUNDS=10] [DEBOUNCE_MS=100]
 * BENCH_CONSUMERS=N adds N KongConsumers with a key-auth credential each, spread like the sets;
 * BENCH_NO_NS_PLANS=1 translates every change in full (as before namespace plans);
 * BENCH_TRIM_AT_ONCE=1 hands freed memory back after every revision (as before memtrim.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "memtrim.h"
#include "reconcile.h"
#include "store.h"
#include "util.h"
#include "xlate.h"

static long rss_kb(void)
{
    char buf[4096];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    while (fgets(buf, sizeof(buf), f))
        if (!strncmp(buf, "VmRSS:", 6))
            kb = strtol(buf + 6, NULL, 10);
    fclose(f);
    return kb;
}

static json_t *ingress_set(int i, int version, json_t **svc, json_t **eps)
{
    char ns[32], name[64], host[96], ip[32];
    snprintf(ns, sizeof(ns), "ns%d", i % 50);
    snprintf(name, sizeof(name), "app-%d", i);
    snprintf(host, sizeof(host), "app-%d-v%d.example.com", i, version);
    snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    *svc = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:[{s:s, s:i, s:i, s:s}], s:{s:s}}}",
                     "apiVersion", "v1", "kind", "Service", "metadata", "name", name, "namespace",
                     ns, "uid", name, "spec", "ports", "name", "http", "port", 80, "targetPort",
                     8080, "protocol", "TCP", "selector", "app", name);
    *eps = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[{s:[s], s:{s:b}}],"
                     " s:[{s:s, s:i, s:s}]}",
                     "apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata",
                     "name", name, "namespace", ns, "labels", "kubernetes.io/service-name", name,
                     "addressType", "IPv4", "endpoints", "addresses", ip, "conditions", "ready", 1,
                     "ports", "name", "http", "port", 8080, "protocol", "TCP");
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:{s:s}}, s:{s:s, s:[{s:s, s:{s:[{s:s, s:s,"
                     " s:{s:{s:s, s:{s:i}}}}]}}]}}",
                     "apiVersion", "networking.k8s.io/v1", "kind", "Ingress", "metadata", "name",
                     name, "namespace", ns, "uid", name, "annotations", "konghq.com/strip-path",
                     "true", "spec", "ingressClassName", "kong", "rules", "host", host, "http",
                     "paths", "path", "/", "pathType", "Prefix", "backend", "service", "name", name,
                     "port", "number", 80);
}

typedef struct B {
    uv_loop_t loop;
    Store *store;
    Recon *recon;
    uint64_t t0;
    double last_ms;
    int got;
} B;

static void on_rev(void *ud, Revision *rev, bool changed)
{
    B *b = ud;
    (void)rev;
    if (!changed)
        return;
    b->last_ms = (double)(uv_hrtime() - b->t0) / 1e6;
    b->got = 1;
    uv_stop(&b->loop);
}

static void on_poll(uv_timer_t *t)
{
    (void)t;
}

/* CPU time of this thread, ns: figures that a loaded machine does not inflate */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int sets = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 10000;
    int secrets = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20000;
    int rounds = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 10;
    int debounce = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 100;
    B b;
    memset(&b, 0, sizeof(b));
    util_tune_malloc(); /* as tether does */
    long rss0 = rss_kb();

    uv_loop_init(&b.loop);
    revision_free_off_loop(&b.loop); /* as tether run does */
    /* and this (the trim that comes once changes pause is timed below) */
    memtrim_defer(getenv("BENCH_TRIM_AT_ONCE") ? 0 : MEMTRIM_QUIET_MS, MEMTRIM_MAX_MS);
    store_new(&b.store);
    store_bulk(b.store, true); /* as tether run fills its store until the caches sync */
    json_t *cls = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "networking.k8s.io/v1",
                            "kind", "IngressClass", "metadata", "name", "kong", "spec",
                            "controller", "ingress-controllers.konghq.com/kong");
    store_put(b.store, cls);
    json_decref(cls);
    for (int i = 0; i < sets; i++) {
        json_t *svc, *eps, *ing = ingress_set(i, 0, &svc, &eps);
        store_put(b.store, ing);
        store_put(b.store, svc);
        store_put(b.store, eps);
        json_decref(ing);
        json_decref(svc);
        json_decref(eps);
    }
    for (int i = 0; i < secrets; i++) {
        char name[32], ns[16];
        snprintf(name, sizeof(name), "unrelated-%d", i);
        snprintf(ns, sizeof(ns), "ns%d", i % 50);
        json_t *s =
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                      "Secret", "metadata", "name", name, "namespace", ns, "type", "Opaque", "data",
                      "password", "c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTA=", "token",
                      "dG9rZW4tdmFsdWUtYWJjZGVmZ2hpamtsbW5vcA==");
        store_put(b.store, s);
        json_decref(s);
    }
    int consumers = getenv("BENCH_CONSUMERS") ? (int)strtol(getenv("BENCH_CONSUMERS"), NULL, 10) : 0;
    for (int i = 0; i < consumers; i++) {
        char name[32], ns[16], key[48];
        snprintf(name, sizeof(name), "user-%d", i);
        snprintf(ns, sizeof(ns), "ns%d", i % 50);
        snprintf(key, sizeof(key), "key-%d", i);
        json_t *s = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1",
                              "kind", "Secret", "metadata", "name", name, "namespace", ns,
                              "labels", "konghq.com/credential", "key-auth", "stringData", "key",
                              key);
        json_t *c = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[s]}", "apiVersion",
                              "configuration.konghq.com/v1", "kind", "KongConsumer", "metadata",
                              "name", name, "namespace", ns, "annotations",
                              "kubernetes.io/ingress.class", "kong", "username", name,
                              "credentials", name);
        store_put(b.store, s);
        store_put(b.store, c);
        json_decref(s);
        json_decref(c);
    }
    store_bulk(b.store, false); /* the changes below are single updates */
    long rss_store = rss_kb();

    ReconConfig rc = {.debounce_ms = (uint64_t)debounce,
                      .max_wait_ms = (uint64_t)debounce * 10,
                      .translate = xlate_run,
                      .translate_plan = xlate_run_plan,
                      .threaded = true,
                      .ns_plans = !getenv("BENCH_NO_NS_PLANS"),
                      .ud = &b,
                      .revision = on_rev};
    xlate_options_default(&rc.xopts);
    recon_new(&b.loop, b.store, &rc, &b.recon);

    /* first translation */
    b.t0 = uv_hrtime();
    Revision *first = NULL;
    recon_build(b.recon, b.store, 0, &first);
    double first_ms = (double)(uv_hrtime() - b.t0) / 1e6;
    size_t bytes = 0;
    if (first)
        revision_json(first, &bytes);
    recon_set_current(b.recon, first);
    revision_unref(first);
    uv_run(&b.loop, UV_RUN_DEFAULT); /* the tree is freed in the thread pool */
    long rss_rev = rss_kb();

    /*
     * One change translated by the worker, as tether run translates: its snapshot becomes the
     * namespace plan (made in the thread pool), which later changes use. Wait for it.
     */
    double plan_ms = -1;
    if (!getenv("BENCH_NO_NS_PLANS")) {
        json_t *svc, *eps, *ing = ingress_set(0, 1000, &svc, &eps);
        store_put(b.store, ing);
        recon_mark_dirty(b.recon);
        json_decref(ing);
        json_decref(svc);
        json_decref(eps);
        uv_run(&b.loop, UV_RUN_DEFAULT);
        uint64_t p0 = uv_hrtime();
        uv_timer_t poll;
        uv_timer_init(&b.loop, &poll);
        while (!recon_ns_ready(b.recon) && (uv_hrtime() - p0) / 1e9 < 60) {
            uv_timer_start(&poll, on_poll, 20, 0);
            uv_run(&b.loop, UV_RUN_ONCE);
        }
        uv_close((uv_handle_t *)&poll, NULL);
        plan_ms = recon_ns_ready(b.recon) ? (double)(uv_hrtime() - p0) / 1e6 : -1;
    }

    /* where a translation's time goes */
    uint64_t c0 = cpu_ns();
    Store *snap = NULL;
    store_clone(b.store, &snap);
    uint64_t c1 = cpu_ns();
    json_t *cfg = NULL, *fails = NULL;
    xlate_run(snap, &rc.xopts, &cfg, &fails);
    uint64_t c2 = cpu_ns();
    Revision *rv = revision_new_consume(cfg, fails, 0);
    uint64_t c3 = cpu_ns();
    revision_unref(rv);
    uint64_t c4 = cpu_ns();
    store_free(snap);
    uint64_t c5 = cpu_ns();
    uv_run(&b.loop, UV_RUN_DEFAULT); /* the revision above is freed in the pool: let it finish */

    double *lat = calloc((size_t)rounds, sizeof(double));
    double *lat_eps = calloc((size_t)rounds, sizeof(double));
    for (int r = 0; r < 2 * rounds; r++) {
        /* Ingress changes first: the last of them leaves a revision with a plan. */
        bool slices = r >= rounds;
        json_t *svc, *eps, *ing = ingress_set((r * 7919) % sets, r + 1, &svc, &eps);
        if (slices) /* the pod moved: a new address */
            json_array_set_new(json_object_get(json_array_get(json_object_get(eps, "endpoints"), 0),
                                               "addresses"),
                               0, json_sprintf("10.200.%d.%d", r / 256 % 256, r % 256));
        b.got = 0;
        uv_update_time(&b.loop);
        b.t0 = uv_hrtime();
        if (store_put(b.store, slices ? eps : ing) > 0)
            recon_mark_dirty(b.recon);
        json_decref(ing);
        json_decref(svc);
        json_decref(eps);
        uv_run(&b.loop, UV_RUN_DEFAULT);
        (slices ? lat_eps : lat)[r % rounds] = b.got ? b.last_ms : -1;
    }
    uv_run(&b.loop, UV_RUN_DEFAULT);
    long rss_after = rss_kb();
    /* What tether run's housekeeping does once changes have paused */
    uint64_t t0 = cpu_ns();
    if (memtrim_pending())
        memtrim_now();
    double trim_ms = (double)(cpu_ns() - t0) / 1e6;
    long rss_quiet = rss_kb();
    qsort(lat, (size_t)rounds, sizeof(double), cmp);
    qsort(lat_eps, (size_t)rounds, sizeof(double), cmp);

    printf(
        "bench-reconcile: %d Ingress sets (Ingress+Service+EndpointSlice), %d unrelated Secrets\n",
        sets, secrets);
    printf("  store objects: %zu\n", store_count(b.store, NULL));
    printf(
        "  RSS: start %.1f MB, store filled %.1f MB, with first revision %.1f MB, after the "
        "changes %.1f MB, once they pause %.1f MB (trim: %.1f ms) (limit 200 MB)\n",
        rss0 / 1024.0, rss_store / 1024.0, rss_rev / 1024.0, rss_after / 1024.0,
        rss_quiet / 1024.0, trim_ms);
    printf("  first translation: %.1f ms, config %.1f MB; namespace plan ready %.0f ms after the "
           "next one\n",
           first_ms, bytes / 1048576.0, plan_ms);
    printf("  Ingress change -> published revision (debounce %d ms): median %.1f ms, max %.1f ms "
           "(limit %d ms)\n",
           debounce, lat[rounds / 2], lat[rounds - 1], debounce + 50);
    printf("  EndpointSlice change -> published revision: median %.1f ms, max %.1f ms "
           "(namespaces or targets only)\n",
           lat_eps[rounds / 2], lat_eps[rounds - 1]);
    printf("  one translation, CPU time: snapshot %.1f ms, xlate_run %.1f ms, canonical JSON + "
           "SHA-256 %.1f "
           "ms, freeing the revision %.1f ms, the snapshot %.1f ms\n",
           (c1 - c0) / 1e6, (c2 - c1) / 1e6, (c3 - c2) / 1e6, (c4 - c3) / 1e6, (c5 - c4) / 1e6);
    bool ok_ing = lat[0] >= 0 && lat[rounds - 1] <= debounce + 50;
    bool ok_eps = lat_eps[0] >= 0 && lat_eps[rounds - 1] <= debounce + 50;
    Buf m = BUF_INIT;
    recon_metrics(b.recon, &m);
    for (char *line = m.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        if ((nl = strchr(line, '\n')))
            *nl = 0;
        if (!strncmp(line, "tether_translation_namespace", 28) ||
            !strncmp(line, "tether_translation_targets_only_total ", 38))
            printf("  %s\n", line);
    }
    buf_deinit(&m);
    printf("  Ingress changes: %s, EndpointSlice changes: %s, RSS: %s\n",
           ok_ing ? "PASS" : "OVER LIMIT", ok_eps ? "PASS" : "OVER LIMIT",
           rss_rev <= 200 * 1024 && rss_after <= 200 * 1024 ? "PASS" : "OVER LIMIT");
    free(lat);
    free(lat_eps);
    recon_close(b.recon, NULL, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    revision_free_off_loop(NULL);
    uv_loop_close(&b.loop);
    store_free(b.store);
    return 0;
}
