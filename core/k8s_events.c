/* SPDX-License-Identifier: Apache-2.0 */
/*
 * core/v1 Events on objects (KongConfigurationTranslationFailed and friends). Every translation
 * repeats the same failures, so Events are deduplicated: the same object, type, reason and
 * message within ten minutes updates the count of the Event already sent (at most once a minute)
 * instead of creating a new one, as client-go's correlator does. A token bucket caps the rate of
 * writes so that a cluster with thousands of broken objects cannot flood the API server.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "k8s_int.h"
#include "store.h"
#include "log.h"

enum {
    DEDUP_WINDOW_MS = 10 * 60 * 1000,
    PATCH_MIN_MS = 60 * 1000,
    CACHE_MAX = 4096,
    MAX_MESSAGE = 1024,
    REQ_TIMEOUT_MS = 10000,
    MAX_BODY = 1024 * 1024,
};
#define BUCKET_BURST 25.0
#define BUCKET_PER_S 5.0

struct K8sEvents {
    K8s *k;
    json_t *cache; /* key -> {name, count, first_ms, sent_ms} */
    K8sBucket bucket;
    uint64_t m_created;
    uint64_t m_patched;
    uint64_t m_deduped;
    uint64_t m_dropped;
    uint64_t m_failed;
};

void k8s__bucket_init(K8sBucket *b, double burst, double per_s, uint64_t now_ms)
{
    b->tokens = burst;
    b->burst = burst;
    b->per_ms = per_s / 1000.0;
    b->last_ms = now_ms;
}

bool k8s__bucket_take(K8sBucket *b, uint64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->per_ms;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

static uint64_t num(json_t *o, const char *k)
{
    return (uint64_t)json_integer_value(json_object_get(o, k));
}

/* Make room: drop entries past the window, then the oldest if still full. */
static void evict(K8sEvents *e, uint64_t now_ms)
{
    if (json_object_size(e->cache) < CACHE_MAX)
        return;
    void *tmp;
    const char *key;
    json_t *v;
    json_object_foreach_safe(e->cache, tmp, key, v)
    {
        if (now_ms - num(v, "first_ms") >= DEDUP_WINDOW_MS)
            json_object_del(e->cache, key);
    }
    while (json_object_size(e->cache) >= CACHE_MAX) {
        const char *oldest = NULL;
        uint64_t best = UINT64_MAX;
        json_object_foreach(e->cache, key, v)
        {
            if (num(v, "first_ms") < best) {
                best = num(v, "first_ms");
                oldest = key;
            }
        }
        if (!oldest)
            break;
        json_object_del(e->cache, oldest);
    }
}

void k8s__events_forget(K8sEvents *e, const char *key)
{
    json_object_del(e->cache, key);
}

int k8s__events_decide(K8sEvents *e, const char *key, uint64_t now_ms, const char *new_name,
                       const char **ret_name, json_int_t *ret_count)
{
    json_t *ent = json_object_get(e->cache, key);
    if (ent && now_ms - num(ent, "first_ms") < DEDUP_WINDOW_MS) {
        json_int_t count = json_integer_value(json_object_get(ent, "count")) + 1;
        json_object_set_new(ent, "count", json_integer(count));
        if (now_ms - num(ent, "sent_ms") < PATCH_MIN_MS || !k8s__bucket_take(&e->bucket, now_ms)) {
            e->m_deduped++;
            return K8S_EV_SKIP;
        }
        json_object_set_new(ent, "sent_ms", json_integer((json_int_t)now_ms));
        *ret_name = k8s__str(ent, "name");
        *ret_count = count;
        return K8S_EV_PATCH;
    }
    if (!k8s__bucket_take(&e->bucket, now_ms)) {
        e->m_dropped++;
        return K8S_EV_SKIP;
    }
    evict(e, now_ms);
    ent = json_pack("{s:s, s:i, s:I, s:I}", "name", new_name, "count", 1, "first_ms",
                    (json_int_t)now_ms, "sent_ms", (json_int_t)now_ms);
    if (!ent || json_object_set_new(e->cache, key, ent) < 0)
        return K8S_EV_SKIP;
    *ret_name = k8s__str(json_object_get(e->cache, key), "name");
    *ret_count = 1;
    return K8S_EV_CREATE;
}

static void on_done(K8s *k, void *ud, const K8sResp *r)
{
    char *key = ud;
    K8sEvents *e = k->events;
    if (r->code == CURLE_OK && r->status >= 200 && r->status < 300) {
        free(key);
        return;
    }
    if (e && !k->closing) {
        e->m_failed++;
        /* Forget it so that the next occurrence creates a fresh Event (e.g. after a 404). */
        json_object_del(e->cache, key);
        log_event(LOG_WARN, "k8s", "event write failed", "{s:s}", "err", k8s__resp_err(r));
    }
    free(key);
}

void k8s__events_emit(K8sEvents *e, json_t *obj, const char *type, const char *reason,
                      const char *message)
{
    K8s *k = e->k;
    /* Either a full object (metadata.*) or a flat reference {kind, namespace, name, uid, group,
     * version} as the translator's failures name objects. */
    bool full = *obj_name(obj) != 0; /* the store's accessors read its packed metadata too */
    const char *kind = k8s__str(obj, "kind");
    const char *ns = full ? obj_ns(obj) : k8s__str(obj, "namespace");
    const char *name = full ? obj_name(obj) : k8s__str(obj, "name");
    const char *uid = full ? obj_uid(obj) : k8s__str(obj, "uid");
    char av[256];
    const char *group = k8s__str(obj, "group"), *version = k8s__str(obj, "version");
    if (*k8s__str(obj, "apiVersion"))
        snprintf(av, sizeof(av), "%s", k8s__str(obj, "apiVersion"));
    else if (*group)
        snprintf(av, sizeof(av), "%s/%s", group, version);
    else
        snprintf(av, sizeof(av), "%s", version);
    if (!*kind || !*name)
        return;
    if (!type || !*type)
        type = "Normal";
    if (!reason)
        reason = "";
    if (!message)
        message = "";
    char msg[MAX_MESSAGE + 1];
    snprintf(msg, sizeof(msg), "%s", message);
    char *key =
        util_strdup_printf("%s/%s/%s/%s\x1f%s\x1f%s\x1f%s", kind, ns, name, uid, type, reason, msg);
    if (!key)
        return;
    uint64_t now = util_now_ms();
    struct timespec tsn;
    clock_gettime(CLOCK_REALTIME, &tsn);
    char evname[320];
    /* Unique name as client-go makes it: object name and the time in nanoseconds. */
    snprintf(evname, sizeof(evname), "%.200s.%llx", name,
             (unsigned long long)tsn.tv_sec * 1000000000ULL + (unsigned long long)tsn.tv_nsec);
    const char *ev_name = NULL;
    json_int_t count = 1;
    int act = k8s__events_decide(e, key, now, evname, &ev_name, &count);
    if (act == K8S_EV_SKIP) {
        free(key);
        return;
    }
    const char *ev_ns = *ns ? ns : "default";
    char ts[32];
    k8s__now_rfc3339(ts);
    char *path = NULL;
    json_t *body = NULL;
    const char *method, *ctype = NULL;
    if (act == K8S_EV_PATCH) {
        method = "PATCH";
        ctype = "application/merge-patch+json";
        path = util_strdup_printf("/api/v1/namespaces/%s/events/%s", ev_ns, ev_name);
        body = json_pack("{s:I, s:s}", "count", count, "lastTimestamp", ts);
    } else {
        method = "POST";
        path = util_strdup_printf("/api/v1/namespaces/%s/events", ev_ns);
        json_t *io = json_pack("{s:s, s:s}", "kind", kind, "name", name);
        if (io && *av)
            json_object_set_new(io, "apiVersion", json_string(av));
        if (io && *ns)
            json_object_set_new(io, "namespace", json_string(ns));
        if (io && *uid)
            json_object_set_new(io, "uid", json_string(uid));
        const char *rv = full ? obj_meta_str(obj, "resourceVersion") : NULL;
        if (io && rv && *rv)
            json_object_set_new(io, "resourceVersion", json_string(rv));
        body = io ? json_pack("{s:s, s:s, s:{s:s, s:s}, s:o, s:s, s:s, s:s, s:{s:s}, s:s, "
                              "s:s, s:i, s:s, s:s}",
                              "apiVersion", "v1", "kind", "Event", "metadata", "name", ev_name,
                              "namespace", ev_ns, "involvedObject", io, "reason", reason, "message",
                              msg, "type", type, "source", "component", "tether", "firstTimestamp",
                              ts, "lastTimestamp", ts, "count", 1, "reportingComponent", "tether",
                              "reportingInstance", k->identity)
                  : NULL;
    }
    char *kcopy = strdup(key);
    int r = path && body && kcopy ? k8s__request(k, method, path, body, ctype, REQ_TIMEOUT_MS,
                                                 MAX_BODY, NULL, on_done, kcopy, NULL)
                                  : -ENOMEM;
    if (r == 0) {
        if (act == K8S_EV_PATCH)
            e->m_patched++;
        else
            e->m_created++;
        log_event(LOG_DEBUG, "k8s", "event sent", "{s:s, s:s, s:s, s:I}", "object", name, "reason",
                  reason, "event", ev_name, "count", count);
    } else {
        free(kcopy);
        e->m_failed++;
        k8s__events_forget(e, key);
    }
    free(path);
    json_decref(body);
    free(key);
}

int k8s__events_new(K8s *k, K8sEvents **ret)
{
    K8sEvents *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->k = k;
    e->cache = json_object();
    if (!e->cache) {
        free(e);
        return -ENOMEM;
    }
    k8s__bucket_init(&e->bucket, BUCKET_BURST, BUCKET_PER_S, util_now_ms());
    *ret = e;
    return 0;
}

void k8s__events_free(K8sEvents *e)
{
    if (!e)
        return;
    json_decref(e->cache);
    free(e);
}

void k8s__events_metrics(K8sEvents *e, Buf *out)
{
    if (!e)
        return;
    buf_printf(out,
               "# HELP tether_k8s_events_total Kubernetes Events by outcome (created, patched "
               "count, deduplicated, dropped by the rate limit, failed).\n"
               "# TYPE tether_k8s_events_total counter\n"
               "tether_k8s_events_total{outcome=\"created\"} %llu\n"
               "tether_k8s_events_total{outcome=\"patched\"} %llu\n"
               "tether_k8s_events_total{outcome=\"deduplicated\"} %llu\n"
               "tether_k8s_events_total{outcome=\"dropped\"} %llu\n"
               "tether_k8s_events_total{outcome=\"failed\"} %llu\n",
               (unsigned long long)e->m_created, (unsigned long long)e->m_patched,
               (unsigned long long)e->m_deduped, (unsigned long long)e->m_dropped,
               (unsigned long long)e->m_failed);
}
