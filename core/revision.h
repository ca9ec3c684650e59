/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Revision: one immutable, refcounted result of translation, handed to every sink. Sinks keep
 * a reference for as long as they need it; nobody mutates it after revision_new_consume().
 * Its value is the canonical JSON. The configuration tree it was made from costs ~7 times those
 * bytes (83 MB at 10,000 Ingress sets), so the controller hands the tree back once the revision
 * is published (revision_take_tree()) and sinks that want a tree load one.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util.h"
#include "xlate.h"

typedef struct Revision Revision;

/*
 * revision_new_consume() - build a revision from @config and @failures (both stolen; @failures
 * may be NULL). Computes the canonical JSON and its SHA-256. @fallback marks a configuration
 * that leaves out objects a gateway rejected. Returns NULL on allocation failure.
 */
Revision *revision_new_consume(json_t *config, json_t *failures, int fallback);
/*
 * revision_new_planned() - the same for a translation that made a plan (stolen, may be NULL):
 * the revision keeps it for refreshing targets. @json (stolen) are the canonical bytes when the
 * caller has them already (a refresh); then @config may be NULL.
 */
Revision *revision_new_planned(json_t *config, json_t *failures, XlatePlan *plan, char *json,
                               size_t json_len);
/* revision_new_bytes() - a revision of canonical JSON @bytes (a reference is stolen). */
Revision *revision_new_bytes(json_t *failures, Bytes *bytes);
const XlatePlan *revision_plan(const Revision *r); /* NULL when there is none */
Bytes *revision_bytes(const Revision *r);           /* borrowed: bytes_ref() to keep */
/* revision_recycle_bytes() - when freed, @r's bytes become the spare buffer (util_spare_give). */
void revision_recycle_bytes(Revision *r);
/*
 * revision_move_plan() - a newer translation gave the same bytes as @to: @to takes @from's plan,
 * which knows the store as it is now (a plan fits any revision with the same canonical JSON).
 */
void revision_move_plan(Revision *from, Revision *to);
Revision *revision_ref(Revision *r);
Revision *revision_unref(Revision *r); /* NULL-safe, returns NULL */

/*
 * revision_free_off_loop() - from now on, big revisions whose last reference is dropped are
 * freed in @loop's thread pool (the loop runs until that is done); NULL frees them in place.
 */
void revision_free_off_loop(uv_loop_t *loop);

uint64_t revision_seq(const Revision *r);           /* 1, 2, ... in creation order */
const char *revision_hash(const Revision *r);       /* 64 hex chars */
const char *revision_json(const Revision *r, size_t *ret_len); /* canonical bytes */
/*
 * revision_load_config() - the configuration as a tree: a new reference, read-only (it may be
 * shared). Parses the canonical JSON when the revision no longer holds its tree, so call it off
 * the loop for big revisions; any thread may. NULL on allocation failure.
 */
json_t *revision_load_config(const Revision *r);
/*
 * revision_take_tree() - hand the tree over to the caller (NULL if gone): the revision keeps its
 * bytes, and the caller frees the tree where that costs nobody (the thread pool).
 */
json_t *revision_take_tree(Revision *r);
int revision_is_empty(const Revision *r); /* no entities, only "_" keys */
json_t *revision_failures(const Revision *r);       /* borrowed array, never NULL */
int revision_is_fallback(const Revision *r);
