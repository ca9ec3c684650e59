#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Konnect sink against the fake Konnect, driven by konnect-driver.

usage: test_konnect.py DRIVER SCENARIO
Each scenario starts its own fake (mutual TLS, test CA made at run time) and driver.
"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kharness import (CP_ID, Driver, config, fake, issue_client, kid,  # noqa: E402
                      no_secrets_sent, pki, wait_for)


def expected_counts(n, consumers=True):
    c = {"services": n, "routes": n, "upstreams": n, "targets": n, "certificates": 1, "snis": 2,
         "plugins": math.ceil(n / 5) + math.ceil(n / 7) + 1 + (1 if consumers else 0)}
    if consumers:
        c.update({"consumers": 2, "key-auths": 1, "basic-auths": 1, "acls": 1, "hmac-auths": 1,
                  "consumer_group_consumers": 1})
    c["consumer_groups"] = 1
    return {k: v for k, v in c.items() if v}


def counts(fk):
    return {k: len(v) for k, v in fk.snapshot().items()}


def route0_paths(fk):
    return fk.entities["routes"][kid("routes", "default.ing-0000.svc-0000.example.com.80")]["paths"]


def entity_requests(fk):
    """Requests to the entity API (not to the nodes API)."""
    return [(m, p) for m, p, _ in fk.requests if not p.startswith("/v1/")]


def list_gets(fk):
    """GETs of entity lists (full reads), not of nodes."""
    return [p for m, p, _ in fk.requests if m == "GET" and not p.startswith("/v1/")]


def run(exe, fk, **opts):
    return Driver(exe, fk, **opts)


def scenario_initial_sync(exe):
    """First sync creates everything in dependency order, secrets redacted, with paging."""
    fk = fake()
    # Stale entities (3 pages of services) that tether must page through and delete.
    for i in range(2100):
        fk.insert_behind("services", {"id": "00000000-0000-4000-8000-%012d" % i,
                                      "name": "stale-%d" % i, "host": "x"})
    d = run(exe, fk)
    try:
        seq = d.publish(config(20))
        d.wait_applied(seq)
        assert counts(fk) == expected_counts(20), counts(fk)
        svc_gets = [p for m, p, q in fk.requests if m == "GET" and p == "/services"]
        offsets = [q.get("offset") for m, p, q in fk.requests if m == "GET" and p == "/services"]
        assert len(svc_gets) == 3 and offsets[0] is None and all(offsets[1:]), offsets
        assert all(q.get("size") == ["1000"] for m, p, q in fk.requests
                   if m == "GET" and not p.startswith("/v1")), "size=1000 on every list"
        assert no_secrets_sent(fk), "a secret reached Konnect"
        cert = next(iter(fk.entities["certificates"].values()))
        assert cert["key"].startswith("{vault://redacted/"), cert["key"]
        assert "snis" not in cert
        ka = next(iter(fk.entities["key-auths"].values()))
        assert ka["key"].startswith("{vault://"), ka
        # Dependency order: every route PUT after its service PUT, plugins after routes,
        # deletes of stale services after all creates.
        order = [(m, p) for m, p, _ in fk.requests if m in ("PUT", "DELETE")]
        first = {}
        for i, (m, p) in enumerate(order):
            first.setdefault((m, p.split("/")[1]), i)
        last = {}
        for i, (m, p) in enumerate(order):
            last[(m, p.split("/")[1])] = i
        assert last[("PUT", "services")] < first[("PUT", "routes")]
        assert last[("PUT", "certificates")] < first[("PUT", "snis")]
        assert last[("PUT", "routes")] < first[("PUT", "plugins")]
        assert last[("PUT", "consumers")] < first[("PUT", "plugins")]
        assert last[("PUT", "plugins")] < first[("DELETE", "services")]
        assert fk.max_active <= 4, fk.max_active
        # The same configuration again (a new revision, same content): nothing is sent.
        before = len(entity_requests(fk))
        seq2 = d.publish(config(20))
        d.wait_applied(seq2)
        assert len(entity_requests(fk)) == before, entity_requests(fk)[before:]
        # The identical IDs across runs: a new process with the same config writes nothing.
        d.quit()
        fk.reset_counts()
        d = run(exe, fk)
        seq = d.publish(config(20))
        d.wait_applied(seq)
        assert fk.writes() == [], fk.writes()
    finally:
        d.kill()
        fk.stop()


def scenario_one_change(exe):
    """One changed Ingress of 1,000: at most 5 writes and no full re-read."""
    fk = fake()
    d = run(exe, fk)
    try:
        seq = d.publish(config(1000))
        d.wait_applied(seq, timeout=280)
        assert counts(fk) == expected_counts(1000), counts(fk)
        fk.reset_counts()
        seq = d.publish(config(1000, variant=1))
        d.wait_applied(seq)
        assert route0_paths(fk) == ["/changed-1"]
        assert len(fk.writes()) <= 5 and len(fk.writes()) >= 1, fk.writes()
        assert list_gets(fk) == [], "full re-read after a successful round"
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_defaults_and_drift(exe):
    """Defaults Konnect adds are not drift; entities changed behind tether's back are put back
    at the periodic full re-read."""
    fk = fake()
    fk.defaults = True
    d = run(exe, fk, full_resync=1)
    try:
        seq = d.publish(config(10))
        d.wait_applied(seq)
        fk.reset_counts()
        # A full re-read happens; the added defaults cause no writes.
        wait_for(lambda: fk.count("GET", exact="/routes") >= 1, 30, "a full re-read")
        wait_for(lambda: fk.count("GET", exact="/plugins") >= 1 and fk.active == 0, 30, "reads")
        time.sleep(0.5)
        assert fk.writes() == [], fk.writes()
        # Drift: a route changed, a plugin deleted, a stray service added.
        rid = kid("routes", "default.ing-0003.svc-0003.example.com.80")
        fk.modify("routes", rid, {"paths": ["/hacked"]})
        pid = kid("plugins", "prometheus")
        fk.delete_behind("plugins", pid)
        fk.insert_behind("services", {"id": "11111111-2222-4333-8444-555555555555",
                                      "name": "stray", "host": "x"})
        fk.reset_counts()
        wait_for(lambda: fk.entities["routes"][rid]["paths"] == ["/p3"] and
                 pid in fk.entities["plugins"] and
                 "11111111-2222-4333-8444-555555555555" not in fk.entities["services"],
                 30, "drift put back")
        time.sleep(0.3)
        writes = sorted(fk.writes())
        assert writes == sorted([("PUT", "/routes/" + rid), ("PUT", "/plugins/" + pid),
                                 ("DELETE", "/services/11111111-2222-4333-8444-555555555555")]), \
            writes
        d.quit()
    finally:
        d.kill()
        fk.stop()


def outage(exe, mode):
    fk = fake()
    d = run(exe, fk, timeout=1, retries=2)
    try:
        seq = d.publish(config(10))
        d.wait_applied(seq)
        fk.set_mode(mode)
        seqs = []
        for v in range(1, 6):
            seqs.append(d.publish(config(10, variant=v)))
            time.sleep(0.1)
        # The sink keeps trying in the background and reports failures.
        d.wait_event(lambda e: e["event"] == "applied" and e["ok"] == 0, 60, "a failed round")
        st = d.status()
        assert st["pending_seq"] == seqs[-1] or st["round"] != "idle", st
        fk.set_mode("ok")
        d.wait_applied(seqs[-1], timeout=60)
        assert route0_paths(fk) == ["/changed-5"]
        # Only the newest revision was synced: older ones never succeeded (no growing queue).
        oks = [s for s, ok in d.applied() if ok]
        assert not any(s in oks for s in seqs[:-1]), d.applied()
        lag = d.metric("tether_konnect_revision_lag")
        assert lag == 0, lag
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_outage_down(exe):
    outage(exe, "down")


def scenario_outage_blackhole(exe):
    outage(exe, "blackhole")


def scenario_startup_unreachable(exe):
    """Konnect unreachable at start-up: never give up, sync once it is back."""
    fk = fake()
    fk.set_mode("down")
    d = run(exe, fk, timeout=1, retries=1)
    try:
        seq = d.publish(config(5))
        d.wait_applied(seq, ok=0)
        d.wait_event(lambda e: e["event"] == "applied" and e["ok"] == 0 and
                     sum(1 for x in d.events if x["event"] == "applied") >= 2, 30,
                     "a second failed round")
        fk.set_mode("ok")
        d.wait_applied(seq, ok=1)
        assert counts(fk) == expected_counts(5)
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_rate_limited(exe):
    """429 with Retry-After: the request is retried after the delay, the round is not lost."""
    fk = fake()
    d = run(exe, fk)
    try:
        seq = d.publish(config(10))
        d.wait_applied(seq)
        fk.reset_counts()
        fk.fail(429, count=2, retry_after=1, methods=["PUT"], path_contains="/routes/")
        seq = d.publish(config(10, variant=1))
        d.wait_applied(seq)
        assert route0_paths(fk) == ["/changed-1"]
        t = [(ts, m, p, s) for ts, m, p, s in fk.times if m == "PUT" and p.startswith("/routes/")]
        assert [s for _, _, _, s in t[:2]] == [429, 429], t
        assert t[1][0] - t[0][0] >= 0.95 and t[2][0] - t[1][0] >= 0.95, "Retry-After ignored"
        assert d.metric('tether_konnect_retries_total{reason="429"}') == 2
        assert d.metric('tether_konnect_sync_rounds_total{result="failure"}') == 0
        assert list_gets(fk) == [], "a retried request must not restart the round"
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_slow(exe):
    """A slow Konnect (0.2 s, then 2.5 s an answer): rounds complete, with the configured
    concurrency in use and never more."""
    fk = fake()
    fk.set_mode("ok", slow=0.2)
    d = run(exe, fk, concurrency=3, timeout=5)
    try:
        seq = d.publish(config(5))
        d.wait_applied(seq)
        assert counts(fk) == expected_counts(5)
        assert fk.max_active == 3, fk.max_active
        fk.set_mode("ok", slow=2.5)
        seq = d.publish(config(5, variant=1))
        d.wait_applied(seq)
        assert route0_paths(fk) == ["/changed-1"]
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_server_errors(exe):
    """5xx answers are retried per request with backoff, the round resumes."""
    fk = fake()
    d = run(exe, fk)
    try:
        fk.fail(503, count=3, path_contains="/services")
        seq = d.publish(config(10))
        d.wait_applied(seq)
        assert counts(fk) == expected_counts(10)
        assert d.metric('tether_konnect_retries_total{reason="5xx"}') == 3
        assert d.metric('tether_konnect_sync_rounds_total{result="failure"}') == 0
        m = d.metrics()
        ok_line = ('ingress_controller_configuration_push_count{success="true",protocol="deck",'
                   'failure_reason="",dataplane="%s/kic/api/control-planes/%s"} 1' %
                   (fk.address, CP_ID))
        assert ok_line in m, m
        # Merged into the data plane sink's families when they come first: one group each.
        dp = ('# HELP ingress_controller_configuration_push_count Count.\n'
              '# TYPE ingress_controller_configuration_push_count counter\n'
              'ingress_controller_configuration_push_count{success="true",protocol="db-less",'
              'failure_reason="",dataplane="http://gw"} 7\n'
              '# HELP ingress_controller_configuration_push_duration_milliseconds H.\n'
              '# TYPE ingress_controller_configuration_push_duration_milliseconds histogram\n'
              '# HELP tether_dataplane_gateways G.\n# TYPE tether_dataplane_gateways gauge\n'
              'tether_dataplane_gateways{state="ready"} 1\n')
        m = d.metrics(prefix=dp).splitlines()
        for fam in ("ingress_controller_configuration_push_count",
                    "ingress_controller_configuration_push_duration_milliseconds",
                    "ingress_controller_configuration_push_last_successful"):
            assert sum(1 for x in m if x.startswith("# TYPE %s " % fam)) == 1, fam
            idx = [i for i, x in enumerate(m) if x.startswith(fam)]
            assert idx == list(range(idx[0], idx[0] + len(idx))), "%s not grouped" % fam
        i = m.index(ok_line)
        assert m[i - 1].endswith('dataplane="http://gw"} 7'), m[i - 1]
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_parks_4xx(exe):
    """A 4xx other than 429 parks the revision until a newer one arrives."""
    fk = fake()
    d = run(exe, fk, full_resync=0.5)
    try:
        seq = d.publish(config(5))
        d.wait_applied(seq)
        fk.fail(400, count=-1, methods=["PUT"], path_contains="/routes/")
        seq = d.publish(config(5, variant=1))
        d.wait_applied(seq, ok=0)
        assert d.status()["parked"] is True
        assert d.metric("tether_konnect_parked") == 1
        fk.clear_failures()
        puts = fk.count("PUT", prefix="/routes/")
        time.sleep(3)  # well past backoff and re-read periods: the parked revision stays parked
        assert fk.count("PUT", prefix="/routes/") == puts, "a parked revision was retried"
        assert route0_paths(fk) == ["/p0"]
        seq = d.publish(config(5, variant=2))
        d.wait_applied(seq)
        assert route0_paths(fk) == ["/changed-2"]
        assert d.status()["parked"] is False
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_unauthorized_not_parked(exe):
    """401/403 come from credentials, not from the configuration: the revision is not parked and
    syncs once Konnect accepts the client again."""
    fk = fake()
    d = run(exe, fk, full_resync=600)
    try:
        fk.fail(403, count=-1, methods=["GET", "PUT"], path_contains="/services")
        seq = d.publish(config(3))
        d.wait_applied(seq, ok=0)
        assert d.status()["parked"] is False
        fk.clear_failures()
        d.wait_applied(seq, ok=1)
        assert counts(fk) == expected_counts(3)
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_wrong_server_cert(exe):
    """A server certificate from another CA: the handshake fails, no data is sent."""
    fk = fake()
    fk.set_mode("wrong_cert")
    d = run(exe, fk, timeout=2, retries=1)
    try:
        seq = d.publish(config(5))
        d.wait_applied(seq, ok=0)
        assert fk.requests == [], "data sent to a server that failed verification"
        assert fk.connections.get("wrong_cert", 0) >= 1
        fk.set_mode("ok")
        d.wait_applied(seq, ok=1)
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_client_cert_required(exe):
    """The fake refuses a client certificate from another CA: nothing reaches the API."""
    fk = fake()
    p = pki()
    d = run(exe, fk, cert=p["rogueclient.crt"], key=p["rogueclient.key"], timeout=2, retries=1)
    try:
        seq = d.publish(config(5))
        d.wait_applied(seq, ok=0)
        assert fk.requests == [] and fk.tls_failures, (fk.requests, fk.tls_failures)
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_cert_rotation(exe):
    """A rotated client certificate (files replaced, as a Secret update does) is used for new
    connections without a restart."""
    import shutil
    import tempfile
    fk = fake()
    fk.keepalive = False
    tmp = tempfile.mkdtemp(prefix="tether-konnect-rot-")
    p = pki()
    cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    shutil.copy(p["client.crt"], cert)
    shutil.copy(p["client.key"], key)
    d = run(exe, fk, cert=cert, key=key)
    try:
        seq = d.publish(config(3))
        d.wait_applied(seq)
        assert set(fk.client_cns) == {"client"}, fk.client_cns
        ncrt, nkey = issue_client(tmp, "client-rotated")
        # Replace both files by rename, key first (a half-rotated pair must not be used).
        os.rename(nkey, key)
        os.rename(ncrt, cert)
        v = 1

        def rotated():
            nonlocal v
            v += 1
            d.wait_applied(d.publish(config(3, variant=v)))
            return fk.client_cns[-1] == "client-rotated"
        wait_for(rotated, 60, "the rotated certificate in use", interval=0.5)
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_pinned_self_signed(exe):
    """Konnect's usual set-up: a self-signed client certificate (`tether certs generate` without
    a CA) that the control plane pins."""
    import subprocess
    import tempfile
    tether = os.environ.get("TETHER")
    if not tether or not os.access(tether, os.X_OK):
        print("SKIP: no tether binary")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="tether-konnect-pin-")
    cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    subprocess.run([tether, "certs", "generate", "--cert", cert, "--key", key, "--cn",
                    "konnect-pinned"], check=True, stdout=subprocess.DEVNULL)
    fk = fake(client_ca=cert)
    d = run(exe, fk, cert=cert, key=key)
    try:
        seq = d.publish(config(3))
        d.wait_applied(seq)
        assert counts(fk) == expected_counts(3) and set(fk.client_cns) == {"konnect-pinned"}
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_nodes(exe):
    """One ingress-controller node and one kong-proxy node per gateway, duplicates removed,
    updates on change, retried on failure."""
    fk = fake()
    # Leftovers: an old controller node of another pod, a duplicate proxy node.
    fk.nodes["old-ic"] = {"id": "old-ic", "hostname": "kong/tether-old",
                          "type": "ingress-controller", "last_ping": 1}
    fk.nodes["dup-1"] = {"id": "dup-1", "hostname": "kong/gw-a", "type": "kong-proxy",
                         "last_ping": 5}
    fk.nodes["dup-2"] = {"id": "dup-2", "hostname": "kong/gw-a", "type": "kong-proxy",
                         "last_ping": 9}
    fk.fail(500, count=2, path_contains="/v1/kic-nodes")
    d = run(exe, fk, node_period=30)
    try:
        gws = [{"hostname": "kong/gw-a", "node_id": "n-a", "version": "3.9.1"},
               {"hostname": "kong/gw-b", "version": "3.9.1"},
               {"hostname": "kong/gw-a", "node_id": "n-a"},
               {"url": "https://10.0.0.9:8444"}]
        d.send({"op": "gateways", "gateways": gws})
        seq = d.publish(config(3))
        d.wait_applied(seq)

        def nodes_ok():
            ns = list(fk.nodes.values())
            ic = [n for n in ns if n["type"] == "ingress-controller"]
            px = sorted(n["hostname"] for n in ns if n["type"] == "kong-proxy")
            return (len(ic) == 1 and ic[0]["hostname"] == "kong/tether-0" and
                    ic[0].get("status") == "INGRESS_CONTROLLER_STATE_OPERATIONAL" and
                    px == ["gateway_10.0.0.9:8444", "kong/gw-a", "kong/gw-b"])
        wait_for(nodes_ok, 30, "nodes reported")
        assert "dup-2" in fk.nodes and "dup-1" not in fk.nodes, "newest duplicate kept"
        assert d.metric('tether_konnect_node_updates_total{result="failure"}') >= 1
        # A gateway goes away: its node is removed at once (not after the 30 s period).
        d.send({"op": "gateways", "gateways": gws[:1]})
        wait_for(lambda: sorted(n["hostname"] for n in fk.nodes.values()
                                if n["type"] == "kong-proxy") == ["kong/gw-a"], 20,
                 "gateway node removed")
        # Syncs that change nothing in the status cause no node updates (KIC #4322).
        time.sleep(0.5)
        before = fk.count(prefix="/v1/kic-nodes")
        for v in range(2, 5):
            d.wait_applied(d.publish(config(3, variant=v)))
        time.sleep(0.5)
        assert fk.count(prefix="/v1/kic-nodes") == before, "node update without a change"
        # Konnect out of sync shows in the status.
        fk.fail(400, count=-1, methods=["PUT"], path_contains="/routes/")
        seq = d.publish(config(3, variant=10))
        d.wait_applied(seq, ok=0)
        wait_for(lambda: any(n.get("status") ==
                             "INGRESS_CONTROLLER_STATE_OPERATIONAL_KONNECT_OUT_OF_SYNC"
                             for n in fk.nodes.values()), 20, "out-of-sync status")
        d.quit()
    finally:
        d.kill()
        fk.stop()


def members(fk):
    return sorted((r["consumer_group"], r["consumer"])
                  for r in fk.snapshot().get("consumer_group_consumers", []))


def scenario_group_members(exe):
    """Consumer group membership: added with POST after the consumer and the group exist,
    changed with POST and DELETE, read back per group, and put back after drift."""
    fk = fake()
    d = run(exe, fk, full_resync=1)
    gold, alice, bob = kid("consumergroups", "gold"), kid("consumers", "alice"), \
        kid("consumers", "bob")
    base = "/consumer_groups/%s/consumers" % gold
    try:
        seq = d.publish(config(3))
        d.wait_applied(seq)
        assert members(fk) == [(gold, alice)], members(fk)
        order = [(m, p) for m, p in fk.writes()]
        post = order.index(("POST", base))
        assert order.index(("PUT", "/consumers/" + alice)) < post, order
        assert order.index(("PUT", "/consumer_groups/" + gold)) < post, order
        # bob joins, alice leaves.
        cfg = config(3)
        cfg["consumer_group_consumers"] = [{"consumer": "bob", "consumer_group": "gold"}]
        fk.reset_counts()
        seq = d.publish(cfg)
        d.wait_applied(seq)
        assert members(fk) == [(gold, bob)], members(fk)
        assert sorted(fk.writes()) == [("DELETE", base + "/" + alice), ("POST", base)], \
            fk.writes()
        assert d.metric('tether_konnect_writes_total{kind="consumer_group_consumers",'
                        'method="POST"}') == 2
        # Behind tether's back: alice put in, bob taken out. The next full re-read (which lists
        # the group's members) puts it back.
        fk.add_member_behind(gold, alice)
        with fk.lock:
            del fk.members[gold][bob]
        wait_for(lambda: members(fk) == [(gold, bob)], 30, "membership put back")
        assert fk.count("GET", exact=base) >= 1
        # Without the group, nothing of its membership is left.
        cfg["consumer_groups"] = []
        seq = d.publish(cfg)
        d.wait_applied(seq)
        assert members(fk) == [] and not fk.entities["consumer_groups"], fk.snapshot()
        d.quit()
    finally:
        d.kill()
        fk.stop()


def scenario_disable_consumers(exe):
    """--konnect-disable-consumers-sync: no consumers, credentials or consumer plugins."""
    fk = fake()
    d = run(exe, fk, disable_consumers=True)
    try:
        seq = d.publish(config(5))
        d.wait_applied(seq)
        assert counts(fk) == expected_counts(5, consumers=False), counts(fk)
        assert no_secrets_sent(fk)
        d.quit()
    finally:
        d.kill()
        fk.stop()


def main():
    exe, name = sys.argv[1], sys.argv[2]
    fn = globals().get("scenario_" + name)
    if not fn:
        print("unknown scenario " + name, file=sys.stderr)
        return 2
    fn(exe)
    print("ok - " + name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
