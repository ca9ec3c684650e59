/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fallback configuration (KIC's FallbackConfiguration, "exclude broken objects"): build the
 * dependency graph of the store's objects, then remove every object a gateway rejected together
 * with everything that depends on it, directly or not. The pruned store is translated again by
 * the controller and pushed instead of the rejected configuration.
 *
 * Edges, from dependency to dependant (KIC internal/dataplane/fallback/graph_dependencies*.go):
 *   Ingress          <- IngressClass, Services, KongServiceFacades, KongUpstreamPolicy, plugins
 *   Service          <- plugins, KongUpstreamPolicy
 *   KongServiceFacade<- plugins, KongUpstreamPolicy
 *   KongPlugin       <- Secrets (configFrom, configPatches)
 *   KongClusterPlugin<- Secrets (configFrom, configPatches, with their namespace)
 *   KongConsumer     <- plugins, credential Secrets
 *   KongConsumerGroup<- plugins
 *   TCPIngress, UDPIngress <- plugins, Services
 *   HTTPRoute, GRPCRoute, TCPRoute, UDPRoute, TLSRoute <- plugins, backend Services
 *   KongCustomEntity <- its parent KongPlugin / KongClusterPlugin
 * "plugins" are the names in the konghq.com/plugins annotation: a KongPlugin of the object's
 * namespace, else the KongClusterPlugin of that name.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "store.h"
#include "util.h"

/* Graph: key "kind\x1fns\x1fname" -> array of dependant keys. */
typedef struct Graph {
    Store *store;
    json_t *dependants;
    int err;
} Graph;

static char *obj_key(const char *kind, const char *ns, const char *name)
{
    return util_strdup_printf("%s\x1f%s\x1f%s", kind, ns ? ns : "", name);
}

/* edge() - @dependant depends on the object kind/ns/name, if it exists in the store. */
static void edge(Graph *g, json_t *dependant, const char *kind, const char *ns, const char *name)
{
    if (!name || !*name || !store_get(g->store, kind, ns, name))
        return;
    char *from = obj_key(kind, ns, name);
    char *to = obj_key(obj_kind(dependant), obj_ns(dependant), obj_name(dependant));
    if (!from || !to) {
        g->err = -ENOMEM;
        goto out;
    }
    json_t *list = json_object_get(g->dependants, from);
    if (!list) {
        list = json_array();
        if (!list || json_object_set_new(g->dependants, from, list) < 0) {
            g->err = -ENOMEM;
            goto out;
        }
    }
    if (json_array_append_new(list, json_string(to)) < 0)
        g->err = -ENOMEM;
out:
    free(from);
    free(to);
}

static void plugin_edges(Graph *g, json_t *o)
{
    const char *list = obj_annotation(o, "konghq.com/plugins");
    if (!list)
        return;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (t > p) {
            char *name = strndup(p, (size_t)(t - p));
            if (!name) {
                g->err = -ENOMEM;
                return;
            }
            /* A namespaced KongPlugin wins over a KongClusterPlugin of the same name. */
            if (store_get(g->store, "KongPlugin", obj_ns(o), name))
                edge(g, o, "KongPlugin", obj_ns(o), name);
            else
                edge(g, o, "KongClusterPlugin", NULL, name);
            free(name);
        }
        p = e;
    }
}

static void upstream_policy_edge(Graph *g, json_t *o)
{
    const char *kup = obj_annotation(o, "konghq.com/upstream-policy");
    if (kup)
        edge(g, o, "KongUpstreamPolicy", obj_ns(o), kup);
}

static void ingress_edges(Graph *g, json_t *o)
{
    const char *cls = obj_get_str(o, "spec.ingressClassName");
    if (!cls || !*cls)
        cls = obj_annotation(o, "kubernetes.io/ingress.class");
    if (cls && *cls)
        edge(g, o, "IngressClass", NULL, cls);
    IngressPathIter it = {0, 0, 0, 0};
    IngressPath p;
    while (obj_ingress_path(o, &it, &p)) { /* the store packs an Ingress's rules */
        const IngressBackend *b = &p.backend;
        if (b->service && b->name && *b->name)
            edge(g, o, "Service", obj_ns(o), b->name);
        if (b->resource && b->res_kind && b->res_group &&
            strcmp(b->res_kind, "KongServiceFacade") == 0 &&
            strcmp(b->res_group, "incubator.ingress-controller.konghq.com") == 0)
            edge(g, o, "KongServiceFacade", obj_ns(o), b->res_name);
    }
    upstream_policy_edge(g, o);
    plugin_edges(g, o);
}

static void backend_service_edges(Graph *g, json_t *o, json_t *refs)
{
    size_t i;
    json_t *ref;
    json_array_foreach(refs, i, ref)
    {
        const char *group = obj_get_str(ref, "group"), *kind = obj_get_str(ref, "kind");
        /* Only core Services are backends the graph knows (KIC IsBackendRefGroupKindSupported). */
        if (group && *group && strcmp(group, "core") != 0)
            continue;
        if (kind && *kind && strcmp(kind, "Service") != 0)
            continue;
        const char *ns = obj_get_str(ref, "namespace");
        edge(g, o, "Service", ns && *ns ? ns : obj_ns(o), obj_get_str(ref, "name"));
    }
}

static void route_edges(Graph *g, json_t *o)
{
    size_t i;
    json_t *rule;
    json_array_foreach(obj_get_path(o, "spec.rules"), i, rule)
    {
        backend_service_edges(g, o, json_object_get(rule, "backendRefs"));
    }
    plugin_edges(g, o);
}

static void kong_plugin_edges(Graph *g, json_t *o, bool cluster)
{
    json_t *ref = obj_get_path(o, "configFrom.secretKeyRef");
    if (ref)
        edge(g, o, "Secret", cluster ? obj_get_str(ref, "namespace") : obj_ns(o),
             obj_get_str(ref, "name"));
    size_t i;
    json_t *patch;
    json_array_foreach(json_object_get(o, "configPatches"), i, patch)
    {
        ref = obj_get_path(patch, "valueFrom.secretKeyRef");
        if (ref)
            edge(g, o, "Secret", cluster ? obj_get_str(ref, "namespace") : obj_ns(o),
                 obj_get_str(ref, "name"));
    }
}

static void stream_ingress_edges(Graph *g, json_t *o)
{
    plugin_edges(g, o);
    size_t i;
    json_t *rule;
    json_array_foreach(obj_get_path(o, "spec.rules"), i, rule)
    {
        edge(g, o, "Service", obj_ns(o), obj_get_str(rule, "backend.serviceName"));
    }
}

static void custom_entity_edges(Graph *g, json_t *o)
{
    json_t *ref = obj_get_path(o, "spec.parentRef");
    const char *group = obj_get_str(ref, "group"), *kind = obj_get_str(ref, "kind");
    if (!ref || !group || strcmp(group, "configuration.konghq.com") != 0 || !kind)
        return;
    if (strcmp(kind, "KongPlugin") == 0) {
        const char *ns = obj_get_str(ref, "namespace");
        /* Cross-namespace parents are not supported (as in KIC). */
        if (ns && *ns && strcmp(ns, obj_ns(o)) != 0)
            return;
        edge(g, o, "KongPlugin", obj_ns(o), obj_get_str(ref, "name"));
    } else if (strcmp(kind, "KongClusterPlugin") == 0) {
        edge(g, o, "KongClusterPlugin", NULL, obj_get_str(ref, "name"));
    }
}

static void object_edges(Graph *g, json_t *o)
{
    const char *k = obj_kind(o);
    if (strcmp(k, "Ingress") == 0) {
        ingress_edges(g, o);
    } else if (strcmp(k, "Service") == 0 || strcmp(k, "KongServiceFacade") == 0) {
        plugin_edges(g, o);
        upstream_policy_edge(g, o);
    } else if (strcmp(k, "HTTPRoute") == 0 || strcmp(k, "GRPCRoute") == 0 ||
               strcmp(k, "TCPRoute") == 0 || strcmp(k, "UDPRoute") == 0 ||
               strcmp(k, "TLSRoute") == 0) {
        route_edges(g, o);
    } else if (strcmp(k, "KongPlugin") == 0) {
        kong_plugin_edges(g, o, false);
    } else if (strcmp(k, "KongClusterPlugin") == 0) {
        kong_plugin_edges(g, o, true);
    } else if (strcmp(k, "KongConsumer") == 0) {
        plugin_edges(g, o);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(o, "credentials"), i, c)
        {
            edge(g, o, "Secret", obj_ns(o), json_string_value(c));
        }
    } else if (strcmp(k, "KongConsumerGroup") == 0) {
        plugin_edges(g, o);
    } else if (strcmp(k, "TCPIngress") == 0 || strcmp(k, "UDPIngress") == 0) {
        stream_ingress_edges(g, o);
    } else if (strcmp(k, "KongCustomEntity") == 0) {
        custom_entity_edges(g, o);
    }
    /* Every other kind (IngressClass, Secret, KongUpstreamPolicy, KongVault...) depends on
     * nothing: it can only be removed as broken itself. */
}

/* Mark @key and everything reachable from it through the dependants edges (iterative DFS). */
static int mark(Graph *g, json_t *doomed, const char *key)
{
    json_t *stack = json_array();
    if (!stack || json_array_append_new(stack, json_string(key)) < 0) {
        json_decref(stack);
        return -ENOMEM;
    }
    while (json_array_size(stack)) {
        size_t last = json_array_size(stack) - 1;
        json_t *k = json_incref(json_array_get(stack, last));
        json_array_remove(stack, last);
        const char *ks = json_string_value(k);
        if (!ks || json_object_get(doomed, ks)) {
            json_decref(k);
            continue;
        }
        json_object_set_new(doomed, ks, json_true());
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(g->dependants, ks), i, d)
        {
            if (!json_object_get(doomed, json_string_value(d)))
                json_array_append(stack, d);
        }
        json_decref(k);
    }
    json_decref(stack);
    return 0;
}

int dp_fallback_store(Store *src, json_t *broken, Store **ret_store)
{
    Graph g = {.store = src, .dependants = json_object()};
    json_t *doomed = json_object();
    Store *out = NULL;
    int r = -ENOMEM;
    if (!g.dependants || !doomed)
        goto out;

    json_t *kinds = store_kinds(src);
    size_t ki;
    json_t *kv;
    json_array_foreach(kinds, ki, kv)
    {
        size_t n = 0;
        json_t *const *objs = store_list(src, json_string_value(kv), &n);
        for (size_t i = 0; i < n; i++)
            object_edges(&g, objs[i]);
    }
    if (g.err) {
        r = g.err;
        goto out;
    }

    size_t i;
    json_t *b;
    json_array_foreach(broken, i, b)
    {
        const char *kind = obj_get_str(b, "kind"), *ns = obj_get_str(b, "namespace");
        const char *name = obj_get_str(b, "name"), *uid = obj_get_str(b, "uid");
        if (!kind || !name)
            continue;
        json_t *o = store_get(src, kind, ns, name);
        if (!o && ns && *ns)
            o = store_get(src, kind, NULL, name); /* a cluster-scoped kind tagged with a ns */
        if (!o)
            continue;
        /* A different UID means the object was replaced since the rejected revision. */
        if (uid && *uid && *obj_uid(o) && strcmp(uid, obj_uid(o)) != 0)
            continue;
        char *key = obj_key(obj_kind(o), obj_ns(o), obj_name(o));
        if (!key || mark(&g, doomed, key) < 0) {
            free(key);
            goto out;
        }
        free(key);
    }

    r = store_clone(src, &out);
    if (r < 0)
        goto out;
    const char *key;
    json_t *v;
    json_object_foreach(doomed, key, v)
    {
        char *copy = strdup(key);
        if (!copy) {
            r = -ENOMEM;
            goto out;
        }
        char *ns = strchr(copy, '\x1f');
        char *name = ns ? strchr(ns + 1, '\x1f') : NULL;
        if (name) {
            *ns++ = '\0';
            *name++ = '\0';
            (void)store_delete(out, copy, ns, name);
        }
        free(copy);
    }
    *ret_store = out;
    out = NULL;
    r = 0;
out:
    store_free(out);
    json_decref(g.dependants);
    json_decref(doomed);
    return r;
}
