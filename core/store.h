/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Object store: the controller's view of Kubernetes objects, keyed by kind/namespace/name.
 * Objects are jansson objects trimmed to what translation needs (managedFields and
 * last-applied annotations dropped), whose equal values are shared between objects: nothing may
 * change a stored object or a value in it. Loop thread only. Readers borrow; store_put takes a
 * reference.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Store Store;

int store_new(Store **ret);
Store *store_free(Store *s); /* NULL-safe, returns NULL */

/*
 * store_put() - insert or replace @obj (borrowed; the store keeps its own trimmed copy).
 * Return: 1 if the store changed, 0 if an equal object was already there (one that differs only
 * in metadata.resourceVersion is kept, but is no change), negative errno (-EINVAL when
 * kind/metadata.name is missing).
 */
int store_put(Store *s, json_t *obj);
/*
 * store_put_new() - the same, but steals @obj and trims it in place instead of copying it: for
 * loaders that hand over objects they no longer need (no other reference may be held).
 */
int store_put_new(Store *s, json_t *obj);
/*
 * store_bulk() - the objects put from now on come in bulk (a load of manifests, the first list
 * of a cluster's objects), until store_bulk(s, false). Each is copied into a lane of its kind's
 * (jarena.h): a kind's objects then lie together, as translation reads them, in the arena's
 * huge pages, not among a parser's freed values. Translating 10,000 Ingress sets takes a fifth
 * less time. Single updates are not copied: a lane never reuses a hole, and under churn its
 * blocks would fill with them.
 */
void store_bulk(Store *s, bool on);

/* store_delete() - 1 if removed, 0 if absent. @ns may be NULL or "" for cluster-scoped kinds. */
int store_delete(Store *s, const char *kind, const char *ns, const char *name);

/* store_get() - borrowed object or NULL. */
json_t *store_get(const Store *s, const char *kind, const char *ns, const char *name);

/*
 * store_list() - every object of @kind sorted by namespace then name (borrowed; valid until the
 * next store_put() or store_delete()). *ret_n is the count; returns NULL when there are none.
 */
json_t *const *store_list(Store *s, const char *kind, size_t *ret_n);

/* store_count() - number of objects of @kind, or of every kind when @kind is NULL. */
size_t store_count(const Store *s, const char *kind);

/* store_kinds() - borrowed array of the kind names present, sorted. */
json_t *store_kinds(Store *s);

/*
 * store_shared() - how many values the store's objects share: equal values inside objects
 * (a Service's ports block, labels, apiVersion strings) are kept once (store_share.h).
 */
size_t store_shared(const Store *s);

/* store_generation() - increases on every change; lets callers skip work when nothing changed. */
uint64_t store_generation(const Store *s);

/*
 * store_kind_changes() - how many changes the generation counted were to @kind (clones keep
 * both counters), so a caller can tell that nothing but @kind changed since a generation.
 */
uint64_t store_kind_changes(const Store *s, const char *kind);

/*
 * store_changes() - call @fn for each change to @kind (NULL: any kind) after generation @since,
 * oldest first, with the object before and after (borrowed; NULL for an insert or a delete). The
 * store remembers its last 1,024 changes (clones too): -ERANGE when that does not reach back.
 */
int store_changes(const Store *s, uint64_t since, const char *kind,
                  void (*fn)(void *ud, json_t *old, json_t *cur), void *ud);

/*
 * store_clone_where() - a clone with only the objects @keep says yes to (@ns is "" for
 * cluster-scoped objects); counters and change log as store_clone_kinds() keeps them.
 */
int store_clone_where(const Store *s, bool (*keep)(void *ud, const char *kind, const char *ns),
                      void *ud, Store **ret);
/* store_clone() - a new store sharing the (immutable) objects; for fallback translation. */
int store_clone(const Store *s, Store **ret);
/* store_clone_kinds() - the same with only the objects of @kinds (NULL-terminated) copied. */
int store_clone_kinds(const Store *s, const char *const *kinds, Store **ret);

/* store_trim() - a trimmed deep copy of @obj as the store keeps it (new reference). */
json_t *store_trim(json_t *obj);

/*
 * Accessors for common fields of an object (borrowed strings, "" when absent). The store packs
 * an object's metadata into one string (as jansson it was a third of the store): read it with
 * these, which also read an object as the API has it.
 */
const char *obj_kind(const json_t *o);
const char *obj_ns(const json_t *o);
const char *obj_name(const json_t *o);
const char *obj_uid(const json_t *o);
const char *obj_api_version(const json_t *o);
/* obj_ids() - name, namespace and uid in one read of the metadata (as obj_name() and the others). */
void obj_ids(const json_t *o, const char **name, const char **ns, const char **uid);
/* obj_meta_str() - a metadata field that is a string ("creationTimestamp", ...), or NULL. */
const char *obj_meta_str(const json_t *o, const char *key);
/* obj_annotation() / obj_label() - value or NULL. */
const char *obj_annotation(const json_t *o, const char *key);
const char *obj_label(const json_t *o, const char *key);
/* obj_map_next() - metadata.annotations or .labels (@map) in order, string values; zero @it first. */
typedef struct ObjMapIter {
    bool started;
    const char *p, *end; /* packed: the pairs left */
    size_t left;
    const json_t *map; /* as the API has it: the map, and jansson's iterator over it */
    void *jit;
} ObjMapIter;
bool obj_map_next(const json_t *o, const char *map, ObjMapIter *it, const char **k, const char **v);
/* obj_metadata() - the metadata as the API has it (new reference; NULL when it has none). */
json_t *obj_metadata(const json_t *o);

/*
 * An object's annotations, read once for many lookups: a route asks its parent for a dozen
 * annotations. A few are kept in place; more are scanned where they are.
 */
#define OBJ_ANNS_SCAN 8
typedef struct ObjAnns {
    const json_t *map; /* as the API has it, more than OBJ_ANNS_SCAN: metadata.annotations */
    const char *pairs, *end; /* packed, more than OBJ_ANNS_SCAN: the pairs */
    size_t n;
    const char *key[OBJ_ANNS_SCAN], *val[OBJ_ANNS_SCAN];
} ObjAnns;
void obj_anns_init(ObjAnns *a, const json_t *o);
const char *obj_anns_get(const ObjAnns *a, const char *key);
/*
 * An EndpointSlice's endpoints. The store packs them (a jansson endpoint costs about a kilobyte):
 * read them with obj_slice_endpoint(), which also reads a slice as the API has it.
 */
typedef struct SliceEndpoint {
    char addr[256]; /* the first address (an endpoint's addresses are one Pod) */
    bool has_addr;  /* false: it has none (addr is "") */
    int ready;      /* 1, 0, or -1 when not given (which readers take as ready) */
    bool terminating;
    char target_kind[64], target_name[256], target_ns[64]; /* targetRef, "" when not given */
} SliceEndpoint;
/* obj_slice_endpoint() - the endpoint at *@pos (0 first) into @ep, moving *@pos on; false after the last. */
bool obj_slice_endpoint(const json_t *slice, size_t *pos, SliceEndpoint *ep);
/* obj_slice_expand() - @slice with its endpoints and metadata as the API has them (new ref). */
json_t *obj_slice_expand(const json_t *slice);

/*
 * An Ingress backend as translation reads it: a Service with a port, a resource, both or neither
 * (translation takes the Service first). Strings are borrowed from the stored object; NULL when
 * absent or not strings.
 */
typedef struct IngressBackend {
    bool service;          /* backend.service is an object */
    const char *name;      /* service.name */
    bool has_number;       /* service.port.number, an integer other than 0 */
    long long number;
    const char *port_name; /* service.port.name */
    bool resource;         /* backend.resource is an object */
    const char *res_group, *res_kind, *res_name;
} IngressBackend;
/* obj_ingress_backend() - read a backend object (spec.defaultBackend, say) as above. */
void obj_ingress_backend(const json_t *backend, IngressBackend *b);

/*
 * The paths of an Ingress's rules, rule after rule. The store packs spec.rules (as jansson a
 * path costs over two kilobytes): read them with obj_ingress_path(), which also reads an Ingress
 * as the API has it. Rules without paths are passed over but counted.
 */
typedef struct IngressPath {
    size_t rule, index;    /* positions in spec.rules and in the rule's http.paths */
    const char *host;      /* "" when the rule has none */
    const char *path;      /* NULL when absent or not a string */
    const char *path_type; /* NULL when absent or not a string */
    IngressBackend backend;
} IngressPath;
typedef struct IngressPathIter {
    size_t pos, rule, index, host; /* zero it before the first call */
} IngressPathIter;
bool obj_ingress_path(const json_t *ing, IngressPathIter *it, IngressPath *p);

/*
 * obj_prefetch() - at step @i of a loop over @objs (@n of them), start loading the memory that
 * reading the metadata of the next few objects will touch: a pass over cold objects otherwise
 * waits on each pointer it follows in turn.
 */
void obj_prefetch(json_t *const *objs, size_t n, size_t i);
/* obj_prefetch_in() - the same where the objects are pointers @stride bytes apart from @base. */
void obj_prefetch_in(const void *base, size_t stride, size_t n, size_t i);

/* obj_get_path() - walk "a.b.c" through nested objects; borrowed or NULL. */
json_t *obj_get_path(const json_t *o, const char *dotted);
const char *obj_get_str(const json_t *o, const char *dotted);
