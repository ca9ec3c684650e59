/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for mtls/: loading and validation errors, libcurl options against a real TLS server
 * that requires client certificates, metrics, and rotation on a libuv loop (plain file
 * replacement, Kubernetes' ..data symlink swap, periodic check, bad replacements kept out).
 * Every key and certificate is generated at run time.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "certs.h"
#include "log.h"
#include "mtls.h"
#include "tls-server.h"
#include "util.h"

typedef struct Pair {
    char *cert;
    char *key;
} Pair;

static struct {
    Pair ca, other_ca, server, client1, client2, client3, expired, foreign;
    TlsServer *srv;
    char dir[256];
} F;

static Pair gen(const char *cn, CertsUsage usage, const Pair *ca, long long not_before, int days)
{
    const char *sans[] = {"127.0.0.1", "localhost", "kong-admin.test"};
    CertsSpec spec = {.cn = cn, .usage = usage, .not_before = not_before, .days = days};
    if (usage == CERTS_USAGE_SERVER) {
        spec.sans = sans;
        spec.n_sans = 3;
    }
    if (ca) {
        spec.ca_cert_pem = ca->cert;
        spec.ca_key_pem = ca->key;
    }
    Pair p = {0};
    char *err = NULL;
    if (certs_generate(&spec, &p.cert, &p.key, &err) < 0) {
        fprintf(stderr, "certs_generate: %s\n", err ? err : "?");
        abort();
    }
    return p;
}

static void pair_free(Pair *p)
{
    free(p->cert);
    certs_secret_free(p->key);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    long long now = (long long)time(NULL);
    F.ca = gen("Test CA", CERTS_USAGE_CA, NULL, 0, 0);
    F.other_ca = gen("Other CA", CERTS_USAGE_CA, NULL, 0, 0);
    F.server = gen("server", CERTS_USAGE_SERVER, &F.ca, 0, 0);
    F.client1 = gen("client-1", CERTS_USAGE_CLIENT, &F.ca, 0, 0);
    F.client2 = gen("client-2", CERTS_USAGE_CLIENT, &F.ca, 0, 20); /* expires within 30 days */
    F.client3 = gen("client-3", CERTS_USAGE_CLIENT, &F.ca, 0, 0);
    F.expired = gen("expired", CERTS_USAGE_CLIENT, &F.ca, now - 10 * 86400, 1);
    F.foreign = gen("foreign", CERTS_USAGE_CLIENT, &F.other_ca, 0, 0);
    F.srv = tls_server_start(F.server.cert, F.server.key, F.ca.cert);
    if (!F.srv)
        return -1;
    snprintf(F.dir, sizeof(F.dir), "/tmp/tether-mtls-test-XXXXXX");
    return mkdtemp(F.dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    tls_server_stop(F.srv);
    Pair *all[] = {&F.ca,      &F.other_ca, &F.server,  &F.client1,
                   &F.client2, &F.client3,  &F.expired, &F.foreign};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        pair_free(all[i]);
    return nftw(F.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- helpers ---- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    Buf *b = ud;
    if (b->len + sz * n > 4096)
        return 0;
    return buf_append(b, p, sz * n) < 0 ? 0 : sz * n;
}

static CURL *prepare(Mtls *m, const char *host, Buf *body)
{
    CURL *e = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "https://%s:%d/", host, tls_server_port(F.srv));
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    assert_int_equal(mtls_apply(m, e), 0);
    return e;
}

static CURLcode perform(CURL *e, Buf *body, char *out, size_t cap)
{
    CURLcode c = curl_easy_perform(e);
    snprintf(out, cap, "%s", body->data ? body->data : "");
    curl_easy_cleanup(e);
    buf_deinit(body);
    return c;
}

/* fetch() - one request on a fresh handle; *out gets the CN the server saw. */
static CURLcode fetch_host(Mtls *m, const char *host, char *out, size_t cap)
{
    Buf body = BUF_INIT;
    CURL *e = prepare(m, host, &body);
    return perform(e, &body, out, cap);
}

static CURLcode fetch(Mtls *m, char *out, size_t cap)
{
    return fetch_host(m, "127.0.0.1", out, cap);
}

static void expect_cn(Mtls *m, const char *cn)
{
    char got[256];
    CURLcode c = fetch(m, got, sizeof(got));
    if (c != CURLE_OK)
        fail_msg("request failed: %s", curl_easy_strerror(c));
    assert_string_equal(got, cn);
}

static char *path_in(const char *name)
{
    return util_strdup_printf("%s/%s", F.dir, name);
}

static void write_file(const char *path, const char *data)
{
    assert_int_equal(util_write_file_atomic(path, data, strlen(data), 0600), 0);
}

static unsigned long long metric(Mtls *m, const char *name)
{
    Buf b = BUF_INIT;
    assert_int_equal(mtls_metrics(&m, 1, &b), 0);
    char *needle = util_strdup_printf("\n%s{", name);
    const char *p = strstr(b.data, needle);
    assert_non_null(p);
    p = strchr(p, '}');
    unsigned long long v = strtoull(p + 2, NULL, 10);
    free(needle);
    buf_deinit(&b);
    return v;
}

typedef bool (*Cond)(Mtls *m, unsigned long long want);

static bool gen_at_least(Mtls *m, unsigned long long want)
{
    return mtls_generation(m) >= want;
}

static bool rejects_at_least(Mtls *m, unsigned long long want)
{
    return metric(m, "tether_tls_material_reload_failures_total") >= want;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* run_until() - spin @loop until @cond holds; generous deadline, no timing is asserted. */
static void run_until(uv_loop_t *loop, Mtls *m, Cond cond, unsigned long long want)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    uint64_t deadline = util_now_ms() + 30000;
    while (!cond(m, want) && util_now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (!cond(m, want))
        fail_msg("condition not reached (want %llu, generation %u)", want, mtls_generation(m));
}

static void on_closed(void *ud)
{
    (*(int *)ud)++;
}

static void close_and_check(uv_loop_t *loop, Mtls *m)
{
    int closed = 0;
    mtls_close(m, on_closed, &closed);
    assert_int_equal(closed, 0); /* asynchronous with a loop */
    while (uv_run(loop, UV_RUN_DEFAULT) != 0)
        ;
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- tests ---- */

static void test_values(void **state)
{
    (void)state;
    MtlsConfig cfg = {.flag_prefix = "konnect-tls-client",
                      .cert = F.client1.cert,
                      .key = F.client1.key,
                      .ca = F.ca.cert,
                      .ca_flag = "konnect-ca-cert"};
    Mtls *m = NULL;
    char *err = NULL;
    assert_int_equal(mtls_new(NULL, &cfg, &m, &err), 0);
    assert_null(err);
    assert_true(mtls_has_client_cert(m));
    assert_int_equal(mtls_generation(m), 1);
    long long exp = mtls_cert_expiry(m);
    long long now = (long long)time(NULL);
    assert_true(exp > now + 360 * 86400 && exp < now + 366 * 86400);
    assert_non_null(mtls_cert_sha256(m));
    assert_int_equal(strlen(mtls_cert_sha256(m)), 95);
    expect_cn(m, "client-1");
    /* A handle configured now keeps its copy of the material. */
    int closed = 0;
    mtls_close(m, on_closed, &closed);
    assert_int_equal(closed, 1);
}

/* A client chain (leaf + intermediate) reaches the server, which trusts only the root. */
static void test_client_chain(void **state)
{
    (void)state;
    Pair inter = gen("Intermediate", CERTS_USAGE_CA, &F.ca, 0, 0);
    Pair leaf = gen("chained", CERTS_USAGE_CLIENT, &inter, 0, 0);
    char *chain = util_strdup_printf("%s%s", leaf.cert, inter.cert);
    MtlsConfig cfg = {.cert = chain, .key = leaf.key, .ca = F.ca.cert};
    Mtls *m = NULL;
    assert_int_equal(mtls_new(NULL, &cfg, &m, NULL), 0);
    expect_cn(m, "chained");
    mtls_close(m, NULL, NULL);
    /* Without the intermediate the server cannot build the chain. */
    MtlsConfig cfg2 = {.cert = leaf.cert, .key = leaf.key, .ca = F.ca.cert};
    assert_int_equal(mtls_new(NULL, &cfg2, &m, NULL), 0);
    char got[256];
    assert_int_not_equal(fetch(m, got, sizeof(got)), CURLE_OK);
    mtls_close(m, NULL, NULL);
    free(chain);
    pair_free(&leaf);
    pair_free(&inter);
}

static void test_no_client_cert_is_refused_by_server(void **state)
{
    (void)state;
    MtlsConfig cfg = {.flag_prefix = "kong-admin-tls-client", .ca = F.ca.cert};
    Mtls *m = NULL;
    assert_int_equal(mtls_new(NULL, &cfg, &m, NULL), 0);
    assert_false(mtls_has_client_cert(m));
    assert_int_equal(mtls_cert_expiry(m), 0);
    assert_null(mtls_cert_sha256(m));
    char got[256];
    assert_int_not_equal(fetch(m, got, sizeof(got)), CURLE_OK);
    mtls_close(m, NULL, NULL);

    /* A certificate from a CA the server does not trust is refused too. */
    MtlsConfig cfg2 = {.cert = F.foreign.cert, .key = F.foreign.key, .ca = F.ca.cert};
    assert_int_equal(mtls_new(NULL, &cfg2, &m, NULL), 0);
    assert_int_not_equal(fetch(m, got, sizeof(got)), CURLE_OK);
    mtls_close(m, NULL, NULL);
}

static void test_server_verification(void **state)
{
    (void)state;
    char got[256];
    Mtls *m = NULL;
    /* Wrong CA: the server is not trusted. */
    MtlsConfig cfg = {.cert = F.client1.cert, .key = F.client1.key, .ca = F.other_ca.cert};
    assert_int_equal(mtls_new(NULL, &cfg, &m, NULL), 0);
    assert_int_equal(fetch(m, got, sizeof(got)), CURLE_PEER_FAILED_VERIFICATION);
    mtls_close(m, NULL, NULL);
    /* No CA: system roots, which do not know our test CA. */
    MtlsConfig cfg_sys = {.cert = F.client1.cert, .key = F.client1.key};
    assert_int_equal(mtls_new(NULL, &cfg_sys, &m, NULL), 0);
    assert_int_equal(fetch(m, got, sizeof(got)), CURLE_PEER_FAILED_VERIFICATION);
    mtls_close(m, NULL, NULL);
    /* skip_verify lets it through (and is logged loudly). */
    cfg.skip_verify = true;
    assert_int_equal(mtls_new(NULL, &cfg, &m, NULL), 0);
    expect_cn(m, "client-1");
    mtls_close(m, NULL, NULL);

    /* Host name: the certificate names 127.0.0.1, localhost and kong-admin.test. */
    MtlsConfig cfg3 = {.cert = F.client1.cert, .key = F.client1.key, .ca = F.ca.cert};
    assert_int_equal(mtls_new(NULL, &cfg3, &m, NULL), 0);
    assert_int_equal(fetch_host(m, "localhost", got, sizeof(got)), CURLE_OK);
    mtls_close(m, NULL, NULL);
    cfg3.server_name = "kong-admin.test";
    assert_int_equal(mtls_new(NULL, &cfg3, &m, NULL), 0);
    assert_int_equal(fetch(m, got, sizeof(got)), CURLE_OK);
    assert_string_equal(got, "client-1");
    mtls_close(m, NULL, NULL);
    cfg3.server_name = "other.test";
    assert_int_equal(mtls_new(NULL, &cfg3, &m, NULL), 0);
    assert_int_equal(fetch(m, got, sizeof(got)), CURLE_PEER_FAILED_VERIFICATION);
    mtls_close(m, NULL, NULL);
}

static void expect_error(uv_loop_t *loop, const MtlsConfig *cfg, const char *needle1,
                         const char *needle2)
{
    Mtls *m = (Mtls *)0x1;
    char *err = NULL;
    int r = mtls_new(loop, cfg, &m, &err);
    assert_true(r < 0);
    assert_ptr_equal(m, (Mtls *)0x1);
    assert_non_null(err);
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, needle1, needle2 ? needle2 : "");
    free(err);
}

static void test_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *good = path_in("good.crt"), *goodkey = path_in("good.key"), *trunc = path_in("t.crt"),
         *empty = path_in("empty.crt"), *missing = path_in("missing.crt");
    write_file(good, F.client1.cert);
    write_file(goodkey, F.client1.key);
    char *half = strndup(F.client1.cert, strlen(F.client1.cert) / 2);
    write_file(trunc, half);
    write_file(empty, "");
    const char *p = "konnect-tls-client";

    MtlsConfig c1 = {.flag_prefix = p, .cert = F.client1.cert};
    expect_error(NULL, &c1, "--konnect-tls-client-cert is set but", "-key");
    MtlsConfig c2 = {.flag_prefix = p, .key_file = goodkey};
    expect_error(&loop, &c2, "--konnect-tls-client-key-file is set but", NULL);
    MtlsConfig c3 = {.flag_prefix = p, .cert = F.client1.cert, .key = F.client2.key};
    expect_error(NULL, &c3, "--konnect-tls-client-key", "does not match");
    MtlsConfig c4 = {.flag_prefix = p, .cert = F.expired.cert, .key = F.expired.key};
    expect_error(NULL, &c4, "--konnect-tls-client-cert", "expired");
    MtlsConfig c5 = {.flag_prefix = p, .cert_file = F.dir, .key_file = goodkey};
    expect_error(&loop, &c5, "--konnect-tls-client-cert-file", "is a directory");
    MtlsConfig c6 = {.flag_prefix = p, .cert_file = missing, .key_file = goodkey};
    expect_error(&loop, &c6, "--konnect-tls-client-cert-file", "No such file");
    MtlsConfig c7 = {.flag_prefix = p, .cert = "garbage", .key = F.client1.key};
    expect_error(NULL, &c7, "--konnect-tls-client-cert", "neither a PEM nor a DER");
    MtlsConfig c8 = {.flag_prefix = p, .cert_file = trunc, .key_file = goodkey};
    expect_error(&loop, &c8, "--konnect-tls-client-cert-file", "truncated");
    MtlsConfig c9 = {.flag_prefix = p, .cert_file = empty, .key_file = goodkey};
    expect_error(&loop, &c9, "--konnect-tls-client-cert-file", "empty");
    MtlsConfig c10 = {
        .flag_prefix = p, .cert = F.client1.cert, .cert_file = good, .key = F.client1.key};
    expect_error(&loop, &c10, "mutually exclusive", NULL);
    MtlsConfig c11 = {.ca_flag = "kong-admin-ca-cert", .ca = "-----BEGIN CERTIFICATE-----\nAAAA"};
    expect_error(NULL, &c11, "--kong-admin-ca-cert", "truncated");
    MtlsConfig c12 = {.ca_flag = "kong-admin-ca-cert", .ca_file = goodkey};
    expect_error(&loop, &c12, "--kong-admin-ca-cert-file", "no CERTIFICATE");
    MtlsConfig c13 = {.flag_prefix = p, .cert_file = good, .key_file = goodkey};
    expect_error(NULL, &c13, "event loop", NULL);
    MtlsConfig c14 = {.flag_prefix = p, .cert = F.client1.cert, .key = F.client1.cert};
    expect_error(NULL, &c14, "--konnect-tls-client-key", "no PRIVATE KEY");
    MtlsConfig c15 = {.flag_prefix = p, .cert = "", .key = F.client1.key};
    expect_error(NULL, &c15, "--konnect-tls-client-cert", "empty");

    /* Not valid yet (clock skew): accepted with a warning, the server decides. */
    Pair future = gen("future", CERTS_USAGE_CLIENT, &F.ca, (long long)time(NULL) + 3600, 10);
    MtlsConfig cf = {.flag_prefix = p, .cert = future.cert, .key = future.key};
    Mtls *mf = NULL;
    char *ferr = NULL;
    assert_int_equal(mtls_new(NULL, &cf, &mf, &ferr), 0);
    assert_null(ferr);
    mtls_close(mf, NULL, NULL);
    pair_free(&future);

    /* Error messages never carry key material. */
    Mtls *m = NULL;
    char *err = NULL;
    MtlsConfig c17 = {.flag_prefix = p, .cert_file = "/dev/null", .key = F.client1.key};
    expect_error(&loop, &c17, "--konnect-tls-client-cert-file /dev/null", "not a regular file");
    MtlsConfig c16 = {.flag_prefix = p, .cert = F.client1.cert, .key = F.client2.key};
    assert_true(mtls_new(NULL, &c16, &m, &err) < 0);
    assert_null(strstr(err, "PRIVATE"));
    assert_null(strstr(err, F.client2.key + 28));
    free(err);

    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(half);
    free(good);
    free(goodkey);
    free(trunc);
    free(empty);
    free(missing);
}

static void test_metrics(void **state)
{
    (void)state;
    Mtls *list[3];
    MtlsConfig a = {
        .flag_prefix = "konnect-tls-client", .cert = F.client1.cert, .key = F.client1.key};
    MtlsConfig b = {
        .flag_prefix = "kong-admin-tls-client", .cert = F.client2.cert, .key = F.client2.key};
    MtlsConfig c = {.flag_prefix = "kong-admin-tls-client\"x", .ca = F.ca.cert};
    assert_int_equal(mtls_new(NULL, &a, &list[0], NULL), 0);
    /* client-2 expires within 30 days: accepted, with a warning. */
    assert_int_equal(mtls_new(NULL, &b, &list[1], NULL), 0);
    assert_int_equal(mtls_new(NULL, &c, &list[2], NULL), 0);
    Buf out = BUF_INIT;
    assert_int_equal(mtls_metrics(list, 3, &out), 0);
    const char *s = out.data;
    const char *help = "# HELP tether_tls_client_cert_expiry_seconds ";
    const char *first = strstr(s, help);
    assert_non_null(first);
    assert_null(strstr(first + 1, help));
    const char *l1 =
        strstr(s, "\ntether_tls_client_cert_expiry_seconds{flag=\"konnect-tls-client-cert\"} ");
    const char *l2 =
        strstr(s, "\ntether_tls_client_cert_expiry_seconds{flag=\"kong-admin-tls-client-cert\"} ");
    assert_non_null(l1);
    assert_non_null(l2);
    long long v1 = strtoll(strchr(l1, '}') + 2, NULL, 10);
    long long v2 = strtoll(strchr(l2, '}') + 2, NULL, 10);
    assert_true(v1 > 360 * 86400LL && v1 <= 365 * 86400LL);
    assert_true(v2 > 19 * 86400LL && v2 <= 20 * 86400LL);
    /* No client certificate: no expiry line; labels are escaped. */
    assert_null(strstr(s, "expiry_seconds{flag=\"kong-admin-tls-client\\\"x"));
    assert_non_null(
        strstr(s, "tether_tls_material_reloads_total{flag=\"kong-admin-tls-client\\\"x\"} 0\n"));
    buf_deinit(&out);
    for (int i = 0; i < 3; i++)
        mtls_close(list[i], NULL, NULL);
}

/* Replace files in place (atomic rename), fs events only: the periodic check is set far off. */
static void test_rotation_files(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *d = path_in("plain");
    assert_int_equal(mkdir(d, 0700), 0);
    char *crt = util_strdup_printf("%s/tls.crt", d), *key = util_strdup_printf("%s/tls.key", d),
         *ca = util_strdup_printf("%s/ca.crt", d);
    write_file(crt, F.client1.cert);
    write_file(key, F.client1.key);
    write_file(ca, F.ca.cert);
    MtlsConfig cfg = {.flag_prefix = "konnect-tls-client",
                      .cert_file = crt,
                      .key_file = key,
                      .ca_file = ca,
                      .ca_flag = "konnect-ca-cert",
                      .check_interval_ms = 3600000};
    Mtls *m = NULL;
    char *err = NULL;
    assert_int_equal(mtls_new(&loop, &cfg, &m, &err), 0);
    assert_int_equal(mtls_generation(m), 1);
    expect_cn(m, "client-1");

    /* A transfer configured before the swap keeps the old material; new ones get the new. */
    Buf body = BUF_INIT;
    CURL *old = prepare(m, "127.0.0.1", &body);

    write_file(key, F.client2.key);
    write_file(crt, F.client2.cert);
    run_until(&loop, m, gen_at_least, 2);
    expect_cn(m, "client-2");
    char got[256];
    assert_int_equal(perform(old, &body, got, sizeof(got)), CURLE_OK);
    assert_string_equal(got, "client-1");

    /* Bad replacements are rejected and the previous material stays. */
    unsigned gen = mtls_generation(m);
    unsigned long long rej = metric(m, "tether_tls_material_reload_failures_total");
    write_file(crt, "garbage\n");
    run_until(&loop, m, rejects_at_least, rej + 1);
    assert_int_equal(mtls_generation(m), gen);
    expect_cn(m, "client-2");

    write_file(crt, F.client3.cert); /* key is still client-2's: mismatch */
    run_until(&loop, m, rejects_at_least, rej + 2);
    expect_cn(m, "client-2");

    char *half = strndup(F.client3.key, strlen(F.client3.key) / 2);
    write_file(key, half); /* truncated key */
    run_until(&loop, m, rejects_at_least, rej + 3);
    free(half);

    write_file(key, F.expired.key);
    write_file(crt, F.expired.cert);
    run_until(&loop, m, rejects_at_least, rej + 4);
    assert_int_equal(mtls_generation(m), gen);
    expect_cn(m, "client-2");

    /* Replacing the whole file by a directory is an error too. */
    assert_int_equal(unlink(crt), 0);
    assert_int_equal(mkdir(crt, 0700), 0);
    run_until(&loop, m, rejects_at_least, rej + 5);
    assert_int_equal(rmdir(crt), 0);
    expect_cn(m, "client-2");

    /* Good material again: swapped in. */
    write_file(crt, F.client1.cert);
    write_file(key, F.client1.key);
    run_until(&loop, m, gen_at_least, gen + 1);
    expect_cn(m, "client-1");
    assert_true(metric(m, "tether_tls_material_reloads_total") >= 2);

    close_and_check(&loop, m);
    free(crt);
    free(key);
    free(ca);
    free(d);
}

/* make_k8s_version() - lay out a Secret volume version folder as the kubelet does. */
static char *make_k8s_version(const char *vol, const char *name, const Pair *p)
{
    char *v = util_strdup_printf("%s/%s", vol, name);
    assert_int_equal(mkdir(v, 0755), 0);
    char *c = util_strdup_printf("%s/tls.crt", v), *k = util_strdup_printf("%s/tls.key", v);
    write_file(c, p->cert);
    write_file(k, p->key);
    free(c);
    free(k);
    return v;
}

static void k8s_swap(const char *vol, const char *version)
{
    /* The kubelet's atomic writer: new ..data_tmp symlink, renamed over ..data. */
    char *tmp = util_strdup_printf("%s/..data_tmp", vol),
         *data = util_strdup_printf("%s/..data", vol);
    assert_int_equal(symlink(version, tmp), 0);
    assert_int_equal(rename(tmp, data), 0);
    free(tmp);
    free(data);
}

static void rm_version(const char *vol, const char *version)
{
    char *v = util_strdup_printf("%s/%s", vol, version);
    assert_int_equal(nftw(v, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(v);
}

static void test_rotation_k8s_symlink(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *vol = path_in("secret-volume");
    assert_int_equal(mkdir(vol, 0755), 0);
    free(make_k8s_version(vol, "..2026_01_01_00_00_00.1", &F.client1));
    k8s_swap(vol, "..2026_01_01_00_00_00.1");
    char *crt = util_strdup_printf("%s/tls.crt", vol), *key = util_strdup_printf("%s/tls.key", vol);
    assert_int_equal(symlink("..data/tls.crt", crt), 0);
    assert_int_equal(symlink("..data/tls.key", key), 0);

    MtlsConfig cfg = {.flag_prefix = "konnect-tls-client",
                      .cert_file = crt,
                      .key_file = key,
                      .ca = F.ca.cert,
                      .check_interval_ms = 3600000};
    Mtls *m = NULL;
    assert_int_equal(mtls_new(&loop, &cfg, &m, NULL), 0);
    expect_cn(m, "client-1");

    free(make_k8s_version(vol, "..2026_01_01_00_00_00.2", &F.client2));
    k8s_swap(vol, "..2026_01_01_00_00_00.2");
    rm_version(vol, "..2026_01_01_00_00_00.1");
    run_until(&loop, m, gen_at_least, 2);
    expect_cn(m, "client-2");

    /* A bad Secret (mismatched pair) is swapped in by the kubelet but not by us. */
    Pair bad = {F.client3.cert, F.client1.key};
    unsigned long long rej = metric(m, "tether_tls_material_reload_failures_total");
    free(make_k8s_version(vol, "..2026_01_01_00_00_00.3", &bad));
    k8s_swap(vol, "..2026_01_01_00_00_00.3");
    rm_version(vol, "..2026_01_01_00_00_00.2");
    run_until(&loop, m, rejects_at_least, rej + 1);
    assert_int_equal(mtls_generation(m), 2);
    expect_cn(m, "client-2");

    free(make_k8s_version(vol, "..2026_01_01_00_00_00.4", &F.client3));
    k8s_swap(vol, "..2026_01_01_00_00_00.4");
    rm_version(vol, "..2026_01_01_00_00_00.3");
    run_until(&loop, m, gen_at_least, 3);
    expect_cn(m, "client-3");

    close_and_check(&loop, m);
    free(crt);
    free(key);
    free(vol);
}

/* Files reached through a symlink into an unwatched folder: only the periodic check sees it. */
static void test_rotation_periodic(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *real = path_in("real"), *link = path_in("linked");
    assert_int_equal(mkdir(real, 0700), 0);
    assert_int_equal(mkdir(link, 0700), 0);
    char *rc = util_strdup_printf("%s/c.pem", real), *rk = util_strdup_printf("%s/k.pem", real);
    char *lc = util_strdup_printf("%s/c.pem", link), *lk = util_strdup_printf("%s/k.pem", link);
    write_file(rc, F.client1.cert);
    write_file(rk, F.client1.key);
    assert_int_equal(symlink(rc, lc), 0);
    assert_int_equal(symlink(rk, lk), 0);
    MtlsConfig cfg = {.cert_file = lc, .key_file = lk, .ca = F.ca.cert, .check_interval_ms = 50};
    Mtls *m = NULL;
    assert_int_equal(mtls_new(&loop, &cfg, &m, NULL), 0);
    expect_cn(m, "client-1");
    mtls_check(m); /* unchanged: no new generation */
    assert_int_equal(mtls_generation(m), 1);
    write_file(rk, F.client2.key);
    write_file(rc, F.client2.cert);
    run_until(&loop, m, gen_at_least, 2);
    expect_cn(m, "client-2");
    close_and_check(&loop, m);
    free(real);
    free(link);
    free(rc);
    free(rk);
    free(lc);
    free(lk);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    log_set_level(log_parse_level(getenv("TETHER_TEST_LOG") ? getenv("TETHER_TEST_LOG") : "error"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_client_chain),
        cmocka_unit_test(test_no_client_cert_is_refused_by_server),
        cmocka_unit_test(test_server_verification),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_rotation_files),
        cmocka_unit_test(test_rotation_k8s_symlink),
        cmocka_unit_test(test_rotation_periodic),
    };
    int r = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return r;
}
