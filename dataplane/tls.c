/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS material for the Admin API. A small seam: with the mtls/ module (validation, rotation
 * without restart) when it is built, else PEM held in memory and handed to libcurl as blobs.
 * The TLS server name is not handled here: the sink puts it in the request URL and sends the
 * connection to the real address with CURLOPT_CONNECT_TO, so libcurl's own checks apply.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "dp_internal.h"
#include "log.h"
#include "util.h"

#ifdef DP_USE_MTLS
#include "mtls.h"

struct DpTls {
    Mtls *m;
    void (*done)(void *ud);
    void *ud;
};

static const char *opt(const char *s)
{
    return s && *s ? s : NULL;
}

int dp__tls_new(uv_loop_t *loop, const DpConfig *cfg, DpTls **ret, char **ret_err)
{
    DpTls *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    MtlsConfig mc = {
        .flag_prefix = "kong-admin-tls-client",
        .cert = opt(cfg->client_cert),
        .cert_file = opt(cfg->client_cert_file),
        .key = opt(cfg->client_key),
        .key_file = opt(cfg->client_key_file),
        .ca = opt(cfg->ca_cert),
        .ca_file = opt(cfg->ca_cert_file),
        .ca_flag = "kong-admin-ca-cert",
        .skip_verify = cfg->tls_skip_verify,
    };
    int r = mtls_new(loop, &mc, &t->m, ret_err);
    if (r < 0) {
        free(t);
        return r;
    }
    *ret = t;
    return 0;
}

int dp__tls_apply(DpTls *t, CURL *easy)
{
    return mtls_apply(t->m, easy);
}

static void on_mtls_closed(void *ud)
{
    DpTls *t = ud;
    void (*done)(void *) = t->done;
    void *dud = t->ud;
    free(t);
    if (done)
        done(dud);
}

void dp__tls_close(DpTls *t, void (*done)(void *ud), void *ud)
{
    if (!t) {
        if (done)
            done(ud);
        return;
    }
    t->done = done;
    t->ud = ud;
    mtls_close(t->m, on_mtls_closed, t);
}

#else

#define MAX_PEM (1024 * 1024)

struct DpTls {
    char *ca, *cert, *key;
    size_t ca_len, cert_len, key_len;
    bool skip_verify;
};

static int load(const char *value, const char *file, const char *flag, char **ret, size_t *ret_len,
                char **ret_err)
{
    if (value && *value && file && *file) {
        *ret_err = util_strdup_printf("--%s and --%s-file are mutually exclusive", flag, flag);
        return -EINVAL;
    }
    if (value && *value) {
        *ret = strdup(value);
        *ret_len = strlen(value);
        return *ret ? 0 : -ENOMEM;
    }
    if (file && *file) {
        int r = util_read_file(file, MAX_PEM, ret, ret_len);
        if (r < 0)
            *ret_err = util_strdup_printf("--%s-file %s: %s", flag, file, strerror(-r));
        return r;
    }
    return 0;
}

static DpTls *tls_free(DpTls *t);

int dp__tls_new(uv_loop_t *loop, const DpConfig *cfg, DpTls **ret, char **ret_err)
{
    DpTls *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    int r = load(cfg->ca_cert, cfg->ca_cert_file, "kong-admin-ca-cert", &t->ca, &t->ca_len, ret_err);
    if (r >= 0)
        r = load(cfg->client_cert, cfg->client_cert_file, "kong-admin-tls-client-cert", &t->cert,
                 &t->cert_len, ret_err);
    if (r >= 0)
        r = load(cfg->client_key, cfg->client_key_file, "kong-admin-tls-client-key", &t->key,
                 &t->key_len, ret_err);
    if (r >= 0 && (!t->cert) != (!t->key)) {
        *ret_err = strdup("--kong-admin-tls-client-cert and --kong-admin-tls-client-key must be "
                          "given together");
        r = -EINVAL;
    }
    if (r >= 0 && t->ca && !strstr(t->ca, "-----BEGIN CERTIFICATE-----")) {
        *ret_err = strdup("--kong-admin-ca-cert: no PEM certificate found");
        r = -EINVAL;
    }
    if (r < 0) {
        tls_free(t);
        return r;
    }
    t->skip_verify = cfg->tls_skip_verify;
    *ret = t;
    return 0;
}

int dp__tls_apply(DpTls *t, CURL *easy)
{
    struct curl_blob blob;
    curl_easy_setopt(easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (t->ca) {
        blob = (struct curl_blob){t->ca, t->ca_len, CURL_BLOB_COPY};
        if (curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob) != CURLE_OK)
            return -EIO;
    }
    if (t->cert) {
        blob = (struct curl_blob){t->cert, t->cert_len, CURL_BLOB_COPY};
        if (curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &blob) != CURLE_OK)
            return -EIO;
        curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
        blob = (struct curl_blob){t->key, t->key_len, CURL_BLOB_COPY};
        if (curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &blob) != CURLE_OK)
            return -EIO;
        curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
    }
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, t->skip_verify ? 0L : 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, t->skip_verify ? 0L : 2L);
    return 0;
}

static DpTls *tls_free(DpTls *t)
{
    if (!t)
        return NULL;
    free(t->ca);
    if (t->key)
        memset(t->key, 0, t->key_len);
    free(t->cert);
    free(t->key);
    free(t);
    return NULL;
}

void dp__tls_close(DpTls *t, void (*done)(void *ud), void *ud)
{
    tls_free(t);
    if (done)
        done(ud);
}
#endif
