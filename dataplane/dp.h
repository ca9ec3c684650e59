/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Data plane sink: configures every local Kong gateway with the newest revision through
 * POST /config (DB-less), with Gateway Discovery, per-gateway retries, fallback configuration
 * and hash skipping. See ../shared/reference/kic-dataplane-konnect.md.
 */
#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "http.h"
#include "sink.h"

typedef struct DpConfig {
    const char *const *admin_urls;      /* static --kong-admin-url list (NULL-terminated) or NULL */
    const char *admin_svc;              /* --kong-admin-svc NS/NAME (discovery) or NULL */
    const char *admin_svc_port_names;   /* "admin-tls,kong-admin-tls" */
    const char *ca_cert, *ca_cert_file; /* --kong-admin-ca-cert[-file] */
    const char *client_cert, *client_cert_file; /* --kong-admin-tls-client-cert[-file] */
    const char *client_key, *client_key_file;   /* --kong-admin-tls-client-key[-file] */
    const char *tls_server_name;                /* --kong-admin-tls-server-name */
    bool tls_skip_verify;                       /* --kong-admin-tls-skip-verify */
    const char *token, *token_file;             /* --kong-admin-token[-file] */
    const char *const *headers;  /* --kong-admin-header "k:v" (NULL-terminated) or NULL */
    double proxy_timeout_s;      /* --proxy-timeout-seconds, 30 */
    double readiness_interval_s; /* --gateway-discovery-readiness-check-interval, 10 */
    double readiness_timeout_s;  /* --gateway-discovery-readiness-check-timeout, 5 */
    const char *state_dir;       /* --state-dir or NULL */
} DpConfig;

/*
 * dp_sink_new() - create the sink (no I/O yet). *ret_err (malloc'd) explains a bad config,
 * e.g. unreadable TLS material. Reports through @host (applied, rejected).
 */
int dp_sink_new(uv_loop_t *loop, Http *http, const DpConfig *cfg, SinkHost *host, Sink **ret,
                char **ret_err);

/*
 * dp_sink_discovered() - the current EndpointSlices of the Admin API Service (JSON array of
 * EndpointSlice objects, borrowed). Gateways that disappear are dropped at once; new ones get
 * the current revision at once.
 */
void dp_sink_discovered(Sink *s, json_t *slices);

/* dp_sink_gateways() - [{"url","state":"ready|pending","hash","version","hostname"}] (new ref). */
json_t *dp_sink_gateways(Sink *s);

/* dp_sink_metrics() - append Prometheus text for the push metrics to @out (KIC's names). */
struct Buf;
void dp_sink_metrics(Sink *s, struct Buf *out);

/* dp_sink_mtls() - the Admin API TLS material (borrowed) for mtls_metrics(), or NULL. */
struct Mtls;
struct Mtls *dp_sink_mtls(Sink *s);

/* dp_router_flavor() - the router flavor the gateways reported ("expressions" or other), NULL until
 * known. */
const char *dp_router_flavor(Sink *s);

/*
 * dp_fallback_store() - KIC's fallback configuration: a clone of @src without the objects in
 * @broken (array of {"kind","namespace","name","uid"}, borrowed; as given to SinkHost.rejected)
 * and without every object that depends on them, directly or not (KIC's dependency graph:
 * Ingress <- IngressClass, Services, KongServiceFacades, KongUpstreamPolicy, plugins; Service <-
 * plugins, KongUpstreamPolicy; plugins <- Secrets; KongConsumer <- plugins, credential Secrets;
 * KongConsumerGroup, TCPIngress, UDPIngress, Gateway API routes <- plugins, Services;
 * KongCustomEntity <- its parent plugin). Broken objects absent from @src are ignored.
 * Return: 0 and *ret_store (owned by the caller, store_free()) or a negative errno.
 */
struct Store;
int dp_fallback_store(struct Store *src, json_t *broken, struct Store **ret_store);
