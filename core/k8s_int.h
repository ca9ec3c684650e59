/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Private to the Kubernetes client (core/k8s*.c): credentials, the request helper that every
 * part uses, and the per-part state hung off struct K8s. Loop thread only.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "k8s.h"
#include "util.h"

/* Credentials and endpoint of one API server. */
typedef struct K8sCreds {
    char *server; /* "https://host:port" without trailing slash */
    char *ca_pem; /* CA bundle (PEM) or NULL: system roots */
    size_t ca_len;
    bool insecure;    /* insecure-skip-tls-verify */
    char *token;      /* static bearer token or NULL */
    char *token_file; /* re-read when it rotates (bound service account tokens) */
    char *cert_pem;   /* client certificate (PEM) or NULL */
    size_t cert_len;
    char *key_pem;
    size_t key_len;
    char *ns;     /* namespace of the context / service account, or NULL */
    char *source; /* "kubeconfig FILE", "in-cluster" or "apiserver-host": for messages */
    /* token file cache */
    char *token_cached;
    uint64_t token_read_ms;
} K8sCreds;

/* Token files are re-read at most this often (a rotated token is picked up within it). */
enum { K8S_TOKEN_CACHE_MS = 1000 };

/*
 * k8s__kubeconfig_parse() - fill @c from the kubeconfig text @data (YAML or JSON) of file @path
 * (relative file references are resolved against its folder). Uses the current context.
 * Return: 0, or a negative errno with *ret_err (malloc'd) naming the file and the problem.
 */
int k8s__kubeconfig_parse(const char *data, size_t len, const char *path, K8sCreds *c,
                          char **ret_err);
/* k8s__creds_load() - from cfg->kubeconfig, $KUBECONFIG, in-cluster, or --apiserver-host alone. */
int k8s__creds_load(const K8sConfig *cfg, K8sCreds *c, char **ret_err);
void k8s__creds_deinit(K8sCreds *c);
/* k8s__creds_token() - current bearer token (borrowed) or NULL; re-reads the token file. */
const char *k8s__creds_token(K8sCreds *c);

/* Time text: RFC 3339 with microseconds (Lease MicroTime) or seconds (Event timestamps). */
void k8s__now_micro(char out[40]);
void k8s__now_rfc3339(char out[32]);

/* A finished request: @body is NULL-terminated; @json the parsed body or NULL (borrowed). */
typedef struct K8sResp {
    CURLcode code;
    long status;
    const char *body;
    size_t body_len;
    json_t *json;
    long retry_after_s;
    const char *error;
} K8sResp;
typedef void (*K8sRespFn)(K8s *k, void *ud, const K8sResp *r);
/* Streamed body chunk of a watch; return non-zero to abort the transfer. */
typedef int (*K8sChunkFn)(K8s *k, void *ud, long status, const char *data, size_t len);

typedef struct K8sReq K8sReq;

/*
 * k8s__request() - send @method @path (path plus query, starting with '/') to the API server with
 * the current credentials. @body (borrowed, may be NULL) is sent as @ctype. @on_chunk non-NULL
 * makes it a streaming request (the body is given chunk by chunk, not collected). @done is called
 * exactly once when 0 is returned, also when the client closes (then r->code is
 * CURLE_ABORTED_BY_CALLBACK). *ret_req (may be NULL) lets the caller cancel it.
 */
int k8s__request(K8s *k, const char *method, const char *path, json_t *body, const char *ctype,
                 long timeout_ms, size_t max_body, K8sChunkFn on_chunk, K8sRespFn done, void *ud,
                 K8sReq **ret_req);
void k8s__cancel(K8s *k, K8sReq *req);

/* Short error text of a failed response for logs (static buffer: use at once). */
const char *k8s__resp_err(const K8sResp *r);

typedef struct K8sWatch K8sWatch;
typedef struct K8sLease K8sLease;
typedef struct K8sEvents K8sEvents;
typedef struct K8sStatus K8sStatus;

struct K8s {
    uv_loop_t *loop;
    Http *http;
    K8sCallbacks cb;
    K8sCreds creds;
    /* copies of the config */
    char **watch_namespaces; /* NULL-terminated or NULL (all) */
    char *election_id;
    char *election_ns;
    char *identity;
    bool leader_election;
    char *ingress_class;
    char *publish_ns;
    char *publish_name;
    bool update_status;

    bool started;
    bool closing;
    bool is_leader;
    K8sReq *reqs; /* in flight (list) */
    size_t nreqs;
    void (*close_done)(void *ud);
    void *close_ud;
    int close_pending; /* parts still closing */
    int in_cb;         /* inside a request callback: no free */
    int in_chunk;      /* inside a streamed chunk (a curl callback): requests are deferred */
    K8sReq *deferred;  /* requests to hand to Http from the loop (FIFO) */
    K8sReq *deferred_tail;
    uv_timer_t defer_timer;
    bool defer_open;

    K8sWatch *watch;
    K8sLease *lease;
    K8sEvents *events;
    K8sStatus *status;

    /* metrics */
    uint64_t m_requests;
    uint64_t m_request_errors;
};

/* Parts: each has new/start/close; close calls k8s__close_step() when its handles are gone. */
int k8s__watch_new(K8s *k, K8sWatch **ret);
int k8s__watch_start(K8sWatch *w);
void k8s__watch_close(K8sWatch *w);
void k8s__watch_metrics(K8sWatch *w, Buf *out);

int k8s__lease_new(K8s *k, K8sLease **ret);
int k8s__lease_start(K8sLease *l);
void k8s__lease_close(K8sLease *l);

int k8s__events_new(K8s *k, K8sEvents **ret);
void k8s__events_emit(K8sEvents *e, json_t *obj, const char *type, const char *reason,
                      const char *message);
void k8s__events_metrics(K8sEvents *e, Buf *out);
void k8s__events_free(K8sEvents *e);

int k8s__status_new(K8s *k, K8sStatus **ret);
void k8s__status_service(K8sStatus *s, json_t *svc, bool deleted);
json_t *k8s__status_addresses(K8sStatus *s);
void k8s__status_update(K8sStatus *s, json_t *ingresses, json_t *lb);
/* Watched Ingresses and IngressClasses: the status of the ones of our class follows on its own. */
void k8s__status_ingress(K8sStatus *s, json_t *ing, const char *key, bool deleted);
void k8s__status_class(K8sStatus *s, json_t *ic, const char *name, bool deleted);
/* k8s__status_kick() - check every Ingress again (leadership gained). */
void k8s__status_kick(K8sStatus *s);
void k8s__status_metrics(K8sStatus *s, Buf *out);
void k8s__status_free(K8sStatus *s);

/* k8s__close_step() - one asynchronous part of the close finished. */
void k8s__close_step(K8s *k);
/* k8s__set_leader() - record and report a change of leadership. */
void k8s__set_leader(K8s *k, bool on);

/* Helpers to read fields: borrowed string or "" */
const char *k8s__str(const json_t *o, const char *key);

/*
 * k8s__json_loadb() - json_loadb() for what the API server writes. It writes a float64 of a
 * free-form field (a plugin's config) below 1e21 in plain digits; past int64 jansson refuses
 * such a number, and one object would fail a whole list. Those numbers are read as reals.
 */
json_t *k8s__json_loadb(const char *buf, size_t len, json_error_t *err);

/* Lease decisions (k8s_lease.c), separate for unit tests. */
typedef struct K8sLeaseObs {
    char key[512];  /* holder|renewTime|duration of the record last seen */
    uint64_t at_ms; /* local time it was first seen (skew-free expiry, as client-go) */
} K8sLeaseObs;
/*
 * k8s__lease_observe() - note @lease (borrowed, a Lease object) as seen at @now_ms.
 * Return: true when @me may take it over or renew it (free, ours, or not renewed within its
 * duration as observed locally).
 */
bool k8s__lease_observe(K8sLeaseObs *o, const json_t *lease, const char *me, uint64_t now_ms);
/*
 * k8s__lease_build() - the Lease to write (new reference): @old (borrowed, NULL to create) taken
 * by @me, or released (holder emptied) when @release.
 */
json_t *k8s__lease_build(const json_t *old, const char *ns, const char *name, const char *me,
                         int duration_s, bool release);

/* Event deduplication and rate limiting (k8s_events.c), separate for unit tests. */
typedef struct K8sBucket {
    double tokens;
    double burst;
    double per_ms; /* tokens added per millisecond */
    uint64_t last_ms;
} K8sBucket;
void k8s__bucket_init(K8sBucket *b, double burst, double per_s, uint64_t now_ms);
bool k8s__bucket_take(K8sBucket *b, uint64_t now_ms);

enum { K8S_EV_SKIP = 0, K8S_EV_CREATE, K8S_EV_PATCH };
/*
 * k8s__events_decide() - what to do with an Event for @key (object+type+reason+message) at
 * @now_ms: create it (recorded in the cache as @new_name), patch the count of the one sent
 * before, or skip it. *ret_name (borrowed) / *ret_count name the Event to write and its count.
 */
int k8s__events_decide(K8sEvents *e, const char *key, uint64_t now_ms, const char *new_name,
                       const char **ret_name, json_int_t *ret_count);
/* k8s__events_forget() - drop @key from the cache (its write failed). */
void k8s__events_forget(K8sEvents *e, const char *key);

/* k8s__service_addresses() - status.loadBalancer.ingress entries for Service @svc (new ref). */
json_t *k8s__service_addresses(json_t *svc);

/*
 * k8s__watch_feed() - hand @data to the watch stream parser of the first watcher of kind
 * number @kind_index (modulo the kinds known), as if received; for fuzzing and tests.
 */
void k8s__watch_feed(K8sWatch *w, size_t kind_index, const char *data, size_t len);
