/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internals of the data plane module shared between its files and its unit tests
 * (uv's "uv__" convention: dp__ is private to dataplane/).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

/*
 * dp__discover() - the Admin API endpoints found in @slices (JSON array of EndpointSlices,
 * borrowed) for Service @svc_ns/@svc_name (either may be NULL: then taken from each slice's
 * namespace and kubernetes.io/service-name label). @port_names is a comma-separated list.
 * Endpoints that are terminating, not backed by a Pod or without addresses are skipped;
 * readiness is ignored (Kong is not ready until it has a configuration).
 * Return: new array of {"url","server_name","ip","port","pod"} sorted by url, no duplicates.
 */
json_t *dp__discover(json_t *slices, const char *svc_ns, const char *svc_name,
                     const char *port_names);

/*
 * dp__connect_to() - for a request to @url whose TLS name must be @server_name, the base URL
 * to request (host replaced by @server_name) in *ret_base and the CURLOPT_CONNECT_TO entry
 * that sends it to the original host in *ret_connect_to (both malloc'd). Return 0 or -errno.
 */
int dp__connect_to(const char *url, const char *server_name, char **ret_base,
                   char **ret_connect_to);

/*
 * dp__flattened_errors() - map a 400 answer of POST /config?flatten_errors=1 (@body, @len) to
 * the Kubernetes objects at fault through each entity's k8s-* tags.
 * Return: new array of {"kind","namespace","name","uid","group","version","message"}, one per
 * object (merged), or NULL when the body is not a flattened-errors answer. *ret_unmapped (may
 * be NULL) receives the number of entities whose tags did not name an object.
 */
json_t *dp__flattened_errors(const char *body, size_t len, size_t *ret_unmapped);

/* dp__tls_*: TLS material for the Admin API (mtls/: validation, files watched for rotation). */
typedef struct DpTls DpTls;
struct DpConfig;
struct Mtls;
/* dp__tls_mtls() - the TLS material (borrowed) for metrics, NULL without TLS settings. */
struct Mtls *dp__tls_mtls(DpTls *t);
int dp__tls_new(uv_loop_t *loop, const struct DpConfig *cfg, DpTls **ret, char **ret_err);
int dp__tls_apply(DpTls *t, CURL *easy);
/* dp__tls_close() - release @t; @done runs once it is gone (possibly before this returns). */
void dp__tls_close(DpTls *t, void (*done)(void *ud), void *ud);
