/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flag parsing for `tether run`. One table describes every flag (name, type, field, default,
 * help); defaults, CONTROLLER_* variables and the command line are applied in that order, so a
 * flag always wins over the environment. See config.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

typedef enum {
    T_STR,
    T_BOOL,
    T_LIST,
    T_DUR,    /* uint64_t milliseconds, Go duration syntax */
    T_SECS,   /* double seconds (KIC's *-seconds flags are floats) */
    T_INT,    /* long */
    T_ENUM,   /* string restricted to choices (pipe-separated in @choices) */
    T_IGNORE, /* accepted for KIC compatibility, takes a value, no effect */
} OptType;

typedef struct Opt {
    const char *name;
    OptType type;
    size_t off;
    const char *def; /* default as text (parsed like a flag value); NULL: none */
    const char *help;
    const char *choices; /* T_ENUM: "a|b|c" ("" allowed when listed as an empty choice) */
} Opt;

#define F(field) offsetof(RunConfig, field)

static const Opt opts[] = {
    /* general */
    {"log-level", T_ENUM, F(log_level), "info", "log level", "error|warn|info|debug|trace|warning"},
    {"log-format", T_ENUM, F(log_format), "json", "log format", "json|text"},
    {"sync-debounce", T_DUR, F(sync_debounce_ms), "100ms",
     "quiet time after a change before translating", NULL},
    {"sync-max-wait", T_DUR, F(sync_max_wait_ms), "1s",
     "longest delay of a translation while changes keep arriving", NULL},
    {"once", T_BOOL, F(once), "false",
     "exit once the first revision was handled by every sink (0 if all succeeded)", NULL},
    {"state-dir", T_STR, F(state_dir), NULL, "keep the last accepted configuration here", NULL},
    {"kong-config-out", T_STR, F(kong_config_out), NULL,
     "write each configuration to this declarative file (.json, .yaml or .yml)", NULL},
    {"manifests", T_LIST, F(manifests), NULL,
     "source: manifest files or folders, watched for changes (instead of a cluster)", NULL},
    {"router-flavor", T_ENUM, F(router_flavor), NULL,
     "translate for this router flavor instead of the one the gateways report",
     "traditional|traditional_compatible|expressions"},
    {"ingress-class", T_STR, F(ingress_class), "kong", "ingress class to serve", NULL},
    {"feature-gates", T_LIST, F(feature_gates), NULL, "feature gates, Name=true|false", NULL},
    {"enable-drain-support", T_BOOL, F(enable_drain_support), "false",
     "keep terminating endpoints as weight-0 targets", NULL},
    {"cluster-domain", T_STR, F(cluster_domain), NULL, "cluster DNS domain", NULL},
    {"kong-version", T_STR, F(kong_version), NULL,
     "Kong version to translate for when no gateway reported one", NULL},

    /* endpoints */
    {"health-probe-bind-address", T_STR, F(health_addr), ":10254",
     "/healthz and /readyz (\"0\" disables)", NULL},
    {"metrics-bind-address", T_STR, F(metrics_addr), ":10255",
     "Prometheus /metrics (\"0\" disables)", NULL},
    {"diagnostics-bind-address", T_STR, F(diag_addr), "127.0.0.1:10256",
     "/debug/config, /debug/failures, /debug/sinks (\"0\" disables)", NULL},

    /* Kubernetes */
    {"kubeconfig", T_STR, F(kubeconfig), NULL, "kubeconfig file (else in-cluster)", NULL},
    {"apiserver-host", T_STR, F(apiserver_host), NULL, "Kubernetes API server URL override", NULL},
    {"watch-namespace", T_LIST, F(watch_namespace), NULL, "namespaces to watch (default all)",
     NULL},
    {"election-id", T_STR, F(election_id), "5b374a9e.konghq.com", "leader election Lease name",
     NULL},
    {"election-namespace", T_STR, F(election_namespace), NULL,
     "leader election Lease namespace (default POD_NAMESPACE)", NULL},
    {"force-leader-election", T_ENUM, F(force_leader_election), "",
     "override the leader election decision", "|enabled|disabled"},
    {"publish-service", T_STR, F(publish_service), NULL,
     "NS/NAME of the proxy Service for Ingress status", NULL},
    {"update-status", T_BOOL, F(update_status), "true", "write Ingress status", NULL},
    {"emit-kubernetes-events", T_BOOL, F(emit_events), "true",
     "emit Events for translation failures", NULL},

    /* data plane */
    {"kong-admin-url", T_LIST, F(kong_admin_url), NULL,
     "Admin API URLs (default http://localhost:8001 when no other sink is set)", NULL},
    {"kong-admin-svc", T_STR, F(kong_admin_svc), NULL,
     "NS/NAME of the Admin API Service (Gateway Discovery)", NULL},
    {"kong-admin-svc-port-names", T_LIST, F(kong_admin_svc_port_names), "admin-tls,kong-admin-tls",
     "EndpointSlice port names of the Admin API", NULL},
    {"kong-admin-ca-cert", T_STR, F(kong_admin_ca_cert), NULL, "PEM CA for the Admin API", NULL},
    {"kong-admin-ca-cert-file", T_STR, F(kong_admin_ca_cert_file), NULL,
     "PEM CA file for the Admin API", NULL},
    {"kong-admin-tls-client-cert", T_STR, F(kong_admin_client_cert), NULL,
     "PEM client certificate for the Admin API", NULL},
    {"kong-admin-tls-client-cert-file", T_STR, F(kong_admin_client_cert_file), NULL,
     "client certificate file for the Admin API", NULL},
    {"kong-admin-tls-client-key", T_STR, F(kong_admin_client_key), NULL,
     "PEM client key for the Admin API", NULL},
    {"kong-admin-tls-client-key-file", T_STR, F(kong_admin_client_key_file), NULL,
     "client key file for the Admin API", NULL},
    {"kong-admin-tls-server-name", T_STR, F(kong_admin_tls_server_name), NULL,
     "TLS server name to verify", NULL},
    {"kong-admin-tls-skip-verify", T_BOOL, F(kong_admin_tls_skip_verify), "false",
     "do not verify the Admin API certificate (insecure)", NULL},
    {"kong-admin-token", T_STR, F(kong_admin_token), NULL, "Kong-Admin-Token header value", NULL},
    {"kong-admin-token-file", T_STR, F(kong_admin_token_file), NULL,
     "file holding the Kong-Admin-Token", NULL},
    {"kong-admin-header", T_LIST, F(kong_admin_header), NULL, "extra headers, key:value", NULL},
    {"proxy-timeout-seconds", T_SECS, F(proxy_timeout_s), "30", "timeout of one push", NULL},
    {"gateway-discovery-readiness-check-interval", T_DUR, F(readiness_interval_ms), "10s",
     "how often gateways are probed", NULL},
    {"gateway-discovery-readiness-check-timeout", T_DUR, F(readiness_timeout_ms), "5s",
     "timeout of one probe", NULL},

    /* Konnect */
    {"konnect-sync-enabled", T_BOOL, F(konnect_sync_enabled), "false",
     "keep a Konnect control plane in sync", NULL},
    {"konnect-address", T_STR, F(konnect_address), "https://us.kic.api.konghq.com",
     "Konnect API address", NULL},
    {"konnect-control-plane-id", T_STR, F(konnect_control_plane_id), NULL,
     "Konnect control plane ID", NULL},
    {"konnect-runtime-group-id", T_STR, F(konnect_control_plane_id), NULL,
     "deprecated alias of --konnect-control-plane-id", NULL},
    {"konnect-tls-client-cert", T_STR, F(konnect_client_cert), NULL,
     "PEM client certificate for Konnect", NULL},
    {"konnect-tls-client-cert-file", T_STR, F(konnect_client_cert_file), NULL,
     "client certificate file for Konnect", NULL},
    {"konnect-tls-client-key", T_STR, F(konnect_client_key), NULL, "PEM client key for Konnect",
     NULL},
    {"konnect-tls-client-key-file", T_STR, F(konnect_client_key_file), NULL,
     "client key file for Konnect", NULL},
    {"konnect-ca-cert-file", T_STR, F(konnect_ca_cert_file), NULL,
     "PEM CA file for Konnect (private roots)", NULL},
    {"konnect-upload-config-period", T_DUR, F(konnect_upload_period_ms), "30s",
     "period of full Konnect re-syncs", NULL},
    {"konnect-config-sync-concurrency", T_INT, F(konnect_sync_concurrency), "4",
     "Konnect requests in flight", NULL},
    {"konnect-refresh-node-period", T_DUR, F(konnect_refresh_node_ms), "60s",
     "period of Konnect node reports", NULL},
    {"konnect-disable-consumers-sync", T_BOOL, F(konnect_disable_consumers_sync), "false",
     "do not send consumers to Konnect", NULL},

    /* KIC flags accepted so existing deployments start; tether has no use for them. */
    {"proxy-sync-seconds", T_IGNORE, 0, NULL, "ignored: tether translates on change", NULL},
    {"init-cache-sync-duration", T_IGNORE, 0, NULL, "ignored", NULL},
    {"kong-admin-init-retries", T_IGNORE, 0, NULL, "ignored: gateways are retried forever", NULL},
    {"kong-admin-init-retry-delay", T_IGNORE, 0, NULL, "ignored", NULL},
    {"gateway-discovery-dns-strategy", T_IGNORE, 0, NULL, "ignored (no-op in KIC too)", NULL},
};

enum { N_OPTS = sizeof(opts) / sizeof(opts[0]) };

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

size_t cfg_list_len(char *const *list)
{
    size_t n = 0;
    while (list && list[n])
        n++;
    return n;
}

static void list_free(char **list)
{
    for (size_t i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

/* Append every non-empty comma-separated item of @s to *@list. */
static int list_add(char ***list, const char *s)
{
    size_t n = cfg_list_len(*list);
    const char *p = s;
    while (1) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (len) {
            char **nl = realloc(*list, (n + 2) * sizeof(char *));
            if (!nl)
                return -ENOMEM;
            *list = nl;
            nl[n] = strndup(p, len);
            if (!nl[n])
                return -ENOMEM;
            nl[++n] = NULL;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

int cfg_parse_bool(const char *s, bool *ret)
{
    static const char *const t[] = {"true", "1", "yes", "on", "t"};
    static const char *const f[] = {"false", "0", "no", "off", "f"};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (!strcasecmp(s, t[i])) {
            *ret = true;
            return 0;
        }
        if (!strcasecmp(s, f[i])) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

int cfg_parse_duration_ms(const char *s, uint64_t *ret_ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1},
                 {"s", 1000},  {"m", 60000}, {"h", 3600000}};
    double total = 0;
    const char *p = s;

    if (!s || !*s)
        return -EINVAL;
    if (!strcmp(s, "0")) {
        *ret_ms = 0;
        return 0;
    }
    while (*p) {
        char *end;
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -EINVAL;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0)
            return -EINVAL;
        p = end;
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t l = strlen(units[i].unit);
            if (!strncmp(p, units[i].unit, l) && l > best_len) {
                best = i;
                best_len = l;
            }
        }
        if (!best_len)
            return -EINVAL; /* a unit is required, as in Go */
        total += v * units[best].ms;
        p += best_len;
    }
    if (total > 1e15)
        return -ERANGE;
    *ret_ms = (uint64_t)llround(total);
    return 0;
}

static int in_choices(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    const char *p = choices;
    while (1) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == vl && !strncmp(p, v, l))
            return 1;
        if (!e)
            return 0;
        p = e + 1;
    }
}

/*
 * Set @o from text @v. @from names the origin for messages ("flag" or the variable name).
 * @replace_list: the first command-line use of a list flag replaces what the environment set.
 */
static int set_opt(RunConfig *cfg, const Opt *o, const char *v, const char *from, bool replace_list,
                   char *err, size_t errlen)
{
    char *base = (char *)cfg + o->off;
    switch (o->type) {
    case T_STR:
    case T_ENUM: {
        if (o->type == T_ENUM && !in_choices(o->choices, v)) {
            const char *c = o->choices[0] == '|' ? o->choices + 1 : o->choices;
            fmt_err(err, errlen, "%s --%s: invalid value \"%s\" (one of: %s)", from, o->name, v, c);
            return -EINVAL;
        }
        char *d = strdup(v);
        if (!d)
            return -ENOMEM;
        free(*(char **)base);
        *(char **)base = d;
        return 0;
    }
    case T_BOOL:
        if (cfg_parse_bool(v, (bool *)base) < 0) {
            fmt_err(err, errlen, "%s --%s: invalid boolean \"%s\" (true or false)", from, o->name,
                    v);
            return -EINVAL;
        }
        return 0;
    case T_LIST:
        if (replace_list) {
            list_free(*(char ***)base);
            *(char ***)base = NULL;
        }
        return list_add((char ***)base, v);
    case T_DUR:
        if (cfg_parse_duration_ms(v, (uint64_t *)base) < 0) {
            fmt_err(err, errlen, "%s --%s: invalid duration \"%s\" (e.g. 100ms, 5s, 1m)", from,
                    o->name, v);
            return -EINVAL;
        }
        return 0;
    case T_SECS: {
        char *end;
        double d = strtod(v, &end);
        if (!*v || *end || !isfinite(d) || d < 0) {
            fmt_err(err, errlen, "%s --%s: invalid number of seconds \"%s\"", from, o->name, v);
            return -EINVAL;
        }
        *(double *)base = d;
        return 0;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long l = strtol(v, &end, 10);
        if (!*v || *end || errno || l < 0) {
            fmt_err(err, errlen, "%s --%s: invalid integer \"%s\"", from, o->name, v);
            return -EINVAL;
        }
        *(long *)base = l;
        return 0;
    }
    case T_IGNORE:
        log_event(LOG_DEBUG, "config", "flag has no effect in tether", "{s:s}", "flag", o->name);
        return 0;
    }
    return -EINVAL;
}

static const Opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

void cfg_usage(FILE *out)
{
    fputs("Usage: tether run [flags]\n\n"
          "The controller: sources (--manifests or a Kubernetes cluster) feed a store; every\n"
          "change is translated into a Kong configuration and handed to the sinks (Admin API,\n"
          "--kong-config-out file, Konnect). Every flag can also be set as CONTROLLER_<FLAG>\n"
          "(upper case, '-' as '_'); flags win. Lists are comma-separated and repeatable.\n\n"
          "Flags:\n",
          out);
    for (size_t i = 0; i < N_OPTS; i++) {
        const Opt *o = &opts[i];
        static const char *const tn[] = {"string",  "[=bool]", "list",   "duration",
                                         "seconds", "int",     "string", "value"};
        fprintf(out, "  --%s %s\n        %s", o->name, tn[o->type], o->help);
        if (o->type == T_ENUM)
            fprintf(out, " (%s)", o->choices[0] == '|' ? o->choices + 1 : o->choices);
        if (o->def && *o->def)
            fprintf(out, " [default %s]", o->def);
        fputc('\n', out);
    }
}

static char *join_list(char *const *list, const char *sep)
{
    Buf b = BUF_INIT;
    for (size_t i = 0; list && list[i]; i++) {
        if ((i && buf_puts(&b, sep) < 0) || buf_puts(&b, list[i]) < 0) {
            buf_deinit(&b);
            return NULL;
        }
    }
    if (!b.data && buf_reserve(&b, 1) < 0)
        return NULL;
    return buf_take(&b);
}

static int valid_bind(const char *a)
{
    /* ":PORT", "HOST:PORT", "[V6]:PORT", or disabled ("", "0", "off") */
    if (!*a || !strcmp(a, "0") || !strcmp(a, "off"))
        return 1;
    const char *c = strrchr(a, ':');
    if (!c || !c[1])
        return 0;
    char *end;
    long p = strtol(c + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return 0;
    if (a[0] == '[' && (c == a || c[-1] != ']'))
        return 0;
    return 1;
}

static int validate(RunConfig *c, char *err, size_t errlen)
{
    if (c->kong_admin_url && c->kong_admin_svc) {
        fmt_err(err, errlen, "can't set both --kong-admin-svc and --kong-admin-url");
        return -EINVAL;
    }
    if (c->kong_admin_svc && !strchr(c->kong_admin_svc, '/')) {
        fmt_err(err, errlen, "--kong-admin-svc: expected NAMESPACE/NAME, got \"%s\"",
                c->kong_admin_svc);
        return -EINVAL;
    }
    if (c->publish_service && !strchr(c->publish_service, '/')) {
        fmt_err(err, errlen, "--publish-service: expected NAMESPACE/NAME, got \"%s\"",
                c->publish_service);
        return -EINVAL;
    }
    for (size_t i = 0; c->kong_admin_url && c->kong_admin_url[i]; i++) {
        const char *u = c->kong_admin_url[i];
        if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) {
            fmt_err(err, errlen, "--kong-admin-url: \"%s\" is not an http:// or https:// URL", u);
            return -EINVAL;
        }
    }
    for (size_t i = 0; c->kong_admin_header && c->kong_admin_header[i]; i++) {
        if (!strchr(c->kong_admin_header[i], ':')) {
            fmt_err(err, errlen, "--kong-admin-header: \"%s\" is not key:value",
                    c->kong_admin_header[i]);
            return -EINVAL;
        }
    }
    if ((c->kong_admin_ca_cert && c->kong_admin_ca_cert_file)) {
        fmt_err(err, errlen, "--kong-admin-ca-cert and --kong-admin-ca-cert-file are exclusive");
        return -EINVAL;
    }
    if (c->konnect_sync_enabled) {
        if (!c->konnect_address || !*c->konnect_address) {
            fmt_err(err, errlen, "--konnect-sync-enabled needs --konnect-address");
            return -EINVAL;
        }
        if (!c->konnect_control_plane_id || !*c->konnect_control_plane_id) {
            fmt_err(err, errlen, "--konnect-sync-enabled needs --konnect-control-plane-id");
            return -EINVAL;
        }
        if (!c->konnect_client_cert && !c->konnect_client_cert_file) {
            fmt_err(err, errlen,
                    "--konnect-sync-enabled needs --konnect-tls-client-cert or "
                    "--konnect-tls-client-cert-file");
            return -EINVAL;
        }
        if (!c->konnect_client_key && !c->konnect_client_key_file) {
            fmt_err(err, errlen,
                    "--konnect-sync-enabled needs --konnect-tls-client-key or "
                    "--konnect-tls-client-key-file");
            return -EINVAL;
        }
    }
    if (c->konnect_sync_concurrency < 1 || c->konnect_sync_concurrency > 256) {
        fmt_err(err, errlen, "--konnect-config-sync-concurrency: must be between 1 and 256");
        return -EINVAL;
    }
    if (c->readiness_timeout_ms >= c->readiness_interval_ms) {
        fmt_err(err, errlen,
                "--gateway-discovery-readiness-check-timeout must be shorter than "
                "--gateway-discovery-readiness-check-interval");
        return -EINVAL;
    }
    if (c->sync_max_wait_ms < c->sync_debounce_ms)
        c->sync_max_wait_ms = c->sync_debounce_ms;
    const struct {
        const char *flag, *v;
    } binds[] = {{"health-probe-bind-address", c->health_addr},
                 {"metrics-bind-address", c->metrics_addr},
                 {"diagnostics-bind-address", c->diag_addr}};
    for (size_t i = 0; i < 3; i++) {
        if (!valid_bind(binds[i].v)) {
            fmt_err(err, errlen, "--%s: invalid address \"%s\" (:PORT, HOST:PORT or [V6]:PORT)",
                    binds[i].flag, binds[i].v);
            return -EINVAL;
        }
    }
    for (size_t i = 0; c->manifests && c->manifests[i]; i++) {
        if (access(c->manifests[i], R_OK) < 0) {
            fmt_err(err, errlen, "--manifests: cannot read \"%s\": %s", c->manifests[i],
                    strerror(errno));
            return -EINVAL;
        }
    }
    return 0;
}

static char *make_identity(void)
{
    const char *ns = getenv("POD_NAMESPACE"), *pod = getenv("POD_NAME");
    if (ns && *ns && pod && *pod)
        return util_strdup_printf("%s/%s", ns, pod);
    char host[256] = "";
    (void)gethostname(host, sizeof(host) - 1);
    return util_strdup_printf("%s_%ld", *host ? host : "tether", (long)getpid());
}

int cfg_parse(RunConfig *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
    int r;
    bool seen[N_OPTS] = {0};

    memset(cfg, 0, sizeof(*cfg));
    if (err && errlen)
        err[0] = 0;
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].def && opts[i].type != T_IGNORE) {
            r = set_opt(cfg, &opts[i], opts[i].def, "default", false, err, errlen);
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < N_OPTS; i++) {
        char var[128] = "CONTROLLER_";
        size_t l = strlen(var);
        for (const char *p = opts[i].name; *p && l + 1 < sizeof(var); p++)
            var[l++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        var[l] = 0;
        const char *v = getenv(var);
        if (!v)
            continue;
        r = set_opt(cfg, &opts[i], v, var, true, err, errlen);
        if (r < 0)
            return r;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cfg_usage(out);
            return CFG_HELP;
        }
        if (strncmp(a, "--", 2) || !a[2]) {
            fmt_err(err, errlen, "unexpected argument \"%s\" (flags start with --)", a);
            return -EINVAL;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const Opt *o = find_opt(name, nl);
        if (!o) {
            fmt_err(err, errlen, "unknown flag --%.*s (see tether run --help)", (int)nl, name);
            return -EINVAL;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && o->type == T_BOOL) {
            /* bare boolean, or "--flag true|false" as a separate word */
            bool dummy;
            if (i + 1 < argc && cfg_parse_bool(argv[i + 1], &dummy) == 0 &&
                strncmp(argv[i + 1], "--", 2))
                v = argv[++i];
            else
                v = "true";
        }
        if (!v) {
            if (i + 1 >= argc) {
                fmt_err(err, errlen, "flag --%s needs a value", o->name);
                return -EINVAL;
            }
            v = argv[++i];
        }
        size_t idx = (size_t)(o - opts);
        r = set_opt(cfg, o, v, "flag", !seen[idx], err, errlen);
        if (r < 0)
            return r;
        seen[idx] = true;
    }
    r = validate(cfg, err, errlen);
    if (r < 0)
        return r;
    if (cfg->feature_gates && !(cfg->feature_gates_joined = join_list(cfg->feature_gates, ",")))
        return -ENOMEM;
    if (!(cfg->port_names_joined = join_list(cfg->kong_admin_svc_port_names, ",")))
        return -ENOMEM;
    if (!(cfg->identity = make_identity()))
        return -ENOMEM;
    return CFG_OK;
}

void cfg_free(RunConfig *cfg)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        char *base = (char *)cfg + opts[i].off;
        if (opts[i].type == T_IGNORE)
            continue;
        bool alias = false; /* an alias shares its field with an earlier flag */
        for (size_t j = 0; j < i; j++)
            alias = alias || (opts[j].off == opts[i].off && opts[j].type != T_IGNORE);
        if (alias)
            continue;
        if (opts[i].type == T_STR || opts[i].type == T_ENUM) {
            free(*(char **)base);
            *(char **)base = NULL;
        } else if (opts[i].type == T_LIST) {
            list_free(*(char ***)base);
            *(char ***)base = NULL;
        }
    }
    free(cfg->feature_gates_joined);
    free(cfg->port_names_joined);
    free(cfg->identity);
    cfg->feature_gates_joined = cfg->port_names_joined = cfg->identity = NULL;
}

int cfg_xlate_options(const RunConfig *cfg, XlateOptions *o, char *err, size_t errlen)
{
    xlate_options_default(o);
    o->ingress_class = cfg->ingress_class;
    o->enable_drain_support = cfg->enable_drain_support;
    if (cfg->router_flavor)
        o->expressions = !strcmp(cfg->router_flavor, "expressions");
    if (cfg->cluster_domain)
        o->cluster_domain = cfg->cluster_domain;
    if (cfg->kong_version) {
        char e[256] = "";
        if (xlate_kong_version(o, cfg->kong_version, e, sizeof(e)) < 0) {
            fmt_err(err, errlen, "--kong-version: %s", e);
            return -EINVAL;
        }
    }
    if (cfg->feature_gates_joined) {
        char e[256] = "";
        int r = xlate_feature_gates(o, cfg->feature_gates_joined, e, sizeof(e));
        if (r < 0) {
            fmt_err(err, errlen, "--feature-gates: %s", e);
            return -EINVAL;
        }
    }
    return 0;
}

void cfg_k8s_config(const RunConfig *cfg, bool leader_election, K8sConfig *k)
{
    memset(k, 0, sizeof(*k));
    k->kubeconfig = cfg->kubeconfig;
    k->apiserver_host = cfg->apiserver_host;
    k->watch_namespaces = (const char *const *)cfg->watch_namespace;
    k->ingress_class = cfg->ingress_class;
    k->election_id = cfg->election_id;
    k->election_namespace = cfg->election_namespace;
    if (!k->election_namespace || !*k->election_namespace)
        k->election_namespace = getenv("POD_NAMESPACE");
    k->identity = cfg->identity;
    k->leader_election = leader_election;
    k->publish_service = cfg->publish_service;
    k->update_status = cfg->update_status;
}
