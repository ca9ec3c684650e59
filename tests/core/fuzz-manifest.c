/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: untrusted manifest bytes through the whole offline pipeline (YAML/JSON loader,
 * store, translator, canonical JSON and YAML output). Invariants: no crash, no leak, the
 * canonical JSON of a translation reads back to the same bytes, its YAML reads back as one
 * document, translation leaves the stored objects (which share equal values) as they were, and
 * a buffer that loads without errors loads the same when cut in two halves at a document marker
 * (manifest_split_min).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "store.h"
#include "util.h"
#include "xlate.h"
#include "xlate_int.h"

typedef struct Seen {
    json_t *objs;
    int errors;
} Seen;

static int collect(void *ud, json_t *obj, const char *file, int line)
{
    Seen *s = ud;
    (void)file;
    json_array_append_new(s->objs, json_pack("[O, i]", obj, line));
    return 0;
}

static void count_error(void *ud, const char *file, int line, const char *msg)
{
    (void)file, (void)line, (void)msg;
    ((Seen *)ud)->errors++;
}

static Seen load_with(const uint8_t *data, size_t size, size_t split_min)
{
    Seen s = {json_array(), 0};
    size_t saved = manifest_split_min;
    manifest_split_min = split_min;
    manifest_load_buffer((const char *)data, size, "fuzz", collect, count_error, &s);
    manifest_split_min = saved;
    return s;
}

/* Every stored object, as text. */
static json_t *dump_store(Store *s)
{
    json_t *all = json_array(), *kinds = store_kinds(s), *k;
    size_t i, n;
    json_array_foreach(kinds, i, k)
    {
        json_t *const *objs = store_list(s, json_string_value(k), &n);
        for (size_t j = 0; j < n; j++) {
            char *text = json_dumps(objs[j], JSON_SORT_KEYS);
            json_array_append_new(all, json_string(text ? text : "?"));
            free(text);
        }
    }
    return all;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Store *s;
    if (size > 1 << 20 || store_new(&s) < 0)
        return 0;
    Seen whole = load_with(data, size, SIZE_MAX), halves = load_with(data, size, 1);
    if (!whole.errors && (halves.errors || !json_equal(whole.objs, halves.objs)))
        abort();
    json_decref(halves.objs);
    size_t i;
    json_t *seen;
    /* Copied into lanes in bulk, or stored as they come: the same objects either way. */
    Store *single;
    if (store_new(&single) < 0) {
        json_decref(whole.objs);
        store_free(s);
        return 0;
    }
    store_bulk(s, true);
    json_array_foreach(whole.objs, i, seen)
    {
        store_put(single, json_array_get(seen, 0));
        store_put_new(s, json_incref(json_array_get(seen, 0)));
    }
    json_decref(whole.objs);
    json_t *before = dump_store(s), *as_single = dump_store(single);
    if (!json_equal(before, as_single))
        abort();
    json_decref(as_single);
    store_free(single);
    for (int flavor = 0; flavor < 2; flavor++) {
        XlateOptions o;
        xlate_options_default(&o);
        o.expressions = flavor;
        o.service_facade = o.rewrite_uris = flavor;
        json_t *cfg = NULL, *failures = NULL;
        if (xlate_run(s, &o, &cfg, &failures) == 0) {
            size_t n;
            char *text = xlate_canonical_json(cfg, &n);
            /* Numbers are written as Go writes them (1.0 as 1), so compare the bytes again. */
            json_t *back = text ? json_loadb(text, n, 0, NULL) : NULL;
            size_t n2 = 0;
            char *again = back ? xlate_canonical_json(back, &n2) : NULL;
            if (text && (!again || n2 != n || memcmp(again, text, n)))
                abort();
            free(again);
            /* Written by two threads in chunks and hashed as placed: the same bytes, their hash */
            size_t saved = xsplit_min, n3 = 0;
            char hash[65], want[65];
            xsplit_min = 1;
            char *chunked = xlate_canonical_hashed(cfg, &n3, NULL, hash);
            xsplit_min = saved;
            if (text && chunked) {
                util_sha256_hex(text, n, want);
                if (n3 != n || memcmp(chunked, text, n) || strcmp(hash, want))
                    abort();
            }
            free(chunked);
            json_decref(back);
            free(text);
            /* The YAML reads back (as go-yaml's text, by a YAML reader) */
            char *y = xlate_to_yaml(cfg);
            json_t *docs = y ? manifest_yaml_to_json(y, strlen(y), NULL, 0) : NULL;
            if (y && json_array_size(docs) != 1)
                abort();
            json_decref(docs);
            free(y);
            json_decref(cfg);
            json_decref(failures);
        }
    }
    json_t *after = dump_store(s);
    if (!json_equal(before, after))
        abort();
    json_decref(before);
    json_decref(after);
    store_free(s);
    return 0;
}
