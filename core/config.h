/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Flags of `tether run`: KIC's names and defaults, each also settable as a CONTROLLER_<FLAG>
 * environment variable (upper case, '-' to '_'); a flag on the command line wins over the
 * environment. `--flag value` and `--flag=value`; booleans also bare `--flag`; lists are
 * comma-separated and repeatable. The parsed RunConfig then fills the module configurations
 * (DpConfig, KonnectConfig, K8sConfig, XlateOptions) whose strings it keeps alive.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "k8s.h"
#include "xlate.h"

typedef struct RunConfig {
    /* general */
    char *log_level;           /* --log-level info */
    char *log_format;          /* --log-format json|text */
    uint64_t sync_debounce_ms; /* --sync-debounce 100ms */
    uint64_t sync_max_wait_ms; /* --sync-max-wait 1s: bound on debounce under constant change */
    bool once;                 /* --once */
    char *state_dir;           /* --state-dir */
    char *kong_config_out;     /* --kong-config-out */
    char **manifests;          /* --manifests (list) */
    char *router_flavor;       /* --router-flavor, NULL: ask the gateways */
    char *ingress_class;       /* --ingress-class kong */
    char **feature_gates;      /* --feature-gates (list of Name=bool) */
    bool enable_drain_support; /* --enable-drain-support */
    char *cluster_domain;      /* --cluster-domain */
    char *kong_version;        /* --kong-version: assumed version when no gateway reports one */

    /* endpoints: "" or "0" or "off" disables */
    char *health_addr;  /* --health-probe-bind-address :10254 */
    char *metrics_addr; /* --metrics-bind-address :10255 */
    char *diag_addr;    /* --diagnostics-bind-address 127.0.0.1:10256 */

    /* Kubernetes */
    char *kubeconfig;
    char *apiserver_host;
    char **watch_namespace;
    char *election_id;
    char *election_namespace;
    char *force_leader_election; /* "", "enabled", "disabled" */
    char *publish_service;
    bool update_status;
    bool emit_events; /* --emit-kubernetes-events */

    /* data plane */
    char **kong_admin_url;
    char *kong_admin_svc;
    char **kong_admin_svc_port_names;
    char *kong_admin_ca_cert, *kong_admin_ca_cert_file;
    char *kong_admin_client_cert, *kong_admin_client_cert_file;
    char *kong_admin_client_key, *kong_admin_client_key_file;
    char *kong_admin_tls_server_name;
    bool kong_admin_tls_skip_verify;
    char *kong_admin_token, *kong_admin_token_file;
    char **kong_admin_header;
    double proxy_timeout_s;
    uint64_t readiness_interval_ms;
    uint64_t readiness_timeout_ms;

    /* Konnect */
    bool konnect_sync_enabled;
    char *konnect_address;
    char *konnect_control_plane_id;
    char *konnect_client_cert, *konnect_client_cert_file;
    char *konnect_client_key, *konnect_client_key_file;
    char *konnect_ca_cert_file;
    uint64_t konnect_upload_period_ms;
    long konnect_sync_concurrency;
    uint64_t konnect_refresh_node_ms;
    bool konnect_disable_consumers_sync;

    /* derived by cfg_parse */
    char *feature_gates_joined; /* "A=true,B=false" or NULL */
    char *port_names_joined;    /* "admin-tls,kong-admin-tls" */
    char *identity;             /* POD_NAMESPACE/POD_NAME or host_pid */
} RunConfig;

enum {
    CFG_OK = 0,
    CFG_HELP = 1, /* --help was printed: exit 0 */
};

/*
 * cfg_parse() - defaults, then CONTROLLER_* from @envp-style getenv, then @argv (argv[0] is the
 * command name and skipped). Validates values and combinations.
 * Return: CFG_OK, CFG_HELP (usage printed to @out) or -EINVAL with a message naming the flag
 * in @err. @cfg must be freed with cfg_free() in every case.
 */
int cfg_parse(RunConfig *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen);
void cfg_free(RunConfig *cfg);
/* cfg_usage() - the flag list with defaults. */
void cfg_usage(FILE *out);

/* cfg_parse_duration_ms() - Go duration ("100ms", "1m30s", "2.5s", "0") in milliseconds. */
int cfg_parse_duration_ms(const char *s, uint64_t *ret_ms);
/* cfg_parse_bool() - true/false/1/0/yes/no/on/off (case-insensitive); -EINVAL otherwise. */
int cfg_parse_bool(const char *s, bool *ret);

/* cfg_list_len() - number of entries of a NULL-terminated list (0 for NULL). */
size_t cfg_list_len(char *const *list);

/* cfg_xlate_options() - translator options from the flags (strings borrowed from @cfg). */
int cfg_xlate_options(const RunConfig *cfg, XlateOptions *o, char *err, size_t errlen);
/* cfg_k8s_config() - K8sConfig from the flags; @leader_election decided by the caller. */
void cfg_k8s_config(const RunConfig *cfg, bool leader_election, K8sConfig *k);
