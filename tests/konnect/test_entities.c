/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the Konnect entity flattening, redaction and diff (konnect/entities.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "konnect_int.h"
#include "util.h"
#include "xlate.h"

/* Until the translator lands on main, revision.c needs this; the real one wins when linked. */
__attribute__((weak)) char *xlate_canonical_json(const json_t *config, size_t *ret_len)
{
    char *s = json_dumps(config, JSON_SORT_KEYS | JSON_COMPACT);
    if (s && ret_len)
        *ret_len = strlen(s);
    return s;
}

static json_t *load(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static json_t *desired(const char *cfg, bool no_consumers)
{
    json_t *c = load(cfg);
    json_t *d = NULL;
    assert_int_equal(konnect__desired(c, no_consumers, &d), 0);
    json_decref(c);
    return d;
}

/* find() - the single entity of @kind in @d (borrowed); fails if not exactly one. */
static json_t *only(json_t *d, const char *kind, const char **ret_key)
{
    const char *k;
    json_t *v, *found = NULL;
    int n = 0;
    json_object_foreach(d, k, v)
    {
        if (konnect__kind_index(k) == konnect__kind_index(kind)) {
            found = v;
            n++;
            if (ret_key)
                *ret_key = k;
        }
    }
    assert_int_equal(n, 1);
    return found;
}

static const char *CFG =
    "{\"_format_version\":\"3.0\","
    "\"services\":[{\"name\":\"s1\",\"id\":\"5b1c1a8e-0000-4000-8000-000000000001\",\"host\":\"h\","
    "  \"client_certificate\":\"c0000000-0000-4000-8000-000000000001\","
    "  \"routes\":[{\"name\":\"r1\",\"id\":\"5b1c1a8e-0000-4000-8000-0000000000a1\","
    "     \"paths\":[\"/a\"],\"plugins\":[{\"name\":\"key-auth\"}]}],"
    "  \"plugins\":[{\"name\":\"cors\",\"config\":{\"origins\":[\"*\"]}}]}],"
    "\"upstreams\":[{\"name\":\"u1\",\"targets\":[{\"target\":\"10.0.0.1:80\",\"weight\":10}]}],"
    "\"certificates\":[{\"id\":\"c0000000-0000-4000-8000-000000000001\",\"cert\":\"CERT\","
    "  \"key\":\"TOPSECRETKEY\",\"snis\":[{\"name\":\"a.example\"}]}],"
    "\"consumers\":[{\"username\":\"alice\",\"id\":\"a0000000-0000-4000-8000-000000000001\","
    "  \"keyauth_credentials\":[{\"key\":\"KEYSECRET\",\"tags\":[\"k8s-name:s\",\"k8s-uid:1\"]}],"
    "  \"basicauth_credentials\":[{\"username\":\"alice\",\"password\":\"PWSECRET\"}]}],"
    "\"plugins\":[{\"name\":\"rate-limiting\",\"consumer\":\"alice\",\"route\":\"r1\"}]}";

static void test_flatten(void **state)
{
    (void)state;
    json_t *d = desired(CFG, false);
    json_t *svc = json_object_get(d, "services/5b1c1a8e-0000-4000-8000-000000000001");
    assert_non_null(svc);
    assert_null(json_object_get(svc, "routes"));
    assert_null(json_object_get(svc, "plugins"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(svc, "client_certificate"), "id")),
        "c0000000-0000-4000-8000-000000000001");
    json_t *r = json_object_get(d, "routes/5b1c1a8e-0000-4000-8000-0000000000a1");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "service"), "id")),
                        "5b1c1a8e-0000-4000-8000-000000000001");
    json_t *u = only(d, "upstreams", NULL);
    json_t *t = only(d, "targets", NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(t, "upstream"), "id")),
                        json_string_value(json_object_get(u, "id")));
    json_t *sni = only(d, "snis", NULL);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(sni, "certificate"), "id")),
        "c0000000-0000-4000-8000-000000000001");
    assert_null(json_object_get(only(d, "certificates", NULL), "snis"));
    /* 3 plugins: route key-auth, service cors, global rate-limiting resolved by names. */
    int plugins = 0;
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
    {
        if (strncmp(k, "plugins/", 8) != 0)
            continue;
        plugins++;
        const char *name = json_string_value(json_object_get(v, "name"));
        if (strcmp(name, "rate-limiting") == 0) {
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(v, "consumer"), "id")),
                "a0000000-0000-4000-8000-000000000001");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(v, "route"), "id")),
                "5b1c1a8e-0000-4000-8000-0000000000a1");
        } else if (strcmp(name, "key-auth") == 0) {
            assert_non_null(json_object_get(v, "route"));
        } else {
            assert_non_null(json_object_get(v, "service"));
        }
    }
    assert_int_equal(plugins, 3);
    json_decref(d);
}

static void test_stable_ids(void **state)
{
    (void)state;
    json_t *a = desired(CFG, false), *b = desired(CFG, false);
    assert_true(json_equal(a, b));
    /* A different target gets a different id; the upstream keeps its own. */
    json_t *c = load(CFG);
    json_object_set_new(
        json_array_get(
            json_object_get(json_array_get(json_object_get(c, "upstreams"), 0), "targets"), 0),
        "target", json_string("10.0.0.2:80"));
    json_t *d = NULL;
    assert_int_equal(konnect__desired(c, false, &d), 0);
    const char *ka, *kb;
    only(a, "targets", &ka);
    only(d, "targets", &kb);
    assert_string_not_equal(ka, kb);
    only(a, "upstreams", &ka);
    only(d, "upstreams", &kb);
    assert_string_equal(ka, kb);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
}

static void test_redaction(void **state)
{
    (void)state;
    json_t *d = desired(CFG, false);
    char *all = json_dumps(d, JSON_COMPACT);
    assert_null(strstr(all, "TOPSECRETKEY"));
    assert_null(strstr(all, "KEYSECRET"));
    assert_null(strstr(all, "PWSECRET"));
    free(all);
    const char *key = json_string_value(json_object_get(only(d, "certificates", NULL), "key"));
    assert_non_null(strstr(key, "{vault://redacted/"));
    /* Deterministic: the same entity gets the same placeholder; another entity another one. */
    char p1[64], p2[64], p3[64];
    konnect__placeholder("certificates", "c0000000-0000-4000-8000-000000000001", "key", p1);
    konnect__placeholder("certificates", "c0000000-0000-4000-8000-000000000001", "key", p2);
    konnect__placeholder("certificates", "c0000000-0000-4000-8000-000000000002", "key", p3);
    assert_string_equal(p1, key);
    assert_string_equal(p1, p2);
    assert_string_not_equal(p1, p3);
    /* A rotated key-auth key (same Secret, so same tags) keeps its id and placeholder. */
    json_t *c = load(CFG);
    json_t *cr = json_array_get(
        json_object_get(json_array_get(json_object_get(c, "consumers"), 0), "keyauth_credentials"),
        0);
    json_object_set_new(cr, "key", json_string("ROTATED"));
    json_t *d2 = NULL;
    assert_int_equal(konnect__desired(c, false, &d2), 0);
    const char *k1, *k2;
    json_t *a1 = only(d, "key-auths", &k1), *a2 = only(d2, "key-auths", &k2);
    assert_string_equal(k1, k2);
    assert_true(json_equal(a1, a2));
    json_decref(c);
    json_decref(d);
    json_decref(d2);
}

static void test_subset_equal(void **state)
{
    (void)state;
    json_t *want = load("{\"a\":1,\"b\":[\"x\"],\"c\":{\"d\":true},\"e\":[],\"f\":2.0}");
    json_t *have = load("{\"a\":1.0,\"b\":[\"x\"],\"c\":{\"d\":true,\"extra\":5},\"e\":null,"
                        "\"f\":2,\"created_at\":7}");
    assert_true(konnect__subset_equal(want, have));
    json_t *changed = load("{\"a\":1,\"b\":[\"x\",\"y\"],\"c\":{\"d\":true},\"f\":2}");
    assert_false(konnect__subset_equal(want, changed));
    json_t *missing = load("{\"a\":1,\"c\":{\"d\":true},\"f\":2}");
    assert_false(konnect__subset_equal(want, missing));
    json_t *nested = load("{\"a\":1,\"b\":[\"x\"],\"c\":{\"d\":false},\"f\":2}");
    assert_false(konnect__subset_equal(want, nested));
    json_decref(want);
    json_decref(have);
    json_decref(changed);
    json_decref(missing);
    json_decref(nested);
}

static void test_diff_order(void **state)
{
    (void)state;
    json_t *d = desired(CFG, false);
    /* Current: one stale route and one stale consumer; nothing else. */
    json_t *cur = load("{\"routes/r-old\":{\"id\":\"r-old\",\"service\":{\"id\":\"x\"}},"
                       "\"consumers/c-old\":{\"id\":\"c-old\"},"
                       "\"plugins/p-old\":{\"id\":\"p-old\"},"
                       "\"unknownkind/z\":{\"id\":\"z\"}}");
    KOp *ops = NULL;
    size_t n = 0;
    assert_int_equal(konnect__diff(d, cur, NULL, &ops, &n), 0);
    assert_int_equal(n, json_object_size(d) + 3);
    int last_phase = -1;
    size_t first_del = n;
    for (size_t i = 0; i < n; i++) {
        int ph = konnect__phase(&ops[i]);
        assert_true(ph >= last_phase);
        last_phase = ph;
        if (ops[i].del && first_del == n)
            first_del = i;
        if (!ops[i].del)
            assert_int_equal(first_del, n); /* every PUT before every DELETE */
    }
    /* Deletes bottom-up: plugin, then route, then consumer. */
    assert_string_equal(ops[first_del].key, "plugins/p-old");
    assert_string_equal(ops[first_del + 1].key, "routes/r-old");
    assert_string_equal(ops[first_del + 2].key, "consumers/c-old");
    /* Certificates come first, plugins last among the PUTs. */
    assert_int_equal(konnect__kind_index(ops[0].key), konnect__kind_index("certificates"));
    assert_int_equal(konnect__kind_index(ops[first_del - 1].key), konnect__kind_index("plugins"));
    konnect__ops_free(ops, n);
    json_decref(cur);
    json_decref(d);
}

static void test_diff_nothing_and_written(void **state)
{
    (void)state;
    json_t *d = desired(CFG, false);
    /* Konnect holds the same with defaults added: no operations. */
    json_t *cur = json_deep_copy(d);
    const char *k;
    json_t *v;
    json_object_foreach(cur, k, v)
    {
        json_object_set_new(v, "created_at", json_integer(1));
        json_object_set_new(v, "enabled", json_true());
    }
    KOp *ops = NULL;
    size_t n = 0;
    assert_int_equal(konnect__diff(d, cur, NULL, &ops, &n), 0);
    assert_int_equal(n, 0);
    free(ops);
    /* A field dropped from the config still lingers in Konnect's copy: only what tether wrote
     * last time reveals it. */
    json_t *written = json_object();
    json_object_foreach(d, k, v)
    {
        json_object_set_new(written, k, json_deep_copy(v));
    }
    json_t *r = json_object_get(d, "routes/5b1c1a8e-0000-4000-8000-0000000000a1");
    json_object_set_new(json_object_get(written, "routes/5b1c1a8e-0000-4000-8000-0000000000a1"),
                        "hosts", json_pack("[s]", "x.example"));
    json_object_set_new(json_object_get(cur, "routes/5b1c1a8e-0000-4000-8000-0000000000a1"),
                        "hosts", json_pack("[s]", "x.example"));
    (void)r;
    assert_int_equal(konnect__diff(d, cur, written, &ops, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ops[0].key, "routes/5b1c1a8e-0000-4000-8000-0000000000a1");
    assert_false(ops[0].del);
    konnect__ops_free(ops, n);
    json_decref(written);
    json_decref(cur);
    json_decref(d);
}

static void test_paths(void **state)
{
    (void)state;
    json_t *t = load("{\"upstream\":{\"id\":\"u1\"}}");
    char *p = konnect__entity_path(konnect__kind_index("targets"), "t1", t);
    assert_string_equal(p, "/upstreams/u1/targets/t1");
    free(p);
    json_t *c = load("{\"consumer\":{\"id\":\"c1\"}}");
    p = konnect__entity_path(konnect__kind_index("basic-auths"), "b1", c);
    assert_string_equal(p, "/consumers/c1/basic-auth/b1");
    free(p);
    p = konnect__entity_path(konnect__kind_index("services"), "s1", c);
    assert_string_equal(p, "/services/s1");
    free(p);
    assert_null(konnect__entity_path(konnect__kind_index("targets"), "t1", c));
    json_decref(t);
    json_decref(c);
}

/* Group membership: rows by name become "<group id>:<consumer id>"; paths, POST, list pages. */
static void test_members(void **state)
{
    (void)state;
    json_t *d = desired("{\"consumers\":[{\"username\":\"alice\",\"id\":\"c1\"},"
                        "{\"custom_id\":\"bob-7\",\"id\":\"c2\"}],"
                        "\"consumer_groups\":[{\"name\":\"gold\",\"id\":\"g1\"}],"
                        "\"consumer_group_consumers\":[{\"consumer\":\"alice\",\"consumer_group\":"
                        "\"gold\"},{\"consumer\":\"bob-7\",\"consumer_group\":\"g1\"},"
                        "{\"consumer\":\"carol\",\"consumer_group\":\"gold\"},"
                        "{\"consumer\":\"alice\",\"consumer_group\":\"silver\"}]}",
                        false);
    json_t *m = json_object_get(d, "consumer_group_consumers/g1:c1");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "consumer"), "id")), "c1");
    assert_non_null(json_object_get(d, "consumer_group_consumers/g1:c2")); /* by custom_id and id */
    size_t members = 0;
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v) members += !strncmp(k, "consumer_group_consumers/", 25);
    assert_int_equal(members, 2); /* unknown consumer or group: left out */

    int kind = konnect__members_kind();
    assert_true(kind >= 0 && konnect__kinds[kind].consumer_data);
    /* After the consumer (level 0) and the group (1); removed before either is. */
    assert_true(konnect__kinds[kind].level > konnect__kinds[konnect__kind_index("consumer_groups")].level);
    char *p = konnect__entity_path(kind, "g1:c1", m);
    assert_string_equal(p, "/consumer_groups/g1/consumers/c1");
    free(p);
    char *body;
    assert_int_equal(konnect__member_add(m, &p, &body), 0);
    assert_string_equal(p, "/consumer_groups/g1/consumers");
    assert_string_equal(body, "{\"consumer\":\"c1\"}");
    free(p);
    free(body);

    json_t *into = json_object();
    char *off = NULL;
    const char *page = "{\"data\":[{\"id\":\"c1\",\"username\":\"alice\"},{\"username\":\"x\"}],"
                       "\"offset\":\"T2\"}";
    assert_int_equal(konnect__parse_members(page, strlen(page), "g1", into, &off), 0);
    assert_string_equal(off, "T2");
    assert_int_equal(json_object_size(into), 1);
    assert_true(konnect__subset_equal(m, json_object_get(into, "consumer_group_consumers/g1:c1")));
    free(off);
    assert_int_equal(konnect__parse_members("nope", 4, "g1", into, &off), -EBADMSG);
    assert_null(off);
    json_decref(into);
    json_decref(d);

    d = desired("{\"consumers\":[{\"username\":\"alice\",\"id\":\"c1\"}],\"consumer_groups\":"
                "[{\"name\":\"gold\",\"id\":\"g1\"}],\"consumer_group_consumers\":"
                "[{\"consumer\":\"alice\",\"consumer_group\":\"gold\"}]}",
                true);
    assert_null(json_object_get(d, "consumer_group_consumers/g1:c1"));
    json_decref(d);
}

static void test_no_consumers(void **state)
{
    (void)state;
    json_t *d = desired(CFG, true);
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
    {
        assert_false(konnect__kinds[konnect__kind_index(k)].consumer_data);
        assert_null(json_object_get(v, "consumer"));
    }
    json_decref(d);
}

static void test_fuzzish_inputs(void **state)
{
    (void)state;
    /* Wrong types everywhere must not crash and must give no entity for the broken parts. */
    json_t *d = desired("{\"services\":[1,{\"routes\":5},{\"name\":\"x\",\"routes\":[7,{}]}],"
                        "\"upstreams\":{},\"certificates\":[{\"snis\":[3]}],"
                        "\"consumers\":[{\"keyauth_credentials\":[1]}],\"plugins\":[{}]}",
                        false);
    assert_int_equal(json_object_size(d), 1); /* the service named x */
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flatten),        cmocka_unit_test(test_stable_ids),
        cmocka_unit_test(test_redaction),      cmocka_unit_test(test_subset_equal),
        cmocka_unit_test(test_diff_order),     cmocka_unit_test(test_diff_nothing_and_written),
        cmocka_unit_test(test_paths),          cmocka_unit_test(test_no_consumers),
        cmocka_unit_test(test_fuzzish_inputs), cmocka_unit_test(test_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
