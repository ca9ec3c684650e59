/* SPDX-License-Identifier: Apache-2.0 */
/* Immutable refcounted translation results. See revision.h. */
#include "revision.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "memtrim.h"
#include "util.h"
#include "xlate.h"

struct Revision {
    int refs;
    uint64_t seq;
    int fallback;
    int empty;
    json_t *config; /* until revision_take_tree() */
    json_t *failures;
    Bytes *bytes; /* the canonical JSON, shared with a namespace plan */
    char *json;   /* bytes->data */
    size_t json_len;
    char hash[65];
    XlatePlan *plan; /* for refreshing targets; not part of the revision's value */
};

static uint64_t next_seq = 1;

/*
 * Freeing a configuration tree of 10,000 Ingresses takes ~100 ms of pointer chasing. The last
 * reference is usually dropped on the loop (by the reconciler or a sink), so the controller
 * lets big revisions be freed in the thread pool instead. Loop thread only, like the refcount.
 */
static uv_loop_t *reap_loop;
#define REAP_MIN_BYTES (256 * 1024)

void revision_free_off_loop(uv_loop_t *loop)
{
    reap_loop = loop;
}

static void revision_free(Revision *r)
{
    xlate_plan_free(r->plan);
    json_decref(r->config);
    json_decref(r->failures);
    bytes_unref(r->bytes);
    free(r);
}

void revision_recycle_bytes(Revision *r)
{
    r->bytes->recycle = true;
}

Bytes *revision_bytes(const Revision *r)
{
    return r->bytes;
}

static void reap_work(uv_work_t *w)
{
    Revision *r = w->data;
    bool tree = r->config != NULL;
    revision_free(r);
    /* The pages of the tree stay with malloc and the arena until trimmed, now or soon */
    if (tree)
        memtrim_released();
}

static void reap_done(uv_work_t *w, int status)
{
    if (status < 0) /* cancelled: the loop is going away, free it here */
        revision_free(w->data);
    free(w);
}

static int config_empty(const json_t *config)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)config, k, v)
    {
        if (k[0] != '_' && (!json_is_array(v) || json_array_size(v) > 0))
            return 0;
    }
    return 1;
}

/* @bytes (stolen, may be NULL: then the canonical JSON of @config) */
static Revision *make(json_t *config, json_t *failures, int fallback, XlatePlan *plan,
                      Bytes *bytes)
{
    Revision *r = calloc(1, sizeof(*r));
    bool hashed = false;
    if (!r || (!config && !bytes))
        goto fail;
    r->refs = 1;
    r->config = config;
    r->failures = failures ? failures : json_array();
    r->fallback = fallback;
    r->plan = plan;
    plan = NULL;
    if (!bytes) {
        size_t len = 0;
        char *json = xlate_canonical_hashed(config, &len, r->plan, r->hash);
        bytes = json ? bytes_new(json, len) : NULL;
        hashed = true;
    }
    r->bytes = bytes;
    bytes = NULL;
    if (!r->bytes || !r->failures) {
        config = NULL;
        failures = NULL;
        goto fail;
    }
    r->json = r->bytes->data;
    r->json_len = r->bytes->len;
    if (config) {
        r->empty = config_empty(config);
    } else if (r->json_len < 4096) { /* an empty configuration is a few bytes */
        json_t *c = json_loadb(r->json, r->json_len, 0, NULL);
        r->empty = c && config_empty(c);
        json_decref(c);
    }
    if (!hashed)
        util_sha256_hex(r->json, r->json_len, r->hash);
    r->seq = __atomic_fetch_add(&next_seq, 1, __ATOMIC_RELAXED); /* also from the thread pool */
    return r;
fail:
    if (r) {
        json_decref(r->config);
        json_decref(r->failures);
        bytes_unref(r->bytes);
        xlate_plan_free(r->plan);
        free(r);
    }
    json_decref(config);
    json_decref(failures);
    xlate_plan_free(plan);
    bytes_unref(bytes);
    return NULL;
}

Revision *revision_new_consume(json_t *config, json_t *failures, int fallback)
{
    return make(config, failures, fallback, NULL, NULL);
}

Revision *revision_new_planned(json_t *config, json_t *failures, XlatePlan *plan, char *json,
                               size_t json_len)
{
    Bytes *b = json ? bytes_new(json, json_len) : NULL;
    if (json && !b) {
        json_decref(config);
        json_decref(failures);
        xlate_plan_free(plan);
        return NULL;
    }
    return make(config, failures, 0, plan, b);
}

Revision *revision_new_bytes(json_t *failures, Bytes *bytes)
{
    return make(NULL, failures, 0, NULL, bytes);
}

const XlatePlan *revision_plan(const Revision *r)
{
    return r->plan;
}

void revision_move_plan(Revision *from, Revision *to)
{
    if (!from->plan || strcmp(from->hash, to->hash))
        return;
    xlate_plan_free(to->plan);
    to->plan = from->plan;
    from->plan = NULL;
}

Revision *revision_ref(Revision *r)
{
    if (r)
        r->refs++;
    return r;
}

Revision *revision_unref(Revision *r)
{
    if (!r)
        return NULL;
    assert(r->refs > 0);
    if (--r->refs > 0)
        return NULL;
    if (reap_loop && r->json_len >= REAP_MIN_BYTES) {
        uv_work_t *w = malloc(sizeof(*w));
        if (w) {
            w->data = r;
            if (uv_queue_work(reap_loop, w, reap_work, reap_done) == 0)
                return NULL;
            free(w);
        }
    }
    revision_free(r);
    return NULL;
}

uint64_t revision_seq(const Revision *r)
{
    return r->seq;
}

const char *revision_hash(const Revision *r)
{
    return r->hash;
}

const char *revision_json(const Revision *r, size_t *ret_len)
{
    if (ret_len)
        *ret_len = r->json_len;
    return r->json;
}

/* Sinks load trees in the thread pool while the loop may take the tree away. */
static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;

json_t *revision_load_config(const Revision *r)
{
    pthread_mutex_lock(&tree_lock);
    json_t *t = json_incref(r->config);
    pthread_mutex_unlock(&tree_lock);
    return t ? t : json_loadb(r->json, r->json_len, 0, NULL);
}

json_t *revision_take_tree(Revision *r)
{
    pthread_mutex_lock(&tree_lock);
    json_t *t = r->config;
    r->config = NULL;
    pthread_mutex_unlock(&tree_lock);
    return t;
}

int revision_is_empty(const Revision *r)
{
    return r->empty;
}

json_t *revision_failures(const Revision *r)
{
    return r->failures;
}

int revision_is_fallback(const Revision *r)
{
    return r->fallback;
}
