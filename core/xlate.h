/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Translator: Kubernetes objects in a Store to Kong declarative configuration, as KIC translates
 * them (../shared/reference/kic-translation.md). Pure function of the store and options: no I/O.
 */
#include <jansson.h>
#include <stdbool.h>

#include "store.h"
#include "util.h"

typedef struct XlateOptions {
    const char *ingress_class;  /* default "kong" */
    bool expressions;           /* router flavor expressions */
    bool fill_ids;              /* FillIDs gate, default on */
    bool custom_entity;         /* KongCustomEntity gate, default on */
    bool service_facade;        /* KongServiceFacade gate, default off */
    bool rewrite_uris;          /* RewriteURIs gate, default off */
    bool enable_drain_support;  /* --enable-drain-support */
    bool enterprise;            /* licenses */
    const char *kong_version;   /* "3.9.1" unless told */
    const char *cluster_domain; /* "" */
} XlateOptions;

/* xlate_options_default() - KIC's defaults. */
void xlate_options_default(XlateOptions *o);
bool xlate_options_equal(const XlateOptions *a, const XlateOptions *b);

/*
 * xlate_split_min_from_env() - TETHER_SPLIT_MIN, when set, replaces the number of routes,
 * upstreams or array elements from which translation shares a pass with a helper thread
 * (default 512; 0: never; 1: always). The output is the same either way; the test suite runs
 * the golden corpus with 1 to hold that.
 */
void xlate_split_min_from_env(void);

/*
 * xlate_feature_gates() - apply "Name=true,Other=false" (KIC's gate names). Unknown names and
 * bad values are an error with a message in @err.
 */
int xlate_feature_gates(XlateOptions *o, const char *spec, char *err, size_t errlen);

/*
 * xlate_kong_version() - set the Kong version translation is for ("3.9.1"; "3.11", "3.9.1.0" and
 * "3.11.0-rc1" as KIC reads them). -EINVAL with @err for what is not a version or is older than
 * KIC 3.5 works with (3.4.1): KIC does not start then.
 */
int xlate_kong_version(XlateOptions *o, const char *v, char *err, size_t errlen);

/*
 * xlate_run() - translate @store. *ret_config is the Kong declarative config (new reference;
 * entities in KIC's order), *ret_failures a JSON array (new reference) of
 * {"message": "...", "objects": [{"kind","namespace","name","uid","group","version"}]}:
 * one entry per translation failure. Failures never stop translation.
 * Return: 0 or a negative errno (only for allocation failures).
 */
int xlate_run(Store *store, const XlateOptions *o, json_t **ret_config, json_t **ret_failures);

/*
 * xlate_run_timed() - xlate_run() that also fills @times with the milliseconds each pass took
 * (xlate_phase_name() names them), for the benchmark.
 */
#define XLATE_PHASES 15
int xlate_run_timed(Store *store, const XlateOptions *o, json_t **ret_config, json_t **ret_failures,
                    double times[XLATE_PHASES]);
const char *xlate_phase_name(int i);

/*
 * Endpoint changes are the most frequent change in a cluster and only move targets. A plan
 * remembers where each upstream's targets came from, so such a change redoes the targets and
 * splices them into the previous canonical JSON instead of translating everything again.
 */
typedef struct XlatePlan XlatePlan;

/* xlate_run_plan() - xlate_run() that also returns a plan (*ret_plan may be NULL: no plan). */
int xlate_run_plan(Store *store, const XlateOptions *o, json_t **ret_config, json_t **ret_failures,
                   XlatePlan **ret_plan);
void xlate_plan_free(XlatePlan *plan); /* NULL-safe */

/* xlate_plan_reusable() - nothing but EndpointSlices changed in @store since @plan, same options. */
bool xlate_plan_reusable(const XlatePlan *plan, const Store *store, const XlateOptions *o);

/*
 * xlate_refresh_targets() - the configuration of @store after an EndpointSlice-only change: the
 * previous canonical @json (from xlate_canonical_json_plan() with @plan) with the targets of
 * every upstream whose Services' slices changed redone; those upstreams are read back from
 * their bytes. Returns the new canonical JSON and plan; the bytes equal what a full
 * translation and xlate_canonical_json() give. Negative errno on failure.
 */
extern const char *const xlate_refresh_kinds[]; /* the kinds it reads from @store */
int xlate_refresh_targets(Store *store, const XlatePlan *plan, const char *json, size_t len,
                          char **ret_json, size_t *ret_len, XlatePlan **ret_plan);

/*
 * xlate_canonical_json() - the canonical bytes of a config (sorted keys, compact): the same
 * config always gives the same bytes. malloc'd; *ret_len set.
 */
char *xlate_canonical_json(const json_t *config, size_t *ret_len);
/* The same, also noting in @plan (may be NULL) where each upstream's bytes are. */
char *xlate_canonical_json_plan(const json_t *config, size_t *ret_len, XlatePlan *plan);
/* The same, with the bytes' SHA-256 (lower-case hex) in @hash, taken while they are written. */
char *xlate_canonical_hashed(const json_t *config, size_t *ret_len, XlatePlan *plan,
                             char hash[65]);

/* xlate_to_json() - the canonical JSON indented by two spaces, for people. malloc'd. */
char *xlate_to_json(const json_t *config);

/* xlate_to_yaml() - the config as YAML, the text of KIC's golden files (go-yaml v2's). malloc'd.
 * xlate_to_yaml_for_kong() - the same, with what Kong's YAML 1.1 reader would type otherwise
 * written so it does not: "1.0e+21", quoted date-like text. */
char *xlate_to_yaml(const json_t *config);
char *xlate_to_yaml_for_kong(const json_t *config);

/*
 * Namespace plans (core/xlate_ns.c): when no object in @store reaches into another namespace,
 * the configuration can be redone namespace by namespace after a change.
 *
 * xlate_ns_build() - a plan for @store, made only when translating it namespace by namespace and
 * merging gives exactly @full (the canonical JSON of a full translation of @store with @o), which
 * the plan keeps a reference to. -EXDEV with *why (a static string) when the store does not
 * split by namespace.
 */
typedef struct NsPlan NsPlan;
int xlate_ns_build(Store *store, const XlateOptions *o, Bytes *full, NsPlan **ret,
                   const char **why);
/*
 * xlate_ns_refresh() - the configuration of @store after changes since @plan was made: the
 * namespaces that changed are translated again and merged with the others. Returns the
 * canonical JSON (a reference; the next plan holds another), the failures and the next plan;
 * -EXDEV with *why when a change needs a full
 * translation (a cluster-wide kind, a namespace that no longer splits, more changes than the
 * store remembers), other negative errno on failure.
 */
int xlate_ns_refresh(Store *store, const NsPlan *plan, const XlateOptions *o, Bytes **ret_bytes,
                     json_t **ret_failures, NsPlan **ret_plan, const char **why);
/*
 * xlate_ns_snapshot() - what a refresh of @plan reads: a clone of @store with the namespaces that
 * changed since @plan and the cluster-wide settings (a small copy). -EXDEV with *why as above.
 */
int xlate_ns_snapshot(Store *store, const NsPlan *plan, Store **ret, const char **why);
bool xlate_ns_plan_usable(const NsPlan *plan, const XlateOptions *o);
NsPlan *xlate_ns_plan_ref(NsPlan *plan);
void xlate_ns_plan_free(NsPlan *plan); /* drops a reference; NULL-safe, any thread */
