/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the reconciler (core/reconcile.c) with a fake translator: batching of changes,
 * the max-wait bound, unchanged hashes, new-failure reporting, clean close. Timeouts are small
 * and the assertions are about what happened, not how long it took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "reconcile.h"
#include "store.h"
#include "xlate.h"

typedef struct T {
    uv_loop_t loop;
    Store *store;
    Recon *recon;
    int translations;
    int changed, unchanged;
    int failures_reported;
    int marks_left; /* changes still to make by the ticker */
    int translations_while_changing;
    uv_timer_t ticker, stopper;
    char last_hash[65];
} T;

static T *cur;

/*
 * fake translator: the config is the number of ConfigMaps; a "broken" one yields a failure. It
 * runs in the thread pool while the loop's ticker makes changes: the counters it shares are
 * atomic.
 */
static int fake_translate(Store *s, const XlateOptions *o, json_t **ret_config, json_t **ret_f)
{
    (void)o;
    __atomic_add_fetch(&cur->translations, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&cur->marks_left, __ATOMIC_SEQ_CST) > 0)
        __atomic_add_fetch(&cur->translations_while_changing, 1, __ATOMIC_SEQ_CST);
    *ret_config = json_pack("{s:i}", "count", (int)store_count(s, "ConfigMap"));
    *ret_f = json_array();
    if (store_get(s, "ConfigMap", "ns", "broken"))
        json_array_append_new(*ret_f,
                              json_pack("{s:s, s:[{s:s,s:s,s:s}]}", "message", "bad", "objects",
                                        "kind", "ConfigMap", "namespace", "ns", "name", "broken"));
    return 0;
}

static void on_rev(void *ud, Revision *rev, bool changed)
{
    T *t = ud;
    if (changed)
        t->changed++;
    else
        t->unchanged++;
    snprintf(t->last_hash, sizeof(t->last_hash), "%s", revision_hash(rev));
}

static void on_failure(void *ud, json_t *f)
{
    T *t = ud;
    (void)f;
    t->failures_reported++;
}

static void put(T *t, const char *name)
{
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
                          "metadata", "name", name, "namespace", "ns");
    if (store_put(t->store, o) > 0)
        recon_mark_dirty(t->recon);
    json_decref(o);
}

static bool threaded;
static uint64_t verify_every; /* setup_real()'s ReconConfig.verify_every_ms */

static void setup_t(T *t, uint64_t debounce, uint64_t max_wait)
{
    memset(t, 0, sizeof(*t));
    cur = t;
    assert_int_equal(uv_loop_init(&t->loop), 0);
    assert_int_equal(store_new(&t->store), 0);
    ReconConfig rc = {.debounce_ms = debounce,
                      .max_wait_ms = max_wait,
                      .translate = fake_translate,
                      .ud = t,
                      .revision = on_rev,
                      .failure = on_failure,
                      .threaded = threaded};
    xlate_options_default(&rc.xopts);
    assert_int_equal(recon_new(&t->loop, t->store, &rc, &t->recon), 0);
    uv_timer_init(&t->loop, &t->ticker);
    uv_timer_init(&t->loop, &t->stopper);
    t->ticker.data = t->stopper.data = t;
}

static void on_closed(void *ud)
{
    *(int *)ud = 1;
}

static void teardown_t(T *t)
{
    int closed = 0;
    recon_close(t->recon, on_closed, &closed);
    uv_close((uv_handle_t *)&t->ticker, NULL);
    uv_close((uv_handle_t *)&t->stopper, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    store_free(t->store);
}

static void on_stop(uv_timer_t *h)
{
    uv_stop(h->loop);
}

static void run_for(T *t, uint64_t ms)
{
    uv_timer_start(&t->stopper, on_stop, ms, 0);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

/* wait until @cond holds (generous deadline) */
#define RUN_UNTIL(t, cond)                                                                         \
    do {                                                                                           \
        for (int i_ = 0; i_ < 500 && !(cond); i_++)                                                \
            run_for((t), 10);                                                                      \
        assert_true(cond);                                                                         \
    } while (0)

static void test_batches_changes(void **state)
{
    threaded = *state != NULL;
    T t;
    setup_t(&t, 50, 5000);
    for (int i = 0; i < 100; i++) {
        char n[16];
        snprintf(n, sizeof(n), "cm%d", i);
        put(&t, n);
    }
    assert_int_equal(__atomic_load_n(&t.translations, __ATOMIC_SEQ_CST), 0); /* nothing synchronous */
    RUN_UNTIL(&t, t.changed == 1);
    assert_int_equal(__atomic_load_n(&t.translations, __ATOMIC_SEQ_CST), 1); /* one translation for a burst of 100 changes */
    run_for(&t, 200);
    assert_int_equal(__atomic_load_n(&t.translations, __ATOMIC_SEQ_CST), 1); /* and none without a change */
    teardown_t(&t);
}

static void on_tick(uv_timer_t *h)
{
    T *t = h->data;
    char n[16];
    snprintf(n, sizeof(n), "tick%d", t->marks_left);
    put(t, n);
    if (__atomic_sub_fetch(&t->marks_left, 1, __ATOMIC_SEQ_CST) == 0)
        uv_timer_stop(h);
}

static void test_max_wait_bounds_debounce(void **state)
{
    threaded = *state != NULL;
    T t;
    /* a change every 5 ms for a long time never lets a 100 ms quiet period pass */
    setup_t(&t, 100, 150);
    t.marks_left = 300;
    uv_timer_start(&t.ticker, on_tick, 5, 5);
    RUN_UNTIL(&t, t.marks_left == 0);
    assert_true(__atomic_load_n(&t.translations_while_changing, __ATOMIC_SEQ_CST) >= 1);
    RUN_UNTIL(&t, !recon_pending(t.recon));
    teardown_t(&t);
}

static void test_unchanged_hash_publishes_nothing(void **state)
{
    threaded = *state != NULL;
    T t;
    setup_t(&t, 1, 1);
    put(&t, "a");
    RUN_UNTIL(&t, t.changed == 1);
    char first[65];
    memcpy(first, t.last_hash, sizeof(first));
    /* a change that translates to the same config */
    json_t *o =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}}", "apiVersion", "v1", "kind", "ConfigMap",
                  "metadata", "name", "a", "namespace", "ns", "labels", "x", "y");
    assert_int_equal(store_put(t.store, o), 1);
    json_decref(o);
    recon_mark_dirty(t.recon);
    RUN_UNTIL(&t, t.unchanged == 1);
    assert_int_equal(t.changed, 1);
    assert_string_equal(t.last_hash, first);
    assert_string_equal(revision_hash(recon_current(t.recon)), first);
    put(&t, "b");
    RUN_UNTIL(&t, t.changed == 2);
    assert_string_not_equal(t.last_hash, first);
    teardown_t(&t);
}

static void test_set_current_adopts_restored(void **state)
{
    threaded = *state != NULL;
    T t;
    setup_t(&t, 1, 1);
    Revision *restored = revision_new_consume(json_pack("{s:i}", "count", 1), NULL, 0);
    recon_set_current(t.recon, restored);
    put(&t, "a");
    RUN_UNTIL(&t, t.unchanged + t.changed == 1);
    assert_int_equal(t.unchanged, 1); /* same hash as the restored revision */
    assert_ptr_equal(recon_current(t.recon), restored);
    revision_unref(restored);
    teardown_t(&t);
}

static void test_new_failures_reported_once(void **state)
{
    threaded = *state != NULL;
    T t;
    setup_t(&t, 1, 1);
    put(&t, "broken");
    RUN_UNTIL(&t, t.changed == 1);
    assert_int_equal(t.failures_reported, 1);
    assert_int_equal(json_array_size(revision_failures(recon_current(t.recon))), 1);
    put(&t, "other");
    RUN_UNTIL(&t, t.changed == 2);
    assert_int_equal(t.failures_reported, 1); /* the same failure again is not news */
    Buf b = BUF_INIT;
    recon_metrics(t.recon, &b);
    assert_non_null(strstr(b.data, "ingress_controller_translation_broken_resource_count 1\n"));
    assert_non_null(strstr(b.data, "ingress_controller_translation_count{success=\"false\"} 2\n"));
    assert_non_null(strstr(
        b.data,
        "ingress_controller_translation_duration_milliseconds_count{success=\"false\"} 2\n"));
    assert_non_null(strstr(b.data, "tether_revisions_published_total 2\n"));
    buf_deinit(&b);
    teardown_t(&t);
}

static void test_flush_and_build(void **state)
{
    threaded = *state != NULL;
    T t;
    setup_t(&t, 10000, 10000);
    put(&t, "a");
    assert_true(recon_pending(t.recon));
    recon_flush(t.recon);
    RUN_UNTIL(&t, !recon_pending(t.recon));
    assert_int_equal(t.changed, 1);
    Revision *fb = NULL;
    assert_int_equal(recon_build(t.recon, t.store, 1, &fb), 0);
    assert_true(revision_is_fallback(fb));
    assert_int_equal(t.changed, 1); /* build does not publish */
    revision_unref(fb);
    teardown_t(&t);
}

static void test_close_while_translating(void **state)
{
    threaded = *state != NULL;
    T t;
    setup_t(&t, 1, 1);
    put(&t, "a");
    recon_flush(t.recon);
    /* closing with a translation in flight (threaded) waits for it, publishes nothing */
    teardown_t(&t);
    assert_true(t.changed <= 1);
}

/* With a plan, an EndpointSlice change redoes only targets, and publishes what a full translation
 * would; a change to anything else translates everything again. */
static json_t *k8s(const char *yaml)
{
    json_error_t e;
    json_t *o = json_loads(yaml, 0, &e);
    assert_non_null(o);
    return o;
}

static void put_obj(T *t, json_t *o)
{
    assert_true(store_put(t->store, o) > 0);
    json_decref(o);
    recon_mark_dirty(t->recon);
}

static json_t *slice(const char *ip)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[{s:[s]}], s:[{s:s, s:i}]}",
                     "apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata",
                     "name", "web-1", "namespace", "ns", "labels", "kubernetes.io/service-name",
                     "web", "addressType", "IPv4", "endpoints", "addresses", ip, "ports", "name",
                     "http", "port", 8080);
}

static bool targets_only_count(T *t, const char *want)
{
    Buf m = BUF_INIT;
    recon_metrics(t->recon, &m);
    bool ok = strstr(m.data, want) != NULL;
    buf_deinit(&m);
    return ok;
}

static void full_translation_equals(T *t)
{
    json_t *cfg, *f;
    size_t n, want_n;
    assert_int_equal(xlate_run(t->store, recon_options(t->recon), &cfg, &f), 0);
    char *want = xlate_canonical_json(cfg, &want_n);
    const char *got = revision_json(recon_current(t->recon), &n);
    assert_int_equal(n, want_n);
    assert_memory_equal(got, want, n);
    free(want);
    json_decref(cfg);
    json_decref(f);
}

/* A reconciler with the real translator (and namespace plans when asked), 5 ms debounce. */
static void setup_real(T *t, bool ns_plans)
{
    memset(t, 0, sizeof(*t));
    cur = t;
    assert_int_equal(uv_loop_init(&t->loop), 0);
    assert_int_equal(store_new(&t->store), 0);
    ReconConfig rc = {.debounce_ms = 5,
                      .max_wait_ms = 50,
                      .translate = xlate_run,
                      .translate_plan = xlate_run_plan,
                      .ud = t,
                      .revision = on_rev,
                      .threaded = threaded,
                      .ns_plans = ns_plans,
                      .verify_every_ms = verify_every};
    xlate_options_default(&rc.xopts);
    assert_int_equal(recon_new(&t->loop, t->store, &rc, &t->recon), 0);
    uv_timer_init(&t->loop, &t->ticker);
    uv_timer_init(&t->loop, &t->stopper);
    t->ticker.data = t->stopper.data = t;
}

static void test_slice_changes_refresh_targets(void **state)
{
    threaded = *state != NULL;
    T t;
    setup_real(&t, false);

    put_obj(&t, k8s("{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"Ingress\", "
                    "\"metadata\": {\"name\": \"web\", \"namespace\": \"ns\"}, \"spec\": "
                    "{\"ingressClassName\": \"kong\", \"rules\": [{\"http\": {\"paths\": "
                    "[{\"path\": \"/\", \"pathType\": \"Prefix\", \"backend\": {\"service\": "
                    "{\"name\": \"web\", \"port\": {\"number\": 80}}}}]}}]}}"));
    put_obj(&t, k8s("{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": "
                    "\"web\", \"namespace\": \"ns\"}, \"spec\": {\"ports\": [{\"name\": "
                    "\"http\", \"port\": 80, \"targetPort\": 8080}]}}"));
    put_obj(&t, slice("10.0.0.1"));
    RUN_UNTIL(&t, t.changed == 1);
    full_translation_equals(&t);
    assert_true(targets_only_count(&t, "tether_translation_targets_only_total 0\n"));

    put_obj(&t, slice("10.0.0.2")); /* the pod moved */
    RUN_UNTIL(&t, t.changed == 2);
    full_translation_equals(&t);
    assert_non_null(strstr(revision_json(recon_current(t.recon), NULL), "10.0.0.2:8080"));
    assert_true(targets_only_count(&t, "tether_translation_targets_only_total 1\n"));

    /* A Service change needs everything: the port of the Kong service comes from it. */
    put_obj(&t, k8s("{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": "
                    "\"web\", \"namespace\": \"ns\"}, \"spec\": {\"ports\": [{\"name\": "
                    "\"http\", \"port\": 80, \"targetPort\": 8080}, {\"name\": \"x\", "
                    "\"port\": 81}]}}"));
    put_obj(&t, slice("10.0.0.3"));
    RUN_UNTIL(&t, t.changed == 3);
    full_translation_equals(&t);
    assert_true(targets_only_count(&t, "tether_translation_targets_only_total 1\n"));

    assert_int_equal(store_delete(t.store, "EndpointSlice", "ns", "web-1"), 1);
    recon_mark_dirty(t.recon);
    RUN_UNTIL(&t, t.changed == 4);
    full_translation_equals(&t);
    assert_true(targets_only_count(&t, "tether_translation_targets_only_total 2\n"));
    teardown_t(&t);
}

static json_t *web_ingress(const char *ns, const char *path)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:{s:[{s:s, s:s, s:{s:{s:s, "
                     "s:{s:i}}}}]}}]}}",
                     "apiVersion", "networking.k8s.io/v1", "kind", "Ingress", "metadata", "name",
                     "web", "namespace", ns, "spec", "ingressClassName", "kong", "rules", "http",
                     "paths", "path", path, "pathType", "Prefix", "backend", "service", "name",
                     "web", "port", "number", 80);
}

/* An Ingress and its Service in namespaces a, b and c; waits for the first revision and plan. */
static void three_namespaces(T *t)
{
    static const char *const nss[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        put_obj(t, web_ingress(nss[i], "/"));
        put_obj(t, json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s, s:i}]}}", "apiVersion", "v1",
                             "kind", "Service", "metadata", "name", "web", "namespace", nss[i],
                             "spec", "ports", "name", "http", "port", 80));
    }
    RUN_UNTIL(t, t->changed == 1 && recon_ns_ready(t->recon));
}

/*
 * Namespace plans: a change in one namespace redoes that one and merges; the merged revision is
 * checked once the store is quiet; a mismatch (here a change the store's log never saw, as a
 * dependency the merge missed would look) publishes the full translation and stops merging.
 */
static void test_namespace_changes_merge(void **state)
{
    (void)state;
    threaded = true;
    T t;
    setup_real(&t, true);
    three_namespaces(&t);
    full_translation_equals(&t);

    put_obj(&t, web_ingress("a", "/v2"));
    RUN_UNTIL(&t, t.changed == 2);
    full_translation_equals(&t);
    assert_non_null(strstr(revision_json(recon_current(t.recon), NULL), "/v2"));
    assert_true(targets_only_count(&t, "tether_translation_namespaces_only_total 1\n"));
    RUN_UNTIL(&t, targets_only_count(&t, "tether_translation_namespace_checks_total{result=\"match\"} 1\n"));

    /* Behind the log's back: b's path changes in place. Merging c's change misses it. */
    json_t *spec = obj_get_path(store_get(t.store, "Ingress", "b", "web"), "spec");
    json_t *sneaky = web_ingress("b", "/sneaky");
    json_object_del(spec, "rulesPacked"); /* the store packs rules; readers take both shapes */
    json_object_set(spec, "rules", obj_get_path(sneaky, "spec.rules"));
    json_decref(sneaky);
    put_obj(&t, web_ingress("c", "/v3"));
    RUN_UNTIL(&t, t.changed == 3);
    assert_null(strstr(revision_json(recon_current(t.recon), NULL), "/sneaky"));
    RUN_UNTIL(&t, t.changed == 4); /* the check published the full translation */
    full_translation_equals(&t);
    assert_true(targets_only_count(&t, "tether_translation_namespace_checks_total{result=\"mismatch\"} 1\n"));
    put_obj(&t, web_ingress("a", "/v4")); /* from now on: full translations */
    RUN_UNTIL(&t, t.changed == 5);
    full_translation_equals(&t);
    assert_true(targets_only_count(&t, "tether_translation_namespaces_only_total 2\n"));
    teardown_t(&t);
}

/*
 * Checks are spaced (verify_every_ms): the first merged revision is checked once the store is
 * quiet, a second merge soon after waits for the interval instead of a check of its own.
 */
static void test_namespace_checks_spaced(void **state)
{
    (void)state;
    threaded = true;
    verify_every = 600000; /* ten minutes: no second check within this test */
    T t;
    setup_real(&t, true);
    verify_every = 0;
    three_namespaces(&t);
    put_obj(&t, web_ingress("a", "/v2"));
    RUN_UNTIL(&t, t.changed == 2);
    RUN_UNTIL(&t, targets_only_count(&t, "tether_translation_namespace_checks_total{result=\"match\"} 1\n"));

    put_obj(&t, web_ingress("b", "/v2"));
    RUN_UNTIL(&t, t.changed == 3);
    full_translation_equals(&t);
    assert_true(targets_only_count(&t, "tether_translation_namespaces_only_total 2\n"));
    run_for(&t, 1500); /* quiet for longer than the quiet period */
    assert_true(targets_only_count(&t, "tether_translation_namespace_checks_total{result=\"match\"} 1\n"));
    assert_true(targets_only_count(&t, "tether_translation_namespace_checks_total{result=\"mismatch\"} 0\n"));
    teardown_t(&t);
}

int main(void)
{
    static int on = 1; /* prestate &on: the same test translating in the thread pool */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_changes),
        cmocka_unit_test(test_max_wait_bounds_debounce),
        cmocka_unit_test(test_unchanged_hash_publishes_nothing),
        cmocka_unit_test(test_set_current_adopts_restored),
        cmocka_unit_test(test_new_failures_reported_once),
        cmocka_unit_test(test_flush_and_build),
        cmocka_unit_test(test_close_while_translating),
        cmocka_unit_test(test_slice_changes_refresh_targets),
        cmocka_unit_test_prestate(test_slice_changes_refresh_targets, &on),
        cmocka_unit_test_prestate(test_batches_changes, &on),
        cmocka_unit_test_prestate(test_max_wait_bounds_debounce, &on),
        cmocka_unit_test_prestate(test_unchanged_hash_publishes_nothing, &on),
        cmocka_unit_test_prestate(test_set_current_adopts_restored, &on),
        cmocka_unit_test_prestate(test_new_failures_reported_once, &on),
        cmocka_unit_test_prestate(test_flush_and_build, &on),
        cmocka_unit_test_prestate(test_close_while_translating, &on),
        cmocka_unit_test(test_namespace_changes_merge),
        cmocka_unit_test(test_namespace_checks_spaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
