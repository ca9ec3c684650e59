/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Namespace plans. When no object reaches into another namespace, translating a store namespace
 * by namespace gives the configuration that translating it whole gives: the same entities,
 * which assembly sorts by key. A plan keeps each namespace's entities as canonical bytes with
 * their sort keys; after a change only the namespaces that changed are translated again, and
 * the configuration is merged from the pieces.
 *
 * Safety comes from three rules. A plan is made only when its merge equals a full translation
 * byte for byte. Only kinds whose objects act within their own namespace may be in the store
 * (anything else, and any change to a cluster-wide kind, needs a full translation). And a
 * namespace whose translation makes anything but services, upstreams and plugins, or a second
 * namespace with a default backend (the oldest one in the cluster wins), ends the plan.
 */
#include "xlate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kinds whose objects act only in their own namespace: their changes redo that namespace. */
static const char *const local_kinds[] = {
    "Ingress", "Service", "EndpointSlice", "KongPlugin", "KongIngress", "KongUpstreamPolicy",
    "Secret", NULL,
};
/* Cluster-wide settings every namespace reads: in each namespace's store; a change redoes all. */
static const char *const shared_kinds[] = {"IngressClass", "IngressClassParameters", NULL};

/* The top-level arrays a plan handles, in canonical (sorted key) order. */
enum { A_PLUGINS, A_SERVICES, A_UPSTREAMS, A_N };
static const char *const array_names[A_N] = {"plugins", "services", "upstreams"};

typedef struct Piece {
    char *key;   /* the assembly's sort key */
    char *bytes; /* canonical JSON of the entity */
    size_t len;
} Piece;

/* One namespace's share of the configuration; immutable once made, shared between plans. */
typedef struct Part {
    int refs; /* atomic: plans are freed on any thread */
    char *ns;
    Piece *pieces[A_N];
    size_t n[A_N];
    json_t *failures;
    bool default_backend; /* an Ingress here has spec.defaultBackend */
} Part;

struct NsPlan {
    int refs; /* atomic */
    XlateOptions o;
    char *strs[3];
    uint64_t gen;
    Part **parts; /* sorted by namespace */
    size_t nparts;
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
    for (int a = 0; a < A_N; a++) {
        for (size_t i = 0; i < p->n[a]; i++) {
            free(p->pieces[a][i].key);
            free(p->pieces[a][i].bytes);
        }
        free(p->pieces[a]);
    }
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
    p->o = *o;
    const char **s[] = {&p->o.ingress_class, &p->o.kong_version, &p->o.cluster_domain};
    for (int i = 0; i < 3; i++) {
        if (*s[i] && !(p->strs[i] = strdup(*s[i]))) {
            xlate_ns_plan_free(p);
            return NULL;
        }
        *s[i] = p->strs[i];
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
    return bsearch(&ns, k->nss, k->n, sizeof(*k->nss), cmp_str) != NULL;
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

/*
 * The part of namespace @ns: its objects and the shared ones translated alone. Returns NULL with
 * *why set when the namespace makes something a plan cannot hold, or on allocation failure.
 */
static Part *make_part(Store *st, const XlateOptions *o, const char *ns, const char **why)
{
    Keep keep = {(const char *const[]){ns}, 1};
    Store *sub = NULL;
    json_t *cfg = NULL, *failures = NULL;
    Part *p = calloc(1, sizeof(*p));
    *why = "out of memory";
    if (!p || !(p->ns = strdup(ns)) || store_clone_where(st, keep_ns, &keep, &sub) < 0 ||
        xlate_run(sub, o, &cfg, &failures) < 0)
        goto fail;
    p->refs = 1;
    p->failures = failures;
    failures = NULL;
    p->default_backend = has_default_backend(sub);
    bool stub = only_stub(cfg);
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v)
    {
        if (k[0] == '_' || !json_array_size(v))
            continue;
        int a = 0;
        while (a < A_N && strcmp(k, array_names[a]))
            a++;
        if (a == A_N) {
            *why = k; /* certificates, consumers, ...: they may reach across namespaces */
            goto fail;
        }
        if (stub)
            continue;
        size_t n = json_array_size(v);
        if (!(p->pieces[a] = calloc(n, sizeof(Piece))))
            goto fail;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            Buf b = BUF_INIT;
            Piece *pc = &p->pieces[a][p->n[a]++];
            pc->key = a == A_PLUGINS ? xplugin_sort_key(e)
                                     : strdup(str_or_empty(json_object_get(e, "name")));
            if (!pc->key || xcanon_append(&b, e) < 0 || buf_reserve(&b, 0) < 0) {
                buf_deinit(&b);
                goto fail;
            }
            pc->len = b.len;
            pc->bytes = buf_take(&b);
        }
    }
    json_decref(cfg);
    store_free(sub);
    return p;
fail:
    json_decref(cfg);
    json_decref(failures);
    store_free(sub);
    if (p)
        p->refs = 1;
    part_unref(p);
    return NULL;
}

typedef struct Ref {
    const Piece *pc;
    size_t part, idx;
} Ref;

/* Assembly's order: descending by key; equal keys keep their order (only within a part). */
static int cmp_ref(const void *a, const void *b)
{
    const Ref *x = a, *y = b;
    int c = strcmp(y->pc->key, x->pc->key);
    if (c)
        return c;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The configuration the parts make, as canonical JSON; -EXDEV when they cannot be merged. */
static int merge(const NsPlan *p, char **ret_json, size_t *ret_len, const char **why)
{
    Buf b = BUF_INIT;
    size_t total = 0, defaults = 0;
    int r = buf_puts(&b, "{\"_format_version\":\"3.0\"");
    for (size_t i = 0; i < p->nparts; i++) {
        defaults += p->parts[i]->default_backend;
        for (int a = 0; a < A_N; a++)
            total += p->parts[i]->n[a];
    }
    if (defaults > 1 || !total) {
        /* The oldest default backend in the cluster wins; an empty one gets a stand-in. */
        *why = defaults > 1 ? "default backends in several namespaces" : "no entities";
        buf_deinit(&b);
        return -EXDEV;
    }
    Ref *refs = malloc(total * sizeof(*refs));
    if (!refs)
        r = -ENOMEM;
    for (int a = 0; r == 0 && a < A_N; a++) {
        size_t n = 0;
        for (size_t i = 0; i < p->nparts; i++)
            for (size_t k = 0; k < p->parts[i]->n[a]; k++)
                refs[n++] = (Ref){&p->parts[i]->pieces[a][k], i, k};
        if (!n)
            continue;
        qsort(refs, n, sizeof(*refs), cmp_ref);
        for (size_t k = 1; k < n; k++) {
            if (refs[k].part != refs[k - 1].part && !strcmp(refs[k].pc->key, refs[k - 1].pc->key)) {
                *why = "equal sort keys in two namespaces"; /* their order would be a guess */
                r = -EXDEV;
            }
        }
        r = r ? r : buf_printf(&b, ",\"%s\":[", array_names[a]);
        for (size_t k = 0; r == 0 && k < n; k++) {
            if (k)
                r = buf_putc(&b, ',');
            if (r == 0)
                r = buf_append(&b, refs[k].pc->bytes, refs[k].pc->len);
        }
        r = r ? r : buf_putc(&b, ']');
    }
    free(refs);
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

/* Failures of all parts, in namespace order, each once (shared objects fail in every part). */
static json_t *merged_failures(const NsPlan *p)
{
    json_t *all = json_array();
    for (size_t i = 0; all && i < p->nparts; i++) {
        size_t k;
        json_t *f;
        json_array_foreach(p->parts[i]->failures, k, f)
        {
            bool seen = false;
            for (size_t j = 0; j < json_array_size(all) && !seen; j++)
                seen = json_equal(json_array_get(all, j), f);
            if (!seen)
                json_array_append(all, f);
        }
    }
    return all;
}

/* The namespaces that hold objects of a local kind, sorted (borrowed strings). */
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
    if (n)
        qsort(v, n, sizeof(*v), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (!u || strcmp(v[u - 1], v[i]))
            v[u++] = v[i];
    *ret_n = u;
    return v ? v : calloc(1, sizeof(*v));
}

int xlate_ns_build(Store *st, const XlateOptions *o, const char *full, size_t len, NsPlan **ret,
                   const char **why)
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
    if (r == 0)
        r = merge(p, &json, &jl, why);
    if (r == 0 && (jl != len || memcmp(json, full, len))) {
        *why = "the namespaces put together differ from the whole";
        r = -EXDEV;
    }
    free(json);
    if (r < 0) {
        xlate_ns_plan_free(p);
        return r;
    }
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

int xlate_ns_refresh(Store *st, const NsPlan *p, const XlateOptions *o, char **ret_json,
                     size_t *ret_len, json_t **ret_failures, NsPlan **ret_plan, const char **why)
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
    size_t cap = 0, i = 0, k = 0;
    r = np ? 0 : -ENOMEM;
    /* Walk the old parts and the changed namespaces together, both sorted. */
    while (r == 0 && (i < p->nparts || k < ch.n)) {
        int c = i == p->nparts ? 1 : k == ch.n ? -1 : strcmp(p->parts[i]->ns, ch.nss[k]);
        if (c < 0) { /* unchanged: shared */
            __atomic_add_fetch(&p->parts[i]->refs, 1, __ATOMIC_RELAXED);
            r = add_part(np, p->parts[i++], &cap);
            continue;
        }
        const char *ns = c == 0 ? p->parts[i++]->ns : ch.nss[k];
        while (k < ch.n && !strcmp(ch.nss[k], ns))
            k++;
        Part *part = make_part(st, o, ns, why);
        if (!part) {
            r = strcmp(*why, "out of memory") ? -EXDEV : -ENOMEM;
            break;
        }
        size_t total = part->n[A_PLUGINS] + part->n[A_SERVICES] + part->n[A_UPSTREAMS];
        if (!total && !json_array_size(part->failures) && !part->default_backend) {
            part_unref(part); /* nothing left in that namespace */
            continue;
        }
        if ((r = add_part(np, part, &cap)) < 0)
            part_unref(part);
    }
    free(ch.nss);
    if (r == 0)
        r = merge(np, ret_json, ret_len, why);
    if (r == 0 && !(*ret_failures = merged_failures(np))) {
        free(*ret_json);
        r = -ENOMEM;
    }
    if (r < 0) {
        xlate_ns_plan_free(np);
        return r;
    }
    *ret_plan = np;
    return 0;
}
