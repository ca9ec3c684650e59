/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/: utilities, manifest loader, object store, translator entry points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <openssl/sha.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "jarena.h"
#include "manifest.h"
#include "memtrim.h"
#include "revision.h"
#include "store.h"
#include "util.h"
#include "xlate.h"
#include "xlate_int.h"

static void test_uuid5(void **state)
{
    char ns[37], id[37];
    (void)state;
    /* go-kong's FillID: namespace per type under a fixed base; values from KIC's golden files. */
    assert_int_equal(util_uuid5("fd02801f-0957-4a15-a55a-c8d9606f30b5", "services", ns), 0);
    assert_int_equal(util_uuid5(ns, "bar-namespace.foo-svc.80", id), 0);
    assert_string_equal(id, "edc1d53e-73b4-5932-9455-0e01f0d53e3f");
    assert_int_equal(util_uuid5("not-a-uuid", "x", id), -EINVAL);
    /* Other spellings of the namespace: upper case, no or misplaced dashes; a bad digit fails. */
    static const char *const same[] = {"FD02801F-0957-4A15-A55A-C8D9606F30B5",
                                       "fd02801f09574a15a55ac8d9606f30b5",
                                       "fd02801f0-957-4a15-a55a-c8d9606f30b5"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(util_uuid5(same[i], "services", id), 0);
        assert_string_equal(id, ns);
    }
    assert_int_equal(util_uuid5("fd02801f-0957-4a15-a55a-c8d9606f30bg", "x", id), -EINVAL);
    assert_int_equal(util_uuid5("fd02801f-0957-4a15-a55a-c8d9606f30b", "x", id), -EINVAL);
    /* Names around the SHA-1 block boundaries (values from Python's uuid.uuid5). */
    static const struct {
        char c;
        int n;
        const char *want;
    } v[] = {{'x', 55, "caf7ffd5-11c4-5d65-9f10-7525d1b84bdb"},
             {'y', 56, "7635fc13-49b0-5d5b-8603-a6324141db10"},
             {'z', 64, "3472a55b-8e63-524a-8fe5-dceeefbe15f1"},
             {'w', 300, "09a95645-b676-52f4-be44-9de96894e90f"}};
    assert_int_equal(util_uuid5("fd02801f-0957-4a15-a55a-c8d9606f30b5", "routes", ns), 0);
    assert_string_equal(ns, "78aafefa-16c7-5598-8955-58dc6264b27a");
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char name[301];
        memset(name, v[i].c, (size_t)v[i].n);
        name[v[i].n] = 0;
        assert_int_equal(util_uuid5(ns, name, id), 0);
        assert_string_equal(id, v[i].want);
    }
}

static void hex20(const unsigned char d[20], char out[41])
{
    for (int i = 0; i < 20; i++) {
        out[2 * i] = "0123456789abcdef"[d[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
    }
    out[40] = 0;
}

/* FIPS 180 examples, on the SHA instructions (where the CPU has them) and on the portable code. */
static void test_sha1_vectors(void **state)
{
    static const struct {
        const char *msg;
        const char *want;
    } v[] = {{"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
             {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
             {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1"}};
    unsigned char d[20];
    char hex[41], id[37];
    char *million = malloc(1000000);
    (void)state;
    assert_non_null(million);
    memset(million, 'a', 1000000);
    for (int accel = 1; accel >= 0; accel--) {
        bool on = util_sha1_use_accel(accel);
        assert_true(!on || accel);
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            util_sha1(v[i].msg, strlen(v[i].msg), d);
            hex20(d, hex);
            assert_string_equal(hex, v[i].want);
        }
        util_sha1(million, 1000000, d);
        hex20(d, hex);
        assert_string_equal(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
        assert_int_equal(util_uuid5("fd02801f-0957-4a15-a55a-c8d9606f30b5", "services", id), 0);
        assert_string_equal(id, "90050c4f-539a-5bd9-bfb5-2ff1c430ca18");
    }
    free(million);
    util_sha1_use_accel(true);
}

/* Both paths against each other and OpenSSL on every length up to past four blocks, with a fixed
 * seed so that a failure repeats. Without the SHA instructions both are the portable code. */
static void test_sha1_paths_agree(void **state)
{
    unsigned char msg[300], a[20], p[20], o[20];
    uint32_t x = 0x9e3779b9;
    (void)state;
    for (size_t n = 0; n <= sizeof(msg); n++) {
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            msg[i] = (unsigned char)x;
        }
        util_sha1_use_accel(true);
        util_sha1(msg, n, a);
        util_sha1_use_accel(false);
        util_sha1(msg, n, p);
        SHA1(msg, n, o);
        assert_memory_equal(a, p, 20);
        assert_memory_equal(p, o, 20);
    }
    util_sha1_use_accel(true);
}

static void test_base64(void **state)
{
    size_t n;
    (void)state;
    unsigned char *d = util_base64_decode("Y29uc3Vt\nZXItMQ==", 17, &n);
    assert_non_null(d);
    assert_int_equal(n, 10);
    assert_string_equal((char *)d, "consumer-1");
    free(d);
    assert_null(util_base64_decode("a$b=", 4, &n));
    assert_null(util_base64_decode("QQ==QQ==", 8, &n)); /* data after padding */
    char *e = util_base64_encode((const unsigned char *)"consumer-1", 10);
    assert_string_equal(e, "Y29uc3VtZXItMQ==");
    free(e);
}

static void test_sha256(void **state)
{
    char hex[65];
    (void)state;
    util_sha256_hex("_route-default.httpbin.httpbin..80", 34, hex);
    assert_memory_equal(hex, "21a1f5b5f", 9);
}

typedef struct Collected {
    json_t *objs;
    json_t *errs;
} Collected;

static int on_obj(void *ud, json_t *obj, const char *file, int line)
{
    Collected *c = ud;
    json_t *o = json_deep_copy(obj);
    json_object_set_new(o, "_line", json_integer(line));
    json_array_append_new(c->objs, o);
    (void)file;
    return 0;
}

static void on_err(void *ud, const char *file, int line, const char *msg)
{
    Collected *c = ud;
    json_array_append_new(c->errs, json_pack("{s:s, s:i, s:s}", "file", file, "line", line, "msg", msg));
}

static Collected load(const char *text)
{
    Collected c = {json_array(), json_array()};
    manifest_load_buffer(text, strlen(text), "t.yaml", on_obj, on_err, &c);
    return c;
}

static void drop(Collected *c)
{
    json_decref(c->objs);
    json_decref(c->errs);
}

/*
 * Merge keys, a byte order mark and underscores after a '.', as sigs.k8s.io/yaml (go-yaml v2)
 * reads them (each checked against it): a merge replaces the keys written before it and a later
 * key replaces merged ones; of a list of merges the earlier wins; an anchor on "<<" still
 * merges; an alias to a list cannot be merged; ".8_1" is 0.81, ".0_" text.
 */
static void test_manifest_merges_bom(void **state)
{
    (void)state;
    Collected c = load("\xEF\xBB\xBF---\n"
                       "kind: ConfigMap\nmetadata: {name: m, namespace: d}\n"
                       "base: &b {x: 1, y1: 1}\nother: &o {x: 3, z: 3}\nlist: &l [{x: 9}]\n"
                       "data:\n  x: 2\n  <<: *b\n"
                       "seq:\n  <<: [*b, *o]\n  z: 5\n"
                       "anch:\n  &k <<: {w: 1}\n"
                       "nums: [.8_1, .0_, ._1, .5e1_0]\n");
    assert_int_equal(json_array_size(c.errs), 0);
    assert_int_equal(json_array_size(c.objs), 1);
    json_t *o = json_array_get(c.objs, 0);
    assert_int_equal(json_integer_value(obj_get_path(o, "data.x")), 1);
    assert_int_equal(json_integer_value(obj_get_path(o, "seq.x")), 1);
    assert_int_equal(json_integer_value(obj_get_path(o, "seq.z")), 5);
    assert_int_equal(json_integer_value(obj_get_path(o, "anch.w")), 1);
    json_t *nums = json_object_get(o, "nums");
    assert_true(json_real_value(json_array_get(nums, 0)) == 0.81);
    assert_string_equal(json_string_value(json_array_get(nums, 1)), ".0_");
    assert_string_equal(json_string_value(json_array_get(nums, 2)), "._1");
    assert_true(json_real_value(json_array_get(nums, 3)) == 5e9);
    drop(&c);
    c = load("kind: ConfigMap\nmetadata: {name: m, namespace: d}\nlist: &l [{x: 9}]\n"
             "data:\n  <<: *l\n");
    assert_int_equal(json_array_size(c.objs), 0);
    assert_int_equal(json_array_size(c.errs), 1);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(c.errs, 0), "msg")),
                           "map merge requires map or sequence of maps"));
    drop(&c);
}

static void test_manifest_documents(void **state)
{
    (void)state;
    Collected c = load("# comment\n"
                       "---\n"
                       "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ns}\n"
                       "spec:\n  ports:\n  - port: 80\n    name: \"80\"\n"
                       "---\n"
                       "---\n"
                       "kind: List\nitems:\n- {kind: Secret, metadata: {name: s}}\n"
                       "- {kind: Secret, metadata: {name: t}}\n");
    assert_int_equal(json_array_size(c.errs), 0);
    assert_int_equal(json_array_size(c.objs), 3);
    json_t *svc = json_array_get(c.objs, 0);
    assert_int_equal(json_integer_value(json_object_get(svc, "_line")), 3);
    json_t *port = json_array_get(obj_get_path(svc, "spec.ports"), 0);
    assert_true(json_is_integer(json_object_get(port, "port")));
    assert_true(json_is_string(json_object_get(port, "name"))); /* quoted stays a string */
    assert_string_equal(obj_name(json_array_get(c.objs, 2)), "t");
    drop(&c);
}

/* @o's value at @k in canonical JSON, for comparing numbers as KIC would write them. */
static void assert_json_at(json_t *o, const char *k, const char *want)
{
    char *got = json_dumps(json_object_get(o, k), JSON_ENCODE_ANY | JSON_COMPACT);
    if (json_is_real(json_object_get(o, k))) { /* jansson's %.17g is not the point here */
        free(got);
        got = malloc(UTIL_FLOAT_MAX);
        util_go_float(json_real_value(json_object_get(o, k)), 64, 'j', got);
    }
    if (strcmp(got, want))
        fail_msg("%s: got %s, want %s", k, got, want);
    free(got);
}

/* Plain scalars are typed as kubectl and KIC read YAML: go-yaml v2, so YAML 1.1. */
static void test_manifest_scalars(void **state)
{
    (void)state;
    Collected c = load("kind: X\nmetadata: {name: x}\n"
                       "a: true\nb: 'true'\nc: 0x1F\nd: 1.5\ne: ~\nf: 1.2.3\ng: -7\nh: 1e3\n"
                       "i: 010\nj: yes\nk: Off\nl: y\nm: NO\nn2: 0b101\no: 1_000\np: 08\n"
                       "q: 0o17\nr: +12\ns: .5\nt: 1.\nu: 2001-12-14\nv: 9223372036854775808\n"
                       "w: -0x10\nx: 1e999\ny2: nO\nz: \"yes\"\naa: !!str 10\nab: 0x\nac: '010'\n"
                       "ad: -9223372036854775808\nae: 1_0.2_5\naf: 1e-7\n");
    assert_int_equal(json_array_size(c.errs), 0);
    assert_int_equal(json_array_size(c.objs), 1);
    json_t *o = json_array_get(c.objs, 0);
    static const char *const want[][2] = {
        {"a", "true"},       {"b", "\"true\""},  {"c", "31"},       {"d", "1.5"},
        {"e", "null"},       {"f", "\"1.2.3\""}, {"g", "-7"},       {"h", "1000"},
        {"i", "8"},          {"j", "true"},      {"k", "false"},    {"l", "true"},
        {"m", "false"},      {"n2", "5"},        {"o", "1000"},     {"p", "8"},
        {"q", "15"},         {"r", "12"},        {"s", "0.5"},      {"t", "1"},
        {"u", "\"2001-12-14\""}, {"v", "9223372036854776000"},  {"w", "-16"},
        {"x", "\"1e999\""},  {"y2", "\"nO\""},   {"z", "\"yes\""},  {"aa", "\"10\""},
        {"ab", "\"0x\""},    {"ac", "\"010\""},  {"ad", "-9223372036854775808"},
        {"ae", "10.25"},     {"af", "1e-7"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_json_at(o, want[i][0], want[i][1]);
    assert_true(json_is_real(json_object_get(o, "p"))); /* "08" is not octal: Go reads a float */
    drop(&c);

    /* Keys are typed too, then written back as strings; a null key has no JSON form. */
    c = load("kind: X\nmetadata: {name: x}\nd:\n  yes: 1\n  010: 2\n  1.5: 3\n  'on': 4\n"
             "  .inf: 5\n  1e6: 6\n");
    assert_int_equal(json_array_size(c.errs), 0);
    json_t *d = json_object_get(json_array_get(c.objs, 0), "d");
    assert_int_equal(json_object_size(d), 6);
    const char *keys[] = {"true", "8", "1.5", "on", ".inf", "1e+06"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_object_get(d, keys[i])), (json_int_t)i + 1);
    drop(&c);

    /* JSON has no infinity: the document is refused with its line, as kubectl refuses it. */
    c = load("kind: X\nmetadata: {name: x}\nj: .inf\n---\nkind: Y\nmetadata: {name: y}\n~: 1\n");
    assert_int_equal(json_array_size(c.objs), 0);
    assert_int_equal(json_array_size(c.errs), 2);
    json_t *e0 = json_array_get(c.errs, 0), *e1 = json_array_get(c.errs, 1);
    assert_int_equal(json_integer_value(json_object_get(e0, "line")), 3);
    assert_non_null(strstr(json_string_value(json_object_get(e0, "msg")), ".inf is a float"));
    assert_int_equal(json_integer_value(json_object_get(e1, "line")), 7);
    assert_non_null(strstr(json_string_value(json_object_get(e1, "msg")), "no JSON form"));
    drop(&c);
}

/* Numbers are written as Go writes a float64: KIC's values all pass through one. */
static void test_go_float(void **state)
{
    (void)state;
    static const struct {
        double d;
        const char *json, *g32;
    } cases[] = {
        {1.0, "1", "1"},
        {0.1, "0.1", "0.1"},
        {1000, "1000", "1000"},
        {1e6, "1000000", "1e+06"},
        {1e21, "1e+21", "1e+21"},
        {9.999999999999999e20, "999999999999999900000", "1e+21"},
        {1.5e300, "1.5e+300", "+Inf"},
        {1e-7, "1e-7", "1e-07"},
        {0.000001, "0.000001", "1e-06"},
        {12345678901234567890.0, "12345678901234567000", "1.2345679e+19"},
        {-2.5, "-2.5", "-2.5"},
        {-0.0, "-0", "-0"},
        {5e-324, "5e-324", "0"},
        {0.3, "0.3", "0.3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char j[UTIL_FLOAT_MAX], g[UTIL_FLOAT_MAX];
        util_go_float(cases[i].d, 64, 'j', j);
        util_go_float(cases[i].d, 32, 'g', g);
        if (strcmp(j, cases[i].json) || strcmp(g, cases[i].g32))
            fail_msg("%.17g: json %s (want %s), g32 %s (want %s)", cases[i].d, j, cases[i].json, g,
                     cases[i].g32);
    }
}

/* @n ConfigMaps of four lines each ("kind" on line 4i+1), document @broken (if any) unclosed. */
static char *many_docs(int n, int broken, const char *head)
{
    Buf b = BUF_INIT;
    buf_puts(&b, head);
    for (int i = 0; i < n; i++)
        buf_printf(&b, "kind: ConfigMap\nmetadata: {name: cm-%d}\ndata: %s\n---\n", i,
                   i == broken ? "[unclosed" : "{k: \"padding padding padding\"}");
    return buf_take(&b);
}

typedef struct StopAt {
    int at, seen;
} StopAt;

static int stop_at(void *ud, json_t *obj, const char *file, int line)
{
    StopAt *st = ud;
    (void)obj, (void)file, (void)line;
    return st->seen++ == st->at ? 7 : 0;
}

/* A buffer big enough to be parsed in two halves loads as one read in order would. */
static void test_manifest_big_buffer(void **state)
{
    (void)state;
    enum { N = 4000 }; /* ~330 KB */
    char *text = many_docs(N, -1, "");
    assert_true(strlen(text) > 256 * 1024);
    Collected c = load(text);
    free(text);
    assert_int_equal(json_array_size(c.objs), N);
    assert_int_equal(json_array_size(c.errs), 0);
    for (int i = 0; i < N; i++) {
        json_t *o = json_array_get(c.objs, (size_t)i);
        char want[32];
        snprintf(want, sizeof(want), "cm-%d", i);
        assert_string_equal(obj_name(o), want);
        assert_int_equal(json_integer_value(json_object_get(o, "_line")), 4 * i + 1);
    }
    drop(&c);

    /* A broken document in either half: the documents before it, then the error at its line,
     * and nothing after it (as one thread reading the buffer would). */
    static const int broken[] = {3500, 100};
    for (size_t k = 0; k < 2; k++) {
        text = many_docs(N, broken[k], "");
        c = load(text);
        free(text);
        assert_int_equal(json_array_size(c.objs), broken[k]);
        assert_int_equal(json_array_size(c.errs), 1);
        int line = (int)json_integer_value(json_object_get(json_array_get(c.errs, 0), "line"));
        assert_true(line >= 4 * broken[k] + 3 && line <= 4 * broken[k] + 5);
        drop(&c);
    }

    /* A document that breaks a rule but not the syntax (here a duplicate key), in either half:
     * the error at its line, and every other document loads. */
    for (size_t k = 0; k < 2; k++) {
        Buf t = BUF_INIT;
        for (int i = 0; i < N; i++)
            buf_printf(&t, "kind: ConfigMap\nmetadata: {name: cm-%d}\ndata: %s\n---\n", i,
                       i == broken[k] ? "{k: a, k: b}" : "{k: \"padding padding padding\"}");
        c = load(t.data);
        buf_deinit(&t);
        assert_int_equal(json_array_size(c.objs), N - 1);
        assert_int_equal(json_array_size(c.errs), 1);
        json_t *e = json_array_get(c.errs, 0);
        assert_int_equal(json_integer_value(json_object_get(e, "line")), 4 * broken[k] + 3);
        assert_non_null(strstr(json_string_value(json_object_get(e, "msg")), "already defined"));
        drop(&c);
    }

    /* A callback that says stop, in either half, stops the buffer there; the second half's
     * documents come while its thread still parses, and the rest of them are dropped. */
    static const int stops[] = {100, 3000};
    for (size_t k = 0; k < 2; k++) {
        text = many_docs(N, -1, "");
        StopAt st = {stops[k], 0};
        assert_int_equal(manifest_load_buffer(text, strlen(text), "t.yaml", stop_at, NULL, &st), 7);
        assert_int_equal(st.seen, stops[k] + 1);
        free(text);
    }

    /* Lines end at CR LF, CR and LF, and at NEL, LS and PS too: the second half's line numbers
     * count them all, as libyaml does in the first half (a fuzzer found a lone CR). */
    text = many_docs(N, -1, "# a\r# b\r\n# c\xc2\x85# d\xe2\x80\xa8# e\xe2\x80\xa9\n");
    c = load(text);
    free(text);
    assert_int_equal(json_array_size(c.objs), N);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(c.objs, 0), "_line")), 7);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(c.objs, N - 1), "_line")),
                     4 * (N - 1) + 7);
    drop(&c);

    /* A directive keeps the buffer whole (it belongs to the document after it). */
    text = many_docs(N, -1, "%YAML 1.1\n---\n");
    c = load(text);
    free(text);
    assert_int_equal(json_array_size(c.objs), N);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(c.objs, N - 1), "_line")),
                     4 * (N - 1) + 3);
    drop(&c);
}

static void test_manifest_errors(void **state)
{
    (void)state;
    /* A broken document is reported with its line; the documents before it still load. */
    Collected c = load("kind: A\nmetadata: {name: a}\n---\nkind: B\nmetadata: [unclosed\n");
    assert_int_equal(json_array_size(c.objs), 1);
    assert_int_equal(json_array_size(c.errs), 1);
    assert_true(json_integer_value(json_object_get(json_array_get(c.errs, 0), "line")) >= 5);
    drop(&c);

    c = load("kind: A\nmetadata: {name: a}\nkind: B\n");
    assert_int_equal(json_array_size(c.objs), 0);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(c.errs, 0), "msg")),
                           "already defined"));
    drop(&c);

    c = load("- just\n- a list\n---\nmetadata: {name: nokind}\n---\nkind: Service\n");
    assert_int_equal(json_array_size(c.objs), 0);
    assert_int_equal(json_array_size(c.errs), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(c.errs, 1), "line")), 4);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(c.errs, 2), "msg")),
                           "metadata.name"));
    drop(&c);

    /* Exponential aliases hit the value cap instead of eating memory. */
    Buf b = BUF_INIT;
    buf_puts(&b, "kind: X\nmetadata: {name: x}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 12; i++)
        buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i,
                   i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    c = load(b.data);
    buf_deinit(&b);
    assert_int_equal(json_array_size(c.objs), 0);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(c.errs, 0), "msg")),
                           "too many"));
    drop(&c);

    /* Deep nesting is refused. */
    b = (Buf)BUF_INIT;
    buf_puts(&b, "kind: X\nmetadata: {name: x}\nd: ");
    for (int i = 0; i < 200; i++)
        buf_putc(&b, '[');
    c = load(b.data);
    buf_deinit(&b);
    assert_int_equal(json_array_size(c.objs), 0);
    assert_int_equal(json_array_size(c.errs), 2); /* too deep, and then never closed */
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(c.errs, 0), "msg")),
                           "deeper"));
    drop(&c);

    /* A document that breaks a rule does not take the ones after it along. */
    c = load("kind: A\nmetadata: {name: a}\nx: 1\nx: 2\n---\nkind: B\nmetadata: {name: b}\n");
    assert_int_equal(json_array_size(c.objs), 1);
    assert_string_equal(obj_name(json_array_get(c.objs, 0)), "b");
    assert_int_equal(json_array_size(c.errs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(c.errs, 0), "line")), 4);
    drop(&c);
}

static void test_manifest_path_errors(void **state)
{
    (void)state;
    Collected c = {json_array(), json_array()};
    assert_int_equal(manifest_load_path("/nonexistent/x.yaml", on_obj, on_err, &c), -ENOENT);
    assert_int_equal(json_array_size(c.errs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(c.errs, 0), "file")),
                        "/nonexistent/x.yaml");
    drop(&c);
}

/* xjoin() cuts as snprintf cuts and says how long the whole would be; xlltoa() covers the ends. */
static void test_join(void **state)
{
    (void)state;
    char b[8], n[24];
    assert_int_equal(xjoin(b, sizeof(b), "ns", "/", "name", NULL), 7);
    assert_string_equal(b, "ns/name");
    assert_int_equal(xjoin(b, sizeof(b), "ns", "/", "longer", NULL), 9);
    assert_string_equal(b, "ns/long");
    assert_int_equal(xjoin(b, sizeof(b), "12345678", "9", NULL), 9);
    assert_string_equal(b, "1234567");
    assert_int_equal(xjoin(b, sizeof(b), NULL), 0);
    assert_string_equal(b, "");
    assert_int_equal(xjoin(b, 1, "x", NULL), 1);
    assert_string_equal(b, "");
    assert_string_equal(xlltoa(0, n), "0");
    assert_string_equal(xlltoa(8080, n), "8080");
    assert_string_equal(xlltoa(-42, n), "-42");
    assert_string_equal(xlltoa(-9223372036854775807LL - 1, n), "-9223372036854775808");
}

/* The annotation view answers as obj_annotation() does, with few annotations and with many. */
static void test_annotation_view(void **state)
{
    (void)state;
    for (int many = 0; many < 2; many++) {
        json_t *ann = json_object();
        for (int i = 0; i < (many ? 20 : 3); i++) {
            char k[32];
            snprintf(k, sizeof(k), "konghq.com/a%d", i);
            json_object_set_new(ann, k, json_sprintf("v%d", i));
        }
        json_object_set_new(ann, "konghq.com/n", json_integer(3)); /* not a string: no value */
        json_t *o = json_pack("{s:{s:o}}", "metadata", "annotations", ann);
        ObjAnns an;
        obj_anns_init(&an, o);
        static const char *const keys[] = {"konghq.com/a0", "konghq.com/a2", "konghq.com/a19",
                                           "konghq.com/n", "konghq.com/a", "x", NULL};
        for (int i = 0; keys[i]; i++) {
            const char *want = obj_annotation(o, keys[i]), *got = obj_anns_get(&an, keys[i]);
            if (want)
                assert_string_equal(got, want);
            else
                assert_null(got);
        }
        assert_string_equal(obj_anns_get(&an, "konghq.com/a2"), "v2");
        json_decref(o);
    }
    json_t *bare = json_pack("{s:{s:s}}", "metadata", "name", "x");
    ObjAnns an;
    obj_anns_init(&an, bare);
    assert_null(obj_anns_get(&an, "konghq.com/plugins"));
    json_decref(bare);
}

static void test_store(void **state)
{
    Store *s;
    (void)state;
    assert_int_equal(store_new(&s), 0);
    json_t *a = json_pack("{s:s, s:{s:s, s:s, s:[], s:{s:s, s:i}}}", "kind", "Service", "metadata",
                          "name", "b", "namespace", "ns", "managedFields", "annotations",
                          "kubectl.kubernetes.io/last-applied-configuration", "{}", "konghq.com/retries",
                          3);
    json_t *b = json_pack("{s:s, s:{s:s, s:s}}", "kind", "Service", "metadata", "name", "a",
                          "namespace", "ns");
    assert_int_equal(store_put(s, a), 1);
    assert_int_equal(store_put(s, a), 0); /* unchanged */
    assert_int_equal(store_put(s, b), 1);
    json_t *got = store_get(s, "Service", "ns", "b");
    assert_non_null(got);
    json_t *md = obj_metadata(got);
    assert_non_null(md);
    assert_null(json_object_get(md, "managedFields"));
    json_decref(md);
    assert_null(obj_annotation(got, "kubectl.kubernetes.io/last-applied-configuration"));
    assert_string_equal(obj_annotation(got, "konghq.com/retries"), "3"); /* coerced */
    size_t n;
    json_t *const *l = store_list(s, "Service", &n);
    assert_int_equal(n, 2);
    assert_string_equal(obj_name(l[0]), "a");
    uint64_t g = store_generation(s);
    Store *c;
    assert_int_equal(store_clone(s, &c), 0);
    assert_int_equal(store_delete(c, "Service", "ns", "a"), 1);
    assert_int_equal(store_delete(c, "Service", "ns", "a"), 0);
    assert_int_equal(store_count(c, NULL), 1);
    assert_int_equal(store_count(s, "Service"), 2);
    assert_int_equal(store_generation(s), g);
    /* A write that only bumped resourceVersion (a status update) is kept but is no change. */
    json_t *v1 = json_pack("{s:s, s:{s:s, s:s, s:s}, s:{s:s}, s:{s:[]}}", "kind", "Ingress",
                           "metadata", "name", "i", "namespace", "ns", "resourceVersion", "1",
                           "spec", "ingressClassName", "kong", "status", "loadBalancer");
    assert_int_equal(store_put(s, v1), 1);
    g = store_generation(s);
    json_object_set_new(json_object_get(v1, "metadata"), "resourceVersion", json_string("2"));
    json_object_set_new(json_object_get(v1, "status"), "x", json_true());
    assert_int_equal(store_put(s, v1), 0);
    assert_int_equal(store_generation(s), g);
    assert_string_equal(obj_meta_str(store_get(s, "Ingress", "ns", "i"), "resourceVersion"), "2");
    assert_int_equal(store_list(s, "Ingress", &n)[0], store_get(s, "Ingress", "ns", "i"));
    json_object_set_new(json_object_get(v1, "metadata"), "resourceVersion", json_string("3"));
    json_object_set_new(json_object_get(v1, "spec"), "ingressClassName", json_string("other"));
    assert_int_equal(store_put(s, v1), 1); /* a real change, with a new version */
    json_decref(v1);
    /* EndpointSlices keep what targets and Gateway Discovery read, not the bookkeeping, and
     * their endpoints packed: read back, they are what the API had, but for what no one reads. */
    json_error_t je;
    json_t *es = json_loads(
        "{\"kind\": \"EndpointSlice\", \"metadata\": {\"name\": \"web-x\", \"namespace\": \"ns\", "
        "\"uid\": \"u\", \"labels\": {\"app\": \"web\", \"kubernetes.io/service-name\": \"web\"}, "
        "\"annotations\": {\"a\": \"b\"}, \"ownerReferences\": [{\"kind\": \"Service\"}]}, "
        "\"endpoints\": [{\"addresses\": [\"10.0.0.1\", \"10.0.0.9\"], \"conditions\": {\"ready\": true}, "
        "\"nodeName\": \"n\", \"zone\": \"z\", \"targetRef\": {\"kind\": \"Pod\", \"name\": \"p\", "
        "\"namespace\": \"ns\", \"uid\": \"pu\"}}, {\"addresses\": [\"10.0.0.2\"], "
        "\"conditions\": {\"ready\": false}}, {\"addresses\": [\"10.0.0.3\"], \"conditions\": "
        "{\"ready\": true, \"serving\": true, \"terminating\": true}}, {\"addresses\": [], "
        "\"targetRef\": {\"name\": \"12:odd\\n\\u00e9\"}}, {\"addresses\": [\"\"], "
        "\"conditions\": {\"ready\": \"yes\"}}], \"ports\": [{\"name\": \"http\", \"port\": 80}]}",
        0, &je);
    assert_int_equal(store_put(s, es), 1);
    json_t *api = json_incref(es);
    json_decref(es);
    es = store_get(s, "EndpointSlice", "ns", "web-x");
    assert_null(json_object_get(es, "endpoints"));
    json_t *want = json_loads(
        "{\"kind\": \"EndpointSlice\", \"metadata\": {\"name\": \"web-x\", \"namespace\": \"ns\", "
        "\"labels\": {\"kubernetes.io/service-name\": \"web\"}}, \"endpoints\": [{\"addresses\": "
        "[\"10.0.0.1\"], \"conditions\": {\"ready\": true}, \"targetRef\": {\"kind\": \"Pod\", "
        "\"name\": \"p\", \"namespace\": \"ns\"}}, {\"addresses\": [\"10.0.0.2\"], \"conditions\": "
        "{\"ready\": false}}, {\"addresses\": [\"10.0.0.3\"], \"conditions\": {\"ready\": true, "
        "\"terminating\": true}}, {\"targetRef\": {\"name\": \"12:odd\\n\\u00e9\"}}, "
        "{\"addresses\": [\"\"], \"conditions\": {\"ready\": false}}], "
        "\"ports\": [{\"name\": \"http\", \"port\": 80}]}",
        0, &je);
    json_t *back = obj_slice_expand(es);
    assert_true(json_equal(back, want));
    /* Read as the API has it (a slice the store did not trim), the endpoints are the same. */
    size_t pa = 0, pb = 0;
    SliceEndpoint ea, eb;
    int count = 0;
    while (obj_slice_endpoint(es, &pa, &ea)) {
        assert_true(obj_slice_endpoint(api, &pb, &eb));
        assert_memory_equal(&ea, &eb, sizeof(ea));
        count++;
    }
    assert_int_equal(count, 5);
    assert_false(obj_slice_endpoint(api, &pb, &eb));
    /* Put again as it is stored (a clone's object, say), it keeps its endpoints. */
    assert_int_equal(store_put(s, es), 0);
    json_decref(back);
    json_decref(api);
    json_decref(want);
    /* A Service keeps its ports, type and external name; no object keeps its status. */
    json_t *svc = json_loads(
        "{\"kind\": \"Service\", \"metadata\": {\"name\": \"web\", \"namespace\": \"ns\"}, "
        "\"spec\": {\"type\": \"ClusterIP\", \"clusterIP\": \"10.0.0.9\", \"clusterIPs\": "
        "[\"10.0.0.9\"], \"ipFamilies\": [\"IPv4\"], \"ipFamilyPolicy\": \"SingleStack\", "
        "\"selector\": {\"app\": \"web\"}, \"sessionAffinity\": \"None\", \"ports\": [{\"port\": "
        "80}]}, \"status\": {\"loadBalancer\": {}}}",
        0, &je);
    assert_int_equal(store_put(s, svc), 1);
    json_decref(svc);
    want = json_loads("{\"kind\": \"Service\", \"metadata\": {\"name\": \"web\", \"namespace\": "
                      "\"ns\"}, \"spec\": {\"type\": \"ClusterIP\", \"ports\": [{\"port\": 80}]}}",
                      0, &je);
    json_t *packed = store_trim(want); /* metadata as the store keeps it */
    assert_true(json_equal(store_get(s, "Service", "ns", "web"), packed));
    json_decref(packed);
    json_decref(want);
    json_t *bad = json_pack("{s:s}", "kind", "Service");
    assert_int_equal(store_put(s, bad), -EINVAL);
    json_decref(bad);
    json_decref(a);
    json_decref(b);
    store_free(c);
    store_free(s);
}

/*
 * Equal values inside stored objects are one value; metadata that names an object is its own.
 * A block is shared from its second copy on (the first one holds scalars never seen before, as
 * unique blocks do, and is left out of the table).
 */
static bool str_same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static void assert_paths_same(const IngressPath *a, const IngressPath *b)
{
    assert_int_equal(a->rule, b->rule);
    assert_int_equal(a->index, b->index);
    assert_true(str_same(a->host, b->host) && str_same(a->path, b->path));
    assert_true(str_same(a->path_type, b->path_type));
    const IngressBackend *x = &a->backend, *y = &b->backend;
    assert_true(x->service == y->service && x->resource == y->resource);
    assert_true(x->has_number == y->has_number && x->number == y->number);
    assert_true(str_same(x->name, y->name) && str_same(x->port_name, y->port_name));
    assert_true(str_same(x->res_group, y->res_group) && str_same(x->res_kind, y->res_kind));
    assert_true(str_same(x->res_name, y->res_name));
}

/*
 * The store packs an Ingress's rules: read packed, every path of an Ingress with every odd shape
 * a rule can have (no http, no paths, typed-wrong fields, both backends, neither, a NUL in a
 * path) is what reading the API's shape gives; put again as stored, it stays packed.
 */
static void test_store_packs_ingress_rules(void **state)
{
    (void)state;
    Store *s;
    json_error_t je;
    assert_int_equal(store_new(&s), 0);
    json_t *ing = json_loads(
        "{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"Ingress\", \"metadata\": "
        "{\"name\": \"i\", \"namespace\": \"ns\"}, \"spec\": {\"rules\": ["
        "{\"host\": \"a.example\", \"http\": {\"paths\": [{\"path\": \"/a\", \"pathType\": "
        "\"Prefix\", \"backend\": {\"service\": {\"name\": \"web\", \"port\": {\"number\": 80}}}},"
        " {\"path\": 5, \"pathType\": null, \"backend\": {\"service\": {\"name\": \"w2\", \"port\":"
        " {\"name\": \"http\", \"number\": 0}}}}, {\"backend\": {\"service\": {\"port\": "
        "{\"number\": \"80\"}}, \"resource\": {\"apiGroup\": \"g\", \"kind\": \"K\", \"name\": "
        "\"r\"}}}, {\"path\": \"/nul\\u0000cut\", \"backend\": 7}, {\"backend\": {\"resource\": "
        "{\"kind\": 1}}}, {\"backend\": {\"service\": {\"name\": \"big\", \"port\": {\"number\": "
        "-9223372036854775807}}}}]}}, {\"host\": 9}, {\"http\": {\"paths\": []}}, 12, "
        "{\"http\": {\"paths\": [{\"path\": \"/b\", \"pathType\": \"Exact\", \"backend\": "
        "{\"service\": {\"name\": \"12:x\\n\\u00e9\", \"port\": {}}}}]}}]}}",
        JSON_ALLOW_NUL, &je);
    assert_non_null(ing);
    json_t *api = json_deep_copy(ing);
    assert_int_equal(store_put(s, ing), 1);
    json_decref(ing);
    json_t *st = store_get(s, "Ingress", "ns", "i");
    assert_null(obj_get_path(st, "spec.rules"));
    assert_true(json_is_string(obj_get_path(st, "spec.rulesPacked")));
    IngressPathIter ia = {0, 0, 0, 0}, ib = {0, 0, 0, 0};
    IngressPath pa, pb;
    int count = 0;
    while (obj_ingress_path(st, &ia, &pa)) {
        assert_true(obj_ingress_path(api, &ib, &pb));
        assert_paths_same(&pa, &pb);
        count++;
    }
    assert_false(obj_ingress_path(api, &ib, &pb));
    assert_int_equal(count, 7);
    /* Spot checks of what readers see. */
    ia = (IngressPathIter){0, 0, 0, 0};
    assert_true(obj_ingress_path(st, &ia, &pa));
    assert_string_equal(pa.host, "a.example");
    assert_true(pa.backend.service && pa.backend.has_number && pa.backend.number == 80);
    for (int i = 0; i < 3; i++)
        assert_true(obj_ingress_path(st, &ia, &pa));
    assert_string_equal(pa.path, "/nul"); /* C strings stop at the NUL, as before */
    assert_true(!pa.backend.service && !pa.backend.resource);
    for (int i = 0; i < 3; i++)
        assert_true(obj_ingress_path(st, &ia, &pa));
    assert_int_equal(pa.rule, 4); /* rules without paths still count */
    assert_string_equal(pa.host, "");
    assert_string_equal(pa.backend.name, "12:x\n\xc3\xa9");
    /* Put again as stored (a clone's object, say), it keeps its rules. */
    json_t *again = json_deep_copy(st);
    assert_int_equal(store_put(s, again), 0);
    json_decref(again);
    st = store_get(s, "Ingress", "ns", "i");
    ia = (IngressPathIter){0, 0, 0, 0};
    count = 0;
    while (obj_ingress_path(st, &ia, &pa))
        count++;
    assert_int_equal(count, 7);
    /* A packed field a manifest brought is read within its bounds, however broken. */
#define RAW(x) {x, sizeof(x) - 1}
    static const struct {
        const char *s;
        size_t n;
    } broken[] = {RAW(""), RAW("P"), RAW("R"), RAW("Rh"), RAW("Rh\0P+x"), RAW("Rh\0P-+t\0S#1"),
                  RAW("Rh\0P--S-"), RAW("x"), RAW("Rh\0P--S+n\0#12a\0-X"), RAW("r\x01P")};
#undef RAW
    for (size_t k = 0; k < sizeof(broken) / sizeof(broken[0]); k++) {
        json_t *o = json_pack("{s:s, s:{s:o}}", "kind", "Ingress", "spec", "rulesPacked",
                              json_stringn(broken[k].s, broken[k].n));
        IngressPathIter it = {0, 0, 0, 0};
        int n = 0;
        while (obj_ingress_path(o, &it, &pa) && n < 10)
            n++;
        assert_int_equal(n, 0);
        json_decref(o);
    }
    json_decref(api);
    store_free(s);
}

/*
 * The store packs metadata: every accessor reads the same from the stored object as from the
 * object as the API has it, and obj_metadata() gives the metadata back as it was (bar what the
 * store drops and coerces, and strings cut at a NUL).
 */
static void test_store_packs_metadata(void **state)
{
    (void)state;
    Store *s;
    json_error_t je;
    assert_int_equal(store_new(&s), 0);
    json_t *api = json_loads(
        "{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"web\", "
        "\"namespace\": \"ns\", \"uid\": \"u-1\", \"generation\": 7, \"resourceVersion\": \"42\", "
        "\"creationTimestamp\": \"2024-01-02T03:04:05Z\", \"finalizers\": [\"a\", \"b\"], "
        "\"deletionTimestamp\": null, \"labels\": {\"app\": \"web\", \"\": \"empty key\", "
        "\"12:x\": \"\\u00e9\\n\"}, \"annotations\": {\"konghq.com/headers.x-a\": \"1\", "
        "\"konghq.com/headers.x-b\": \"2\", \"a1\": \"v1\", \"a2\": \"v2\", \"a3\": \"v3\", "
        "\"a4\": \"v4\", \"a5\": \"v5\", \"a6\": \"v6\", \"a7\": \"v7\", \"a8\": \"v8\"}, "
        "\"weird\": {\"nested\": {\"x\": [1, {\"y\": null}]}}, \"cut\": \"ab\\u0000cd\"}, "
        "\"spec\": {\"ports\": [{\"port\": 80}]}}",
        JSON_ALLOW_NUL, &je);
    assert_non_null(api);
    assert_int_equal(store_put(s, api), 1);
    json_t *st = store_get(s, "Service", "ns", "web");
    assert_null(json_object_get(st, "metadata"));
    assert_true(json_is_string(json_object_get(st, "metadataPacked")));
    /* first, where readers look before hashing its name; the other keys keep their order */
    void *first = json_object_iter(st);
    assert_string_equal(json_object_iter_key(first), "metadataPacked");
    assert_string_equal(json_object_iter_key(json_object_iter_next(st, first)), "apiVersion");
    json_t *un = store_trim(api); /* the stored shape, its metadata as the API has it */
    json_t *md = obj_metadata(st);
    json_object_del(un, "metadataPacked");
    json_object_set(un, "metadata", md);
    const json_t *both[] = {st, un};
    for (int i = 0; i < 2; i++) {
        const json_t *o = both[i];
        assert_string_equal(obj_name(o), "web");
        assert_string_equal(obj_ns(o), "ns");
        assert_string_equal(obj_uid(o), "u-1");
        const char *name, *ns, *uid;
        obj_ids(o, &name, &ns, &uid);
        assert_string_equal(name, "web");
        assert_string_equal(ns, "ns");
        assert_string_equal(uid, "u-1");
        assert_string_equal(obj_kind(o), "Service");
        assert_string_equal(obj_api_version(o), "v1");
        assert_string_equal(obj_meta_str(o, "creationTimestamp"), "2024-01-02T03:04:05Z");
        assert_string_equal(obj_meta_str(o, "resourceVersion"), "42");
        assert_null(obj_meta_str(o, "generation")); /* not a string */
        assert_null(obj_meta_str(o, "labels"));
        assert_string_equal(obj_meta_str(o, "cut"), "ab");
        assert_string_equal(obj_label(o, "app"), "web");
        assert_string_equal(obj_label(o, ""), "empty key");
        assert_string_equal(obj_label(o, "12:x"), "\xc3\xa9\n");
        assert_null(obj_label(o, "a1"));
        assert_string_equal(obj_annotation(o, "a8"), "v8");
        assert_null(obj_annotation(o, "app"));
        ObjAnns an; /* ten annotations: more than the view keeps in place */
        obj_anns_init(&an, o);
        assert_string_equal(obj_anns_get(&an, "konghq.com/headers.x-b"), "2");
        assert_string_equal(obj_anns_get(&an, "a8"), "v8");
        assert_null(obj_anns_get(&an, "a9"));
        ObjMapIter it = {0};
        const char *k, *v;
        int n = 0;
        while (obj_map_next(o, "annotations", &it, &k, &v)) {
            if (n == 0)
                assert_string_equal(k, "konghq.com/headers.x-a"); /* in order */
            n++;
        }
        assert_int_equal(n, 10);
    }
    /* Back as the API has it: the same metadata, the cut string aside. */
    json_t *want = json_deep_copy(json_object_get(api, "metadata"));
    json_object_set_new(want, "cut", json_string("ab"));
    assert_true(json_equal(md, want));
    /* Another resourceVersion alone is kept but is no change; another label is a change. */
    uint64_t g = store_generation(s);
    json_object_set_new(json_object_get(api, "metadata"), "resourceVersion", json_string("43"));
    assert_int_equal(store_put(s, api), 0);
    assert_int_equal(store_generation(s), g);
    assert_string_equal(obj_meta_str(store_get(s, "Service", "ns", "web"), "resourceVersion"), "43");
    json_object_set_new(json_object_get(json_object_get(api, "metadata"), "labels"), "app",
                        json_string("shop"));
    assert_int_equal(store_put(s, api), 1);
    assert_string_equal(obj_label(store_get(s, "Service", "ns", "web"), "app"), "shop");
    /* A packed field a manifest brought is read within its bounds, however broken. */
#define RAW(x) {x, sizeof(x) - 1}
    static const struct {
        const char *s;
        size_t n;
    } broken[] = {RAW(""), RAW("s"), RAW("sname"), RAW("sname\0"), RAW("m\0"), RAW("mlabels\0"),
                  RAW("mlabels\0" "9\0a\0b\0"), RAW("mlabels\0" "x\0"), RAW("mlabels\0" "-1\0"),
                  RAW("q\0\0"), RAW("jx\0")};
#undef RAW
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        json_t *o = json_pack("{s:s, s:o}", "kind", "Service", "metadataPacked",
                              json_stringn(broken[i].s, broken[i].n));
        ObjMapIter it = {0};
        const char *k, *v;
        assert_string_equal(obj_name(o), "");
        assert_null(obj_label(o, "a"));
        assert_false(obj_map_next(o, "labels", &it, &k, &v));
        json_t *m = obj_metadata(o);
        assert_int_equal(json_object_size(m), 0);
        json_decref(m);
        json_decref(o);
    }
    json_decref(want);
    json_decref(md);
    json_decref(un);
    json_decref(api);
    store_free(s);
}

static void test_store_shares_values(void **state)
{
    (void)state;
    Store *s;
    store_new(&s);
    const char *svc = "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"%s\","
                      "\"namespace\":\"ns\",\"labels\":{\"app\":\"shop\",\"tier\":\"web\"}},"
                      "\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\"}]}}";
    const char *names[] = {"a", "b", "c", "d"};
    char text[512];
    json_t *in[4];
    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof(text), svc, names[i]);
        in[i] = json_loads(text, 0, NULL);
    }
    /* d lists its labels the other way round: equal, but not the same template, not shared */
    json_t *labels = json_object_get(json_object_get(in[3], "metadata"), "labels");
    json_object_del(labels, "app");
    json_object_set_new(labels, "app", json_string("shop"));
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_put(s, in[i]), 1);
    json_t *a = store_get(s, "Service", "ns", "a"), *b = store_get(s, "Service", "ns", "b"),
           *c = store_get(s, "Service", "ns", "c"), *d = store_get(s, "Service", "ns", "d");
    assert_ptr_equal(obj_get_path(b, "spec.ports"), obj_get_path(c, "spec.ports"));
    assert_ptr_equal(obj_get_path(b, "spec"), obj_get_path(d, "spec"));
    assert_string_equal(obj_label(d, "app"), "shop"); /* metadata is packed, one object's own */
    assert_ptr_not_equal(obj_get_path(a, "spec.ports"), obj_get_path(b, "spec.ports"));
    assert_ptr_equal(json_object_get(a, "apiVersion"), json_object_get(d, "apiVersion"));
    assert_ptr_not_equal(json_object_get(b, "metadataPacked"), json_object_get(c, "metadataPacked"));
    assert_true(store_shared(s) > 0);
    /* Sharing changes no value: each stored object equals what was put. */
    for (int i = 0; i < 4; i++) {
        json_t *t = store_trim(in[i]);
        assert_true(json_equal(t, store_get(s, "Service", "ns", names[i])));
        json_decref(t);
        json_decref(in[i]);
    }
    /* An equal put is no change, and changes nothing shared. */
    snprintf(text, sizeof(text), svc, "b");
    json_t *again = json_loads(text, 0, NULL);
    assert_int_equal(store_put(s, again), 0);
    json_decref(again);
    assert_ptr_equal(obj_get_path(store_get(s, "Service", "ns", "b"), "spec.ports"),
                     obj_get_path(c, "spec.ports"));
    store_free(s);
}

/* Values no object uses any more are let go of once enough objects are gone. */
static void test_store_share_sweeps(void **state)
{
    (void)state;
    Store *s;
    store_new(&s);
    char text[256];
    for (int i = 0; i < 3000; i++) {
        snprintf(text, sizeof(text),
                 "{\"kind\":\"Service\",\"metadata\":{\"name\":\"s%d\",\"namespace\":\"ns\"},"
                 "\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"h%d.example.com\"}}",
                 i, i);
        json_t *o = json_loads(text, 0, NULL);
        assert_int_equal(store_put_new(s, o), 1);
    }
    size_t full = store_shared(s);
    assert_true(full >= 300); /* each external name, at least */
    for (int i = 0; i < 3000; i++) {
        snprintf(text, sizeof(text), "s%d", i);
        assert_int_equal(store_delete(s, "Service", "ns", text), 1);
    }
    /* The change log still holds the last 1,024; what the others alone used is gone. */
    assert_true(store_shared(s) < full / 2);
    store_free(s);
}

static void snapshot_store(Store *s, json_t *into)
{
    json_t *kinds = store_kinds(s);
    size_t i, n;
    json_t *k;
    json_array_foreach(kinds, i, k)
    {
        json_t *const *objs = store_list(s, json_string_value(k), &n);
        for (size_t j = 0; j < n; j++) {
            char *d = json_dumps(objs[j], JSON_SORT_KEYS | JSON_COMPACT);
            json_array_append_new(into, json_string(d));
            free(d);
        }
    }
}

static int put_obj(void *ud, json_t *obj, const char *file, int line)
{
    (void)file;
    (void)line;
    return store_put_new(ud, json_incref(obj)) < 0;
}

/*
 * The store's objects share values, so a translation that changed a value it read would change
 * other objects too: every translation case, translated twice and serialised both ways, must
 * leave every stored object as it was.
 */
static void test_translation_leaves_store_unchanged(void **state)
{
    (void)state;
    const char *src = getenv("TETHER_SRC");
    if (!src)
        skip();
    const char *dirs[] = {"tests/core/cases", "deploy/examples", NULL};
    for (int d = 0; dirs[d]; d++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", src, dirs[d]);
        Store *s;
        store_new(&s);
        assert_int_equal(manifest_load_path(path, put_obj, NULL, s), 0);
        assert_true(store_count(s, NULL) > 5);
        json_t *before = json_array(), *after = json_array();
        snapshot_store(s, before);
        for (int round = 0; round < 2; round++) {
            json_t *cfg, *failures;
            assert_int_equal(xlate_run(s, NULL, &cfg, &failures), 0);
            size_t len;
            free(xlate_canonical_json(cfg, &len));
            free(xlate_to_yaml(cfg));
            json_decref(cfg);
            json_decref(failures);
        }
        snapshot_store(s, after);
        assert_true(json_equal(before, after));
        json_decref(before);
        json_decref(after);
        store_free(s);
    }
}

/*
 * ---- the translation arena (core/jarena.c) ----
 * Off under ASan and valgrind: then no block may ever be carved, which these check instead.
 */

static size_t blocks_used(void)
{
    JArenaStats st;
    jarena_stats(&st);
    return st.blocks_used;
}

static bool arena_on(void)
{
    JArenaStats st;
    jarena_stats(&st);
    return st.enabled;
}

/* Whether @a and @b were carved from one block (blocks are 64 KB, aligned to it). */
static bool same_block(const void *a, const void *b)
{
    return (uintptr_t)a >> 16 == (uintptr_t)b >> 16;
}

/* A lane carves from a block of its own, in or out of the thread's arena, until it ends. */
static void test_arena_lanes(void **state)
{
    (void)state;
    bool on = arena_on();
    size_t base = blocks_used();
    JArenaLane lane;
    memset(&lane, 0, sizeof(lane));
    jarena_enter();
    json_t *a = json_string("the thread's");
    jarena_lane_enter(&lane);
    json_t *b = json_string("the lane's");
    jarena_lane_leave(&lane);
    json_t *c = json_string("the thread's again");
    jarena_leave();
    jarena_lane_enter(&lane); /* outside the thread's arena too */
    json_t *d = json_string("the lane's too");
    jarena_lane_leave(&lane);
    json_t *e = json_string("malloc's"); /* the thread is out of the arena again */
    if (on) {
        assert_true(same_block(a, c));
        assert_true(same_block(b, d));
        assert_false(same_block(a, b));
        assert_int_equal(blocks_used(), base + 2);
    }
    json_decref(a);
    json_decref(c);
    json_decref(b);
    json_decref(d);
    json_decref(e);
    /* The lane's block is its current one until the lane ends, even with nothing in it. */
    assert_int_equal(blocks_used(), on ? base + 1 : 0);
    jarena_lane_end(&lane);
    assert_int_equal(blocks_used(), on ? base : 0);
}

/*
 * A stored object is a copy in its kind's lane: the loader's object is left to the loader, a
 * kind's objects lie together whatever came between them, and the lanes' blocks go with the
 * store.
 */
static void test_store_copies_into_lanes(void **state)
{
    (void)state;
    bool on = arena_on();
    size_t base = blocks_used();
    Store *s;
    assert_int_equal(store_new(&s), 0);
    store_bulk(s, true);
    enum { N = 40 };
    json_t *held[N];
    char text[256], name[16];
    for (int i = 0; i < N; i++) {
        if (i % 2)
            snprintf(text, sizeof(text),
                     "{\"kind\":\"Secret\",\"metadata\":{\"name\":\"o%d\",\"namespace\":"
                     "\"ns\"},\"data\":{\"k\":\"djA=\"}}",
                     i);
        else
            snprintf(text, sizeof(text),
                     "{\"kind\":\"Service\",\"metadata\":{\"name\":\"o%d\",\"namespace\":"
                     "\"ns\"},\"spec\":{\"type\":\"ExternalName\",\"externalName\":"
                     "\"h%d.test\"}}",
                     i, i);
        assert_non_null(held[i] = json_loads(text, 0, NULL));
        /* the loader keeps its reference across the put, as the manifest loader does */
        assert_int_equal(store_put_new(s, json_incref(held[i])), 1);
    }
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof(name), "o%d", i);
        json_t *o = store_get(s, "Service", "ns", name);
        assert_ptr_not_equal(o, held[i]);
        assert_true(json_equal(o, held[i])); /* trimmed in place, then copied */
        lo = (uintptr_t)o < lo ? (uintptr_t)o : lo;
        hi = (uintptr_t)o > hi ? (uintptr_t)o : hi;
    }
    for (int i = 1; on && i < N; i += 2) {
        snprintf(name, sizeof(name), "o%d", i);
        uintptr_t o = (uintptr_t)store_get(s, "Secret", "ns", name);
        assert_true(o < lo || o > hi); /* no Secret among the Services */
    }
    if (on)
        assert_true(hi - lo < (uintptr_t)64 * 1024);
    /* Out of bulk, an object is stored as it came (single updates are not copied). */
    store_bulk(s, false);
    json_t *one = json_loads("{\"kind\":\"Secret\",\"metadata\":{\"name\":\"one\","
                             "\"namespace\":\"ns\"}}",
                             0, NULL);
    assert_int_equal(store_put_new(s, json_incref(one)), 1);
    assert_ptr_equal(store_get(s, "Secret", "ns", "one"), one);
    json_decref(one);
    for (int i = 0; i < N; i++)
        json_decref(held[i]);
    store_free(s);
    assert_int_equal(blocks_used(), on ? base : 0);
}

static int hold_doc(void *ud, json_t *obj, const char *file, int line)
{
    (void)file;
    (void)line;
    return json_array_append(ud, obj);
}

/* A load in the caller's arena parses there, in the helper thread's half of a buffer too. */
static void test_manifest_parses_in_callers_arena(void **state)
{
    (void)state;
    bool on = arena_on();
    enum { N = 64 };
    Buf b = BUF_INIT;
    for (int i = 0; i < N; i++)
        buf_printf(&b, "kind: ConfigMap\nmetadata: {name: c%d, namespace: ns}\n---\n", i);
    size_t saved = manifest_split_min;
    manifest_split_min = 1; /* split even this small a buffer */
    for (int in_arena = 0; in_arena < 2; in_arena++) {
        json_t *docs = json_array();
        if (in_arena)
            jarena_enter();
        assert_int_equal(manifest_load_buffer(b.data, b.len, "t", hold_doc, NULL, docs), 0);
        if (in_arena)
            jarena_leave();
        assert_int_equal(json_array_size(docs), N);
        for (int i = 0; i < N; i++) {
            json_t *d = json_array_get(docs, (size_t)i);
            char name[16];
            snprintf(name, sizeof(name), "c%d", i);
            assert_string_equal(obj_name(d), name); /* in order, both halves */
            assert_int_equal(jarena_owns(d), on && in_arena);
        }
        json_decref(docs);
    }
    manifest_split_min = saved;
    buf_deinit(&b);
}

typedef struct Values {
    json_t **v;
    size_t from, to;
} Values;

static void free_values(void *arg)
{
    Values *h = arg;
    for (size_t i = h->from; i < h->to; i++)
        json_decref(h->v[i]);
}

/* A block comes back when its last value goes, whichever thread frees which value. */
static void test_arena_blocks_come_back(void **state)
{
    (void)state;
    bool on = arena_on();
    size_t base = blocks_used();
    enum { N = 40000 };
    json_t **v = calloc(N, sizeof(*v));
    assert_non_null(v);
    jarena_enter();
    for (size_t i = 0; i < N; i++)
        assert_non_null(v[i] = json_sprintf("value %zu", i));
    json_t *first = json_string("first"); /* the next block's first value */
    jarena_leave();
    size_t used = blocks_used();
    assert_true(on ? used >= base + 10 : used == 0); /* ~2.5 MB of small values */

    /* Every value but one freed, half of them on another thread: its block stays. */
    json_t *last = v[N - 1];
    Values lower = {v, 0, N / 2}, upper = {v, N / 2, N - 1};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, free_values, &upper), 0);
    free_values(&lower);
    uv_thread_join(&t);
    size_t left = blocks_used();
    assert_true(on ? left < used && left >= base + 1 : left == 0);
    json_decref(last);
    json_decref(first);
    assert_int_equal(blocks_used(), base);
    free(v);
}

static void test_arena_pause_and_big_values(void **state)
{
    (void)state;
    bool on = arena_on();
    size_t base = blocks_used();
    jarena_enter();
    jarena_enter(); /* nested */
    int saved = jarena_pause();
    json_t *kept = json_string("made with malloc");
    jarena_resume(saved);
    jarena_leave();
    assert_int_equal(blocks_used(), base); /* nothing carved yet */
    char *big = calloc(1, 64 * 1024);
    memset(big, 'x', 64 * 1024 - 1);
    json_t *b = json_string(big); /* its bytes go to malloc, its header to the arena */
    assert_int_equal(blocks_used(), base + on);
    jarena_leave();
    json_decref(b);
    assert_int_equal(blocks_used(), base);
    json_decref(kept);
    free(big);
    jarena_trim();
    JArenaStats st;
    jarena_stats(&st);
    assert_true(on ? st.blocks_free >= 1 : st.blocks_free == 0);
}

/* Free blocks whose pages are still there (not yet trimmed). */
static size_t blocks_kept(void)
{
    JArenaStats st;
    jarena_stats(&st);
    return st.blocks_free - st.blocks_trimmed;
}

/* A tree of @n small values made in the arena and freed: its blocks go to the free list. */
static void arena_tree_freed(size_t n)
{
    jarena_enter();
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:i, s:s}", "i", (int)i, "s", "a value"));
    jarena_leave();
    json_decref(a);
}

/*
 * Past the arena's first 8 MB blocks may lie in huge pages, which the kernel frees only whole: a
 * big tree's chunks go back whole when it is freed (one free block at a time would split them
 * later, when memory runs short), and come back as free blocks when the next tree needs them.
 */
static void test_arena_trims_whole_chunks(void **state)
{
    (void)state;
    bool on = arena_on(); /* off (ASan, valgrind): every count stays 0 */
    JArenaStats st;
    jarena_trim();
    arena_tree_freed(200000); /* about 70 MB */
    jarena_trim();
    jarena_stats(&st);
    assert_true(on ? st.chunks_trimmed >= 16 : st.chunks_trimmed == 0);
    assert_int_equal(st.blocks_free, st.blocks_trimmed); /* everything free is handed back */
    size_t chunks = st.chunks_trimmed, used = st.blocks_used;
    jarena_enter();
    json_t *a = json_array();
    for (int i = 0; i < 50000; i++)
        json_array_append_new(a, json_pack("{s:i, s:s}", "i", i, "s", "a value"));
    jarena_leave();
    jarena_stats(&st);
    assert_true(on ? st.chunks_trimmed < chunks : st.chunks_trimmed == 0); /* taken back */
    assert_true(on ? st.blocks_used > used : st.blocks_used == 0);
    json_decref(a);
    jarena_trim();
    jarena_stats(&st);
    assert_int_equal(st.blocks_used, used);
    assert_int_equal(st.blocks_free, st.blocks_trimmed);
}

/* Whatever a failed assertion left: later tests trim at once. */
static int memtrim_at_once(void **state)
{
    (void)state;
    memtrim_defer(0, 0);
    return 0;
}

/*
 * Deferred trimming (as tether run has it): releases during a burst leave the freed blocks'
 * pages in place for the next translation; once releases pause, a tick trims in the thread pool.
 * Without deferral, a release trims at once.
 */

/* Whether the mapping that holds @p has @flag among its VmFlags in /proc/self/smaps. */
static bool mapping_flag(const void *p, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false, has = false;
    while (f && fgets(line, sizeof(line), f)) {
        char *end;
        unsigned long long a = strtoull(line, &end, 16); /* a mapping's line: "start-end ..." */
        if (end != line && *end == '-') {
            unsigned long long b = strtoull(end + 1, NULL, 16);
            in = (uintptr_t)p >= a && (uintptr_t)p < b;
        } else if (in && !strncmp(line, "VmFlags:", 8)) {
            char want[8];
            snprintf(want, sizeof(want), " %s", flag);
            has = strstr(line, want) != NULL;
            break;
        }
    }
    if (f)
        fclose(f);
    return has;
}

/*
 * glibc's main heap: no huge pages where a trim left holes (khugepaged would fill them), and
 * huge pages for what it grew by since, once a translation starts.
 */
static void test_heap_huge_pages(void **state)
{
    (void)state;
    util_tune_malloc();
    void *small = malloc(100);
    /* Not with another malloc (sanitizers and valgrind have their own: the gcc build runs it),
     * nor without huge pages in the kernel. (cmocka's skip() reads as a failure to meson.) */
    if (sbrk(0) <= small || access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0) {
        free(small);
        return;
    }
    util_heap_trim();
    assert_true(mapping_flag(small, "nh"));
    assert_false(mapping_flag(small, "hg"));
    /* Pieces below the mapping threshold until one is past the trimmed end: the heap grew by
     * brk (untouched: only their headers are written). */
    char *end = sbrk(0);
    void *v[2000];
    int n = 0;
    while (n < 2000 && (n == 0 || (char *)v[n - 1] < end))
        assert_non_null(v[n++] = malloc(200 * 1024));
    assert_true((char *)v[n - 1] >= end);
    util_heap_huge();
    assert_true(mapping_flag(v[n - 1], "hg"));
    assert_true(mapping_flag(small, "nh")); /* below the trimmed end: left alone */
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(small);
    util_heap_trim();
}

static void test_memtrim_deferred(void **state)
{
    (void)state;
    bool on = arena_on();
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    uint64_t count = memtrim_count();

    memtrim_defer(60000, 60000); /* a stalled test cannot make it quiet before the next tick */
    arena_tree_freed(20000);
    memtrim_released();
    assert_true(memtrim_pending());
    memtrim_tick(&loop); /* not quiet yet */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(memtrim_count(), count);
    size_t kept = blocks_kept();
    assert_true(on ? kept > 0 : kept == 0);
    arena_tree_freed(20000); /* the next "translation" reuses those blocks, pages and all */
    assert_int_equal(blocks_kept(), kept);
    memtrim_released();
    memtrim_defer(50, 60000);
    uv_sleep(80);
    memtrim_tick(&loop);
    assert_true(memtrim_pending()); /* queued */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(memtrim_pending());
    assert_int_equal(memtrim_count(), count + 1);
    assert_int_equal(blocks_kept(), 0);
    memtrim_tick(&loop); /* nothing released since: nothing to do */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(memtrim_count(), count + 1);

    /* Releases that never pause for the quiet time still trim when the longest wait is up */
    memtrim_defer(60000, 60000);
    memtrim_released();
    memtrim_tick(&loop); /* neither quiet nor due: the longest wait starts */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(memtrim_count(), count + 1);
    memtrim_defer(60000, 200);
    uv_sleep(250);
    memtrim_released();
    memtrim_tick(&loop); /* due: the first tick that saw it was 250 ms ago or more */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(memtrim_count(), count + 2);
    assert_false(memtrim_pending());

    memtrim_defer(0, 0);
    arena_tree_freed(20000);
    assert_true(on ? blocks_kept() > 0 : true);
    memtrim_released();
    assert_false(memtrim_pending());
    assert_int_equal(memtrim_count(), count + 3);
    assert_int_equal(blocks_kept(), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/*
 * What outlives a translation must not be in its arena: with the configurations freed and their
 * failures and plans kept (as revisions keep them), every block is back. Threads forced on for
 * every pass.
 */
static void test_translation_returns_arena_blocks(void **state)
{
    (void)state;
    const char *src = getenv("TETHER_SRC");
    if (!src)
        skip();
    bool on = arena_on();
    size_t saved_min = xsplit_min;
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/core/cases", src);
    Store *s;
    store_new(&s);
    assert_int_equal(manifest_load_path(path, put_obj, NULL, s), 0);
    size_t base = blocks_used();
    json_t *kept[4];
    for (int round = 0; round < 4; round++) {
        XlateOptions o;
        xlate_options_default(&o);
        o.expressions = round & 1;
        xsplit_min = round < 2 ? 1 : saved_min;
        json_t *cfg;
        XlatePlan *plan;
        assert_int_equal(xlate_run_plan(s, &o, &cfg, &kept[round], &plan), 0);
        assert_non_null(plan);
        assert_true(json_array_size(kept[round]) > 10);
        assert_true(on ? blocks_used() > base : blocks_used() == 0);
        json_decref(cfg);
        assert_int_equal(blocks_used(), base);
        xlate_plan_free(plan);
    }
    xsplit_min = saved_min;
    for (int round = 0; round < 4; round++)
        json_decref(kept[round]);
    store_free(s);
}

static void test_feature_gates(void **state)
{
    XlateOptions o;
    char err[200];
    (void)state;
    xlate_options_default(&o);
    assert_true(o.fill_ids && o.custom_entity && !o.service_facade && !o.rewrite_uris);
    assert_int_equal(xlate_feature_gates(&o, "KongServiceFacade=true, RewriteURIs=true", err, sizeof(err)), 0);
    assert_true(o.service_facade && o.rewrite_uris);
    assert_int_equal(xlate_feature_gates(&o, "Bogus=true", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "Bogus"));
    assert_int_equal(xlate_feature_gates(&o, "FillIDs=maybe", err, sizeof(err)), -EINVAL);
    assert_int_equal(xlate_feature_gates(&o, "FillIDs", err, sizeof(err)), -EINVAL);
    /* names and values trimmed apart, as Kubernetes' flag parser does */
    xlate_options_default(&o);
    assert_int_equal(xlate_feature_gates(&o, " RewriteURIs = true ,KongServiceFacade= 1", err,
                                         sizeof(err)),
                     0);
    assert_true(o.rewrite_uris && o.service_facade);
    /* KIC will not start with FillIDs off while KongCustomEntity is on (its default) */
    xlate_options_default(&o);
    assert_int_equal(xlate_feature_gates(&o, "FillIDs=false", err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "FillIDs is required if KongCustomEntity is enabled");
    xlate_options_default(&o);
    assert_int_equal(xlate_feature_gates(&o, "FillIDs=false,KongCustomEntity=false", err,
                                         sizeof(err)),
                     0);
    assert_true(!o.fill_ids && !o.custom_entity);
}

/*
 * -o yaml as KIC's golden files have it: what go-yaml v2 (the emitter of sigs.k8s.io/yaml) wrote
 * for each of these, checked with go-yaml itself: single quotes where plain text would not read
 * back, quotes on what reads back as another type (timestamps Go parses, not "1234-1234"), its
 * key order (runs of digits by value, letters last), folding past 80 columns, numbers through
 * float64 in strconv's 'g' form, literal blocks with indentation hints, and no "..." at the end.
 */
static void test_yaml_as_go_yaml(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"{\"hosts\": [\"*.example.com\", \"a.example.com\"], \"name\": \"x-foo: bar\"}",
         "hosts:\n"
         "- '*.example.com'\n"
         "- a.example.com\n"
         "name: 'x-foo: bar'\n"},
        {"{\"custom_id\": \"1234-1234\", \"date\": \"2024-01-01\", \"stamp\": \"2001-12-14t21:5"
         "9:43.10-05:00\", \"base60\": \"1:20\", \"bad_date\": \"2001-13-01\"}",
         "bad_date: 2001-13-01\n"
         "base60: \"1:20\"\n"
         "custom_id: 1234-1234\n"
         "date: \"2024-01-01\"\n"
         "stamp: \"2001-12-14t21:59:43.10-05:00\"\n"},
        {"{\"headers\": {\"x-v10\": [\"a\"], \"x-v9\": [\"b\"], \"x-v_\": [\"c\"], \"a1\": 1, "
         "\"a01\": 2, \"aA\": 3, \"a_\": 4}}",
         "headers:\n"
         "  a_: 4\n"
         "  a1: 1\n"
         "  a01: 2\n"
         "  aA: 3\n"
         "  x-v_:\n"
         "  - c\n"
         "  x-v9:\n"
         "  - b\n"
         "  x-v10:\n"
         "  - a\n"},
        {"{\"expression\": \"(http.host == \\\"a-rather-long-hostname.example.com\\\") && ((htt"
         "p.path == \\\"/some/fairly/long/path/prefix\\\") || (http.path ^= \\\"/some/fairly/lo"
         "ng/path/prefix/\\\"))\"}",
         "expression: (http.host == \"a-rather-long-hostname.example.com\") && ((http.path ==\n"
         "  \"/some/fairly/long/path/prefix\") || (http.path ^= \"/some/fairly/long/path/prefix"
         "/\"))\n"},
        {"{\"n\": [0, -1, 1.5, 0.1, 1e21, 1e20, 1e-7, 1234567.5, 0.00001, 9007199254740993, -0."
         "0, 123456789012345678]}",
         "\"n\":\n"
         "- 0\n"
         "- -1\n"
         "- 1.5\n"
         "- 0.1\n"
         "- 1e+21\n"
         "- 1e+20\n"
         "- 1e-07\n"
         "- 1.2345675e+06\n"
         "- 1e-05\n"
         "- 9007199254740992\n"
         "- 0\n"
         "- 123456789012345680\n"},
        {"{\"cert\": \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\", \"k"
         "eep\": \"a\\n\\n\", \"lead\": \"\\nfoo\", \"empty\": \"\", \"words\": [\"yes\", \"No"
         "\", \"yEs\", \"null\", \"~\", \"-\", \"-a\", \"? x\", \"...\", \"a #b\", \" a\", \"'q"
         "\", \"x\xf0\x9f\x98\x80""\", \"tab\\there\"]}",
         "cert: |\n"
         "  -----BEGIN CERTIFICATE-----\n"
         "  MIIB\n"
         "  -----END CERTIFICATE-----\n"
         "empty: \"\"\n"
         "keep: |+\n"
         "  a\n"
         "\n"
         "lead: |2-\n"
         "\n"
         "  foo\n"
         "words:\n"
         "- \"yes\"\n"
         "- \"No\"\n"
         "- yEs\n"
         "- \"null\"\n"
         "- \"~\"\n"
         "- '-'\n"
         "- -a\n"
         "- '? x'\n"
         "- '...'\n"
         "- 'a #b'\n"
         "- ' a'\n"
         "- '''q'\n"
         "- \"x\\U0001F600\"\n"
         "- \"tab\\there\"\n"},
        {"{\"z\": {\"\\n\": 1, \"long\": \"k\"}, \"last\": \"\\n\"}",
         "last: |2+\n"
         "\n"
         "z:\n"
         "  ? |2+\n"
         "\n"
         "  : 1\n"
         "  long: k\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_loads(cases[i][0], 0, NULL);
        assert_non_null(v);
        char *y = xlate_to_yaml(v);
        assert_non_null(y);
        if (strcmp(y, cases[i][1]))
            fail_msg("case %zu:\n%s\nwanted:\n%s", i, y, cases[i][1]);
        free(y);
        json_decref(v);
    }
    /* The file sink's YAML is for Kong's YAML 1.1 reader: no bare exponent, no plain date-like */
    json_t *v = json_loads("{\"n\": 1e21, \"f\": 0.00001, \"d\": \"1234-1234\"}", 0, NULL);
    char *y = xlate_to_yaml_for_kong(v);
    assert_string_equal(y, "d: \"1234-1234\"\nf: 1.0e-05\n\"n\": 1.0e+21\n");
    free(y);
    json_decref(v);
}

static json_t *translate_text(const char *yaml, json_t **failures)
{
    Store *s;
    Collected c = load(yaml);
    store_new(&s);
    size_t i;
    json_t *o;
    json_array_foreach(c.objs, i, o) store_put(s, o);
    drop(&c);
    json_t *cfg = NULL;
    assert_int_equal(xlate_run(s, NULL, &cfg, failures), 0);
    store_free(s);
    return cfg;
}

/*
 * A Service's targets come once each, however many: two slices of 300 endpoints that overlap by
 * 100 (past a few, targets are looked up in a hash set).
 */
static void test_xlate_many_targets_once(void **state)
{
    (void)state;
    Buf y = BUF_INIT;
    buf_puts(&y, "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\n"
                 "spec: {ports: [{name: http, port: 80}]}\n---\n"
                 "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
                 "metadata: {name: web, namespace: ns}\nspec:\n  ingressClassName: kong\n"
                 "  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: "
                 "{name: web, port: {number: 80}}}}]}}]\n");
    for (int sl = 0; sl < 2; sl++) {
        buf_printf(&y, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                       "metadata: {name: web-%d, namespace: ns, labels: "
                       "{kubernetes.io/service-name: web}}\naddressType: IPv4\n"
                       "ports: [{name: http, port: 8080}]\nendpoints:\n",
                   sl);
        for (int i = sl * 200; i < sl * 200 + 300; i++)
            buf_printf(&y, "- {addresses: [10.0.%d.%d]}\n", i / 256, i % 256);
    }
    json_t *failures;
    json_t *cfg = translate_text(y.data, &failures);
    buf_deinit(&y);
    json_t *targets = json_object_get(json_array_get(json_object_get(cfg, "upstreams"), 0),
                                      "targets");
    assert_int_equal(json_array_size(targets), 500);
    json_t *seen = json_object(); /* every one of the 500, none twice */
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
    {
        const char *tt = json_string_value(json_object_get(t, "target"));
        assert_null(json_object_get(seen, tt));
        json_object_set_new(seen, tt, json_true());
    }
    for (int k = 0; k < 500; k++) {
        char want[64];
        snprintf(want, sizeof(want), "10.0.%d.%d:8080", k / 256, k % 256);
        assert_non_null(json_object_get(seen, want));
    }
    json_decref(seen);
    json_decref(cfg);
    json_decref(failures);
}

static void test_xlate_failures_keep_the_rest(void **state)
{
    (void)state;
    json_t *failures;
    /* One Ingress points at a missing Service and a missing plugin; the other is fine. */
    json_t *cfg = translate_text(
        "kind: Ingress\napiVersion: networking.k8s.io/v1\n"
        "metadata: {name: bad, namespace: ns, annotations: {konghq.com/plugins: nope}}\n"
        "spec: {ingressClassName: kong, rules: [{http: {paths: [{path: /b, pathType: Prefix,"
        " backend: {service: {name: missing, port: {number: 80}}}}]}}]}\n"
        "---\n"
        "kind: Ingress\napiVersion: networking.k8s.io/v1\n"
        "metadata: {name: good, namespace: ns}\n"
        "spec: {ingressClassName: kong, rules: [{http: {paths: [{path: /g, pathType: Prefix,"
        " backend: {service: {name: svc, port: {number: 80}}}}]}}]}\n"
        "---\n"
        "kind: Service\napiVersion: v1\nmetadata: {name: svc, namespace: ns}\n"
        "spec: {ports: [{port: 80}]}\n",
        &failures);
    json_t *services = json_object_get(cfg, "services");
    assert_int_equal(json_array_size(services), 2);
    int missing = 0, plugin = 0;
    size_t i;
    json_t *f;
    json_array_foreach(failures, i, f)
    {
        const char *m = json_string_value(json_object_get(f, "message"));
        json_t *obj = json_array_get(json_object_get(f, "objects"), 0);
        if (strstr(m, "failed to fetch Service ns/missing")) {
            missing++;
            assert_string_equal(json_string_value(json_object_get(obj, "name")), "bad");
            assert_string_equal(json_string_value(json_object_get(obj, "kind")), "Ingress");
        }
        if (strstr(m, "\"nope\" does not exist"))
            plugin++;
    }
    assert_int_equal(missing, 1);
    assert_int_equal(plugin, 1);
    json_decref(cfg);
    json_decref(failures);
}

static void test_xlate_empty_and_canonical(void **state)
{
    (void)state;
    json_t *failures;
    json_t *cfg = translate_text("kind: ConfigMap\nmetadata: {name: x}\n", &failures);
    /* DB-less Kong refuses an empty configuration: a stub upstream stands in. */
    assert_string_equal(json_string_value(obj_get_path(json_array_get(json_object_get(cfg, "upstreams"), 0), "name")),
                        "kong");
    Revision *r = revision_new_consume(cfg, failures, 0);
    size_t n;
    assert_string_equal(revision_json(r, &n), "{\"_format_version\":\"3.0\",\"upstreams\":[{\"name\":\"kong\"}]}");
    assert_int_equal(strlen(revision_hash(r)), 64);
    revision_unref(r);
}

/*
 * The canonical writer scans strings 8 bytes at a time: each byte that needs escaping, at each
 * position of a string longer than two words, comes out as jansson writes it (but for the hex
 * digits of \u escapes, which are lower case as Go writes them).
 */
static void test_canonical_string_escapes(void **state)
{
    (void)state;
    const char special[] = {0, 1, '\b', '\n', '\r', '\t', 0x1f, '"', '\\', ' ', '!', '#', '[', ']',
                            '/', 0x7f};
    for (size_t k = 0; k < sizeof(special); k++) {
        for (size_t at = 0; at < 19; at++) {
            char text[19];
            memset(text, 'a', sizeof(text));
            text[at] = special[k];
            json_t *cfg = json_pack("{s:s#}", "k", text, sizeof(text));
            size_t n;
            char *mine = xlate_canonical_json(cfg, &n);
            char *theirs = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
            for (char *c = theirs; *c; c++) /* no other capitals here */
                *c = (char)tolower((unsigned char)*c);
            assert_non_null(mine);
            assert_string_equal(mine, theirs);
            assert_int_equal(n, strlen(theirs));
            free(mine);
            free(theirs);
            json_decref(cfg);
        }
    }
}

/*
 * creationTimestamp in the API server's form is read without strptime(): the same seconds as
 * strptime() and timegm() give, which still read every other form (here, the same instant with
 * one-digit fields), over two centuries of days, leap days and out-of-range days included.
 */
static void test_creation_timestamps(void **state)
{
    (void)state;
    static const int days[] = {1, 9, 10, 28, 29, 30, 31};
    for (int y = 1899; y <= 2101; y += (y > 1905 && y < 2095) ? 7 : 1) {
        for (int mo = 1; mo <= 12; mo++) {
            for (size_t k = 0; k < sizeof(days) / sizeof(days[0]); k++) {
                int d = days[k], h = (y * 7 + mo) % 24, mi = (d * 13) % 60, se = (y + d) % 61;
                char api[64], loose[64];
                snprintf(api, sizeof(api), "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, se);
                snprintf(loose, sizeof(loose), "%d-%d-%dT%d:%d:%d", y, mo, d, h, mi, se);
                json_t *a = json_pack("{s:s, s:{s:s, s:s}}", "kind", "Ingress", "metadata", "name",
                                      "x", "creationTimestamp", api);
                json_t *b = json_pack("{s:s, s:{s:s, s:s}}", "kind", "Ingress", "metadata", "name",
                                      "x", "creationTimestamp", loose);
                struct tm tm = {0};
                assert_non_null(strptime(api, "%Y-%m-%dT%H:%M:%S", &tm));
                long long want = (long long)timegm(&tm) * 1000000; /* microseconds */
                if (xcreation(a) != want || xcreation(b) != want)
                    fail_msg("%s: %lld, %s: %lld, timegm: %lld", api, xcreation(a), loose,
                             xcreation(b), want);
                json_decref(a);
                json_decref(b);
            }
        }
    }
    json_t *odd = json_pack("{s:{s:s}}", "metadata", "creationTimestamp", "2024-13-01T00:00:00Z");
    assert_true(xcreation(odd) == XCREATION_NONE); /* neither reads a 13th month */
    json_decref(odd);
    /* None is Go's zero time, year 1: older than a time before 1970 */
    json_t *none = json_pack("{s:{s:s}}", "metadata", "name", "x");
    json_t *old = json_pack("{s:{s:s}}", "metadata", "creationTimestamp", "1960-01-01T00:00:00Z");
    assert_true(xcreation(none) == XCREATION_NONE && xcreation(old) > XCREATION_NONE &&
                xcreation(old) < 0);
    json_decref(none);
    json_decref(old);
    /* RFC 3339 as Go reads it: an offset and a fraction count (to the microsecond). */
    static const char *const same[][2] = {
        {"2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z"},
        {"2023-12-31T23:30:00-00:30", "2024-01-01T00:00:00Z"},
        {"2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00.500000Z"},
        {"2024-01-01T00:00:00.1234569Z", "2024-01-01T00:00:00.123456Z"},
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        json_t *a = json_pack("{s:{s:s}}", "metadata", "creationTimestamp", same[i][0]);
        json_t *b = json_pack("{s:{s:s}}", "metadata", "creationTimestamp", same[i][1]);
        assert_true(xcreation(a) == xcreation(b));
        json_decref(a);
        json_decref(b);
    }
    json_t *t0 = json_pack("{s:{s:s}}", "metadata", "creationTimestamp", "2024-01-01T00:00:00Z");
    json_t *t1 = json_pack("{s:{s:s}}", "metadata", "creationTimestamp", "2024-01-01T00:00:00.5Z");
    assert_true(xcreation(t1) - xcreation(t0) == 500000);
    json_decref(t0);
    json_decref(t1);
}

/*
 * Header values split as Go's strings.Split then TrimSpace: empty parts kept, a trailing separator
 * gives one, Unicode spaces trimmed, and an empty separator splits after each UTF-8 sequence. And
 * without trimming, as credential redirect_uris are split.
 */
static void test_split_go(void **state)
{
    (void)state;
    static const struct {
        const char *s, *sep;
        bool trim;
        const char *want;
    } t[] = {
        {"a,b", ",", true, "[\"a\",\"b\"]"},
        {" a ,,b,", ",", true, "[\"a\",\"\",\"b\",\"\"]"},
        {" a ,,b,", ",", false, "[\" a \",\"\",\"b\",\"\"]"},
        {"a;;b;c", ";;", true, "[\"a\",\"b;c\"]"},
        {"\xc2\xa0x\xe3\x80\x80\t", ",", true, "[\"x\"]"},
        {"\xe2\x80\x8bx", ",", true, "[\"\xe2\x80\x8bx\"]"}, /* U+200B is not white space in Go */
        {"a\xc3\xa9 b", "", true, "[\"a\",\"\xc3\xa9\",\"\",\"b\"]"},
        {"", ",", true, "[\"\"]"},
        {"", "", true, "[]"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        json_t *got = xsplit_go(t[i].s, t[i].sep, t[i].trim);
        char *text = json_dumps(got, JSON_COMPACT);
        json_t *want = json_loads(t[i].want, 0, NULL);
        if (!text || !want || !json_equal(got, want))
            fail_msg("case %zu: got %s, want %s", i, text ? text : "?", t[i].want);
        free(text);
        json_decref(got);
        json_decref(want);
    }
}

/*
 * konghq.com/methods: split on commas, trimmed, upper-cased as Go's strings.ToUpper does (the
 * dotless i and the long s become I and S), and then held to [A-Z]+.
 */
static void test_methods(void **state)
{
    (void)state;
    static const struct {
        const char *v, *want;
        int ok; /* how many of them pass xmethod_ok() */
    } t[] = {
        {"get, Post ,", "[\"GET\",\"POST\"]", 2},
        {"l\xc4\xb1\xc5\xbft", "[\"LIST\"]", 1},
        {"g\xc3\xa9t,PUT2", "[\"G\xc3\xa9T\",\"PUT2\"]", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        json_t *got = xmethods(t[i].v), *want = json_loads(t[i].want, 0, NULL), *m;
        char *text = json_dumps(got, JSON_COMPACT);
        size_t j;
        int ok = 0;
        json_array_foreach(got, j, m) ok += xmethod_ok(json_string_value(m));
        if (!text || !want || !json_equal(got, want) || ok != t[i].ok)
            fail_msg("case %zu: got %s (%d valid), want %s (%d)", i, text ? text : "?", ok,
                     t[i].want, t[i].ok);
        free(text);
        json_decref(got);
        json_decref(want);
    }
}

/* A revision gives its tree back and still serves the configuration, from its bytes. */
static void test_revision_tree_handed_back(void **state)
{
    (void)state;
    json_t *cfg = json_pack("{s:s, s:[{s:s, s:i, s:f}]}", "_format_version", "3.0", "services",
                            "name", "a", "port", 80, "ratio", 0.1);
    Revision *r = revision_new_consume(json_incref(cfg), NULL, 0);
    assert_false(revision_is_empty(r));
    json_t *shared = revision_load_config(r);
    assert_ptr_equal(shared, cfg); /* while it has its tree, no parse */
    json_decref(shared);
    json_t *tree = revision_take_tree(r);
    assert_ptr_equal(tree, cfg);
    assert_null(revision_take_tree(r));
    json_t *loaded = revision_load_config(r);
    assert_ptr_not_equal(loaded, cfg);
    assert_true(json_equal(loaded, cfg));
    json_decref(loaded);
    json_decref(tree);
    json_decref(cfg);

    /* A revision made from bytes alone (a target refresh) knows whether it is empty. */
    size_t n;
    const char *bytes = revision_json(r, &n);
    Revision *from_bytes = revision_new_planned(NULL, NULL, NULL, strndup(bytes, n), n);
    assert_false(revision_is_empty(from_bytes));
    assert_string_equal(revision_hash(from_bytes), revision_hash(r));
    const char *none = "{\"_format_version\":\"3.0\",\"services\":[]}";
    Revision *empty = revision_new_planned(NULL, NULL, NULL, strdup(none), strlen(none));
    assert_true(revision_is_empty(empty));
    assert_null(revision_take_tree(empty));
    revision_unref(empty);
    revision_unref(from_bytes);
    revision_unref(r);
}

/* A big revision's last reference hands it to the thread pool; the loop still closes clean. */
static void test_revision_freed_off_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    json_t *ups = json_array();
    for (int i = 0; i < 20000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "upstream-%d", i);
        json_array_append_new(ups, json_pack("{s:s}", "name", name));
    }
    Revision *big = revision_new_consume(json_pack("{s:s, s:o}", "_format_version", "3.0", "upstreams", ups), NULL, 0);
    Revision *small = revision_new_consume(json_pack("{s:s}", "_format_version", "3.0"), NULL, 0);
    size_t n;
    revision_json(big, &n);
    assert_true(n >= 256 * 1024);
    revision_free_off_loop(&loop);
    revision_unref(small); /* small: freed in place, nothing queued */
    assert_false(uv_loop_alive(&loop));
    revision_ref(big);
    revision_unref(big); /* not the last reference */
    assert_false(uv_loop_alive(&loop));
    revision_unref(big);
    assert_true(uv_loop_alive(&loop)); /* queued to the thread pool */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    revision_free_off_loop(NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid5),
        cmocka_unit_test(test_sha1_vectors),
        cmocka_unit_test(test_sha1_paths_agree),
        cmocka_unit_test(test_revision_tree_handed_back),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_manifest_documents),
        cmocka_unit_test(test_manifest_scalars),
        cmocka_unit_test(test_manifest_merges_bom),
        cmocka_unit_test(test_go_float),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_big_buffer),
        cmocka_unit_test(test_manifest_path_errors),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_store_shares_values),
        cmocka_unit_test(test_store_packs_ingress_rules),
        cmocka_unit_test(test_store_packs_metadata),
        cmocka_unit_test(test_store_share_sweeps),
        cmocka_unit_test(test_translation_leaves_store_unchanged),
        cmocka_unit_test(test_arena_blocks_come_back),
        cmocka_unit_test(test_arena_lanes),
        cmocka_unit_test(test_manifest_parses_in_callers_arena),
        cmocka_unit_test(test_store_copies_into_lanes),
        cmocka_unit_test(test_arena_pause_and_big_values),
        cmocka_unit_test(test_arena_trims_whole_chunks),
        cmocka_unit_test_teardown(test_memtrim_deferred, memtrim_at_once),
        cmocka_unit_test(test_heap_huge_pages),
        cmocka_unit_test(test_translation_returns_arena_blocks),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_annotation_view),
        cmocka_unit_test(test_feature_gates),
        cmocka_unit_test(test_xlate_failures_keep_the_rest),
        cmocka_unit_test(test_xlate_many_targets_once),
        cmocka_unit_test(test_xlate_empty_and_canonical),
        cmocka_unit_test(test_canonical_string_escapes),
        cmocka_unit_test(test_creation_timestamps),
        cmocka_unit_test(test_yaml_as_go_yaml),
        cmocka_unit_test(test_split_go),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_revision_freed_off_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
