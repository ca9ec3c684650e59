/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared values of a store: an open-addressing set of the values objects hold, each with its
 * hash, holding a reference to each. See store_share.h.
 */
#include "store_share.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Slot {
    json_t *v; /* NULL: free */
    uint64_t h;
} Slot;

struct StoreShare {
    Slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
    size_t released; /* objects the store let go of since the last sweep */
};

StoreShare *share_new(void)
{
    return calloc(1, sizeof(StoreShare));
}

StoreShare *share_free(StoreShare *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->cap; i++)
        json_decref(s->slots[i].v);
    free(s->slots);
    free(s);
    return NULL;
}

size_t share_count(const StoreShare *s)
{
    return s ? s->n : 0;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static uint64_t hash_bytes(const char *p, size_t n, uint64_t h)
{
    h ^= n * 0x9e3779b97f4a7c15ULL;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix(h ^ w);
}

/* A scalar's hash; a container's is taken while its children are shared (see share()). */
static uint64_t hash_scalar(json_t *v)
{
    uint64_t h = json_typeof(v);
    switch (json_typeof(v)) {
    case JSON_STRING:
        return hash_bytes(json_string_value(v), json_string_length(v), h);
    case JSON_INTEGER:
        return mix(h ^ (uint64_t)json_integer_value(v) * 0x9e3779b97f4a7c15ULL);
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        return mix(h ^ bits);
    }
    default:
        return h;
    }
}

/* One part of a container's hash: its keys and its children's addresses (shared first). */
static uint64_t hash_step(uint64_t h, bool obj, const char *k, size_t kl, const json_t *child)
{
    return obj ? mix(hash_bytes(k, kl, h) + (uintptr_t)child) : mix(h + (uintptr_t)child);
}

static uint64_t container_hash(json_t *v)
{
    uint64_t h = json_typeof(v);
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it))
            h = hash_step(h, true, json_object_iter_key(it), json_object_iter_key_len(it),
                          json_object_iter_value(it));
    } else {
        for (size_t i = 0; i < json_array_size(v); i++)
            h = hash_step(h, false, NULL, 0, json_array_get(v, i));
    }
    return h;
}

static bool same(json_t *a, json_t *b)
{
    if (a == b)
        return true;
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL:
        return !memcmp(&(double){json_real_value(a)}, &(double){json_real_value(b)},
                       sizeof(double));
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        /* Same keys in the same order: what two copies of one template have. */
        void *i = json_object_iter(a), *j = json_object_iter(b);
        for (; i && j; i = json_object_iter_next(a, i), j = json_object_iter_next(b, j))
            if (json_object_iter_value(i) != json_object_iter_value(j) ||
                json_object_iter_key_len(i) != json_object_iter_key_len(j) ||
                memcmp(json_object_iter_key(i), json_object_iter_key(j),
                       json_object_iter_key_len(i)))
                return false;
        return !i && !j;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (json_array_get(a, i) != json_array_get(b, i))
                return false;
        return true;
    default:
        return false;
    }
}

static size_t refs(const json_t *v)
{
    return __atomic_load_n(&v->refcount, __ATOMIC_ACQUIRE);
}

/* Put @v (a reference the table takes over) into free room; the caller checked it is absent. */
static void place(Slot *slots, size_t cap, json_t *v, uint64_t h)
{
    size_t i = h & (cap - 1);
    while (slots[i].v)
        i = (i + 1) & (cap - 1);
    slots[i] = (Slot){v, h};
}

static bool grow(StoreShare *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    Slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return false;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].v)
            place(slots, cap, s->slots[i].v, s->slots[i].h);
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return true;
}

/* The table's value hashed @h that @eq finds equal to @want (borrowed), or NULL. */
static json_t *probe(const StoreShare *s, uint64_t h, bool (*eq)(json_t *v, const void *want),
                     const void *want)
{
    if (s->cap) {
        for (size_t i = h & (s->cap - 1); s->slots[i].v; i = (i + 1) & (s->cap - 1))
            if (s->slots[i].h == h && eq(s->slots[i].v, want))
                return s->slots[i].v;
    }
    return NULL;
}

static bool same_value(json_t *v, const void *want)
{
    return same(v, (json_t *)want);
}

/* The shared value equal to @v, hashed @h (borrowed), or NULL. */
static json_t *find(const StoreShare *s, json_t *v, uint64_t h)
{
    return probe(s, h, same_value, v);
}

/* A container's parts, for looking it up before it is made (share_object_copy()). */
typedef struct Part {
    const char *k; /* an object's key */
    size_t kl;
    json_t *v; /* a new reference */
} Part;

/* Whether @a is the container of @obj's type made of @p. */
static bool same_parts(json_t *a, bool obj, const Part *p, size_t n)
{
    if (obj ? !json_is_object(a) || json_object_size(a) != n
            : !json_is_array(a) || json_array_size(a) != n)
        return false;
    size_t i = 0;
    if (!obj) {
        for (; i < n; i++)
            if (json_array_get(a, i) != p[i].v)
                return false;
        return true;
    }
    for (void *it = json_object_iter(a); it; it = json_object_iter_next(a, it), i++)
        if (json_object_iter_value(it) != p[i].v || json_object_iter_key_len(it) != p[i].kl ||
            memcmp(json_object_iter_key(it), p[i].k, p[i].kl))
            return false;
    return true;
}

typedef struct Parts {
    bool obj;
    const Part *p;
    size_t n;
} Parts;

static bool same_as_parts(json_t *v, const void *want)
{
    const Parts *w = want;
    return same_parts(v, w->obj, w->p, w->n);
}

/*
 * The shared value equal to @v, hashed @h (a new reference): @v itself when it is new, and
 * without looking when the caller knows it is (@look false).
 */
static json_t *intern(StoreShare *s, json_t *v, uint64_t h, bool look)
{
    json_t *found = look ? find(s, v, h) : NULL;
    if (found)
        return json_incref(found);
    if ((s->n + 1) * 10 > s->cap * 7 && !grow(s))
        return json_incref(v);
    place(s->slots, s->cap, json_incref(v), h);
    s->n++;
    return json_incref(v);
}

/* What share() did with a value. */
typedef enum Seen {
    SEEN_BEFORE, /* an equal value was shared already: that one is used */
    SEEN_NEW,    /* new to the table, now entered */
    SEEN_UNIQUE, /* a scalar seen the first time, or a container holding one: likely unique */
} Seen;

/*
 * The shared value equal to @v (a new reference). A container's children are shared first, in
 * place, and its hash is taken from their addresses on the way. A container someone else holds
 * too is not changed (another thread may be reading it): it is shared as it is.
 *
 * A container holding a scalar the table has never seen cannot equal anything shared, and most
 * likely holds a name, a host or an address: it is neither looked up nor entered, which spares
 * the table an entry and the lookup a cache miss. When it repeats, its second copy is entered
 * (its scalars are known by then) and the copies after it share that one. A container whose
 * children were just entered is new too: entered without a lookup.
 */
static json_t *share(StoreShare *s, json_t *v, Seen *seen)
{
    size_t r = refs(v);
    *seen = SEEN_BEFORE;
    if (r == (size_t)-1) /* true, false, null: jansson's own singletons */
        return v;
    bool own = r == 1;
    Seen worst = SEEN_BEFORE, c_seen;
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            json_t *c = json_object_iter_value(it), *d = own ? share(s, c, &c_seen) : c;
            if (d != c)
                json_object_iter_set_new(v, it, d); /* no rehash: the pair is at hand */
            else if (own)
                json_decref(d);
            if (own && c_seen > worst)
                worst = c_seen;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *c = json_array_get(v, i), *d = own ? share(s, c, &c_seen) : c;
            if (d != c)
                json_array_set_new(v, i, d);
            else if (own)
                json_decref(d);
            if (own && c_seen > worst)
                worst = c_seen;
        }
    } else {
        json_t *d = intern(s, v, hash_scalar(v), true);
        *seen = d == v ? SEEN_UNIQUE : SEEN_BEFORE;
        return d;
    }
    if (worst == SEEN_UNIQUE) {
        *seen = SEEN_UNIQUE;
        return json_incref(v);
    }
    json_t *d = intern(s, v, container_hash(v), worst == SEEN_BEFORE);
    *seen = d == v ? SEEN_NEW : SEEN_BEFORE;
    return d;
}

static bool unique_field(const char *k)
{
    static const char *const fields[] = {"name", "uid", "resourceVersion", "creationTimestamp",
                                         "generation", "deletionTimestamp", NULL};
    for (size_t i = 0; fields[i]; i++)
        if (!strcmp(fields[i], k))
            return true;
    return false;
}

/* Share @obj's fields in place (but those @skip names). */
static void share_fields(StoreShare *s, json_t *obj, bool (*skip)(const char *k))
{
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        json_t *c = json_object_iter_value(it);
        if (skip && skip(json_object_iter_key(it)))
            continue;
        Seen seen;
        json_t *d = share(s, c, &seen);
        if (d != c)
            json_object_iter_set_new(obj, it, d);
        else
            json_decref(d);
    }
}

/* Metadata is shared field by field, and packed metadata is one object's alone. */
static bool is_metadata(const char *k)
{
    return !strcmp(k, "metadata") || !strcmp(k, "metadataPacked");
}

void share_object(StoreShare *s, json_t *obj)
{
    if (!s || !json_is_object(obj)) /* the store's to change, as trimming did */
        return;
    json_t *md = json_object_get(obj, "metadata");
    if (json_is_object(md) && refs(md) == 1)
        share_fields(s, md, unique_field);
    share_fields(s, obj, is_metadata);
}

/*
 * Copying as sharing goes (share_object_copy()): what share() would change in place is built
 * anew in the caller's current allocation instead, and only what is not shared yet: a container
 * is looked up by its parts before it is built, so that no copy is made only to be dropped.
 */
static json_t *copy_scalar(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_stringn_nocheck(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return json_integer(json_integer_value(v));
    case JSON_REAL:
        return json_real(json_real_value(v));
    default:
        return json_incref(v); /* true, false, null */
    }
}

/* A container of @obj's type made of @p (their references taken, whatever happens). */
static json_t *build(bool obj, Part *p, size_t n)
{
    json_t *c = obj ? json_object() : json_array();
    size_t i = 0;
    for (; c && i < n; i++) {
        int r = obj ? json_object_setn_new_nocheck(c, p[i].k, p[i].kl, p[i].v)
                    : json_array_append_new(c, p[i].v);
        if (r < 0) {
            json_decref(c);
            c = NULL;
        }
    }
    for (; i < n; i++)
        json_decref(p[i].v);
    return c;
}

static json_t *copy_plain(json_t *v);
static json_t *share_copy(StoreShare *s, json_t *v, Seen *seen);

/*
 * @v's parts, each child copied (@s NULL) or shared as a copy, into @p (room for its size);
 * *@worst as share() counts it. False when memory runs out (nothing held then).
 */
static bool copy_parts(StoreShare *s, json_t *v, Part *p, Seen *worst)
{
    size_t n = 0;
    bool ok = true;
    *worst = SEEN_BEFORE;
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); ok && it; it = json_object_iter_next(v, it), n++) {
            Seen cs = SEEN_BEFORE;
            json_t *c = json_object_iter_value(it);
            p[n] = (Part){json_object_iter_key(it), json_object_iter_key_len(it),
                          s ? share_copy(s, c, &cs) : copy_plain(c)};
            ok = p[n].v != NULL;
            if (cs > *worst)
                *worst = cs;
        }
    } else {
        for (size_t i = 0; ok && i < json_array_size(v); i++, n++) {
            Seen cs = SEEN_BEFORE;
            json_t *c = json_array_get(v, i);
            p[n] = (Part){NULL, 0, s ? share_copy(s, c, &cs) : copy_plain(c)};
            ok = p[n].v != NULL;
            if (cs > *worst)
                *worst = cs;
        }
    }
    if (!ok)
        for (size_t i = 0; i < n; i++)
            json_decref(p[i].v);
    return ok;
}

/* @v's copy with its children made by copy_parts(): shared by @s when it is given. */
static json_t *copy_container(StoreShare *s, json_t *v, Seen *seen)
{
    bool obj = json_is_object(v);
    size_t n = obj ? json_object_size(v) : json_array_size(v);
    Part small[16], *p = n <= 16 ? small : malloc(n * sizeof(*p));
    Seen worst;
    json_t *c = NULL;
    *seen = SEEN_UNIQUE;
    if (!p || !copy_parts(s, v, p, &worst))
        goto out;
    if (!s || worst == SEEN_UNIQUE) {
        c = build(obj, p, n);
        goto out;
    }
    uint64_t h = json_typeof(v);
    for (size_t i = 0; i < n; i++)
        h = hash_step(h, obj, p[i].k, p[i].kl, p[i].v);
    json_t *found = worst == SEEN_BEFORE ? probe(s, h, same_as_parts, &(Parts){obj, p, n}) : NULL;
    if (found) {
        for (size_t i = 0; i < n; i++)
            json_decref(p[i].v);
        *seen = SEEN_BEFORE;
        c = json_incref(found);
    } else if ((c = build(obj, p, n))) {
        json_t *d = intern(s, c, h, false);
        json_decref(c);
        *seen = SEEN_NEW;
        c = d;
    }
out:
    if (p != small)
        free(p);
    return c;
}

/* @v copied without sharing; what another holds too (a shared value) is not copied. */
static json_t *copy_plain(json_t *v)
{
    Seen seen;
    if (refs(v) != 1)
        return json_incref(v);
    if (json_is_object(v) || json_is_array(v))
        return copy_container(NULL, v, &seen);
    return copy_scalar(v);
}

/* share() of a copy of @v: what an equal shared value stands for is not copied at all. */
static json_t *share_copy(StoreShare *s, json_t *v, Seen *seen)
{
    *seen = SEEN_BEFORE;
    if (refs(v) != 1) /* not ours to copy: shared as it is */
        return share(s, v, seen);
    if (json_is_object(v) || json_is_array(v))
        return copy_container(s, v, seen);
    uint64_t h = hash_scalar(v);
    json_t *found = find(s, v, h), *c;
    if (found)
        return json_incref(found);
    if (!(c = copy_scalar(v)))
        return NULL;
    json_t *d = intern(s, c, h, false);
    json_decref(c);
    *seen = SEEN_UNIQUE;
    return d;
}

/*
 * @obj's fields copied, shared but for those share_object() leaves as they are: at the top the
 * metadata (its fields one by one, as share_fields() does), in the metadata the fields no two
 * objects have in common.
 */
static json_t *copy_fields(StoreShare *s, json_t *obj, bool top)
{
    json_t *c = json_object();
    for (void *it = json_object_iter(obj); c && it; it = json_object_iter_next(obj, it)) {
        const char *k = json_object_iter_key(it);
        json_t *v = json_object_iter_value(it), *d;
        Seen seen;
        if (!s)
            d = copy_plain(v);
        else if (top && !strcmp(k, "metadata") && json_is_object(v) && refs(v) == 1)
            d = copy_fields(s, v, false);
        else if (top ? is_metadata(k) : unique_field(k))
            d = copy_plain(v);
        else
            d = share_copy(s, v, &seen);
        if (!d || json_object_setn_new_nocheck(c, k, json_object_iter_key_len(it), d) < 0) {
            json_decref(c);
            return NULL;
        }
    }
    return c;
}

json_t *share_object_copy(StoreShare *s, json_t *obj)
{
    return json_is_object(obj) ? copy_fields(s, obj, true) : NULL;
}

void share_sweep(StoreShare *s)
{
    if (!s || !s->cap)
        return;
    /*
     * A value only the table holds is unused. Dropping a container releases its children, which
     * may then be unused in turn: repeat until a pass drops nothing. No other thread can take a
     * new reference to a value only the table holds (readers reach values through the objects
     * that hold them).
     */
    bool dropped = true;
    while (dropped) {
        dropped = false;
        Slot *slots = calloc(s->cap, sizeof(*slots));
        if (!slots)
            return;
        size_t n = 0;
        for (size_t i = 0; i < s->cap; i++) {
            json_t *v = s->slots[i].v;
            if (!v)
                continue;
            if (refs(v) == 1) {
                json_decref(v);
                dropped = true;
                continue;
            }
            place(slots, s->cap, v, s->slots[i].h);
            n++;
        }
        free(s->slots);
        s->slots = slots;
        s->n = n;
    }
    s->released = 0;
}

void share_released(StoreShare *s, size_t live)
{
    /* A sweep costs a pass over the table; taken this rarely, it costs O(1) per release. */
    if (s && ++s->released > 64 && s->released * 2 > live)
        share_sweep(s);
}
