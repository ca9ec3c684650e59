/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Namespace plans against full translations: after each of a few hundred random changes to
 * Ingresses, Services, EndpointSlices, KongPlugins, KongIngresses, KongUpstreamPolicies,
 * KongConsumers (with credentials, groups and plugins), CA certificates and TCP/UDP ingresses in
 * random namespaces, redoing only the
 * namespaces that changed must give byte for byte what translating the whole store gives, with
 * the same failures; and what reaches across namespaces must ask for a full translation.
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

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "store.h"
#include "xlate.h"

/* A self-signed certificate and its key, made now (keys are never committed). */
static void make_cert(char **cert, char **key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(k);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"a.example.com", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    /* The CA basic constraint, which a CA certificate must have (as Go's IsCA reads it). */
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    assert_non_null(bc);
    bc->ca = 1;
    assert_true(X509_set_version(x, 2));
    assert_true(X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1);
    BASIC_CONSTRAINTS_free(bc);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_X509(cb, x) && PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL));
    char *p;
    long n = BIO_get_mem_data(cb, &p);
    *cert = strndup(p, (size_t)n);
    n = BIO_get_mem_data(kb, &p);
    *key = strndup(p, (size_t)n);
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(k);
}

static uint32_t rnd_state = 4242;
static uint32_t rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

#define NS 4
#define APPS 6

static void put(Store *st, json_t *o)
{
    assert_true(store_put(st, o) >= 0);
    json_decref(o);
}

static void ingress(Store *st, int ns, int app, int variant)
{
    char nsn[16], name[32], host[64], path[32], svc[32], plugins[64];
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    snprintf(name, sizeof(name), "ing-%d", app);
    snprintf(host, sizeof(host), "app-%d-%d.ns%d.example.com", app, variant % 3, ns);
    snprintf(path, sizeof(path), "/v%d", variant % 4);
    snprintf(svc, sizeof(svc), variant % 7 == 6 ? "missing-%d" : "svc-%d", app); /* a failure */
    snprintf(plugins, sizeof(plugins),
             variant % 5 == 4   ? "limit-%d,nope"
             : variant % 5 == 3 ? "limit-%d,cluster-cors" /* a KongClusterPlugin */
                                : "limit-%d",
             app % 3);
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:{s:s, s:s}}, s:{s:s, s:[{s:s, s:{s:[{s:s, "
                      "s:s, s:{s:{s:s, s:{s:i}}}}]}}]}}",
                      "apiVersion", "networking.k8s.io/v1", "kind", "Ingress", "metadata", "name",
                      name, "namespace", nsn, "creationTimestamp",
                      app % 2 ? "2024-01-01T00:00:00Z" : "2024-02-01T00:00:00Z", "annotations",
                      "konghq.com/plugins", plugins, "konghq.com/strip-path",
                      variant % 2 ? "true" : "false", "spec", "ingressClassName", "kong", "rules",
                      "host", host, "http", "paths", "path", path, "pathType",
                      variant % 3 ? "Prefix" : "Exact", "backend", "service", "name", svc, "port",
                      "number", 80));
    if ((app + variant) % 3 == 0) { /* TLS for its host, from the namespace's Secret */
        json_t *ing = json_deep_copy(store_get(st, "Ingress", nsn, name));
        json_object_set_new(json_object_get(ing, "spec"), "tls",
                            json_pack("[{s:[s], s:s}]", "hosts", host, "secretName", "tls"));
        put(st, ing);
    }
}

static void tls_secret(Store *st, int ns)
{
    char nsn[16], *crt, *key;
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    make_cert(&crt, &key);
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                      "Secret", "metadata", "name", "tls", "namespace", nsn, "type",
                      "kubernetes.io/tls", "stringData", "tls.crt", crt, "tls.key", key));
    free(crt);
    free(key);
}

/*
 * A TCPIngress (to app @app's Service, now and then with TLS for a host of the namespace's own,
 * or @tls_host) and a UDPIngress in namespace @ns.
 */
static void l4(Store *st, int ns, int app, int variant, const char *tls_host)
{
    char nsn[16], svc[32], host[64];
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    snprintf(svc, sizeof(svc), "svc-%d", app);
    snprintf(host, sizeof(host), "tcp-%d.ns%d.example.com", variant % 3, ns);
    json_t *tcp = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:[{s:i, s:s, s:{s:s, s:i}}]}}",
                            "apiVersion", "configuration.konghq.com/v1beta1", "kind", "TCPIngress",
                            "metadata", "name", "tcp", "namespace", nsn, "annotations",
                            "kubernetes.io/ingress.class", "kong", "spec", "rules", "port",
                            9000 + variant % 4, "host", host, "backend", "serviceName", svc,
                            "servicePort", 80);
    if (tls_host || variant % 2)
        json_object_set_new(json_object_get(tcp, "spec"), "tls",
                            json_pack("[{s:[s], s:s}]", "hosts", tls_host ? tls_host : host,
                                      "secretName", "tls"));
    put(st, tcp);
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:[{s:i, s:{s:s, s:i}}]}}",
                      "apiVersion", "configuration.konghq.com/v1beta1", "kind", "UDPIngress",
                      "metadata", "name", "udp", "namespace", nsn, "annotations",
                      "kubernetes.io/ingress.class", "kong", "spec", "rules", "port",
                      5300 + variant % 2, "backend", "serviceName", svc, "servicePort", 53));
}

/* Namespace @ns's CA certificate, with an ID of its own (or @id). */
static void ca_secret(Store *st, int ns, const char *id)
{
    char nsn[16], own[32], *crt, *key;
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    snprintf(own, sizeof(own), "ca-ns-%d", ns);
    make_cert(&crt, &key);
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s, s:s}}", "apiVersion", "v1",
                      "kind", "Secret", "metadata", "name", id ? "other-ca" : "ca", "namespace",
                      nsn, "labels", "konghq.com/ca-cert", "true", "stringData", "id",
                      id ? id : own, "cert", crt));
    free(crt);
    free(key);
}

static void service(Store *st, int ns, int app, int variant)
{
    char nsn[16], name[32];
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    snprintf(name, sizeof(name), "svc-%d", app);
    json_t *ann = json_object();
    if (variant % 3 == 1)
        json_object_set_new(ann, "konghq.com/override", json_string("ki"));
    if (variant % 3 == 2)
        json_object_set_new(ann, "konghq.com/upstream-policy", json_string("pol"));
    if (variant % 4 == 3)
        json_object_set_new(ann, "konghq.com/read-timeout", json_string("5000"));
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:o}, s:{s:[{s:s, s:i, s:i}]}}", "apiVersion", "v1",
                      "kind", "Service", "metadata", "name", name, "namespace", nsn, "annotations",
                      ann, "spec", "ports", "name", "http", "port", 80, "targetPort", 8080));
}

static void slice(Store *st, int ns, int app, int variant)
{
    char nsn[16], name[32], svc[32];
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    snprintf(name, sizeof(name), "svc-%d-x", app);
    snprintf(svc, sizeof(svc), "svc-%d", app);
    json_t *eps = json_array();
    for (int i = 0; i < 1 + variant % 3; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", ns, app, i + variant % 5);
        json_array_append_new(eps, json_pack("{s:[s], s:{s:b}}", "addresses", ip, "conditions",
                                             "ready", 1));
    }
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:o, s:[{s:s, s:i, s:s}]}",
                      "apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata",
                      "name", name, "namespace", nsn, "labels", "kubernetes.io/service-name", svc,
                      "addressType", "IPv4", "endpoints", eps, "ports", "name", "http", "port",
                      8080, "protocol", "TCP"));
}

static void plugin(Store *st, int ns, int k, int variant)
{
    char nsn[16], name[32];
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    snprintf(name, sizeof(name), "limit-%d", k);
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:{s:i, s:s}}", "apiVersion",
                      "configuration.konghq.com/v1", "kind", "KongPlugin", "metadata", "name", name,
                      "namespace", nsn, "plugin", "rate-limiting", "config", "minute",
                      10 + variant, "policy", "local"));
}

/*
 * Consumer @k of namespace @ns: a username unique in the cluster (or only a custom_id), a key-auth
 * credential from a Secret, now and then a group and a plugin (which then also applies to the
 * routes that name it: KIC's consumer-times-route combination).
 */
static void consumer(Store *st, int ns, int k, int variant)
{
    char nsn[16], name[32], user[32], cred[32], key[64], group[32], plugins[32];
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    snprintf(name, sizeof(name), "user-%d", k);
    snprintf(user, sizeof(user), "u-%d-%d", ns, k);
    snprintf(cred, sizeof(cred), "cred-%d", k);
    snprintf(key, sizeof(key), "key-%d-%d-%d", ns, k, variant % 4);
    snprintf(group, sizeof(group), "group-%d-%d", ns, (k + variant) % 2);
    snprintf(plugins, sizeof(plugins), "limit-%d", k % 3);
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1",
                      "kind", "Secret", "metadata", "name", cred, "namespace", nsn, "labels",
                      "konghq.com/credential", "key-auth", "stringData", "key", key));
    json_t *c = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:[s]}", "apiVersion",
                          "configuration.konghq.com/v1", "kind", "KongConsumer", "metadata", "name",
                          name, "namespace", nsn, "annotations", "kubernetes.io/ingress.class",
                          "kong", "credentials", cred);
    if (variant % 3)
        json_object_set_new(c, "username", json_string(user));
    if (variant % 3 != 1)
        json_object_set_new(c, "custom_id", json_sprintf("id-%s", user));
    /* A consumer with only a custom_id is "" in consumer_group_consumers, as in KIC, which no
     * plan can place (the reconciler translates in full then): these consumers join no group. */
    if (variant % 2 && variant % 3)
        json_object_set_new(c, "consumerGroups", json_pack("[s]", group));
    if (variant % 4 == 3)
        json_object_set_new(json_object_get(json_object_get(c, "metadata"), "annotations"),
                            "konghq.com/plugins", json_string(plugins));
    put(st, c);
    for (int g = 0; g < 2; g++) { /* group names are cluster-wide in Kong */
        snprintf(group, sizeof(group), "group-%d-%d", ns, g);
        put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}}", "apiVersion",
                          "configuration.konghq.com/v1beta1", "kind", "KongConsumerGroup",
                          "metadata", "name", group, "namespace", nsn, "annotations",
                          "kubernetes.io/ingress.class", "kong"));
    }
}

static void extras(Store *st, int ns, int variant)
{
    char nsn[16];
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i, s:s}}", "apiVersion",
                      "configuration.konghq.com/v1", "kind", "KongIngress", "metadata", "name", "ki",
                      "namespace", nsn, "upstream", "slots", 100 + variant, "hash_on", "ip"));
    put(st, json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion",
                      "configuration.konghq.com/v1beta1", "kind", "KongUpstreamPolicy", "metadata",
                      "name", "pol", "namespace", nsn, "spec", "algorithm",
                      variant % 2 ? "least-connections" : "round-robin"));
}

static Store *base_store(void)
{
    Store *st;
    assert_int_equal(store_new(&st), 0);
    put(st, json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "networking.k8s.io/v1", "kind",
                      "IngressClass", "metadata", "name", "kong", "spec", "controller",
                      "ingress-controllers.konghq.com/kong"));
    /* Cluster plugins: one global (in no namespace's part), one that Ingresses may name. */
    put(st, json_pack("{s:s, s:s, s:{s:s, s:{s:s}, s:{s:s}}, s:s}", "apiVersion",
                      "configuration.konghq.com/v1", "kind", "KongClusterPlugin", "metadata", "name",
                      "prom", "labels", "global", "true", "annotations",
                      "kubernetes.io/ingress.class", "kong", "plugin", "prometheus"));
    put(st, json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:s}", "apiVersion",
                      "configuration.konghq.com/v1", "kind", "KongClusterPlugin", "metadata", "name",
                      "cluster-cors", "annotations", "kubernetes.io/ingress.class", "kong", "plugin",
                      "cors"));
    put(st, json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s, s:s, s:{s:s}}}", "apiVersion",
                      "configuration.konghq.com/v1alpha1", "kind", "KongVault", "metadata", "name",
                      "env", "annotations", "kubernetes.io/ingress.class", "kong", "spec", "backend",
                      "env", "prefix", "env-vault", "config", "prefix", "SECRET_"));
    for (int ns = 0; ns < NS; ns++) {
        for (int a = 0; a < APPS; a++) {
            ingress(st, ns, a, 0);
            service(st, ns, a, 0);
            slice(st, ns, a, 0);
        }
        for (int k = 0; k < 3; k++)
            plugin(st, ns, k, 0);
        for (int k = 0; k < 2; k++)
            consumer(st, ns, k, 11); /* a username and a custom_id, a group and plugins */
        extras(st, ns, 0);
        tls_secret(st, ns);
        ca_secret(st, ns, NULL);
        l4(st, ns, ns % APPS, 1, NULL);
    }
    return st;
}

static Bytes *full(Store *st, json_t **failures)
{
    XlateOptions o;
    xlate_options_default(&o);
    json_t *cfg;
    size_t len;
    assert_int_equal(xlate_run(st, &o, &cfg, failures), 0);
    char *j = xlate_canonical_json(cfg, &len);
    json_decref(cfg);
    return bytes_new(j, len);
}

/* base_store() with default options @o, and the bytes of its full translation. */
static Store *base_translated(XlateOptions *o, Bytes **json)
{
    Store *st = base_store();
    json_t *failures;
    xlate_options_default(o);
    *json = full(st, &failures);
    json_decref(failures);
    return st;
}

/* The same failures, whatever their order. */
static bool same_set(json_t *a, json_t *b)
{
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(a, i, x)
    {
        bool found = false;
        json_array_foreach(b, j, y) found = found || json_equal(x, y);
        if (!found)
            return false;
    }
    json_array_foreach(b, i, x)
    {
        bool found = false;
        json_array_foreach(a, j, y) found = found || json_equal(x, y);
        if (!found)
            return false;
    }
    return true;
}

/* Deletes the object of @kind in namespace ns-@ns named by @fmt. */
static void del(Store *st, const char *kind, int ns, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void del(Store *st, const char *kind, int ns, const char *fmt, ...)
{
    char nsn[16], name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    snprintf(nsn, sizeof(nsn), "ns-%d", ns);
    store_delete(st, kind, nsn, name);
}

static void random_change(Store *st, int step)
{
    int ns = (int)rnd(NS + 1); /* NS: a namespace that comes and goes */
    int app = (int)rnd(APPS), v = step + 1;
    switch (rnd(10)) {
    case 0:
        ingress(st, ns, app, v);
        break;
    case 1:
        service(st, ns, app, v);
        break;
    case 2:
        slice(st, ns, app, v);
        break;
    case 3:
        plugin(st, ns, app % 3, v);
        break;
    case 4:
        extras(st, ns, v);
        break;
    case 5:
        del(st, "Ingress", ns, "ing-%d", app);
        break;
    case 6:
        del(st, "Service", ns, "svc-%d", app);
        break;
    case 7:
        if (app == 0)
            ca_secret(st, ns, NULL); /* a new certificate under the same ID */
        else if (app == 1)
            l4(st, ns, (int)rnd(APPS), v, NULL);
        else
            consumer(st, ns, app % 3, v);
        break;
    case 8:
        del(st, "KongConsumer", ns, "user-%d", app % 3);
        del(st, "KongConsumerGroup", ns, "group-%d-%d", ns, app % 2);
        break;
    default: /* a whole namespace goes */
        for (int a = 0; a < APPS; a++) {
            del(st, "Ingress", ns, "ing-%d", a);
            del(st, "Service", ns, "svc-%d", a);
            del(st, "EndpointSlice", ns, "svc-%d-x", a);
        }
    }
}

static void test_refresh_matches_full(void **state)
{
    (void)state;
    XlateOptions o;
    Bytes *json;
    Store *st = base_translated(&o, &json);
    NsPlan *plan = NULL;
    const char *why = NULL;
    assert_non_null(strstr(json->data, "\"certificates\":[")); /* TLS in every namespace */
    assert_non_null(strstr(json->data, "\"consumer_group_consumers\":["));
    assert_non_null(strstr(json->data, "\"name\":\"prometheus\"")); /* the global plugin */
    assert_non_null(strstr(json->data, "\"ca_certificates\":["));
    assert_non_null(strstr(json->data, "\"vaults\":[")); /* in the cluster's part */
    assert_non_null(strstr(json->data, "\"protocol\":\"udp\"")); /* TCP and UDP ingresses */
    if (xlate_ns_build(st, &o, json, &plan, &why) != 0)
        fail_msg("no plan: %s", why);
    bytes_unref(json);
    int refreshed = 0, exdev = 0, cluster_cors = 0;
    for (int step = 0; step < 300; step++) {
        int n = 1 + (int)rnd(3);
        for (int i = 0; i < n; i++)
            random_change(st, step);
        Bytes *nb = NULL;
        json_t *nfail = NULL, *ffail;
        NsPlan *nplan = NULL;
        Bytes *want = full(st, &ffail);
        cluster_cors += strstr(want->data, "\"name\":\"cors\"") != NULL;
        int r = xlate_ns_refresh(st, plan, &o, &nb, &nfail, &nplan, &why);
        if (r == -EXDEV) {
            /* Only an empty configuration (nothing to merge) may not split here. */
            assert_string_equal(why, "no entities");
            exdev++;
            xlate_ns_plan_free(plan);
            plan = NULL;
            assert_int_equal(xlate_ns_build(st, &o, want, &plan, &why), -EXDEV);
            /* Fill the store again and start over from a full translation. */
            for (int a = 0; a < APPS; a++) {
                ingress(st, 1, a, step);
                service(st, 1, a, step);
            }
            json_decref(ffail);
            bytes_unref(want);
            want = full(st, &ffail);
            assert_int_equal(xlate_ns_build(st, &o, want, &plan, &why), 0);
            json_decref(ffail);
            bytes_unref(want);
            continue;
        }
        assert_int_equal(r, 0);
        if (nb->len != want->len || memcmp(nb->data, want->data, nb->len))
            fail_msg("step %d: merged\n%s\nfull translation\n%s", step, nb->data, want->data);
        /* The reconciler refreshes from a small snapshot: the same bytes. */
        Store *snap;
        Bytes *sb;
        json_t *sfail;
        NsPlan *splan;
        assert_int_equal(xlate_ns_snapshot(st, plan, &snap, &why), 0);
        assert_int_equal(xlate_ns_refresh(snap, plan, &o, &sb, &sfail, &splan, &why), 0);
        assert_int_equal(sb->len, nb->len);
        assert_memory_equal(sb->data, nb->data, nb->len);
        bytes_unref(sb);
        json_decref(sfail);
        xlate_ns_plan_free(splan);
        store_free(snap);
        if (!same_set(nfail, ffail))
            fail_msg("step %d: failures differ\n%s\n%s", step, json_dumps(nfail, 0),
                     json_dumps(ffail, 0));
        refreshed++;
        bytes_unref(nb);
        bytes_unref(want);
        json_decref(nfail);
        json_decref(ffail);
        xlate_ns_plan_free(plan);
        plan = nplan; /* refresh the refreshed next time */
    }
    assert_true(refreshed > 250);
    assert_true(cluster_cors > 50); /* Ingresses named the cluster plugin in many rounds */
    xlate_ns_plan_free(plan);
    store_free(st);
    (void)exdev;
}

/* What reaches across namespaces, or configures all of them, asks for a full translation. */
static void test_cross_namespace_needs_full(void **state)
{
    (void)state;
    XlateOptions o;
    xlate_options_default(&o);
    static const struct {
        const char *name, *why;
    } cases[] = {
        {"tls host", "a TLS host, credential or CA certificate ID in two namespaces"},
        {"same certificate", "equal sort keys in two namespaces"},
        {"same consumer", "equal sort keys in two namespaces"},
        {"same credential", "a TLS host, credential or CA certificate ID in two namespaces"},
        {"same ca id", "a TLS host, credential or CA certificate ID in two namespaces"},
        {"tcp tls host", "a TLS host, credential or CA certificate ID in two namespaces"},
        {"own conflict", "conflicting credentials"},
        {"cluster plugin", "a change to a cluster-wide kind"},
        {"class", "a change to a cluster-wide kind"},
        {"two defaults", "default backends in several namespaces"},
        {"slices log", "more changes than the store remembers"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        Bytes *json;
        Store *st = base_translated(&o, &json);
        json_t *failures;
        NsPlan *plan = NULL, *nplan = NULL;
        const char *why = NULL;
        assert_int_equal(xlate_ns_build(st, &o, json, &plan, &why), 0);
        bytes_unref(json);
        const char *name = cases[c].name;
        if (!strcmp(name, "tls host")) { /* the oldest Ingress in the cluster gets a host */
            json_t *ing = json_deep_copy(store_get(st, "Ingress", "ns-2", "ing-1"));
            json_object_set_new(json_object_get(ing, "spec"), "tls",
                                json_pack("[{s:[s], s:s}]", "hosts", "app-0-0.ns0.example.com",
                                          "secretName", "tls"));
            put(st, ing);
        } else if (!strcmp(name, "same certificate")) { /* one certificate entity, two Secrets */
            json_t *sec = json_deep_copy(store_get(st, "Secret", "ns-0", "tls"));
            json_t *md = obj_metadata(sec); /* the store packs it */
            json_object_set_new(md, "namespace", json_string("ns-3"));
            json_object_del(sec, "metadataPacked");
            json_object_set_new(sec, "metadata", md);
            put(st, sec);
        } else if (!strcmp(name, "same consumer")) { /* ns-2's user-0 is the same consumer */
            put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:s}", "apiVersion",
                              "configuration.konghq.com/v1", "kind", "KongConsumer", "metadata",
                              "name", "twin", "namespace", "ns-3", "annotations",
                              "kubernetes.io/ingress.class", "kong", "username", "u-2-0",
                              "custom_id", "id-u-2-0"));
        } else if (!strcmp(name, "same credential") || !strcmp(name, "own conflict")) {
            /* ns-2's user-0 has this key: conflicting credentials drop both consumers */
            const char *ns = !strcmp(name, "own conflict") ? "ns-2" : "ns-3";
            put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1",
                              "kind", "Secret", "metadata", "name", "other-cred", "namespace", ns,
                              "labels", "konghq.com/credential", "key-auth", "stringData", "key",
                              "key-2-0-3"));
            put(st, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[s]}", "apiVersion",
                              "configuration.konghq.com/v1", "kind", "KongConsumer", "metadata",
                              "name", "other", "namespace", ns, "annotations",
                              "kubernetes.io/ingress.class", "kong", "username", "other",
                              "credentials", "other-cred"));
        } else if (!strcmp(name, "tcp tls host")) { /* an Ingress of ns-0 has this host */
            l4(st, 3, 0, 1, "app-0-0.ns0.example.com");
        } else if (!strcmp(name, "same ca id")) { /* the oldest object with an ID gets it */
            ca_secret(st, 3, "ca-ns-2");
        } else if (!strcmp(name, "cluster plugin")) { /* any namespace may name it */
            put(st, json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:s}", "apiVersion",
                              "configuration.konghq.com/v1", "kind", "KongClusterPlugin",
                              "metadata", "name", "cors", "annotations",
                              "kubernetes.io/ingress.class", "kong", "plugin", "cors"));
        } else if (!strcmp(name, "class")) {
            put(st, json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s}}", "apiVersion",
                              "networking.k8s.io/v1", "kind", "IngressClass", "metadata", "name",
                              "kong", "annotations", "ingressclass.kubernetes.io/is-default-class",
                              "true", "spec", "controller", "ingress-controllers.konghq.com/kong"));
        } else if (!strcmp(name, "two defaults")) { /* the oldest in the cluster wins */
            for (int ns = 0; ns < 2; ns++) {
                char nsn[16];
                snprintf(nsn, sizeof(nsn), "ns-%d", ns);
                json_t *ing = json_deep_copy(store_get(st, "Ingress", nsn, "ing-1"));
                json_object_set_new(json_object_get(ing, "spec"), "defaultBackend",
                                    json_pack("{s:{s:s, s:{s:i}}}", "service", "name", "svc-1",
                                              "port", "number", 80));
                put(st, ing);
            }
        } else { /* more changes than the store's log holds */
            for (int i = 0; i < 1100; i++)
                slice(st, i % NS, i % APPS, i + 1);
        }
        Bytes *nb = NULL;
        json_t *nfail = NULL;
        int rr = xlate_ns_refresh(st, plan, &o, &nb, &nfail, &nplan, &why);
        if (rr != -EXDEV)
            fail_msg("%s: refresh gave %d", name, rr);
        if (!why || strcmp(why, cases[c].why))
            fail_msg("%s: refresh said \"%s\", not \"%s\"", name, why ? why : "", cases[c].why);
        /* Nor does such a store make a plan; a new class or a long log are fine for a new one. */
        json = full(st, &failures);
        json_decref(failures);
        NsPlan *again = NULL;
        int r = xlate_ns_build(st, &o, json, &again, &why);
        bool fine = !strcmp(name, "slices log") || !strcmp(name, "class") ||
                    !strcmp(name, "cluster plugin");
        if (r != (fine ? 0 : -EXDEV))
            fail_msg("%s: build gave %d", name, r);
        xlate_ns_plan_free(again);
        bytes_unref(json);
        xlate_ns_plan_free(plan);
        store_free(st);
    }
}

/* Other options, or a plan of another store's past, are refused. */
static void test_other_options(void **state)
{
    (void)state;
    XlateOptions o;
    Bytes *json;
    Store *st = base_translated(&o, &json);
    NsPlan *plan = NULL, *nplan = NULL;
    const char *why = NULL;
    json->data[json->len / 2] ^= 1; /* not what the store translates to */
    assert_int_equal(xlate_ns_build(st, &o, json, &plan, &why), -EXDEV);
    json->data[json->len / 2] ^= 1;
    assert_int_equal(xlate_ns_build(st, &o, json, &plan, &why), 0);
    assert_true(xlate_ns_plan_usable(plan, &o));
    XlateOptions o2 = o;
    o2.expressions = true;
    assert_false(xlate_ns_plan_usable(plan, &o2));
    Bytes *nb;
    json_t *nfail;
    assert_int_equal(xlate_ns_refresh(st, plan, &o2, &nb, &nfail, &nplan, &why), -EXDEV);
    bytes_unref(json);
    xlate_ns_plan_free(plan);
    store_free(st);
}

/*
 * Certificate and key pairs are checked once per process (OpenSSL 3 takes ~1 ms a key): a pair
 * that does not match keeps failing, one that matches keeps making its certificate.
 */
static void test_pair_verdicts_cached(void **state)
{
    (void)state;
    char *c1, *k1, *c2, *k2;
    make_cert(&c1, &k1);
    make_cert(&c2, &k2);
    for (int round = 0; round < 3; round++) {
        Store *st;
        assert_int_equal(store_new(&st), 0);
        const char *pairs[][2] = {{c1, k1}, {c1, k2}, {c2, k2}};
        for (int i = 0; i < 3; i++) {
            char name[16], host[32];
            snprintf(name, sizeof(name), "tls-%d", i);
            snprintf(host, sizeof(host), "h%d.example.com", i);
            put(st, json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s, s:s}}", "apiVersion", "v1",
                              "kind", "Secret", "metadata", "name", name, "namespace", "a", "type",
                              "kubernetes.io/tls", "stringData", "tls.crt", pairs[i][0],
                              "tls.key", pairs[i][1]));
            put(st, json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:[s], s:s}], s:[{s:s}]}}",
                              "apiVersion", "networking.k8s.io/v1", "kind", "Ingress", "metadata",
                              "name", name, "namespace", "a", "spec", "ingressClassName", "kong",
                              "tls", "hosts", host, "secretName", name, "rules", "host", host));
        }
        json_t *failures;
        Bytes *b = full(st, &failures);
        /* tls-1 pairs one certificate with another's key */
        assert_int_equal(json_array_size(failures), 1);
        char *fs = json_dumps(failures, 0);
        assert_non_null(strstr(fs, "tls-1"));
        free(fs);
        assert_non_null(strstr(b->data, "h0.example.com"));
        assert_null(strstr(b->data, "h1.example.com\",\"certificate"));
        assert_non_null(strstr(b->data, "h2.example.com"));
        json_decref(failures);
        bytes_unref(b);
        store_free(st);
    }
    free(c1);
    free(k1);
    free(c2);
    free(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refresh_matches_full),
        cmocka_unit_test(test_cross_namespace_needs_full),
        cmocka_unit_test(test_other_options),
        cmocka_unit_test(test_pair_verdicts_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
