/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plans and target refreshes: after a change to EndpointSlices only, redo each upstream's
 * targets from the Services and ports the last full translation resolved, and splice the
 * upstreams that changed into the previous canonical JSON. See xlate.h.
 */
#include "xlate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICES "EndpointSlice"

/* Everything else comes from the plan and the previous configuration. */
const char *const xlate_refresh_kinds[] = {SLICES, "IngressClass", "IngressClassParameters", NULL};

int xopts_own(XlateOptions *dst, char *strs[3], const XlateOptions *o)
{
    *dst = *o;
    const char **s[] = {&dst->ingress_class, &dst->kong_version, &dst->cluster_domain};
    for (int i = 0; i < 3; i++) {
        if (*s[i] && !(strs[i] = strdup(*s[i])))
            return -ENOMEM;
        *s[i] = strs[i];
    }
    return 0;
}

XlatePlan *xplan_new(const Store *st, const XlateOptions *o)
{
    XlatePlan *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (xopts_own(&p->o, p->strs, o) < 0) {
        xlate_plan_free(p);
        return NULL;
    }
    p->gen = store_generation(st);
    p->slice_changes = store_kind_changes(st, SLICES);
    return p;
}

static void shared_unref(PlanShared *sh)
{
    if (!sh || __atomic_sub_fetch(&sh->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    xtarget_srcs_free(sh->src, sh->nsrc);
    free(sh->by_svc);
    free(sh->keys);
    free(sh);
}

void xlate_plan_free(XlatePlan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nups; i++) {
        json_decref(p->ups[i].up);
        if (!p->sh)
            xtarget_srcs_free(p->ups[i].src, p->ups[i].nsrc);
    }
    shared_unref(p->sh);
    free(p->ups);
    free(p->spans);
    for (int i = 0; i < 3; i++)
        free(p->strs[i]);
    free(p);
}

int xplan_add(XlatePlan *p, json_t *up, TargetSrc *src, size_t nsrc)
{
    if (util_grow(&p->ups, &p->cap, p->nups, sizeof(*p->ups), 64) < 0)
        return -ENOMEM;
    p->ups[p->nups++] = (UpPlan){json_incref(up), src, nsrc};
    return 0;
}

static int cmp_up(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const UpPlan *)a)->up, y = (uintptr_t)((const UpPlan *)b)->up;
    return (x > y) - (x < y);
}

static int cmp_ref(const void *a, const void *b)
{
    const SvcRef *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->up > y->up) - (x->up < y->up);
}

/* Move the sources of @p (in order) into one block, and index them by Service. */
static PlanShared *shared_new(XlatePlan *p)
{
    PlanShared *sh = calloc(1, sizeof(*sh));
    size_t keylen = 0;
    if (!sh)
        return NULL;
    sh->refs = 1;
    for (size_t i = 0; i < p->nups; i++) {
        sh->nsrc += p->ups[i].nsrc;
        for (size_t k = 0; k < p->ups[i].nsrc; k++) {
            json_t *svc = p->ups[i].src[k].svc;
            keylen += strlen(obj_ns(svc)) + strlen(obj_name(svc)) + 2;
        }
    }
    sh->src = malloc((sh->nsrc ? sh->nsrc : 1) * sizeof(*sh->src));
    sh->by_svc = malloc((sh->nsrc ? sh->nsrc : 1) * sizeof(*sh->by_svc));
    sh->keys = malloc(keylen ? keylen : 1);
    if (!sh->src || !sh->by_svc || !sh->keys) {
        free(sh->src);
        free(sh->by_svc);
        free(sh->keys);
        free(sh);
        return NULL;
    }
    char *kp = sh->keys;
    size_t n = 0;
    for (size_t i = 0; i < p->nups; i++) {
        UpPlan *u = &p->ups[i];
        for (size_t k = 0; k < u->nsrc; k++) {
            json_t *svc = u->src[k].svc;
            sh->by_svc[n] = (SvcRef){kp, i};
            kp += snprintf(kp, (size_t)(sh->keys + keylen - kp), "%s/%s", obj_ns(svc),
                           obj_name(svc)) + 1;
            sh->src[n++] = u->src[k]; /* the references move */
        }
        free(u->src);
        u->src = sh->src + n - u->nsrc;
    }
    qsort(sh->by_svc, n, sizeof(*sh->by_svc), cmp_ref);
    for (size_t i = 0; i < n; i++) /* one entry per Service and upstream */
        if (!sh->nby || cmp_ref(&sh->by_svc[sh->nby - 1], &sh->by_svc[i]))
            sh->by_svc[sh->nby++] = sh->by_svc[i];
    p->sh = sh;
    return sh;
}

/* Mark in @redo the upstreams that Service @key ("ns/name") feeds. */
static void mark_service(const PlanShared *sh, const char *key, bool *redo)
{
    size_t lo = 0, hi = sh->nby;
    while (lo < hi) { /* the first entry not below @key */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(sh->by_svc[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < sh->nby && !strcmp(sh->by_svc[lo].key, key); lo++)
        redo[sh->by_svc[lo].up] = true;
}

/*
 * Put the plan in the order of the configuration's sorted "upstreams". Returns the plan, or NULL
 * (and frees it) when an upstream has no entry: then a refresh could not account for it.
 */
XlatePlan *xplan_order(XlatePlan *p, const json_t *upstreams)
{
    size_t n = json_array_size(upstreams);
    if (!p || !n || n != p->nups)
        goto drop;
    UpPlan *sorted = malloc(n * sizeof(*sorted));
    if (!sorted || !(p->spans = calloc(2 * n, sizeof(*p->spans)))) {
        free(sorted);
        goto drop;
    }
    qsort(p->ups, n, sizeof(*p->ups), cmp_up);
    for (size_t i = 0; i < n; i++) {
        UpPlan key = {json_array_get(upstreams, i), NULL, 0};
        UpPlan *e = bsearch(&key, p->ups, n, sizeof(*p->ups), cmp_up);
        if (!e) {
            free(sorted);
            goto drop;
        }
        sorted[i] = *e;
    }
    free(p->ups);
    p->ups = sorted;
    p->cap = n;
    for (size_t i = 0; i < n; i++) { /* only needed to find the order */
        json_decref(p->ups[i].up);
        p->ups[i].up = NULL;
    }
    if (!shared_new(p))
        goto drop;
    return p;
drop:
    xlate_plan_free(p);
    return NULL;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

bool xlate_options_equal(const XlateOptions *a, const XlateOptions *o)
{
    return same_str(a->ingress_class, o->ingress_class) && a->expressions == o->expressions &&
           a->fill_ids == o->fill_ids && a->custom_entity == o->custom_entity &&
           a->service_facade == o->service_facade && a->rewrite_uris == o->rewrite_uris &&
           a->enable_drain_support == o->enable_drain_support && a->enterprise == o->enterprise &&
           same_str(a->kong_version, o->kong_version) &&
           same_str(a->cluster_domain, o->cluster_domain);
}

bool xlate_plan_reusable(const XlatePlan *p, const Store *st, const XlateOptions *o)
{
    if (!p || !p->spans)
        return false;
    if (!xlate_options_equal(&p->o, o))
        return false;
    /* Every change since the plan was to an EndpointSlice. */
    return store_generation(st) - p->gen == store_kind_changes(st, SLICES) - p->slice_changes;
}

/* A copy of @p for the refreshed configuration: the same sources, new spans. */
static XlatePlan *plan_copy(const XlatePlan *p, const Store *st)
{
    XlatePlan *c = xplan_new(st, &p->o);
    if (!c || !(c->ups = malloc(p->nups * sizeof(*c->ups))) ||
        !(c->spans = calloc(2 * p->nups, sizeof(*c->spans)))) {
        xlate_plan_free(c);
        return NULL;
    }
    memcpy(c->ups, p->ups, p->nups * sizeof(*c->ups)); /* sources in the shared block */
    c->nups = c->cap = p->nups;
    c->sh = p->sh;
    __atomic_add_fetch(&c->sh->refs, 1, __ATOMIC_RELAXED);
    return c;
}

/* The upstream @old with @targets (stolen) as assembly leaves them: sorted, or no key if none. */
static json_t *with_targets(const json_t *old, json_t *targets, bool *changed)
{
    json_t *have = json_object_get(old, "targets");
    if (json_array_size(targets))
        xsort_by_field(targets, "target");
    if (json_array_size(targets) ? json_equal(have, targets) : !have) {
        json_decref(targets);
        *changed = false;
        return json_incref((json_t *)old);
    }
    *changed = true;
    json_t *up = json_copy((json_t *)old);
    if (up && json_array_size(targets))
        json_object_set(up, "targets", targets);
    else if (up)
        json_object_del(up, "targets");
    json_decref(targets);
    return up;
}


static void note_key(json_t *set, const char *ns, const char *name)
{
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    json_object_set_new(set, key, json_true());
}

static void note_service(json_t *set, json_t *svc)
{
    note_key(set, obj_ns(svc), obj_name(svc));
}

/* The Service ("ns/name") an EndpointSlice feeds, marked in @set (an object used as a set). */
static void note_owner(json_t *set, json_t *slice)
{
    const char *owner = slice ? obj_label(slice, "kubernetes.io/service-name") : NULL;
    if (owner)
        note_key(set, obj_ns(slice), owner);
}

static void on_slice_change(void *ud, json_t *old, json_t *cur)
{
    note_owner(ud, old);
    note_owner(ud, cur);
}

/* Upstream @i of the previous configuration, from its canonical bytes. */
static json_t *old_upstream(const XlatePlan *p, size_t i, const char *json)
{
    size_t a = p->spans[2 * i], b = p->spans[2 * i + 1];
    json_t *up = json_loadb(json + a, b - a, 0, NULL);
    if (!json_is_object(up)) {
        json_decref(up);
        return NULL;
    }
    return up;
}

int xlate_refresh_targets(Store *st, const XlatePlan *p, const char *json, size_t len,
                          char **ret_json, size_t *ret_len, XlatePlan **ret_plan)
{
    if (!p || !p->sh || !p->spans || !p->nups || p->spans[2 * p->nups - 1] > len)
        return -EINVAL;
    XlatePlan *np = plan_copy(p, st);
    if (!np)
        return -ENOMEM;
    Buf b = BUF_INIT;
    Xlate x;
    memset(&x, 0, sizeof(x));
    x.st = st;
    x.o = &np->o;
    x.failures = json_array(); /* targets never fail: the sources were resolved before */
    int r = x.failures && buf_reserve(&b, len + len / 8) == 0 ? 0 : -ENOMEM;
    /* Only upstreams of Services whose slices changed need their targets redone. */
    bool *redo = calloc(p->nups, sizeof(*redo));
    json_t *affected = json_object();
    if (r == 0 && (!redo || !affected))
        r = -ENOMEM;
    if (r == 0 && store_changes(st, p->gen, "EndpointSlice", on_slice_change, affected) == 0) {
        const char *key;
        json_t *l;
        json_object_foreach(affected, key, l)
            mark_service(p->sh, key, redo);
        /* Those upstreams' other backends count too: index the slices of all their Services. */
        json_t *need = json_object();
        for (size_t i = 0; i < p->nups; i++)
            for (size_t k = 0; redo[i] && k < p->ups[i].nsrc; k++)
                note_service(need, p->ups[i].src[k].svc);
        x.slices = xslice_index(st, need);
        json_decref(need);
    } else if (redo) { /* the store's log does not reach back: redo them all */
        memset(redo, 1, p->nups * sizeof(*redo));
    }
    if (r == 0) {
        xload_class(&x); /* IngressClassParameters' serviceUpstream */
        r = buf_append(&b, json, p->spans[0]);
    }
    for (size_t i = 0; r == 0 && i < p->nups; i++) {
        bool changed = false;
        json_t *up = NULL;
        if (redo[i]) {
            json_t *old = old_upstream(p, i, json);
            if (!old) {
                r = -EINVAL;
                break;
            }
            up = with_targets(old, xtargets(&x, p->ups[i].src, p->ups[i].nsrc), &changed);
            json_decref(old);
            if (!up) {
                r = -ENOMEM;
                break;
            }
        }
        if (i)
            r = buf_append(&b, ",", 1);
        np->spans[2 * i] = b.len;
        if (r == 0)
            r = changed ? xcanon_append(&b, up)
                        : buf_append(&b, json + p->spans[2 * i], p->spans[2 * i + 1] - p->spans[2 * i]);
        np->spans[2 * i + 1] = b.len;
        json_decref(up);
    }
    size_t tail = p->spans[2 * p->nups - 1];
    if (r == 0)
        r = buf_append(&b, json + tail, len - tail); /* also terminates the string */
    json_decref(x.failures);
    xslice_index_free(x.slices);
    json_decref(affected);
    free(redo);
    if (r < 0) {
        buf_deinit(&b);
        xlate_plan_free(np);
        return r;
    }
    *ret_len = b.len;
    *ret_json = buf_take(&b);
    *ret_plan = np;
    return 0;
}
