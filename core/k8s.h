/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Kubernetes client: list/watch of every kind the translator needs into callbacks, Lease leader
 * election, Events and Ingress status. All HTTP goes through the shared Http (libcurl multi).
 */
#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "http.h"

typedef struct K8s K8s;

typedef struct K8sConfig {
    const char *kubeconfig;              /* --kubeconfig or NULL for in-cluster */
    const char *apiserver_host;          /* --apiserver-host override or NULL */
    const char *const *watch_namespaces; /* NULL-terminated, NULL = all */
    const char *ingress_class;           /* for filtering class-aware kinds, "kong" */
    const char *election_id;             /* 5b374a9e.konghq.com */
    const char *election_namespace;      /* default: POD_NAMESPACE */
    const char *identity;                /* POD_NAMESPACE/POD_NAME or host_pid */
    bool leader_election;                /* decided by the controller */
    const char *publish_service;         /* NS/NAME for Ingress status, or NULL */
    bool update_status;
} K8sConfig;

typedef struct K8sCallbacks {
    void *ud;
    void (*upsert)(void *ud, json_t *obj); /* obj borrowed (a full object with kind, apiVersion) */
    void (*remove)(void *ud, const char *kind, const char *ns, const char *name);
    void (*synced)(void *ud);                 /* every initial list has been delivered */
    void (*leader)(void *ud, bool is_leader); /* leadership gained or lost */
} K8sCallbacks;

/* k8s_new() - load credentials (kubeconfig or in-cluster); *ret_err (malloc'd) says why not. */
int k8s_new(uv_loop_t *loop, Http *http, const K8sConfig *cfg, const K8sCallbacks *cb, K8s **ret,
            char **ret_err);
int k8s_start(K8s *k);
/*
 * k8s_event() - emit a core/v1 Event (rate-limited, deduplicated) on @obj (borrowed): a full object
 * (kind, apiVersion, metadata.namespace/name/uid) or a flat reference {kind, namespace, name, uid,
 * group, version} as translation failures carry. @type "Warning"/"Normal", @reason e.g.
 * KongConfigurationTranslationFailed. Only the leader emits; the others drop it.
 */
void k8s_event(K8s *k, json_t *obj_ref, const char *type, const char *reason, const char *message);
/*
 * k8s_update_ingress_status() - set status.loadBalancer.ingress of @ingresses (borrowed array of
 * Ingress objects) to @lb_ingress (borrowed array of {ip|hostname}; NULL: the --publish-service
 * addresses); written only where it differs, only by the leader, only with update_status. The
 * client also does this on its own for every watched Ingress of its class whenever the Ingress,
 * the default IngressClass or the publish Service changes, so calling it is optional.
 */
void k8s_update_ingress_status(K8s *k, json_t *ingresses, json_t *lb_ingress);
bool k8s_is_leader(const K8s *k);
/*
 * k8s_publish_addresses() - status.loadBalancer.ingress entries derived from --publish-service
 * (borrowed array, NULL until the Service has been seen). k8s_update_ingress_status() uses them
 * when its @lb_ingress is NULL.
 */
json_t *k8s_publish_addresses(K8s *k);
struct Buf;
void k8s_metrics(K8s *k, struct Buf *out);
void k8s_close(K8s *k, void (*done)(void *ud), void *ud);
