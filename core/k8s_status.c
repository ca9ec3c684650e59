/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ingress status: status.loadBalancer.ingress of each served Ingress follows the addresses of
 * the --publish-service Service (its load balancer, or for other Service types its external IPs
 * or cluster IP). An Ingress is written only when its status differs from what it should be,
 * with a merge patch of the status subresource (no resourceVersion conflicts to retry).
 *
 * The client follows the watched Ingresses of its class itself (annotation
 * kubernetes.io/ingress.class, spec.ingressClassName, or no class while the IngressClass of that
 * name is the default), so the status is kept right without the controller's help; writes go
 * through a small queue so that an address change on 10,000 Ingresses never opens 10,000
 * connections at once. Only the leader writes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_int.h"
#include "store.h"
#include "log.h"

enum {
    REQ_TIMEOUT_MS = 10000,
    MAX_BODY = 4 * 1024 * 1024,
    MAX_INFLIGHT = 8,
};

struct K8sStatus {
    K8s *k;
    json_t *addrs;   /* array of {ip|hostname} from the publish Service, or NULL */
    json_t *written; /* "ns/name" -> lb array last written (until the watch shows it) */
    json_t *ings;    /* "ns/name" -> [explicit class match (bool), status lb array or null] */
    json_t *queue;   /* "ns/name" -> true: Ingresses to check */
    bool default_class;
    int inflight;
    uint64_t m_updates;
    uint64_t m_failed;
};

static void pump(K8sStatus *s);

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
        json_array_foreach(
            json_object_get(json_object_get(json_object_get(svc, "status"), "loadBalancer"),
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
    k8s__status_kick(s);
}

static json_t *lb_of(json_t *ing)
{
    return json_object_get(json_object_get(json_object_get(ing, "status"), "loadBalancer"),
                           "ingress");
}

void k8s__status_ingress(K8sStatus *s, json_t *ing, const char *key, bool deleted)
{
    if (deleted) {
        json_object_del(s->ings, key);
        json_object_del(s->written, key);
        json_object_del(s->queue, key);
        return;
    }
    const char *cls = s->k->ingress_class;
    const char *ann = obj_annotation(ing, "kubernetes.io/ingress.class");
    const char *icn =
        json_string_value(json_object_get(json_object_get(ing, "spec"), "ingressClassName"));
    /* As translation reads it: an empty ingressClassName names no class, it is not "none"
     * (KIC's IsIngressClassEmpty wants the field absent); class-less Ingresses match while our
     * class is the default. */
    bool explicit_match = false;
    if (ann && *ann)
        explicit_match = strcmp(ann, cls) == 0;
    else if (icn)
        explicit_match = strcmp(icn, cls) == 0;
    bool classless = !(ann && *ann) && !icn;
    if (!explicit_match && !classless) {
        json_object_del(s->ings, key);
        json_object_del(s->queue, key);
        return;
    }
    json_t *lb = lb_of(ing);
    json_object_set_new(s->ings, key, json_pack("[b, O]", explicit_match, lb ? lb : json_null()));
    json_object_set(s->queue, key, json_true());
    pump(s);
}

void k8s__status_class(K8sStatus *s, json_t *ic, const char *name, bool deleted)
{
    if (strcmp(name, s->k->ingress_class) != 0)
        return;
    const char *d = deleted ? NULL
                            : obj_annotation(ic, "ingressclass.kubernetes.io/is-default-class");
    bool def = d && strcmp(d, "true") == 0;
    if (def == s->default_class)
        return;
    s->default_class = def;
    k8s__status_kick(s);
}

void k8s__status_kick(K8sStatus *s)
{
    const char *key;
    json_t *v;
    json_object_foreach(s->ings, key, v) json_object_set(s->queue, key, json_true());
    pump(s);
}

json_t *k8s__status_addresses(K8sStatus *s)
{
    return s ? s->addrs : NULL;
}

typedef struct StatusCtx {
    K8sStatus *s;
    char *key;
    bool queued; /* counted in s->inflight */
} StatusCtx;

static void on_done(K8s *k, void *ud, const K8sResp *r)
{
    StatusCtx *c = ud;
    if (c->queued)
        c->s->inflight--;
    if (!(r->code == CURLE_OK && r->status >= 200 && r->status < 300) && !k->closing) {
        c->s->m_failed++;
        /* Forget it so that the next update tries again. */
        json_object_del(c->s->written, c->key);
        log_event(LOG_WARN, "k8s", "ingress status update failed", "{s:s, s:s}", "ingress", c->key,
                  "err", k8s__resp_err(r));
    }
    K8sStatus *s = c->s;
    free(c->key);
    free(c);
    if (!k->closing)
        pump(s);
}

/* Write status.loadBalancer.ingress = @lb on Ingress @key ("ns/name"). */
static int send_patch(K8sStatus *s, const char *key, json_t *lb, bool queued)
{
    const char *slash = strchr(key, '/');
    if (!slash)
        return -EINVAL;
    StatusCtx *c = calloc(1, sizeof(*c));
    char *path =
        util_strdup_printf("/apis/networking.k8s.io/v1/namespaces/%.*s/ingresses/%s/status",
                           (int)(slash - key), key, slash + 1);
    json_t *patch = json_pack("{s:{s:{s:O}}}", "status", "loadBalancer", "ingress", lb);
    int r = -ENOMEM;
    if (c && path && patch && (c->key = strdup(key))) {
        c->s = s;
        c->queued = queued;
        r = k8s__request(s->k, "PATCH", path, patch, "application/merge-patch+json", REQ_TIMEOUT_MS,
                         MAX_BODY, NULL, on_done, c, NULL);
    }
    if (r == 0) {
        json_object_set(s->written, key, lb);
        s->m_updates++;
        if (queued)
            s->inflight++;
    } else {
        if (c)
            free(c->key);
        free(c);
        s->m_failed++;
    }
    free(path);
    json_decref(patch);
    return r;
}

static void pump(K8sStatus *s)
{
    K8s *k = s->k;
    if (k->closing || !k->update_status || !k->is_leader || !json_is_array(s->addrs))
        return;
    while (s->inflight < MAX_INFLIGHT && json_object_size(s->queue) > 0) {
        void *it = json_object_iter(s->queue);
        char key[600];
        snprintf(key, sizeof(key), "%s", json_object_iter_key(it));
        json_object_del(s->queue, key);
        json_t *v = json_object_get(s->ings, key);
        if (!v)
            continue;
        bool explicit_match = json_is_true(json_array_get(v, 0));
        if (!explicit_match && !s->default_class)
            continue;
        json_t *cur = json_array_get(v, 1);
        json_t *empty = json_array();
        bool same = json_equal(json_is_array(cur) ? cur : empty, s->addrs);
        json_decref(empty);
        if (same) {
            json_object_del(s->written, key);
            continue;
        }
        json_t *w = json_object_get(s->written, key);
        if (w && json_equal(w, s->addrs))
            continue;
        if (send_patch(s, key, s->addrs, true) < 0)
            break;
    }
}

void k8s__status_update(K8sStatus *s, json_t *ingresses, json_t *lb)
{
    if (!lb)
        lb = s->addrs;
    if (!json_is_array(lb))
        return;
    size_t i;
    json_t *ing;
    json_array_foreach(ingresses, i, ing)
    {
        const char *ns = obj_ns(ing), *name = obj_name(ing);
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
        (void)send_patch(s, key, lb, false);
    }
}

int k8s__status_new(K8s *k, K8sStatus **ret)
{
    K8sStatus *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->k = k;
    s->written = json_object();
    s->ings = json_object();
    s->queue = json_object();
    if (!s->written || !s->ings || !s->queue) {
        json_decref(s->written);
        json_decref(s->ings);
        json_decref(s->queue);
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
    json_decref(s->ings);
    json_decref(s->queue);
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
