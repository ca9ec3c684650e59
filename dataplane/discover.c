/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gateway Discovery: turn the EndpointSlices of the Admin API Service into gateway URLs, as KIC
 * does (always https, the Pod IP, the TLS name pod.<svc>.<ns>.svc that a wildcard certificate
 * for *.<svc>.<ns>.svc matches), and build the libcurl CONNECT_TO mapping that lets the request
 * URL carry that name while the connection goes to the Pod IP.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp_internal.h"
#include "store.h"
#include "util.h"

static bool port_name_wanted(const char *names, const char *name)
{
    size_t n = strlen(name);
    const char *p = names;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == n && n > 0 && memcmp(p, name, n) == 0)
            return true;
        p = e;
    }
    return false;
}

static const char *str_at(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int add_endpoint(json_t *out, json_t *seen, const char *ip, json_int_t port, const char *svc,
                        const char *ns, json_t *target)
{
    char *url;
    if (strchr(ip, ':'))
        url = util_strdup_printf("https://[%s]:%lld", ip, (long long)port);
    else
        url = util_strdup_printf("https://%s:%lld", ip, (long long)port);
    char *sni = util_strdup_printf("pod.%s.%s.svc", svc, ns);
    char *pod = util_strdup_printf(
        "%s/%s", str_at(target, "namespace")[0] ? str_at(target, "namespace") : ns,
        str_at(target, "name"));
    int r = -ENOMEM;
    if (!url || !sni || !pod)
        goto out;
    r = 0;
    if (json_object_get(seen, url))
        goto out;
    json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:s}", "url", url, "server_name", sni, "ip", ip,
                          "port", port, "pod", pod);
    if (!e || json_array_append_new(out, e) < 0 || json_object_set_new(seen, url, json_true()) < 0)
        r = -ENOMEM;
out:
    free(url);
    free(sni);
    free(pod);
    return r;
}

static int cmp_url(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(str_at(x, "url"), str_at(y, "url"));
}

json_t *dp__discover(json_t *slices, const char *svc_ns, const char *svc_name,
                     const char *port_names)
{
    json_t *out = json_array(), *seen = json_object();
    if (!out || !seen)
        goto fail;
    if (!port_names || !*port_names)
        port_names = "admin-tls,kong-admin-tls";
    size_t i;
    json_t *slice;
    json_array_foreach(slices, i, slice)
    {
        const char *ns = svc_ns && *svc_ns ? svc_ns : obj_ns(slice); /* a stored slice's, packed */
        const char *svc = svc_name && *svc_name ? svc_name : NULL;
        if (!svc)
            svc = obj_label(slice, "kubernetes.io/service-name");
        if (!svc || !*svc || !*ns)
            continue;
        size_t pi, ei;
        json_t *port, *ep;
        json_array_foreach(json_object_get(slice, "ports"), pi, port)
        {
            const char *pname = json_string_value(json_object_get(port, "name"));
            json_int_t pnum = json_integer_value(json_object_get(port, "port"));
            /* Unnamed ports are skipped, as KIC does. */
            if (!pname || !port_name_wanted(port_names, pname) || pnum <= 0 || pnum > 65535)
                continue;
            json_array_foreach(json_object_get(slice, "endpoints"), ei, ep)
            {
                json_t *cond = json_object_get(ep, "conditions");
                if (json_is_true(json_object_get(cond, "terminating")))
                    continue;
                json_t *target = json_object_get(ep, "targetRef");
                if (strcmp(str_at(target, "kind"), "Pod") != 0)
                    continue;
                /* Only the first address is used (all addresses of an endpoint are one Pod). */
                const char *ip =
                    json_string_value(json_array_get(json_object_get(ep, "addresses"), 0));
                if (!ip || !*ip || strlen(ip) > 64 ||
                    strspn(ip, "0123456789abcdefABCDEF.:") != strlen(ip))
                    continue;
                if (add_endpoint(out, seen, ip, pnum, svc, ns, target) < 0)
                    goto fail;
            }
        }
    }
    size_t n = json_array_size(out);
    if (n > 1) {
        json_t **v = malloc(n * sizeof(*v));
        if (!v)
            goto fail;
        for (i = 0; i < n; i++)
            v[i] = json_incref(json_array_get(out, i));
        qsort(v, n, sizeof(*v), cmp_url);
        json_array_clear(out);
        for (i = 0; i < n; i++)
            json_array_append_new(out, v[i]);
        free(v);
    }
    json_decref(seen);
    return out;
fail:
    json_decref(out);
    json_decref(seen);
    return NULL;
}

int dp__connect_to(const char *url, const char *server_name, char **ret_base, char **ret_connect_to)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *base = NULL, *ct = NULL;
    int r = -ENOMEM;
    if (!u)
        goto out;
    r = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        path = NULL;
    const char *p = path && strcmp(path, "/") != 0 ? path : "";
    size_t pl = strlen(p);
    while (pl > 0 && p[pl - 1] == '/')
        pl--;
    r = -ENOMEM;
    base = util_strdup_printf("%s://%s:%s%.*s", scheme, server_name, port, (int)pl, p);
    /* host comes back bracketed for IPv6, which is what CONNECT_TO wants. */
    ct = util_strdup_printf("%s:%s:%s:%s", server_name, port, host, port);
    if (!base || !ct)
        goto out;
    *ret_base = base;
    *ret_connect_to = ct;
    base = ct = NULL;
    r = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    free(base);
    free(ct);
    if (u)
        curl_url_cleanup(u);
    return r;
}
