/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backends: resolving Kubernetes Services (and KongServiceFacades) behind Kong services, their
 * tags, client and CA certificates, upstreams and targets from EndpointSlices, and the
 * upstream overrides (KongIngress upstream section, host-header, KongUpstreamPolicy).
 */
#include "xlate_int.h"

#include <uv.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *svc_key(const json_t *svc, char *buf, size_t n)
{
    xjoin(buf, n, obj_ns(svc), "/", obj_name(svc), NULL);
    return buf;
}

/* The Kubernetes Service behind backend @b (following a facade), or NULL with a failure. */
static json_t *resolve_backend(Xlate *x, XService *s, Backend *b, PortDef *ret_port)
{
    const char *svcname = b->name;
    *ret_port = b->port;
    if (b->is_facade) {
        json_t *f = store_get(x->st, "KongServiceFacade", b->ns, b->name);
        if (!f) {
            xfail(x, s->parent, NULL, "failed to resolve KongServiceFacade %s/%s: not found", b->ns,
                  b->name);
            return NULL;
        }
        s->facade = f;
        svcname = obj_get_str(f, "spec.backendRef.name");
        json_t *port = obj_get_path(f, "spec.backendRef.port");
        if (!svcname) {
            xfail(x, f, NULL, "KongServiceFacade has no spec.backendRef.name");
            return NULL;
        }
        if (json_is_integer(port)) {
            ret_port->mode = PORT_NUMBER;
            ret_port->number = (long)json_integer_value(port);
        }
    }
    json_t *svc = store_get(x->st, "Service", b->ns, svcname);
    /* KIC names its ServiceNameToParent here: for TCPIngress and UDPIngress services, the last
     * object that added a route, not the one that made the service. */
    json_t *parent = s->source && s->nroutes ? s->routes[s->nroutes - 1].parent : s->parent;
    if (!svc)
        xfail(x, parent, NULL,
              "failed to resolve Kubernetes Service for backend: failed to fetch Service %s/%s: "
              "Service %s/%s not found",
              b->ns, svcname, b->ns, svcname);
    return svc;
}

/* Every konghq.com/ annotation any Service of a multi-Service backend carries must agree. */
static bool consistent_annotations(Xlate *x, XService *s)
{
    if (json_object_size(s->k8s) < 2)
        return true;
    bool ok = true;
    const char *k1;
    json_t *svc1;
    json_object_foreach(s->k8s, k1, svc1)
    {
        ObjMapIter it = {0};
        const char *ak, *av;
        while (obj_map_next(svc1, "annotations", &it, &ak, &av)) {
            if (strncmp(ak, ANN, strlen(ANN)))
                continue;
            const char *k2;
            json_t *svc2;
            json_object_foreach(s->k8s, k2, svc2)
            {
                const char *v2 = obj_annotation(svc2, ak);
                if (!v2 || strcmp(v2, av)) {
                    xfail(x, svc2, NULL,
                          "Service has inconsistent %s annotation and is used in multi-Service "
                          "backend %s. All Services in a multi-Service backend must have matching "
                          "konghq.com annotations",
                          ak, s->name);
                    ok = false;
                }
            }
        }
    }
    return ok;
}

static json_t *placeholder_tags(void)
{
    return json_pack("[s,s,s,s,s,s]", "k8s-name:UNKNOWN", "k8s-namespace:UNKNOWN",
                     "k8s-kind:Service", "k8s-uid:00000000-0000-0000-0000-000000000000",
                     "k8s-group:core", "k8s-version:v1");
}

static json_t *service_tags(XService *s)
{
    if (s->nbackends > 1 && s->parent)
        return xtags(s->parent);
    if (s->facade) /* KIC's placeholder when the facade's Service is not found */
        return json_object_size(s->k8s) ? xtags(s->facade) : placeholder_tags();
    const char *k;
    json_t *v;
    json_object_foreach(s->k8s, k, v) return xtags(v);
    return placeholder_tags();
}

/* @p is not on KIC's list of protocols without TLS (isNonTLSProtocol). */
static bool maybe_tls_protocol(const char *p)
{
    static const char *const bad[] = {"http", "grpc", "tcp", "tls_passthrough", "udp", "ws", NULL};
    for (int i = 0; bad[i]; i++)
        if (!strcmp(p, bad[i]))
            return false;
    return true;
}

/* Annotations of a Service as seen through a facade: the facade's own override the Service's. */
static const char *svc_ann(XService *s, json_t *svc, const char *key)
{
    if (s->facade) {
        const char *v = obj_annotation(s->facade, key);
        if (v)
            return v;
    }
    return obj_annotation(svc, key);
}

/* The protocol a Service asks for (KIC's getEffectiveServiceProtocol): its annotation, or http. */
static const char *effective_protocol(XService *s, json_t *svc)
{
    const char *p = svc_ann(s, svc, ANN "protocol");
    return p && *p ? p : "http";
}

/* @claims gets the Secret's TLS claim ([key, Service]), taken later in the services' order. */
static void client_cert(Xlate *x, XService *s, json_t *svc, json_t *claims)
{
    const char *name = svc_ann(s, svc, ANN "client-cert");
    if (!name || !*name)
        return;
    json_t *secret = store_get(x->st, "Secret", obj_ns(svc), name);
    if (!secret) {
        xfail(x, svc, NULL, "Failed to fetch secret '%s/%s': Secret %s/%s not found", obj_ns(svc),
              name, obj_ns(svc), name);
        return;
    }
    if (!maybe_tls_protocol(effective_protocol(s, svc))) {
        /* KIC names the Kong service's protocol, which no annotation has changed yet */
        xfail(x, svc, NULL, "Client certificate requested for incompatible service protocol '%s'",
              json_string_value(json_object_get(s->s, "protocol")));
        return;
    }
    char idbuf[37];
    json_object_set_new(s->s, "client_certificate", json_string(xsecret_id(secret, idbuf)));
    /* The Secret becomes a certificate with no SNIs. */
    char key[512];
    xjoin(key, sizeof(key), obj_ns(svc), "/", name, NULL);
    json_array_append_new(claims, json_pack("[s, O]", key, svc));
}

/* KIC's handleServiceCACertificates: ids from Secrets and ConfigMaps, with TLS verification on. */
static void ca_certs(Xlate *x, XService *s, json_t *svc)
{
    const char *secrets = svc_ann(s, svc, ANN "ca-certificates-secrets");
    const char *cms = svc_ann(s, svc, ANN "ca-certificates-configmaps");
    json_t *names[2] = {xsplit(secrets, ','), xsplit(cms, ',')};
    if (!json_array_size(names[0]) && !json_array_size(names[1]))
        goto out;
    const char *verify = svc_ann(s, svc, ANN "tls-verify");
    bool v = false;
    if (!verify || !xparse_bool(verify, &v) || !v) {
        xfail(x, svc, NULL,
              "CA certificates requested for service without TLS verification enabled");
        goto out;
    }
    const char *proto = effective_protocol(s, svc);
    if (!maybe_tls_protocol(proto)) {
        xfail(x, svc, NULL, "CA certificates requested for incompatible service protocol '%s'",
              proto);
        goto out;
    }
    json_t *ids = json_object_get(s->s, "ca_certificates");
    for (int pass = 0; pass < 2; pass++) {
        const char *kind = pass ? "ConfigMap" : "Secret";
        size_t i;
        json_t *n;
        json_array_foreach(names[pass], i, n)
        {
            const char *name = json_string_value(n);
            json_t *obj = store_get(x->st, kind, obj_ns(svc), name);
            if (!obj) {
                xfail(x, svc, NULL,
                      "Failed to fetch %s for CA Certificate '%s/%s': %s %s/%s not found",
                      pass ? "configmap" : "secret", obj_ns(svc), name, kind, obj_ns(svc), name);
                continue;
            }
            json_t *id = pass ? json_incref(json_object_get(json_object_get(obj, "data"), "id"))
                              : xsecret_data(obj, "id");
            if (!json_is_string(id)) {
                xfail(x, obj, svc, "Invalid CA certificate '%s/%s': missing 'id' field in data",
                      obj_ns(svc), name);
                json_decref(id);
                continue;
            }
            if (!ids) { /* none found leaves the field out */
                ids = json_array();
                json_object_set_new(s->s, "ca_certificates", ids);
            }
            json_array_append_new(ids, id);
        }
    }
out:
    json_decref(names[0]);
    json_decref(names[1]);
}

/*
 * Services are independent of each other here but for their client certificates' TLS claims,
 * which go to the first claimant: two threads each take half of the services, with failures
 * and claims of their own, merged in the services' order.
 */
typedef struct PopHalf {
    Xlate *x; /* the caller's, or a copy with failures of its own */
    json_t *claims;
} PopHalf;

static void populate_range(void *ud, int half, size_t from, size_t to)
{
    PopHalf *h = &((PopHalf *)ud)[half];
    Xlate *x = h->x;
    for (size_t i = from; i < to; i++) {
        XService *s = x->svcs[i];
        if (s->no_upstream)
            continue;
        for (size_t b = 0; b < s->nbackends; b++) {
            PortDef p;
            json_t *svc = resolve_backend(x, s, &s->backends[b], &p);
            if (svc) {
                char key[512];
                json_object_set(s->k8s, svc_key(svc, key, sizeof(key)), svc);
            }
        }
        if (!consistent_annotations(x, s)) {
            s->skip = true;
            continue;
        }
        json_object_set_new(s->s, "tags", service_tags(s));
        const char *k;
        json_t *svc;
        json_object_foreach(s->k8s, k, svc)
        {
            client_cert(x, s, svc, h->claims);
            ca_certs(x, s, svc);
        }
    }
}

void xlate_populate_services(Xlate *x)
{
    Xlate hx;
    PopHalf h[2] = {{x, json_array()}, {&hx, json_array()}};
    xsplit_run_failing(x, &hx, x->nsvcs, populate_range, h);
    for (int k = 0; k < 2; k++) {
        size_t i;
        json_t *c;
        json_array_foreach(h[k].claims, i, c)
            xlate_tls_secret(x, json_string_value(json_array_get(c, 0)), json_array_get(c, 1));
        json_decref(h[k].claims);
    }
}

/*
 * KIC's findPort: by number (an ExternalName Service has no ports of its own: the number is taken
 * as is), by name or string targetPort (the first port with either), or the only port. NULL with
 * *@err set when there is none.
 */
static json_t *find_port(json_t *svc, const PortDef *want, json_t **synth, char *err, size_t errlen)
{
    json_t *ports = obj_get_path(svc, "spec.ports");
    const char *type = obj_get_str(svc, "spec.type");
    bool external = type && !strcmp(type, "ExternalName");
    size_t i;
    json_t *p;
    *synth = NULL;
    if (external && want->mode != PORT_NUMBER) {
        snprintf(err, errlen, "rules with an ExternalName service must specify numeric ports");
        return NULL;
    }
    switch (want->mode) {
    case PORT_NUMBER:
        if (external) {
            int arena = jarena_pause(); /* plans keep it, longer than the configuration */
            *synth = json_pack("{s:s, s:I, s:I}", "protocol", "TCP", "port",
                               (json_int_t)want->number, "targetPort", (json_int_t)want->number);
            jarena_resume(arena);
            return *synth;
        }
        json_array_foreach(ports, i, p)
        {
            json_t *n = json_object_get(p, "port");
            if (json_is_integer(n) && json_integer_value(n) == want->number)
                return p;
        }
        break;
    case PORT_NAME:
        json_array_foreach(ports, i, p)
        {
            const char *n = obj_get_str(p, "name"), *t = obj_get_str(p, "targetPort");
            if ((n && !strcmp(n, want->name)) || (t && !strcmp(t, want->name)))
                return p;
        }
        break;
    default:
        if (json_array_size(ports) == 1)
            return json_array_get(ports, 0);
        snprintf(err, errlen, "in implicit mode, service must have exactly 1 port, has %zu",
                 json_array_size(ports));
        return NULL;
    }
    snprintf(err, errlen, "no suitable port found");
    return NULL;
}

static const char *str_or(const json_t *o, const char *k, const char *def)
{
    const char *v = obj_get_str(o, k);
    return v ? v : def;
}

/*
 * @index: target -> its entry in @targets, so that a Service of thousands is not quadratic; NULL
 * when @t cannot be there yet (one backend's targets come once each).
 */
static void add_target(json_t *targets, json_t *index, const char *t, bool has_weight, long weight)
{
    json_t *e = index ? json_object_get(index, t) : NULL;
    if (e) {
        /* Found twice: the weights add up, unset counting as 100 (KIC's updateTargetMap). */
        json_t *w = json_object_get(e, "weight");
        long sum = (w ? (long)json_integer_value(w) : 100) + (has_weight ? weight : 100);
        json_object_set_new(e, "weight", json_integer(sum));
        return;
    }
    json_t *n = json_object();
    jset_s(n, "target", t);
    if (has_weight)
        json_object_set_new(n, "weight", json_integer(weight));
    if (index)
        json_object_set(index, t, n);
    json_array_append_new(targets, n);
}

#define OWNER "kubernetes.io/service-name"

/*
 * The index: each slice once, in the store's order, chained to the next of its Service; an open
 * addressing table on the Services' hashes holds each chain's first and last. C, not jansson: a
 * json object of arrays was 4.6 MB of a translation's new memory at 10,000 Services.
 */
typedef struct SliceEnt {
    uint64_t hash;
    const char *ns, *svc; /* borrowed from the slice */
    json_t *slice;
    size_t next; /* 1 + the next of this Service's, 0 at the last */
} SliceEnt;

struct SliceIndex {
    SliceEnt *v;
    size_t n;
    size_t (*slots)[2]; /* 1 + first, 1 + last; {0, 0}: free */
    size_t mask;
};

static uint64_t svc_hash(const char *ns, const char *svc)
{
    return xhash_more(xhash_more(xhash_more(XHASH_SEED, ns), "/"), svc); /* of "ns/svc" */
}

/* The slot of Service @ns/@svc: its own, or the free one where it would go. */
static size_t slice_slot(const SliceIndex *ix, uint64_t h, const char *ns, const char *svc)
{
    size_t at = h & ix->mask;
    for (; ix->slots[at][0]; at = (at + 1) & ix->mask) {
        const SliceEnt *e = &ix->v[ix->slots[at][0] - 1];
        if (e->hash == h && !strcmp(e->svc, svc) && !strcmp(e->ns, ns))
            break;
    }
    return at;
}

/* For at most @max slices; NULL when memory runs out. */
static SliceIndex *slice_index_new(size_t max)
{
    SliceIndex *ix = calloc(1, sizeof(*ix));
    size_t size = 16;
    while (size < 2 * max)
        size *= 2;
    if (ix) {
        ix->v = malloc((max ? max : 1) * sizeof(*ix->v));
        ix->slots = calloc(size, sizeof(*ix->slots));
        ix->mask = size - 1;
    }
    if (!ix || !ix->v || !ix->slots) {
        xslice_index_free(ix);
        return NULL;
    }
    return ix;
}

static void index_slice(SliceIndex *ix, json_t *slice, const char *ns, const char *svc)
{
    uint64_t h = svc_hash(ns, svc);
    size_t at = slice_slot(ix, h, ns, svc), i = ix->n++;
    ix->v[i] = (SliceEnt){h, ns, svc, slice, 0};
    if (ix->slots[at][0])
        ix->v[ix->slots[at][1] - 1].next = i + 1;
    else
        ix->slots[at][0] = i + 1;
    ix->slots[at][1] = i + 1;
}

json_t *xslice_next(const SliceIndex *ix, const char *ns, const char *svc, size_t *it)
{
    if (!ix || *it == SIZE_MAX)
        return NULL;
    if (!*it)
        *it = ix->slots[slice_slot(ix, svc_hash(ns, svc), ns, svc)][0];
    else
        *it = ix->v[*it - 1].next;
    if (!*it) {
        *it = SIZE_MAX;
        return NULL;
    }
    return ix->v[*it - 1].slice;
}

void xslice_index_free(SliceIndex *ix)
{
    if (!ix)
        return;
    free(ix->v);
    free(ix->slots);
    free(ix);
}

/* The first of the sorted @all in namespace @ns (n when none). */
static size_t first_in_ns(json_t *const *all, size_t n, const char *ns)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ns, obj_ns(all[mid])) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The owners of cold slices are read on two threads; the index is made in order. */
typedef struct SliceOwners {
    json_t *const *all;
    const char **owner, **ns;
} SliceOwners;

static void read_owners(void *ud, int half, size_t from, size_t to)
{
    SliceOwners *so = ud;
    (void)half;
    for (size_t i = from; i < to; i++) {
        obj_prefetch(so->all, to, i);
        so->owner[i] = obj_label(so->all[i], OWNER);
        so->ns[i] = so->owner[i] ? obj_ns(so->all[i]) : NULL;
    }
}

/* The store lists slices by namespace, so a few @only Services cost a short scan each. */
SliceIndex *xslice_index(Store *st, const json_t *only)
{
    size_t n;
    json_t *const *all = store_list(st, "EndpointSlice", &n);
    SliceIndex *ix = slice_index_new(n);
    if (!ix)
        return NULL;
    if (!only) {
        SliceOwners so = {all, calloc(n ? n : 1, sizeof(char *)),
                          calloc(n ? n : 1, sizeof(char *))};
        bool read = so.owner && so.ns;
        if (read)
            xsplit_run(n, read_owners, &so);
        for (size_t i = 0; i < n; i++) {
            const char *owner = read ? so.owner[i] : obj_label(all[i], OWNER);
            if (owner)
                index_slice(ix, all[i], read ? so.ns[i] : obj_ns(all[i]), owner);
        }
        free(so.owner);
        free(so.ns);
        return ix;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)only, key, v)
    {
        const char *slash = strchr(key, '/');
        char ns[256];
        if (!slash)
            continue;
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key), key);
        for (size_t i = first_in_ns(all, n, ns); i < n && !strcmp(ns, obj_ns(all[i])); i++) {
            const char *owner = obj_label(all[i], OWNER);
            if (owner && !strcmp(owner, slash + 1))
                index_slice(ix, all[i], obj_ns(all[i]), owner);
        }
    }
    return ix;
}

/*
 * A backend's targets ("host:port"), in order and each once; C, not jansson: they are copied.
 * KIC gathers a Service's endpoints once per protocol it speaks and adds up the weights of what
 * two protocols both found, so each target keeps the protocols (bits) that found it.
 */
typedef struct Eps {
    Buf text; /* the targets, each followed by its NUL */
    struct {
        size_t at; /* into text */
        bool drain;
        uint32_t protos;
    } *v;
    size_t n, cap;
    size_t *slots; /* past EPS_SCAN targets: a hash set of v's indexes + 1 */
    size_t nslots;
} Eps;

#define EPS_SCAN 16 /* a few targets are compared in turn; a Service of thousands is hashed */

static size_t eps_hash(const char *t, bool drain)
{
    return (size_t)xhash_more(XHASH_SEED ^ drain, t);
}

/* Whether target @k of @e is @t with @drain: KIC's endpoint key is address, port, terminating. */
static bool eps_is(const Eps *e, size_t k, const char *t, bool drain)
{
    return e->v[k].drain == drain && !strcmp(e->text.data + e->v[k].at, t);
}

/* The slot of @t: where it is, or the empty one where it would go. */
static size_t *eps_slot(Eps *e, const char *t, bool drain)
{
    size_t i = eps_hash(t, drain) & (e->nslots - 1);
    while (e->slots[i] && !eps_is(e, e->slots[i] - 1, t, drain))
        i = (i + 1) & (e->nslots - 1);
    return &e->slots[i];
}

/* Rebuild the set with room for twice as many targets; false when out of memory. */
static bool eps_rehash(Eps *e)
{
    size_t n = e->nslots ? 2 * e->nslots : 4 * EPS_SCAN;
    size_t *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return false;
    free(e->slots);
    e->slots = slots;
    e->nslots = n;
    for (size_t k = 0; k < e->n; k++)
        *eps_slot(e, e->text.data + e->v[k].at, e->v[k].drain) = k + 1;
    return true;
}

static void eps_add(Eps *e, const char *t, bool drain, uint32_t protos)
{
    size_t *slot = NULL;
    if (e->n < EPS_SCAN) {
        for (size_t k = 0; k < e->n; k++)
            if (eps_is(e, k, t, drain)) {
                e->v[k].protos |= protos;
                return;
            }
    } else {
        if (2 * (e->n + 1) > e->nslots && !eps_rehash(e))
            return;
        if (*(slot = eps_slot(e, t, drain))) {
            e->v[*slot - 1].protos |= protos;
            return;
        }
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 8;
        void *v = realloc(e->v, cap * sizeof(*e->v));
        if (!v)
            return;
        e->v = v;
        e->cap = cap;
    }
    size_t at = e->text.len;
    if (buf_append(&e->text, t, strlen(t) + 1) < 0)
        return;
    e->v[e->n].at = at;
    e->v[e->n].protos = protos;
    e->v[e->n++].drain = drain;
    if (slot)
        *slot = e->n;
}

static void eps_free(Eps *e)
{
    buf_deinit(&e->text);
    free(e->v);
    free(e->slots);
}

/*
 * KIC's listProtocols: TCP always, and the protocol of each port that names one. The bit of
 * @proto among them (TCP first, then in the ports' order; the 32nd and later share one), or 0
 * when @svc does not speak it; with @proto NULL, the bits of all of them.
 */
static uint32_t proto_bits(json_t *svc, const char *proto)
{
    uint32_t all = 1;
    if (proto && !strcmp(proto, "TCP"))
        return 1;
    const char *seen[32] = {"TCP"};
    unsigned n = 1;
    size_t i;
    json_t *sp;
    json_array_foreach(obj_get_path(svc, "spec.ports"), i, sp)
    {
        const char *p = str_or(sp, "protocol", "");
        unsigned k = 0;
        while (k < n && strcmp(seen[k], p))
            k++;
        if (!*p || k < n)
            continue;
        if (n < 32)
            seen[n++] = p;
        all |= (uint32_t)1 << (n - 1);
        if (proto && !strcmp(p, proto))
            return (uint32_t)1 << (n - 1);
    }
    return proto ? 0 : all;
}

/*
 * "address:port", with the address in brackets when Go's net.ParseIP reads it as IPv6 and not
 * as a mapped IPv4 one (KIC's targetsForEndpoints; a slice's addressType is not read).
 */
static void target_text(char *buf, size_t n, const char *addr, const char *port)
{
    struct in6_addr a6;
    if (inet_pton(AF_INET6, addr, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6))
        xjoin(buf, n, "[", addr, "]:", port, NULL);
    else
        xjoin(buf, n, addr, ":", port, NULL);
}

static void endpoints(Xlate *x, const TargetSrc *src, Eps *out)
{
    json_t *svc = src->svc, *port = src->port;
    char buf[600];
    json_int_t pnum = json_integer_value(json_object_get(port, "port"));
    bool upstream_ann = src->upstream > 0;
    const char *su = obj_annotation(svc, "ingress.kubernetes.io/service-upstream");
    if (src->upstream < 0 && su && !strcmp(su, "true"))
        upstream_ann = true;
    if (x->icp_spec && json_is_true(json_object_get(x->icp_spec, "serviceUpstream")))
        upstream_ann = true;
    if (upstream_ann) {
        const char *cd = x->o->cluster_domain;
        snprintf(buf, sizeof(buf), "%s.%s.svc%s%s:%lld", obj_name(svc), obj_ns(svc),
                 cd && *cd ? "." : "", cd ? cd : "", (long long)pnum);
        eps_add(out, buf, false, proto_bits(svc, NULL));
        return;
    }
    const char *type = obj_get_str(svc, "spec.type");
    if (type && !strcmp(type, "ExternalName")) {
        json_t *tp = json_object_get(port, "targetPort");
        const char *ext = obj_get_str(svc, "spec.externalName");
        if (!ext)
            return;
        char pn[24];
        json_int_t num = json_is_integer(tp) ? json_integer_value(tp) : pnum;
        const char *port_s = json_is_string(tp) ? json_string_value(tp) : xlltoa(num, pn);
        target_text(buf, sizeof(buf), ext, port_s);
        eps_add(out, buf, false, proto_bits(svc, NULL));
        return;
    }
    const char *pname = str_or(port, "name", "");
    if (!x->slices) /* once: a scan per Service is quadratic */
        x->slices = xslice_index(x->st, NULL);
    size_t it = 0;
    json_t *es;
    while ((es = xslice_next(x->slices, obj_ns(svc), obj_name(svc), &it))) {
        size_t pi;
        json_t *ep_port;
        json_array_foreach(json_object_get(es, "ports"), pi, ep_port)
        {
            json_t *num = json_object_get(ep_port, "port");
            if (!json_is_integer(num) || json_integer_value(num) < 0)
                continue;
            uint32_t bit = proto_bits(svc, str_or(ep_port, "protocol", "TCP"));
            if (!bit)
                continue;
            if (strcmp(str_or(ep_port, "name", ""), pname))
                continue;
            size_t pos = 0;
            SliceEndpoint ep;
            while (obj_slice_endpoint(es, &pos, &ep)) {
                /* With drain support a terminating endpoint stays, ready or not, at weight 0. */
                bool drain = x->o->enable_drain_support && ep.terminating;
                if (ep.ready == 0 && !drain)
                    continue;
                const char *addr = ep.addr;
                if (!ep.has_addr)
                    continue;
                char pn[24];
                target_text(buf, sizeof(buf), addr, xlltoa(json_integer_value(num), pn));
                eps_add(out, buf, drain, bit);
            }
        }
    }
}

/* ---- upstream overrides ---- */

static void camel_to_snake(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 2 < n; in++) {
        if (isupper((unsigned char)*in)) {
            out[o++] = '_';
            out[o++] = (char)tolower((unsigned char)*in);
        } else {
            out[o++] = *in;
        }
    }
    out[o] = 0;
}

/* Healthchecks of a KongUpstreamPolicy in Kong's field names (header names left alone). */
static json_t *snake_copy(json_t *v, bool keep_keys)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c)
        {
            char sk[128];
            if (keep_keys)
                snprintf(sk, sizeof(sk), "%s", k);
            else
                camel_to_snake(k, sk, sizeof(sk));
            if (!strcmp(sk, "threshold") && json_is_integer(c))
                json_object_set_new(o, sk, json_real((double)json_integer_value(c)));
            else
                json_object_set_new(o, sk, snake_copy(c, !strcmp(k, "headers")));
        }
        return o;
    }
    return json_deep_copy(v);
}

/*
 * A KongUpstreamPolicy's hashOn and hashOnFallback, field by field as KIC's
 * TranslateKongUpstreamPolicy: the kind is the first field set (the CRD allows one), each field is
 * copied on its own, and Kong's one cookie and cookie path come from hashOn, else the fallback.
 */
static void apply_hashes(json_t *up, json_t *spec)
{
    static const char *const kinds[][2] = {
        {"input", NULL}, {"header", "header"}, {"cookie", "cookie"},
        {"queryArg", "query_arg"}, {"uriCapture", "uri_capture"},
    };
    static const char *const fields[][2] = {
        {"header", "header"}, {"queryArg", "query_arg"}, {"uriCapture", "uri_capture"},
    };
    json_t *h[2] = {json_object_get(spec, "hashOn"), json_object_get(spec, "hashOnFallback")};
    const char *base[2] = {"hash_on", "hash_fallback"};
    for (int w = 0; w < 2; w++) {
        if (!json_is_object(h[w]))
            continue;
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
            json_t *v = json_object_get(h[w], kinds[i][0]);
            if (json_is_string(v)) {
                json_object_set_new(up, base[w],
                                    json_string(kinds[i][1] ? kinds[i][1] : json_string_value(v)));
                break;
            }
        }
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            json_t *v = json_object_get(h[w], fields[i][0]);
            char k[64];
            snprintf(k, sizeof(k), "%s_%s", base[w], fields[i][1]);
            if (json_is_string(v))
                json_object_set(up, k, v);
        }
    }
    const char *one[][2] = {{"cookie", "hash_on_cookie"}, {"cookiePath", "hash_on_cookie_path"}};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(h[0], one[i][0]);
        if (!json_is_string(v))
            v = json_object_get(h[1], one[i][0]);
        if (json_is_string(v))
            json_object_set(up, one[i][1], v);
    }
}

static int version_at_least(const char *v, int maj, int min)
{
    char *end;
    if (!v)
        return 0;
    long a = strtol(v, &end, 10), b = 0;
    if (end == v)
        return 0;
    if (*end == '.')
        b = strtol(end + 1, NULL, 10);
    return a > maj || (a == maj && b >= min);
}

/* The Services of group @s, for a failure that names them all. */
static json_t *group_services(const XService *s)
{
    json_t *holders = json_array();
    const char *k;
    json_t *svc;
    json_object_foreach(s->k8s, k, svc) json_array_append(holders, svc);
    return holders;
}

static void apply_policy(Xlate *x, XService *s, json_t *up)
{
    const char *name = NULL;
    bool mixed = false, first = true;
    const char *k;
    json_t *svc;
    json_object_foreach(s->k8s, k, svc)
    {
        const char *p = svc_ann(s, svc, ANN "upstream-policy");
        if (first)
            name = p;
        else if ((p == NULL) != (name == NULL) || (p && strcmp(p, name)))
            mixed = true;
        first = false;
    }
    json_t *holders = NULL; /* made for a failure only: most groups have no policy */
    if (mixed) {
        holders = group_services(s);
        xfail_objs(x, holders, "inconsistent KongUpstreamPolicy configuration for services: all "
                               "Services of a backend must use the same konghq.com/upstream-policy");
        json_decref(holders);
        return;
    }
    if (!name) /* an empty name is looked up, and not found, as KIC does */
        return;
    const char *ns = s->facade ? obj_ns(s->facade) : s->ns;
    json_t *pol = store_get(x->st, "KongUpstreamPolicy", ns, name);
    if (!pol) {
        holders = group_services(s);
        xfail_objs(x, holders,
                   "failed fetching KongUpstreamPolicy: KongUpstreamPolicy %s/%s not found", ns,
                   name);
        json_decref(holders);
        return;
    }
    json_t *spec = json_object_get(pol, "spec");
    json_t *sticky = json_object_get(spec, "stickySessions");
    const char *algo = json_string_value(json_object_get(spec, "algorithm"));
    if (algo && !strcmp(algo, "sticky-sessions") && !version_at_least(x->o->kong_version, 3, 11)) {
        holders = group_services(s);
        xfail_objs(x, holders,
                   "sticky sessions algorithm specified in KongUpstreamPolicy '%s' is not "
                   "supported with Kong Gateway versions < 3.11.0",
                   name);
        json_decref(holders);
        return;
    }
    json_t *v;
    if ((v = json_object_get(spec, "algorithm")) && json_is_string(v))
        json_object_set(up, "algorithm", v);
    if ((v = json_object_get(spec, "slots")) && json_is_integer(v))
        json_object_set(up, "slots", v);
    apply_hashes(up, spec);
    if ((v = json_object_get(spec, "healthchecks")) && json_is_object(v)) {
        /* KIC translates the active and passive checks, not the CRD's threshold */
        json_t *hc = snake_copy(v, false);
        json_object_del(hc, "threshold");
        json_object_set_new(up, "healthchecks", hc);
    }
    if (json_is_object(sticky)) {
        if ((v = json_object_get(sticky, "cookie")))
            json_object_set(up, "sticky_sessions_cookie", v);
        if ((v = json_object_get(sticky, "cookiePath")))
            json_object_set(up, "sticky_sessions_cookie_path", v);
    }
}

/*
 * The KongIngress of the group's first annotated Service, upstream section only. False when it is
 * missing: KIC then skips the group's overrides, the host-header annotation too.
 */
static bool apply_kongingress(Xlate *x, XService *s, json_t *up)
{
    static const char *const fields[] = {
        "host_header",     "algorithm",         "slots",           "healthchecks",
        "hash_on",         "hash_fallback",     "hash_on_header",  "hash_fallback_header",
        "hash_on_cookie",  "hash_on_cookie_path", "hash_on_query_arg", "hash_fallback_query_arg",
        "hash_on_uri_capture", "hash_fallback_uri_capture", NULL,
    };
    const char *k;
    json_t *svc;
    json_object_foreach(s->k8s, k, svc)
    {
        const char *name = svc_ann(s, svc, ANN "override");
        if (!name || !*name)
            continue;
        json_t *ki = store_get(x->st, "KongIngress", obj_ns(svc), name);
        if (!ki) {
            json_t *holders = group_services(s);
            xfail_objs(x, holders, "failed to get KongIngress: KongIngress %s not found", name);
            json_decref(holders);
            return false;
        }
        json_t *u = json_object_get(ki, "upstream");
        for (int i = 0; fields[i] && json_is_object(u); i++) {
            json_t *v = json_object_get(u, fields[i]);
            if (v && !json_is_null(v))
                json_object_set_new(up, fields[i], json_deep_copy(v));
        }
        return true; /* the first annotated Service of the group wins */
    }
    return true;
}

/* Targets of an upstream from its backends (in order); KIC splits a backend's weight evenly. */
json_t *xtargets(Xlate *x, const TargetSrc *src, size_t nsrc)
{
    /* What KIC finds twice (an address ready in one slice and draining in another, found by
     * two protocols, or by two backends) is merged here into one target whose weights add up. */
    bool merge = nsrc > 1 || x->o->enable_drain_support;
    for (size_t b = 0; b < nsrc && !merge; b++) {
        uint32_t bits = proto_bits(src[b].svc, NULL);
        merge = (bits & (bits - 1)) != 0; /* more than one protocol */
    }
    json_t *targets = json_array();
    json_t *index = merge ? json_object() : NULL;
    for (size_t b = 0; b < nsrc; b++) {
        Eps eps = {BUF_INIT, NULL, 0, 0, NULL, 0};
        endpoints(x, &src[b], &eps);
        long w = src[b].weight;
        if (src[b].has_weight && eps.n)
            w = src[b].weight / (long)eps.n;
        for (size_t k = 0; k < eps.n; k++) {
            const char *t = eps.text.data + eps.v[k].at;
            for (int n = __builtin_popcount(eps.v[k].protos); n > 0; n--) {
                /* A draining endpoint gets weight 0: no new connections, existing ones finish. */
                if (eps.v[k].drain)
                    add_target(targets, index, t, true, 0);
                else
                    add_target(targets, index, t, src[b].has_weight, w);
            }
        }
        eps_free(&eps);
    }
    json_decref(index);
    return targets;
}

void xtarget_srcs_free(TargetSrc *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(src[i].svc);
        json_decref(src[i].port);
    }
    free(src);
}

/* The upstream of Service group @s, appended to x->upstreams (and its sources to x->plan). */
static void upstream_for(Xlate *x, XService *s)
{
    const char *host = json_string_value(json_object_get(s->s, "host"));
    /* Where the targets come from, kept so an EndpointSlice change can redo just this. */
    TargetSrc *src = calloc(s->nbackends ? s->nbackends : 1, sizeof(*src));
    size_t nsrc = 0;
    if (!src)
        return;
    for (size_t b = 0; b < s->nbackends; b++) {
        Backend *be = &s->backends[b];
        PortDef pd = be->port;
        char key[512];
        const char *svcname = be->name;
        if (be->is_facade && s->facade) {
            svcname = obj_get_str(s->facade, "spec.backendRef.name");
            json_t *port = obj_get_path(s->facade, "spec.backendRef.port");
            if (json_is_integer(port)) {
                pd.mode = PORT_NUMBER;
                pd.number = (long)json_integer_value(port);
            }
        }
        xjoin(key, sizeof(key), be->ns, "/", svcname ? svcname : "", NULL);
        json_t *svc = json_object_get(s->k8s, key);
        if (!svc) { /* a facade's backend is named by its Service */
            xfail(x, s->parent, NULL, "can't add target for backend %s: no kubernetes service found",
                  be->is_facade && svcname ? svcname : be->name);
            continue;
        }
        json_t *synth = NULL;
        char err[128];
        json_t *port = find_port(svc, &pd, &synth, err, sizeof(err));
        if (!port) {
            xfail(x, svc, s->parent, "can't find port for backend kubernetes service: %s", err);
            continue;
        }
        /* A facade's annotations override its Service's, service-upstream among them. */
        const char *su = be->is_facade && s->facade
                             ? obj_annotation(s->facade, "ingress.kubernetes.io/service-upstream")
                             : NULL;
        src[nsrc++] = (TargetSrc){json_incref(svc), synth ? synth : json_incref(port),
                                  be->has_weight, be->weight, su ? !strcmp(su, "true") : -1};
        json_object_set(s->s, "port", json_object_get(port, "port"));
    }
    json_t *targets = xtargets(x, src, nsrc);
    xsort_by_field(targets, "target"); /* here, on two threads, not in assembly */
    json_t *tags = json_object_get(s->s, "tags");
    json_t *up = json_object();
    jset_s(up, "name", host);
    jset_o(up, "tags", tags ? json_incref(tags) : service_tags(s));
    jset_o(up, "targets", targets);
    const char *k;
    json_t *svc;
    if (apply_kongingress(x, s, up)) {
        json_object_foreach(s->k8s, k, svc)
        {
            const char *hh = svc_ann(s, svc, ANN "host-header");
            if (hh && *hh)
                json_object_set_new(up, "host_header", json_string(hh));
        }
    }
    apply_policy(x, s, up);
    json_array_append_new(x->upstreams, up);
    if (!x->plan || xplan_add(x->plan, up, src, nsrc) < 0)
        xtarget_srcs_free(src, nsrc);
}

/*
 * Upstreams are a fifth of a translation, and each reads only its own Service group and the
 * store: a helper thread builds the second half of them into a private failure list, upstream
 * list and plan, appended after the first half's, so everything comes out in the same order as
 * from one thread. The store and the slice index are only read; jansson's reference counts are
 * atomic.
 */

typedef struct UpRange {
    Xlate *x;
    XService **svcs;
    const bool *make;
    size_t from, to;
} UpRange;

static void upstream_range(void *arg)
{
    UpRange *r = arg;
    jarena_enter(); /* a helper thread's values belong to the translation too */
    for (size_t i = r->from; i < r->to; i++)
        if (r->make[i])
            upstream_for(r->x, r->svcs[i]);
    jarena_leave();
}

/* Each service's host, read on two threads: the services' objects are cold by now. */
static void read_hosts(void *ud, int half, size_t from, size_t to)
{
    Xlate *x = ((void **)ud)[0];
    const char **host = ((void **)ud)[1];
    (void)half;
    for (size_t i = from; i < to; i++)
        host[i] = x->svcs[i]->no_upstream
                      ? NULL
                      : json_string_value(json_object_get(x->svcs[i]->s, "host"));
}

void xlate_upstreams(Xlate *x)
{
    bool *make = calloc(x->nsvcs ? x->nsvcs : 1, sizeof(*make));
    const char **host = calloc(x->nsvcs ? x->nsvcs : 1, sizeof(*host));
    XIndex seen = {NULL, 0, 0};
    size_t count = 0;
    if (!make || !host) {
        free(make);
        free(host);
        return;
    }
    void *ud[2] = {x, host};
    xsplit_run(x->nsvcs, read_hosts, ud);
    for (size_t i = 0; i < x->nsvcs; i++) { /* one upstream per host: the first group wins */
        if (!host[i] || xindex_get(&seen, host[i]) != SIZE_MAX)
            continue;
        (void)xindex_put(&seen, host[i], i); /* out of memory: a host may get two */
        make[i] = true;
        count++;
    }
    xindex_clear(&seen);
    free(host);
    if (!x->slices) /* built before any thread reads it */
        x->slices = xslice_index(x->st, NULL);

    Xlate hx = *x; /* the helper's: private lists, everything else shared read-only */
    UpRange first = {x, x->svcs, make, 0, x->nsvcs}, second = {&hx, x->svcs, make, 0, x->nsvcs};
    uv_thread_t helper;
    bool threaded = false;
    if (xsplit_min && count >= xsplit_min) {
        size_t half = 0, mid = 0;
        while (half < count / 2)
            half += make[mid++];
        first.to = second.from = mid;
        hx.failures = json_array();
        hx.upstreams = json_array();
        hx.plan = x->plan ? calloc(1, sizeof(*x->plan)) : NULL;
        if (hx.failures && hx.upstreams && (hx.plan || !x->plan))
            threaded = uv_thread_create(&helper, upstream_range, &second) == 0;
        if (!threaded) {
            json_decref(hx.failures);
            json_decref(hx.upstreams);
            free(hx.plan);
            first.to = x->nsvcs;
        }
    }
    upstream_range(&first);
    if (threaded) {
        uv_thread_join(&helper);
        json_array_extend(x->failures, hx.failures);
        json_array_extend(x->upstreams, hx.upstreams);
        for (size_t i = 0; hx.plan && i < hx.plan->nups; i++) {
            UpPlan *u = &hx.plan->ups[i];
            if (xplan_add(x->plan, u->up, u->src, u->nsrc) < 0)
                xtarget_srcs_free(u->src, u->nsrc);
            json_decref(u->up);
        }
        if (hx.plan)
            free(hx.plan->ups);
        free(hx.plan);
        json_decref(hx.failures);
        json_decref(hx.upstreams);
    }
    free(make);
}
