/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KongPlugin and KongClusterPlugin: konghq.com/plugins references from Services, facades,
 * route parents, consumers and consumer groups; KIC's combination rule; config, configFrom and
 * configPatches from Secrets; cross-namespace references through ReferenceGrants; global plugins.
 */
#include "xlate_int.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "util.h"

/* Borrowed pointers (strings or objects) in the order they were added. */
typedef struct PtrVec {
    const void **v;
    size_t n, cap;
} PtrVec;

static void vec_add(PtrVec *p, const void *v)
{
    if (util_grow(&p->v, &p->cap, p->n, sizeof(*p->v), 4) == 0)
        p->v[p->n++] = v;
}

enum { REL_SERVICES, REL_ROUTES, REL_CONSUMERS, REL_GROUPS, REL_KINDS };

/* What one KongPlugin ("ns:name") is attached to. Strings are borrowed from the run's entities. */
typedef struct Rel {
    char *key;
    PtrVec to[REL_KINDS];
    PtrVec refs;       /* the objects that reference it, for failures, but groups */
    PtrVec group_refs; /* the KongConsumerGroups, named only when no consumer refers */
} Rel;

typedef struct Rels {
    Rel *v;
    size_t n, cap;
    XIndex index; /* key -> position in v */
} Rels;

/* The relations of KongPlugin @key ("ns:name"), made empty at first; NULL when memory runs out. */
static Rel *rel_get(Rels *rels, const char *key)
{
    size_t i = xindex_get(&rels->index, key);
    if (i != SIZE_MAX)
        return &rels->v[i];
    if (util_grow(&rels->v, &rels->cap, rels->n, sizeof(*rels->v), 16) < 0)
        return NULL;
    Rel *r = &rels->v[rels->n];
    memset(r, 0, sizeof(*r));
    if (!(r->key = strdup(key)) || xindex_put(&rels->index, r->key, rels->n) < 0) {
        free(r->key);
        return NULL;
    }
    rels->n++;
    return r;
}

static void rels_free(Rels *rels)
{
    for (size_t i = 0; i < rels->n; i++) {
        free(rels->v[i].key);
        for (int k = 0; k < REL_KINDS; k++)
            free(rels->v[i].to[k].v);
        free(rels->v[i].refs.v);
        free(rels->v[i].group_refs.v);
    }
    free(rels->v);
    xindex_clear(&rels->index);
}

typedef struct Item {
    const void *v;
    size_t pos;
} Item;

static int cmp_item_str(const void *a, const void *b)
{
    const Item *x = a, *y = b;
    int c = strcmp(x->v, y->v);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int cmp_item_ptr(const void *a, const void *b)
{
    const Item *x = a, *y = b;
    if (x->v != y->v)
        return (uintptr_t)x->v < (uintptr_t)y->v ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/*
 * Drop repeats, keeping each first occurrence where it was. Sorting once is cheaper than a set
 * lookup per reference when thousands of Ingresses share one plugin.
 */
static void vec_unique(PtrVec *p, bool strings)
{
    if (p->n < 2)
        return;
    Item *it = malloc(p->n * sizeof(*it));
    bool *drop = calloc(p->n, sizeof(*drop));
    if (!it || !drop) {
        free(it);
        free(drop);
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        it[i] = (Item){p->v[i], i};
    qsort(it, p->n, sizeof(*it), strings ? cmp_item_str : cmp_item_ptr);
    for (size_t i = 1; i < p->n; i++)
        if (strings ? !strcmp(it[i].v, it[i - 1].v) : it[i].v == it[i - 1].v)
            drop[it[i].pos] = true;
    size_t o = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!drop[i])
            p->v[o++] = p->v[i];
    p->n = o;
    free(it);
    free(drop);
}

bool xplugin_granted(Xlate *x, const char *ns, const json_t *from, const char *name)
{
    char g[128], v[64];
    xgroup_version(from, g, sizeof(g), v, sizeof(v));
    size_t n;
    json_t *const *grants = store_list(x->st, "ReferenceGrant", &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(obj_ns(grants[i]), ns))
            continue;
        bool from_ok = false, to_ok = false;
        size_t k;
        json_t *f;
        json_array_foreach(obj_get_path(grants[i], "spec.from"), k, f)
        {
            const char *fg = obj_get_str(f, "group"), *fk = obj_get_str(f, "kind");
            const char *fn = obj_get_str(f, "namespace");
            if (fg && fk && fn && !strcmp(fg, g) && !strcmp(fk, obj_kind(from)) &&
                !strcmp(fn, obj_ns(from)))
                from_ok = true;
        }
        json_t *t;
        json_array_foreach(obj_get_path(grants[i], "spec.to"), k, t)
        {
            const char *tg = obj_get_str(t, "group"), *tk = obj_get_str(t, "kind");
            const char *tn = obj_get_str(t, "name");
            if (tg && tk && !strcmp(tg, "configuration.konghq.com") && !strcmp(tk, "KongPlugin") &&
                (!tn || !*tn || !strcmp(tn, name)))
                to_ok = true;
        }
        if (from_ok && to_ok)
            return true;
    }
    return false;
}

/* Relation @what=@ref of plugin @s (a name, or "namespace:name") named by @obj, in @obj_ns. */
static void relate_one(Xlate *x, Rels *rels, json_t *obj, const char *obj_ns, int what,
                       const char *ref, const char *s)
{
    const char *colon = strchr(s, ':');
    char key[600];
    if (colon && (colon == s || !colon[1]))
        return; /* "ns:" or ":name": KIC passes over it */
    if (colon) {
        /* KIC trims the namespace and the name apart ("ns : name"), and any namespace written
         * out, the referrer's own included, needs a ReferenceGrant */
        char ns[256], name[300];
        xtrim_apart(s, colon, ns, sizeof(ns), name, sizeof(name));
        xjoin(key, sizeof(key), ns, ":", name, NULL);
        if (!xplugin_granted(x, ns, obj, name)) {
            xfail(x, obj, NULL,
                  "no grant found to referenced \"%s\" plugin in the requested remote "
                  "KongPlugin bind",
                  key);
            return;
        }
    } else {
        xjoin(key, sizeof(key), obj_ns, ":", s, NULL);
    }
    Rel *r = rel_get(rels, key);
    if (!r)
        return;
    vec_add(&r->to[what], ref);
    vec_add(what == REL_GROUPS ? &r->group_refs : &r->refs, obj);
}

/*
 * Add relation @what=@ref for every plugin named in @obj's konghq.com/plugins annotation: the
 * comma-separated names, trimmed, as xsplit() reads them, without making a list of them (this
 * runs for every Service, route parent and consumer).
 */
static void relate_ann(Xlate *x, Rels *rels, json_t *obj, const char *ns, int what,
                       const char *ref, const char *ann)
{
    if (!ann || !ref)
        return;
    for (const char *p = ann;;) {
        const char *e = strchr(p, ','), *a = p, *b = e ? e : p + strlen(p);
        xtrim(&a, &b);
        if (b > a) {
            char small[256], *s = (size_t)(b - a) < sizeof(small) ? small : malloc((size_t)(b - a) + 1);
            if (s) {
                memcpy(s, a, (size_t)(b - a));
                s[b - a] = 0;
                relate_one(x, rels, obj, ns, what, ref, s);
                if (s != small)
                    free(s);
            }
        }
        if (!e)
            break;
        p = e + 1;
    }
}

static void relate(Xlate *x, Rels *rels, json_t *obj, int what, const char *ref)
{
    relate_ann(x, rels, obj, obj_ns(obj), what, ref, obj_annotation(obj, ANN "plugins"));
}

/*
 * What a Service or route names in konghq.com/plugins, read on two threads: the objects are cold
 * by now, and reading them was most of relating them.
 */
typedef struct RelReq {
    json_t *obj;
    int what;
    const char *ref;
    json_t *route; /* a route's Kong fields, where the name (ref) comes from */
    const char *ann;
    json_t *ann_of; /* where the annotation is read when not on @obj (a Service's facade) */
    const char *ns; /* @obj's */
} RelReq;

static void read_rel_anns(void *ud, int half, size_t from, size_t to)
{
    RelReq *q = ud;
    (void)half;
    for (size_t i = from; i < to; i++) {
        obj_prefetch_in(&q[0].obj, sizeof(*q), to, i);
        q[i].ann = obj_annotation(q[i].ann_of ? q[i].ann_of : q[i].obj, ANN "plugins");
        if (q[i].ann && q[i].route)
            q[i].ref = json_string_value(json_object_get(q[i].route, "name"));
        if (q[i].ann)
            q[i].ns = obj_ns(q[i].obj);
    }
}

/* Queue @r in @q, or relate it at once when there is no queue (out of memory). */
static void rel_req(Xlate *x, Rels *rels, RelReq *q, size_t *k, RelReq r)
{
    if (q) {
        q[(*k)++] = r;
        return;
    }
    read_rel_anns(&r, 0, 0, 1);
    relate_ann(x, rels, r.obj, r.ns, r.what, r.ref, r.ann);
}

static void relate_services(Xlate *x, Rels *rels)
{
    size_t n = 0, k = 0;
    for (size_t i = 0; i < x->nsvcs; i++)
        n += json_object_size(x->svcs[i]->k8s) + 1 + x->svcs[i]->nroutes;
    RelReq *q = calloc(n ? n : 1, sizeof(*q));
    for (size_t i = 0; i < x->nsvcs; i++) {
        XService *s = x->svcs[i];
        if (s->skip)
            continue;
        const char *key;
        json_t *svc;
        /* A KongServiceFacade's konghq.com/plugins replaces its Service's, as KIC merges them
         * into the Service (which names the plugin, in failures and grants; none, no plugin) */
        json_t *fa = s->facade && obj_annotation(s->facade, ANN "plugins") ? s->facade : NULL;
        json_object_foreach(s->k8s, key, svc)
            rel_req(x, rels, q, &k, (RelReq){svc, REL_SERVICES, s->name, NULL, NULL, fa});
        for (size_t r = 0; r < s->nroutes; r++)
            rel_req(x, rels, q, &k,
                    (RelReq){s->routes[r].parent, REL_ROUTES, NULL, s->routes[r].r, NULL, NULL});
    }
    xsplit_run(k, read_rel_anns, q);
    for (size_t i = 0; i < k; i++)
        relate_ann(x, rels, q[i].obj, q[i].ns, q[i].what, q[i].ref, q[i].ann);
    free(q);
}

/* A configuration from a Secret: JSON, else YAML; NULL when it is neither. */
static json_t *parse_value(const char *s, size_t len, bool json_only)
{
    json_error_t e;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &e);
    if (v || json_only)
        return v;
    json_t *docs = manifest_yaml_to_json(s, len, NULL, 0);
    if (docs && !json_array_size(docs)) { /* empty YAML: no configuration */
        json_decref(docs);
        return json_null();
    }
    if (!docs || json_array_size(docs) != 1) {
        json_decref(docs);
        return NULL;
    }
    v = json_incref(json_array_get(docs, 0));
    json_decref(docs);
    return v;
}

/* The decimal index @t (Go's strconv.Atoi: an optional sign, digits), or false. */
static bool patch_index(const char *t, long *ret)
{
    long long v;
    if (!xparse_int(t, &v) || v < -1000000000 || v > 1000000000)
        return false;
    *ret = (long)v;
    return true;
}

/* Add @v (stolen) under @key to the container @c, as a JSON patch "add" does. */
static int patch_put(json_t *c, const char *key, json_t *v, char *err, size_t errlen)
{
    long i;
    if (json_is_object(c))
        return json_object_set_new(c, key, v) < 0 ? -1 : 0;
    if (json_is_array(c)) {
        if (!strcmp(key, "-"))
            return json_array_append_new(c, v) < 0 ? -1 : 0;
        if (patch_index(key, &i) && i >= 0 && (size_t)i <= json_array_size(c))
            return json_array_insert_new(c, (size_t)i, v) < 0 ? -1 : 0;
        snprintf(err, errlen, "Unable to access invalid index: %s", key);
    } else {
        snprintf(err, errlen, "add operation does not apply: doc is missing path");
    }
    json_decref(v);
    return -1;
}

/*
 * A configPatches entry: a JSON patch "add" of @value at @path, creating missing parents (an
 * array where the next step is an index, padded with nulls) as KIC's json-patch does with
 * EnsurePathExistsOnAdd. The empty path replaces the whole document. -1 with @err set on failure.
 */
static int patch_add(json_t **doc, const char *path, json_t *value, char *err, size_t errlen)
{
    if (!*path) {
        if (!json_is_object(value) && !json_is_array(value)) {
            snprintf(err, errlen, "replace operation value must be object or array");
            return -1;
        }
        json_decref(*doc);
        *doc = json_incref(value);
        return 0;
    }
    if (*path != '/') {
        snprintf(err, errlen, "add operation does not apply: doc is missing path: \"%s\"", path);
        return -1;
    }
    json_t *cur = *doc;
    for (const char *p = path + 1;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p), o = 0;
        char tok[256];
        for (size_t i = 0; i < n && o + 1 < sizeof(tok); i++) { /* ~1 is '/', ~0 is '~' */
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1'))
                tok[o++] = p[++i] == '0' ? '~' : '/';
            else
                tok[o++] = p[i];
        }
        tok[o] = 0;
        if (!slash)
            return patch_put(cur, tok, json_incref(value), err, errlen);
        long idx;
        json_t *next = NULL;
        if (json_is_object(cur))
            next = json_object_get(cur, tok);
        else if (json_is_array(cur) && patch_index(tok, &idx) && idx >= 0)
            next = json_array_get(cur, (size_t)idx);
        if (!next) {
            /* An array short of the index is padded with nulls first. */
            if (json_is_array(cur) && patch_index(tok, &idx))
                while (idx > 0 && json_array_size(cur) < (size_t)idx)
                    json_array_append_new(cur, json_null());
            const char *after = slash + 1, *end = strchr(after, '/');
            char nt[32];
            size_t nl = end ? (size_t)(end - after) : strlen(after);
            snprintf(nt, sizeof(nt), "%.*s", (int)(nl < sizeof(nt) ? nl : sizeof(nt) - 1), after);
            long pad = 0;
            bool array = !strcmp(nt, "-") || patch_index(nt, &pad);
            next = array ? json_array() : json_object();
            for (long i = 0; array && i < pad; i++)
                json_array_append_new(next, json_null());
            json_incref(next);
            if (patch_put(cur, tok, next, err, errlen) < 0) {
                json_decref(next);
                return -1;
            }
            json_decref(next); /* the container holds it */
        } else if (!json_is_object(next) && !json_is_array(next)) {
            snprintf(err, errlen, "add operation does not apply: doc is missing path: \"%s\"",
                     path);
            return -1;
        }
        cur = next;
        p = slash + 1;
    }
}

/*
 * The value of secretKeyRef @ref's key in namespace @ns (new reference), or NULL with KIC's error
 * in @err ("Secret ns/name not found" or "no key ..."); *@missing tells the first from the second.
 */
static json_t *secret_ref_value(Xlate *x, const char *ns, json_t *ref, bool *missing, char *err,
                                size_t errlen)
{
    const char *name = obj_get_str(ref, "name"), *key = obj_get_str(ref, "key");
    json_t *secret = name ? store_get(x->st, "Secret", ns, name) : NULL;
    json_t *raw = secret && key ? xsecret_data(secret, key) : NULL;
    *missing = !secret;
    if (!secret)
        snprintf(err, errlen, "Secret %s/%s not found", ns, name ? name : "");
    else if (!raw)
        snprintf(err, errlen, "no key '%s' in secret '%s/%s'", key ? key : "", ns, name);
    return raw;
}

/*
 * The configuration in a Secret's key, as KIC's SecretToConfiguration reads it: an object, or JSON
 * null for none (null or empty YAML). NULL with a failure.
 */
static json_t *secret_config(Xlate *x, json_t *kp, const char *ns, json_t *ref, const char *what)
{
    const char *name = obj_get_str(ref, "name"), *key = obj_get_str(ref, "key");
    char err[600];
    bool missing;
    json_t *raw = secret_ref_value(x, ns, ref, &missing, err, sizeof(err));
    if (!raw) {
        if (missing)
            xfail(x, kp, NULL, "%s: error fetching plugin configuration secret '%s/%s': %s", what,
                  ns, name ? name : "", err);
        else
            xfail(x, kp, NULL, "%s: %s", what, err);
        return NULL;
    }
    json_t *v = parse_value(json_string_value(raw), json_string_length(raw), false);
    json_decref(raw);
    if (!json_is_object(v) && !json_is_null(v)) {
        json_decref(v);
        xfail(x, kp, NULL,
              "%s: key '%s' in secret '%s/%s' contains neither valid JSON nor valid YAML)", what,
              key, ns, name);
        return NULL;
    }
    return v;
}

/*
 * The configuration of a KongPlugin/KongClusterPlugin (new reference; JSON null for none), or
 * NULL with a failure: config with configPatches applied (KIC's RawConfigurationWithPatches...),
 * which must be an object or null, or configFrom's Secret when the patched config is empty.
 */
static json_t *plugin_config(Xlate *x, json_t *kp, bool cluster)
{
    char what[600], err[300];
    /* KIC says KongPlugin for a KongClusterPlugin too (with an empty namespace) */
    snprintf(what, sizeof(what), "could not parse KongPlugin %s/%s config", obj_ns(kp),
             obj_name(kp));
    json_t *config = json_object_get(kp, "config");
    json_t *patches = json_object_get(kp, "configPatches");
    json_t *cfg = json_array_size(patches) ? (config ? json_deep_copy(config) : json_object())
                                           : json_incref(config ? config : json_null());
    size_t i;
    json_t *patch;
    json_array_foreach(patches, i, patch)
    {
        const char *path = obj_get_str(patch, "path");
        json_t *ref = obj_get_path(patch, "valueFrom.secretKeyRef");
        const char *ns = cluster ? obj_get_str(ref, "namespace") : obj_ns(kp);
        bool missing;
        json_t *raw = secret_ref_value(x, ns ? ns : "", ref, &missing, err, sizeof(err));
        json_t *v = raw ? json_loadb(json_string_value(raw), json_string_length(raw),
                                     JSON_DECODE_ANY, NULL)
                        : NULL;
        if (raw && !v)
            snprintf(err, sizeof(err), "the value of key '%s' in secret '%s/%s' is not JSON",
                     obj_get_str(ref, "key"), ns ? ns : "", obj_get_str(ref, "name"));
        int r = v ? patch_add(&cfg, path ? path : "", v, err, sizeof(err)) : -1;
        json_decref(v);
        json_decref(raw);
        if (r < 0) {
            xfail(x, kp, NULL, "%s: %s", what, err);
            json_decref(cfg);
            return NULL;
        }
    }
    if (!json_is_object(cfg) && !json_is_null(cfg)) {
        xfail(x, kp, NULL, "%s: json: cannot unmarshal %s into Go value of type kong.Configuration",
              what, xgo_type(cfg));
        json_decref(cfg);
        return NULL;
    }
    json_t *from = json_object_get(kp, "configFrom");
    if (!json_is_object(from))
        return cfg;
    if (json_object_size(cfg)) { /* KIC refuses the pair only when the config has something */
        if (cluster)
            xfail(x, kp, NULL, "KongClusterPlugin '/%s' has both Config and ConfigFrom set",
                  obj_name(kp));
        else
            xfail(x, kp, NULL, "KongPlugin '%s/%s' has both Config and ConfigFrom set", obj_ns(kp),
                  obj_name(kp));
        json_decref(cfg);
        return NULL;
    }
    json_decref(cfg);
    json_t *ref = json_object_get(from, "secretKeyRef");
    const char *ns = cluster ? obj_get_str(ref, "namespace") : obj_ns(kp);
    if (cluster)
        snprintf(what, sizeof(what), "error parsing config for KongClusterPlugin %s",
                 obj_name(kp));
    else /* KIC's message has the name and namespace this way round */
        snprintf(what, sizeof(what), "error parsing config for KongPlugin '%s/%s'", obj_name(kp),
                 obj_ns(kp));
    return secret_config(x, kp, ns ? ns : "", ref, what);
}

/* Kong plugin fields of a KongPlugin/KongClusterPlugin, or NULL with a failure (toKongPlugin). */
static json_t *plugin_entity(Xlate *x, json_t *kp)
{
    bool cluster = !strcmp(obj_kind(kp), "KongClusterPlugin");
    const char *pname = obj_get_str(kp, "plugin");
    if (!pname || !*pname) {
        xfail(x, kp, NULL, "plugin has no 'plugin' name");
        return NULL;
    }
    json_t *cfg = plugin_config(x, kp, cluster);
    if (!cfg)
        return NULL;
    json_t *p = json_pack("{s:s, s:o}", "name", pname, "tags", xtags(kp));
    if (json_object_size(cfg)) /* an empty map is left out (omitempty) */
        json_object_set(p, "config", cfg);
    json_decref(cfg);
    json_t *v;
    if ((v = json_object_get(kp, "protocols")) && json_array_size(v))
        json_object_set(p, "protocols", v);
    if ((v = json_object_get(kp, "run_on")) && json_is_string(v) && json_string_length(v))
        json_object_set(p, "run_on", v);
    if ((v = json_object_get(kp, "ordering")) && json_is_object(v)) {
        /* before and after are maps Kong's client leaves out when empty */
        json_t *o = json_object();
        const char *phases[] = {"before", "after"};
        for (int i = 0; i < 2; i++) {
            json_t *ph = json_object_get(v, phases[i]);
            if (json_object_size(ph))
                json_object_set(o, phases[i], ph);
        }
        json_object_set_new(p, "ordering", o);
    }
    if ((v = json_object_get(kp, "instance_name")) && json_is_string(v) && json_string_length(v))
        json_object_set(p, "instance_name", v);
    if (json_is_true(json_object_get(kp, "disabled")))
        json_object_set_new(p, "enabled", json_false());
    return p;
}

/* @left: the instances of @base still to add, this one included. */
static void add_plugin(Xlate *x, json_t *base, size_t *left, const char *svc, const char *route,
                       const char *consumer, const char *group)
{
    /*
     * Each instance gets its own top-level object (ids, attachments); the rest is shared. The
     * last takes @base itself: most KongPlugins have one instance, and a copy was 5 MB of new
     * memory at 10,000 of them.
     */
    json_t *p = --*left ? json_copy(base) : json_incref(base);
    if (svc)
        json_object_set_new(p, "service", json_string(svc));
    if (route)
        json_object_set_new(p, "route", json_string(route));
    if (consumer)
        json_object_set_new(p, "consumer", json_string(consumer));
    if (group)
        json_object_set_new(p, "consumer_group", json_string(group));
    json_array_append_new(x->plugins, p);
}

/*
 * KIC suffixes an attached plugin's instance name with a short hash of what it is attached to,
 * or the whole hash when the short name is taken. Done in order once the instances of every
 * KongPlugin are built, so names do not depend on how that work was shared between threads.
 */
static void suffix_instance_names(json_t *plugins, size_t from, size_t to)
{
    static const char *const fields[][2] = {{"service", "_service-"},
                                            {"route", "_route-"},
                                            {"consumer", "_consumer-"},
                                            {"consumer_group", "_group-"}};
    json_t *used = json_object();
    for (size_t i = from; i < to; i++) {
        json_t *p = json_array_get(plugins, i);
        const char *in = json_string_value(json_object_get(p, "instance_name"));
        if (!in)
            continue;
        Buf h = BUF_INIT;
        for (size_t f = 0; f < 4; f++) {
            const char *v = json_string_value(json_object_get(p, fields[f][0]));
            if (v) {
                buf_puts(&h, fields[f][1]);
                buf_puts(&h, v);
            }
        }
        char hex[65];
        util_sha256_hex(h.data ? h.data : "", h.len, hex);
        buf_deinit(&h);
        char *name = util_strdup_printf("%s-%.9s", in, hex);
        if (name && json_object_get(used, name)) {
            free(name);
            name = util_strdup_printf("%s-%s", in, hex);
        }
        if (!name)
            continue;
        json_object_set_new(used, name, json_true());
        json_object_set_new(p, "instance_name", json_string(name));
        free(name);
    }
    json_decref(used);
}

static const char *consumer_ref(json_t *c)
{
    const char *u = json_string_value(json_object_get(c, "username"));
    return u ? u : json_string_value(json_object_get(c, "custom_id"));
}

typedef struct RelRun {
    Xlate *x[2]; /* each half's lists */
    Rels *rels;
} RelRun;

/* The instances of the KongPlugins [from, to) of the relations. */
static void rel_range(void *ud, int half, size_t from, size_t to)
{
    RelRun *run = ud;
    Xlate *x = run->x[half];
    for (size_t ri = from; ri < to; ri++) {
        Rel *r = &run->rels->v[ri];
        const char *colon = strchr(r->key, ':');
        char ns[256];
        snprintf(ns, sizeof(ns), "%.*s", (int)(colon - r->key), r->key);
        const char *name = colon + 1;
        json_t *kp = store_get(x->st, "KongPlugin", ns, name);
        if (!kp)
            kp = store_get(x->st, "KongClusterPlugin", "", name);
        if (!kp) {
            /* KIC names the objects of its combinations, where groups count only when no
             * consumer refers to the plugin */
            if (!r->to[REL_CONSUMERS].n)
                for (size_t k = 0; k < r->group_refs.n; k++)
                    vec_add(&r->refs, r->group_refs.v[k]);
            vec_unique(&r->refs, false);
            json_t *objs = json_array();
            for (size_t k = 0; k < r->refs.n; k++)
                json_array_append(objs, (json_t *)r->refs.v[k]);
            xfail_objs(x, objs, "referenced KongPlugin or KongClusterPlugin \"%s\" does not exist",
                       name);
            json_decref(objs);
            continue;
        }
        json_t *base = plugin_entity(x, kp);
        if (!base)
            continue;
        for (int k = 0; k < REL_KINDS; k++)
            vec_unique(&r->to[k], true);
        const PtrVec *svcs = &r->to[REL_SERVICES], *routes = &r->to[REL_ROUTES];
        const PtrVec *cons = &r->to[REL_CONSUMERS], *groups = &r->to[REL_GROUPS];
        /* KIC's combinations: consumers (or else groups) times services and routes. */
        bool is_group = !cons->n && groups->n;
        const PtrVec *who = cons->n ? cons : groups->n ? groups : NULL;
        size_t left = who ? (svcs->n + routes->n ? svcs->n + routes->n : 1) * who->n
                          : svcs->n + routes->n;
        if (who) {
#define WHO(b) is_group ? NULL : who->v[b], is_group ? who->v[b] : NULL
            for (size_t b = 0; b < who->n && !svcs->n && !routes->n; b++)
                add_plugin(x, base, &left, NULL, NULL, WHO(b));
            for (size_t a = 0; a < svcs->n; a++)
                for (size_t b = 0; b < who->n; b++)
                    add_plugin(x, base, &left, svcs->v[a], NULL, WHO(b));
            for (size_t a = 0; a < routes->n; a++)
                for (size_t b = 0; b < who->n; b++)
                    add_plugin(x, base, &left, NULL, routes->v[a], WHO(b));
#undef WHO
        } else {
            for (size_t a = 0; a < svcs->n; a++)
                add_plugin(x, base, &left, svcs->v[a], NULL, NULL, NULL);
            for (size_t a = 0; a < routes->n; a++)
                add_plugin(x, base, &left, NULL, routes->v[a], NULL, NULL);
        }
        json_decref(base);
    }
}

void xlate_plugins(Xlate *x)
{
    Rels rels = {NULL, 0, 0, {NULL, 0, 0}};
    relate_services(x, &rels);
    size_t i;
    json_t *c;
    json_array_foreach(x->consumers, i, c)
        relate(x, &rels, json_array_get(x->consumer_objs, i), REL_CONSUMERS, consumer_ref(c));
    json_array_foreach(x->consumer_groups, i, c)
        relate(x, &rels, json_array_get(x->cg_objs, i), REL_GROUPS,
               json_string_value(json_object_get(c, "name")));

    /* Each referenced KongPlugin's instances; a half of them may be built on a helper thread,
     * into lists of its own that follow the first half's. */
    size_t first = json_array_size(x->plugins);
    Xlate upper = *x;
    RelRun run = {{x, &upper}, &rels};
    upper.failures = json_array();
    upper.plugins = json_array();
    if (upper.failures && upper.plugins) {
        xsplit_run(rels.n, rel_range, &run);
        json_array_extend(x->failures, upper.failures);
        json_array_extend(x->plugins, upper.plugins);
    } else {
        rel_range(&run, 0, 0, rels.n);
    }
    json_decref(upper.failures);
    json_decref(upper.plugins);
    rels_free(&rels);
    suffix_instance_names(x->plugins, first, json_array_size(x->plugins));

    /*
     * Global KongClusterPlugins, as KIC's globalKongClusterPlugins takes them in order: the first
     * that converts takes its plugin name, and a later one naming it (converted or not) makes it
     * a duplicate, which drops all of them. One that fails does not take the name. KIC only logs
     * these; they are failures here, so that they reach the objects.
     */
    size_t n;
    json_t *const *kcps = store_list(x->st, "KongClusterPlugin", &n);
    json_t *globals = json_object(), *dup = json_object();
    for (size_t k = 0; k < n; k++) {
        const char *g = obj_label(kcps[k], "global");
        const char *pname = obj_get_str(kcps[k], "plugin");
        if (!g || strcmp(g, "true") || !xclass_exact_or_empty(x, kcps[k]) || !pname || !*pname)
            continue;
        if (json_object_get(globals, pname)) {
            json_object_set_new(dup, pname, json_true());
            continue;
        }
        json_t *p = plugin_entity(x, kcps[k]);
        if (p)
            json_object_set_new(globals, pname, json_pack("[O, o]", kcps[k], p));
    }
    for (size_t k = 0; k < n; k++) {
        const char *pname = obj_get_str(kcps[k], "plugin");
        json_t *entry = pname ? json_object_get(globals, pname) : NULL;
        if (!entry || json_array_get(entry, 0) != kcps[k])
            continue;
        if (json_object_get(dup, pname)) {
            json_t *same = json_array();
            for (size_t j = 0; j < n; j++) {
                const char *gj = obj_label(kcps[j], "global");
                const char *pj = obj_get_str(kcps[j], "plugin");
                if (gj && !strcmp(gj, "true") && pj && !strcmp(pj, pname) &&
                    xclass_exact_or_empty(x, kcps[j]))
                    json_array_append(same, kcps[j]);
            }
            xfail_objs(x, same,
                       "global plugin %s is configured by several KongClusterPlugins; none is "
                       "applied",
                       pname);
            json_decref(same);
            continue;
        }
        json_array_append(x->plugins, json_array_get(entry, 1));
    }
    json_decref(globals);
    json_decref(dup);
}
