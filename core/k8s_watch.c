/* SPDX-License-Identifier: Apache-2.0 */
/*
 * List then watch every kind the translator needs. One watcher per kind (and per namespace with
 * --watch-namespace): paged list (limit/continue), then a streamed watch from the list's
 * resourceVersion with bookmarks; a cut connection resumes from the last resourceVersion, 410 Gone
 * relists, errors back off with jitter, a CRD that is not installed (404) is retried later.
 *
 * Secrets and ConfigMaps are filtered as KIC does: only those labelled konghq.com/ca-cert: "true"
 * or konghq.com/credential, or referenced by a watched object, reach the callbacks. For the others
 * only the name is kept (a cluster full of unrelated Secrets costs a few bytes each); when a
 * reference to one appears it is fetched and delivered. They are listed after every other kind
 * so that the references are known by then.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_int.h"
#include "store.h"
#include "log.h"

enum {
    LIST_LIMIT = 500,
    MAX_LIST_BODY = 128 * 1024 * 1024,
    MAX_GET_BODY = 16 * 1024 * 1024,
    MAX_LINE = 16 * 1024 * 1024,
    LIST_TIMEOUT_MS = 60000,
    CRD_RETRY_MS = 30000,
    BACKOFF_BASE_MS = 500,
    BACKOFF_MAX_MS = 30000,
};

enum { FILTER_NONE = 0, FILTER_SECRET, FILTER_CONFIGMAP };

typedef struct KindInfo {
    const char *kind;
    const char *group; /* "" for core */
    const char *version;
    const char *plural;
    bool namespaced;
    bool crd;
    int filter;
} KindInfo;

static const KindInfo kinds[] = {
    {"IngressClass", "networking.k8s.io", "v1", "ingressclasses", false, false, 0},
    {"Ingress", "networking.k8s.io", "v1", "ingresses", true, false, 0},
    {"Service", "", "v1", "services", true, false, 0},
    {"EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", true, false, 0},
    {"KongPlugin", "configuration.konghq.com", "v1", "kongplugins", true, true, 0},
    {"KongClusterPlugin", "configuration.konghq.com", "v1", "kongclusterplugins", false, true, 0},
    {"KongConsumer", "configuration.konghq.com", "v1", "kongconsumers", true, true, 0},
    {"KongIngress", "configuration.konghq.com", "v1", "kongingresses", true, true, 0},
    {"KongConsumerGroup", "configuration.konghq.com", "v1beta1", "kongconsumergroups", true, true,
     0},
    {"TCPIngress", "configuration.konghq.com", "v1beta1", "tcpingresses", true, true, 0},
    {"UDPIngress", "configuration.konghq.com", "v1beta1", "udpingresses", true, true, 0},
    {"KongUpstreamPolicy", "configuration.konghq.com", "v1beta1", "kongupstreampolicies", true,
     true, 0},
    {"IngressClassParameters", "configuration.konghq.com", "v1alpha1", "ingressclassparameterses",
     true, true, 0},
    {"KongVault", "configuration.konghq.com", "v1alpha1", "kongvaults", false, true, 0},
    {"KongCustomEntity", "configuration.konghq.com", "v1alpha1", "kongcustomentities", true, true,
     0},
    {"KongServiceFacade", "incubator.ingress-controller.konghq.com", "v1alpha1",
     "kongservicefacades", true, true, 0},
    /* Filtered kinds last: they start once the others are synced. */
    {"Secret", "", "v1", "secrets", true, false, FILTER_SECRET},
    {"ConfigMap", "", "v1", "configmaps", true, false, FILTER_CONFIGMAP},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

enum { W_IDLE = 0, W_LISTING, W_WATCHING, W_WAITING };

typedef struct Watcher {
    K8sWatch *w;
    const KindInfo *ki;
    char *ns; /* NULL: every namespace */
    int state;
    bool started;
    bool synced;  /* initial list delivered (or skipped) */
    bool skipped; /* CRD not installed */
    bool relist;  /* the watch asked for a relist (410) */
    bool got_data;
    char *rv;
    char *cont;
    json_t *known; /* "ns/name" -> true (delivered), false (held back, filtered kinds) */
    json_t *seen;  /* during a list: keys listed so far */
    uv_timer_t timer;
    K8sReq *req;
    Buf line;
    unsigned failures;
    uint64_t m_events;
    uint64_t m_lists;
    uint64_t m_relists;
    uint64_t m_watches;
    uint64_t m_errors;
} Watcher;

struct K8sWatch {
    K8s *k;
    Watcher *ws;
    size_t nws;
    int open_timers;
    bool phase2;        /* filtered kinds started */
    bool synced;        /* cb.synced called */
    json_t *refs;       /* "Secret/ns/name" -> count of referencing objects */
    json_t *owner_refs; /* "Kind/ns/name" of a referencing object -> array of ref keys */
};

typedef struct FetchCtx {
    K8sWatch *w;
    char *ref; /* "Secret/ns/name" */
} FetchCtx;

static void watcher_schedule(Watcher *wt, uint64_t delay_ms);
static void start_list(Watcher *wt);

/* ---- references (Secret/ConfigMap filtering) ---- */

static void add_ref(json_t *arr, const char *kind, const char *ns, const char *name)
{
    if (!ns || !*ns || !name || !*name)
        return;
    char *key = util_strdup_printf("%s/%s/%s", kind, ns, name);
    if (!key)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(v), key) == 0) {
            free(key);
            return;
        }
    }
    json_array_append_new(arr, json_string(key));
    free(key);
}

/* Comma list of names in an annotation, each trimmed. */
static void add_ref_list(json_t *arr, const char *kind, const char *ns, const char *list)
{
    if (!list)
        return;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n > 0 && n < 254) {
            char name[256];
            memcpy(name, p, n);
            name[n] = '\0';
            add_ref(arr, kind, ns, name);
        }
        if (!e)
            break;
        p = e + 1;
    }
}

static const char *annotation(json_t *obj, const char *key)
{
    return obj_annotation(obj, key);
}

/* Secret/ConfigMap names referenced by @obj, as KIC's reference indexers see them. */
static json_t *collect_refs(const char *kind, json_t *obj)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    const char *ns = obj_ns(obj);
    json_t *spec = json_object_get(obj, "spec");
    size_t i;
    json_t *v;
    if (strcmp(kind, "Ingress") == 0 || strcmp(kind, "TCPIngress") == 0) {
        json_array_foreach(json_object_get(spec, "tls"), i, v)
            add_ref(arr, "Secret", ns, k8s__str(v, "secretName"));
    } else if (strcmp(kind, "Service") == 0) {
        add_ref(arr, "Secret", ns, annotation(obj, "konghq.com/client-cert"));
        add_ref_list(arr, "Secret", ns, annotation(obj, "konghq.com/ca-certificates-secrets"));
        add_ref_list(arr, "ConfigMap", ns,
                     annotation(obj, "konghq.com/ca-certificates-configmaps"));
    } else if (strcmp(kind, "KongPlugin") == 0 || strcmp(kind, "KongClusterPlugin") == 0) {
        bool cluster = kind[4] == 'C';
        json_t *ref = json_object_get(json_object_get(obj, "configFrom"), "secretKeyRef");
        if (ref)
            add_ref(arr, "Secret", cluster ? k8s__str(ref, "namespace") : ns,
                    k8s__str(ref, "name"));
        json_array_foreach(json_object_get(obj, "configPatches"), i, v)
        {
            ref = json_object_get(json_object_get(v, "valueFrom"), "secretKeyRef");
            if (ref)
                add_ref(arr, "Secret", cluster ? k8s__str(ref, "namespace") : ns,
                        k8s__str(ref, "name"));
        }
    } else if (strcmp(kind, "KongConsumer") == 0) {
        json_array_foreach(json_object_get(obj, "credentials"), i, v)
            add_ref(arr, "Secret", ns, json_string_value(v));
    }
    return arr;
}

static bool refers(const KindInfo *ki)
{
    static const char *const names[] = {"Ingress",    "TCPIngress",        "Service",
                                        "KongPlugin", "KongClusterPlugin", "KongConsumer"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(ki->kind, names[i]) == 0)
            return true;
    return false;
}

static bool labelled(json_t *obj)
{
    const char *ca = obj_label(obj, "konghq.com/ca-cert");
    if (ca && strcmp(ca, "true") == 0)
        return true;
    return obj_label(obj, "konghq.com/credential") != NULL;
}

static Watcher *find_watcher(K8sWatch *w, const char *kind, const char *ns)
{
    for (size_t i = 0; i < w->nws; i++) {
        Watcher *wt = &w->ws[i];
        if (strcmp(wt->ki->kind, kind) == 0 && (!wt->ns || strcmp(wt->ns, ns) == 0))
            return wt;
    }
    return NULL;
}

static void on_fetch_done(K8s *k, void *ud, const K8sResp *r);

/* A reference to @ref ("Kind/ns/name") appeared: deliver the object if it was held back. */
static void ref_gained(K8sWatch *w, const char *ref)
{
    K8s *k = w->k;
    char kind[64], ns[256];
    const char *p1 = strchr(ref, '/');
    const char *p2 = p1 ? strchr(p1 + 1, '/') : NULL;
    if (!p2 || (size_t)(p1 - ref) >= sizeof(kind) || (size_t)(p2 - p1 - 1) >= sizeof(ns))
        return;
    snprintf(kind, sizeof(kind), "%.*s", (int)(p1 - ref), ref);
    snprintf(ns, sizeof(ns), "%.*s", (int)(p2 - p1 - 1), p1 + 1);
    Watcher *wt = find_watcher(w, kind, ns);
    if (!wt || !wt->known)
        return;
    json_t *st = json_object_get(wt->known, p1 + 1);
    if (!st || !json_is_false(st))
        return; /* unknown yet (delivered when it appears) or already delivered */
    FetchCtx *fc = calloc(1, sizeof(*fc));
    if (!fc || !(fc->ref = strdup(ref))) {
        free(fc);
        return;
    }
    fc->w = w;
    char *ens = curl_easy_escape(NULL, ns, 0);
    char *ename = curl_easy_escape(NULL, p2 + 1, 0);
    char *path = ens && ename
                     ? util_strdup_printf("/api/v1/namespaces/%s/%s/%s", ens, wt->ki->plural, ename)
                     : NULL;
    curl_free(ens);
    curl_free(ename);
    int r = path ? k8s__request(k, "GET", path, NULL, NULL, 30000, MAX_GET_BODY, NULL,
                                on_fetch_done, fc, NULL)
                 : -ENOMEM;
    free(path);
    if (r < 0) {
        log_event(LOG_WARN, "k8s", "cannot fetch a referenced object, relisting", "{s:s, s:s}",
                  "object", ref, "err", strerror(-r));
        free(fc->ref);
        free(fc);
        /* Relisting re-evaluates every held object against the current references. */
        wt->relist = true;
    }
}

static void deliver_remove(Watcher *wt, const char *ns, const char *name);

/* The last reference to @ref went away: retract the object unless its labels keep it. */
static void ref_lost(K8sWatch *w, const char *ref)
{
    const char *p1 = strchr(ref, '/');
    const char *p2 = p1 ? strchr(p1 + 1, '/') : NULL;
    if (!p2)
        return;
    char kind[64], ns[256];
    snprintf(kind, sizeof(kind), "%.*s", (int)(p1 - ref), ref);
    snprintf(ns, sizeof(ns), "%.*s", (int)(p2 - p1 - 1), p1 + 1);
    Watcher *wt = find_watcher(w, kind, ns);
    if (!wt || !wt->known)
        return;
    json_t *st = json_object_get(wt->known, p1 + 1);
    /* json_null(): delivered because referenced only; json_true(): labelled. */
    if (st && json_is_null(st)) {
        deliver_remove(wt, ns, p2 + 1);
        json_object_set(wt->known, p1 + 1, json_false());
    }
}

static size_t ref_count(K8sWatch *w, const char *ref)
{
    return (size_t)json_integer_value(json_object_get(w->refs, ref));
}

/* Replace the references of object @owner by @now (stolen, may be NULL for a deleted owner). */
static void update_refs(K8sWatch *w, const char *owner, json_t *now)
{
    json_t *old = json_incref(json_object_get(w->owner_refs, owner));
    size_t i;
    json_t *v;
    json_array_foreach(now, i, v)
    {
        const char *ref = json_string_value(v);
        size_t n = ref_count(w, ref);
        json_object_set_new(w->refs, ref, json_integer((json_int_t)n + 1));
    }
    if (now && json_array_size(now) > 0)
        json_object_set(w->owner_refs, owner, now);
    else
        json_object_del(w->owner_refs, owner);
    json_array_foreach(old, i, v)
    {
        const char *ref = json_string_value(v);
        size_t n = ref_count(w, ref);
        if (n <= 1)
            json_object_del(w->refs, ref);
        else
            json_object_set_new(w->refs, ref, json_integer((json_int_t)n - 1));
    }
    /* Act after counting so that a reference moved from one field to another costs nothing. */
    json_array_foreach(now, i, v)
    {
        if (ref_count(w, json_string_value(v)) >= 1)
            ref_gained(w, json_string_value(v));
    }
    json_array_foreach(old, i, v)
    {
        if (ref_count(w, json_string_value(v)) == 0)
            ref_lost(w, json_string_value(v));
    }
    json_decref(old);
    json_decref(now);
}

/* ---- delivery ---- */

static void set_type(Watcher *wt, json_t *obj)
{
    const KindInfo *ki = wt->ki;
    char av[128];
    if (*ki->group)
        snprintf(av, sizeof(av), "%s/%s", ki->group, ki->version);
    else
        snprintf(av, sizeof(av), "%s", ki->version);
    json_object_set_new(obj, "kind", json_string(ki->kind));
    json_object_set_new(obj, "apiVersion", json_string(av));
}

static int obj_key(json_t *obj, char *out, size_t outlen, const char **ret_ns,
                   const char **ret_name)
{
    const char *ns = obj_ns(obj);
    const char *name = obj_name(obj);
    if (!*name)
        return -EINVAL;
    int n = snprintf(out, outlen, "%s/%s", ns, name);
    if (n < 0 || (size_t)n >= outlen)
        return -ENAMETOOLONG;
    *ret_ns = ns;
    *ret_name = name;
    return 0;
}

static void deliver_remove(Watcher *wt, const char *ns, const char *name)
{
    K8s *k = wt->w->k;
    if (k->closing)
        return;
    if (k->cb.remove)
        k->cb.remove(k->cb.ud, wt->ki->kind, ns, name);
}

/* An object exists (listed or ADDED/MODIFIED). @obj borrowed. */
static void on_object(Watcher *wt, json_t *obj)
{
    K8sWatch *w = wt->w;
    K8s *k = w->k;
    char key[600];
    const char *ns, *name;
    if (obj_key(obj, key, sizeof(key), &ns, &name) < 0)
        return;
    set_type(wt, obj);
    if (wt->seen)
        json_object_set(wt->seen, key, json_true());
    if (wt->ki->filter) {
        char ref[700];
        snprintf(ref, sizeof(ref), "%s/%s", wt->ki->kind, key);
        bool lab = labelled(obj);
        bool keep = lab || ref_count(w, ref) > 0;
        json_t *prev = json_object_get(wt->known, key);
        bool was_delivered = prev && !json_is_false(prev);
        if (!keep) {
            /* Held back: only the name stays. */
            json_object_set(wt->known, key, json_false());
            if (was_delivered)
                deliver_remove(wt, ns, name);
            return;
        }
        json_object_set(wt->known, key, lab ? json_true() : json_null());
    } else {
        json_object_set(wt->known, key, json_true());
    }
    if (refers(wt->ki)) {
        char owner[700];
        snprintf(owner, sizeof(owner), "%s/%s", wt->ki->kind, key);
        update_refs(w, owner, collect_refs(wt->ki->kind, obj));
    }
    if (strcmp(wt->ki->kind, "Service") == 0 && k->publish_ns && strcmp(ns, k->publish_ns) == 0 &&
        strcmp(name, k->publish_name) == 0)
        k8s__status_service(k->status, obj, false);
    else if (strcmp(wt->ki->kind, "Ingress") == 0)
        k8s__status_ingress(k->status, obj, key, false);
    else if (strcmp(wt->ki->kind, "IngressClass") == 0)
        k8s__status_class(k->status, obj, name, false);
    if (!k->closing && k->cb.upsert)
        k->cb.upsert(k->cb.ud, obj);
}

/* The object @key ("ns/name") is gone. */
static void on_gone(Watcher *wt, const char *key)
{
    K8sWatch *w = wt->w;
    K8s *k = w->k;
    json_t *prev = json_object_get(wt->known, key);
    if (!prev)
        return;
    bool delivered = !json_is_false(prev);
    const char *slash = strchr(key, '/');
    char ns[256];
    snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key), key);
    const char *name = slash + 1;
    if (refers(wt->ki)) {
        char owner[700];
        snprintf(owner, sizeof(owner), "%s/%s", wt->ki->kind, key);
        update_refs(w, owner, NULL);
    }
    if (strcmp(wt->ki->kind, "Service") == 0 && k->publish_ns && strcmp(ns, k->publish_ns) == 0 &&
        strcmp(name, k->publish_name) == 0)
        k8s__status_service(k->status, NULL, true);
    else if (strcmp(wt->ki->kind, "Ingress") == 0)
        k8s__status_ingress(k->status, NULL, key, true);
    else if (strcmp(wt->ki->kind, "IngressClass") == 0)
        k8s__status_class(k->status, NULL, name, true);
    if (delivered)
        deliver_remove(wt, ns, name);
    json_object_del(wt->known, key);
}

static void on_fetch_done(K8s *k, void *ud, const K8sResp *r)
{
    FetchCtx *fc = ud;
    K8sWatch *w = fc->w;
    if (k->closing)
        goto out;
    const char *p1 = strchr(fc->ref, '/');
    char kind[64];
    snprintf(kind, sizeof(kind), "%.*s", (int)(p1 - fc->ref), fc->ref);
    const char *p2 = strchr(p1 + 1, '/');
    char ns[256];
    snprintf(ns, sizeof(ns), "%.*s", (int)(p2 - p1 - 1), p1 + 1);
    Watcher *wt = find_watcher(w, kind, ns);
    if (!wt)
        goto out;
    if (r->code == CURLE_OK && r->status == 404)
        goto out; /* deleted meanwhile: the watch says so */
    if (r->code != CURLE_OK || r->status != 200 || !json_is_object(r->json)) {
        log_event(LOG_WARN, "k8s", "fetching a referenced object failed, relisting", "{s:s, s:s}",
                  "object", fc->ref, "err", k8s__resp_err(r));
        wt->relist = true;
        if (wt->state == W_WATCHING && wt->req) {
            k8s__cancel(k, wt->req);
        }
        goto out;
    }
    /* Still held back and still referenced? Then it goes in now. */
    json_t *st = json_object_get(wt->known, p1 + 1);
    if (st && json_is_false(st) && ref_count(w, fc->ref) > 0) {
        json_t *seen = wt->seen;
        wt->seen = NULL;
        on_object(wt, r->json);
        wt->seen = seen;
    }
out:
    free(fc->ref);
    free(fc);
}

/* ---- sync bookkeeping ---- */

static void start_watcher(Watcher *wt)
{
    if (wt->started)
        return;
    wt->started = true;
    start_list(wt);
}

static void check_synced(K8sWatch *w)
{
    if (w->synced)
        return;
    bool phase1 = true, all = true;
    for (size_t i = 0; i < w->nws; i++) {
        if (!w->ws[i].synced) {
            all = false;
            if (!w->ws[i].ki->filter)
                phase1 = false;
        }
    }
    if (phase1 && !w->phase2) {
        w->phase2 = true;
        for (size_t i = 0; i < w->nws; i++)
            if (w->ws[i].ki->filter)
                start_watcher(&w->ws[i]);
        return;
    }
    if (all) {
        w->synced = true;
        log_event(LOG_INFO, "k8s", "initial lists delivered", "{s:i}", "watchers", (int)w->nws);
        if (w->k->cb.synced && !w->k->closing)
            w->k->cb.synced(w->k->cb.ud);
    }
}

static void mark_synced(Watcher *wt)
{
    if (wt->synced)
        return;
    wt->synced = true;
    check_synced(wt->w);
}

/* ---- list ---- */

static char *collection_path(Watcher *wt)
{
    const KindInfo *ki = wt->ki;
    Buf b = BUF_INIT;
    if (*ki->group)
        buf_printf(&b, "/apis/%s/%s", ki->group, ki->version);
    else
        buf_printf(&b, "/api/%s", ki->version);
    if (wt->ns)
        buf_printf(&b, "/namespaces/%s", wt->ns);
    buf_printf(&b, "/%s", ki->plural);
    return buf_take(&b);
}

static uint64_t backoff_ms(Watcher *wt)
{
    unsigned f = wt->failures < 10 ? wt->failures : 10;
    uint64_t d = (uint64_t)BACKOFF_BASE_MS << f;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    /* Jitter: between half and the full delay, so replicas do not retry in step. */
    return d / 2 + (uint64_t)(rand() % (int)(d / 2 + 1));
}

static void fail_and_retry(Watcher *wt, const K8sResp *r, const char *what)
{
    wt->failures++;
    wt->m_errors++;
    uint64_t d = backoff_ms(wt);
    if (r && r->retry_after_s > 0 && (uint64_t)r->retry_after_s * 1000 > d)
        d = (uint64_t)r->retry_after_s * 1000;
    if (d > BACKOFF_MAX_MS * 2)
        d = BACKOFF_MAX_MS * 2;
    log_event(LOG_WARN, "k8s", what, "{s:s, s:s, s:s, s:I}", "kind", wt->ki->kind, "namespace",
              wt->ns ? wt->ns : "", "err", r ? k8s__resp_err(r) : "", "retry_ms", (json_int_t)d);
    watcher_schedule(wt, d);
}

static void on_list_done(K8s *k, void *ud, const K8sResp *r);

static void request_list_page(Watcher *wt)
{
    K8s *k = wt->w->k;
    char *base = collection_path(wt);
    char *path = NULL;
    if (base) {
        if (wt->cont) {
            char *c = curl_easy_escape(NULL, wt->cont, 0);
            path = c ? util_strdup_printf("%s?limit=%d&continue=%s", base, LIST_LIMIT, c) : NULL;
            curl_free(c);
        } else {
            path = util_strdup_printf("%s?limit=%d", base, LIST_LIMIT);
        }
    }
    free(base);
    int r = path ? k8s__request(k, "GET", path, NULL, NULL, LIST_TIMEOUT_MS, MAX_LIST_BODY, NULL,
                                on_list_done, wt, &wt->req)
                 : -ENOMEM;
    free(path);
    if (r < 0) {
        wt->req = NULL;
        if (!k->closing)
            fail_and_retry(wt, NULL, "list request could not start");
    }
}

static void start_list(Watcher *wt)
{
    K8s *k = wt->w->k;
    if (k->closing)
        return;
    wt->state = W_LISTING;
    wt->relist = false;
    free(wt->cont);
    wt->cont = NULL;
    json_decref(wt->seen);
    wt->seen = json_object();
    if (wt->synced)
        wt->m_relists++;
    wt->m_lists++;
    request_list_page(wt);
}

static void start_watch(Watcher *wt);

static void on_list_done(K8s *k, void *ud, const K8sResp *r)
{
    Watcher *wt = ud;
    wt->req = NULL;
    if (k->closing)
        return;
    if (r->code == CURLE_OK && r->status == 404 && wt->ki->crd) {
        if (!wt->skipped)
            log_event(LOG_WARN, "k8s", "CRD not installed, skipping kind, will retry",
                      "{s:s, s:s, s:I}", "kind", wt->ki->kind, "group", wt->ki->group, "retry_ms",
                      (json_int_t)CRD_RETRY_MS);
        wt->skipped = true;
        /* Objects of a CRD that was removed are gone. */
        json_decref(wt->seen);
        wt->seen = json_object();
        void *tmp;
        const char *key;
        json_t *v;
        json_object_foreach_safe(wt->known, tmp, key, v) on_gone(wt, key);
        json_decref(wt->seen);
        wt->seen = NULL;
        wt->state = W_WAITING;
        watcher_schedule(wt, CRD_RETRY_MS);
        mark_synced(wt);
        return;
    }
    if (r->code == CURLE_OK && r->status == 410 && wt->cont) {
        /* The continue token expired: start over. */
        log_event(LOG_INFO, "k8s", "list continue token expired, relisting", "{s:s}", "kind",
                  wt->ki->kind);
        start_list(wt);
        return;
    }
    json_t *items = json_object_get(r->json, "items");
    if (r->code != CURLE_OK || r->status != 200 || !json_is_array(items)) {
        wt->state = W_WAITING;
        fail_and_retry(wt, r, "list failed");
        return;
    }
    if (wt->skipped) {
        log_event(LOG_INFO, "k8s", "CRD now installed, watching kind", "{s:s}", "kind",
                  wt->ki->kind);
        wt->skipped = false;
    }
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        if (json_is_object(item))
            on_object(wt, item);
    }
    json_t *md = json_object_get(r->json, "metadata");
    const char *cont = k8s__str(md, "continue");
    if (!wt->cont) {
        /* The first page's resourceVersion is the snapshot the watch starts from. */
        free(wt->rv);
        wt->rv = strdup(k8s__str(md, "resourceVersion"));
    }
    free(wt->cont);
    wt->cont = *cont ? strdup(cont) : NULL;
    if (wt->cont) {
        request_list_page(wt);
        return;
    }
    /* Complete: whatever was known but not listed is gone. */
    void *tmp;
    const char *key;
    json_t *v;
    json_t *gone = json_array();
    json_object_foreach_safe(wt->known, tmp, key, v)
    {
        if (!json_object_get(wt->seen, key))
            json_array_append_new(gone, json_string(key));
    }
    json_decref(wt->seen);
    wt->seen = NULL;
    json_array_foreach(gone, i, v) on_gone(wt, json_string_value(v));
    json_decref(gone);
    wt->failures = 0;
    log_event(LOG_DEBUG, "k8s", "listed", "{s:s, s:s, s:i, s:s}", "kind", wt->ki->kind, "namespace",
              wt->ns ? wt->ns : "", "objects", (int)json_object_size(wt->known), "resourceVersion",
              wt->rv ? wt->rv : "");
    mark_synced(wt);
    start_watch(wt);
}

/* ---- watch ---- */

static void watch_event(Watcher *wt, const char *line, size_t len)
{
    K8s *k = wt->w->k;
    json_error_t jerr;
    json_t *ev = k8s__json_loadb(line, len, &jerr);
    if (!json_is_object(ev)) {
        log_event(LOG_WARN, "k8s", "bad watch event, ignoring", "{s:s, s:s}", "kind", wt->ki->kind,
                  "err", jerr.text);
        json_decref(ev);
        return;
    }
    const char *type = k8s__str(ev, "type");
    json_t *obj = json_object_get(ev, "object");
    wt->got_data = true;
    wt->failures = 0;
    if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        if (code == 410) {
            log_event(LOG_INFO, "k8s", "watch resourceVersion expired, relisting", "{s:s, s:s}",
                      "kind", wt->ki->kind, "resourceVersion", wt->rv ? wt->rv : "");
        } else {
            log_event(LOG_WARN, "k8s", "watch error event, relisting", "{s:s, s:I, s:s}", "kind",
                      wt->ki->kind, "code", code, "message", k8s__str(obj, "message"));
        }
        wt->relist = true;
        json_decref(ev);
        return;
    }
    if (!json_is_object(obj)) {
        json_decref(ev);
        return;
    }
    const char *rv = k8s__str(json_object_get(obj, "metadata"), "resourceVersion");
    if (*rv) {
        free(wt->rv);
        wt->rv = strdup(rv);
    }
    wt->m_events++;
    if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
        on_object(wt, obj);
    } else if (strcmp(type, "DELETED") == 0) {
        char key[600];
        const char *ns, *name;
        if (obj_key(obj, key, sizeof(key), &ns, &name) == 0)
            on_gone(wt, key);
    }
    (void)k;
    json_decref(ev);
}

static int on_watch_chunk(K8s *k, void *ud, long status, const char *data, size_t len)
{
    Watcher *wt = ud;
    if (k->closing)
        return 1;
    if (status != 200)
        return 0; /* an error body: the status decides in on_watch_done */
    if (wt->line.len + len > MAX_LINE) {
        log_event(LOG_ERROR, "k8s", "watch event too large, relisting", "{s:s, s:I}", "kind",
                  wt->ki->kind, "max", (json_int_t)MAX_LINE);
        wt->relist = true;
        return 1;
    }
    size_t scan = wt->line.len;
    if (buf_append(&wt->line, data, len) < 0)
        return 1;
    size_t start = 0;
    for (size_t i = scan; i < wt->line.len; i++) {
        if (wt->line.data[i] != '\n')
            continue;
        if (i > start)
            watch_event(wt, wt->line.data + start, i - start);
        start = i + 1;
        if (wt->relist || k->closing)
            return 1;
    }
    if (start > 0) {
        memmove(wt->line.data, wt->line.data + start, wt->line.len - start);
        wt->line.len -= start;
        wt->line.data[wt->line.len] = '\0';
    }
    return 0;
}

static void on_watch_done(K8s *k, void *ud, const K8sResp *r)
{
    Watcher *wt = ud;
    wt->req = NULL;
    buf_reset(&wt->line);
    if (k->closing)
        return;
    wt->state = W_WAITING;
    if (wt->relist || (r->code == CURLE_OK && r->status == 410)) {
        /* A short random pause so replicas do not relist in step. */
        wt->relist = true;
        watcher_schedule(wt, (uint64_t)(rand() % 200));
        return;
    }
    if (r->code == CURLE_OK && r->status == 200) {
        /* The server ended the watch (timeoutSeconds): resume at once. */
        watcher_schedule(wt, 0);
        return;
    }
    if (r->code == CURLE_OK && r->status == 404 && wt->ki->crd) {
        /* CRD removed: the list path handles it. */
        wt->relist = true;
        watcher_schedule(wt, 0);
        return;
    }
    if (r->code != CURLE_OK && wt->got_data) {
        /* A healthy watch was cut: resume from the last resourceVersion soon. */
        wt->failures = 0;
        wt->m_errors++;
        log_event(LOG_INFO, "k8s", "watch connection ended, resuming", "{s:s, s:s, s:s}", "kind",
                  wt->ki->kind, "resourceVersion", wt->rv ? wt->rv : "", "err", k8s__resp_err(r));
        watcher_schedule(wt, backoff_ms(wt));
        return;
    }
    fail_and_retry(wt, r, "watch failed");
}

static void start_watch(Watcher *wt)
{
    K8s *k = wt->w->k;
    if (k->closing)
        return;
    wt->state = W_WATCHING;
    wt->got_data = false;
    wt->m_watches++;
    buf_reset(&wt->line);
    char *base = collection_path(wt);
    char *rv = wt->rv ? curl_easy_escape(NULL, wt->rv, 0) : NULL;
    /* Like client-go: a random server-side timeout of 5-10 minutes spreads the re-watches. */
    long tmo = 300 + rand() % 300;
    char *path = base ? util_strdup_printf("%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true"
                                           "&timeoutSeconds=%ld",
                                           base, rv ? rv : "", tmo)
                      : NULL;
    curl_free(rv);
    free(base);
    int r = path ? k8s__request(k, "GET", path, NULL, NULL, (tmo + 60) * 1000L, 0, on_watch_chunk,
                                on_watch_done, wt, &wt->req)
                 : -ENOMEM;
    free(path);
    if (r < 0) {
        wt->req = NULL;
        wt->state = W_WAITING;
        fail_and_retry(wt, NULL, "watch request could not start");
    }
}

static void on_timer(uv_timer_t *t)
{
    Watcher *wt = t->data;
    if (wt->w->k->closing)
        return;
    if (wt->relist || wt->skipped || !wt->rv || !*wt->rv)
        start_list(wt);
    else
        start_watch(wt);
}

static void watcher_schedule(Watcher *wt, uint64_t delay_ms)
{
    wt->state = W_WAITING;
    uv_timer_start(&wt->timer, on_timer, delay_ms, 0);
}

/* ---- lifetime ---- */

int k8s__watch_new(K8s *k, K8sWatch **ret)
{
    K8sWatch *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->k = k;
    size_t nns = 0;
    if (k->watch_namespaces)
        while (k->watch_namespaces[nns])
            nns++;
    size_t n = 0;
    for (size_t i = 0; i < NKINDS; i++)
        n += kinds[i].namespaced && nns ? nns : 1;
    w->ws = calloc(n, sizeof(Watcher));
    w->refs = json_object();
    w->owner_refs = json_object();
    if (!w->ws || !w->refs || !w->owner_refs)
        goto fail;
    for (size_t i = 0; i < NKINDS; i++) {
        size_t per = kinds[i].namespaced && nns ? nns : 1;
        for (size_t j = 0; j < per; j++) {
            Watcher *wt = &w->ws[w->nws++];
            wt->w = w;
            wt->ki = &kinds[i];
            wt->known = json_object();
            if (!wt->known)
                goto fail;
            if (kinds[i].namespaced && nns && !(wt->ns = strdup(k->watch_namespaces[j])))
                goto fail;
        }
    }
    *ret = w;
    return 0;
fail:
    k->watch = w;
    k8s__watch_close(w);
    k->watch = NULL;
    return -ENOMEM;
}

static void watch_free(K8sWatch *w)
{
    for (size_t i = 0; i < w->nws; i++) {
        Watcher *wt = &w->ws[i];
        free(wt->ns);
        free(wt->rv);
        free(wt->cont);
        json_decref(wt->known);
        json_decref(wt->seen);
        buf_deinit(&wt->line);
    }
    free(w->ws);
    json_decref(w->refs);
    json_decref(w->owner_refs);
    free(w);
}

int k8s__watch_start(K8sWatch *w)
{
    K8s *k = w->k;
    for (size_t i = 0; i < w->nws; i++) {
        uv_timer_init(k->loop, &w->ws[i].timer);
        w->ws[i].timer.data = &w->ws[i];
        w->open_timers++;
    }
    for (size_t i = 0; i < w->nws; i++)
        if (!w->ws[i].ki->filter)
            start_watcher(&w->ws[i]);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    Watcher *wt = h->data;
    K8sWatch *w = wt->w;
    if (--w->open_timers > 0)
        return;
    K8s *k = w->k;
    k->watch = NULL;
    watch_free(w);
    k8s__close_step(k);
}

void k8s__watch_close(K8sWatch *w)
{
    K8s *k = w->k;
    if (w->open_timers == 0) {
        k->watch = NULL;
        watch_free(w);
        k8s__close_step(k);
        return;
    }
    for (size_t i = 0; i < w->nws; i++) {
        if (w->ws[i].req)
            k8s__cancel(k, w->ws[i].req);
        uv_timer_stop(&w->ws[i].timer);
        uv_close((uv_handle_t *)&w->ws[i].timer, on_timer_closed);
    }
}

void k8s__watch_metrics(K8sWatch *w, Buf *out)
{
    if (!w)
        return;
    static const struct {
        const char *name, *help;
        size_t off;
    } ms[] = {
        {"tether_k8s_watch_events_total", "Watch events received.", offsetof(Watcher, m_events)},
        {"tether_k8s_lists_total", "Lists started (initial and relists).",
         offsetof(Watcher, m_lists)},
        {"tether_k8s_relists_total", "Relists after the initial list (410 Gone, errors).",
         offsetof(Watcher, m_relists)},
        {"tether_k8s_watches_total", "Watch requests started.", offsetof(Watcher, m_watches)},
        {"tether_k8s_watch_errors_total", "Failed or cut lists and watches.",
         offsetof(Watcher, m_errors)},
    };
    for (size_t m = 0; m < sizeof(ms) / sizeof(ms[0]); m++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", ms[m].name, ms[m].help, ms[m].name);
        for (size_t i = 0; i < w->nws; i++) {
            Watcher *wt = &w->ws[i];
            uint64_t v = *(uint64_t *)((char *)wt + ms[m].off);
            buf_printf(out, "%s{kind=\"%s\",namespace=\"%s\"} %llu\n", ms[m].name, wt->ki->kind,
                       wt->ns ? wt->ns : "", (unsigned long long)v);
        }
    }
    buf_printf(out, "# HELP tether_k8s_objects Objects known per kind (for Secrets and ConfigMaps "
                    "including the ones held back).\n# TYPE tether_k8s_objects gauge\n");
    for (size_t i = 0; i < w->nws; i++) {
        Watcher *wt = &w->ws[i];
        buf_printf(out, "tether_k8s_objects{kind=\"%s\",namespace=\"%s\"} %zu\n", wt->ki->kind,
                   wt->ns ? wt->ns : "", json_object_size(wt->known));
    }
    buf_printf(out,
               "# HELP tether_k8s_synced Whether every initial list has been delivered.\n"
               "# TYPE tether_k8s_synced gauge\ntether_k8s_synced %d\n",
               w->synced ? 1 : 0);
}

void k8s__watch_feed(K8sWatch *w, size_t kind_index, const char *data, size_t len)
{
    const KindInfo *ki = &kinds[kind_index % NKINDS];
    for (size_t i = 0; i < w->nws; i++) {
        Watcher *wt = &w->ws[i];
        if (wt->ki != ki)
            continue;
        (void)on_watch_chunk(w->k, wt, 200, data, len);
        /* A relist would follow on a real connection; the stream ends here. */
        wt->relist = false;
        buf_reset(&wt->line);
        return;
    }
}
