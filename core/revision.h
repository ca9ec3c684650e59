/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Revision: one immutable, refcounted result of translation, handed to every sink. Sinks keep
 * a reference for as long as they need it; nobody mutates it after revision_new_consume().
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

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
 * caller has them already (a refresh), else NULL.
 */
Revision *revision_new_planned(json_t *config, json_t *failures, XlatePlan *plan, char *json,
                               size_t json_len);
const XlatePlan *revision_plan(const Revision *r); /* NULL when there is none */
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
json_t *revision_config(const Revision *r);         /* borrowed, do not modify */
json_t *revision_failures(const Revision *r);       /* borrowed array, never NULL */
int revision_is_fallback(const Revision *r);
