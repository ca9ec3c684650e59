/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Konnect node reporting: one "ingress-controller" node for tether and one "kong-proxy" node
 * per gateway on {address}/kic/api/control-planes/{id}/v1/kic-nodes, as KIC's node agent
 * does, refreshed every --konnect-refresh-node-period and at once when the gateways or the
 * status change. Unlike KIC, a failure is retried with backoff instead of ending reporting.
 * One request at a time: the nodes API is small and never in the way of entity sync.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "konnect_sink.h"
#include "log.h"
#include "util.h"

#define MOD "konnect"
#define MAX_NODES_BODY (8u << 20)

enum { NODE_IDLE, NODE_LISTING, NODE_ACTING };

typedef struct NodeReq {
    KonnectSink *k;
    CURL *easy;
    struct curl_slist *hdrs;
} NodeReq;

static void node_step(KonnectSink *k);

const char *konnect__node_status(KonnectSink *k)
{
    const char *base;
    if (!k->seen_revision)
        base = "UNKNOWN";
    else if (!k->dataplane_ok)
        base = "INOPERABLE";
    else if (k->partial)
        base = "PARTIAL_CONFIG_FAIL";
    else
        base = "OPERATIONAL";
    bool oos = k->seen_revision && (k->out_of_sync || k->parked_hash[0]);
    snprintf(k->node_status, sizeof(k->node_status), "INGRESS_CONTROLLER_STATE_%s%s", base,
             oos && strcmp(base, "UNKNOWN") != 0 ? "_KONNECT_OUT_OF_SYNC" : "");
    return k->node_status;
}

static void on_node_timer(uv_timer_t *t)
{
    KonnectSink *k = t->data;
    if (k->closing || k->node_req || k->node_phase != NODE_IDLE)
        return;
    k->node_dirty = false;
    json_decref(k->node_items);
    k->node_items = json_array();
    free(k->node_cursor);
    k->node_cursor = NULL;
    k->node_phase = NODE_LISTING;
    node_step(k);
}

void konnect__nodes_init(KonnectSink *k)
{
    char seed[320];
    snprintf(seed, sizeof(seed), "%s|%ld|%llu", k->hostname, (long)getpid(),
             (unsigned long long)time(NULL));
    if (util_uuid5("fd02801f-0957-4a15-a55a-c8d9606f30b5", seed, k->instance_id) < 0)
        snprintf(k->instance_id, sizeof(k->instance_id), "00000000-0000-5000-8000-000000000000");
    uv_timer_init(k->loop, &k->node_timer);
    k->node_timer.data = k;
    k->gateways = json_array();
}

void konnect__nodes_status_check(KonnectSink *k)
{
    /* Only a changed status is reported at once (KIC #4322: nodes updated on every sync). */
    char now[sizeof(k->node_status)];
    snprintf(now, sizeof(now), "%s", konnect__node_status(k));
    if (strcmp(now, k->node_reported) != 0)
        konnect__nodes_kick(k);
}

void konnect__nodes_kick(KonnectSink *k)
{
    if (k->closing)
        return;
    if (k->node_phase != NODE_IDLE) {
        k->node_dirty = true;
        return;
    }
    /* From the loop, never from inside publish(): the timer runs it on the next iteration. */
    uv_timer_start(&k->node_timer, on_node_timer, 0, 0);
}

static void node_done(KonnectSink *k, bool ok, const char *why)
{
    k->node_phase = NODE_IDLE;
    json_decref(k->node_actions);
    k->node_actions = NULL;
    json_decref(k->node_items);
    k->node_items = NULL;
    if (k->closing)
        return;
    double wait;
    if (ok) {
        k->m.nodes_ok++;
        k->node_backoff_s = 0;
        wait = k->node_dirty ? 0 : k->node_period_s;
    } else {
        k->m.nodes_failed++;
        k->node_backoff_s = k->node_backoff_s ? fmin(k->node_backoff_s * 2, k->node_period_s)
                                              : fmin(k->backoff_min_s, k->node_period_s);
        wait = k->node_backoff_s;
        log_event(LOG_WARN, MOD, "node reporting failed, will retry", "{s:s, s:f}", "error",
                  why ? why : "", "retry_s", wait);
    }
    uv_timer_start(&k->node_timer, on_node_timer, (uint64_t)(wait * 1000), 0);
}

static char *nodes_url(KonnectSink *k, const char *suffix)
{
    return util_strdup_printf("%s/kic/api/control-planes/%s/v1/kic-nodes%s", k->address, k->cp_id,
                              suffix ? suffix : "");
}

static json_int_t last_ping(json_t *n)
{
    return json_integer_value(json_object_get(n, "last_ping"));
}

static const char *s_of(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int add_action(json_t *actions, const char *method, const char *id, json_t *body)
{
    char *path = id ? util_strdup_printf("/%s", id) : strdup("");
    if (!path) {
        json_decref(body);
        return -ENOMEM;
    }
    json_t *a = json_pack("{s:s, s:s, s:o?}", "method", method, "path", path, "body", body);
    free(path);
    return a ? json_array_append_new(actions, a) : -ENOMEM;
}

/*
 * reconcile_type() - actions that leave exactly one node of @type per wanted hostname: update
 * the newest existing one, delete its duplicates, create missing ones, delete nodes of hostnames
 * not wanted. @want: [{hostname, id?, body}] where body is the node to send.
 */
static int reconcile_type(KonnectSink *k, const char *type, json_t *want, json_t *actions)
{
    size_t i, j;
    json_t *n, *w;
    json_array_foreach(k->node_items, i, n)
    {
        if (strcmp(s_of(n, "type") ? s_of(n, "type") : "", type) != 0)
            continue;
        const char *hn = s_of(n, "hostname");
        bool wanted = false;
        json_array_foreach(want, j, w)
        {
            if (hn && strcmp(hn, s_of(w, "hostname")) == 0)
                wanted = true;
        }
        if (!wanted && s_of(n, "id") && add_action(actions, "DELETE", s_of(n, "id"), NULL) < 0)
            return -ENOMEM;
    }
    json_array_foreach(want, j, w)
    {
        json_t *newest = NULL;
        json_array_foreach(k->node_items, i, n)
        {
            if (strcmp(s_of(n, "type") ? s_of(n, "type") : "", type) != 0 ||
                strcmp(s_of(n, "hostname") ? s_of(n, "hostname") : "", s_of(w, "hostname")) != 0 ||
                !s_of(n, "id"))
                continue;
            if (!newest || last_ping(n) > last_ping(newest))
                newest = n;
        }
        json_array_foreach(k->node_items, i, n)
        {
            if (n == newest || strcmp(s_of(n, "type") ? s_of(n, "type") : "", type) != 0 ||
                strcmp(s_of(n, "hostname") ? s_of(n, "hostname") : "", s_of(w, "hostname")) != 0 ||
                !s_of(n, "id"))
                continue;
            if (add_action(actions, "DELETE", s_of(n, "id"), NULL) < 0)
                return -ENOMEM;
        }
        json_t *body = json_deep_copy(json_object_get(w, "body"));
        if (!body)
            return -ENOMEM;
        if (newest) {
            json_object_set(body, "id", json_object_get(newest, "id"));
            if (add_action(actions, "PUT", s_of(newest, "id"), body) < 0)
                return -ENOMEM;
        } else if (add_action(actions, "POST", NULL, body) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int plan(KonnectSink *k)
{
    json_int_t now = (json_int_t)time(NULL);
    json_t *actions = json_array();
    snprintf(k->node_reported, sizeof(k->node_reported), "%s", konnect__node_status(k));
    json_t *ic =
        json_pack("[{s:s, s:{s:s, s:s, s:s, s:I, s:s, s:s}}]", "hostname", k->hostname, "body",
                  "id", k->instance_id, "hostname", k->hostname, "type", "ingress-controller",
                  "last_ping", now, "version", k->version, "status", konnect__node_status(k));
    json_t *gw = json_array();
    int r = -ENOMEM;
    if (!actions || !ic || !gw)
        goto out;
    const char *first_version = s_of(json_array_get(k->gateways, 0), "version");
    size_t i;
    json_t *g;
    json_array_foreach(k->gateways, i, g)
    {
        const char *v = s_of(g, "version") ? s_of(g, "version") : first_version;
        json_t *body = json_pack("{s:s, s:s, s:I, s:s?}", "hostname", s_of(g, "hostname"), "type",
                                 "kong-proxy", "last_ping", now, "version", v);
        if (!body)
            goto out;
        if (s_of(g, "node_id"))
            json_object_set(body, "id", json_object_get(g, "node_id"));
        json_array_append_new(
            gw, json_pack("{s:s, s:o}", "hostname", s_of(g, "hostname"), "body", body));
    }
    if ((r = reconcile_type(k, "ingress-controller", ic, actions)) < 0 ||
        (r = reconcile_type(k, "kong-proxy", gw, actions)) < 0)
        goto out;
    json_decref(k->node_actions);
    k->node_actions = actions;
    actions = NULL;
    r = 0;
out:
    json_decref(actions);
    json_decref(ic);
    json_decref(gw);
    return r;
}

static void on_node_done(void *ud, CURL *easy, const HttpResult *res)
{
    NodeReq *q = ud;
    KonnectSink *k = q->k;
    (void)easy;
    curl_slist_free_all(q->hdrs);
    free(q);
    k->node_req = NULL;
    if (k->closing) {
        k->node_phase = NODE_IDLE;
        konnect__maybe_closed(k);
        return;
    }
    bool ok = res->code == CURLE_OK && res->status >= 200 && res->status < 300;
    if (k->node_phase == NODE_ACTING && !ok && res->code == CURLE_OK && res->status == 404 &&
        strcmp(s_of(json_array_get(k->node_actions, 0), "method"), "DELETE") == 0)
        ok = true;
    if (!ok) {
        char why[160];
        if (res->code != CURLE_OK)
            snprintf(why, sizeof(why), "%s", curl_easy_strerror(res->code));
        else
            snprintf(why, sizeof(why), "HTTP %ld", res->status);
        node_done(k, false, why);
        return;
    }
    if (k->node_phase == NODE_LISTING) {
        json_t *doc = json_loadb(res->body, res->body_len, 0, NULL);
        json_t *items = json_object_get(doc, "items");
        json_t *page = json_object_get(doc, "page");
        if (!json_is_array(items)) {
            json_decref(doc);
            node_done(k, false, "unreadable node list");
            return;
        }
        json_array_extend(k->node_items, items);
        const char *next = s_of(page, "next_cursor");
        free(k->node_cursor);
        k->node_cursor = NULL;
        if (next && *next && json_array_size(items) > 0 &&
            json_array_size(k->node_items) < 100000 &&
            !json_is_false(json_object_get(page, "has_next_page")))
            k->node_cursor = strdup(next);
        json_decref(doc);
        if (!k->node_cursor) {
            if (plan(k) < 0) {
                node_done(k, false, "out of memory");
                return;
            }
            k->node_phase = NODE_ACTING;
        }
    } else {
        json_array_remove(k->node_actions, 0);
    }
    node_step(k);
}

static void node_step(KonnectSink *k)
{
    char *url = NULL, *body = NULL;
    const char *method = "GET";
    if (k->node_phase == NODE_LISTING) {
        char *esc = k->node_cursor ? curl_easy_escape(NULL, k->node_cursor, 0) : NULL;
        char *suffix = util_strdup_printf("?page.size=100%s%s", esc ? "&page.next_cursor=" : "",
                                          esc ? esc : "");
        curl_free(esc);
        url = suffix ? nodes_url(k, suffix) : NULL;
        free(suffix);
    } else {
        json_t *a = json_array_get(k->node_actions, 0);
        if (!a) {
            node_done(k, true, NULL);
            return;
        }
        method = s_of(a, "method");
        url = nodes_url(k, s_of(a, "path"));
        if (json_object_get(a, "body"))
            body = json_dumps(json_object_get(a, "body"), JSON_COMPACT);
    }
    NodeReq *q = calloc(1, sizeof(*q));
    CURL *e = url && q ? konnect__easy(k, method, url, body, &q->hdrs) : NULL;
    free(url);
    free(body);
    if (!e) {
        free(q);
        node_done(k, false, "out of memory");
        return;
    }
    q->k = k;
    q->easy = e;
    if (http_start(k->http, e, MAX_NODES_BODY, on_node_done, q) < 0) {
        curl_slist_free_all(q->hdrs);
        free(q);
        node_done(k, false, "could not start a request");
        return;
    }
    k->node_req = q;
}

bool konnect__nodes_busy(KonnectSink *k)
{
    return k->node_req != NULL;
}

void konnect__nodes_cancel(KonnectSink *k)
{
    if (k->node_req)
        http_cancel(k->http, k->node_req->easy);
}

void konnect__nodes_close_handles(KonnectSink *k, uv_close_cb cb)
{
    uv_timer_stop(&k->node_timer);
    uv_close((uv_handle_t *)&k->node_timer, cb);
    k->open_handles++;
}

void konnect__nodes_free(KonnectSink *k)
{
    json_decref(k->gateways);
    json_decref(k->node_items);
    json_decref(k->node_actions);
    free(k->node_cursor);
}

void konnect_sink_set_gateways(Sink *s, json_t *gateways)
{
    KonnectSink *k = (KonnectSink *)s;
    json_t *list = json_array();
    if (!list)
        return;
    size_t i, j;
    json_t *g, *o;
    json_array_foreach(gateways, i, g)
    {
        /* As KIC: only gateways that are ready (answering their Admin API) are reported. */
        const char *state = s_of(g, "state");
        if (state && strcmp(state, "ready") != 0)
            continue;
        const char *hn = s_of(g, "hostname");
        char *fallback = NULL;
        if (!hn || !*hn) {
            /* KIC names a gateway without a Pod by its address: gateway_<host:port>. */
            const char *url = s_of(g, "url");
            if (!url)
                continue;
            const char *p = strstr(url, "://");
            p = p ? p + 3 : url;
            fallback = util_strdup_printf("gateway_%.*s", (int)strcspn(p, "/"), p);
            hn = fallback;
        }
        bool dup = false;
        json_array_foreach(list, j, o)
        {
            if (hn && strcmp(s_of(o, "hostname"), hn) == 0)
                dup = true;
        }
        if (hn && !dup)
            json_array_append_new(list,
                                  json_pack("{s:s, s:s?, s:s?}", "hostname", hn, "node_id",
                                            s_of(g, "node_id") ? s_of(g, "node_id") : s_of(g, "id"),
                                            "version", s_of(g, "version")));
        free(fallback);
    }
    if (json_equal(list, k->gateways)) {
        json_decref(list);
        return;
    }
    json_decref(k->gateways);
    k->gateways = list;
    konnect__nodes_kick(k);
}
