/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Serialisation of a configuration: canonical JSON (the bytes that are hashed and pushed) and
 * YAML for people and for Kong's declarative_config files (keys sorted, multi-line strings such
 * as PEM as literal blocks).
 */
#include "xlate_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <uv.h>

#include "util.h"
#include "yaml_scalar.h"

/*
 * The canonical writer is on the path of every revision (megabytes at 10,000 Ingresses), so it
 * writes into a buffer it has reserved room in instead of calling buf_append per character.
 */
struct Writer;

typedef struct Out {
    Buf b;
    bool oom;
    struct Writer *w; /* the configuration writer whose helper populates this buffer ahead */
} Out;

static void writer_hold_pages(struct Writer *w, bool hold);

/*
 * Room for @n more bytes, in huge pages (util_advise_huge(): the 2 MB pages wholly inside) from
 * 2 MB on: the output is 12 MB at 10,000 sets, and on this VM a fault per 4 KB page costs half as
 * much again as one per 2 MB of zeroing. False when memory runs out.
 */
static bool reserve_big(Out *o, size_t n)
{
    if (o->w)
        writer_hold_pages(o->w, true); /* the buffer may move: nobody populates it meanwhile */
    int r = buf_reserve(&o->b, n);
    if (o->w)
        writer_hold_pages(o->w, false);
    if (r < 0) {
        o->oom = true;
        return false;
    }
    if (o->b.cap >= (size_t)2 << 20)
        util_advise_huge(o->b.data, o->b.cap);
    return true;
}

/* Room for @n more bytes; false (and remembered) when memory runs out. */
static inline bool room(Out *o, size_t n)
{
    if (o->b.len + n < o->b.cap)
        return true;
    return !o->oom && reserve_big(o, n);
}

/*
 * Room for a configuration's bytes is reserved at once, generously: what is not written is never
 * touched (a target takes 50 bytes, a service with its routes a kilobyte and more).
 */
#define ENTITY_BYTES 768

static inline void put(Out *o, const char *p, size_t n)
{
    if (room(o, n)) {
        memcpy(o->b.data + o->b.len, p, n);
        o->b.len += n;
    }
}

static inline void putc1(Out *o, char c)
{
    if (room(o, 1))
        o->b.data[o->b.len++] = c;
}

/* 0: copied as is; otherwise the character after the backslash ('u' for \u00XX). */
static const char esc[256] = {
    ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r', ['"'] = '"',
    ['\\'] = '\\', [0] = 'u', [1] = 'u', [2] = 'u', [3] = 'u', [4] = 'u', [5] = 'u', [6] = 'u',
    [7] = 'u', [11] = 'u', [14] = 'u', [15] = 'u', [16] = 'u', [17] = 'u', [18] = 'u', [19] = 'u',
    [20] = 'u', [21] = 'u', [22] = 'u', [23] = 'u', [24] = 'u', [25] = 'u', [26] = 'u',
    [27] = 'u', [28] = 'u', [29] = 'u', [30] = 'u', [31] = 'u',
};

/* Whether any of the 8 bytes of @w is one esc[] names: below 0x20, '"' or '\\'. Each test is
 * the exact has-a-zero-byte (or a byte below 0x20) test on the word, 8 bytes at a time. */
static inline bool word_needs_esc(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high;
}

static void json_str(Out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case is 6 bytes a character; strings in a configuration are mostly short. */
    if (!room(o, n + 2))
        return;
    o->b.data[o->b.len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        uint64_t w;
        while (run + 8 <= n && (memcpy(&w, s + run, 8), !word_needs_esc(w)))
            run += 8;
        while (run < n && !esc[(unsigned char)s[run]])
            run++;
        put(o, s + i, run - i);
        if (run == n)
            break;
        unsigned char c = (unsigned char)s[run];
        char e[6] = {'\\', esc[c], '0', '0', hex[c >> 4], hex[c & 15]};
        put(o, e, esc[c] == 'u' ? 6 : 2);
        i = run + 1;
    }
    putc1(o, '"');
}

static void put_int(Out *o, long long v)
{
    char num[24], *p = num + sizeof(num);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    put(o, p, (size_t)(num + sizeof(num) - p));
}

typedef struct Key {
    const char *k;
    size_t n;
    json_t *v;
} Key;

static int cmp_key(const void *a, const void *b)
{
    const Key *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->n < y->n ? -1 : x->n > y->n);
}

/*
 * A number as KIC writes it: its values pass through Go's float64, whose JSON is the shortest
 * decimals ("1", "0.1", "1e+21"). Past 2^63, where Go still writes plain digits, the exponent is
 * kept: jansson reads digits alone as a 64-bit integer, and the bytes must read back. In YAML an
 * exponent gets a dot ("1.0e+21"), which YAML 1.1 readers need to see a float.
 */
static size_t real_text(double d, char num[UTIL_FLOAT_MAX])
{
    size_t l = util_go_float(d, 64, 'j', num);
    if (fabs(d) >= 0x1p63 && !memchr(num, 'e', l))
        l = util_go_float(d, 64, 'g', num);
    return l;
}

static void canon(Out *o, const json_t *v);

static void canon_array(Out *o, const json_t *v)
{
    size_t n = json_array_size(v);
    putc1(o, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            putc1(o, ',');
        canon(o, json_array_get(v, i));
    }
    putc1(o, ']');
}

/* An object with its keys sorted. */
static void canon_object(Out *o, const json_t *v)
{
    size_t n = json_object_size(v), i = 0;
    Key small[16];
    Key *keys = n <= 16 ? small : malloc(n * sizeof(*keys));
    if (!keys) {
        o->oom = true;
        return;
    }
    /* each key with the length jansson keeps for it: no strlen */
    for (void *it = json_object_iter((json_t *)v); it && i < n;
         it = json_object_iter_next((json_t *)v, it), i++)
        keys[i] = (Key){json_object_iter_key(it), json_object_iter_key_len(it),
                        json_object_iter_value(it)};
    if (n > 16) {
        qsort(keys, n, sizeof(*keys), cmp_key);
    } else {
        for (size_t a = 1; a < n; a++) /* small objects: insertion sort, no allocation */
            for (size_t z = a; z > 0 && cmp_key(&keys[z - 1], &keys[z]) > 0; z--) {
                Key t = keys[z];
                keys[z] = keys[z - 1];
                keys[z - 1] = t;
            }
    }
    putc1(o, '{');
    for (i = 0; i < n; i++) {
        if (i)
            putc1(o, ',');
        json_str(o, keys[i].k, keys[i].n);
        putc1(o, ':');
        canon(o, keys[i].v);
    }
    putc1(o, '}');
    if (keys != small)
        free(keys);
}

static void canon(Out *o, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        canon_object(o, v);
        break;
    case JSON_ARRAY:
        canon_array(o, v);
        break;
    case JSON_STRING:
        json_str(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_int(o, (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        char num[UTIL_FLOAT_MAX];
        put(o, num, real_text(json_real_value(v), num));
        break;
    }
    case JSON_TRUE:
        put(o, "true", 4);
        break;
    case JSON_FALSE:
        put(o, "false", 5);
        break;
    default:
        put(o, "null", 4);
    }
}

/*
 * A configuration is written in chunks of its top-level arrays' elements, in order. With
 * enough of them a helper thread takes chunks too, from a shared counter, and writes each into
 * a slot of a small ring; the caller writes the chunks it takes straight into the output and
 * copies the helper's into place as it reaches them. So the two threads end together however
 * big each array's entities are; the helper's bytes are copied once, from slots that are
 * reused (on this VM a new page costs as much as writing a megabyte into warm ones); and the
 * caller takes the SHA-256 of the bytes as they are placed, while the helper goes on.
 */
#define CHUNK_ELEMS 32
#define RING 8

typedef struct Chunk {
    size_t key, from, to; /* elements [from, to) of the array keys[key] */
} Chunk;

typedef struct Slot {
    Out out;      /* reused from chunk to chunk */
    size_t chunk; /* the chunk it holds, when full */
    bool full;
} Slot;

typedef struct Writer {
    Out *out;         /* the output, which the caller writes */
    size_t placed;    /* atomic: its length after the last chunk placed */
    size_t populated; /* the helper populated (or is populating) the output up to here */
    bool populating, held;
    Key *keys; /* the configuration's, sorted */
    size_t nkeys;
    Chunk *chunks;
    size_t nchunks;
    size_t next;      /* the first chunk nobody has taken (atomic) */
    size_t spans_key; /* the key whose element spans the plan wants (nkeys: none) */
    size_t *spans;
    Slot ring[RING];
    uv_mutex_t lock;
    uv_cond_t cond;
} Writer;

/* Chunk @c's elements, comma-separated, into @o (spans relative to @o's start). */
static void write_chunk(Out *o, Writer *w, const Chunk *c)
{
    const json_t *arr = w->keys[c->key].v;
    size_t *spans = c->key == w->spans_key ? w->spans : NULL;
    for (size_t i = c->from; i < c->to; i++) {
        if (i + 3 < c->to) { /* an entity's values sit together in the arena: its first 1 KB */
            const char *e = (const char *)json_array_get(arr, i + 3);
            for (int l = 0; l < 16; l++)
                __builtin_prefetch(e + 64 * l);
        }
        if (i > c->from)
            putc1(o, ',');
        if (spans)
            spans[2 * i] = o->b.len;
        canon(o, json_array_get(arr, i));
        if (spans)
            spans[2 * i + 1] = o->b.len;
    }
}

/*
 * The output's first touch of each page is the caller's, 3.4 ms a 2 MB page on this VM; the
 * helper would wait for it with its slots full. Instead it populates the next 2 MB page beyond
 * what the caller has placed (at most POPULATE_AHEAD of them), with MADV_POPULATE_WRITE, which
 * leaves what is written alone. Called with w->lock held; false when there is nothing to do.
 */
#define HUGE_PAGE ((size_t)2 << 20)
#define POPULATE_AHEAD (2 * HUGE_PAGE)

static bool populate_ahead(Writer *w)
{
#ifdef MADV_POPULATE_WRITE
    if (w->held || w->populated == SIZE_MAX)
        return false; /* the caller is moving the buffer; or populating does not work here */
    size_t placed = __atomic_load_n(&w->placed, __ATOMIC_RELAXED);
    uintptr_t base = (uintptr_t)w->out->b.data;
    size_t from = ((base + placed + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)) - base;
    if (from < w->populated)
        from = w->populated;
    size_t to = from + HUGE_PAGE;
    if (!base || to > w->out->b.cap || to > placed + POPULATE_AHEAD + HUGE_PAGE)
        return false;
    w->populated = to;
    w->populating = true;
    uv_mutex_unlock(&w->lock);
    int r = madvise((void *)(base + from), HUGE_PAGE, MADV_POPULATE_WRITE);
    uv_mutex_lock(&w->lock);
    w->populating = false;
    uv_cond_broadcast(&w->cond);
    if (r < 0)
        w->populated = SIZE_MAX; /* not here (an older kernel): no more tries */
    return r == 0;
#else
    (void)w;
    return false;
#endif
}

static void writer_hold_pages(Writer *w, bool hold)
{
    uv_mutex_lock(&w->lock);
    while (hold && w->populating)
        uv_cond_wait(&w->cond, &w->lock);
    w->held = hold;
    if (!hold && w->populated != SIZE_MAX)
        w->populated = 0; /* the buffer may have moved: from where the caller is, again */
    uv_mutex_unlock(&w->lock);
}

static void helper_chunks(void *arg)
{
    Writer *w = arg;
    size_t c;
    while ((c = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED)) < w->nchunks) {
        Slot *s = &w->ring[c % RING];
        uv_mutex_lock(&w->lock);
        while (s->full) /* until the caller has placed the chunk before it in this slot */
            if (!populate_ahead(w))
                uv_cond_wait(&w->cond, &w->lock);
        uv_mutex_unlock(&w->lock);
        s->out.b.len = 0;
        write_chunk(&s->out, w, &w->chunks[c]);
        uv_mutex_lock(&w->lock);
        s->chunk = c;
        s->full = true;
        uv_cond_broadcast(&w->cond);
        uv_mutex_unlock(&w->lock);
    }
}

/* The keys from *@at up to (not including) @upto that have no chunk, whole, after a comma. */
static void write_plain_keys(Out *o, Writer *w, size_t *at, size_t upto)
{
    for (; *at < upto; (*at)++) {
        Key *k = &w->keys[*at];
        if (*at)
            putc1(o, ',');
        json_str(o, k->k, k->n);
        putc1(o, ':');
        canon(o, k->v);
    }
}

/* What goes before chunk @c: the keys before its array, the array's opening, or a comma. */
static void chunk_opening(Out *o, Writer *w, size_t c, size_t *key_at)
{
    const Chunk *ch = &w->chunks[c];
    if (ch->from) {
        putc1(o, ',');
        return;
    }
    write_plain_keys(o, w, key_at, ch->key);
    if (ch->key)
        putc1(o, ',');
    json_str(o, w->keys[ch->key].k, w->keys[ch->key].n);
    put(o, ":[", 2);
    *key_at = ch->key + 1;
}

static void chunk_closing(Out *o, Writer *w, size_t c)
{
    const Chunk *ch = &w->chunks[c];
    if (ch->to == json_array_size(w->keys[ch->key].v))
        putc1(o, ']');
}

/* The helper's chunk @c, waited for and copied into place. */
static void place_slot(Out *o, Writer *w, size_t c)
{
    Slot *s = &w->ring[c % RING];
    uv_mutex_lock(&w->lock);
    while (!s->full || s->chunk != c)
        uv_cond_wait(&w->cond, &w->lock);
    uv_mutex_unlock(&w->lock);
    const Chunk *ch = &w->chunks[c];
    size_t base = o->b.len;
    put(o, s->out.b.data, s->out.b.len);
    o->oom |= s->out.oom;
    for (size_t i = ch->from; ch->key == w->spans_key && i < ch->to; i++) {
        w->spans[2 * i] += base;
        w->spans[2 * i + 1] += base;
    }
    uv_mutex_lock(&w->lock);
    s->full = false;
    uv_cond_broadcast(&w->cond);
    uv_mutex_unlock(&w->lock);
}

/* The chunks of @w's arrays; false when memory runs out. */
static bool plan_chunks(Writer *w)
{
    size_t n = 0;
    for (size_t k = 0; k < w->nkeys; k++)
        if (json_is_array(w->keys[k].v))
            n += (json_array_size(w->keys[k].v) + CHUNK_ELEMS - 1) / CHUNK_ELEMS;
    w->chunks = malloc((n ? n : 1) * sizeof(*w->chunks));
    if (!w->chunks)
        return false;
    for (size_t k = 0; k < w->nkeys; k++) {
        size_t len = json_is_array(w->keys[k].v) ? json_array_size(w->keys[k].v) : 0;
        for (size_t from = 0; from < len; from += CHUNK_ELEMS)
            w->chunks[w->nchunks++] =
                (Chunk){k, from, from + CHUNK_ELEMS < len ? from + CHUNK_ELEMS : len};
    }
    return true;
}

/* Bytes [*@hashed, now) of @o into @h; and where the helper may populate from. */
static void hash_new(Out *o, UtilSha256 *h, size_t *hashed)
{
    if (h && !o->oom) {
        util_sha256_add(h, o->b.data + *hashed, o->b.len - *hashed);
        *hashed = o->b.len;
    }
    if (o->w)
        __atomic_store_n(&o->w->placed, o->b.len, __ATOMIC_RELAXED);
}

/* A configuration object: its keys sorted, its arrays in chunks (see above). */
static void write_config(Out *o, const json_t *config, XlatePlan *plan, UtilSha256 *h)
{
    Writer w;
    memset(&w, 0, sizeof(w));
    size_t n = json_object_size(config), total = 0, hashed = o->b.len;
    w.keys = malloc((n ? n : 1) * sizeof(*w.keys));
    if (!w.keys) {
        o->oom = true;
        return;
    }
    for (void *it = json_object_iter((json_t *)config); it && w.nkeys < n;
         it = json_object_iter_next((json_t *)config, it)) {
        Key *k = &w.keys[w.nkeys++];
        *k = (Key){json_object_iter_key(it), json_object_iter_key_len(it),
                   json_object_iter_value(it)};
        total += json_is_array(k->v) ? json_array_size(k->v) : 0;
    }
    qsort(w.keys, w.nkeys, sizeof(*w.keys), cmp_key);
    w.spans_key = w.nkeys;
    for (size_t k = 0; plan && k < w.nkeys; k++)
        if (!strcmp(w.keys[k].k, "upstreams") && json_is_array(w.keys[k].v) &&
            json_array_size(w.keys[k].v) == plan->nups) {
            w.spans_key = k;
            w.spans = plan->spans;
        }
    if (!plan_chunks(&w)) {
        free(w.keys);
        o->oom = true;
        return;
    }
    uv_thread_t helper;
    bool threaded = xsplit_min && total >= xsplit_min && w.nchunks > 1;
    if (threaded && uv_mutex_init(&w.lock) < 0)
        threaded = false;
    if (threaded && uv_cond_init(&w.cond) < 0) {
        uv_mutex_destroy(&w.lock);
        threaded = false;
    }
    w.out = o;
    w.placed = o->b.len;
    if (threaded)
        o->w = &w;
    if (threaded && uv_thread_create(&helper, helper_chunks, &w) != 0) {
        o->w = NULL;
        uv_cond_destroy(&w.cond);
        uv_mutex_destroy(&w.lock);
        threaded = false;
    }

    size_t placed = 0, key_at = 0;
    putc1(o, '{');
    for (;;) {
        /* Take a chunk; those before it that the helper took are placed first, in order. */
        size_t c = threaded ? __atomic_fetch_add(&w.next, 1, __ATOMIC_RELAXED) : placed;
        for (; placed < c && placed < w.nchunks; placed++) {
            chunk_opening(o, &w, placed, &key_at);
            place_slot(o, &w, placed);
            chunk_closing(o, &w, placed);
            hash_new(o, h, &hashed);
        }
        if (c >= w.nchunks)
            break;
        chunk_opening(o, &w, c, &key_at);
        write_chunk(o, &w, &w.chunks[c]); /* its spans are relative to the output's start */
        chunk_closing(o, &w, c);
        hash_new(o, h, &hashed);
        placed = c + 1;
    }
    write_plain_keys(o, &w, &key_at, w.nkeys);
    putc1(o, '}');
    hash_new(o, h, &hashed);
    if (threaded) {
        uv_thread_join(&helper);
        o->w = NULL;
        uv_cond_destroy(&w.cond);
        uv_mutex_destroy(&w.lock);
        /* Pages populated past the end would stay with the bytes (revisions keep them). */
        uintptr_t end = ((uintptr_t)o->b.data + o->b.len + 1 + 4095) & ~(uintptr_t)4095;
        uintptr_t upto = (uintptr_t)o->b.data + (w.populated <= o->b.cap ? w.populated : 0);
        if (w.populated != SIZE_MAX && upto > end)
            (void)madvise((void *)end, upto - end, MADV_DONTNEED);
    }
    for (size_t i = 0; i < RING; i++)
        buf_deinit(&w.ring[i].out.b);
    free(w.chunks);
    free(w.keys);
}

static char *canonical(const json_t *config, size_t *ret_len, XlatePlan *plan, char hash[65])
{
    Out o = {BUF_INIT, false, NULL};
    size_t entities = 0;
    const char *k;
    json_t *v;
    UtilSha256 *h = hash ? util_sha256_begin() : NULL;
    if (hash && !h)
        return NULL;
    if (json_is_object(config))
        json_object_foreach((json_t *)config, k, v)
            entities += json_array_size(v);
    if (!reserve_big(&o, ((size_t)1 << 16) + entities * ENTITY_BYTES)) {
        util_sha256_end(h, NULL);
        return NULL;
    }
    if (json_is_object(config)) {
        write_config(&o, config, plan, h);
    } else {
        canon(&o, config);
        if (h && !o.oom)
            util_sha256_add(h, o.b.data, o.b.len);
    }
    if (h)
        util_sha256_end(h, o.oom ? NULL : hash);
    if (o.oom || (hash && !hash[0]) || buf_reserve(&o.b, 0) < 0) {
        buf_deinit(&o.b);
        return NULL;
    }
    o.b.data[o.b.len] = 0;
    if (ret_len)
        *ret_len = o.b.len;
    return buf_take(&o.b);
}

char *xlate_canonical_json(const json_t *config, size_t *ret_len)
{
    return canonical(config, ret_len, NULL, NULL);
}

char *xlate_canonical_json_plan(const json_t *config, size_t *ret_len, XlatePlan *plan)
{
    return canonical(config, ret_len, plan, NULL);
}

char *xlate_canonical_hashed(const json_t *config, size_t *ret_len, XlatePlan *plan,
                             char hash[65])
{
    return canonical(config, ret_len, plan, hash);
}

/* For xlate_refresh_targets(): append @v's canonical bytes to @b. */
int xcanon_append(Buf *b, const json_t *v)
{
    Out o = {*b, false};
    canon(&o, v);
    *b = o.b;
    return o.oom ? -ENOMEM : 0;
}

char *xlate_to_json(const json_t *config)
{
    size_t n;
    char *c = xlate_canonical_json(config, &n);
    if (!c)
        return NULL;
    Buf b = BUF_INIT;
    int depth = 0, r = 0;
    for (size_t i = 0; i < n && r >= 0; i++) {
        char ch = c[i];
        if (ch == '"') { /* a string, escapes and all */
            size_t j = i + 1;
            while (j < n && c[j] != '"')
                j += c[j] == '\\' ? 2 : 1;
            r = buf_append(&b, c + i, j + 1 - i);
            i = j;
        } else if ((ch == '{' || ch == '[') && i + 1 < n && (c[i + 1] == '}' || c[i + 1] == ']')) {
            r = buf_append(&b, c + i, 2); /* empty: {} or [] */
            i++;
        } else if (ch == '{' || ch == '[' || ch == ',') {
            depth += ch != ',';
            r = buf_printf(&b, "%c\n%*s", ch, 2 * depth, "");
        } else if (ch == '}' || ch == ']') {
            depth--;
            r = buf_printf(&b, "\n%*s%c", 2 * depth, "", ch);
        } else {
            r = ch == ':' ? buf_puts(&b, ": ") : buf_putc(&b, ch);
        }
    }
    free(c);
    if (r < 0) {
        buf_deinit(&b);
        return NULL;
    }
    return buf_take(&b);
}
