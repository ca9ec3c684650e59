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
#include <uv.h>

#include "util.h"
#include "yaml_scalar.h"

/*
 * The canonical writer is on the path of every revision (megabytes at 10,000 Ingresses), so it
 * writes into a buffer it has reserved room in instead of calling buf_append per character.
 */
typedef struct Out {
    Buf b;
    bool oom;
} Out;

/*
 * Room for @n more bytes, in huge pages (util_advise_huge(): the 2 MB pages wholly inside) from
 * 2 MB on. The second halves' buffers are 1.5-4 MB at 10,000 sets: in small pages they took a
 * thousand page faults (bench-translate 290 ms against 323, alternating; 1.4 MB more RSS). False
 * when memory runs out.
 */
static bool reserve_big(Out *o, size_t n)
{
    if (buf_reserve(&o->b, n) < 0) {
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

/* An array, noting where each element's bytes are when @spans is given. */
static void canon_array(Out *o, const json_t *v, size_t *spans)
{
    size_t n = json_array_size(v);
    putc1(o, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            putc1(o, ',');
        if (spans)
            spans[2 * i] = o->b.len;
        canon(o, json_array_get(v, i));
        if (spans)
            spans[2 * i + 1] = o->b.len;
    }
    putc1(o, ']');
}

/* An object with its keys sorted; with @plan, the top level notes where the upstreams are. */
static void canon_object(Out *o, const json_t *v, XlatePlan *plan)
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
        if (plan && json_is_array(keys[i].v) && !strcmp(keys[i].k, "upstreams") &&
            json_array_size(keys[i].v) == plan->nups)
            canon_array(o, keys[i].v, plan->spans);
        else
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
        canon_object(o, v, NULL);
        break;
    case JSON_ARRAY:
        canon_array(o, v, NULL);
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
 * A configuration's big arrays are written by two threads: the second half of each array on a
 * helper thread into a buffer of its own, the rest on the caller's thread straight into the
 * output, which takes each second half as soon as it is done. The canonical writer is a fifth
 * of a translation's time at 10,000 Ingress sets, and tether has the second core to itself
 * while it translates. Below xsplit_min elements a thread is not worth starting.
 */

typedef struct Half {
    const json_t *arr;
    size_t from, to;
    size_t *spans; /* where elements start and end; made absolute when joined */
    Out *o;        /* the output (first half) or own (second half) */
    Out own;
    uv_sem_t done;
} Half;

typedef struct Split {
    Key keys[16]; /* a configuration's top-level keys, sorted */
    size_t nkeys;
    bool split[16];
    Half second[16];
} Split;

static void write_half(Half *h)
{
    Out *o = h->o;
    for (size_t i = h->from; i < h->to; i++) {
        if (i + 3 < h->to) { /* an entity's values sit together in the arena: its first 1 KB */
            const char *e = (const char *)json_array_get(h->arr, i + 3);
            for (int l = 0; l < 16; l++)
                __builtin_prefetch(e + 64 * l);
        }
        if (i > h->from)
            putc1(o, ',');
        if (h->spans)
            h->spans[2 * (i - h->from)] = o->b.len;
        canon(o, json_array_get(h->arr, i));
        if (h->spans)
            h->spans[2 * (i - h->from) + 1] = o->b.len;
    }
}

static void write_second_halves(void *arg)
{
    Split *sp = arg;
    for (size_t k = 0; k < sp->nkeys; k++) {
        if (sp->split[k]) {
            write_half(&sp->second[k]);
            uv_sem_post(&sp->second[k].done);
        }
    }
}

/* An array's spans, when it is the plan's upstreams. */
static size_t *spans_of(const Key *k, XlatePlan *plan)
{
    if (plan && !strcmp(k->k, "upstreams") && json_array_size(k->v) == plan->nups)
        return plan->spans;
    return NULL;
}

/* Plan @sp for @config; false when it is not worth a thread (or not a configuration). */
static bool split_plan(Split *sp, const json_t *config, XlatePlan *plan)
{
    size_t total = 0;
    const char *k;
    json_t *v;
    if (!json_is_object(config) || json_object_size(config) > 16)
        return false;
    memset(sp, 0, sizeof(*sp));
    json_object_foreach((json_t *)config, k, v)
    {
        sp->keys[sp->nkeys++] = (Key){k, strlen(k), v};
        total += json_array_size(v);
    }
    if (!xsplit_min || total < xsplit_min)
        return false;
    qsort(sp->keys, sp->nkeys, sizeof(*sp->keys), cmp_key);
    for (size_t i = 0; i < sp->nkeys; i++) {
        size_t n = json_array_size(sp->keys[i].v);
        if (n < 2 || uv_sem_init(&sp->second[i].done, 0) < 0)
            continue;
        sp->split[i] = true;
        Half *h = &sp->second[i];
        h->arr = sp->keys[i].v;
        h->from = n / 2;
        h->to = n;
        h->o = &h->own;
        reserve_big(h->o, (n - n / 2) * ENTITY_BYTES); /* a failure is the output's, joined */
        size_t *spans = spans_of(&sp->keys[i], plan);
        h->spans = spans ? spans + 2 * h->from : NULL;
    }
    return true;
}

static void canon_split(Out *o, Split *sp, XlatePlan *plan)
{
    uv_thread_t helper;
    bool threaded = uv_thread_create(&helper, write_second_halves, sp) == 0;
    if (!threaded)
        write_second_halves(sp);
    putc1(o, '{');
    for (size_t i = 0; i < sp->nkeys; i++) {
        Key *k = &sp->keys[i];
        size_t *spans = spans_of(k, plan);
        if (i)
            putc1(o, ',');
        json_str(o, k->k, k->n);
        putc1(o, ':');
        if (!sp->split[i]) {
            if (spans && json_is_array(k->v))
                canon_array(o, k->v, spans);
            else
                canon(o, k->v);
            continue;
        }
        Half *second = &sp->second[i];
        Half first = {.arr = k->v, .from = 0, .to = second->from, .spans = spans, .o = o};
        putc1(o, '[');
        write_half(&first);
        uv_sem_wait(&second->done);
        uv_sem_destroy(&second->done);
        putc1(o, ',');
        size_t base = o->b.len;
        put(o, second->own.b.data, second->own.b.len);
        o->oom |= second->own.oom;
        buf_deinit(&second->own.b);
        for (size_t e = 0; second->spans && e < 2 * (second->to - second->from); e++)
            second->spans[e] += base;
        putc1(o, ']');
    }
    putc1(o, '}');
    if (threaded)
        uv_thread_join(&helper);
}

static char *canonical(const json_t *config, size_t *ret_len, XlatePlan *plan)
{
    Out o = {BUF_INIT, false};
    Split sp;
    size_t entities = 0;
    const char *k;
    json_t *v;
    if (json_is_object(config))
        json_object_foreach((json_t *)config, k, v)
            entities += json_array_size(v);
    if (!reserve_big(&o, ((size_t)1 << 16) + entities * ENTITY_BYTES))
        return NULL;
    if (split_plan(&sp, config, plan)) {
        canon_split(&o, &sp, plan);
    } else if (plan && json_is_object(config)) {
        canon_object(&o, config, plan);
    } else {
        canon(&o, config);
    }
    if (o.oom || buf_reserve(&o.b, 0) < 0) {
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
    return canonical(config, ret_len, NULL);
}

char *xlate_canonical_json_plan(const json_t *config, size_t *ret_len, XlatePlan *plan)
{
    return canonical(config, ret_len, plan);
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
