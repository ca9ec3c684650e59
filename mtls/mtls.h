/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * mtls: TLS material for outbound connections (Konnect always, Kong's Admin API often).
 * Loads a client certificate chain, its key and a CA bundle from PEM given as a value, a file
 * or an environment variable, validates them, hands them to libcurl in memory, and watches the
 * files so that rotated material is swapped in atomically (new connections use it; a bad new
 * file keeps the old material). Loop thread only.
 */
#include <curl/curl.h>
#include <stdbool.h>
#include <uv.h>

#include "util.h"

typedef struct Mtls Mtls;

typedef struct MtlsConfig {
    /* For messages and metrics, e.g. "konnect-tls-client" or "kong-admin-tls-client". */
    const char *flag_prefix;
    const char *cert;      /* PEM value (--X-cert) */
    const char *cert_file; /* path (--X-cert-file) */
    const char *key;
    const char *key_file;
    const char *ca; /* PEM bundle for verifying the server; NULL: system roots */
    const char *ca_file;
    const char *ca_flag;     /* for messages, e.g. "kong-admin-ca-cert" */
    bool skip_verify;        /* never on by default; logged loudly */
    const char *server_name; /* override of the TLS server name to verify, or NULL */
    /* Periodic re-check of files (Kubernetes symlink swaps); 0: 10 s. */
    unsigned check_interval_ms;
} MtlsConfig;

/*
 * mtls_new() - load and validate the material of @cfg (strings are copied). A client cert
 * without its key (or the other way round), unreadable files, a key that does not match, an
 * expired certificate or unparsable PEM is an error: *ret_err (malloc'd) says which flag and why.
 * When files are given, they are watched on @loop (fs events + periodic check).
 */
int mtls_new(uv_loop_t *loop, const MtlsConfig *cfg, Mtls **ret, char **ret_err);

/*
 * mtls_apply() - set @easy's TLS options from the current material: client cert and key as
 * blobs (CURLOPT_SSLCERT_BLOB/SSLKEY_BLOB), CA as CURLOPT_CAINFO_BLOB, TLS 1.2 minimum,
 * peer and host verification on unless skip_verify. Returns 0 or a negative errno.
 * libcurl copies the blobs, so a later swap never disturbs a configured transfer (it finishes
 * with the material it started with). With server_name set, @easy keeps a pointer into @m:
 * finish its transfers before mtls_close().
 */
int mtls_apply(Mtls *m, CURL *easy);

/*
 * mtls_check() - re-read the files now (e.g. on SIGHUP) instead of waiting for an fs event or
 * the periodic check; the same rules apply: swapped in only if changed and valid.
 */
void mtls_check(Mtls *m);

/* mtls_has_client_cert() - whether a client certificate is configured. */
bool mtls_has_client_cert(const Mtls *m);
/* mtls_cert_expiry() - notAfter of the client certificate (Unix seconds), 0 if none. */
long long mtls_cert_expiry(const Mtls *m);
/* mtls_generation() - increases each time new material is swapped in. */
unsigned mtls_generation(const Mtls *m);

/* mtls_cert_sha256() - SHA-256 fingerprint of the current client certificate (borrowed, valid until
 * the next swap), NULL if none. For logs and diagnostics: it identifies the certificate that
 * Konnect or Kong sees without revealing anything secret. */
const char *mtls_cert_sha256(const Mtls *m);

/*
 * mtls_metrics() - append Prometheus text for @n objects to @out: HELP/TYPE once, then per object
 * tether_tls_client_cert_expiry_seconds{flag="<prefix>-cert"} (only with a client certificate),
 * tether_tls_material_reloads_total and tether_tls_material_reload_failures_total
 * {flag="<prefix>"}. Returns 0 or -ENOMEM.
 */
int mtls_metrics(Mtls *const *list, size_t n, Buf *out);

/*
 * mtls_close() - stop watching and free @m once every handle is closed; then @done (may be NULL)
 * runs. Without a loop (mtls_new(NULL, ...)) this happens before mtls_close() returns.
 */
void mtls_close(Mtls *m, void (*done)(void *ud), void *ud);
