/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
 * lease 15 s, renew deadline 10 s, retry 2 s. Expiry is judged by local observation time (the
 * record must stay unchanged for a whole lease duration), never by comparing clocks. Writes use
 * the resourceVersion for optimistic concurrency; a 409 re-reads at once. On close the leader
 * empties holderIdentity so that a follower takes over without waiting out the lease.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_int.h"
#include "log.h"

enum {
    LEASE_DURATION_S = 15,
    RENEW_DEADLINE_MS = 10000,
    RETRY_MS = 2000,
    REQ_TIMEOUT_MS = 5000,
    RELEASE_TIMEOUT_MS = 3000,
    MAX_BODY = 1024 * 1024,
};

struct K8sLease {
    K8s *k;
    uv_timer_t timer;
    bool timer_open;
    bool busy; /* a request is in flight */
    bool closing;
    K8sReq *req;
    char *path;    /* .../leases/NAME */
    char *coll;    /* .../leases */
    json_t *lease; /* last Lease read or written */
    K8sLeaseObs obs;
    uint64_t last_renew_ms; /* last successful write as leader */
    uint64_t m_transitions;
};

bool k8s__lease_observe(K8sLeaseObs *o, const json_t *lease, const char *me, uint64_t now_ms)
{
    json_t *spec = json_object_get(lease, "spec");
    const char *holder = k8s__str(spec, "holderIdentity");
    json_int_t dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
    if (dur <= 0)
        dur = LEASE_DURATION_S;
    char key[512];
    snprintf(key, sizeof(key), "%s|%s|%lld", holder, k8s__str(spec, "renewTime"), (long long)dur);
    if (strcmp(key, o->key) != 0) {
        snprintf(o->key, sizeof(o->key), "%s", key);
        o->at_ms = now_ms;
    }
    if (!*holder || strcmp(holder, me) == 0)
        return true;
    return now_ms >= o->at_ms + (uint64_t)dur * 1000;
}

json_t *k8s__lease_build(const json_t *old, const char *ns, const char *name, const char *me,
                         int duration_s, bool release)
{
    char now[40];
    k8s__now_micro(now);
    json_t *l = old ? json_deep_copy(old) : json_object();
    if (!l)
        return NULL;
    json_object_set_new(l, "apiVersion", json_string("coordination.k8s.io/v1"));
    json_object_set_new(l, "kind", json_string("Lease"));
    json_t *md = json_object_get(l, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(l, "metadata", md);
    }
    json_object_set_new(md, "name", json_string(name));
    json_object_set_new(md, "namespace", json_string(ns));
    json_object_del(md, "managedFields");
    json_t *spec = json_object_get(l, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(l, "spec", spec);
    }
    const char *holder = k8s__str(spec, "holderIdentity");
    json_int_t trans = json_integer_value(json_object_get(spec, "leaseTransitions"));
    if (release) {
        json_object_set_new(spec, "holderIdentity", json_string(""));
        json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
        json_object_set_new(spec, "acquireTime", json_string(now));
        json_object_set_new(spec, "renewTime", json_string(now));
        return l;
    }
    bool ours = strcmp(holder, me) == 0;
    if (!ours) {
        json_object_set_new(spec, "acquireTime", json_string(now));
        /* A transition is a change from one holder to another (as client-go counts it). */
        if (old && *holder)
            trans++;
        json_object_set_new(spec, "leaseTransitions", json_integer(trans));
    }
    if (!json_object_get(spec, "leaseTransitions"))
        json_object_set_new(spec, "leaseTransitions", json_integer(0));
    json_object_set_new(spec, "holderIdentity", json_string(me));
    json_object_set_new(spec, "leaseDurationSeconds", json_integer(duration_s));
    json_object_set_new(spec, "renewTime", json_string(now));
    return l;
}

static void cycle(K8sLease *l);
static void on_tick(uv_timer_t *t)
{
    cycle(t->data);
}

static void arm(K8sLease *l, uint64_t ms)
{
    if (!l->closing && l->timer_open)
        uv_timer_start(&l->timer, on_tick, ms, 0);
}

/* Leadership is lost when no renewal succeeded within the renew deadline. */
static void check_deadline(K8sLease *l)
{
    K8s *k = l->k;
    if (k->is_leader && util_now_ms() - l->last_renew_ms > RENEW_DEADLINE_MS) {
        log_event(LOG_WARN, "k8s", "lease not renewed within the deadline", "{s:s, s:i}", "lease",
                  k->election_id, "deadline_ms", RENEW_DEADLINE_MS);
        k8s__set_leader(k, false);
    }
}

static void on_write_done(K8s *k, void *ud, const K8sResp *r)
{
    K8sLease *l = ud;
    l->busy = false;
    l->req = NULL;
    if (l->closing)
        return;
    if (r->code == CURLE_OK && (r->status == 200 || r->status == 201) && json_is_object(r->json)) {
        json_decref(l->lease);
        l->lease = json_incref(r->json);
        (void)k8s__lease_observe(&l->obs, l->lease, k->identity, util_now_ms());
        l->last_renew_ms = util_now_ms();
        if (!k->is_leader)
            l->m_transitions++;
        k8s__set_leader(k, true);
        arm(l, RETRY_MS);
        return;
    }
    if (r->code == CURLE_OK && r->status == 409) {
        /* Someone else wrote it first: read again at once. */
        json_decref(l->lease);
        l->lease = NULL;
        check_deadline(l);
        arm(l, 0);
        return;
    }
    log_event(LOG_WARN, "k8s", "lease write failed", "{s:s, s:s}", "lease", k->election_id, "err",
              k8s__resp_err(r));
    json_decref(l->lease);
    l->lease = NULL;
    check_deadline(l);
    arm(l, RETRY_MS);
}

static void write_lease(K8sLease *l, const json_t *old)
{
    K8s *k = l->k;
    json_t *body =
        k8s__lease_build(old, k->election_ns, k->election_id, k->identity, LEASE_DURATION_S, false);
    int r = body ? k8s__request(k, old ? "PUT" : "POST", old ? l->path : l->coll, body, NULL,
                                REQ_TIMEOUT_MS, MAX_BODY, NULL, on_write_done, l, &l->req)
                 : -ENOMEM;
    json_decref(body);
    if (r < 0) {
        check_deadline(l);
        arm(l, RETRY_MS);
        return;
    }
    l->busy = true;
}

static void on_get_done(K8s *k, void *ud, const K8sResp *r)
{
    K8sLease *l = ud;
    l->busy = false;
    l->req = NULL;
    if (l->closing)
        return;
    if (r->code == CURLE_OK && r->status == 404) {
        write_lease(l, NULL);
        return;
    }
    if (r->code != CURLE_OK || r->status != 200 || !json_is_object(r->json)) {
        log_event(LOG_WARN, "k8s", "lease read failed", "{s:s, s:s}", "lease", k->election_id,
                  "err", k8s__resp_err(r));
        check_deadline(l);
        arm(l, RETRY_MS);
        return;
    }
    json_decref(l->lease);
    l->lease = json_incref(r->json);
    if (!k8s__lease_observe(&l->obs, l->lease, k->identity, util_now_ms())) {
        /* Held by another live candidate. */
        if (k->is_leader)
            k8s__set_leader(k, false);
        arm(l, RETRY_MS);
        return;
    }
    write_lease(l, l->lease);
}

static void cycle(K8sLease *l)
{
    K8s *k = l->k;
    if (l->closing || l->busy)
        return;
    check_deadline(l);
    /* The leader renews from the copy it wrote last; everyone else reads first. */
    if (k->is_leader && l->lease) {
        write_lease(l, l->lease);
        return;
    }
    int r = k8s__request(k, "GET", l->path, NULL, NULL, REQ_TIMEOUT_MS, MAX_BODY, NULL, on_get_done,
                         l, &l->req);
    if (r < 0) {
        arm(l, RETRY_MS);
        return;
    }
    l->busy = true;
}

int k8s__lease_new(K8s *k, K8sLease **ret)
{
    K8sLease *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->k = k;
    l->coll =
        util_strdup_printf("/apis/coordination.k8s.io/v1/namespaces/%s/leases", k->election_ns);
    l->path = util_strdup_printf("%s/%s", l->coll ? l->coll : "", k->election_id);
    if (!l->coll || !l->path) {
        free(l->coll);
        free(l->path);
        free(l);
        return -ENOMEM;
    }
    *ret = l;
    return 0;
}

int k8s__lease_start(K8sLease *l)
{
    uv_timer_init(l->k->loop, &l->timer);
    l->timer.data = l;
    l->timer_open = true;
    log_event(LOG_INFO, "k8s", "leader election started", "{s:s, s:s, s:s}", "lease",
              l->k->election_id, "namespace", l->k->election_ns, "identity", l->k->identity);
    arm(l, 0);
    return 0;
}

static void lease_free(K8sLease *l)
{
    json_decref(l->lease);
    free(l->path);
    free(l->coll);
    free(l);
}

static void on_closed(uv_handle_t *h)
{
    K8sLease *l = h->data;
    K8s *k = l->k;
    k->lease = NULL;
    lease_free(l);
    k8s__close_step(k);
}

static void finish_close(K8sLease *l)
{
    if (!l->timer_open) {
        K8s *k = l->k;
        k->lease = NULL;
        lease_free(l);
        k8s__close_step(k);
        return;
    }
    uv_close((uv_handle_t *)&l->timer, on_closed);
}

static void on_release_done(K8s *k, void *ud, const K8sResp *r)
{
    K8sLease *l = ud;
    if (r->code == CURLE_OK && r->status == 200)
        log_event(LOG_INFO, "k8s", "lease released", "{s:s}", "lease", k->election_id);
    else
        log_event(LOG_WARN, "k8s", "lease release failed", "{s:s, s:s}", "lease", k->election_id,
                  "err", k8s__resp_err(r));
    finish_close(l);
}

void k8s__lease_close(K8sLease *l)
{
    K8s *k = l->k;
    l->closing = true;
    if (l->timer_open)
        uv_timer_stop(&l->timer);
    if (l->req)
        k8s__cancel(k, l->req);
    if (k->is_leader && l->lease && k->leader_election) {
        json_t *body = k8s__lease_build(l->lease, k->election_ns, k->election_id, k->identity,
                                        LEASE_DURATION_S, true);
        int r = body ? k8s__request(k, "PUT", l->path, body, NULL, RELEASE_TIMEOUT_MS, MAX_BODY,
                                    NULL, on_release_done, l, NULL)
                     : -ENOMEM;
        json_decref(body);
        if (r == 0)
            return;
    }
    finish_close(l);
}
