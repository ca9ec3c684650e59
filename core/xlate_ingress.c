/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ingress (networking.k8s.io/v1) to Kong services and routes: KIC's ingress subtranslator.
 * Paths that share Ingress, host, backend and port become one route; routes of the same
 * Service+port share one Kong service. Both router flavors; the default backend; TLS claims.
 */
#include "xlate_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FACADE_GROUP "incubator.ingress-controller.konghq.com"

/* One (ingress, host, backend, port) group of paths: becomes one route. */
typedef struct Meta {
    json_t *ing;      /* the first Ingress of the group: its name, tags, host, backend */
    json_t *parent;   /* the last (KIC's parentIngress): annotations, rewrite, plugins */
    const char *host;
    const char *backend; /* Service or facade name, borrowed from the Ingress */
    bool facade;
    PortDef port;
    Buf paths;        /* each path: its type's initial (E, P or I), the path, a NUL */
    const char *rewrite; /* the parent's konghq.com/rewrite, read while it is in cache */
    char *route_name; /* malloc'd: names are long, and there is a Meta a route */
    char *svc_name;
} Meta;

static void meta_clear(Meta *m)
{
    buf_deinit(&m->paths);
    free(m->route_name);
    free(m->svc_name);
}

/* A path of @m's group at *@pos (0 first), moving on; false after the last. */
static bool meta_path(const Meta *m, size_t *pos, const char **path, const char **type)
{
    if (*pos >= m->paths.len)
        return false;
    const char *p = m->paths.data + *pos;
    *type = p[0] == 'E'   ? "Exact"
            : p[0] == 'P' ? "Prefix"
            : p[0] == 'I' ? "ImplementationSpecific"
                          : "";
    *path = p + 1;
    *pos += strlen(p + 1) + 2;
    return true;
}

static void flatten_slashes(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < n; i++) {
        if (in[i] == '/' && o > 0 && out[o - 1] == '/')
            continue;
        out[o++] = in[i];
    }
    out[o] = 0;
}

static bool valid_plain_path(const char *p)
{
    for (; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-_~/%", *p))
            return false;
    return true;
}

/*
 * Append @path to @paths as KIC's MaybePrependRegexPrefix for traditional routes leaves it: the
 * regex prefix, where the path starts with it, becomes "~"; with the legacy heuristic, a path that
 * Kong 2 took for a regex gets a "~" unless it has one.
 */
static void put_trad_path(json_t *paths, const char *path, const char *prefix, bool legacy)
{
    size_t pl = strlen(prefix);
    const char *rest = path;
    if (!strncmp(path, prefix, pl))
        rest = path + pl;
    else if (!legacy || valid_plain_path(path) || path[0] == '~')
        rest = NULL;
    if (!rest) {
        json_array_append_new(paths, json_string(path));
        return;
    }
    char *p = util_strdup_printf("~%s", rest);
    json_array_append_new(paths, p ? json_string(p) : NULL);
    free(p);
}

static void trim_slashes(const char *in, bool left_only, char *out, size_t n)
{
    while (*in == '/')
        in++;
    xjoin(out, n, in, NULL);
    if (!left_only) {
        size_t l = strlen(out);
        while (l && out[l - 1] == '/')
            out[--l] = 0;
    }
}

/* A path of another type than KIC knows (only a missing one is ImplementationSpecific) gives
 * no Kong path, as KIC's PathsFromIngressPaths gives none. */
static void add_trad_paths(json_t *paths, const char *path, const char *type, const char *prefix,
                           bool legacy)
{
    bool prefix_type = !strcmp(type, "Prefix");
    if (prefix_type || !strcmp(type, "Exact")) {
        size_t n = strlen(path) + 1; /* paths have no length limit */
        char *base = malloc(n), *p = malloc(n + 4);
        if (base && p) {
            trim_slashes(path, !prefix_type, base, n);
            if (prefix_type && !*base) {
                put_trad_path(paths, "/", prefix, legacy);
            } else {
                if (prefix_type) { /* "/base/" and its regex "~/base$" */
                    xjoin(p, n + 4, "/", base, "/", NULL);
                    put_trad_path(paths, p, prefix, legacy);
                }
                xjoin(p, n + 4, "~/", base, "$", NULL);
                put_trad_path(paths, p, prefix, legacy);
            }
        }
        free(base);
        free(p);
        return;
    }
    if (*type)
        put_trad_path(paths, *path ? path : "/", prefix, legacy);
}

static char *pred(const char *field, const char *op, const char *value)
{
    char *q = xexpr_quote(value);
    char *s = util_strdup_printf("%s %s %s", field, op, q);
    free(q);
    return s;
}

static void append_take(json_t *arr, char *s)
{
    if (s && *s)
        json_array_append_new(arr, json_string(s));
    free(s);
}

/* One path's matcher, NULL for a path type KIC does not know; *len and *regex feed the priority. */
static char *path_matcher(const char *path, const char *type, const char *prefix, long *len,
                          bool *regex)
{
    char small[256], *r = NULL;
    size_t n = strlen(path) + 1; /* paths have no length limit */
    char *base = n <= sizeof(small) ? small : malloc(n);
    size_t pl = strlen(prefix);
    if (!base || !*type) {
        /* nothing */
    } else if (!strcmp(type, "Prefix")) {
        trim_slashes(path, false, base, n);
        *regex = true;
        *len = *base ? 2 + (long)strlen(base) : 1;
        if (!*base) {
            r = pred("http.path", "^=", "/");
        } else {
            char *exact = util_strdup_printf("/%s", base), *pre = util_strdup_printf("/%s/", base);
            char *a = pred("http.path", "==", exact), *b = pred("http.path", "^=", pre);
            r = util_strdup_printf("(%s) || (%s)", a, b);
            free(exact);
            free(pre);
            free(a);
            free(b);
        }
    } else if (!strcmp(type, "Exact")) {
        trim_slashes(path, true, base, n);
        *regex = true;
        *len = 1 + (long)strlen(base);
        char *rel = util_strdup_printf("/%s", base);
        r = pred("http.path", "==", rel);
        free(rel);
    } else if (!*path) {
        *len = 1;
        r = pred("http.path", "^=", "/");
    } else if (pl && !strncmp(path, prefix, pl)) {
        const char *re = path + pl;
        *regex = true;
        *len = (long)strlen(re);
        char *rx = re[0] == '^' ? strdup(re) : util_strdup_printf("^%s", *re ? re : "/");
        r = pred("http.path", "~", rx);
        free(rx);
    } else {
        *len = (long)strlen(path);
        r = pred("http.path", "^=", path);
    }
    if (base != small)
        free(base);
    return r;
}

/*
 * The regex prefix of @ing's paths: konghq.com/regex-prefix, or "/~". Expression routes take an
 * empty annotation as absent; traditional routes take it as given, as KIC does (an empty prefix
 * is a prefix of every path, so every path becomes a regex).
 */
static const char *regex_prefix(const json_t *ing, bool expressions)
{
    const char *p = obj_annotation(ing, ANN "regex-prefix");
    return p && (*p || !expressions) ? p : "/~";
}

/* KIC's host matcher: "*.example.com" as a suffix match, anything else exact. */
static char *host_pred(const char *h)
{
    return h[0] == '*' ? pred("http.host", "=^", h + 1) : pred("http.host", "==", h);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The fields every Ingress route starts with (KIC's defaults). Groups are keyed by names with the
 * host as written; the route's name has a wildcard's '*' as '_' (so "*.a" and "_.a" are two
 * groups of one name, as in KIC).
 */
static json_t *route_base(const char *name, const json_t *ing)
{
    json_t *r = json_object();
    const char *star = strchr(name, '*');
    char *shown = star ? strdup(name) : NULL;
    for (char *c = shown; c && *c; c++)
        if (*c == '*')
            *c = '_';
    jset_s(r, "name", shown ? shown : name);
    free(shown);
    jset_b(r, "strip_path", 0);
    jset_b(r, "preserve_host", 1);
    jset_b(r, "request_buffering", 1);
    jset_b(r, "response_buffering", 1);
    jset_o(r, "tags", xtags(ing));
    return r;
}

/* The route name of @m's group as Ingress @ns/@ingname names it, '*' kept (malloc'd). */
static char *route_name_for(const Meta *m, const char *ns, const char *ingname)
{
    char port[80], host[300], route[1024];
    xport_canonical(&m->port, port, sizeof(port));
    xjoin(host, sizeof(host), m->host, NULL);
    if (m->facade)
        xjoin(route, sizeof(route), ns, ".", ingname, ".", host, ".", m->backend, ".svc.facade",
              NULL);
    else
        xjoin(route, sizeof(route), ns, ".", ingname, ".", m->backend, ".", host, ".", port, NULL);
    return strdup(route);
}

/*
 * An expression route: matched on the paths of every Ingress in the group and on the annotations
 * of the last (KIC's parentIngress), which also names it, with the first one's host and backend.
 */
static json_t *expr_route(Meta *m)
{
    json_t *ing = m->parent;
    json_t *and = json_array();
    json_t *hosts = json_array();
    int fields = 0;
    bool plain_hosts = true;

    if (*m->host)
        json_array_append_new(hosts, json_string(m->host));
    json_t *aliases = xsplit(obj_annotation(ing, ANN "host-aliases"), ',');
    size_t i;
    json_t *v;
    json_array_extend(hosts, aliases);
    json_decref(aliases);
    if (json_array_size(hosts)) {
        /* As KIC: every host counts for the priority, only valid ones are matched on. */
        json_t *ors = json_array();
        json_array_foreach(hosts, i, v)
        {
            const char *h = json_string_value(v);
            if (h[0] == '*')
                plain_hosts = false;
            if (xvalid_host(h, true))
                append_take(ors, host_pred(h));
        }
        if (json_array_size(ors))
            append_take(and, xexpr_join(ors, "||"));
        json_decref(ors);
        fields++;
    } else {
        plain_hosts = false;
    }

    long maxlen = 0;
    bool regex = false, any_path = false;
    json_t *pors = json_array();
    const char *path, *type, *prefix = regex_prefix(ing, true);
    for (size_t pos = 0; meta_path(m, &pos, &path, &type);) {
        long len = 0;
        bool re = false;
        append_take(pors, path_matcher(path, type, prefix, &len, &re));
        if (len > maxlen)
            maxlen = len;
        regex = regex || re;
        any_path = true;
    }
    if (json_array_size(pors))
        append_take(and, xexpr_join(pors, "||"));
    if (any_path) /* KIC counts the field even when no path had a matcher */
        fields++;
    json_decref(pors);

    json_t *headers = xheaders(ing);
    size_t nh = json_object_size(headers);
    if (nh) {
        const char **names = calloc(nh, sizeof(*names));
        size_t k = 0;
        const char *name;
        json_object_foreach(headers, name, v) names[k++] = name;
        qsort(names, nh, sizeof(*names), cmp_cstr);
        json_t *hand = json_array();
        size_t real = 0;
        for (k = 0; k < nh; k++) {
            char field[300];
            if (!strcasecmp(names[k], "host"))
                continue;
            snprintf(field, sizeof(field), "http.headers.");
            size_t fl = strlen(field);
            for (const char *c = names[k]; *c && fl + 1 < sizeof(field); c++)
                field[fl++] = *c == '-' ? '_' : (char)tolower((unsigned char)*c);
            field[fl] = 0;
            json_t *hors = json_array();
            size_t j;
            json_t *hv;
            json_array_foreach(json_object_get(headers, names[k]), j, hv)
            {
                const char *s = json_string_value(hv);
                if (!strncmp(s, "~*", 2))
                    append_take(hors, pred(field, "~", s + 2));
                else
                    append_take(hors, pred(field, "==", s));
            }
            append_take(hand, xexpr_join(hors, "||"));
            json_decref(hors);
            real++;
        }
        if (real)
            append_take(and, xexpr_join(hand, "&&"));
        fields++; /* KIC counts the headers, host among them, though it does not match on host */
        json_decref(hand);
        free(names);
    }
    json_decref(headers);

    /*
     * Methods and SNIs: KIC counts the field when the annotation lists any, and matches on the
     * valid entries, passing over the others one by one (traditional routes void the annotation).
     */
    json_t *methods = xmethods(obj_annotation(ing, ANN "methods"));
    if (json_array_size(methods)) {
        json_t *mors = json_array();
        json_array_foreach(methods, i, v)
        {
            if (xmethod_ok(json_string_value(v)))
                append_take(mors, pred("http.method", "==", json_string_value(v)));
        }
        if (json_array_size(mors))
            append_take(and, xexpr_join(mors, "||"));
        json_decref(mors);
        fields++;
    }
    json_decref(methods);

    json_t *snis = xsplit(obj_annotation(ing, ANN "snis"), ',');
    if (json_array_size(snis)) {
        json_t *sors = json_array();
        json_array_foreach(snis, i, v)
        {
            if (xvalid_host(json_string_value(v), false))
                append_take(sors, pred("tls.sni", "==", json_string_value(v)));
        }
        if (json_array_size(sors))
            append_take(and, xexpr_join(sors, "||"));
        json_decref(sors);
        fields++;
    }
    json_decref(snis);
    json_decref(hosts);

    char *expr = xexpr_join(and, "&&");
    json_decref(and);
    if (maxlen > 65535)
        maxlen = 65535;
    if (nh > 255)
        nh = 255;
    unsigned long long prio = (3ULL << 44) | ((unsigned long long)fields << 41) |
                              ((unsigned long long)nh << 33) |
                              ((unsigned long long)(plain_hosts ? 1 : 0) << 32) |
                              ((unsigned long long)(regex ? 1 : 0) << 16) |
                              (unsigned long long)maxlen;
    char *name = ing == m->ing ? NULL : route_name_for(m, obj_ns(ing), obj_name(ing));
    json_t *r = route_base(name ? name : m->route_name, m->ing);
    free(name);
    jset_s(r, "expression", expr);
    jset_i(r, "priority", (json_int_t)prio);
    free(expr);
    return r;
}

static json_t *trad_route(Meta *m, bool legacy)
{
    json_t *paths = json_array();
    const char *path, *type, *prefix = regex_prefix(m->ing, false);
    for (size_t pos = 0; meta_path(m, &pos, &path, &type);)
        add_trad_paths(paths, path, type, prefix, legacy);
    json_t *r = route_base(m->route_name, m->ing);
    jset_ci(r, "regex_priority", 0);
    jset_o(r, "paths", paths);
    if (*m->host)
        json_object_set_new(r, "hosts", json_pack("[s]", m->host));
    return r;
}

/*
 * Resolve a backend: a Service with a port, or a KongServiceFacade resource. A failure has KIC's
 * words: for a rule's path (@path) getIngressPathBackend's, wrapped with the path; for the
 * default backend (@path NULL) translateIngressDefaultBackendResource's.
 */
static int parse_backend(Xlate *x, json_t *ing, const IngressBackend *b, Meta *m,
                         const char *path)
{
    char why[600] = "";
    if (b->service) {
        if (!b->name || !*b->name) {
            snprintf(why, sizeof(why), "backend service has no name");
        } else {
            m->backend = b->name;
            if (b->has_number) {
                m->port.mode = PORT_NUMBER;
                m->port.number = (long)b->number;
            } else if (b->port_name && *b->port_name) {
                m->port.mode = PORT_NAME;
                xjoin(m->port.name, sizeof(m->port.name), b->port_name, NULL);
            } else {
                m->port.mode = PORT_IMPLICIT;
            }
            return 0;
        }
    } else if (b->resource) {
        const char *g = b->res_group, *k = b->res_kind ? b->res_kind : "", *n = b->res_name;
        if (!g || strcmp(g, FACADE_GROUP) || strcmp(k, "KongServiceFacade")) {
            snprintf(why, sizeof(why), "%s resource type %s%s%s",
                     path ? "unknown" : "unsupported", g ? g : "", g ? "/" : "", k);
        } else if (!x->o->service_facade) {
            snprintf(why, sizeof(why), "KongServiceFacade is not enabled, please set the "
                                       "\"KongServiceFacade\" feature gate to 'true' to enable it");
        } else if (!n || !store_get(x->st, "KongServiceFacade", obj_ns(ing), n)) {
            const char *fmt = path ? "failed to get KongServiceFacade \"%s\": "
                                   : "KongServiceFacade \"%s\" could not be fetched: ";
            snprintf(why, sizeof(why), fmt, n ? n : "");
            size_t l = strlen(why);
            snprintf(why + l, sizeof(why) - l, "KongServiceFacade %s/%s not found", obj_ns(ing),
                     n ? n : "");
        } else {
            m->backend = n;
            m->facade = true;
            m->port.mode = PORT_IMPLICIT;
            return 0;
        }
    } else {
        snprintf(why, sizeof(why), path ? "no Service or Resource specified for Ingress path"
                                        : "backend has neither service nor resource");
    }
    if (!path) {
        xfail(x, ing, NULL, "default backend: %s", why);
        return -1;
    }
    Buf q = BUF_INIT;
    xgo_quote(&q, path);
    xfail(x, ing, NULL, "failed to get backend for ingress path %s: %s", q.data ? q.data : "",
          why);
    buf_deinit(&q);
    return -1;
}

/* The route's and service's names; false when memory runs out. */
static bool names_for(Meta *m, const char *ns, const char *ingname)
{
    char port[80], svc[512];
    xport_canonical(&m->port, port, sizeof(port));
    if (m->facade)
        xjoin(svc, sizeof(svc), ns, ".", m->backend, ".svc.facade", NULL);
    else
        xjoin(svc, sizeof(svc), ns, ".", m->backend, ".", port, NULL);
    m->svc_name = strdup(svc);
    m->route_name = route_name_for(m, ns, ingname);
    return m->svc_name && m->route_name;
}

/* A new service for group @m, not yet registered (xsvc_put); NULL when memory runs out. */
static XService *make_service(Xlate *x, const Meta *m, bool default_backend)
{
    const char *ns = obj_ns(m->ing);
    char port[80], host[800];
    xport_canonical(&m->port, port, sizeof(port));
    if (m->facade)
        xjoin(host, sizeof(host), m->svc_name, NULL);
    else
        xjoin(host, sizeof(host), m->backend, ".", ns, ".", port, ".svc", NULL);
    /* KIC's parent of a facade's service is the facade: its failures name it */
    json_t *parent = m->facade ? store_get(x->st, "KongServiceFacade", ns, m->backend) : NULL;
    XService *s = xsvc_new(m->svc_name, ns, parent ? parent : m->ing);
    if (!s)
        return NULL;
    s->s = xservice_defaults(m->svc_name, host, !default_backend);
    if (!s->s || xsvc_add_backend(s, ns, m->backend, m->facade, &m->port) < 0) {
        xsvc_free(s);
        return NULL;
    }
    return s;
}

static XService *service_for(Xlate *x, Meta *m, bool default_backend)
{
    XService *s = xsvc_get(x, m->svc_name);
    if (s && default_backend && s->no_upstream) {
        /* A service dropped for its rewrite is not in KIC's map when the default backend comes,
         * so the default backend makes a new one of that name: its route only, no path. */
        XService *fresh = make_service(x, m, true);
        if (!fresh)
            return NULL;
        for (size_t i = 0; i < s->nroutes; i++) {
            json_decref(s->routes[i].r);
            json_decref(s->routes[i].plugins);
        }
        s->nroutes = 0;
        json_decref(s->s);
        s->s = json_incref(fresh->s);
        s->parent = fresh->parent;
        s->skip = s->no_upstream = false;
        xsvc_free(fresh);
        return s;
    }
    if (s)
        return s;
    s = make_service(x, m, default_backend);
    if (s && xsvc_put(x, s) < 0) {
        xsvc_free(s);
        return NULL;
    }
    return s;
}

/*
 * konghq.com/rewrite as KIC reads it: "$N" becomes "$(uri_captures[N])" and "\\$" a "$". Anything
 * else after a backslash or a dollar is an error, in @err with KIC's wording (the byte position of
 * the offending character); NULL then.
 */
static char *rewrite_expr(const char *in, char *err, size_t errlen)
{
    Buf b = BUF_INIT;
    for (const char *p = in; *p; p++) {
        if (*p != '\\' && *p != '$') {
            buf_putc(&b, *p);
            continue;
        }
        const char *c = p + 1;
        bool ok = *p == '\\' ? *c == '$' : isdigit((unsigned char)*c);
        if (!ok) {
            if (*c) { /* the whole character, as Go's %c prints it */
                size_t n = (*c & 0xE0) == 0xC0   ? 2
                           : (*c & 0xF0) == 0xE0 ? 3
                           : (*c & 0xF8) == 0xF0 ? 4
                                                 : 1;
                snprintf(err, errlen, "unexpected %.*s at pos %zu", (int)strnlen(c, n), c,
                         (size_t)(c - in));
            } else {
                snprintf(err, errlen, "unexpected end of string");
            }
            buf_deinit(&b);
            return NULL;
        }
        if (*p == '\\') {
            buf_putc(&b, '$');
            p = c;
            continue;
        }
        while (isdigit((unsigned char)c[1]))
            c++;
        buf_printf(&b, "$(uri_captures[%.*s])", (int)(c - p), p + 1);
        p = c;
    }
    return buf_take(&b);
}

/*
 * KIC's MaybeRewriteURI: each route whose own Ingress has konghq.com/rewrite gets a
 * request-transformer. Without the RewriteURIs gate, or with a value it cannot read, the whole
 * Kong service is dropped, its parent blamed.
 */
static void apply_rewrite(Xlate *x, XService *s)
{
    /* KIC rewrites a service's routes in the order of their names: the first (by name) that
     * fails is the one reported, and the service is dropped (with what the others got). */
    const char *fail_name = NULL;
    char fail[128] = "";
    for (size_t i = 0; i < s->nroutes; i++) {
        const char *rw = s->routes[i].rewrite;
        if (!rw)
            continue;
        char err[128];
        char *expr = x->o->rewrite_uris ? rewrite_expr(*rw ? rw : "/", err, sizeof(err)) : NULL;
        if (!expr) {
            const char *name = json_string_value(json_object_get(s->routes[i].r, "name"));
            if (!name)
                name = "";
            if (!fail_name || strcmp(name, fail_name) < 0) {
                fail_name = name;
                snprintf(fail, sizeof(fail), "%s",
                         x->o->rewrite_uris ? err
                                            : "konghq.com/rewrite annotation not supported when "
                                              "rewrite uris disabled");
            }
            continue;
        }
        if (!s->routes[i].plugins)
            s->routes[i].plugins = json_array();
        json_array_append_new(s->routes[i].plugins,
                              json_pack("{s:s, s:{s:{s:s}}}", "name", "request-transformer",
                                        "config", "replace", "uri", expr));
        free(expr);
    }
    if (fail_name) {
        xfail(x, s->parent, NULL, "%s", fail);
        s->skip = s->no_upstream = true;
    }
}

json_t *xlate_tls_secret(Xlate *x, const char *key, const json_t *parent)
{
    json_t *entry = json_object_get(x->sni_secrets, key);
    if (!entry) {
        entry = json_pack("{s:[], s:[], s:{}}", "hosts", "parents", "seen");
        json_object_set_new(x->sni_secrets, key, entry);
        json_array_append_new(x->sni_order, json_string(key));
    }
    /* A wildcard certificate may serve thousands of Ingresses: membership by hash, not scan. */
    char pk[32];
    snprintf(pk, sizeof(pk), "%p", (const void *)parent);
    json_t *seen = json_object_get(entry, "seen");
    if (!json_object_get(seen, pk)) {
        json_object_set_new(seen, pk, json_true());
        json_array_append(json_object_get(entry, "parents"), (json_t *)parent);
    }
    return entry;
}

void xlate_add_tls(Xlate *x, const json_t *obj, const json_t *tls)
{
    size_t i;
    json_t *t;
    json_array_foreach(tls, i, t)
    {
        const char *secret = obj_get_str(t, "secretName");
        json_t *hosts = json_object_get(t, "hosts");
        if (!secret || !*secret || !json_array_size(hosts))
            continue;
        char key[512];
        xjoin(key, sizeof(key), obj_ns(obj), "/", secret, NULL);
        json_t *entry = xlate_tls_secret(x, key, obj);
        size_t j;
        json_t *h;
        json_array_foreach(hosts, j, h)
        {
            if (!json_is_string(h) || json_object_get(x->sni_claimed, json_string_value(h)))
                continue; /* the first claim of a host wins, later ones are ignored */
            json_object_set_new(x->sni_claimed, json_string_value(h), json_string(key));
            json_array_append(json_object_get(entry, "hosts"), h);
        }
    }
}

/*
 * Each group's route and service. Which group makes a service must be decided in order (the
 * first of a name does), but making it and the routes reads only the group, its Ingress and the
 * store: with many groups a helper thread shares that work with the caller, both taking the next
 * few groups from a shared counter, so they end together whatever a route costs against a
 * service on this machine. The routes then join their services in order.
 */
#define ROUTE_CHUNK 16
typedef struct RouteWork {
    Xlate *x;
    Meta *mv;
    size_t nm;
    bool expressions, legacy;
    size_t *slot;    /* per group: its service's index in x->svcs */
    bool *makes;     /* per group: it is the first of its service, which it makes */
    json_t **routes;
} RouteWork;

static json_t *route_of(RouteWork *w, size_t i)
{
    return w->expressions ? expr_route(&w->mv[i]) : trad_route(&w->mv[i], w->legacy);
}

static void add_route(XService *s, json_t *r, const Meta *m, bool expressions)
{
    if (xsvc_add_route(s, r, m->parent, expressions) == 0)
        s->routes[s->nroutes - 1].rewrite = m->rewrite;
}

/* Groups [from, to): their services, where they are the first, and their routes. */
static void make_range(void *ud, int half, size_t from, size_t to)
{
    RouteWork *w = ud;
    (void)half;
    for (size_t i = from; i < to; i++) {
        if (w->makes[i]) /* slots are distinct: each written by one thread */
            w->x->svcs[w->slot[i]] = make_service(w->x, &w->mv[i], false);
        w->routes[i] = route_of(w, i);
    }
}

/* Each group's service slot, in order: a name met first gets the next one, to be made. */
static int claim_services(Xlate *x, RouteWork *w)
{
    if (x->capsvcs - x->nsvcs < w->nm) {
        XService **n = realloc(x->svcs, (x->nsvcs + w->nm) * sizeof(*n));
        if (!n)
            return -ENOMEM;
        x->svcs = n;
        x->capsvcs = x->nsvcs + w->nm;
    }
    for (size_t i = 0; i < w->nm; i++) {
        size_t idx = xindex_get(&x->svc_index, w->mv[i].svc_name);
        if (idx != SIZE_MAX) {
            w->slot[i] = idx;
            continue;
        }
        /* keyed by the group's name until the service is made (routes_and_services()) */
        if (xindex_put(&x->svc_index, w->mv[i].svc_name, x->nsvcs) < 0)
            return -ENOMEM;
        w->slot[i] = x->nsvcs;
        w->makes[i] = true;
        x->svcs[x->nsvcs++] = NULL;
    }
    return 0;
}

/*
 * The registry keyed by the services' own names (the groups' go with them), and services that
 * could not be made (out of memory) leave no hole.
 */
static void rekey_services(Xlate *x)
{
    size_t o = 0;
    for (size_t i = 0; i < x->nsvcs; i++)
        if (x->svcs[i])
            x->svcs[o++] = x->svcs[i];
    x->nsvcs = o;
    xindex_clear(&x->svc_index);
    for (size_t i = 0; i < x->nsvcs; i++)
        (void)xindex_put(&x->svc_index, x->svcs[i]->name, i);
}

static void routes_and_services(Xlate *x, Meta *mv, size_t nm, bool legacy)
{
    RouteWork w = {x, mv, nm, x->o->expressions, legacy, calloc(nm ? nm : 1, sizeof(size_t)),
                   calloc(nm ? nm : 1, sizeof(bool)), calloc(nm ? nm : 1, sizeof(json_t *))};
    if (!w.slot || !w.makes || !w.routes || claim_services(x, &w) < 0) {
        free(w.slot);
        free(w.makes);
        free(w.routes);
        rekey_services(x); /* slots claimed before memory ran out */
        return;
    }
    xsplit_run_chunked(nm, ROUTE_CHUNK, make_range, &w);
    for (size_t i = 0; i < nm; i++) {
        XService *s = x->svcs[w.slot[i]];
        if (s)
            add_route(s, w.routes[i], &mv[i], x->o->expressions);
        else
            json_decref(w.routes[i]);
    }
    rekey_services(x);
    free(w.slot);
    free(w.makes);
    free(w.routes);
}

/*
 * Reading the Ingresses is most of the pass, and most of that is waiting for memory: the store's
 * objects are cold. The class check and the timestamps, then the groups of paths, are read by
 * two threads, each over half of the Ingresses (in their order) with failures of its own; the
 * halves are merged in order, so failures and routes come out as one thread would make them.
 */
typedef struct IngRead {
    Xlate *x;
    json_t *const *all;
    bool *keep;
    long long *ts;
    const char **ns, **name; /* for ties, as the timestamps */
} IngRead;

static void read_class(void *ud, int half, size_t from, size_t to)
{
    IngRead *r = ud;
    (void)half;
    for (size_t i = from; i < to; i++) {
        obj_prefetch(r->all, to, i);
        if ((r->keep[i] = xclass_ingress(r->x, r->all[i]))) {
            const char *uid;
            r->ts[i] = xcreation(r->all[i]);
            obj_ids(r->all[i], &r->name[i], &r->ns[i], &uid);
        }
    }
}

typedef struct MetaHalf {
    Xlate *x;          /* the caller's, or a copy with failures of its own */
    json_t *const *ings;
    bool *tls;         /* per Ingress: has TLS entries, claimed afterwards in order */
    Meta *mv;
    size_t nm, cm;
    XIndex metas;      /* route name -> index into mv */
    json_t *default_ing;
    bool oom;
} MetaHalf;

/* Room for @more groups in @h; -ENOMEM (and h->oom) when there is none. */
static int reserve_metas(MetaHalf *h, size_t more)
{
    if (h->cm - h->nm < more) {
        size_t cm = h->nm + more;
        Meta *nmv = realloc(h->mv, cm * sizeof(*nmv));
        if (!nmv) {
            h->oom = true;
            return -ENOMEM;
        }
        h->mv = nmv;
        h->cm = cm;
    }
    return 0;
}

/* Append @m to @h's groups, taking its contents; -ENOMEM (and h->oom) when it cannot. */
static int append_meta(MetaHalf *h, Meta *m)
{
    if (h->nm == h->cm && reserve_metas(h, h->cm ? h->cm : 16) < 0) /* doubles */
        return -ENOMEM;
    h->mv[h->nm++] = *m;
    return 0;
}

/*
 * @m's paths join the group @to of the same route name (a dotted Ingress name can spell another
 * Ingress's name and backend). As in KIC's ingressTranslationIndex.Add, the later Ingress becomes
 * the group's parent. Takes @m's contents.
 */
static void join_meta(MetaHalf *h, Meta *to, Meta *m)
{
    if (buf_append(&to->paths, m->paths.data, m->paths.len) < 0)
        h->oom = true;
    to->parent = m->parent;
    to->rewrite = m->rewrite;
    meta_clear(m);
}

/* Add @m to @h, or its paths to the group of the same route; takes @m's contents. */
static void add_meta(MetaHalf *h, Meta *m)
{
    size_t idx = xindex_get(&h->metas, m->route_name);
    if (idx != SIZE_MAX) {
        join_meta(h, &h->mv[idx], m);
        return;
    }
    size_t at = h->nm;
    if (append_meta(h, m) < 0)
        meta_clear(m);
    else if (xindex_put(&h->metas, h->mv[at].route_name, at) < 0)
        h->oom = true;
}

static void read_paths(void *ud, int half, size_t from, size_t to)
{
    MetaHalf *h = &((MetaHalf *)ud)[half];
    Xlate *x = h->x;
    /* A group an Ingress, mostly: a growing array's big reallocs each sweep malloc's free lists */
    if (reserve_metas(h, to - from) < 0)
        return;
    for (size_t i = from; i < to && !h->oom; i++) {
        json_t *ing = h->ings[i];
        obj_prefetch(h->ings, to, i);
        if (!h->default_ing && json_is_object(obj_get_path(ing, "spec.defaultBackend")))
            h->default_ing = ing;
        h->tls[i] = json_array_size(obj_get_path(ing, "spec.tls")) > 0;
        const char *rewrite = obj_annotation(ing, ANN "rewrite");
        IngressPathIter it = {0, 0, 0, 0};
        IngressPath ip;
        while (obj_ingress_path(ing, &it, &ip)) {
            Meta m;
            memset(&m, 0, sizeof(m));
            m.ing = m.parent = ing;
            m.host = ip.host;
            m.rewrite = rewrite;
            const char *path = ip.path ? ip.path : "";
            char small[256], *flat = strlen(path) + 2 <= sizeof(small) ? small
                                                                         : malloc(strlen(path) + 2);
            if (!flat) {
                h->oom = true;
                break;
            }
            flatten_slashes(path, flat, strlen(path) + 2);
            if (!*flat)
                memcpy(flat, "/", 2);
            if (parse_backend(x, ing, &ip.backend, &m, flat) < 0) {
                if (flat != small)
                    free(flat);
                continue;
            }
            /* A missing type is ImplementationSpecific; one KIC does not know is kept as ' ' */
            const char *pt = ip.path_type;
            char t = !pt || !strcmp(pt, "ImplementationSpecific") ? 'I'
                     : !strcmp(pt, "Exact")                       ? 'E'
                     : !strcmp(pt, "Prefix")                      ? 'P'
                                                                  : ' ';
            bool ok = buf_putc(&m.paths, t) == 0 &&
                      buf_append(&m.paths, flat, strlen(flat) + 1) == 0 &&
                      names_for(&m, obj_ns(ing), obj_name(ing));
            if (flat != small)
                free(flat);
            if (!ok) {
                meta_clear(&m);
                h->oom = true;
                break;
            }
            add_meta(h, &m);
        }
    }
}

/* The Ingresses of our class, oldest first. */
static json_t **ingresses_of_class(Xlate *x, size_t *ret_n)
{
    size_t n, ni = 0, m;
    json_t *const *all = store_list(x->st, "Ingress", &n);
    m = n ? n : 1;
    json_t **ings = calloc(m, sizeof(*ings));
    IngRead r = {x, all, calloc(m, sizeof(bool)), calloc(m, sizeof(long long)),
                 calloc(m, sizeof(char *)), calloc(m, sizeof(char *))};
    if (ings && r.keep && r.ts && r.ns && r.name) {
        xsplit_run(n, read_class, &r);
        for (size_t i = 0; i < n; i++)
            if (r.keep[i]) {
                ings[ni] = all[i];
                r.ts[ni] = r.ts[i];
                r.ns[ni] = r.ns[i];
                r.name[ni++] = r.name[i];
            }
        xsort_by_times(ings, r.ts, ni, true, r.ns, r.name);
    } else {
        free(ings);
        ings = NULL;
    }
    free(r.keep);
    free(r.ts);
    free(r.ns);
    free(r.name);
    *ret_n = ni;
    return ings;
}

void xlate_ingresses(Xlate *x)
{
    size_t ni;
    json_t **ings = ingresses_of_class(x, &ni);
    bool *tls = calloc(ni ? ni : 1, sizeof(*tls));
    if (!ings || !tls) {
        free(ings);
        free(tls);
        return;
    }

    bool legacy = false;
    if (x->icp_spec) {
        json_t *l = json_object_get(x->icp_spec, "enableLegacyRegexDetection");
        legacy = json_is_true(l);
    }

    Xlate hx; /* the upper half's: failures of its own, everything else read-only */
    MetaHalf h[2] = {{.x = x, .ings = ings, .tls = tls}, {.x = &hx, .ings = ings, .tls = tls}};
    xsplit_run_failing(x, &hx, ni, read_paths, h);
    /*
     * The upper half's groups after the lower's, as one thread would have met them. A group of
     * the upper half is one of the lower's only when their route names collide (a dotted Ingress
     * name can spell another's name and backend): looked up, not added to the index.
     */
    if (!h[0].oom)
        reserve_metas(&h[0], h[1].nm);
    for (size_t i = 0; i < h[1].nm; i++) {
        Meta *m = &h[1].mv[i];
        size_t idx = xindex_get(&h[0].metas, m->route_name);
        if (idx == SIZE_MAX && !h[0].oom && append_meta(&h[0], m) == 0)
            continue; /* taken as it is */
        if (idx != SIZE_MAX && !h[0].oom)
            join_meta(&h[0], &h[0].mv[idx], m);
        else
            meta_clear(m);
    }
    free(h[1].mv);
    xindex_clear(&h[1].metas);
    xindex_clear(&h[0].metas);
    Meta *mv = h[0].mv;
    size_t nm = h[0].nm;
    json_t *default_ing = h[0].default_ing ? h[0].default_ing : h[1].default_ing;
    /* TLS claims: the first claim of a host wins, so in the Ingresses' order. */
    for (size_t i = 0; i < ni; i++)
        if (tls[i])
            xlate_add_tls(x, ings[i], obj_get_path(ings[i], "spec.tls"));
    free(tls);

    routes_and_services(x, mv, nm, legacy);
    for (size_t i = 0; i < x->nsvcs; i++)
        apply_rewrite(x, x->svcs[i]);

    /* The oldest Ingress with a default backend provides the catch-all route. */
    if (default_ing) {
        json_t *db = obj_get_path(default_ing, "spec.defaultBackend");
        Meta m;
        memset(&m, 0, sizeof(m));
        m.ing = m.parent = default_ing;
        m.host = "";
        IngressBackend be;
        obj_ingress_backend(db, &be);
        if (parse_backend(x, default_ing, &be, &m, NULL) == 0) {
            XService *s = names_for(&m, obj_ns(default_ing), obj_name(default_ing))
                              ? service_for(x, &m, true)
                              : NULL;
            char rname[600];
            snprintf(rname, sizeof(rname), "%s.%s", obj_ns(default_ing), obj_name(default_ing));
            json_t *r = route_base(rname, default_ing);
            if (x->o->expressions) {
                json_object_set_new(r, "expression", json_string("http.path ^= \"/\""));
                json_object_set_new(r, "priority", json_integer(0));
            } else {
                json_object_set_new(r, "paths", json_pack("[s]", "/"));
                json_object_set_new(r, "regex_priority", json_integer(0));
            }
            if (s)
                xsvc_add_route(s, r, default_ing, x->o->expressions);
            else
                json_decref(r);
        }
        meta_clear(&m);
    }

    for (size_t i = 0; i < nm; i++)
        meta_clear(&mv[i]);
    free(mv);
    free(ings);
}
