/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the data plane module: discovery URLs, CONNECT_TO, flattened errors, fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp.h"
#include "dp_internal.h"
#include "store.h"

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fail_msg("bad test JSON: %s (line %d)", err.text, err.line);
    return j;
}

static const char *at(json_t *arr, size_t i, const char *k)
{
    return json_string_value(json_object_get(json_array_get(arr, i), k));
}

static void test_discover(void **st)
{
    json_t *slices = load(
        "[{\"metadata\":{\"name\":\"kong-admin-abc\",\"namespace\":\"kong\","
        "  \"labels\":{\"kubernetes.io/service-name\":\"kong-admin\"}},"
        " \"addressType\":\"IPv4\","
        " \"ports\":[{\"name\":\"admin-tls\",\"port\":8444},{\"name\":\"http\",\"port\":8001},"
        "            {\"port\":9999}],"
        " \"endpoints\":["
        "  {\"addresses\":[\"10.0.0.2\",\"10.0.0.9\"],\"conditions\":{\"ready\":false},"
        "   \"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"kong\",\"name\":\"gw-1\"}},"
        "  {\"addresses\":[\"10.0.0.3\"],\"conditions\":{\"terminating\":true},"
        "   \"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"kong\",\"name\":\"gw-2\"}},"
        "  {\"addresses\":[\"10.0.0.4\"],\"targetRef\":{\"kind\":\"Node\",\"name\":\"n\"}},"
        "  {\"addresses\":[],\"targetRef\":{\"kind\":\"Pod\",\"name\":\"gw-3\"}},"
        "  {\"addresses\":[\"10.0.0.1\"],\"targetRef\":{\"kind\":\"Pod\",\"name\":\"gw-0\"}}]},"
        " {\"metadata\":{\"name\":\"kong-admin-v6\",\"namespace\":\"kong\"},"
        " \"addressType\":\"IPv6\","
        " \"ports\":[{\"name\":\"kong-admin-tls\",\"port\":8444}],"
        " \"endpoints\":[{\"addresses\":[\"fd00::5\"],"
        "   \"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"kong\",\"name\":\"gw-6\"}},"
        "  {\"addresses\":[\"10.0.0.2\"],\"targetRef\":{\"kind\":\"Pod\",\"name\":\"gw-1\"}}]}]");
    json_t *got = dp__discover(slices, "kong", "kong-admin", "admin-tls, kong-admin-tls");
    assert_non_null(got);
    assert_int_equal(json_array_size(got), 3);
    assert_string_equal(at(got, 0, "url"), "https://10.0.0.1:8444");
    assert_string_equal(at(got, 0, "pod"), "kong/gw-0");
    assert_string_equal(at(got, 1, "url"), "https://10.0.0.2:8444");
    assert_string_equal(at(got, 1, "server_name"), "pod.kong-admin.kong.svc");
    assert_string_equal(at(got, 2, "url"), "https://[fd00::5]:8444");
    json_decref(got);

    /* Only the named port list counts; unnamed ports never do. */
    got = dp__discover(slices, "kong", "kong-admin", "http");
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(at(got, 0, "url"), "https://10.0.0.1:8001");
    json_decref(got);

    /* Without a configured Service the slice's label names it; unlabelled slices are skipped. */
    got = dp__discover(slices, NULL, NULL, NULL);
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(at(got, 0, "server_name"), "pod.kong-admin.kong.svc");
    json_decref(got);

    got = dp__discover(NULL, "kong", "kong-admin", NULL);
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
    json_decref(slices);
}

static void test_connect_to(void **st)
{
    char *base = NULL, *ct = NULL;
    assert_int_equal(dp__connect_to("https://10.0.0.1:8444", "pod.a.b.svc", &base, &ct), 0);
    assert_string_equal(base, "https://pod.a.b.svc:8444");
    assert_string_equal(ct, "pod.a.b.svc:8444:10.0.0.1:8444");
    free(base);
    free(ct);
    assert_int_equal(dp__connect_to("https://[fd00::5]:8444/", "pod.a.b.svc", &base, &ct), 0);
    assert_string_equal(base, "https://pod.a.b.svc:8444");
    assert_string_equal(ct, "pod.a.b.svc:8444:[fd00::5]:8444");
    free(base);
    free(ct);
    /* Default port and a path prefix (Kong behind a path). */
    assert_int_equal(dp__connect_to("https://kong.local/admin/", "x.example", &base, &ct), 0);
    assert_string_equal(base, "https://x.example:443/admin");
    assert_string_equal(ct, "x.example:443:kong.local:443");
    free(base);
    free(ct);
    assert_true(dp__connect_to("::not a url", "x", &base, &ct) < 0);
}

static void test_flattened_errors(void **st)
{
    const char *body =
        "{\"code\":14,\"name\":\"invalid declarative configuration\",\"flattened_errors\":["
        "{\"entity_type\":\"route\",\"entity_name\":\"r1\",\"entity_tags\":["
        "  \"k8s-name:ing\",\"k8s-namespace:default\",\"k8s-kind:Ingress\",\"k8s-uid:u1\","
        "  \"k8s-group:networking.k8s.io\",\"k8s-version:v1\"],"
        " \"errors\":[{\"type\":\"field\",\"field\":\"paths.1\",\"message\":\"bad regex\"}]},"
        "{\"entity_type\":\"route\",\"entity_name\":\"r2\",\"entity_tags\":["
        "  \"k8s-name:ing\",\"k8s-namespace:default\",\"k8s-kind:Ingress\",\"k8s-uid:u1\"],"
        " \"errors\":[{\"type\":\"entity\",\"messages\":[\"one\",\"two\"]}]},"
        "{\"entity_type\":\"plugin\",\"entity_tags\":[\"k8s-name:p\",\"k8s-kind:"
        "KongClusterPlugin\","
        "  \"k8s-group:configuration.konghq.com\",\"k8s-version:v1\"],"
        " \"errors\":[{\"type\":\"entity\",\"message\":\"schema violation\"}]},"
        "{\"entity_type\":\"service\",\"entity_tags\":[\"managed-by-ingress-controller\"],"
        " \"errors\":[{\"type\":\"entity\",\"message\":\"no tags\"}]}]}";
    size_t unmapped = 99;
    json_t *b = dp__flattened_errors(body, strlen(body), &unmapped);
    assert_non_null(b);
    assert_int_equal(unmapped, 1);
    assert_int_equal(json_array_size(b), 2);
    assert_string_equal(at(b, 0, "kind"), "Ingress");
    assert_string_equal(at(b, 0, "namespace"), "default");
    assert_string_equal(at(b, 0, "name"), "ing");
    assert_string_equal(at(b, 0, "uid"), "u1");
    assert_string_equal(at(b, 0, "group"), "networking.k8s.io");
    assert_string_equal(at(b, 0, "message"), "paths.1: bad regex; one; two");
    assert_string_equal(at(b, 1, "kind"), "KongClusterPlugin");
    assert_string_equal(at(b, 1, "namespace"), "");
    assert_string_equal(at(b, 1, "message"), "schema violation");
    json_decref(b);

    assert_null(
        dp__flattened_errors("{\"message\":\"expected a declarative configuration\"}", 51, NULL));
    assert_null(dp__flattened_errors("not json", 8, NULL));
    b = dp__flattened_errors("{\"flattened_errors\":[]}", 23, NULL);
    assert_int_equal(json_array_size(b), 0);
    json_decref(b);
}

/* A store with a small world: two Ingresses sharing a Service, plugins, consumers, routes. */
static Store *world(void)
{
    Store *s = NULL;
    assert_int_equal(store_new(&s), 0);
    json_t *objs = load(
        "["
        "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"IngressClass\","
        " \"metadata\":{\"name\":\"kong\"}},"
        "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"svc\",\"namespace\":"
        "\"ns\","
        " \"annotations\":{\"konghq.com/plugins\":\"p-svc\","
        "  \"konghq.com/upstream-policy\":\"kup\"}}},"
        "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"other\","
        "\"namespace\":\"ns\"}},"
        "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"Ingress\","
        " \"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"uid\":\"ua\","
        "  \"annotations\":{\"konghq.com/plugins\":\" p-ing , cluster-p \"}},"
        " \"spec\":{\"ingressClassName\":\"kong\",\"rules\":[{\"http\":{\"paths\":["
        "  "
        "{\"path\":\"/"
        "\",\"backend\":{\"service\":{\"name\":\"svc\",\"port\":{\"number\":80}}}}]}}]}},"
        "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"Ingress\","
        " \"metadata\":{\"name\":\"b\",\"namespace\":\"ns\"},"
        " \"spec\":{\"rules\":[{\"http\":{\"paths\":["
        "  "
        "{\"path\":\"/\",\"backend\":{\"service\":{\"name\":\"other\",\"port\":{\"number\":80}}}},"
        "  {\"path\":\"/f\",\"backend\":{\"resource\":{\"apiGroup\":"
        "   \"incubator.ingress-controller.konghq.com\",\"kind\":\"KongServiceFacade\","
        "   \"name\":\"facade\"}}}]}}]}},"
        "{\"apiVersion\":\"incubator.ingress-controller.konghq.com/v1alpha1\","
        " \"kind\":\"KongServiceFacade\",\"metadata\":{\"name\":\"facade\",\"namespace\":\"ns\","
        " \"annotations\":{\"konghq.com/upstream-policy\":\"kup\"}}},"
        "{\"apiVersion\":\"configuration.konghq.com/v1beta1\",\"kind\":\"KongUpstreamPolicy\","
        " \"metadata\":{\"name\":\"kup\",\"namespace\":\"ns\"}},"
        "{\"apiVersion\":\"configuration.konghq.com/v1\",\"kind\":\"KongPlugin\","
        " \"metadata\":{\"name\":\"p-ing\",\"namespace\":\"ns\"},\"plugin\":\"key-auth\","
        " \"configFrom\":{\"secretKeyRef\":{\"name\":\"plugin-conf\",\"key\":\"k\"}}},"
        "{\"apiVersion\":\"configuration.konghq.com/v1\",\"kind\":\"KongPlugin\","
        " \"metadata\":{\"name\":\"p-svc\",\"namespace\":\"ns\"},\"plugin\":\"cors\"},"
        "{\"apiVersion\":\"configuration.konghq.com/v1\",\"kind\":\"KongClusterPlugin\","
        " \"metadata\":{\"name\":\"cluster-p\"},\"plugin\":\"acl\","
        " \"configPatches\":[{\"path\":\"/x\",\"valueFrom\":{\"secretKeyRef\":"
        "  {\"name\":\"cp-conf\",\"namespace\":\"ns\",\"key\":\"k\"}}}]},"
        "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"plugin-conf\","
        "\"namespace\":\"ns\"}},"
        "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"cp-conf\","
        "\"namespace\":\"ns\"}},"
        "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"cred\",\"namespace\":"
        "\"ns\"}},"
        "{\"apiVersion\":\"configuration.konghq.com/v1\",\"kind\":\"KongConsumer\","
        " \"metadata\":{\"name\":\"alice\",\"namespace\":\"ns\"},\"username\":\"alice\","
        " \"credentials\":[\"cred\"]},"
        "{\"apiVersion\":\"configuration.konghq.com/v1\",\"kind\":\"KongConsumer\","
        " \"metadata\":{\"name\":\"bob\",\"namespace\":\"ns\","
        "  \"annotations\":{\"konghq.com/plugins\":\"cluster-p\"}},\"username\":\"bob\"},"
        "{\"apiVersion\":\"configuration.konghq.com/v1alpha1\",\"kind\":\"KongCustomEntity\","
        " \"metadata\":{\"name\":\"ce\",\"namespace\":\"ns\"},\"spec\":{\"type\":\"degraphql_"
        "routes\","
        "  \"parentRef\":{\"group\":\"configuration.konghq.com\",\"kind\":\"KongPlugin\","
        "   \"name\":\"p-svc\"}}},"
        "{\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"HTTPRoute\","
        " \"metadata\":{\"name\":\"hr\",\"namespace\":\"ns\"},\"spec\":{\"rules\":[{"
        "\"backendRefs\":["
        "  "
        "{\"name\":\"other\",\"port\":80},{\"name\":\"svc\",\"kind\":\"Service\",\"namespace\":"
        "\"ns\"},"
        "  {\"name\":\"svc\",\"group\":\"example.com\",\"kind\":\"Thing\"}]}]}},"
        "{\"apiVersion\":\"configuration.konghq.com/v1beta1\",\"kind\":\"TCPIngress\","
        " \"metadata\":{\"name\":\"tcp\",\"namespace\":\"ns\"},\"spec\":{\"rules\":[{\"port\":9000,"
        "  \"backend\":{\"serviceName\":\"svc\",\"servicePort\":80}}]}}"
        "]");
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o)
    {
        assert_true(store_put(s, o) >= 0);
    }
    json_decref(objs);
    return s;
}

static int has(Store *s, const char *kind, const char *ns, const char *name)
{
    return store_get(s, kind, ns, name) != NULL;
}

static Store *prune(Store *src, const char *broken)
{
    json_t *b = load(broken);
    Store *out = NULL;
    assert_int_equal(dp_fallback_store(src, b, &out), 0);
    json_decref(b);
    assert_non_null(out);
    return out;
}

static void test_fallback_plugin_secret(void **st)
{
    Store *s = world();
    size_t before = store_count(s, NULL);
    /* A broken Secret takes its plugin and the plugin's users (Ingress a), nothing else. */
    Store *f = prune(s, "[{\"kind\":\"Secret\",\"namespace\":\"ns\",\"name\":\"plugin-conf\"}]");
    assert_false(has(f, "Secret", "ns", "plugin-conf"));
    assert_false(has(f, "KongPlugin", "ns", "p-ing"));
    assert_false(has(f, "Ingress", "ns", "a"));
    assert_true(has(f, "Ingress", "ns", "b"));
    assert_true(has(f, "Service", "ns", "svc"));
    assert_int_equal(store_count(f, NULL), before - 3);
    assert_int_equal(store_count(s, NULL), before); /* the source is untouched */
    store_free(f);
    store_free(s);
}

static void test_fallback_upstream_policy(void **st)
{
    Store *s = world();
    /* KongUpstreamPolicy <- Service svc, facade <- Ingress a (svc), Ingress b (facade),
     * HTTPRoute hr (svc), TCPIngress tcp (svc). */
    Store *f =
        prune(s, "[{\"kind\":\"KongUpstreamPolicy\",\"namespace\":\"ns\",\"name\":\"kup\"}]");
    assert_false(has(f, "KongUpstreamPolicy", "ns", "kup"));
    assert_false(has(f, "Service", "ns", "svc"));
    assert_false(has(f, "KongServiceFacade", "ns", "facade"));
    assert_false(has(f, "Ingress", "ns", "a"));
    assert_false(has(f, "Ingress", "ns", "b"));
    assert_false(has(f, "HTTPRoute", "ns", "hr"));
    assert_false(has(f, "TCPIngress", "ns", "tcp"));
    assert_true(has(f, "Service", "ns", "other"));
    assert_true(has(f, "KongPlugin", "ns", "p-svc"));
    assert_true(has(f, "IngressClass", "", "kong"));
    store_free(f);
    store_free(s);
}

static void test_fallback_cluster_plugin_and_class(void **st)
{
    Store *s = world();
    Store *f =
        prune(s, "[{\"kind\":\"KongClusterPlugin\",\"namespace\":\"\",\"name\":\"cluster-p\"}]");
    assert_false(has(f, "KongClusterPlugin", "", "cluster-p"));
    assert_false(has(f, "KongConsumer", "ns", "bob"));
    assert_false(has(f, "Ingress", "ns", "a"));
    assert_true(has(f, "KongConsumer", "ns", "alice"));
    assert_true(has(f, "Secret", "ns", "cp-conf")); /* dependencies stay, dependants go */
    store_free(f);

    /* Cluster-scoped object reported with a namespace tag, and a class broken. */
    f = prune(s, "[{\"kind\":\"IngressClass\",\"namespace\":\"x\",\"name\":\"kong\"}]");
    assert_false(has(f, "IngressClass", "", "kong"));
    assert_false(has(f, "Ingress", "ns", "a"));
    assert_true(has(f, "Ingress", "ns", "b")); /* b names no class */
    store_free(f);

    /* Credential Secret takes its consumer; the custom entity follows its parent plugin. */
    f = prune(s, "[{\"kind\":\"Secret\",\"namespace\":\"ns\",\"name\":\"cred\"},"
                 "{\"kind\":\"KongPlugin\",\"namespace\":\"ns\",\"name\":\"p-svc\"}]");
    assert_false(has(f, "KongConsumer", "ns", "alice"));
    assert_false(has(f, "KongCustomEntity", "ns", "ce"));
    assert_false(has(f, "Service", "ns", "svc"));
    assert_true(has(f, "KongConsumer", "ns", "bob"));
    store_free(f);
    store_free(s);
}

static void test_fallback_uid_and_unknown(void **st)
{
    Store *s = world();
    size_t before = store_count(s, NULL);
    /* A UID that does not match means the object was replaced: nothing is removed. */
    Store *f =
        prune(s, "[{\"kind\":\"Ingress\",\"namespace\":\"ns\",\"name\":\"a\",\"uid\":\"other\"},"
                 "{\"kind\":\"Ingress\",\"namespace\":\"ns\",\"name\":\"zzz\"},"
                 "{\"name\":\"no-kind\"}]");
    assert_int_equal(store_count(f, NULL), before);
    store_free(f);
    f = prune(s, "[{\"kind\":\"Ingress\",\"namespace\":\"ns\",\"name\":\"a\",\"uid\":\"ua\"}]");
    assert_int_equal(store_count(f, NULL), before - 1);
    store_free(f);
    f = prune(s, "[]");
    assert_int_equal(store_count(f, NULL), before);
    store_free(f);
    store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discover),
        cmocka_unit_test(test_connect_to),
        cmocka_unit_test(test_flattened_errors),
        cmocka_unit_test(test_fallback_plugin_secret),
        cmocka_unit_test(test_fallback_upstream_policy),
        cmocka_unit_test(test_fallback_cluster_plugin_and_class),
        cmocka_unit_test(test_fallback_uid_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
