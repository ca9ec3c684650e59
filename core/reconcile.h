/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Reconciler: turns store changes into revisions. A change marks the store dirty and arms one
 * one-shot debounce timer (restarted by further changes, but never later than max_wait after the
 * first one); when it fires the store is translated once, and the revision is offered to the
 * owner, flagged unchanged when its hash equals the last published one. Loop thread only.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "revision.h"
#include "store.h"
#include "util.h"
#include "xlate.h"

typedef struct Recon Recon;

/* The translator seam (xlate_run in production, a fake in tests). */
typedef int (*ReconTranslateFn)(Store *store, const XlateOptions *o, json_t **ret_config,
                                json_t **ret_failures);

/* A translator that also makes a plan for refreshing targets (xlate_run_plan). */
typedef int (*ReconPlanFn)(Store *store, const XlateOptions *o, json_t **ret_config,
                           json_t **ret_failures, XlatePlan **ret_plan);

typedef struct ReconConfig {
    uint64_t debounce_ms;
    uint64_t max_wait_ms;
    XlateOptions xopts; /* strings borrowed for the reconciler's lifetime */
    ReconTranslateFn translate;
    /*
     * translate_plan: optional; translations of the store use it instead of @translate, and when
     * nothing but EndpointSlices changed since the current revision, only its targets are redone
     * (xlate_refresh_targets): pod churn costs a small fraction of a translation.
     */
    ReconPlanFn translate_plan;
    /*
     * threaded: translate a snapshot of the store (store_clone) in the libuv thread pool so the
     * loop keeps serving watches, pushes and probes meanwhile. @translate must then be pure
     * (xlate_run is). Translations never overlap: changes during one lead to one more.
     */
    bool threaded;
    /*
     * ns_plans (with threaded): after a full translation, a namespace plan (xlate_ns_build) is
     * made in the thread pool; while there is one, changes that stay within namespaces redo only
     * those namespaces. A revision merged that way is checked against a full translation once
     * the store has been quiet for a second; a mismatch publishes the full one and turns plans
     * off for good.
     */
    bool ns_plans;
    /*
     * verify_every_ms: at most one such check in this long (0: one each time the store is quiet).
     * A check is a full translation in the pool; a cluster changing every few seconds would pay
     * for one per change. A check covers every merge before it: it compares the latest.
     */
    uint64_t verify_every_ms;
    void *ud;
    /*
     * revision() - a translation finished. @changed: its hash differs from the last published
     * revision's (then @rev is new and becomes the current one); unchanged: @rev is the current
     * revision. @rev borrowed.
     */
    void (*revision)(void *ud, Revision *rev, bool changed);
    /* failure() - a translation failure not seen in the previous translation (borrowed entry). */
    void (*failure)(void *ud, json_t *failure);
} ReconConfig;

int recon_new(uv_loop_t *loop, Store *store, const ReconConfig *cfg, Recon **ret);
/* recon_mark_dirty() - the store changed: translate after the debounce. */
void recon_mark_dirty(Recon *r);
/* recon_flush() - translate now if dirty (e.g. before --once waits). */
void recon_flush(Recon *r);
/*
 * recon_set_current() - adopt @rev (borrowed) as the published revision, e.g. one restored from
 * --state-dir; later translations with the same hash are reported unchanged.
 */
void recon_set_current(Recon *r, Revision *rev);
/* recon_current() - the last published revision (borrowed) or NULL. */
Revision *recon_current(Recon *r);
/* recon_set_expressions() - switch the router flavor; a change re-translates. */
void recon_set_expressions(Recon *r, bool on);
const XlateOptions *recon_options(const Recon *r);
/*
 * recon_build() - translate @store (any store, e.g. a fallback store) with the reconciler's
 * options into a new revision (*ret, new reference). Does not publish.
 */
int recon_build(Recon *r, Store *store, int fallback, Revision **ret);
/* recon_ns_ready() - whether a namespace plan is ready for the next change (cfg.ns_plans). */
bool recon_ns_ready(const Recon *r);
/* recon_pending() - whether a translation is armed or running. */
bool recon_pending(const Recon *r);
/* recon_metrics() - translation and revision metrics (Prometheus text). */
void recon_metrics(Recon *r, Buf *out);
/* recon_close() - stop the timer; @done runs from the loop, then @r is freed. */
void recon_close(Recon *r, void (*done)(void *ud), void *ud);
