/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ingress status: status.loadBalancer.ingress of each served Ingress follows the addresses of
 * the --publish-service Service (its load balancer, or for other Service types its external IPs
 * or cluster IP). An Ingress is written only when its status differs from what it should be,
 * with a merge patch of the status subresource (no resourceVersion conflicts to retry).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_int.h"
#include "log.h"

enum {
    REQ_TIMEOUT_MS = 10000,
    MAX_BODY = 4 * 1024 * 1024,
};

struct K8sStatus {
    K8s *k;
    json_t *addrs;   /* array of {ip|hostname} from the publish Service, or NULL */
    json_t *written; /* "ns/name" -> lb array last written (until the watch shows it) */
    uint64_t m_updates;
    uint64_t m_failed;
};

/* Addresses of a Service as KIC publishes them. New reference. */
json_t *k8s__service_addresses(json_t *svc)
{
    json_t *out = json_array();
    if (!out || !svc)
        return out;
    json_t *spec = json_object_get(svc, "spec");
    const char *type = k8s__str(spec, "type");
    size_t i;
    json_t *v;
    if (strcmp(type, "LoadBalancer") == 0) {
        json_array_foreach(json_object_get(
                               json_object_get(json_object_get(svc, "status"), "loadBalancer"),
                               "ingress"),
                           i, v)
        {
            const char *ip = k8s__str(v, "ip"), *host = k8s__str(v, "hostname");
            if (*ip)
                json_array_append_new(out, json_pack("{s:s}", "ip", ip));
            else if (*host)
                json_array_append_new(out, json_pack("{s:s}", "hostname", host));
        }
        return out;
    }
    json_array_foreach(json_object_get(spec, "externalIPs"), i, v)
    {
        if (json_string_value(v))
            json_array_append_new(out, json_pack("{s:s}", "ip", json_string_value(v)));
    }
    if (json_array_size(out) > 0)
        return out;
    const char *cip = k8s__str(spec, "clusterIP");
    if (*cip && strcmp(cip, "None") != 0)
        json_array_append_new(out, json_pack("{s:s}", "ip", cip));
    return out;
}

void k8s__status_service(K8sStatus *s, json_t *svc, bool deleted)
{
    json_t *a = deleted ? json_array() : k8s__service_addresses(svc);
    if (!a)
        return;
    if (s->addrs && json_equal(s->addrs, a)) {
        json_decref(a);
        return;
    }
    json_decref(s->addrs);
    s->addrs = a;
    log_event(LOG_INFO, "k8s", "publish service addresses", "{s:s, s:s, s:O}", "namespace",
              s->k->publish_ns, "name", s->k->publish_name, "addresses", a);
}

json_t *k8s__status_addresses(K8sStatus *s)
{
    return s ? s->addrs : NULL;
}

typedef struct StatusCtx {
    K8sStatus *s;
    char *key;
} StatusCtx;

static void on_done(K8s *k, void *ud, const K8sResp *r)
{
    StatusCtx *c = ud;
    if (!(r->code == CURLE_OK && r->status >= 200 && r->status < 300) && !k->closing) {
        c->s->m_failed++;
        /* Forget it so that the next update tries again. */
        json_object_del(c->s->written, c->key);
        log_event(LOG_WARN, "k8s", "ingress status update failed", "{s:s, s:s}", "ingress",
                  c->key, "err", k8s__resp_err(r));
    }
    free(c->key);
    free(c);
}

void k8s__status_update(K8sStatus *s, json_t *ingresses, json_t *lb)
{
    K8s *k = s->k;
    if (!lb)
        lb = s->addrs;
    if (!json_is_array(lb))
        return;
    size_t i;
    json_t *ing;
    json_array_foreach(ingresses, i, ing)
    {
        json_t *md = json_object_get(ing, "metadata");
        const char *ns = k8s__str(md, "namespace"), *name = k8s__str(md, "name");
        if (!*ns || !*name)
            continue;
        json_t *cur = json_object_get(
            json_object_get(json_object_get(ing, "status"), "loadBalancer"), "ingress");
        json_t *empty = json_array();
        bool same = json_equal(cur ? cur : empty, lb);
        json_decref(empty);
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        if (same) {
            json_object_del(s->written, key);
            continue;
        }
        json_t *w = json_object_get(s->written, key);
        if (w && json_equal(w, lb))
            continue; /* written already; the watch has not shown it yet */
        StatusCtx *c = calloc(1, sizeof(*c));
        char *path = util_strdup_printf(
            "/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s/status", ns, name);
        json_t *patch = json_pack("{s:{s:{s:O}}}", "status", "loadBalancer", "ingress", lb);
        int r = -ENOMEM;
        if (c && path && patch && (c->key = strdup(key))) {
            c->s = s;
            r = k8s__request(k, "PATCH", path, patch, "application/merge-patch+json",
                             REQ_TIMEOUT_MS, MAX_BODY, NULL, on_done, c, NULL);
        }
        if (r == 0) {
            json_object_set(s->written, key, lb);
            s->m_updates++;
        } else {
            if (c)
                free(c->key);
            free(c);
            s->m_failed++;
        }
        free(path);
        json_decref(patch);
    }
}

int k8s__status_new(K8s *k, K8sStatus **ret)
{
    K8sStatus *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->k = k;
    s->written = json_object();
    if (!s->written) {
        free(s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

void k8s__status_free(K8sStatus *s)
{
    if (!s)
        return;
    json_decref(s->addrs);
    json_decref(s->written);
    free(s);
}

void k8s__status_metrics(K8sStatus *s, Buf *out)
{
    if (!s)
        return;
    buf_printf(out,
               "# HELP tether_k8s_ingress_status_updates_total Ingress status writes by outcome.\n"
               "# TYPE tether_k8s_ingress_status_updates_total counter\n"
               "tether_k8s_ingress_status_updates_total{outcome=\"sent\"} %llu\n"
               "tether_k8s_ingress_status_updates_total{outcome=\"failed\"} %llu\n",
               (unsigned long long)s->m_updates, (unsigned long long)s->m_failed);
}
