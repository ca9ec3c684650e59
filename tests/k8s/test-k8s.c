/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the Kubernetes client's pure parts: kubeconfig, Lease decisions, Event dedup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s_int.h"

static int parse(const char *text, K8sCreds *c, char **err)
{
    memset(c, 0, sizeof(*c));
    *err = NULL;
    return k8s__kubeconfig_parse(text, strlen(text), "/cfg/dir/kubeconfig", c, err);
}

static const char *KC_HEAD = "apiVersion: v1\n"
                             "kind: Config\n"
                             "current-context: b\n"
                             "contexts:\n"
                             "- name: a\n"
                             "  context: {cluster: ca, user: ua}\n"
                             "- name: b\n"
                             "  context: {cluster: cb, user: ub, namespace: kong}\n"
                             "clusters:\n"
                             "- name: ca\n"
                             "  cluster: {server: 'https://a.example:6443'}\n"
                             "- name: cb\n"
                             "  cluster:\n"
                             "    server: https://10.0.0.1:6443/\n"
                             "    certificate-authority-data: Q0EtUEVN\n"
                             "    insecure-skip-tls-verify: true\n";

static void test_kubeconfig_token(void **state)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "%susers:\n- name: ua\n  user: {token: wrong}\n- name: ub\n  user: {token: sekret}\n",
             KC_HEAD);
    K8sCreds c;
    char *err;
    assert_int_equal(parse(text, &c, &err), 0);
    assert_null(err);
    assert_string_equal(c.server, "https://10.0.0.1:6443");
    assert_string_equal(c.token, "sekret");
    assert_non_null(c.ca_pem);
    assert_int_equal(c.ca_len, 6);
    assert_memory_equal(c.ca_pem, "CA-PEM", 6);
    assert_true(c.insecure);
    assert_string_equal(c.ns, "kong");
    assert_string_equal(k8s__creds_token(&c), "sekret");
    k8s__creds_deinit(&c);
}

static void test_kubeconfig_token_file_relative(void **state)
{
    char text[4096];
    snprintf(text, sizeof(text), "%susers:\n- name: ub\n  user: {tokenFile: tok}\n", KC_HEAD);
    K8sCreds c;
    char *err;
    assert_int_equal(parse(text, &c, &err), 0);
    assert_null(c.token);
    assert_string_equal(c.token_file, "/cfg/dir/tok");
    k8s__creds_deinit(&c);
}

static void test_kubeconfig_token_file_rotation(void **state)
{
    char dir[] = "/tmp/k8s-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], text[4096];
    snprintf(path, sizeof(path), "%s/token", dir);
    FILE *f = fopen(path, "w");
    fputs("one\n", f);
    fclose(f);
    snprintf(text, sizeof(text), "%susers:\n- name: ub\n  user: {tokenFile: %s}\n", KC_HEAD, path);
    K8sCreds c;
    char *err;
    assert_int_equal(parse(text, &c, &err), 0);
    assert_string_equal(k8s__creds_token(&c), "one");
    f = fopen(path, "w");
    fputs("two", f);
    fclose(f);
    /* Cached for a short while, then re-read. */
    c.token_read_ms -= K8S_TOKEN_CACHE_MS + 1;
    assert_string_equal(k8s__creds_token(&c), "two");
    /* A vanished file keeps the last good token. */
    unlink(path);
    c.token_read_ms -= K8S_TOKEN_CACHE_MS + 1;
    assert_string_equal(k8s__creds_token(&c), "two");
    rmdir(dir);
    k8s__creds_deinit(&c);
}

static void test_kubeconfig_client_cert(void **state)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "%susers:\n- name: ub\n  user:\n    client-certificate-data: Q0VSVA==\n"
             "    client-key-data: S0VZ\n",
             KC_HEAD);
    K8sCreds c;
    char *err;
    assert_int_equal(parse(text, &c, &err), 0);
    assert_int_equal(c.cert_len, 4);
    assert_memory_equal(c.cert_pem, "CERT", 4);
    assert_int_equal(c.key_len, 3);
    assert_null(c.token);
    k8s__creds_deinit(&c);

    /* Certificate without its key. */
    snprintf(text, sizeof(text), "%susers:\n- name: ub\n  user: {client-certificate-data: QQ==}\n",
             KC_HEAD);
    assert_true(parse(text, &c, &err) < 0);
    assert_non_null(strstr(err, "key"));
    free(err);
    k8s__creds_deinit(&c);
}

static void test_kubeconfig_errors(void **state)
{
    K8sCreds c;
    char *err;
    assert_true(parse("kind: Config\n", &c, &err) < 0);
    assert_non_null(strstr(err, "current-context"));
    assert_non_null(strstr(err, "/cfg/dir/kubeconfig"));
    free(err);
    k8s__creds_deinit(&c);

    assert_true(parse("current-context: x\ncontexts: []\n", &c, &err) < 0);
    assert_non_null(strstr(err, "context \"x\" not found"));
    free(err);
    k8s__creds_deinit(&c);

    char text[4096];
    snprintf(text, sizeof(text), "%susers:\n- name: ub\n  user: {exec: {command: aws}}\n", KC_HEAD);
    assert_true(parse(text, &c, &err) < 0);
    assert_non_null(strstr(err, "exec"));
    free(err);
    k8s__creds_deinit(&c);

    assert_true(parse("a: [unclosed\n", &c, &err) < 0);
    assert_non_null(err);
    free(err);
    k8s__creds_deinit(&c);

    /* A server of slashes alone is none (fuzz-kubeconfig found it taken as ""). */
    assert_true(parse("current-context: a\ncontexts:\n- {name: a, context: {cluster: c, user: u}}\n"
                      "clusters:\n- {name: c, cluster: {server: ///}}\n",
                      &c, &err) < 0);
    assert_non_null(strstr(err, "cluster \"c\" has no server"));
    free(err);
    k8s__creds_deinit(&c);
}

static json_t *lease(const char *holder, const char *renew)
{
    return json_pack("{s:{s:s, s:s}, s:{s:s, s:i, s:s, s:s, s:i}}", "metadata", "name", "l",
                     "resourceVersion", "7", "spec", "holderIdentity", holder,
                     "leaseDurationSeconds", 15, "renewTime", renew, "acquireTime", renew,
                     "leaseTransitions", 3);
}

static void test_lease_observe(void **state)
{
    K8sLeaseObs o = {0};
    json_t *l = lease("other", "2026-01-01T00:00:00.000000Z");
    /* Held by another, first seen now: not ours until it stays unchanged for 15 s. */
    assert_false(k8s__lease_observe(&o, l, "me", 1000));
    assert_false(k8s__lease_observe(&o, l, "me", 15999));
    assert_true(k8s__lease_observe(&o, l, "me", 16000));
    /* Renewed by the holder: the clock starts again. */
    json_t *l2 = lease("other", "2026-01-01T00:00:02.000000Z");
    assert_false(k8s__lease_observe(&o, l2, "me", 17000));
    assert_false(k8s__lease_observe(&o, l2, "me", 31999));
    assert_true(k8s__lease_observe(&o, l2, "me", 32000));
    /* Free or ours: always. */
    json_t *l3 = lease("", "2026-01-01T00:00:03.000000Z");
    assert_true(k8s__lease_observe(&o, l3, "me", 32001));
    json_t *l4 = lease("me", "2026-01-01T00:00:04.000000Z");
    assert_true(k8s__lease_observe(&o, l4, "me", 32002));
    json_decref(l);
    json_decref(l2);
    json_decref(l3);
    json_decref(l4);
}

static void test_lease_build(void **state)
{
    json_t *n = k8s__lease_build(NULL, "kong", "5b374a9e.konghq.com", "me", 15, false);
    json_t *spec = json_object_get(n, "spec");
    assert_string_equal(k8s__str(spec, "holderIdentity"), "me");
    assert_int_equal(json_integer_value(json_object_get(spec, "leaseTransitions")), 0);
    assert_int_equal(json_integer_value(json_object_get(spec, "leaseDurationSeconds")), 15);
    const char *rt = k8s__str(spec, "renewTime");
    /* RFC 3339 with microseconds: 2026-11-27T04:42:30.123456Z */
    assert_int_equal(strlen(rt), 27);
    assert_int_equal(rt[19], '.');
    assert_int_equal(rt[26], 'Z');
    assert_string_equal(k8s__str(n, "kind"), "Lease");
    assert_string_equal(k8s__str(json_object_get(n, "metadata"), "namespace"), "kong");
    json_decref(n);

    /* Taking over from another holder counts a transition and keeps the resourceVersion. */
    json_t *old = lease("other", "2026-01-01T00:00:00.000000Z");
    n = k8s__lease_build(old, "kong", "l", "me", 15, false);
    spec = json_object_get(n, "spec");
    assert_int_equal(json_integer_value(json_object_get(spec, "leaseTransitions")), 4);
    assert_string_equal(k8s__str(json_object_get(n, "metadata"), "resourceVersion"), "7");
    assert_string_not_equal(k8s__str(spec, "acquireTime"), "2026-01-01T00:00:00.000000Z");
    /* Renewing our own keeps acquireTime and the count. */
    json_t *n2 = k8s__lease_build(n, "kong", "l", "me", 15, false);
    json_t *spec2 = json_object_get(n2, "spec");
    assert_int_equal(json_integer_value(json_object_get(spec2, "leaseTransitions")), 4);
    assert_string_equal(k8s__str(spec2, "acquireTime"), k8s__str(spec, "acquireTime"));
    /* Release empties the holder. */
    json_t *rel = k8s__lease_build(n2, "kong", "l", "me", 15, true);
    assert_string_equal(k8s__str(json_object_get(rel, "spec"), "holderIdentity"), "");
    json_decref(old);
    json_decref(n);
    json_decref(n2);
    json_decref(rel);
}

/* A float64 the API server writes in plain digits past int64 is read as a real, not refused:
 * a list with one such object would otherwise fail whole. */
static void test_json_big_numbers(void **state)
{
    (void)state;
    const char *t = "{\"items\":[{\"config\":{\"big\":12345678901234567000,"
                    "\"neg\":-10000000000000000000,\"ok\":9223372036854775807,"
                    "\"s\":\"12345678901234567000 \\\" 99999999999999999999\",\"r\":1.5e300}}]}";
    json_error_t e;
    json_t *v = k8s__json_loadb(t, strlen(t), &e);
    assert_non_null(v);
    json_t *c = json_object_get(json_array_get(json_object_get(v, "items"), 0), "config");
    assert_true(json_is_real(json_object_get(c, "big")));
    assert_true(json_real_value(json_object_get(c, "big")) == 12345678901234567000.0);
    assert_true(json_real_value(json_object_get(c, "neg")) == -1e19);
    assert_true(json_is_integer(json_object_get(c, "ok")));
    assert_string_equal(json_string_value(json_object_get(c, "s")),
                        "12345678901234567000 \" 99999999999999999999");
    json_decref(v);
    v = k8s__json_loadb("[-10000000000000000000]", 23, &e); /* jansson: "too big negative" */
    assert_true(json_is_real(json_array_get(v, 0)));
    json_decref(v);
    /* Other errors stay errors, with jansson's text. */
    assert_null(k8s__json_loadb("{\"a\":1e400}", 11, &e));
    assert_non_null(strstr(e.text, "overflow"));
    assert_null(k8s__json_loadb("[1,", 3, NULL));
}

static void test_bucket(void **state)
{
    K8sBucket b;
    k8s__bucket_init(&b, 3, 1.0, 1000);
    assert_true(k8s__bucket_take(&b, 1000));
    assert_true(k8s__bucket_take(&b, 1000));
    assert_true(k8s__bucket_take(&b, 1000));
    assert_false(k8s__bucket_take(&b, 1000));
    assert_false(k8s__bucket_take(&b, 1500));
    assert_true(k8s__bucket_take(&b, 2000));
    /* Never above the burst. */
    assert_true(k8s__bucket_take(&b, 100000));
    assert_true(k8s__bucket_take(&b, 100000));
    assert_true(k8s__bucket_take(&b, 100000));
    assert_false(k8s__bucket_take(&b, 100000));
}

static void test_events_dedup(void **state)
{
    K8s k;
    memset(&k, 0, sizeof(k));
    K8sEvents *e = NULL;
    assert_int_equal(k8s__events_new(&k, &e), 0);
    const char *name = NULL;
    json_int_t count = 0;
    const char *key = "Ingress/a/b/uid\x1fWarning\x1fR\x1fmsg";
    uint64_t t0 = util_now_ms();
    assert_int_equal(k8s__events_decide(e, key, t0, "b.1", &name, &count), K8S_EV_CREATE);
    assert_string_equal(name, "b.1");
    assert_int_equal(count, 1);
    /* Repeated within a minute: counted, not written. */
    assert_int_equal(k8s__events_decide(e, key, t0 + 1000, "b.2", &name, &count), K8S_EV_SKIP);
    assert_int_equal(k8s__events_decide(e, key, t0 + 2000, "b.3", &name, &count), K8S_EV_SKIP);
    /* A minute later: the count of the same Event is patched. */
    assert_int_equal(k8s__events_decide(e, key, t0 + 61000, "b.4", &name, &count), K8S_EV_PATCH);
    assert_string_equal(name, "b.1");
    assert_int_equal(count, 4);
    /* Another message is another Event. */
    assert_int_equal(k8s__events_decide(e, "Ingress/a/b/uid\x1fWarning\x1fR\x1fother", t0 + 61000,
                                        "b.5", &name, &count),
                     K8S_EV_CREATE);
    /* After the ten-minute window: a fresh Event. */
    assert_int_equal(k8s__events_decide(e, key, t0 + 11 * 60000, "b.6", &name, &count),
                     K8S_EV_CREATE);
    assert_string_equal(name, "b.6");
    /* The rate limit: a burst of distinct failures is cut at the bucket size. */
    int created = 0;
    for (int i = 0; i < 100; i++) {
        char kk[64];
        snprintf(kk, sizeof(kk), "Ingress/a/n%d", i);
        if (k8s__events_decide(e, kk, t0 + 11 * 60000, "x", &name, &count) == K8S_EV_CREATE)
            created++;
    }
    assert_true(created >= 20 && created <= 25);
    k8s__events_free(e);
}

static void test_service_addresses(void **state)
{
    json_t *lb = json_loads("{\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.0.0.5\"},"
                            "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"1.2.3.4\"},"
                            "{\"hostname\":\"lb.example\"}]}}}",
                            0, NULL);
    json_t *a = k8s__service_addresses(lb);
    json_t *want = json_loads("[{\"ip\":\"1.2.3.4\"},{\"hostname\":\"lb.example\"}]", 0, NULL);
    assert_true(json_equal(a, want));
    json_decref(a);
    json_decref(want);
    json_decref(lb);
    json_t *cip =
        json_loads("{\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"10.0.0.5\"}}", 0, NULL);
    a = k8s__service_addresses(cip);
    want = json_loads("[{\"ip\":\"10.0.0.5\"}]", 0, NULL);
    assert_true(json_equal(a, want));
    json_decref(a);
    json_decref(want);
    json_decref(cip);
    json_t *ext = json_loads("{\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.0.0.5\","
                             "\"externalIPs\":[\"5.6.7.8\"]}}",
                             0, NULL);
    a = k8s__service_addresses(ext);
    want = json_loads("[{\"ip\":\"5.6.7.8\"}]", 0, NULL);
    assert_true(json_equal(a, want));
    json_decref(a);
    json_decref(want);
    json_decref(ext);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kubeconfig_token),
        cmocka_unit_test(test_kubeconfig_token_file_relative),
        cmocka_unit_test(test_kubeconfig_token_file_rotation),
        cmocka_unit_test(test_kubeconfig_client_cert),
        cmocka_unit_test(test_kubeconfig_errors),
        cmocka_unit_test(test_lease_observe),
        cmocka_unit_test(test_lease_build),
        cmocka_unit_test(test_json_big_numbers),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_events_dedup),
        cmocka_unit_test(test_service_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
