/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Object store: per kind, a hash map "namespace/name" -> trimmed object, plus a lazily built
 * sorted view for deterministic iteration. Objects are never mutated once stored, so clones
 * share them by reference.
 */
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jarena.h"
#include "store_share.h"
#include "util.h"

typedef struct KindEntry {
    char *kind;
    json_t *map;      /* "ns/name" -> object */
    json_t **sorted;  /* borrowed pointers into map, valid while !dirty */
    size_t nsorted;
    int dirty;
    uint64_t changes; /* puts and deletes that changed this kind */
    JArenaLane lane;  /* where its objects are copied to (see share_into_lane()) */
} KindEntry;

/* The last changes, so a caller can learn what changed since a generation (see store.h). */
#define LOG_SIZE 1024
typedef struct Change {
    uint64_t gen;
    const char *kind; /* the KindEntry's string */
    json_t *old, *cur;
} Change;

struct Store {
    KindEntry *kinds;
    size_t nkinds;
    size_t cap;
    uint64_t generation;
    json_t *kind_names;
    Change *log; /* ring of LOG_SIZE, allocated on the first change */
    size_t log_head, log_len;
    StoreShare *share; /* the values its objects share (clones: none, they put little) */
    size_t live;       /* objects held */
    bool bulk;         /* objects are copied into their kind's lane (store_bulk()) */
};

void store_bulk(Store *s, bool on)
{
    s->bulk = on;
}

static Store *store_alloc(void)
{
    return calloc(1, sizeof(Store));
}

int store_new(Store **ret)
{
    Store *s = store_alloc();
    if (!s || !(s->share = share_new())) {
        free(s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

static void log_change(Store *s, const char *kind, json_t *old, json_t *cur)
{
    if (!s->log && !(s->log = calloc(LOG_SIZE, sizeof(*s->log))))
        return; /* store_changes() then reports the log as not reaching back */
    Change *c = &s->log[(s->log_head + s->log_len) % LOG_SIZE];
    if (s->log_len == LOG_SIZE) { /* full: the oldest goes */
        json_decref(c->old);
        json_decref(c->cur);
        s->log_head = (s->log_head + 1) % LOG_SIZE;
    } else {
        s->log_len++;
    }
    *c = (Change){s->generation, kind, json_incref(old), json_incref(cur)};
}

int store_changes(const Store *s, uint64_t since, const char *kind,
                  void (*fn)(void *ud, json_t *old, json_t *cur), void *ud)
{
    if (s->generation == since)
        return 0;
    if (!s->log_len || s->log[s->log_head].gen > since + 1 || since > s->generation)
        return -ERANGE;
    for (size_t i = 0; i < s->log_len; i++) {
        const Change *c = &s->log[(s->log_head + i) % LOG_SIZE];
        if (c->gen > since && (!kind || !strcmp(c->kind, kind)))
            fn(ud, c->old, c->cur);
    }
    return 0;
}

Store *store_free(Store *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->log_len; i++) {
        json_decref(s->log[(s->log_head + i) % LOG_SIZE].old);
        json_decref(s->log[(s->log_head + i) % LOG_SIZE].cur);
    }
    free(s->log);
    for (size_t i = 0; i < s->nkinds; i++) {
        free(s->kinds[i].kind);
        json_decref(s->kinds[i].map);
        free(s->kinds[i].sorted);
        jarena_lane_end(&s->kinds[i].lane);
    }
    free(s->kinds);
    json_decref(s->kind_names);
    share_free(s->share);
    free(s);
    return NULL;
}

static KindEntry *find_kind(const Store *s, const char *kind)
{
    for (size_t i = 0; i < s->nkinds; i++)
        if (!strcmp(s->kinds[i].kind, kind))
            return &s->kinds[i];
    return NULL;
}

static KindEntry *add_kind(Store *s, const char *kind)
{
    KindEntry *e = find_kind(s, kind);
    if (e)
        return e;
    if (util_grow(&s->kinds, &s->cap, s->nkinds, sizeof(*s->kinds), 16) < 0)
        return NULL;
    e = &s->kinds[s->nkinds];
    memset(e, 0, sizeof(*e));
    e->kind = strdup(kind);
    e->map = json_object();
    if (!e->kind || !e->map) {
        free(e->kind);
        json_decref(e->map);
        return NULL;
    }
    s->nkinds++;
    json_decref(s->kind_names);
    s->kind_names = NULL;
    return e;
}

static const char *str_or_empty(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "";
}

/*
 * @key of @o, looked for among its first three keys before by name: a stored object starts with
 * its packed metadata, then apiVersion and kind as manifests and the API write them. Comparing
 * three short keys costs less than hashing one, on every kind and tag a translation reads.
 */
static json_t *front_get(const json_t *o, const char *key)
{
    void *it = json_object_iter((json_t *)o);
    for (int i = 0; it && i < 3; i++, it = json_object_iter_next((json_t *)o, it))
        if (!strcmp(json_object_iter_key(it), key))
            return json_object_iter_value(it);
    return json_object_get(o, key);
}

const char *obj_kind(const json_t *o)
{
    return str_or_empty(front_get(o, "kind"));
}

const char *obj_api_version(const json_t *o)
{
    return str_or_empty(front_get(o, "apiVersion"));
}

/*
 * Metadata, packed: every object's metadata becomes one string (META_PACKED) in the store. As
 * jansson an object's metadata, labels and annotations were a third of the store (25 MB of 62 at
 * 10,000 Ingress sets); packed they are the length of their strings. Entries, in order, each a
 * type, the field's name, then:
 *   's' the string                      a string field (name, namespace, uid, ...)
 *   'm' count, bytes, then key, value...  labels and annotations (the store made values strings);
 *                                        bytes is the length of the pairs, to step over them
 *   'j' the value as compact JSON       anything else (generation, finalizers, ...)
 * The name, namespace, annotations and labels come first (the most read: a lookup walks the
 * entries before it), the resourceVersion last (see same_but_version()). Strings end with a NUL,
 * so a string holding one is cut there, as every reader of C strings cut it before.
 */
#define META_PACKED "metadataPacked"

static void put_z(Buf *b, const char *s)
{
    buf_append(b, s, strlen(s) + 1);
}

/* The NUL-terminated string at *@p (before @end); NULL when it runs past the end. */
static const char *get_z(const char **p, const char *end)
{
    const char *nul = *p < end ? memchr(*p, 0, (size_t)(end - *p)) : NULL;
    const char *s = *p;
    if (!nul)
        return NULL;
    *p = nul + 1;
    return s;
}

/*
 * The decimal number at @p (before @end) into *@v, and where its digits end: NULL when there are
 * none, or more than fit what a packed length can be. Packed fields' lengths and counts; strtoull
 * was slow here.
 */
static const char *get_decimal(const char *p, const char *end, unsigned long long *v)
{
    const char *q = p;
    *v = 0;
    while (q < end && *q >= '0' && *q <= '9' && *v < (1ULL << 40))
        *v = *v * 10 + (unsigned long long)(*q++ - '0');
    return q == p || (q < end && *q >= '0' && *q <= '9') ? NULL : q;
}

/* A decimal count ending with a NUL at *@p; false when it is not one. */
static bool get_count(const char **p, const char *end, unsigned long long *v)
{
    const char *q = get_decimal(*p, end, v);
    if (!q || q >= end || *q)
        return false;
    *p = q + 1;
    return true;
}

typedef struct MetaEnt {
    char type;
    const char *key, *val; /* 'm': val is the first pair */
    size_t count;          /* 'm': pairs */
    const char *end;       /* 'm': where the pairs end */
    const char *at;        /* where the entry starts */
} MetaEnt;

/* The entry at *@p; false at the end or when malformed (a packed field a manifest brought). */
static bool ment_next(const char **p, const char *end, MetaEnt *e)
{
    if (*p >= end)
        return false;
    e->at = *p;
    e->type = *(*p)++;
    if ((e->type != 's' && e->type != 'm' && e->type != 'j') || !(e->key = get_z(p, end)))
        return false;
    if (e->type != 'm')
        return (e->val = get_z(p, end)) != NULL;
    unsigned long long c, bytes;
    if (!get_count(p, end, &c) || !get_count(p, end, &bytes) ||
        bytes > (unsigned long long)(end - *p) || c > bytes / 2 || (bytes && (*p)[bytes - 1] != 0))
        return false;
    e->count = (size_t)c;
    e->val = *p;
    e->end = *p + bytes;
    *p = e->end;
    return true;
}

/* The packed metadata of @o, or false when @o has its metadata as the API has it. */
static bool packed_meta(const json_t *o, const char **p, const char **end)
{
    void *it = json_object_iter((json_t *)o); /* put_first() put it first */
    json_t *pm = it && !strcmp(json_object_iter_key(it), META_PACKED)
                     ? json_object_iter_value(it)
                     : json_object_get(o, META_PACKED);
    if (!json_is_string(pm))
        return false;
    *p = json_string_value(pm);
    *end = *p + json_string_length(pm);
    return true;
}

/* The entry of packed metadata [@p, @end) named @key, of @type; or false. */
static bool ment_find(const char *p, const char *end, const char *key, char type, MetaEnt *e)
{
    while (ment_next(&p, end, e))
        if (e->type == type && !strcmp(e->key, key))
            return true;
    return false;
}

/* @o's metadata map @map into @e: 1, 0 when it has none, -1 when @o's metadata is not packed. */
static int meta_map(const json_t *o, const char *map, MetaEnt *e)
{
    const char *p, *end;
    if (!packed_meta(o, &p, &end))
        return -1;
    return ment_find(p, end, map, 'm', e);
}

static bool map_next(const char **p, const char *end, size_t *left, const char **k,
                     const char **v)
{
    if (!*left)
        return false;
    (*left)--;
    *k = get_z(p, end);
    *v = *k ? get_z(p, end) : NULL;
    return *v != NULL;
}

/* The value of @key among @n packed pairs at @p, or NULL. */
static const char *pairs_find(const char *p, const char *end, size_t n, const char *key)
{
    const char *k, *v;
    while (map_next(&p, end, &n, &k, &v))
        if (!strcmp(k, key))
            return v;
    return NULL;
}

/* Metadata as the store keeps it: @md's fields packed, the resourceVersion last. */
static json_t *pack_meta(json_t *md)
{
    Buf b = BUF_INIT;
    const char *k;
    json_t *v;
    for (int pass = 0; pass < 6; pass++) {
        json_object_foreach(md, k, v)
        {
            /* the name, the namespace, the annotations and labels, the rest in order, the
             * resourceVersion: what translation reads most is found first */
            int want = !strcmp(k, "name")              ? 0
                       : !strcmp(k, "namespace")       ? 1
                       : !strcmp(k, "annotations")     ? 2
                       : !strcmp(k, "labels")          ? 3
                       : !strcmp(k, "resourceVersion") ? 5
                                                       : 4;
            if (want != pass)
                continue;
            if (json_is_string(v)) {
                buf_putc(&b, 's');
                put_z(&b, k);
                put_z(&b, json_string_value(v));
                continue;
            }
            const char *mk;
            json_t *mv;
            bool strings = json_is_object(v);
            json_object_foreach(v, mk, mv) strings = strings && json_is_string(mv);
            if (strings) {
                char n[48];
                size_t bytes = 0;
                json_object_foreach(v, mk, mv) bytes +=
                    strlen(mk) + strlen(json_string_value(mv)) + 2;
                snprintf(n, sizeof(n), "%zu", json_object_size(v));
                buf_putc(&b, 'm');
                put_z(&b, k);
                put_z(&b, n);
                snprintf(n, sizeof(n), "%zu", bytes);
                put_z(&b, n);
                json_object_foreach(v, mk, mv)
                {
                    put_z(&b, mk);
                    put_z(&b, json_string_value(mv));
                }
                continue;
            }
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!text) {
                buf_deinit(&b);
                return NULL;
            }
            buf_putc(&b, 'j');
            put_z(&b, k);
            put_z(&b, text);
            free(text);
        }
    }
    json_t *packed = b.data ? json_stringn_nocheck(b.data, b.len) : json_string("");
    buf_deinit(&b);
    return packed;
}

json_t *obj_metadata(const json_t *o)
{
    const char *p, *end;
    if (!packed_meta(o, &p, &end)) {
        json_t *md = json_object_get(o, "metadata");
        return json_is_object(md) ? json_incref(md) : NULL;
    }
    json_t *md = json_object();
    MetaEnt e;
    while (md && ment_next(&p, end, &e)) {
        json_t *v = NULL;
        if (e.type == 's') {
            v = json_string(e.val);
        } else if (e.type == 'j') {
            v = json_loads(e.val, JSON_DECODE_ANY, NULL);
        } else {
            const char *q = e.val, *k, *s;
            size_t left = e.count;
            v = json_object();
            while (v && map_next(&q, e.end, &left, &k, &s))
                json_object_set_new(v, k, json_string(s));
        }
        if (v)
            json_object_set_new(md, e.key, v);
    }
    return md;
}

static const json_t *meta(const json_t *o)
{
    return json_object_get(o, "metadata");
}

const char *obj_meta_str(const json_t *o, const char *key)
{
    MetaEnt e;
    const char *p, *end;
    if (packed_meta(o, &p, &end))
        return ment_find(p, end, key, 's', &e) ? e.val : NULL;
    json_t *v = json_object_get(meta(o), key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *obj_ns(const json_t *o)
{
    const char *s = obj_meta_str(o, "namespace");
    return s ? s : "";
}

const char *obj_name(const json_t *o)
{
    const char *s = obj_meta_str(o, "name");
    return s ? s : "";
}

const char *obj_uid(const json_t *o)
{
    const char *s = obj_meta_str(o, "uid");
    return s ? s : "";
}

void obj_ids(const json_t *o, const char **name, const char **ns, const char **uid)
{
    const char *p, *end;
    MetaEnt e;
    *name = *ns = *uid = "";
    if (!packed_meta(o, &p, &end)) {
        *name = obj_name(o);
        *ns = obj_ns(o);
        *uid = obj_uid(o);
        return;
    }
    unsigned seen = 0; /* the first of each, as ment_find() finds it */
    while (seen != 7 && ment_next(&p, end, &e)) {
        if (e.type != 's')
            continue;
        unsigned bit = !strcmp(e.key, "name")        ? 1
                       : !strcmp(e.key, "namespace") ? 2
                       : !strcmp(e.key, "uid")       ? 4
                                                     : 0;
        if (bit & ~seen)
            *(bit == 1 ? name : bit == 2 ? ns : uid) = e.val;
        seen |= bit;
    }
}

/* Value of @key in metadata map @map (annotations or labels), or NULL. */
static const char *map_get(const json_t *o, const char *map, const char *key)
{
    MetaEnt e;
    int packed = meta_map(o, map, &e);
    if (packed >= 0)
        return packed ? pairs_find(e.val, e.end, e.count, key) : NULL;
    json_t *a = json_object_get(meta(o), map);
    if (!json_object_size(a)) /* most objects have none: skip hashing the long key */
        return NULL;
    json_t *v = json_object_get(a, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *obj_annotation(const json_t *o, const char *key)
{
    return map_get(o, "annotations", key);
}

const char *obj_label(const json_t *o, const char *key)
{
    return map_get(o, "labels", key);
}

bool obj_map_next(const json_t *o, const char *map, ObjMapIter *it, const char **k, const char **v)
{
    if (!it->started) {
        MetaEnt e;
        int packed = meta_map(o, map, &e);
        it->started = true;
        if (packed > 0) {
            it->p = e.val;
            it->end = e.end;
            it->left = e.count;
        } else if (packed < 0) {
            json_t *m = json_object_get(meta(o), map);
            it->map = m;
            it->jit = json_is_object(m) ? json_object_iter(m) : NULL;
            it->p = NULL;
        }
    }
    if (it->p)
        return map_next(&it->p, it->end, &it->left, k, v);
    while (it->jit) {
        json_t *val = json_object_iter_value(it->jit);
        *k = json_object_iter_key(it->jit);
        it->jit = json_object_iter_next((json_t *)it->map, it->jit);
        if (json_is_string(val)) {
            *v = json_string_value(val);
            return true;
        }
    }
    return false;
}

void obj_anns_init(ObjAnns *a, const json_t *o)
{
    ObjMapIter it = {0};
    const char *k, *v;
    MetaEnt e;
    int packed = meta_map(o, "annotations", &e);
    a->map = NULL;
    a->pairs = a->end = NULL;
    a->n = 0;
    if (packed > 0) {
        if (e.count > OBJ_ANNS_SCAN) { /* scanned where they are */
            a->pairs = e.val;
            a->end = e.end;
            a->n = e.count;
            return;
        }
        const char *p = e.val;
        size_t left = e.count;
        while (map_next(&p, e.end, &left, &k, &v)) {
            a->key[a->n] = k;
            a->val[a->n++] = v;
        }
        return;
    }
    if (packed == 0)
        return;
    json_t *m = json_object_get(meta(o), "annotations");
    if (json_object_size(m) > OBJ_ANNS_SCAN) {
        a->map = m;
        return;
    }
    while (a->n < OBJ_ANNS_SCAN && obj_map_next(o, "annotations", &it, &k, &v)) {
        a->key[a->n] = k;
        a->val[a->n++] = v;
    }
}

const char *obj_anns_get(const ObjAnns *a, const char *key)
{
    if (a->map) {
        json_t *v = json_object_get(a->map, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
    }
    if (a->pairs)
        return pairs_find(a->pairs, a->end, a->n, key);
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->key[i], key))
            return a->val[i];
    return NULL;
}

json_t *obj_get_path(const json_t *o, const char *dotted)
{
    const char *p = dotted;
    json_t *cur = (json_t *)o;

    /* Hot in translation: look segments up in place, without copying them out. */
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        if (!dot)
            return json_object_get(cur, p);
        cur = json_object_getn(cur, p, (size_t)(dot - p));
        p = dot + 1;
    }
    return cur;
}

const char *obj_get_str(const json_t *o, const char *dotted)
{
    json_t *v = obj_get_path(o, dotted);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Annotation and label values are strings in Kubernetes; coerce scalars a YAML file typed. */
static void stringify_values(json_t *map)
{
    const char *k;
    json_t *v;
    void *tmp;

    if (!json_is_object(map))
        return;
    json_object_foreach_safe(map, tmp, k, v)
    {
        char buf[64];
        if (json_is_string(v))
            continue;
        if (json_is_integer(v))
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(buf, sizeof(buf), "%g", json_real_value(v));
        else if (json_is_true(v))
            snprintf(buf, sizeof(buf), "true");
        else if (json_is_false(v))
            snprintf(buf, sizeof(buf), "false");
        else if (json_is_null(v))
            buf[0] = 0;
        else {
            json_object_del(map, k);
            continue;
        }
        json_object_set_new(map, k, json_string(buf));
    }
}

/*
 * EndpointSlices are the most numerous objects and the most often written: keep what targets and
 * Gateway Discovery read (the owning Service's label, address type, ports, and per endpoint its
 * first address, readiness, termination and target), not the controller's bookkeeping.
 *
 * The endpoints are packed into one string (PACKED): as jansson objects an endpoint with its
 * address and target costs about a kilobyte, packed about forty bytes. Each endpoint is its
 * address, whether it has one ('a' or '-'), its readiness ('1' ready, '0' not, '-' not given),
 * whether it terminates ('1' or '0'), then its target's kind, name and namespace: the fields of
 * a SliceEndpoint, read from the API's shape by read_endpoint(); strings as netstrings
 * ("<length>:<bytes>"), so any bytes they hold come back as they were.
 */
#define PACKED "endpointsPacked"

static void pack_str(Buf *b, const char *s)
{
    size_t n = strlen(s);
    char num[24];
    int l = snprintf(num, sizeof(num), "%zu:", n);
    buf_append(b, num, (size_t)l);
    buf_append(b, s, n);
}

/* An endpoint as the API has it: what readers keep of it. */
static void read_endpoint(const json_t *e, SliceEndpoint *ep)
{
    json_t *cond = json_object_get(e, "conditions"), *ready = json_object_get(cond, "ready");
    json_t *t = json_object_get(e, "targetRef");
    const char *a = json_string_value(json_array_get(json_object_get(e, "addresses"), 0));
    const char *k = obj_get_str(t, "kind"), *n = obj_get_str(t, "name");
    const char *ns = obj_get_str(t, "namespace");
    memset(ep, 0, sizeof(*ep));
    snprintf(ep->addr, sizeof(ep->addr), "%s", a ? a : "");
    ep->has_addr = a != NULL;
    ep->ready = !ready || json_is_null(ready) ? -1 : json_is_true(ready);
    ep->terminating = json_is_true(json_object_get(cond, "terminating"));
    snprintf(ep->target_kind, sizeof(ep->target_kind), "%s", k ? k : "");
    snprintf(ep->target_name, sizeof(ep->target_name), "%s", n ? n : "");
    snprintf(ep->target_ns, sizeof(ep->target_ns), "%s", ns ? ns : "");
}

static void pack_endpoints(json_t *c)
{
    json_t *eps = json_object_get(c, "endpoints");
    if (!json_is_array(eps))
        return;
    Buf b = BUF_INIT;
    size_t i;
    json_t *e;
    SliceEndpoint ep;
    json_array_foreach(eps, i, e)
    {
        read_endpoint(e, &ep);
        pack_str(&b, ep.addr);
        buf_append(&b, ep.has_addr ? "a" : "-", 1);
        buf_append(&b, ep.ready < 0 ? "-" : ep.ready ? "1" : "0", 1);
        buf_append(&b, ep.terminating ? "1" : "0", 1);
        pack_str(&b, ep.target_kind);
        pack_str(&b, ep.target_name);
        pack_str(&b, ep.target_ns);
    }
    json_t *packed = b.data ? json_stringn_nocheck(b.data, b.len) : json_string("");
    buf_deinit(&b);
    if (packed) { /* out of memory: the endpoints stay as they are, which readers take too */
        json_object_del(c, "endpoints");
        json_object_set_new(c, PACKED, packed);
    }
}

static void trim_slice(json_t *c, json_t *md)
{
    static const char *const drop_md[] = {"annotations", "uid", "generation", "creationTimestamp",
                                          NULL};
    for (size_t k = 0; drop_md[k]; k++) /* no entity comes from a slice: no tags, no order */
        json_object_del(md, drop_md[k]);
    json_t *labels = json_object_get(md, "labels");
    json_t *owner = json_incref(json_object_get(labels, "kubernetes.io/service-name"));
    if (json_is_object(labels)) {
        json_object_clear(labels);
        if (owner)
            json_object_set(labels, "kubernetes.io/service-name", owner);
    }
    json_decref(owner);
    pack_endpoints(c); /* a slice packed already (put again) keeps its packed endpoints */
}

/* A netstring at *@p (before @end) into @out (cut to its size); false when malformed. */
static bool unpack_str(const char **p, const char *end, char *out, size_t outn)
{
    unsigned long long n;
    const char *q = get_decimal(*p, end, &n);
    if (!q || q >= end || *q != ':' || (unsigned long long)(end - q - 1) < n)
        return false;
    q++;
    size_t k = n < outn ? n : outn - 1;
    memcpy(out, q, k);
    out[k] = 0;
    *p = q + n;
    return true;
}

bool obj_slice_endpoint(const json_t *slice, size_t *pos, SliceEndpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    json_t *packed = json_object_get(slice, PACKED);
    if (!json_is_string(packed)) { /* as the API has it: a slice the store did not trim */
        json_t *e = json_array_get(json_object_get(slice, "endpoints"), (*pos)++);
        if (!e)
            return false;
        read_endpoint(e, ep);
        return true;
    }
    const char *base = json_string_value(packed), *end = base + json_string_length(packed);
    const char *p = base + *pos;
    if (p >= end)
        return false;
    if (!unpack_str(&p, end, ep->addr, sizeof(ep->addr)) || end - p < 3)
        return false;
    ep->has_addr = p[0] == 'a';
    ep->ready = p[1] == '-' ? -1 : p[1] == '1';
    ep->terminating = p[2] == '1';
    p += 3;
    if (!unpack_str(&p, end, ep->target_kind, sizeof(ep->target_kind)) ||
        !unpack_str(&p, end, ep->target_name, sizeof(ep->target_name)) ||
        !unpack_str(&p, end, ep->target_ns, sizeof(ep->target_ns)))
        return false;
    *pos = (size_t)(p - base);
    return true;
}

json_t *obj_slice_expand(const json_t *slice)
{
    json_t *out = json_copy((json_t *)slice), *eps = json_array();
    if (!out || !eps) {
        json_decref(out);
        json_decref(eps);
        return NULL;
    }
    SliceEndpoint ep;
    size_t pos = 0;
    while (obj_slice_endpoint(slice, &pos, &ep)) {
        json_t *e = ep.has_addr ? json_pack("{s:[s]}", "addresses", ep.addr) : json_object();
        json_t *cond = json_object();
        if (ep.ready >= 0)
            json_object_set_new(cond, "ready", json_boolean(ep.ready));
        if (ep.terminating)
            json_object_set_new(cond, "terminating", json_true());
        if (json_object_size(cond))
            json_object_set(e, "conditions", cond);
        json_decref(cond);
        if (*ep.target_kind || *ep.target_name) {
            json_t *t = json_object();
            if (*ep.target_kind)
                json_object_set_new(t, "kind", json_string(ep.target_kind));
            if (*ep.target_name)
                json_object_set_new(t, "name", json_string(ep.target_name));
            if (*ep.target_ns)
                json_object_set_new(t, "namespace", json_string(ep.target_ns));
            json_object_set_new(e, "targetRef", t);
        }
        json_array_append_new(eps, e);
    }
    json_object_del(out, PACKED);
    json_object_set_new(out, "endpoints", eps);
    json_t *md = json_object_get(out, META_PACKED) ? obj_metadata(out) : NULL;
    if (md) {
        json_object_del(out, META_PACKED);
        json_object_set_new(out, "metadata", md);
    }
    return out;
}

/*
 * Ingresses: spec.rules becomes one string (RULES_PACKED) holding what translation reads of each
 * path, read from the API's shape by read_path(). As jansson a rule with one path is a dozen
 * objects, over two kilobytes; packed it is the length of its strings. Records, in order:
 *   'r'              a rule without paths (it still counts in positions)
 *   'R' host         a rule: its paths follow
 *   'P' path type B  a path, with its backend B: its Service ('S' name number port_name, or
 *                    '-'), then its resource ('X' group kind name, or '-')
 * Strings end with a NUL (readers of C strings stop at one anyway). An optional string is '+'
 * and the string, or '-' for NULL; the number is '#' and its digits, or '-'.
 */
#define RULES_PACKED "rulesPacked"

void obj_ingress_backend(const json_t *backend, IngressBackend *b)
{
    json_t *svc = json_object_get(backend, "service"), *res = json_object_get(backend, "resource");
    memset(b, 0, sizeof(*b));
    if (json_is_object(svc)) {
        json_t *port = json_object_get(svc, "port"), *num = json_object_get(port, "number");
        b->service = true;
        b->name = obj_get_str(svc, "name");
        b->has_number = json_is_integer(num) && json_integer_value(num) != 0;
        b->number = b->has_number ? (long long)json_integer_value(num) : 0;
        b->port_name = obj_get_str(port, "name");
    }
    if (json_is_object(res)) {
        b->resource = true;
        b->res_group = obj_get_str(res, "apiGroup");
        b->res_kind = obj_get_str(res, "kind");
        b->res_name = obj_get_str(res, "name");
    }
}

/* A path of a rule as the API has it. */
static void read_path(const json_t *rule, const json_t *path, IngressPath *p)
{
    const char *host = obj_get_str(rule, "host");
    p->host = host ? host : "";
    p->path = obj_get_str(path, "path");
    p->path_type = obj_get_str(path, "pathType");
    obj_ingress_backend(json_object_get(path, "backend"), &p->backend);
}

static void put_opt(Buf *b, const char *s)
{
    buf_putc(b, s ? '+' : '-');
    if (s)
        put_z(b, s);
}

static void pack_rules(json_t *spec)
{
    json_t *rules = json_object_get(spec, "rules");
    if (!json_is_array(rules))
        return;
    Buf b = BUF_INIT;
    size_t ri, pi;
    json_t *rule, *path;
    json_array_foreach(rules, ri, rule)
    {
        json_t *paths = obj_get_path(rule, "http.paths");
        if (!json_array_size(paths)) {
            buf_putc(&b, 'r');
            continue;
        }
        const char *host = obj_get_str(rule, "host");
        buf_putc(&b, 'R');
        put_z(&b, host ? host : "");
        json_array_foreach(paths, pi, path)
        {
            IngressPath p;
            read_path(rule, path, &p);
            const IngressBackend *be = &p.backend;
            buf_putc(&b, 'P');
            put_opt(&b, p.path);
            put_opt(&b, p.path_type);
            buf_putc(&b, be->service ? 'S' : '-');
            if (be->service) {
                put_opt(&b, be->name);
                char num[24];
                if (be->has_number) {
                    snprintf(num, sizeof(num), "#%lld", be->number);
                    put_z(&b, num);
                } else {
                    buf_putc(&b, '-');
                }
                put_opt(&b, be->port_name);
            }
            buf_putc(&b, be->resource ? 'X' : '-');
            if (be->resource) {
                put_opt(&b, be->res_group);
                put_opt(&b, be->res_kind);
                put_opt(&b, be->res_name);
            }
        }
    }
    json_t *packed = b.data ? json_stringn_nocheck(b.data, b.len) : json_string("");
    buf_deinit(&b);
    if (packed) { /* out of memory: the rules stay as they are, which readers take too */
        json_object_del(spec, "rules");
        json_object_set_new(spec, RULES_PACKED, packed);
    }
}

/* An optional string: false when malformed. */
static bool get_opt(const char **p, const char *end, const char **out)
{
    if (*p >= end)
        return false;
    char c = *(*p)++;
    *out = NULL;
    if (c == '-')
        return true;
    return c == '+' && (*out = get_z(p, end)) != NULL;
}

static bool unpack_backend(const char **p, const char *end, IngressBackend *b)
{
    memset(b, 0, sizeof(*b));
    if (*p >= end || (**p != 'S' && **p != '-'))
        return false;
    if (*(*p)++ == 'S') {
        b->service = true;
        if (!get_opt(p, end, &b->name) || *p >= end)
            return false;
        if (**p == '#') {
            const char *num = get_z(p, end);
            char *e;
            if (!num)
                return false;
            b->has_number = true;
            b->number = strtoll(num + 1, &e, 10);
            if (*e)
                return false;
        } else if (*(*p)++ != '-') {
            return false;
        }
        if (!get_opt(p, end, &b->port_name))
            return false;
    }
    if (*p >= end || (**p != 'X' && **p != '-'))
        return false;
    if (*(*p)++ == '-')
        return true;
    b->resource = true;
    return get_opt(p, end, &b->res_group) && get_opt(p, end, &b->res_kind) &&
           get_opt(p, end, &b->res_name);
}

bool obj_ingress_path(const json_t *ing, IngressPathIter *it, IngressPath *p)
{
    json_t *spec = json_object_get(ing, "spec"), *packed = json_object_get(spec, RULES_PACKED);
    memset(p, 0, sizeof(*p));
    if (!json_is_string(packed)) { /* as the API has it: an Ingress the store did not trim */
        json_t *rules = json_object_get(spec, "rules");
        for (; it->rule < json_array_size(rules); it->rule++, it->index = 0) {
            json_t *rule = json_array_get(rules, it->rule);
            json_t *path = json_array_get(obj_get_path(rule, "http.paths"), it->index);
            if (!path)
                continue;
            read_path(rule, path, p);
            p->rule = it->rule;
            p->index = it->index++;
            return true;
        }
        return false;
    }
    const char *base = json_string_value(packed), *end = base + json_string_length(packed);
    const char *q = base + it->pos;
    while (q < end) {
        char t = *q++;
        if (t == 'r' || t == 'R') { /* it->rule counts the rules met so far */
            it->rule++;
            it->index = 0;
            it->host = (size_t)(q - base);
            if (t == 'R' && !get_z(&q, end))
                return false;
            continue;
        }
        if (t != 'P' || !it->rule || !get_opt(&q, end, &p->path) ||
            !get_opt(&q, end, &p->path_type) || !unpack_backend(&q, end, &p->backend))
            return false; /* malformed: a packed field a manifest brought, not the store's */
        p->host = base[it->host - 1] == 'R' ? base + it->host : "";
        p->rule = it->rule - 1;
        p->index = it->index++;
        it->pos = (size_t)(q - base);
        return true;
    }
    it->pos = (size_t)(q - base);
    return false;
}

/*
 * Of a Service's spec, translation reads the ports, the type and the external name; a cluster's
 * Services carry a dozen more fields (cluster IPs, IP families, selector, traffic policies).
 */
static void trim_service(json_t *c)
{
    static const char *const keep[] = {"ports", "type", "externalName", NULL};
    json_t *spec = json_object_get(c, "spec");
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(spec, tmp, k, v)
    {
        size_t i = 0;
        while (keep[i] && strcmp(keep[i], k))
            i++;
        if (!keep[i])
            json_object_del(spec, k);
    }
}

/*
 * Set @key (stealing @v) as @c's first key: packed_meta() finds it there without hashing its name,
 * for every metadata read. jansson keeps keys in insertion order, so the others are set again.
 */
static void put_first(json_t *c, const char *key, json_t *v)
{
    size_t n = json_object_size(c), i = 0;
    struct {
        char *k;
        json_t *v;
    } *kv = n ? calloc(n, sizeof(*kv)) : NULL;
    const char *k;
    json_t *val;
    if (n && !kv) { /* out of memory: where it is, found by name */
        json_object_set_new(c, key, v);
        return;
    }
    json_object_foreach(c, k, val)
    {
        if (!(kv[i].k = strdup(k)))
            break;
        kv[i++].v = json_incref(val);
    }
    if (i == n)
        json_object_clear(c);
    json_object_set_new(c, key, v);
    for (size_t j = 0; j < i; j++) {
        if (i == n && strcmp(kv[j].k, key))
            json_object_set(c, kv[j].k, kv[j].v);
        json_decref(kv[j].v);
        free(kv[j].k);
    }
    free(kv);
}

static json_t *trim_in_place(json_t *c)
{
    json_t *md = json_object_get(c, "metadata");
    if (json_is_object(md)) {
        json_object_del(md, "managedFields");
        json_object_del(md, "generateName");
        json_object_del(md, "selfLink");
        json_object_del(md, "ownerReferences"); /* translation follows names, not owners */
        json_t *ann = json_object_get(md, "annotations");
        if (json_is_object(ann))
            json_object_del(ann, "kubectl.kubernetes.io/last-applied-configuration");
        stringify_values(ann);
        stringify_values(json_object_get(md, "labels"));
    }
    /* No status is read from the store (the publish Service's comes from its watch event). */
    json_object_del(c, "status");
    const char *kind = obj_kind(c);
    if (!strcmp(kind, "Service"))
        trim_service(c);
    if (!strcmp(kind, "EndpointSlice") && json_is_object(md))
        trim_slice(c, md);
    if (!strcmp(kind, "Ingress"))
        pack_rules(json_object_get(c, "spec")); /* one packed already (put again) stays packed */
    if (!strcmp(kind, "Secret") || !strcmp(kind, "ConfigMap")) {
        stringify_values(json_object_get(c, "data"));
        stringify_values(json_object_get(c, "stringData"));
    }
    json_t *pm = json_is_object(md) ? pack_meta(md) : NULL;
    if (pm) { /* out of memory: the metadata stays as it is, which readers take too */
        json_object_del(c, "metadata");
        put_first(c, META_PACKED, pm);
    }
    return c;
}

json_t *store_trim(json_t *obj)
{
    json_t *c = json_deep_copy(obj);
    return c ? trim_in_place(c) : NULL;
}

/* "ns/name": looked up for every reference a translation follows, so no snprintf. */
static int make_key(const char *ns, const char *name, char *buf, size_t n)
{
    size_t nl = ns ? strlen(ns) : 0, l = strlen(name);
    if (nl + 1 + l >= n)
        return -ENAMETOOLONG;
    if (nl)
        memcpy(buf, ns, nl);
    buf[nl] = '/';
    memcpy(buf + nl + 1, name, l + 1);
    return 0;
}

/* Where the resourceVersion entry of packed metadata starts (pack_meta() puts it last). */
static const char *rv_entry(const json_t *o, const char **start)
{
    const char *p, *end;
    MetaEnt e;
    if (!packed_meta(o, &p, &end))
        return NULL;
    *start = p;
    while (ment_next(&p, end, &e))
        if (e.type == 's' && !strcmp(e.key, "resourceVersion"))
            return e.at;
    return NULL;
}

/*
 * @t is @old but for metadata.resourceVersion: the API server bumps it on every write, status
 * writes included (ours to Ingresses among them), and translation never reads it.
 */
static bool same_but_version(json_t *old, json_t *t)
{
    const char *p, *op;
    const char *rv = rv_entry(t, &p), *orv = rv_entry(old, &op);
    if (!rv || !orv || rv - p != orv - op || memcmp(p, op, (size_t)(rv - p)))
        return false;
    json_t *mine = json_incref(json_object_get(t, META_PACKED));
    json_object_set(t, META_PACKED, json_object_get(old, META_PACKED));
    bool same = json_equal(old, t);
    json_object_set_new(t, META_PACKED, mine);
    return same;
}

/*
 * @t (stolen) shared (share_object()) as a copy in @e's lane. A loader leaves an object's values
 * among those of the documents it parsed and freed, all kinds mixed. Copied, a kind's objects lie
 * together in the arena's blocks, in huge pages, as translation reads them: at 10,000 Ingress
 * sets translating spent a quarter of its time waiting for the store's memory. The parser's
 * memory goes back to malloc at once, for the next document. Out of memory, @t is shared as it is.
 * Only in bulk: lanes never reuse a hole, and 200,000 single updates of 10,000 EndpointSlices
 * grew their lane from 12 to 62 MB where malloc stayed at 24 MB in all.
 */
static json_t *share_into_lane(Store *s, KindEntry *e, json_t *t)
{
    jarena_lane_enter(&e->lane);
    json_t *c = share_object_copy(s->share, t);
    jarena_lane_leave(&e->lane);
    if (!c) {
        share_object(s->share, t);
        return t;
    }
    json_decref(t);
    return c;
}

static int put_paused(Store *s, json_t *t);

/*
 * put_trimmed() - @t (stolen) is already trimmed. The store's own maps outlive any translation:
 * made outside the arena, whatever the caller's thread is doing.
 */
static int put_trimmed(Store *s, json_t *t)
{
    int arena = jarena_pause();
    int r = put_paused(s, t);
    jarena_resume(arena);
    return r;
}

static int put_paused(Store *s, json_t *t)
{
    char key[512];
    const char *kind = obj_kind(t);
    const char *name = obj_name(t);

    if (!*kind || !*name || make_key(obj_ns(t), name, key, sizeof(key)) < 0) {
        json_decref(t);
        return -EINVAL;
    }
    KindEntry *e = add_kind(s, kind);
    if (!e) {
        json_decref(t);
        return -ENOMEM;
    }
    json_t *old = json_object_get(e->map, key);
    if (old && json_equal(old, t)) {
        json_decref(t);
        return 0;
    }
    if (s->bulk)
        t = share_into_lane(s, e, t);
    else
        share_object(s->share, t);
    if (old && same_but_version(old, t)) {
        /* Keep the newer version (Events name it) without counting a change. */
        if (json_object_set_new(e->map, key, t) < 0)
            return -ENOMEM;
        e->dirty = 1; /* the sorted view pointed at the old object */
        share_released(s->share, s->live);
        return 0;
    }
    json_incref(old); /* for the log: the map lets go of it */
    if (json_object_set_new(e->map, key, t) < 0) {
        json_decref(old);
        return -ENOMEM;
    }
    if (old)
        share_released(s->share, s->live);
    else
        s->live++;
    e->dirty = 1;
    e->changes++;
    s->generation++;
    log_change(s, e->kind, old, t);
    json_decref(old);
    return 1;
}

int store_put(Store *s, json_t *obj)
{
    if (!*obj_kind(obj) || !*obj_name(obj))
        return -EINVAL;
    json_t *t = store_trim(obj);
    return t ? put_trimmed(s, t) : -ENOMEM;
}

int store_put_new(Store *s, json_t *obj)
{
    if (!obj)
        return -ENOMEM;
    return put_trimmed(s, trim_in_place(obj));
}

int store_delete(Store *s, const char *kind, const char *ns, const char *name)
{
    char key[512];
    KindEntry *e = find_kind(s, kind);

    if (!e || make_key(ns, name, key, sizeof(key)) < 0)
        return 0;
    json_t *old = json_incref(json_object_get(e->map, key));
    if (json_object_del(e->map, key) < 0) {
        json_decref(old);
        return 0;
    }
    e->dirty = 1;
    e->changes++;
    s->generation++;
    s->live--;
    log_change(s, e->kind, old, NULL);
    json_decref(old);
    share_released(s->share, s->live);
    return 1;
}

json_t *store_get(const Store *s, const char *kind, const char *ns, const char *name)
{
    char key[512];
    KindEntry *e = find_kind(s, kind);

    if (!e || make_key(ns, name, key, sizeof(key)) < 0)
        return NULL;
    return json_object_get(e->map, key);
}

typedef struct SortItem {
    const char *key; /* "ns/name": namespaces never contain '/' */
    json_t *obj;
} SortItem;

/* Namespace, then name: compare the part before the first '/' on its own. */
static int cmp_item(const void *a, const void *b)
{
    const char *x = ((const SortItem *)a)->key, *y = ((const SortItem *)b)->key;
    const char *xs = strchr(x, '/'), *ys = strchr(y, '/');
    size_t xl = (size_t)(xs - x), yl = (size_t)(ys - y);
    int c = memcmp(x, y, xl < yl ? xl : yl);
    if (c)
        return c;
    if (xl != yl)
        return xl < yl ? -1 : 1;
    return strcmp(xs + 1, ys + 1);
}

json_t *const *store_list(Store *s, const char *kind, size_t *ret_n)
{
    KindEntry *e = find_kind(s, kind);

    *ret_n = 0;
    if (!e || json_object_size(e->map) == 0)
        return NULL;
    if (e->dirty || !e->sorted) {
        size_t n = json_object_size(e->map);
        json_t **arr = realloc(e->sorted, n * sizeof(*arr));
        if (!arr)
            return NULL;
        e->sorted = arr;
        SortItem *items = malloc(n * sizeof(*items));
        if (!items)
            return NULL;
        size_t i = 0;
        const char *k;
        json_t *v;
        json_object_foreach(e->map, k, v)
        {
            items[i].key = k;
            items[i].obj = v;
            i++;
        }
        qsort(items, n, sizeof(*items), cmp_item);
        for (i = 0; i < n; i++)
            arr[i] = items[i].obj;
        free(items);
        e->nsorted = n;
        e->dirty = 0;
    }
    *ret_n = e->nsorted;
    return e->sorted;
}

size_t store_count(const Store *s, const char *kind)
{
    if (kind) {
        KindEntry *e = find_kind(s, kind);
        return e ? json_object_size(e->map) : 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->nkinds; i++)
        n += json_object_size(s->kinds[i].map);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *store_kinds(Store *s)
{
    if (s->kind_names)
        return s->kind_names;
    const char **names = calloc(s->nkinds ? s->nkinds : 1, sizeof(*names));
    if (!names)
        return NULL;
    for (size_t i = 0; i < s->nkinds; i++)
        names[i] = s->kinds[i].kind;
    qsort(names, s->nkinds, sizeof(*names), cmp_str);
    s->kind_names = json_array();
    for (size_t i = 0; i < s->nkinds && s->kind_names; i++)
        json_array_append_new(s->kind_names, json_string(names[i]));
    free(names);
    return s->kind_names;
}

uint64_t store_generation(const Store *s)
{
    return s->generation;
}

uint64_t store_kind_changes(const Store *s, const char *kind)
{
    const KindEntry *e = find_kind(s, kind);
    return e ? e->changes : 0;
}

static bool listed(const char *kind, const char *const *kinds)
{
    for (; kinds && *kinds; kinds++)
        if (!strcmp(*kinds, kind))
            return true;
    return !kinds;
}

int store_clone_kinds(const Store *s, const char *const *kinds, Store **ret)
{
    Store *c = store_alloc();
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < s->nkinds; i++) {
        /* Every kind's counters, even of a kind not copied: they tell what changed when. */
        KindEntry *e = add_kind(c, s->kinds[i].kind);
        if (!e || (listed(e->kind, kinds) && json_object_update(e->map, s->kinds[i].map) < 0)) {
            store_free(c);
            return -ENOMEM;
        }
        e->dirty = 1;
        e->changes = s->kinds[i].changes;
    }
    for (size_t i = 0; i < s->log_len; i++) {
        const Change *ch = &s->log[(s->log_head + i) % LOG_SIZE];
        KindEntry *e = find_kind(c, ch->kind);
        c->generation = ch->gen; /* log_change() takes the generation from the store */
        log_change(c, e ? e->kind : "", ch->old, ch->cur);
    }
    c->generation = s->generation;
    c->live = store_count(c, NULL);
    *ret = c;
    return 0;
}

int store_clone_where(const Store *s, bool (*keep)(void *ud, const char *kind, const char *ns),
                      void *ud, Store **ret)
{
    Store *c;
    int r = store_clone_kinds(s, (const char *const[]){NULL}, &c);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s->nkinds; i++) {
        KindEntry *e = find_kind(c, s->kinds[i].kind);
        const char *key;
        json_t *obj;
        json_object_foreach(s->kinds[i].map, key, obj)
        {
            char ns[256];
            size_t l = strcspn(key, "/");
            if (l >= sizeof(ns))
                continue;
            memcpy(ns, key, l);
            ns[l] = 0;
            if (keep(ud, e->kind, ns) && json_object_set(e->map, key, obj) < 0) {
                store_free(c);
                return -ENOMEM;
            }
        }
    }
    c->live = store_count(c, NULL);
    *ret = c;
    return 0;
}

int store_clone(const Store *s, Store **ret)
{
    return store_clone_kinds(s, NULL, ret);
}
size_t store_shared(const Store *s)
{
    return share_count(s->share);
}

static const json_t *nth(const void *base, size_t stride, size_t i)
{
    return *(json_t *const *)(const void *)((const char *)base + i * stride);
}

/*
 * Four steps, each a few objects ahead of the reader and of the step before, so that each finds
 * in cache the pointer it follows: the object, its first key (the packed metadata), that string,
 * and the string's bytes.
 */
void obj_prefetch_in(const void *base, size_t stride, size_t n, size_t i)
{
    void *it;
    json_t *v;
    if (i + 12 < n) {
        const char *o = (const char *)nth(base, stride, i + 12);
        __builtin_prefetch(o);
        __builtin_prefetch(o + 64);
    }
    if (i + 8 < n && (it = json_object_iter((json_t *)nth(base, stride, i + 8)))) {
        __builtin_prefetch(it);
        __builtin_prefetch((const char *)it + 32);
    }
    if (i + 4 < n && (it = json_object_iter((json_t *)nth(base, stride, i + 4))) &&
        (v = json_object_iter_value(it)))
        __builtin_prefetch(v);
    if (i + 2 < n && (it = json_object_iter((json_t *)nth(base, stride, i + 2))) &&
        (v = json_object_iter_value(it)) && json_is_string(v)) {
        const char *p = json_string_value(v);
        __builtin_prefetch(p);
        __builtin_prefetch(p + 64);
    }
}

void obj_prefetch(json_t *const *objs, size_t n, size_t i)
{
    obj_prefetch_in(objs, sizeof(*objs), n, i);
}
