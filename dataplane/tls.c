/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS material for the Admin API through the mtls/ module (validation, in-memory blobs for
 * libcurl, rotation without restart), behind a small seam so the sink knows nothing of files.
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

Mtls *dp__tls_mtls(DpTls *t)
{
    return t ? t->m : NULL;
}
