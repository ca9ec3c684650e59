#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Gateway Discovery: EndpointSlices whose addresses are loopback addresses (127.0.0.2,
127.0.0.3, ::1) served by fake TLS gateways; the TLS name pod.<svc>.<ns>.svc; new gateways get
the current revision at once; gone ones are dropped at once; terminating endpoints ignored."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dphelp import Driver, FakeKong, certs, config, run_tests, wait_for  # noqa: E402

DRIVER = sys.argv[1]
# A long readiness interval: anything that happens quickly below happens without a tick.
SLOW_TICK = {"readiness_interval_s": 60, "readiness_timeout_s": 5, "proxy_timeout_s": 20}


def slice_for(name, port, endpoints, port_name="admin-tls", family="IPv4"):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "kong",
                         "labels": {"kubernetes.io/service-name": "kong-admin"}},
            "addressType": family,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": endpoints}


def ep(ip, pod, ready=True, terminating=False, kind="Pod"):
    return {"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
            "targetRef": {"kind": kind, "namespace": "kong", "name": pod}}


def new():
    c = certs()
    cfg = dict(SLOW_TICK, admin_svc="kong/kong-admin", ca_cert_file=c["ca.crt"])
    d = Driver(DRIVER, cfg)
    assert d.error is None, d.error
    return d


def test_discovery_add_remove():
    c = certs()
    g2 = FakeKong(host="127.0.0.2", cert=c["server.crt"], key=c["server.key"])
    g3 = FakeKong(host="127.0.0.3", cert=c["server.crt"], key=c["server.key"])
    d = new()
    try:
        p = d.publish(config(2))
        # Before the first list of EndpointSlices the sink cannot tell: it does not answer.
        d.query("gateways")
        assert not d.find(lambda e: e["event"] == "applied"), "answered before discovery"
        # An empty list: no gateway to configure, the round fails.
        d.query("discovered", slices=[])
        d.wait_event(lambda e: e["event"] == "applied" and not e["ok"], "empty round")
        s2 = slice_for("kong-admin-a", g2.port, [ep("127.0.0.2", "gw-2", ready=False),
                                                 ep("127.0.0.9", "gw-old", terminating=True),
                                                 ep("127.0.0.8", "not-a-pod", kind="Node")])
        d.query("discovered", slices=[s2])
        wait_for(lambda: g2.accepted == 1, "discovered gateway configured")
        assert "pod.kong-admin.kong.svc" in g2.sni, g2.sni
        assert g2.posts_config()[0]["headers"]["host"] == "pod.kong-admin.kong.svc:%d" % g2.port
        gws = d.gateways()
        assert [(g["url"], g["state"], g["hostname"]) for g in gws] == \
            [("https://127.0.0.2:%d" % g2.port, "ready", "kong/gw-2")], gws
        d.wait_event(lambda e: e["event"] == "applied" and e["ok"] and e["hash"] == p["hash"], "round ok")
        # A second gateway, in another slice: configured at once too, the first is not re-pushed.
        s3 = slice_for("kong-admin-b", g3.port, [ep("127.0.0.3", "gw-3")], port_name="kong-admin-tls")
        d.query("discovered", slices=[s2, s3])
        wait_for(lambda: g3.accepted == 1, "second gateway configured")
        assert len(g2.posts_config()) == 1
        # A new revision reaches both.
        p2 = d.publish(config(3))
        wait_for(lambda: g2.accepted == 2 and g3.accepted == 2, "both get the new revision")
        # gw-2 disappears: dropped at once, the next revision only goes to gw-3.
        d.query("discovered", slices=[s3])
        gws = d.gateways()
        assert [g["url"] for g in gws] == ["https://127.0.0.3:%d" % g3.port], gws
        p3 = d.publish(config(4))
        d.wait_event(lambda e: e["event"] == "applied" and e["ok"] and e["hash"] == p3["hash"], "p3 ok")
        assert g2.accepted == 2 and g3.accepted == 3
        # Port names other than the configured ones are ignored.
        d.query("discovered", slices=[slice_for("x", g2.port, [ep("127.0.0.2", "gw-2")], port_name="admin")])
        assert d.gateways() == []
        assert p2
    finally:
        d.close()
        g2.close()
        g3.close()


def test_discovery_ipv6():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        print("# skip: no IPv6 loopback")
        return
    c = certs()
    g = FakeKong(host="::1", cert=c["server.crt"], key=c["server.key"])
    d = new()
    try:
        d.publish(config(1))
        d.query("discovered", slices=[slice_for("v6", g.port, [ep("::1", "gw-6")], family="IPv6")])
        wait_for(lambda: g.accepted == 1, "IPv6 gateway configured")
        assert d.gateways()[0]["url"] == "https://[::1]:%d" % g.port
    finally:
        d.close()
        g.close()


if __name__ == "__main__":
    run_tests([test_discovery_add_remove, test_discovery_ipv6])
