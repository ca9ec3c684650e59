/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Translator internals shared by the core/xlate_*.c files. Kong entities are built as jansson
 * objects in decK's file format; the C structs around them carry what translation needs on the
 * way (backends, parents, flags). One Xlate lives for one xlate_run() call.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "jarena.h"
#include "store.h"
#include "util.h"
#include "xlate.h"

#define ANN "konghq.com/"

enum { PORT_NUMBER, PORT_NAME, PORT_IMPLICIT };

typedef struct PortDef {
    int mode;
    long number;
    char name[64];
} PortDef;

typedef struct Backend {
    char *ns;
    char *name;     /* Kubernetes Service, or KongServiceFacade when is_facade */
    bool is_facade;
    PortDef port;
    bool has_weight;
    long weight;
} Backend;

typedef struct XRoute {
    json_t *r;       /* Kong route fields (owned) */
    json_t *parent;  /* Ingress, TCPIngress, ... (borrowed from the store) */
    json_t *plugins; /* nested plugins the translator generated, or NULL */
    const char *rewrite; /* Ingress routes: the parent's konghq.com/rewrite (borrowed), or NULL */
    bool expr;
    bool l4;
} XRoute;

typedef struct XService {
    char *name;
    char *ns;
    json_t *s;       /* Kong service fields (owned): name, host, port, protocol, ... */
    json_t *parent;  /* object that produced the service (borrowed) */
    Backend *backends;
    size_t nbackends;
    XRoute *routes;
    size_t nroutes, caproutes;
    json_t *k8s;     /* "ns/name" -> Service object (borrowed refs, json_object_set) */
    json_t *facade;  /* KongServiceFacade of a facade backend (borrowed) or NULL */
    json_t *plugins; /* nested plugins, or NULL */
    bool skip;        /* left out of services (its upstream is still built) */
    bool no_upstream; /* dropped entirely (e.g. konghq.com/rewrite without the gate) */
    int source;      /* order of the rule source (Ingress 0, TCPIngress 1, UDPIngress 2) */
} XService;

/* One backend of an upstream: where its targets come from. */
typedef struct TargetSrc {
    json_t *svc;  /* the Kubernetes Service (reference) */
    json_t *port; /* the Service port the backend resolved to (reference; may be made up) */
    bool has_weight;
    long weight;
    signed char upstream; /* service-upstream per a KongServiceFacade: 0 or 1; -1: the Service's */
} TargetSrc;

typedef struct UpPlan {
    json_t *up; /* the upstream object, while the plan is put in order (reference) */
    TargetSrc *src; /* owned until the plan is in order, then in PlanShared's block */
    size_t nsrc;
} UpPlan;

/* Which upstreams a Service ("ns/name") feeds: one entry per pair, sorted by key. */
typedef struct SvcRef {
    const char *key;
    size_t up;
} SvcRef;

/*
 * The part of a plan that refreshed plans share. Few, big allocations: a plan lives as long as
 * its revision, and thousands of small ones made among a translation's temporaries would pin
 * the pages of that whole translation (65 MB at 10,000 Ingress sets).
 */
typedef struct PlanShared {
    int refs; /* atomic: revisions are freed on any thread */
    TargetSrc *src; /* every upstream's backends, upstream after upstream */
    size_t nsrc;
    SvcRef *by_svc;
    size_t nby;
    char *keys; /* the strings by_svc points to */
} PlanShared;

/*
 * What redoing the targets needs after a change to EndpointSlices only: everything else in a
 * configuration comes from other kinds, so the rest of it stays as it was.
 */
struct XlatePlan {
    XlateOptions o;
    char *strs[3];          /* owned copies of o's strings */
    uint64_t gen;           /* store_generation() of the translated store */
    uint64_t slice_changes; /* its store_kind_changes("EndpointSlice") */
    UpPlan *ups;            /* in the order of the configuration's "upstreams" */
    size_t nups, cap;
    PlanShared *sh;         /* set once in order; shared by refreshed plans */
    size_t *spans;          /* upstream i is bytes [spans[2i], spans[2i+1]) of the JSON */
};

/*
 * A map of C strings (borrowed: they outlive the map) to positions, by open addressing on their
 * FNV-1a hashes: the translation's registries of thousands of names. A jansson object spent
 * a pair and an integer value (100 bytes of new memory) on each, and hashed every lookup anew.
 */
typedef struct XIndex {
    struct XIndexSlot {
        uint64_t hash;
        const char *key; /* NULL: free */
        size_t val;
    } *slots;
    size_t n, mask;
} XIndex;

/* FNV-1a: xhash_more() goes on from @h (XHASH_SEED at first) over @s; xhash() is from the seed. */
#define XHASH_SEED ((uint64_t)1469598103934665603u)
static inline uint64_t xhash_more(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}
uint64_t xhash(const char *s);
/* The position of @key, or SIZE_MAX. */
size_t xindex_get(const XIndex *ix, const char *key);
/* Map @key to @val (replacing); -ENOMEM. */
int xindex_put(XIndex *ix, const char *key, size_t val);
void xindex_clear(XIndex *ix);

typedef struct Xlate {
    Store *st;
    const XlateOptions *o;
    json_t *failures;
    bool class_default;  /* the IngressClass named like our class is the cluster default */
    json_t *icp_spec;    /* IngressClassParameters spec or NULL */

    XService **svcs;
    size_t nsvcs, capsvcs;
    XIndex svc_index;    /* Kong service name -> index in svcs */

    json_t *sni_secrets; /* "ns/secret" -> {"hosts": [...], "parents": [objects]} in claim order */
    json_t *sni_order;   /* array of "ns/secret" keys in first-claim order */
    json_t *sni_claimed; /* host -> "ns/secret" */

    json_t *upstreams;
    json_t *certificates;
    json_t *ca_certificates;
    json_t *consumers;        /* array of consumer entities */
    json_t *consumer_objs;    /* parallel array: the KongConsumer objects */
    json_t *consumer_groups;
    json_t *cg_objs;          /* parallel array: the KongConsumerGroup objects */
    json_t *cgc;              /* consumer_group_consumers */
    json_t *plugins;          /* top-level plugins */
    json_t *vaults;
    json_t *custom;           /* type -> array */
    struct SliceIndex *slices; /* EndpointSlices by Service, built once per run */
    XlatePlan *plan;          /* filled when the caller asked for one */
} Xlate;

/* Fast field setters for hot paths (json_pack parses its format string on every call). */
static inline void jset_s(json_t *o, const char *k, const char *v)
{
    json_object_set_new_nocheck(o, k, json_string(v));
}
static inline void jset_b(json_t *o, const char *k, int v)
{
    json_object_set_new_nocheck(o, k, json_boolean(v));
}
static inline void jset_i(json_t *o, const char *k, json_int_t v)
{
    json_object_set_new_nocheck(o, k, json_integer(v));
}
static inline void jset_o(json_t *o, const char *k, json_t *v)
{
    json_object_set_new_nocheck(o, k, v);
}

/*
 * Values every configuration repeats (KIC's defaults, the kind, group and version tags) are made
 * once per process and shared by every translation: a configuration is read-only once built,
 * and jansson's reference counts are atomic. A quarter of a configuration's scalars at 10,000
 * Ingress sets. Both return a new reference.
 */
json_t *xconst_int(json_int_t v);
json_t *xconst_str(const char *s, size_t n); /* interned only for the tags above */
static inline void jset_ci(json_t *o, const char *k, json_int_t v)
{
    json_object_set_new_nocheck(o, k, xconst_int(v));
}
static inline void jset_cs(json_t *o, const char *k, const char *v)
{
    json_object_set_new_nocheck(o, k, xconst_str(v, strlen(v)));
}

/* Failures: @o1, @o2 may be NULL, or the objects of the array @objs; the message is copied. */
void xfail(Xlate *x, json_t *o1, json_t *o2, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void xfail_objs(Xlate *x, json_t *objs, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Tags of an object in KIC's order, plus the konghq.com/tags values. New reference. */
json_t *xtags(const json_t *obj);
/* group and version of an object's apiVersion into caller buffers. */
void xgroup_version(const json_t *obj, char *group, size_t gl, char *version, size_t vl);

/* Class filtering (store-level rules of KIC, section 3.13). */
bool xclass_ingress(Xlate *x, const json_t *ing);
bool xclass_exact_or_empty(Xlate *x, const json_t *obj);

/* xgo_quote() - @s appended to @b as Go's %q writes it (bytes past ASCII are copied as they are,
 * where Go escapes the few Unicode characters it does not print). */
void xgo_quote(Buf *b, const char *s);
/* xtrim() - move [*@a, *@b) in past white space at both ends, as Go's strings.TrimSpace. */
void xtrim(const char **a, const char **b);
/* xtrim_apart() - the text of @s before @at (a separator in it) and after, each trimmed so,
 * into @left and @right (cut to their sizes). */
void xtrim_apart(const char *s, const char *at, char *left, size_t ll, char *right, size_t rl);
/*
 * Annotation helpers. xsplit() - a list split on @sep, each part trimmed of white space as Go's
 * strings.TrimSpace does and empty ones dropped (KIC's extractCommaDelimitedStrings), as a JSON
 * array of strings (new ref).
 */
json_t *xsplit(const char *s, char sep);
/*
 * xsplit_go() - @s split on @sep as Go's strings.Split does, each part trimmed as TrimSpace when
 * @trim: empty parts are kept ("" gives one), and an empty @sep splits after each UTF-8 sequence.
 */
json_t *xsplit_go(const char *s, const char *sep, bool trim);
/*
 * xheaders() - the konghq.com/headers.<name> annotations of @o: name -> values, split on
 * konghq.com/headers-separator (",": absent), or NULL when it has none. Empty names and empty
 * values are passed over.
 */
json_t *xheaders(const json_t *o);
/* xgo_type() - how Go's encoding/json names @v's type in "cannot unmarshal X into ..." errors. */
const char *xgo_type(const json_t *v);
/* xmethods() - a konghq.com/methods value (NULL: none) split and upper-cased (ExtractMethods). */
json_t *xmethods(const char *v);
/* xmethod_ok() - @m is letters A to Z only, KIC's validMethods. */
bool xmethod_ok(const char *m);
/*
 * xvalid_host() - KIC's patterns for route SNIs and, with @wild, host aliases, which may also
 * start with "*." and end with ".*": labels of letters and digits with single inner hyphens,
 * joined by single dots. No length limit: KIC has none.
 */
bool xvalid_host(const char *h, bool wild);
bool xparse_bool(const char *s, bool *ret);     /* Go strconv.ParseBool */
bool xparse_int(const char *s, long long *ret); /* whole string an integer: Go strconv.Atoi */
/* xcreation() - creationTimestamp in microseconds since 1970; when absent (or unreadable) Go's
 * zero time, year 1, which is older than any other. */
#define XCREATION_NONE (-62135596800LL * 1000000LL)
long long xcreation(const json_t *obj);
/*
 * xsort_by_creation() - stable sort of @v by creationTimestamp (ties keep their order, as Go's
 * sort.SliceStable): each timestamp is parsed once, O(n log n). With @key_ties, ties are in the
 * order of the text "namespace/name" instead, the order KIC's store lists Ingresses,
 * TCPIngresses and UDPIngresses in ("a-b/x" before "a/x"; the store's is namespace, then name).
 */
void xsort_by_creation(json_t **v, size_t n, bool key_ties);
/* xsort_by_times() - the same with the timestamps (@ts[i] of @v[i]) already read, and for ties
 * by key the namespaces and names too when @ns and @name are given. */
void xsort_by_times(json_t **v, const long long *ts, size_t n, bool key_ties,
                    const char *const *ns, const char *const *name);

/* Services. */
XService *xsvc_get(Xlate *x, const char *name);
/* xsvc_put() - insert or replace (later sources replace earlier ones, as KIC's maps.Copy). */
int xsvc_put(Xlate *x, XService *s);
XService *xsvc_new(const char *name, const char *ns, json_t *parent);
void xsvc_free(XService *s);
int xsvc_add_route(XService *s, json_t *r, json_t *parent, bool expr);
int xsvc_add_backend(XService *s, const char *ns, const char *name, bool facade, const PortDef *p);
void xport_canonical(const PortDef *p, char *buf, size_t n);
/*
 * xjoin() - the NULL-terminated strings one after another in @buf, cut to fit as snprintf cuts
 * them; returns the length they need. Names and keys are built per entity, where snprintf spent
 * more on its format than on copying. xlltoa() - @v in decimal, for the same places.
 */
size_t xjoin(char *buf, size_t cap, ...) __attribute__((sentinel));
const char *xlltoa(long long v, char out[24]);
json_t *xservice_defaults(const char *name, const char *host, bool with_path);

/* Pipeline steps, in the order xlate_run() calls them. */
void xlate_ingresses(Xlate *x);
void xlate_l4(Xlate *x);
void xlate_populate_services(Xlate *x);
void xlate_upstreams(Xlate *x);
json_t *xtargets(Xlate *x, const TargetSrc *src, size_t nsrc);
/*
 * EndpointSlices by the Service that owns them: of every Service, or only of the @only ones
 * (the keys, "ns/name", of an object). xslice_next() gives those of Service @ns/@svc in the
 * store's order: *@it 0 at first; NULL after the last.
 */
typedef struct SliceIndex SliceIndex;
SliceIndex *xslice_index(Store *st, const json_t *only);
json_t *xslice_next(const SliceIndex *ix, const char *ns, const char *svc, size_t *it);
void xslice_index_free(SliceIndex *ix);
void xtarget_srcs_free(TargetSrc *src, size_t n);
/* xopts_own() - @o copied into @dst with its strings in @strs (malloc'd, freed by the owner). */
int xopts_own(XlateOptions *dst, char *strs[3], const XlateOptions *o);
XlatePlan *xplan_new(const Store *st, const XlateOptions *o);
int xplan_add(XlatePlan *p, json_t *up, TargetSrc *src, size_t nsrc);
XlatePlan *xplan_order(XlatePlan *p, const json_t *upstreams);
/* Top-level arrays are sorted descending (stable) by a string key: "name" for services and
 * upstreams, xplugin_sort_key() for plugins (malloc'd). */
void xsort_by_field(json_t *arr, const char *field);
char *xplugin_sort_key(const json_t *p);
/*
 * Consumers: the field of a credential list ("keyauth_credentials": "key") that must be unique
 * across all consumers, or NULL; and the start of the failure each consumer that lost on such a
 * conflict gets (every consumer in the conflict is dropped).
 */
const char *xcredential_unique(const char *list);
#define XFAIL_CREDENTIAL_CONFLICT "Consumer has conflicting credentials"
/* xconsumer_sort_key() - a consumer's place in decK's order as a string (ascending; malloc'd). */
char *xconsumer_sort_key(const json_t *c);
void xload_class(Xlate *x);
int xcanon_append(Buf *b, const json_t *v);
/*
 * From this many elements on (upstreams, routes, array elements of a configuration), a pass
 * shares its work with a helper thread; 0: never. Tests set 1 and 0 to hold both ways equal.
 */
extern size_t xsplit_min;
/*
 * xsplit_run() - @fn over [0, @n): the upper half (@half 1) on a helper thread when @n reaches
 * xsplit_min, for passes whose elements are independent; what a half must write in common
 * (failures) it writes to a context of its own, chosen by @half, and the caller merges in order.
 */
void xsplit_run(size_t n, void (*fn)(void *ud, int half, size_t from, size_t to), void *ud);
/*
 * xsplit_run_chunked() - the same for passes whose elements write nothing in common and need
 * no order: both threads take @chunk elements at a time from a shared counter, so they end
 * together however uneven the elements are.
 */
void xsplit_run_chunked(size_t n, size_t chunk,
                        void (*fn)(void *ud, int half, size_t from, size_t to), void *ud);
/*
 * xsplit_run_failing() - xsplit_run() for a pass whose halves fail objects: *@upper becomes a
 * copy of @x with a failures list of its own, for @fn to use in the upper half (through @ud),
 * appended to @x's once both halves are done, as one thread would have ordered them.
 */
void xsplit_run_failing(Xlate *x, Xlate *upper, size_t n,
                        void (*fn)(void *ud, int half, size_t from, size_t to), void *ud);
void xlate_overrides(Xlate *x);
void xlate_consumers(Xlate *x);
void xlate_vaults(Xlate *x);
void xlate_consumer_groups(Xlate *x);
void xlate_plugins(Xlate *x);
void xlate_certificates(Xlate *x);
void xlate_ca_certificates(Xlate *x);
void xlate_fill_ids(Xlate *x);
void xlate_custom_entities(Xlate *x);

/* SNI claims from Ingress / TCPIngress TLS sections. */
void xlate_add_tls(Xlate *x, const json_t *obj, const json_t *tls);
/* xplugin_granted() - a ReferenceGrant in @ns lets @from (its namespace, group, kind) use
 * KongPlugin @name. */
bool xplugin_granted(Xlate *x, const char *ns, const json_t *from, const char *name);
/* xlate_tls_secret() - the certificate entry of Secret "ns/name", with @parent recorded once. */
json_t *xlate_tls_secret(Xlate *x, const char *key, const json_t *parent);

/* Expression router helpers (core/xlate_expr.c). */
char *xexpr_quote(const char *s);  /* "..." with escapes, malloc'd */
/* Join sub-expressions: one stays bare, several are each parenthesised and joined by @op. */
char *xexpr_join(json_t *parts, const char *op);

/* Secrets. */
/*
 * xsecret_id() - the Kong certificate id of a TLS Secret: its UID as KIC uses it, or, for objects
 * without one (hand-written manifests), a UUIDv5 of namespace/name so Kong gets a valid, stable id.
 */
const char *xsecret_id(const json_t *secret, char buf[37]);
/* xsecret_data() - stringData or decoded data of @key, cut at a NUL (new reference), or NULL. */
json_t *xsecret_data(const json_t *secret, const char *key);
