/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Annotation overrides: Service annotations on Kong services (kongstate/service.go) and route
 * annotations of each route's parent object on every route (kongstate/route.go). Invalid route
 * annotation values are ignored, as KIC does; an invalid protocol is a failure.
 */
#include "xlate_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static bool in_list(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

/* KIC's util.ValidateProtocol. Not udp: UDPIngress routes get it, annotations cannot set it. */
static const char *const kic_protocols[] = {
    "", "http", "https", "grpc", "grpcs", "ws", "wss", "tls", "tcp", "tls_passthrough", NULL};

static void set_int_ann(json_t *o, const char *field, const char *v)
{
    long long n;
    if (v && xparse_int(v, &n))
        json_object_set_new(o, field, json_integer(n));
}

/* The annotation @key of a Service seen through its facade (@fa, or NULL): KIC copies the
 * facade's annotations over the Service's, key by key, an empty value included. */
static const char *ann_of(const ObjAnns *fa, const ObjAnns *sa, const char *key)
{
    const char *v = fa ? obj_anns_get(fa, key) : NULL;
    return v ? v : obj_anns_get(sa, key);
}

/*
 * The annotations of @svc (through the facade of @s, if any) onto the Kong service of @s;
 * *@proto becomes the protocol it sets. Returns the protocol annotation when it is not a valid
 * one (the rest is applied all the same), or NULL.
 */
static const char *override_service(XService *s, json_t *svc, const char **proto)
{
    json_t *k = s->s;
    const char *v, *bad = NULL;
    ObjAnns sa, fa;
    obj_anns_init(&sa, svc);
    if (s->facade)
        obj_anns_init(&fa, s->facade);
    const ObjAnns *f = s->facade ? &fa : NULL;
    if ((v = ann_of(f, &sa, ANN "protocol")) && *v) {
        if (in_list(v, kic_protocols)) {
            json_object_set_new(k, "protocol", json_string(v));
            *proto = v;
        } else {
            bad = v;
        }
    }
    if ((v = ann_of(f, &sa, ANN "path")) && v[0] == '/')
        json_object_set_new(k, "path", json_string(v));
    set_int_ann(k, "connect_timeout", ann_of(f, &sa, ANN "connect-timeout"));
    set_int_ann(k, "read_timeout", ann_of(f, &sa, ANN "read-timeout"));
    set_int_ann(k, "write_timeout", ann_of(f, &sa, ANN "write-timeout"));
    set_int_ann(k, "retries", ann_of(f, &sa, ANN "retries"));
    bool b;
    if (xparse_bool(ann_of(f, &sa, ANN "tls-verify"), &b))
        json_object_set_new(k, "tls_verify", json_boolean(b));
    set_int_ann(k, "tls_verify_depth", ann_of(f, &sa, ANN "tls-verify-depth"));
    return bad;
}

/*
 * The Services of @s in ns/name order, as KIC's Service.override: the first
 * invalid protocol fails every Service of the group and ends the overrides there; otherwise a
 * gRPC service loses its path, whichever annotation set it.
 */
static void override_services(Xlate *x, XService *s)
{
    size_t n = json_object_size(s->k8s), k = 0;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    const char *key, *bad = NULL, *proto = NULL;
    json_t *svc;
    if (!keys)
        return;
    json_object_foreach(s->k8s, key, svc) keys[k++] = key;
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && strcmp(keys[b - 1], keys[b]) > 0; b--) {
            const char *t = keys[b];
            keys[b] = keys[b - 1];
            keys[b - 1] = t;
        }
    for (k = 0; k < n && !bad; k++)
        bad = override_service(s, json_object_get(s->k8s, keys[k]), &proto);
    if (bad) {
        json_t *group = json_array();
        for (k = 0; k < n; k++)
            json_array_append(group, json_object_get(s->k8s, keys[k]));
        xfail_objs(x, group, "konghq.com/protocol annotation has invalid value: %s", bad);
        json_decref(group);
    } else if (proto && (!strcmp(proto, "grpc") || !strcmp(proto, "grpcs"))) {
        json_object_del(s->s, "path"); /* only an annotation makes a service gRPC */
    }
    free(keys);
}

static bool has_protocol(json_t *protos, const char *p)
{
    size_t i;
    json_t *v;
    json_array_foreach(protos, i, v) if (!strcmp(json_string_value(v), p)) return true;
    return false;
}

/* Go's strconv.ParseBool of the value lower-cased, as KIC reads the buffering annotations. */
static bool parse_lower_bool(const char *v, bool *ret)
{
    char low[8];
    size_t n = v ? strlen(v) : sizeof(low);
    if (n >= sizeof(low))
        return false;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)v[i]);
    return xparse_bool(low, ret);
}

/* KIC takes a path_handling that matches v\d anywhere in it (and Kong then judges it). */
static bool has_version(const char *v)
{
    for (; *v; v++)
        if (v[0] == 'v' && isdigit((unsigned char)v[1]))
            return true;
    return false;
}

static void override_route(XRoute *xr)
{
    json_t *r = xr->r, *obj = xr->parent;
    const char *v;
    bool b;
    long long n;
    ObjAnns an;
    obj_anns_init(&an, obj);

    if ((v = obj_anns_get(&an, ANN "strip-path"))) {
        if (!strcasecmp(v, "true"))
            json_object_set_new(r, "strip_path", json_true());
        else if (!strcasecmp(v, "false"))
            json_object_set_new(r, "strip_path", json_false());
    }
    if ((v = obj_anns_get(&an, "ingress.kubernetes.io/force-ssl-redirect")) && !strcmp(v, "true")) {
        json_object_set_new(r, "https_redirect_status_code", json_integer(302));
        json_t *p = json_object_get(r, "protocols");
        bool grpc = has_protocol(p, "grpc") || has_protocol(p, "grpcs");
        bool http = has_protocol(p, "http") || has_protocol(p, "https");
        if (grpc && http)
            json_object_set_new(r, "protocols", json_pack("[s,s]", "grpcs", "https"));
        else if (grpc)
            json_object_set_new(r, "protocols", json_pack("[s]", "grpcs"));
        else
            json_object_set_new(r, "protocols", json_pack("[s]", "https"));
    }
    if ((v = obj_anns_get(&an, ANN "https-redirect-status-code")) && xparse_int(v, &n) &&
        (n == 301 || n == 302 || n == 307 || n == 308 || n == 426))
        json_object_set_new(r, "https_redirect_status_code", json_integer(n));
    if ((v = obj_anns_get(&an, ANN "preserve-host"))) {
        if (!strcasecmp(v, "true"))
            json_object_set_new(r, "preserve_host", json_true());
        else if (!strcasecmp(v, "false"))
            json_object_set_new(r, "preserve_host", json_false());
    }
    if (parse_lower_bool(obj_anns_get(&an, ANN "request-buffering"), &b))
        json_object_set_new(r, "request_buffering", json_boolean(b));
    if (parse_lower_bool(obj_anns_get(&an, ANN "response-buffering"), &b))
        json_object_set_new(r, "response_buffering", json_boolean(b));
    if ((v = obj_anns_get(&an, ANN "protocols"))) {
        /* Comma-delimited and trimmed, as KIC reads it; any invalid entry voids the annotation. */
        json_t *p = xsplit(v, ',');
        bool ok = json_array_size(p) > 0;
        size_t i;
        json_t *e;
        json_array_foreach(p, i, e) if (!in_list(json_string_value(e), kic_protocols)) ok = false;
        if (ok)
            json_object_set_new(r, "protocols", p);
        else
            json_decref(p);
    }
    if (xr->expr) {
        return; /* the rest is folded into the expression, and no protocol normalisation */
    }
    if ((v = obj_anns_get(&an, ANN "regex-priority")) && xparse_int(v, &n))
        json_object_set_new(r, "regex_priority", json_integer(n));
    if ((v = obj_anns_get(&an, ANN "methods"))) {
        /* One invalid method voids the annotation, as in KIC. */
        json_t *m = xmethods(v);
        bool ok = json_array_size(m) > 0;
        size_t i;
        json_t *e;
        json_array_foreach(m, i, e) if (!xmethod_ok(json_string_value(e))) ok = false;
        if (ok)
            json_object_set(r, "methods", m);
        json_decref(m);
    }
    if ((v = obj_anns_get(&an, ANN "snis"))) {
        json_t *sn = xsplit(v, ',');
        bool ok = true;
        size_t i;
        json_t *e;
        json_array_foreach(sn, i, e) if (!xvalid_host(json_string_value(e), false)) ok = false;
        if (ok && json_array_size(sn))
            json_object_set_new(r, "snis", sn);
        else if (ok)
            json_object_del(r, "snis"), json_decref(sn);
        else
            json_decref(sn);
    }
    if ((v = obj_anns_get(&an, ANN "host-aliases"))) {
        /* One invalid alias voids the annotation, as in KIC. */
        json_t *al = xsplit(v, ',');
        bool ok = true;
        size_t i;
        json_t *e;
        json_array_foreach(al, i, e) if (!xvalid_host(json_string_value(e), true)) ok = false;
        json_t *hosts = json_object_get(r, "hosts");
        json_array_foreach(al, i, e)
        {
            if (!ok)
                break;
            if (!hosts) {
                hosts = json_array();
                json_object_set_new(r, "hosts", hosts);
            }
            if (!has_protocol(hosts, json_string_value(e)))
                json_array_append(hosts, e);
        }
        json_decref(al);
    }
    json_t *h = xheaders(obj); /* replaces the route's headers, as KIC does */
    if (json_object_size(h))
        json_object_set(r, "headers", h);
    json_decref(h);
    if ((v = obj_anns_get(&an, ANN "path-handling")) && has_version(v))
        json_object_set_new(r, "path_handling", json_string(v));

    /* normalizeProtocols: grpc and http together (or invalid ones) fall back to http, https. */
    json_t *p = json_object_get(r, "protocols");
    if (p) {
        bool grpc = false, http = false, bad = false;
        size_t i;
        json_t *e;
        json_array_foreach(p, i, e)
        {
            const char *s = json_string_value(e);
            if (!strcmp(s, "grpc") || !strcmp(s, "grpcs"))
                grpc = true;
            else if (!strcmp(s, "http") || !strcmp(s, "https"))
                http = true;
            else if (!in_list(s, kic_protocols))
                bad = true;
        }
        if (grpc && (http || bad)) /* KIC counts an invalid protocol as an http one */
            json_object_set_new(r, "protocols", json_pack("[s,s]", "http", "https"));
        if (grpc)
            json_object_del(r, "strip_path");
    }
}

/* Services [from, to): each writes its own entities; failures go to its half's list. */
static void override_range(void *ud, int half, size_t from, size_t to)
{
    Xlate *x = ((Xlate **)ud)[half];
    for (size_t i = from; i < to; i++) {
        XService *s = x->svcs[i];
        if (s->skip)
            continue;
        override_services(x, s);
        for (size_t r = 0; r < s->nroutes; r++)
            override_route(&s->routes[r]);
    }
}

void xlate_overrides(Xlate *x)
{
    Xlate upper;
    Xlate *halves[2] = {x, &upper};
    xsplit_run_failing(x, &upper, x->nsvcs, override_range, halves);
}
