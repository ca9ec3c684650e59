/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Namespace plans. When no object reaches into another namespace, translating a store namespace
 * by namespace gives the configuration that translating it whole gives: the same entities,
 * which assembly sorts by key. A plan keeps each namespace's entities as canonical bytes with
 * their sort keys; after a change only the namespaces that changed are translated again, and
 * the configuration is merged from the pieces.
 *
 * Safety comes from three rules. A plan is made only when its merge equals a full translation
 * byte for byte. Only kinds whose objects act within their own namespace, and the cluster-wide
 * ones every namespace reads (IngressClasses, KongClusterPlugins, KongVaults), may be in the
 * store; anything else, and any change to a cluster-wide kind, needs a full translation. And a
 * namespace whose translation makes anything but the arrays below (custom entities), a second
 * namespace with a default backend or claiming what another one claims (a TLS host: the oldest
 * Ingress in the cluster wins it; a unique credential: conflicting consumers are all dropped; a
 * CA certificate ID: the oldest object wins it), a namespace whose consumers conflict among
 * themselves, or equal sort keys in two namespaces, ends the plan.
 */
#include "xlate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kinds whose objects act only in their own namespace: their changes redo that namespace. */
static const char *const local_kinds[] = {
    "Ingress",    "Service",      "EndpointSlice",     "KongPlugin", "KongIngress",
    "Secret",     "ConfigMap",    "KongConsumer",      "TCPIngress", "KongUpstreamPolicy",
    "UDPIngress", "KongConsumerGroup", NULL,
};
/*
 * Cluster-wide objects every namespace may read: in each namespace's store; a change redoes all.
 * The plugins of global KongClusterPlugins, and the vaults, would come out of every namespace: a
 * part of their own (CLUSTER_PART, translated with the shared objects alone) keeps them, the
 * others drop them.
 */
static const char *const shared_kinds[] = {"IngressClass", "IngressClassParameters",
                                           "KongClusterPlugin", "KongVault", NULL};
#define CLUSTER_PART "\x01cluster" /* sorts after "" and before any namespace's name */

/*
 * The top-level arrays a plan handles, in canonical (sorted key) order. Assembly sorts most
 * descending by key; consumers are in decK's ascending order, and their group memberships follow
 * them (keyed by their consumer's key).
 */
enum {
    A_CA_CERTIFICATES,
    A_CERTIFICATES,
    A_MEMBERS,
    A_GROUPS,
    A_CONSUMERS,
    A_PLUGINS,
    A_SERVICES,
    A_UPSTREAMS,
    A_VAULTS,
    A_N
};
static const char *const array_names[A_N] = {
    "ca_certificates", "certificates", "consumer_group_consumers", "consumer_groups",
    "consumers",       "plugins",      "services",                 "upstreams",
    "vaults",
};
static const bool ascending[A_N] = {[A_MEMBERS] = true, [A_CONSUMERS] = true};

typedef struct Piece {
    const char *key;   /* the assembly's sort key */
    const char *bytes; /* canonical JSON of the entity, until merged into a configuration */
    size_t len;
} Piece;

/*
 * One namespace's share of the configuration; shared between plans, immutable once merged. A
 * part lives as long as plans use it, so what it keeps (the keys) is one block, made after its
 * translation's temporaries are gone: small long-lived allocations among those would keep the
 * pages of the whole translation. Its entities' bytes are kept only until the first merge; from
 * then on they are read from the configuration they were merged into.
 */
typedef struct Part {
    int refs; /* atomic: plans are freed on any thread */
    char *ns;
    Piece *pieces[A_N]; /* into one array */
    size_t n[A_N];
    char *keys;
    char *tmp; /* the entities' bytes, until merged */
    /* What it claims cluster-wide (in @keys; see claims_of()). The same claim in two namespaces
     * ends a plan. */
    const char **claims;
    size_t nclaims;
    json_t *failures;
    bool default_backend; /* an Ingress here has spec.defaultBackend */
} Part;

/* An entity in the merged order, and where its bytes are in the plan's configuration. */
typedef struct Ref {
    const Part *part;
    size_t idx;
    size_t off, len;
} Ref;

struct NsPlan {
    int refs; /* atomic */
    XlateOptions o;
    char *strs[3];
    uint64_t gen;
    Part **parts; /* sorted by namespace */
    size_t nparts;
    Ref *order[A_N]; /* each array's entities as the configuration has them */
    size_t norder[A_N];
    Bytes *json; /* the configuration (shared with its revision) */
};

static const char *str_or_empty(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "";
}

static bool in(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

static void part_unref(Part *p)
{
    if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(p->pieces[0]);
    free(p->keys);
    free(p->tmp);
    free(p->claims);
    json_decref(p->failures);
    free(p->ns);
    free(p);
}

NsPlan *xlate_ns_plan_ref(NsPlan *p)
{
    if (p)
        __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void xlate_ns_plan_free(NsPlan *p)
{
    if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < p->nparts; i++)
        part_unref(p->parts[i]);
    free(p->parts);
    for (int a = 0; a < A_N; a++)
        free(p->order[a]);
    bytes_unref(p->json);
    for (int i = 0; i < 3; i++)
        free(p->strs[i]);
    free(p);
}

static NsPlan *plan_new(const Store *st, const XlateOptions *o)
{
    NsPlan *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->refs = 1;
    if (xopts_own(&p->o, p->strs, o) < 0) {
        xlate_ns_plan_free(p);
        return NULL;
    }
    p->gen = store_generation(st);
    return p;
}

static int add_part(NsPlan *p, Part *part, size_t *cap)
{
    if (util_grow(&p->parts, cap, p->nparts, sizeof(*p->parts), 16) < 0)
        return -ENOMEM;
    p->parts[p->nparts++] = part;
    return 0;
}

/* Every kind in @st is local or shared; else *why says which is not. */
static bool kinds_allowed(Store *st, const char **why)
{
    size_t i;
    json_t *k;
    json_array_foreach(store_kinds(st), i, k)
    {
        const char *kind = json_string_value(k);
        if (store_count(st, kind) && !in(kind, local_kinds) && !in(kind, shared_kinds)) {
            *why = kind;
            return false;
        }
    }
    return true;
}

typedef struct Keep {
    const char *const *nss; /* sorted namespaces to keep */
    size_t n;
} Keep;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool keep_ns(void *ud, const char *kind, const char *ns)
{
    Keep *k = ud;
    if (in(kind, shared_kinds))
        return true;
    return k->n && bsearch(&ns, k->nss, k->n, sizeof(*k->nss), cmp_str) != NULL;
}

static bool has_default_backend(Store *st)
{
    size_t n;
    json_t *const *ings = store_list(st, "Ingress", &n);
    for (size_t i = 0; i < n; i++)
        if (json_is_object(obj_get_path(ings[i], "spec.defaultBackend")))
            return true;
    return false;
}

/* Whether @cfg is the stand-in a translation makes when there is nothing: one upstream "kong". */
static bool only_stub(json_t *cfg)
{
    json_t *ups = json_object_get(cfg, "upstreams");
    return json_array_size(ups) == 1 && json_object_size(json_array_get(ups, 0)) == 1 &&
           !strcmp(str_or_empty(json_object_get(json_array_get(ups, 0), "name")), "kong");
}

/* Where a piece's key and bytes are in the block being written. */
typedef struct Span {
    size_t key, bytes, len;
} Span;

/* Each consumer by the name its memberships use (username, else custom_id): "name" -> consumer. */
static json_t *consumers_by_ref(const json_t *consumers)
{
    json_t *by = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(consumers, i, c)
    {
        json_t *u = json_object_get(c, "username");
        json_object_set(by, str_or_empty(u ? u : json_object_get(c, "custom_id")), c);
    }
    return by;
}

/*
 * The assembly's sort key of entity @e of array @a (malloc'd). A membership's key is its
 * consumer's (@by_ref: consumers_by_ref()), so memberships merge in the order of their consumers.
 */
static char *sort_key(const json_t *e, int a, const json_t *by_ref)
{
    switch (a) {
    case A_PLUGINS:
        return xplugin_sort_key(e);
    case A_CONSUMERS:
        return xconsumer_sort_key(e);
    case A_MEMBERS:
        return xconsumer_sort_key(
            json_object_get(by_ref, str_or_empty(json_object_get(e, "consumer"))));
    case A_CERTIFICATES:
    case A_CA_CERTIFICATES:
        return strdup(str_or_empty(json_object_get(e, "cert")));
    case A_VAULTS:
        return strdup(str_or_empty(json_object_get(e, "prefix")));
    default:
        return strdup(str_or_empty(json_object_get(e, "name")));
    }
}

/* Append the key of every entity of array @arr (of kind @a) to @kb, its bytes to @bb. */
static int write_pieces(json_t *arr, int a, const json_t *by_ref, Buf *kb, Buf *bb, Span *spans)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i);
        char *key = sort_key(e, a, by_ref);
        spans[i].key = kb->len;
        int r = key ? buf_append(kb, key, strlen(key) + 1) : -ENOMEM;
        free(key);
        spans[i].bytes = bb->len;
        if (r < 0 || (r = xcanon_append(bb, e)) < 0)
            return r;
        spans[i].len = bb->len - spans[i].bytes;
    }
    return 0;
}

typedef struct Claims {
    size_t *at; /* offsets in the key block */
    size_t n, cap;
} Claims;

/* Append the claim @what followed by @len bytes of @s to @kb. */
static int claim(Buf *kb, Claims *c, const char *what, const char *s, size_t len)
{
    if (util_grow(&c->at, &c->cap, c->n, sizeof(*c->at), 16) < 0)
        return -ENOMEM;
    c->at[c->n++] = kb->len;
    if (buf_puts(kb, what) < 0 || buf_append(kb, s, len) < 0 || buf_putc(kb, 0) < 0)
        return -ENOMEM;
    return 0;
}

/*
 * What @st's objects claim cluster-wide, appended to @kb (NUL-terminated): the TLS hosts of its
 * Ingresses and TCPIngresses (the first in the cluster to name a host gets it), the unique
 * credential values of the consumers in @consumers (a conflict drops every consumer in it), and
 * the IDs of the CA certificates in @cas (the oldest Secret or ConfigMap with an ID gets it).
 */
static int claims_of(Store *st, const json_t *consumers, const json_t *cas, Buf *kb, Claims *c)
{
    size_t i, n;
    json_t *cons;
    json_array_foreach(cas, i, cons)
    {
        json_t *id = json_object_get(cons, "id");
        if (json_is_string(id) &&
            claim(kb, c, "ca certificate\n", json_string_value(id), json_string_length(id)) < 0)
            return -ENOMEM;
    }
    json_array_foreach(consumers, i, cons)
    {
        const char *list;
        json_t *creds;
        json_object_foreach((json_t *)cons, list, creds)
        {
            const char *field = xcredential_unique(list);
            char what[64];
            size_t k;
            json_t *cred;
            snprintf(what, sizeof(what), "%s\n", list);
            json_array_foreach(field ? creds : NULL, k, cred)
            {
                json_t *v = json_object_get(cred, field);
                if (json_is_string(v) &&
                    claim(kb, c, what, json_string_value(v), json_string_length(v)) < 0)
                    return -ENOMEM;
            }
        }
    }
    for (int kind = 0; kind < 2; kind++) { /* the kinds whose spec.tls claims hosts */
        json_t *const *ings = store_list(st, kind ? "TCPIngress" : "Ingress", &n);
        for (i = 0; i < n; i++) {
            size_t t, h;
            json_t *tls, *host;
            json_array_foreach(obj_get_path(ings[i], "spec.tls"), t, tls)
            {
                json_array_foreach(json_object_get(tls, "hosts"), h, host)
                {
                    if (json_is_string(host) && claim(kb, c, "tls host\n", json_string_value(host),
                                                      json_string_length(host)) < 0)
                        return -ENOMEM;
                }
            }
        }
    }
    return 0;
}

/*
 * The part of namespace @ns: its objects and the shared ones translated alone. Returns NULL with
 * *why set when the namespace makes something a plan cannot hold, or on allocation failure.
 */
static Part *make_part(Store *st, const XlateOptions *o, const char *ns, const char **why)
{
    Keep keep = {(const char *const[]){ns}, 1};
    Store *sub = NULL;
    json_t *cfg = NULL, *failures = NULL, *arrays[A_N] = {NULL};
    Span *spans = NULL;
    Buf kb = BUF_INIT, bb = BUF_INIT;
    size_t total = 0, i;
    Claims claims = {NULL, 0, 0};
    bool defaults = false;
    *why = "out of memory";
    if (store_clone_where(st, keep_ns, &keep, &sub) < 0 || xlate_run(sub, o, &cfg, &failures) < 0)
        goto fail;
    defaults = has_default_backend(sub);
    if (claims_of(sub, json_object_get(cfg, "consumers"), json_object_get(cfg, "ca_certificates"),
                  &kb, &claims) < 0)
        goto fail;
    const char *k;
    json_t *v;
    json_array_foreach(failures, i, v)
    {
        /* Consumers it dropped on a conflict of its own: one elsewhere would have been dropped
         * too, and this part no longer claims the credential. */
        const char *msg = str_or_empty(json_object_get(v, "message"));
        if (!strncmp(msg, XFAIL_CREDENTIAL_CONFLICT, strlen(XFAIL_CREDENTIAL_CONFLICT))) {
            *why = "conflicting credentials";
            goto fail;
        }
    }
    json_object_foreach(cfg, k, v)
    {
        if (k[0] == '_' || !json_array_size(v))
            continue;
        int a = 0;
        while (a < A_N && strcmp(k, array_names[a]))
            a++;
        if (a == A_N) { /* custom entities: they may reach across namespaces */
            *why = "custom entities"; /* a static string: @cfg goes away */
            goto fail;
        }
        arrays[a] = v;
    }
    if (only_stub(cfg))
        arrays[A_UPSTREAMS] = NULL;
    if (strcmp(ns, CLUSTER_PART))
        arrays[A_VAULTS] = NULL; /* the cluster part has them */
    if (strcmp(ns, CLUSTER_PART) && json_array_size(arrays[A_PLUGINS])) {
        /* Plugins attached to nothing are global: the cluster part has them. */
        json_t *attached = json_array();
        size_t pi;
        json_t *pl;
        json_array_foreach(arrays[A_PLUGINS], pi, pl)
        {
            if (json_object_get(pl, "service") || json_object_get(pl, "route") ||
                json_object_get(pl, "consumer") || json_object_get(pl, "consumer_group"))
                json_array_append(attached, pl);
        }
        json_object_set_new(cfg, "plugins", attached); /* @cfg owns it, as the others */
        arrays[A_PLUGINS] = attached;
    }
    for (int a = 0; a < A_N; a++)
        total += json_array_size(arrays[a]);
    if (!(spans = calloc(total ? total : 1, sizeof(*spans))))
        goto fail;
    json_t *by_ref = consumers_by_ref(arrays[A_CONSUMERS]);
    for (int a = 0, at = 0; a < A_N; at += (int)json_array_size(arrays[a]), a++)
        if (!by_ref || write_pieces(arrays[a], a, by_ref, &kb, &bb, spans + at) < 0) {
            json_decref(by_ref);
            goto fail;
        }
    json_decref(by_ref);
    size_t n[A_N];
    for (int a = 0; a < A_N; a++)
        n[a] = json_array_size(arrays[a]);
    /* Now that the translation is gone, the few allocations the part keeps. */
    json_decref(cfg);
    cfg = NULL;
    store_free(sub);
    sub = NULL;
    Part *p = calloc(1, sizeof(*p));
    Piece *pieces = calloc(total ? total : 1, sizeof(*pieces));
    char *keys = kb.len ? malloc(kb.len) : NULL;
    char *nsdup = strdup(ns);
    const char **cl = claims.n ? malloc(claims.n * sizeof(*cl)) : NULL;
    if (!p || !pieces || (kb.len && !keys) || !nsdup || (claims.n && !cl)) {
        free(p);
        free(pieces);
        free(keys);
        free(nsdup);
        free(cl);
        goto fail;
    }
    for (i = 0; i < claims.n; i++)
        cl[i] = keys + claims.at[i];
    if (kb.len)
        memcpy(keys, kb.data, kb.len);
    buf_deinit(&kb);
    *p = (Part){.refs = 1, .ns = nsdup, .keys = keys, .tmp = bb.data, .claims = cl,
                .nclaims = claims.n, .failures = failures, .default_backend = defaults};
    free(claims.at);
    bb = (Buf)BUF_INIT;
    for (i = 0; i < total; i++)
        pieces[i] = (Piece){keys + spans[i].key, p->tmp + spans[i].bytes, spans[i].len};
    for (int a = 0, at = 0; a < A_N; at += (int)n[a], a++) {
        p->pieces[a] = pieces + at;
        p->n[a] = n[a];
    }
    free(spans);
    return p;
fail:
    json_decref(cfg);
    json_decref(failures);
    store_free(sub);
    buf_deinit(&kb);
    buf_deinit(&bb);
    free(spans);
    free(claims.at);
    return NULL;
}

static const Piece *piece(const Ref *r, int a)
{
    return &r->part->pieces[a][r->idx];
}

/* Assembly's order: descending by key, but for the ascending arrays. */
static int cmp_key(const Ref *x, const Ref *y, int a)
{
    int c = strcmp(piece(y, a)->key, piece(x, a)->key);
    return ascending[a] ? -c : c;
}

static int cmp_ref(const void *x, const void *y, void *arg)
{
    int a = *(const int *)arg;
    int c = cmp_key(x, y, a);
    if (c)
        return c;
    const Ref *p = x, *q = y;
    if (p->part != q->part) /* by namespace: parts are in that order */
        return strcmp(p->part->ns, q->part->ns);
    return (p->idx > q->idx) - (p->idx < q->idx); /* equal keys keep their order */
}

/* Equal keys in two namespaces: assembly would order them by how translation met them. */
static bool ties(const Ref *v, size_t n, int a)
{
    for (size_t k = 1; k < n; k++)
        if (v[k].part != v[k - 1].part && !cmp_key(&v[k], &v[k - 1], a))
            return true;
    return false;
}

/* Every array's order from scratch (a new plan). */
static int order_all(NsPlan *p)
{
    for (int a = 0; a < A_N; a++) {
        size_t n = 0;
        for (size_t i = 0; i < p->nparts; i++)
            n += p->parts[i]->n[a];
        if (!(p->order[a] = malloc((n ? n : 1) * sizeof(Ref))))
            return -ENOMEM;
        for (size_t i = 0; i < p->nparts; i++)
            for (size_t k = 0; k < p->parts[i]->n[a]; k++)
                p->order[a][p->norder[a]++] = (Ref){p->parts[i], k, 0, 0};
        qsort_r(p->order[a], n, sizeof(Ref), cmp_ref, &a);
        if (ties(p->order[a], n, a))
            return -EXDEV;
    }
    return 0;
}

static bool listed_part(const Part *part, Part *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == part)
            return true;
    return false;
}

/*
 * @np's order from @old's: the entities of the parts not @gone keep their places, and those of
 * the @nfresh new parts (each already in order) are merged in. Linear in the entities.
 */
static int order_from(NsPlan *np, const NsPlan *old, Part *const *gone, size_t ngone,
                      Part *const *fresh, size_t nfresh)
{
    for (int a = 0; a < A_N; a++) {
        size_t n = 0;
        for (size_t i = 0; i < np->nparts; i++)
            n += np->parts[i]->n[a];
        Ref *cur = malloc((n ? n : 1) * sizeof(Ref)), *tmp = malloc((n ? n : 1) * sizeof(Ref));
        if (!cur || !tmp) {
            free(cur);
            free(tmp);
            return -ENOMEM;
        }
        size_t m = 0;
        for (size_t k = 0; k < old->norder[a]; k++) /* the old order, minus replaced parts */
            if (!listed_part(old->order[a][k].part, gone, ngone))
                cur[m++] = old->order[a][k];
        for (size_t f = 0; f < nfresh; f++) { /* merge each new part in */
            size_t i = 0, j = 0, o = 0, fn = fresh[f]->n[a];
            while (i < m || j < fn) {
                Ref nr = {fresh[f], j, 0, 0};
                if (j == fn || (i < m && cmp_ref(&cur[i], &nr, &a) < 0))
                    tmp[o++] = cur[i++];
                else
                    tmp[o++] = (Ref){fresh[f], j++, 0, 0};
            }
            Ref *t = cur;
            cur = tmp;
            tmp = t;
            m = o;
        }
        free(tmp);
        np->order[a] = cur;
        np->norder[a] = m;
        if (ties(cur, m, a))
            return -EXDEV;
    }
    return 0;
}

typedef struct ClaimRef {
    const char *claim;
    const Part *part;
} ClaimRef;

static int cmp_claim(const void *a, const void *b)
{
    return strcmp(((const ClaimRef *)a)->claim, ((const ClaimRef *)b)->claim);
}

/* -EXDEV when two namespaces claim the same (a TLS host, a credential): the older would win. */
static int claims_apart(const NsPlan *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nparts; i++)
        n += p->parts[i]->nclaims;
    if (n < 2)
        return 0;
    ClaimRef *v = malloc(n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    n = 0;
    for (size_t i = 0; i < p->nparts; i++)
        for (size_t k = 0; k < p->parts[i]->nclaims; k++)
            v[n++] = (ClaimRef){p->parts[i]->claims[k], p->parts[i]};
    qsort(v, n, sizeof(*v), cmp_claim);
    int r = 0;
    for (size_t k = 1; k < n && !r; k++)
        if (v[k].part != v[k - 1].part && !strcmp(v[k].claim, v[k - 1].claim))
            r = -EXDEV;
    free(v);
    return r;
}

/*
 * The configuration in @p's order, as canonical JSON: entities of new parts from their own bytes,
 * the others from @prev (the configuration they were merged into last); each Ref then notes
 * where its entity is in the result. -EXDEV when the parts cannot be merged.
 */
static int merge(NsPlan *p, const Bytes *prev, char **ret_json, size_t *ret_len, const char **why)
{
    Buf b = BUF_INIT;
    size_t total = 0, bytes = 64, defaults = 0;
    for (size_t i = 0; i < p->nparts; i++)
        defaults += p->parts[i]->default_backend;
    for (int a = 0; a < A_N; a++) {
        total += p->norder[a];
        for (size_t k = 0; k < p->norder[a]; k++) {
            Ref *rf = &p->order[a][k];
            bytes += (rf->part->tmp ? piece(rf, a)->len : rf->len) + 1;
        }
        bytes += 16;
    }
    if (defaults > 1 || !total) {
        /* The oldest default backend in the cluster wins; an empty one gets a stand-in. */
        *why = defaults > 1 ? "default backends in several namespaces" : "no entities";
        return -EXDEV;
    }
    int hr = claims_apart(p);
    if (hr < 0) {
        *why = "a TLS host, credential or CA certificate ID in two namespaces";
        return hr;
    }
    size_t cap;
    if ((b.data = util_spare_take(bytes + 1, &cap))) /* pages already in memory */
        b.cap = cap;
    int r = buf_reserve(&b, bytes);
    if (r == 0)
        r = buf_puts(&b, "{\"_format_version\":\"3.0\"");
    for (int a = 0; r == 0 && a < A_N; a++) {
        if (!p->norder[a])
            continue;
        r = buf_printf(&b, ",\"%s\":[", array_names[a]);
        for (size_t k = 0; r == 0 && k < p->norder[a]; k++) {
            Ref *rf = &p->order[a][k];
            const Piece *pc = piece(rf, a);
            const char *src = rf->part->tmp ? pc->bytes : prev ? prev->data + rf->off : NULL;
            size_t len = rf->part->tmp ? pc->len : rf->len;
            if (!src) {
                r = -EINVAL;
                break;
            }
            if (k)
                r = buf_putc(&b, ',');
            rf->off = b.len;
            rf->len = len;
            if (r == 0)
                r = buf_append(&b, src, len);
        }
        r = r ? r : buf_putc(&b, ']');
    }
    if (r == 0)
        r = buf_putc(&b, '}');
    if (r == 0)
        r = buf_reserve(&b, 0);
    if (r < 0) {
        buf_deinit(&b);
        return r;
    }
    *ret_len = b.len;
    *ret_json = buf_take(&b);
    return 0;
}

/* After a merge: new parts read their entities from the configuration from now on. */
static void settle(NsPlan *p)
{
    for (size_t i = 0; i < p->nparts; i++) {
        Part *pt = p->parts[i];
        if (!pt->tmp)
            continue;
        free(pt->tmp);
        pt->tmp = NULL;
        for (int a = 0; a < A_N; a++)
            for (size_t k = 0; k < pt->n[a]; k++)
                pt->pieces[a][k].bytes = NULL;
    }
}

/* Failures of all parts, in namespace order, each once (shared objects fail in every part). */
static json_t *merged_failures(const NsPlan *p)
{
    json_t *all = json_array(), *seen = json_object();
    for (size_t i = 0; all && seen && i < p->nparts; i++) {
        size_t k;
        json_t *f;
        json_array_foreach(p->parts[i]->failures, k, f)
        {
            char *key = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
            if (key && !json_object_get(seen, key)) {
                json_object_set_new(seen, key, json_true());
                json_array_append(all, f);
            }
            free(key);
        }
    }
    json_decref(seen);
    return all;
}

/* The namespaces that hold objects of a local kind and CLUSTER_PART, sorted (borrowed strings). */
static const char **namespaces(Store *st, size_t *ret_n)
{
    size_t n = 0, cap = 0;
    const char **v = NULL;
    for (const char *const *k = local_kinds; *k; k++) {
        size_t m;
        json_t *const *objs = store_list(st, *k, &m);
        for (size_t i = 0; i < m; i++) {
            if (util_grow(&v, &cap, n, sizeof(*v), 64) < 0) {
                free(v);
                return NULL;
            }
            v[n++] = obj_ns(objs[i]);
        }
    }
    if (util_grow(&v, &cap, n, sizeof(*v), 64) < 0) {
        free(v);
        return NULL;
    }
    v[n++] = CLUSTER_PART;
    qsort(v, n, sizeof(*v), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (!u || strcmp(v[u - 1], v[i]))
            v[u++] = v[i];
    *ret_n = u;
    return v ? v : calloc(1, sizeof(*v));
}

int xlate_ns_build(Store *st, const XlateOptions *o, Bytes *full, NsPlan **ret, const char **why)
{
    *ret = NULL;
    if (!kinds_allowed(st, why))
        return -EXDEV;
    size_t n, cap = 0;
    const char **nss = namespaces(st, &n);
    NsPlan *p = plan_new(st, o);
    int r = nss && p ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        Part *part = make_part(st, o, nss[i], why);
        r = !part ? (strcmp(*why, "out of memory") ? -EXDEV : -ENOMEM) : add_part(p, part, &cap);
        if (part && r < 0)
            part_unref(part);
    }
    free(nss);
    char *json = NULL;
    size_t jl = 0;
    if (r == 0 && (r = order_all(p)) == -EXDEV)
        *why = "equal sort keys in two namespaces"; /* their order would be a guess */
    if (r == 0)
        r = merge(p, NULL, &json, &jl, why);
    if (r == 0 && (jl != full->len || memcmp(json, full->data, jl))) {
        *why = "the namespaces put together differ from the whole";
        r = -EXDEV;
    }
    free(json);
    if (r < 0) {
        xlate_ns_plan_free(p);
        return r;
    }
    settle(p); /* the same bytes: read them from @full */
    p->json = bytes_ref(full);
    *ret = p;
    return 0;
}

bool xlate_ns_plan_usable(const NsPlan *p, const XlateOptions *o)
{
    return p && xlate_options_equal(&p->o, o);
}

typedef struct Changed {
    const char **nss; /* namespaces whose objects changed (borrowed from the store's log) */
    size_t n, cap;
    bool global; /* a change that is not namespace-local */
    bool oom;
} Changed;

static void note_change(void *ud, json_t *old, json_t *cur)
{
    Changed *c = ud;
    json_t *o = cur ? cur : old;
    const char *kind = obj_kind(o);
    if (!in(kind, local_kinds)) {
        c->global = true;
        return;
    }
    if (util_grow(&c->nss, &c->cap, c->n, sizeof(*c->nss), 16) < 0) {
        c->oom = true;
        return;
    }
    c->nss[c->n++] = obj_ns(o);
}

/* The changes since @p was made, or -EXDEV with *why when one needs a full translation. */
static int changes(Store *st, const NsPlan *p, Changed *ch, const char **why)
{
    memset(ch, 0, sizeof(*ch));
    if (store_changes(st, p->gen, NULL, note_change, ch) < 0) {
        free(ch->nss);
        *why = "more changes than the store remembers";
        return -EXDEV;
    }
    if (ch->oom || ch->global || !kinds_allowed(st, why)) {
        if (ch->global)
            *why = "a change to a cluster-wide kind";
        free(ch->nss);
        return ch->oom ? -ENOMEM : -EXDEV;
    }
    if (ch->n)
        qsort(ch->nss, ch->n, sizeof(*ch->nss), cmp_str);
    return 0;
}

int xlate_ns_snapshot(Store *st, const NsPlan *p, Store **ret, const char **why)
{
    Changed ch;
    int r = changes(st, p, &ch, why);
    if (r < 0)
        return r;
    Keep keep = {ch.nss, ch.n};
    r = store_clone_where(st, keep_ns, &keep, ret);
    free(ch.nss);
    return r;
}

int xlate_ns_refresh(Store *st, const NsPlan *p, const XlateOptions *o, Bytes **ret_bytes,
                     json_t **ret_failures, NsPlan **ret_plan, const char **why)
{
    Changed ch;
    if (!xlate_ns_plan_usable(p, o)) {
        *why = "other options";
        return -EXDEV;
    }
    int r = changes(st, p, &ch, why);
    if (r < 0)
        return r;
    NsPlan *np = plan_new(st, &p->o);
    Part **fresh = calloc(ch.n ? ch.n : 1, sizeof(*fresh));
    Part **gone = calloc(ch.n ? ch.n : 1, sizeof(*gone));
    size_t cap = 0, i = 0, k = 0, nfresh = 0, ngone = 0;
    r = np && fresh && gone ? 0 : -ENOMEM;
    /* Walk the old parts and the changed namespaces together, both sorted. */
    while (r == 0 && (i < p->nparts || k < ch.n)) {
        int c = i == p->nparts ? 1 : k == ch.n ? -1 : strcmp(p->parts[i]->ns, ch.nss[k]);
        if (c < 0) { /* unchanged: shared */
            __atomic_add_fetch(&p->parts[i]->refs, 1, __ATOMIC_RELAXED);
            r = add_part(np, p->parts[i++], &cap);
            continue;
        }
        if (c == 0)
            gone[ngone++] = p->parts[i];
        const char *ns = c == 0 ? p->parts[i++]->ns : ch.nss[k];
        while (k < ch.n && !strcmp(ch.nss[k], ns))
            k++;
        Part *part = make_part(st, o, ns, why);
        if (!part) {
            r = strcmp(*why, "out of memory") ? -EXDEV : -ENOMEM;
            break;
        }
        size_t total = 0;
        for (int a = 0; a < A_N; a++)
            total += part->n[a];
        if (!total && !json_array_size(part->failures) && !part->default_backend &&
            !part->nclaims) {
            part_unref(part); /* nothing left in that namespace */
            continue;
        }
        if ((r = add_part(np, part, &cap)) < 0)
            part_unref(part);
        else
            fresh[nfresh++] = part;
    }
    free(ch.nss);
    if (r == 0 && (r = order_from(np, p, gone, ngone, fresh, nfresh)) == -EXDEV)
        *why = "equal sort keys in two namespaces";
    free(fresh);
    free(gone);
    char *json = NULL;
    size_t len = 0;
    if (r == 0 && (r = merge(np, p->json, &json, &len, why)) == 0) {
        settle(np);
        r = (np->json = bytes_new(json, len)) ? 0 : -ENOMEM;
    }
    if (r == 0 && !(*ret_failures = merged_failures(np)))
        r = -ENOMEM;
    if (r < 0) {
        xlate_ns_plan_free(np);
        return r;
    }
    *ret_bytes = bytes_ref(np->json);
    *ret_plan = np;
    return 0;
}
