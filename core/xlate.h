/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Translator: Kubernetes objects in a Store to Kong declarative configuration, as KIC translates
 * them (../shared/reference/kic-translation.md). Pure function of the store and options: no I/O.
 */
#include <jansson.h>
#include <stdbool.h>

#include "store.h"

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

/*
 * xlate_feature_gates() - apply "Name=true,Other=false" (KIC's gate names). Unknown names and
 * bad values are an error with a message in @err.
 */
int xlate_feature_gates(XlateOptions *o, const char *spec, char *err, size_t errlen);

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
 * xlate_canonical_json() - the canonical bytes of a config (sorted keys, compact): the same
 * config always gives the same bytes. malloc'd; *ret_len set.
 */
char *xlate_canonical_json(const json_t *config, size_t *ret_len);

/* xlate_to_yaml() - the config as YAML (keys sorted, PEM as literal blocks). malloc'd. */
char *xlate_to_yaml(const json_t *config);
