/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mtls-get: a test client that loads TLS material through mtls_new() and fetches each URL with
 * libcurl configured by mtls_apply(), printing the bodies. Exit 0 all fetched, 1 a request
 * failed, 2 the material was refused (the error goes to stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtls.h"
#include "util.h"

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    Buf *b = ud;
    if (b->len + sz * n > (1 << 20))
        return 0;
    return buf_append(b, p, sz * n) < 0 ? 0 : sz * n;
}

int main(int argc, char **argv)
{
    MtlsConfig cfg = {.flag_prefix = "tls-client", .ca_flag = "ca-cert"};
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--skip-verify")) {
            cfg.skip_verify = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mtls-get: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--prefix"))
            cfg.flag_prefix = v;
        else if (!strcmp(a, "--cert-file"))
            cfg.cert_file = v;
        else if (!strcmp(a, "--key-file"))
            cfg.key_file = v;
        else if (!strcmp(a, "--ca-file"))
            cfg.ca_file = v;
        else if (!strcmp(a, "--server-name"))
            cfg.server_name = v;
        else {
            fprintf(stderr, "mtls-get: unknown flag %s\n", a);
            return 2;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_t loop;
    uv_loop_init(&loop);
    Mtls *m = NULL;
    char *err = NULL;
    int rc = 0;
    if (mtls_new(&loop, &cfg, &m, &err) < 0) {
        fprintf(stderr, "mtls-get: %s\n", err ? err : "failed");
        free(err);
        rc = 2;
        goto out;
    }
    for (; i < argc; i++) {
        Buf body = BUF_INIT;
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, argv[i]);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        CURLcode c = mtls_apply(m, e) < 0 ? CURLE_FAILED_INIT : curl_easy_perform(e);
        if (c != CURLE_OK) {
            fprintf(stderr, "mtls-get: %s: %s\n", argv[i], curl_easy_strerror(c));
            rc = 1;
        } else if (body.len) {
            fwrite(body.data, 1, body.len, stdout);
        }
        curl_easy_cleanup(e);
        buf_deinit(&body);
    }
    mtls_close(m, NULL, NULL);
out:
    uv_run(&loop, UV_RUN_DEFAULT);
    int lc = uv_loop_close(&loop);
    curl_global_cleanup();
    if (lc != 0) {
        fprintf(stderr, "mtls-get: loop did not close clean\n");
        return 3;
    }
    return rc;
}
