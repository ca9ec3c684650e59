/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Target refreshes against full translations: after each of a few hundred random EndpointSlice
 * changes, the refreshed configuration's canonical JSON must be byte for byte what translating
 * the whole store gives, and any other change must make the plan unusable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "store.h"
#include "util.h"
#include "xlate.h"
#include "xlate_int.h"

static const char base[] =
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: a}\n"
    "spec:\n  ingressClassName: kong\n  rules:\n  - host: web.example.com\n    http:\n      paths:\n"
    "      - {path: /a, pathType: Prefix, backend: {service: {name: svc1, port: {number: 80}}}}\n"
    "      - {path: /b, pathType: Prefix, backend: {service: {name: svc2, port: {name: grpc}}}}\n"
    "      - {path: /c, pathType: Prefix, backend: {service: {name: ext, port: {number: 443}}}}\n"
    "      - {path: /d, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}\n"
    "      - {path: /e, pathType: Prefix, backend: {service: {name: empty, port: {number: 80}}}}\n"
    "      - {path: /f, pathType: Prefix, backend: {service: {name: svc2, port: {number: 7}}}}\n"
    "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: b}\n"
    "spec:\n  ingressClassName: kong\n  rules:\n  - http:\n      paths:\n"
    "      - {path: /, pathType: Prefix, backend: {service: {name: svc1, port: {number: 80}}}}\n"
    "      - {path: /g, pathType: Prefix, backend: {service: {name: svc1, port: {number: 9}}}}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc1, namespace: a}\n"
    "spec: {ports: [{name: http, port: 80, targetPort: 8080}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc1, namespace: b, annotations: "
    "{konghq.com/protocol: bogus-b}}\n"
    "spec: {ports: [{name: http, port: 80, targetPort: 8080}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc2, namespace: a, annotations: "
    "{konghq.com/protocol: bogus-a}}\n"
    "spec: {ports: [{name: http, port: 80}, {name: grpc, port: 9000, targetPort: 9090}, "
    "{name: dns, port: 53, protocol: UDP}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: a}\n"
    "spec: {type: ExternalName, externalName: ext.example.org, ports: [{port: 443}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: up\n  namespace: a\n  annotations:\n"
    "    ingress.kubernetes.io/service-upstream: \"true\"\nspec: {ports: [{port: 80}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: a}\n"
    "spec: {ports: [{port: 80, targetPort: 8080}]}\n";

static int on_obj(void *ud, json_t *obj, const char *file, int line)
{
    (void)file;
    (void)line;
    return store_put(ud, obj) < 0;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

/* A random EndpointSlice of one of the Services (or of one nobody uses). */
static void random_slice_change(Store *st)
{
    static const char *const owners[][2] = {{"a", "svc1"}, {"a", "svc2"}, {"a", "empty"},
                                            {"b", "svc1"}, {"a", "up"},   {"a", "nobody"}};
    const char *const *o = owners[rnd(6)];
    char name[64];
    snprintf(name, sizeof(name), "%s-%u", o[1], rnd(3));
    if (rnd(10) < 3) {
        store_delete(st, "EndpointSlice", o[0], name);
        return;
    }
    bool v6 = rnd(5) == 0;
    json_t *eps = json_array();
    for (uint32_t i = 0, n = rnd(5); i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), v6 ? "fd00::%u" : "10.0.0.%u", 1 + rnd(6));
        json_t *cond = json_object();
        if (rnd(3))
            json_object_set_new(cond, "ready", json_boolean(rnd(4) != 0));
        if (rnd(3) == 0)
            json_object_set_new(cond, "terminating", json_boolean(rnd(2)));
        json_array_append_new(eps, json_pack("{s:[s], s:o}", "addresses", addr, "conditions", cond));
    }
    static const char *const pnames[] = {"http", "grpc", "", "dns"};
    static const int pnums[] = {8080, 9090, 80, 53};
    json_t *ports = json_array();
    for (uint32_t i = 0, n = 1 + rnd(2); i < n; i++) {
        uint32_t k = rnd(4);
        json_t *p = json_pack("{s:i, s:s}", "port", pnums[k], "protocol", k == 3 ? "UDP" : "TCP");
        if (*pnames[k])
            json_object_set_new(p, "name", json_string(pnames[k]));
        json_array_append_new(ports, p);
    }
    json_t *es = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:o, s:o}", "apiVersion",
                           "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata", "name", name,
                           "namespace", o[0], "labels", "kubernetes.io/service-name", o[1],
                           "addressType", v6 ? "IPv6" : "IPv4", "endpoints", eps, "ports", ports);
    assert_true(store_put(st, es) >= 0);
    json_decref(es);
}

/*
 * The store translated, its upstreams built by one thread and by two, and written by one thread
 * and by two: the failures and the bytes must be the same.
 */
static char *full_json(Store *st, const XlateOptions *o, size_t *len)
{
    json_t *cfg, *failures, *cfg1, *failures1;
    size_t saved = xsplit_min, len2;
    xsplit_min = 0;
    assert_int_equal(xlate_run(st, o, &cfg1, &failures1), 0);
    xsplit_min = 1;
    assert_int_equal(xlate_run(st, o, &cfg, &failures), 0);
    assert_true(json_equal(cfg, cfg1));
    assert_true(json_equal(failures, failures1));
    /* The base has some, from passes that split their work (upstreams, overrides: a bad
     * protocol on a Service in each half): their order is checked. */
    assert_true(json_array_size(failures) >= 4);
    json_decref(cfg1);
    json_decref(failures1);
    xsplit_min = 0;
    char *j = xlate_canonical_json(cfg, len);
    xsplit_min = 1;
    char *j2 = xlate_canonical_json(cfg, &len2);
    xsplit_min = saved;
    if (*len != len2 || memcmp(j, j2, len2))
        fail_msg("one thread wrote\n%s\ntwo threads wrote\n%s", j, j2);
    free(j2);
    json_decref(cfg);
    json_decref(failures);
    return j;
}

/* @split: the plan, its bytes and spans come from the two-thread builder and writer. */
static void refresh_matches_full(bool drain, bool split)
{
    Store *st;
    assert_int_equal(store_new(&st), 0);
    assert_int_equal(manifest_load_buffer(base, sizeof(base) - 1, "base", on_obj, NULL, st), 0);
    XlateOptions o;
    xlate_options_default(&o);
    o.enable_drain_support = drain;

    json_t *cfg, *failures;
    XlatePlan *plan;
    size_t len, saved = xsplit_min;
    xsplit_min = split ? 1 : 0;
    assert_int_equal(xlate_run_plan(st, &o, &cfg, &failures, &plan), 0);
    assert_non_null(plan);
    char *json = xlate_canonical_json_plan(cfg, &len, plan);
    xsplit_min = saved;
    json_decref(failures);
    json_decref(cfg); /* a refresh reads the previous configuration from its bytes */

    int changed = 0;
    for (int step = 0; step < 300; step++) {
        /* Now and then more changes than the store remembers: then every upstream is redone. */
        uint64_t until = store_generation(st) + (step % 100 == 99 ? 1100 : 1 + rnd(3));
        while (store_generation(st) < until)
            random_slice_change(st);
        assert_true(xlate_plan_reusable(plan, st, &o));
        char *njson;
        size_t nlen, flen;
        XlatePlan *nplan;
        assert_int_equal(xlate_refresh_targets(st, plan, json, len, &njson, &nlen, &nplan), 0);
        char *want = full_json(st, &o, &flen);
        if (nlen != flen || memcmp(njson, want, nlen))
            fail_msg("step %d: refreshed\n%s\nfull translation\n%s", step, njson, want);
        free(want);
        changed += nlen != len || memcmp(njson, json, len);
        free(json);
        xlate_plan_free(plan);
        json = njson, len = nlen, plan = nplan; /* refresh the refreshed next time */
    }
    assert_true(changed > 40); /* the changes did move targets (66 of 300 with this seed) */

    /* Anything but an EndpointSlice, or other options, need a full translation. */
    XlateOptions o2 = o;
    o2.cluster_domain = "cluster.local";
    assert_false(xlate_plan_reusable(plan, st, &o2));
    json_t *svc = json_deep_copy(store_get(st, "Service", "a", "empty"));
    json_object_set_new(json_object_get(svc, "spec"), "type", json_string("ClusterIP"));
    assert_int_equal(store_put(st, svc), 1);
    json_decref(svc);
    assert_false(xlate_plan_reusable(plan, st, &o));

    free(json);
    xlate_plan_free(plan);
    store_free(st);
}

static void test_refresh_matches_full(void **state)
{
    (void)state;
    refresh_matches_full(false, false);
}

static void test_refresh_matches_full_drain(void **state)
{
    (void)state;
    refresh_matches_full(true, true);
}

/* The store's change log: what changed after a generation, as long as it reaches back. */
static void count_change(void *ud, json_t *old, json_t *cur)
{
    int *n = ud;
    n[0]++;
    n[1] += old != NULL;
    n[2] += cur != NULL;
}

static void test_store_changes(void **state)
{
    (void)state;
    Store *st, *clone;
    int n[3] = {0};
    assert_int_equal(store_new(&st), 0);
    assert_int_equal(store_changes(st, 0, "Service", count_change, n), 0);
    assert_int_equal(manifest_load_buffer(base, sizeof(base) - 1, "base", on_obj, NULL, st), 0);
    uint64_t g = store_generation(st);
    assert_int_equal(store_changes(st, 0, "Service", count_change, n), 0);
    assert_int_equal(n[0], 6); /* six Services inserted */
    assert_int_equal(n[1], 0);
    memset(n, 0, sizeof(n));
    assert_int_equal(store_delete(st, "Service", "a", "up"), 1);
    assert_int_equal(store_clone(st, &clone), 0);
    assert_int_equal(store_changes(clone, g, "Service", count_change, n), 0);
    assert_int_equal(n[0], 1); /* the delete: an old object and no new one */
    assert_int_equal(n[1], 1);
    assert_int_equal(n[2], 0);
    assert_int_equal(store_changes(clone, g, "Ingress", count_change, n), 0);
    assert_int_equal(n[0], 1);
    while (store_generation(st) < g + 1100) /* more than the log keeps */
        random_slice_change(st);
    assert_int_equal(store_changes(st, g, "Service", count_change, n), -ERANGE);
    assert_int_equal(store_changes(st, store_generation(st) - 5, "EndpointSlice", count_change, n), 0);
    assert_int_equal(store_changes(clone, g, "Service", count_change, n), 0); /* its own log */
    store_free(clone);
    store_free(st);
}

/* A configuration without upstreams (or only the stub) has no plan to refresh with. */
static void test_no_plan_without_upstreams(void **state)
{
    (void)state;
    Store *st;
    assert_int_equal(store_new(&st), 0);
    json_t *cfg, *failures;
    XlatePlan *plan = (XlatePlan *)1;
    assert_int_equal(xlate_run_plan(st, NULL, &cfg, &failures, &plan), 0);
    assert_null(plan);
    json_decref(cfg);
    json_decref(failures);
    store_free(st);
}


/*
 * The canonical writer's chunks: a configuration of big arrays whose entities differ in size
 * (so that chunks cost unevenly), keys out of order, an empty array and plain values. Written by
 * one thread and by two, the bytes must be jansson's own compact sorted dump, the hash theirs,
 * and each upstream's span in the plan must hold that upstream's bytes. The caller grows the
 * output while the helper runs (the helper populating ahead of it only when it happens to wait:
 * bench-translate under ThreadSanitizer is where that was checked).
 */
static void test_canonical_chunks(void **state)
{
    (void)state;
    json_t *cfg = json_object();
    json_t *ups = json_array(), *svcs = json_array(), *plugins = json_array();
    for (int i = 0; i < 1500; i++) {
        /* Every 16th upstream has 1,000 targets: the output (6 MB) outgrows what is reserved for
         * its entities, so the buffer grows while the helper may be populating ahead of it. */
        json_t *targets = json_array();
        for (int t = 0; t < (i % 16 ? i % 40 : 1000); t++) {
            char addr[32];
            snprintf(addr, sizeof(addr), "10.%d.%d.%d:80", t / 250, i % 250, t % 250);
            json_array_append_new(targets, json_pack("{s:s,s:i}", "target", addr, "weight", t));
        }
        json_array_append_new(ups, json_pack("{s:s,s:o,s:b}", "name", "up", "targets", targets,
                                             "x\"y", i & 1));
    }
    for (int i = 0; i < 700; i++)
        json_array_append_new(svcs, json_pack("{s:i,s:s,s:[s]}", "port", i, "name", "svc\n",
                                              "tags", "t"));
    for (int i = 0; i < 33; i++)
        json_array_append_new(plugins, json_pack("{s:s}", "name", "p"));
    json_object_set_new(cfg, "upstreams", ups);
    json_object_set_new(cfg, "_format_version", json_string("3.0"));
    json_object_set_new(cfg, "services", svcs);
    json_object_set_new(cfg, "certificates", json_array());
    json_object_set_new(cfg, "plugins", plugins);
    json_object_set_new(cfg, "zz", json_pack("{s:n}", "b"));
    char *want = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(want);
    char want_hash[65];
    util_sha256_hex(want, strlen(want), want_hash);

    size_t saved = xsplit_min;
    for (int threads = 1; threads <= 2; threads++) {
        XlatePlan plan;
        memset(&plan, 0, sizeof(plan));
        plan.nups = json_array_size(ups);
        plan.spans = calloc(2 * plan.nups, sizeof(size_t));
        xsplit_min = threads == 2 ? 1 : 0;
        size_t len;
        char hash[65];
        char *j = xlate_canonical_hashed(cfg, &len, &plan, hash);
        assert_non_null(j);
        assert_int_equal(len, strlen(want));
        assert_string_equal(j, want);
        assert_string_equal(hash, want_hash);
        for (size_t i = 0; i < plan.nups; i++) {
            char *one = json_dumps(json_array_get(ups, i), JSON_COMPACT | JSON_SORT_KEYS);
            size_t a = plan.spans[2 * i], b = plan.spans[2 * i + 1];
            assert_true(a < b && b <= len);
            assert_int_equal(b - a, strlen(one));
            assert_memory_equal(j + a, one, b - a);
            free(one);
        }
        free(plan.spans);
        free(j);
    }
    xsplit_min = saved;
    free(want);
    json_decref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refresh_matches_full),
        cmocka_unit_test(test_refresh_matches_full_drain),
        cmocka_unit_test(test_no_plan_without_upstreams),
        cmocka_unit_test(test_store_changes),
        cmocka_unit_test(test_canonical_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
