/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for certs/: generation, parsing, description and every kind of bad input. */
#include <errno.h>
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
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certs.h"

typedef struct Pair {
    char *cert;
    char *key;
} Pair;

static void pair_free(Pair *p)
{
    free(p->cert);
    certs_secret_free(p->key);
    p->cert = p->key = NULL;
}

static Pair gen(const CertsSpec *spec)
{
    Pair p = {0};
    char *err = NULL;
    int r = certs_generate(spec, &p.cert, &p.key, &err);
    if (r < 0)
        fail_msg("certs_generate: %s", err ? err : "?");
    free(err);
    return p;
}

static X509 *first_cert(const char *pem)
{
    STACK_OF(X509) *sk = NULL;
    char *err = NULL;
    assert_int_equal(certs_load_chain(pem, strlen(pem), &sk, &err), 0);
    assert_null(err);
    X509 *x = sk_X509_shift(sk);
    sk_X509_pop_free(sk, X509_free);
    return x;
}

static EVP_PKEY *load_key(const char *pem)
{
    EVP_PKEY *k = NULL;
    char *err = NULL;
    assert_int_equal(certs_load_key(pem, strlen(pem), &k, &err), 0);
    assert_null(err);
    return k;
}

/* expect_chain_error() - certs_load_chain(@data) fails with a message containing @needle. */
static void expect_chain_error(const void *data, size_t len, const char *needle)
{
    STACK_OF(X509) *sk = NULL;
    char *err = NULL;
    assert_true(certs_load_chain(data, len, &sk, &err) < 0);
    assert_null(sk);
    assert_non_null(err);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    free(err);
}

static void expect_key_error(const void *data, size_t len, const char *needle)
{
    EVP_PKEY *k = NULL;
    char *err = NULL;
    assert_true(certs_load_key(data, len, &k, &err) < 0);
    assert_null(k);
    assert_non_null(err);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    free(err);
}

static void test_self_signed_ecdsa(void **state)
{
    (void)state;
    CertsSpec spec = {.cn = "kongdp", .days = 30};
    Pair p = gen(&spec);
    assert_non_null(strstr(p.cert, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(p.key, "-----BEGIN PRIVATE KEY-----"));
    X509 *x = first_cert(p.cert);
    EVP_PKEY *k = load_key(p.key);
    assert_true(certs_key_matches(x, k));

    CertsInfo info;
    assert_int_equal(certs_info_init(&info, x), 0);
    assert_string_equal(info.subject, "CN=kongdp");
    assert_string_equal(info.issuer, "CN=kongdp");
    assert_string_equal(info.key_type, "EC");
    assert_string_equal(info.curve, "prime256v1");
    assert_int_equal(info.key_bits, 256);
    assert_true(info.self_signed);
    assert_true(info.is_ca); /* pinnable as its own root, like openssl req -x509 */
    assert_int_equal(strlen(info.sha256), 95);
    long long now = (long long)time(NULL);
    assert_true(info.not_before <= now);
    assert_true(info.not_after > now + 29 * 86400 && info.not_after <= now + 30 * 86400);
    certs_info_deinit(&info);

    /* It verifies against itself as a trust anchor, for client authentication. */
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_true(X509_STORE_add_cert(st, x));
    assert_true(X509_STORE_CTX_init(ctx, st, x, NULL));
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    assert_int_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);

    EVP_PKEY_free(k);
    X509_free(x);
    pair_free(&p);
}

static void test_ca_signed_rsa_with_sans(void **state)
{
    (void)state;
    CertsSpec ca_spec = {.cn = "Test CA", .usage = CERTS_USAGE_CA};
    Pair ca = gen(&ca_spec);
    const char *sans[] = {"kong-admin.kong.svc", "127.0.0.1", "::1"};
    CertsSpec spec = {.cn = "client",
                      .key_type = CERTS_KEY_RSA_2048,
                      .usage = CERTS_USAGE_SERVER,
                      .sans = sans,
                      .n_sans = 3,
                      .ca_cert_pem = ca.cert,
                      .ca_key_pem = ca.key};
    Pair p = gen(&spec);
    X509 *x = first_cert(p.cert), *cax = first_cert(ca.cert);
    EVP_PKEY *k = load_key(p.key), *cak = load_key(ca.key);
    assert_true(certs_key_matches(x, k));
    assert_false(certs_key_matches(x, cak));
    assert_false(certs_key_matches(cax, k));

    CertsInfo info;
    assert_int_equal(certs_info_init(&info, x), 0);
    assert_string_equal(info.subject, "CN=client");
    assert_string_equal(info.issuer, "CN=Test CA");
    assert_string_equal(info.key_type, "RSA");
    assert_int_equal(info.key_bits, 2048);
    assert_false(info.is_ca);
    assert_false(info.self_signed);
    assert_int_equal(info.n_sans, 3);
    assert_string_equal(info.sans[0], "DNS:kong-admin.kong.svc");
    assert_string_equal(info.sans[1], "IP:127.0.0.1");
    assert_string_equal(info.sans[2], "IP:::1");
    certs_info_deinit(&info);

    int purposes[] = {X509_PURPOSE_SSL_CLIENT, X509_PURPOSE_SSL_SERVER};
    for (size_t i = 0; i < 2; i++) {
        X509_STORE *st = X509_STORE_new();
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        assert_true(X509_STORE_add_cert(st, cax));
        assert_true(X509_STORE_CTX_init(ctx, st, x, NULL));
        X509_STORE_CTX_set_purpose(ctx, purposes[i]);
        X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), "kong-admin.kong.svc", 0);
        assert_int_equal(X509_verify_cert(ctx), 1);
        X509_STORE_CTX_free(ctx);
        X509_STORE_free(st);
    }
    EVP_PKEY_free(k);
    EVP_PKEY_free(cak);
    X509_free(x);
    X509_free(cax);
    pair_free(&p);
    pair_free(&ca);
}

static void test_client_cert_is_not_server(void **state)
{
    (void)state;
    CertsSpec ca_spec = {.usage = CERTS_USAGE_CA};
    Pair ca = gen(&ca_spec);
    CertsSpec spec = {.cn = "c", .ca_cert_pem = ca.cert, .ca_key_pem = ca.key};
    Pair p = gen(&spec);
    X509 *x = first_cert(p.cert), *cax = first_cert(ca.cert);
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_true(X509_STORE_add_cert(st, cax));
    assert_true(X509_STORE_CTX_init(ctx, st, x, NULL));
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    assert_int_not_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    X509_free(x);
    X509_free(cax);
    pair_free(&p);
    pair_free(&ca);
}

static void test_key_types_and_defaults(void **state)
{
    (void)state;
    CertsKeyType t;
    assert_int_equal(certs_parse_key_type("ecdsa-p256", &t), 0);
    assert_int_equal(t, CERTS_KEY_ECDSA_P256);
    assert_int_equal(certs_parse_key_type("rsa-4096", &t), 0);
    assert_int_equal(t, CERTS_KEY_RSA_4096);
    assert_int_equal(certs_parse_key_type("rsa-1024", &t), -EINVAL);
    assert_int_equal(certs_parse_key_type(NULL, &t), -EINVAL);
    CertsUsage u;
    assert_int_equal(certs_parse_usage("server", &u), 0);
    assert_int_equal(u, CERTS_USAGE_SERVER);
    assert_int_equal(certs_parse_usage("admin", &u), -EINVAL);

    /* RSA-4096 generation itself is covered by tests/certs/cli.py (slow under valgrind). */
    CertsSpec spec = {0};
    Pair p = gen(&spec);
    X509 *x = first_cert(p.cert);
    CertsInfo info;
    assert_int_equal(certs_info_init(&info, x), 0);
    assert_string_equal(info.subject, "CN=tether");
    assert_int_equal(info.n_sans, 0);
    certs_info_deinit(&info);
    X509_free(x);
    pair_free(&p);
}

static void test_expired_generation(void **state)
{
    (void)state;
    long long now = (long long)time(NULL);
    CertsSpec spec = {.not_before = now - 10 * 86400, .days = 1};
    Pair p = gen(&spec);
    X509 *x = first_cert(p.cert);
    assert_true(certs_not_after(x) < now);
    assert_int_equal(certs_not_before(x), now - 10 * 86400);
    X509_free(x);
    pair_free(&p);
}

static void test_generate_errors(void **state)
{
    (void)state;
    char *cert = NULL, *key = NULL, *err = NULL;
    const char *bad_sans[] = {"ok.example", "bad name"};
    CertsSpec spec = {.sans = bad_sans, .n_sans = 2};
    assert_int_equal(certs_generate(&spec, &cert, &key, &err), -EINVAL);
    assert_non_null(strstr(err, "bad name"));
    assert_null(cert);
    assert_null(key);
    free(err);
    err = NULL;

    char longcn[80];
    memset(longcn, 'a', sizeof(longcn) - 1);
    longcn[79] = 0;
    CertsSpec s2 = {.cn = longcn};
    assert_int_equal(certs_generate(&s2, &cert, &key, &err), -EINVAL);
    assert_non_null(strstr(err, "--cn"));
    free(err);
    err = NULL;

    CertsSpec s3 = {.days = -1};
    assert_int_equal(certs_generate(&s3, &cert, &key, &err), -EINVAL);
    free(err);
    err = NULL;

    /* A CA key that does not match, a CA certificate that is no CA, and garbage. */
    CertsSpec ca_spec = {.usage = CERTS_USAGE_CA};
    Pair ca = gen(&ca_spec), other = gen(&ca_spec);
    CertsSpec s4 = {.ca_cert_pem = ca.cert, .ca_key_pem = other.key};
    assert_int_equal(certs_generate(&s4, &cert, &key, &err), -EINVAL);
    assert_non_null(strstr(err, "does not match"));
    free(err);
    err = NULL;

    CertsSpec leaf_spec = {.ca_cert_pem = ca.cert, .ca_key_pem = ca.key};
    Pair leaf = gen(&leaf_spec);
    CertsSpec s5 = {.ca_cert_pem = leaf.cert, .ca_key_pem = leaf.key};
    assert_int_equal(certs_generate(&s5, &cert, &key, &err), -EINVAL);
    assert_non_null(strstr(err, "not a CA"));
    free(err);
    err = NULL;

    CertsSpec s6 = {.ca_cert_pem = "garbage", .ca_key_pem = ca.key};
    assert_int_equal(certs_generate(&s6, &cert, &key, &err), -EINVAL);
    assert_non_null(strstr(err, "--ca-cert"));
    free(err);
    err = NULL;

    CertsSpec s7 = {.ca_cert_pem = ca.cert};
    assert_int_equal(certs_generate(&s7, &cert, &key, &err), -EINVAL);
    free(err);
    pair_free(&ca);
    pair_free(&other);
    pair_free(&leaf);
}

static void test_chain_and_der(void **state)
{
    (void)state;
    CertsSpec ca_spec = {.cn = "root", .usage = CERTS_USAGE_CA};
    Pair ca = gen(&ca_spec);
    CertsSpec spec = {.cn = "leaf", .ca_cert_pem = ca.cert, .ca_key_pem = ca.key};
    Pair p = gen(&spec);

    /* A bundle: leaf, CA, and a key block in the middle that is skipped. */
    size_t n = strlen(p.cert) + strlen(p.key) + strlen(ca.cert) + 1;
    char *bundle = malloc(n);
    snprintf(bundle, n, "%s%s%s", p.cert, p.key, ca.cert);
    STACK_OF(X509) *sk = NULL;
    char *err = NULL;
    assert_int_equal(certs_load_chain(bundle, strlen(bundle), &sk, &err), 0);
    assert_int_equal(sk_X509_num(sk), 2);
    sk_X509_pop_free(sk, X509_free);
    /* The key is found after a certificate in the same file. */
    EVP_PKEY *k = load_key(bundle);
    X509 *x = first_cert(p.cert);
    assert_true(certs_key_matches(x, k));
    EVP_PKEY_free(k);
    free(bundle);

    /* DER certificate and DER key. */
    unsigned char *der = NULL;
    int dlen = i2d_X509(x, &der);
    assert_true(dlen > 0);
    assert_int_equal(certs_load_chain(der, (size_t)dlen, &sk, &err), 0);
    assert_int_equal(sk_X509_num(sk), 1);
    assert_int_equal(X509_cmp(sk_X509_value(sk, 0), x), 0);
    sk_X509_pop_free(sk, X509_free);
    /* DER with trailing bytes is refused. */
    unsigned char *der2 = malloc((size_t)dlen + 3);
    memcpy(der2, der, (size_t)dlen);
    memcpy(der2 + dlen, "xyz", 3);
    expect_chain_error(der2, (size_t)dlen + 3, "neither");
    free(der2);
    OPENSSL_free(der);

    EVP_PKEY *pk = load_key(p.key);
    unsigned char *kder = NULL;
    int klen = i2d_PrivateKey(pk, &kder);
    assert_true(klen > 0);
    EVP_PKEY *k2 = NULL;
    assert_int_equal(certs_load_key(kder, (size_t)klen, &k2, &err), 0);
    assert_true(certs_key_matches(x, k2));
    EVP_PKEY_free(k2);
    OPENSSL_clear_free(kder, (size_t)klen);
    EVP_PKEY_free(pk);
    X509_free(x);
    pair_free(&p);
    pair_free(&ca);
}

static void test_bad_certificates(void **state)
{
    (void)state;
    CertsSpec spec = {0};
    Pair p = gen(&spec);
    size_t n = strlen(p.cert);

    expect_chain_error("", 0, "empty");
    expect_chain_error(NULL, 0, "empty");
    expect_chain_error("hello world\n", 12, "neither a PEM nor a DER");
    expect_chain_error("\x30\x82\x01\x00garbage", 11, "neither a PEM nor a DER");
    /* Truncated in the middle of the base64 and right after the BEGIN line. */
    expect_chain_error(p.cert, n / 2, "truncated or corrupt");
    expect_chain_error(p.cert, 28, "truncated or corrupt");
    /* Only a key. */
    expect_chain_error(p.key, strlen(p.key), "no CERTIFICATE");
    /* Valid PEM armour, garbage inside. */
    const char *junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    expect_chain_error(junk, strlen(junk), "not valid DER");
    /* A corrupted base64 character. */
    char *bad = strdup(p.cert);
    bad[40] = '*';
    expect_chain_error(bad, n, "truncated or corrupt");
    free(bad);
    /* A good certificate followed by a truncated one. */
    char *two = malloc(2 * n + 1);
    memcpy(two, p.cert, n);
    memcpy(two + n, p.cert, n);
    expect_chain_error(two, n + n / 2, "PEM block 2");
    free(two);
    pair_free(&p);
}

static void test_bad_keys(void **state)
{
    (void)state;
    CertsSpec spec = {0};
    Pair p = gen(&spec);
    expect_key_error("", 0, "empty");
    expect_key_error("garbage", 7, "neither a PEM nor a DER");
    expect_key_error(p.cert, strlen(p.cert), "no PRIVATE KEY");
    expect_key_error(p.key, strlen(p.key) / 2, "truncated or corrupt");

    EVP_PKEY *k = load_key(p.key);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_true(
        PEM_write_bio_PKCS8PrivateKey(bio, k, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"secret"));
    char *enc;
    long elen = BIO_get_mem_data(bio, &enc);
    expect_key_error(enc, (size_t)elen, "encrypted");
    BIO_free(bio);
    EVP_PKEY_free(k);
    pair_free(&p);
}

static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tether-certs-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_files(void **state)
{
    (void)state;
    CertsSpec spec = {0};
    Pair p = gen(&spec);
    char cpath[300], kpath[300];
    snprintf(cpath, sizeof(cpath), "%s/tls.crt", tmpdir);
    snprintf(kpath, sizeof(kpath), "%s/tls.key", tmpdir);
    assert_int_equal(certs_write_pair(cpath, p.cert, kpath, p.key), 0);
    struct stat st;
    assert_int_equal(stat(kpath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(cpath, &st), 0);
    assert_int_equal(st.st_mode & 0077, st.st_mode & 0077 & 044);

    char *data = NULL;
    size_t len = 0;
    assert_int_equal(certs_read_file(kpath, true, &data, &len), 0);
    assert_int_equal(len, strlen(p.key));
    assert_memory_equal(data, p.key, len);
    certs_secret_free(data);
    assert_int_equal(certs_read_file(cpath, false, &data, &len), 0);
    assert_string_equal(data, p.cert);
    free(data);

    assert_int_equal(certs_read_file(tmpdir, false, &data, &len), -EISDIR);
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
    assert_int_equal(certs_read_file(missing, true, &data, &len), -ENOENT);
    assert_int_equal(certs_read_file("/dev/null", false, &data, &len), -EINVAL);
    pair_free(&p);
}

static void test_secret_memory(void **state)
{
    (void)state;
    char *s = certs_secret_dup("abc", 3);
    assert_string_equal(s, "abc");
    certs_secret_free(s);
    certs_secret_free(NULL);
    unsigned char *big = certs_secret_alloc(100000);
    assert_non_null(big);
    for (size_t i = 0; i < 100000; i++)
        assert_int_equal(big[i], 0);
    memset(big, 0xaa, 100000);
    certs_secret_free(big);

    char t[32];
    certs_format_time(0, t);
    assert_string_equal(t, "1970-01-01T00:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_signed_ecdsa),
        cmocka_unit_test(test_ca_signed_rsa_with_sans),
        cmocka_unit_test(test_client_cert_is_not_server),
        cmocka_unit_test(test_key_types_and_defaults),
        cmocka_unit_test(test_expired_generation),
        cmocka_unit_test(test_generate_errors),
        cmocka_unit_test(test_chain_and_der),
        cmocka_unit_test(test_bad_certificates),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test_setup_teardown(test_files, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_secret_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
