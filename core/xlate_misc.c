/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KongVault, deterministic IDs (go-kong's FillID scheme: UUIDv5 in per-type namespaces under
 * fd02801f-0957-4a15-a55a-c8d9606f30b5), and KongCustomEntity.
 */
#include "xlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ID_BASE "fd02801f-0957-4a15-a55a-c8d9606f30b5"

void xlate_vaults(Xlate *x)
{
    size_t n;
    json_t *const *all = store_list(x->st, "KongVault", &n);
    json_t *by_prefix = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *v = all[i];
        if (!xclass_exact_or_empty(x, v))
            continue;
        const char *prefix = obj_get_str(v, "spec.prefix"), *backend = obj_get_str(v, "spec.backend");
        if (!prefix || !backend) {
            xfail(x, v, NULL, "KongVault needs spec.backend and spec.prefix");
            continue;
        }
        json_t *other = json_object_get(by_prefix, prefix);
        if (other) {
            long long a = xcreation(v), b = xcreation(other);
            bool newer = a > b || (a == b && strcmp(obj_name(v), obj_name(other)) > 0);
            json_t *loser = newer ? v : other;
            xfail(x, loser, NULL, "spec.prefix \"%s\" is duplicate", prefix);
            if (newer)
                continue;
        }
        json_object_set(by_prefix, prefix, v);
    }
    const char *prefix;
    json_t *v;
    json_object_foreach(by_prefix, prefix, v)
    {
        /* KIC reads the config into a map: anything else fails the vault, an empty one is left
         * out, as is an empty description. */
        json_t *c = obj_get_path(v, "spec.config");
        if (c && !json_is_object(c) && !json_is_null(c)) {
            xfail(x, v, NULL,
                  "failed to parse configuration of vault \"%s\" to JSON: json: cannot unmarshal "
                  "%s into Go value of type kong.Configuration",
                  obj_name(v), xgo_type(c));
            continue;
        }
        json_t *e = json_pack("{s:s, s:s, s:o}", "name", obj_get_str(v, "spec.backend"), "prefix",
                              prefix, "tags", xtags(v));
        if (json_object_size(c))
            json_object_set(e, "config", c);
        const char *d = obj_get_str(v, "spec.description");
        if (d && *d)
            json_object_set_new(e, "description", json_string(d));
        json_array_append_new(x->vaults, e);
    }
    json_decref(by_prefix);
}

/* UUIDv5(ID_BASE, type) for each entity type: constants, so translation keeps no state and can
 * run on a worker thread. */
static const struct {
    const char *type;
    const char *ns;
} id_ns[] = {
    {"services", "90050c4f-539a-5bd9-bfb5-2ff1c430ca18"},
    {"routes", "78aafefa-16c7-5598-8955-58dc6264b27a"},
    {"consumers", "7e5adc17-c056-5c54-98c0-7f88774fccf6"},
    {"consumergroups", "4b01092a-c5c8-53f2-bed8-175b4436913f"},
    {"vaults", "66ef8da9-18d3-5bbc-9241-62b0e3ead8f1"},
    {"plugins", "e9b79996-068a-576f-804e-98a685f0a58e"},
};

static void fill(json_t *e, const char *type, const char *key)
{
    char id[37], computed[37];
    const char *ns = NULL;
    if (!key || !*key || json_object_get(e, "id"))
        return;
    for (size_t i = 0; i < sizeof(id_ns) / sizeof(id_ns[0]) && !ns; i++)
        if (!strcmp(id_ns[i].type, type))
            ns = id_ns[i].ns;
    if (!ns && util_uuid5(ID_BASE, type, computed) == 0)
        ns = computed;
    if (!ns || util_uuid5(ns, key, id) < 0)
        return;
    json_object_set_new(e, "id", json_stringn_nocheck(id, 36));
}

static const char *s_of(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void fill_plugin(json_t *e)
{
    static const char *const refs[][2] = {{"service", ":service/"},
                                           {"route", ":route/"},
                                           {"consumer", ":consumer/"},
                                           {"consumer_group", ":consumer_group/"}};
    Buf k = BUF_INIT;
    buf_puts(&k, s_of(e, "name") ? s_of(e, "name") : "");
    for (size_t r = 0; r < 4; r++) {
        const char *ref = s_of(e, refs[r][0]);
        if (ref) {
            buf_puts(&k, refs[r][1]);
            buf_puts(&k, ref);
        }
    }
    fill(e, "plugins", k.data);
    buf_deinit(&k);
}

/* Services (with their routes), then plugins: each entity's ID is its own, so this index space
 * is filled on two threads, in chunks (a service with its routes is two IDs and more, a plugin
 * one: halves were uneven). */
static void fill_range(void *ud, int half, size_t from, size_t to)
{
    Xlate *x = ud;
    (void)half; /* nothing in common is written */
    for (size_t i = from; i < to; i++) {
        if (i >= x->nsvcs) {
            fill_plugin(json_array_get(x->plugins, i - x->nsvcs));
            continue;
        }
        XService *s = x->svcs[i];
        fill(s->s, "services", s->name);
        for (size_t r = 0; r < s->nroutes; r++)
            fill(s->routes[r].r, "routes", s_of(s->routes[r].r, "name"));
    }
}

void xlate_fill_ids(Xlate *x)
{
    xsplit_run_chunked(x->nsvcs + json_array_size(x->plugins), 64, fill_range, x);
    size_t i;
    json_t *e;
    json_array_foreach(x->consumers, i, e) fill(e, "consumers", s_of(e, "username"));
    json_array_foreach(x->consumer_groups, i, e) fill(e, "consumergroups", s_of(e, "name"));
    json_array_foreach(x->vaults, i, e) fill(e, "vaults", s_of(e, "prefix"));
}

/* Foreign fields of custom entity types known offline (Kong's schemas for them). */
static const struct {
    const char *type;
    const char *foreign;
} known_foreign[] = {
    {"degraphql_routes", "service"},
};

static const char *const builtin_types[] = {"services",  "routes",          "upstreams", "targets",
                                            "consumers", "consumer_groups", "plugins",   NULL};

static bool plugin_of(const json_t *p, const json_t *kp)
{
    char want[3][300];
    snprintf(want[0], sizeof(want[0]), "k8s-name:%s", obj_name(kp));
    snprintf(want[1], sizeof(want[1]), "k8s-kind:%s", obj_kind(kp));
    snprintf(want[2], sizeof(want[2]), "k8s-namespace:%s", obj_ns(kp));
    int found = 0;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(p, "tags"), i, t)
    {
        for (int k = 0; k < 3; k++)
            if (!strcmp(json_string_value(t), want[k]))
                found |= 1 << k;
    }
    return found == 7 || (found == 3 && !*obj_ns(kp));
}

/*
 * The id of the Kong service plugin instance @p is attached to, directly (*@direct) or through one
 * of its routes, and in *@ns the namespace of the object that named the plugin (KIC keys a
 * plugin's relations by it).
 */
static const char *service_id_for(Xlate *x, const json_t *p, bool *direct, const char **ns)
{
    const char *svc = s_of((json_t *)p, "service");
    const char *route = s_of((json_t *)p, "route");
    for (size_t i = 0; i < x->nsvcs; i++) {
        XService *s = x->svcs[i];
        if (s->skip)
            continue;
        if (svc && !strcmp(s->name, svc)) {
            *direct = true;
            *ns = s->ns;
            return s_of(s->s, "id");
        }
        for (size_t r = 0; route && r < s->nroutes; r++)
            if (!strcmp(s_of(s->routes[r].r, "name"), route)) {
                *direct = false;
                *ns = obj_ns(s->routes[r].parent);
                return s_of(s->s, "id");
            }
    }
    return NULL;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A custom entity's spec.fields as the entity (an object, whatever was written). */
static json_t *fields_copy(json_t *fields)
{
    return json_is_object(fields) ? json_deep_copy(fields) : json_object();
}

void xlate_custom_entities(Xlate *x)
{
    size_t n;
    json_t *const *all = store_list(x->st, "KongCustomEntity", &n);
    for (size_t i = 0; i < n; i++) {
        json_t *ce = all[i];
        /* The controller name is matched as the class annotation of other Kong kinds */
        const char *ctrl = obj_get_str(ce, "spec.controllerName");
        if (!ctrl)
            ctrl = "";
        if (strcmp(ctrl, x->o->ingress_class) && (*ctrl || !x->class_default))
            continue;
        const char *type = obj_get_str(ce, "spec.type");
        json_t *fields = obj_get_path(ce, "spec.fields");
        if (!type || !*type) {
            xfail(x, ce, NULL, "KongCustomEntity has no spec.type");
            continue;
        }
        bool builtin = false;
        for (int b = 0; builtin_types[b]; b++)
            if (!strcmp(type, builtin_types[b]))
                builtin = true;
        if (builtin) {
            xfail(x, ce, NULL, "cannot use known entity type %s in custom entity", type);
            continue;
        }
        json_t *arr = json_object_get(x->custom, type);
        if (!arr) {
            arr = json_array();
            json_object_set_new(x->custom, type, arr);
        }
        const char *foreign = NULL;
        for (size_t k = 0; k < sizeof(known_foreign) / sizeof(known_foreign[0]); k++)
            if (!strcmp(known_foreign[k].type, type))
                foreign = known_foreign[k].foreign;
        /*
         * KIC's findCustomEntityRelatedPlugin, for every type: a parentRef to a KongPlugin or
         * KongClusterPlugin must be granted (when in another namespace) and found, else the
         * entity fails. Its relations are keyed by that namespace and the name.
         */
        json_t *parent_ref = obj_get_path(ce, "spec.parentRef");
        const char *pkind = obj_get_str(parent_ref, "kind");
        const char *pname = obj_get_str(parent_ref, "name");
        const char *pgroup = obj_get_str(parent_ref, "group");
        bool cluster = pkind && !strcmp(pkind, "KongClusterPlugin");
        if (!pgroup || strcmp(pgroup, "configuration.konghq.com") ||
            (!cluster && (!pkind || strcmp(pkind, "KongPlugin")))) {
            json_array_append_new(arr, fields_copy(fields));
            continue;
        }
        if (!pname)
            pname = "";
        const char *pns = obj_get_str(parent_ref, "namespace");
        const char *key_ns = pns && *pns ? pns : obj_ns(ce);
        if (strcmp(key_ns, obj_ns(ce)) && !xplugin_granted(x, key_ns, ce, pname)) {
            xfail(x, ce, NULL,
                  "failed to find attached foreign entities for custom entity: no grant found to "
                  "referenced \"%s:%s\" plugin in the requested remote KongPlugin bind",
                  key_ns, pname);
            continue;
        }
        json_t *kp = cluster ? store_get(x->st, "KongClusterPlugin", "", pname)
                             : store_get(x->st, "KongPlugin", key_ns, pname);
        if (!kp) {
            if (cluster)
                xfail(x, ce, NULL,
                      "failed to find attached foreign entities for custom entity: "
                      "KongClusterPlugin %s not found",
                      pname);
            else
                xfail(x, ce, NULL,
                      "failed to find attached foreign entities for custom entity: "
                      "KongPlugin %s/%s not found",
                      key_ns, pname);
            continue;
        }
        if (!foreign) {
            json_array_append_new(arr, fields_copy(fields));
            continue;
        }
        /*
         * One entity per Kong service the plugin is attached to through the relations of the key
         * (a KongPlugin's are all keyed by its namespace; a KongClusterPlugin's by the namespace
         * of the object naming it): the services it is on, or when it is on none, those of the
         * routes it is on (KIC's getServiceIDFromPluginRels). In id order.
         */
        size_t np = json_array_size(x->plugins), nd = 0, nr = 0, k;
        const char **direct_ids = calloc(np ? np : 1, sizeof(char *));
        const char **route_ids = calloc(np ? np : 1, sizeof(char *));
        json_t *p;
        json_array_foreach(x->plugins, k, p)
        {
            bool direct = false;
            const char *ns = NULL, *id;
            if (!direct_ids || !route_ids || !plugin_of(p, kp) ||
                !(id = service_id_for(x, p, &direct, &ns)) || (cluster && strcmp(ns, key_ns)))
                continue;
            if (direct)
                direct_ids[nd++] = id;
            else
                route_ids[nr++] = id;
        }
        const char **use = nd ? direct_ids : route_ids;
        size_t nu = nd ? nd : nr;
        if (use)
            qsort(use, nu, sizeof(*use), cmp_str_ptr);
        json_t *sorted_ids = json_array();
        for (size_t a = 0; a < nu; a++)
            if (!a || strcmp(use[a], use[a - 1]))
                json_array_append_new(sorted_ids, json_string(use[a]));
        free(direct_ids);
        free(route_ids);
        if (!json_array_size(sorted_ids)) {
            /* A parent plugin attached to nothing: KIC keeps the entity, without the foreign key. */
            json_array_append_new(arr, fields_copy(fields));
        }
        json_t *sid;
        json_array_foreach(sorted_ids, k, sid)
        {
            json_t *e = fields_copy(fields);
            json_object_set_new(e, foreign, json_pack("{s:O}", "id", sid));
            json_array_append_new(arr, e);
        }
        json_decref(sorted_ids);
    }
}
