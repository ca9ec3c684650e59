/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Konnect sink: keeps a read-only Konnect control plane equal to what the local gateways run,
 * over mutual TLS, behind a latest-wins slot and a backoff queue, so an outage never delays
 * a local update. Also reports nodes. See ../shared/reference/kic-dataplane-konnect.md (3, 4).
 */
#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "http.h"
#include "sink.h"

typedef struct KonnectConfig {
    const char *address;          /* --konnect-address, https://us.kic.api.konghq.com */
    const char *control_plane_id; /* --konnect-control-plane-id */
    const char *client_cert, *client_cert_file; /* --konnect-tls-client-cert[-file] */
    const char *client_key, *client_key_file;   /* --konnect-tls-client-key[-file] */
    const char *ca_cert_file;                   /* --konnect-ca-cert-file (private roots) */
    double upload_config_period_s;              /* --konnect-upload-config-period */
    int sync_concurrency;                       /* --konnect-config-sync-concurrency, 4 */
    double refresh_node_period_s;               /* --konnect-refresh-node-period, 60 */
    bool disable_consumers_sync;                /* --konnect-disable-consumers-sync */
    const char *node_hostname;                  /* POD_NAMESPACE/POD_NAME or host name */
    const char *version;                        /* tether version for node reporting */
    /* Tuning (additive; 0 picks the default shown). */
    double full_resync_period_s; /* re-read all of Konnect at least this often, 600 */
    double backoff_min_s;        /* whole-round backoff start, 3 */
    double backoff_max_s;        /* whole-round backoff cap, 900 */
    double request_timeout_s;    /* one request, 30 */
    int request_retries;         /* retries of one request on 429/5xx/transport errors, 5 */
} KonnectConfig;

/*
 * konnect_sink_new() - create the sink. The host publishes to it only revisions that the local
 * gateways accepted. *ret_err (malloc'd) explains a bad config.
 */
int konnect_sink_new(uv_loop_t *loop, Http *http, const KonnectConfig *cfg, SinkHost *host,
                     Sink **ret, char **ret_err);

/*
 * konnect_sink_set_gateways() - the gateways to report as kong-proxy nodes (array, borrowed):
 * objects {"hostname": "<ns>/<pod>", "node_id": "<Kong node_id>", "version": "3.9.1",
 * "url": "https://10.0.0.5:8444", "state": "ready"}; hostname falls back to
 * "gateway_<host:port>" of url, node_id and version are optional, entries whose state is not
 * "ready" are left out (dp_sink_gateways() fits). A changed set is reported at once.
 */
void konnect_sink_set_gateways(Sink *s, json_t *gateways);

/*
 * konnect_sink_set_dataplane_ok() - whether the local gateways applied the newest revision
 * (false: the ingress-controller node reports INOPERABLE, as KIC does). Default true.
 */
void konnect_sink_set_dataplane_ok(Sink *s, bool ok);

/*
 * konnect_sink_metrics() - append Prometheus text: KIC's push metrics with protocol="deck" and
 * dataplane=<control plane URL>, and tether_konnect_* (rounds, writes, retries, backoff, lag).
 */
struct Buf;
void konnect_sink_metrics(Sink *s, struct Buf *out);

/*
 * konnect_sink_mtls() - the sink's TLS material (borrowed), for the host's mtls_metrics() list
 * and mtls_check() on SIGHUP.
 */
struct Mtls;
struct Mtls *konnect_sink_mtls(Sink *s);
