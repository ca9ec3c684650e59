/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-certs: timings of certs/ and mtls/ (printed, not asserted): key and certificate
 * generation per key type, parsing and validation of a PEM pair, mtls_new() from files (what a
 * rotation costs) and mtls_apply() on an easy handle (what each request pays).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certs.h"
#include "mtls.h"
#include "util.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void gen_bench(const char *name, CertsKeyType t, int n)
{
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        CertsSpec spec = {.key_type = t};
        char *c = NULL, *k = NULL;
        if (certs_generate(&spec, &c, &k, NULL) < 0)
            abort();
        free(c);
        certs_secret_free(k);
    }
    printf("generate %-11s %10.1f us/op (%d ops)\n", name, (now_us() - t0) / n, n);
}

int main(void)
{
    gen_bench("ecdsa-p256", CERTS_KEY_ECDSA_P256, 200);
    gen_bench("rsa-2048", CERTS_KEY_RSA_2048, 10);
    gen_bench("rsa-4096", CERTS_KEY_RSA_4096, 1);

    CertsSpec ca_spec = {.usage = CERTS_USAGE_CA};
    char *ca = NULL, *cak = NULL, *c = NULL, *k = NULL;
    if (certs_generate(&ca_spec, &ca, &cak, NULL) < 0)
        abort();
    CertsSpec spec = {.ca_cert_pem = ca, .ca_key_pem = cak};
    if (certs_generate(&spec, &c, &k, NULL) < 0)
        abort();

    int n = 2000;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        STACK_OF(X509) *sk = NULL;
        EVP_PKEY *key = NULL;
        if (certs_load_chain(c, strlen(c), &sk, NULL) < 0 ||
            certs_load_key(k, strlen(k), &key, NULL) < 0 ||
            !certs_key_matches(sk_X509_value(sk, 0), key))
            abort();
        sk_X509_pop_free(sk, X509_free);
        EVP_PKEY_free(key);
    }
    printf("parse+match pair     %10.1f us/op (%d ops)\n", (now_us() - t0) / n, n);

    char dir[] = "/tmp/tether-bench-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char *cf = util_strdup_printf("%s/tls.crt", dir), *kf = util_strdup_printf("%s/tls.key", dir),
         *af = util_strdup_printf("%s/ca.crt", dir);
    if (certs_write_pair(cf, c, kf, k) < 0 || util_write_file_atomic(af, ca, strlen(ca), 0644) < 0)
        abort();
    uv_loop_t loop;
    uv_loop_init(&loop);
    MtlsConfig cfg = {.cert_file = cf, .key_file = kf, .ca_file = af};
    n = 500;
    t0 = now_us();
    for (int i = 0; i < n; i++) {
        Mtls *m = NULL;
        if (mtls_new(&loop, &cfg, &m, NULL) < 0)
            abort();
        mtls_close(m, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    printf("mtls_new from files  %10.1f us/op (%d ops, load+validate+watch+close)\n",
           (now_us() - t0) / n, n);

    Mtls *m = NULL;
    if (mtls_new(&loop, &cfg, &m, NULL) < 0)
        abort();
    CURL *e = curl_easy_init();
    n = 20000;
    t0 = now_us();
    for (int i = 0; i < n; i++)
        if (mtls_apply(m, e) < 0)
            abort();
    printf("mtls_apply           %10.2f us/op (%d ops)\n", (now_us() - t0) / n, n);
    curl_easy_cleanup(e);
    mtls_close(m, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    unlink(cf);
    unlink(kf);
    unlink(af);
    rmdir(dir);
    free(cf);
    free(kf);
    free(af);
    free(ca);
    free(c);
    certs_secret_free(cak);
    certs_secret_free(k);
    return 0;
}
