/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCPIngress and UDPIngress (configuration.konghq.com/v1beta1) to stream services and routes.
 * A service name that an earlier source (Ingress) produced is replaced, as KIC's merge does.
 */
#include "xlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static json_t **sorted(Xlate *x, const char *kind, size_t *ret_n)
{
    size_t n, k = 0;
    json_t *const *all = store_list(x->st, kind, &n);
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    if (!v) {
        *ret_n = 0;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (xclass_exact_or_empty(x, all[i]))
            v[k++] = all[i];
    xsort_by_creation(v, k, true);
    *ret_n = k;
    return v;
}

/* OR of one predicate per element of @list (strings quoted, ports as numbers), appended to @and. */
static void add_or(json_t *and, json_t *list, const char *field)
{
    if (!json_array_size(list))
        return;
    json_t *ors = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        char *p;
        /* KIC's sniMatcherFromSNIs passes over what is not a valid SNI (a wildcard, say) */
        if (json_is_string(v) && !xvalid_host(json_string_value(v), false))
            continue;
        if (json_is_string(v)) {
            char *q = xexpr_quote(json_string_value(v));
            p = util_strdup_printf("%s == %s", field, q);
            free(q);
        } else {
            p = util_strdup_printf("%s == %lld", field,
                                   (long long)json_integer_value(json_object_get(v, "port")));
        }
        json_array_append_new(ors, json_string(p));
        free(p);
    }
    if (json_array_size(ors)) {
        char *j = xexpr_join(ors, "||");
        json_array_append_new(and, json_string(j));
        free(j);
    }
    json_decref(ors);
}

static void l4_expression(json_t *r)
{
    json_t *and = json_array();
    add_or(and, json_object_get(r, "snis"), "tls.sni");
    add_or(and, json_object_get(r, "destinations"), "net.dst.port");
    char *e = xexpr_join(and, "&&");
    json_object_set_new(r, "expression", json_string(e));
    json_object_set_new(r, "priority", json_integer(1));
    json_object_del(r, "snis");
    json_object_del(r, "destinations");
    free(e);
    json_decref(and);
}

static void translate_kind(Xlate *x, const char *kind, bool udp, int source)
{
    size_t n;
    json_t **objs = sorted(x, kind, &n);
    for (size_t i = 0; i < n; i++) {
        json_t *obj = objs[i];
        if (!udp)
            xlate_add_tls(x, obj, obj_get_path(obj, "spec.tls"));
        size_t ri;
        json_t *rule;
        json_array_foreach(obj_get_path(obj, "spec.rules"), ri, rule)
        {
            const char *svc = obj_get_str(rule, "backend.serviceName");
            json_t *sp = obj_get_path(rule, "backend.servicePort");
            json_t *port = json_object_get(rule, "port");
            /* KIC reads a missing port or servicePort as Go's zero (the TCPIngress CRD lets port
             * be left out): a route to port 0, a service of port 0 whose port is not found. */
            if ((sp && !json_is_integer(sp)) || (port && !json_is_integer(port))) {
                xfail(x, obj, NULL, "rule %zu: port and backend.servicePort must be integers", ri);
                continue;
            }
            if (!svc || !*svc) { /* KIC logs this and passes over the rule */
                xfail(x, obj, NULL, "rule %zu: needs backend.serviceName", ri);
                continue;
            }
            long spn = (long)json_integer_value(sp);
            char name[600], host[600], rname[600];
            snprintf(name, sizeof(name), "%s.%s.%ld%s", obj_ns(obj), svc, spn, udp ? ".udp" : "");
            snprintf(host, sizeof(host), "%s.%s.%ld.svc", svc, obj_ns(obj), spn);
            snprintf(rname, sizeof(rname), "%s.%s.%zu%s", obj_ns(obj), obj_name(obj), ri,
                     udp ? ".udp" : "");
            XService *s = xsvc_get(x, name);
            if (!s || s->source != source) {
                s = xsvc_new(name, obj_ns(obj), obj);
                if (!s)
                    continue;
                s->source = source;
                if (udp)
                    s->s = json_pack("{s:s, s:s, s:I, s:s}", "name", name, "host", host, "port",
                                     (json_int_t)spn, "protocol", "udp");
                else {
                    s->s = xservice_defaults(name, host, false);
                    json_object_set_new(s->s, "protocol", json_string("tcp"));
                }
                PortDef pd = {.mode = PORT_NUMBER, .number = spn};
                xsvc_add_backend(s, obj_ns(obj), svc, false, &pd);
                xsvc_put(x, s);
            }
            json_t *r = json_pack("{s:s, s:o, s:[{s:I}], s:o}", "name", rname, "protocols",
                                  udp ? json_pack("[s]", "udp") : json_pack("[s,s]", "tcp", "tls"),
                                  "destinations", "port", (json_int_t)json_integer_value(port),
                                  "tags", xtags(obj));
            const char *h = obj_get_str(rule, "host");
            if (!udp && h && *h)
                json_object_set_new(r, "snis", json_pack("[s]", h));
            if (x->o->expressions)
                l4_expression(r);
            xsvc_add_route(s, r, obj, x->o->expressions);
            s->routes[s->nroutes - 1].l4 = true;
        }
    }
    free(objs);
}

void xlate_l4(Xlate *x)
{
    translate_kind(x, "TCPIngress", false, 1);
    translate_kind(x, "UDPIngress", true, 2);
}
