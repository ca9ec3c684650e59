#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Data plane sink against fake Kong Admin APIs over plain HTTP: pushes, hash skip, retries,
429/413/500, cut connections, slow and down gateways, 400 + fallback, last good, restarts."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dphelp import Driver, FakeKong, config, new_driver, run_tests, wait_for  # noqa: E402

DRIVER = sys.argv[1]


def new(urls, **kw):
    return new_driver(DRIVER, urls, **kw)


def applied(d, h, ok=None, start=0):
    return d.wait_event(lambda e: e["event"] == "applied" and e["hash"] == h and
                        (ok is None or e["ok"] == ok), "applied %s ok=%s" % (h[:8], ok), start=start)


def test_push_to_several_and_skip():
    ks = [FakeKong() for _ in range(3)]
    d = new([k.url for k in ks], headers=["X-Test:one", "X-Other: two"], token="s3cret")
    try:
        p = d.publish(config(3))
        applied(d, p["hash"], True)
        for k in ks:
            posts = k.posts_config()
            assert len(posts) == 1, posts
            r = posts[0]
            assert r["path"] == "/config?check_hash=1&flatten_errors=1", r["path"]
            assert r["headers"]["user-agent"].startswith("tether/"), r["headers"]
            assert r["headers"]["content-type"] == "application/json"
            assert r["headers"]["x-test"] == "one" and r["headers"]["x-other"] == "two"
            assert r["headers"]["kong-admin-token"] == "s3cret"
            assert k.config["services"][2]["name"] == "default.ing-2.80"
            gets = [q["path"] for q in k.requests if q["method"] == "GET"]
            assert "/status" in gets and "/" in gets, gets
        # The same revision again: every gateway already runs it, nothing is sent.
        m = d.mark()
        p2 = d.publish(config(3))
        assert p2["hash"] == p["hash"]
        applied(d, p["hash"], True, start=m)
        assert all(len(k.posts_config()) == 1 for k in ks)
        # A new one reaches all of them.
        p3 = d.publish(config(4))
        applied(d, p3["hash"], True)
        assert all(len(k.posts_config()) == 2 and len(k.config["services"]) == 4 for k in ks)
        gws = d.gateways()
        assert sorted(g["url"] for g in gws) == sorted(k.url for k in ks)
        assert all(g["state"] == "ready" and g["hash"] == p3["hash"] and g["version"] == "3.9.1"
                   for g in gws), gws
        assert not d.log_has("s3cret"), "token leaked into the logs"
    finally:
        d.close()
        for k in ks:
            k.close()


def test_slow_gateway_does_not_delay_others():
    slow, fast1, fast2 = FakeKong(), FakeKong(), FakeKong()
    slow.delay = 15
    d = new([slow.url, fast1.url, fast2.url], proxy_timeout_s=60)
    try:
        d.publish(config(2))
        wait_for(lambda: fast1.accepted == 1 and fast2.accepted == 1, "fast gateways")
        assert slow.accepted == 0, "the slow gateway answered first?"
        assert not d.find(lambda e: e["event"] == "applied"), "round reported before the slow one"
    finally:
        d.close()
        for k in (slow, fast1, fast2):
            k.close()


def test_timeout_then_retry():
    k = FakeKong()
    k.delay = 3
    d = new([k.url], proxy_timeout_s=1)
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], False)
        wait_for(lambda: d.log_has("consider increasing --proxy-timeout-seconds"), "timeout log")
        k.delay = 0
        applied(d, p["hash"], True)
        assert 'failure_reason="network"' in d.metrics()
    finally:
        d.close()
        k.close()


def test_429_retry_after():
    k = FakeKong()
    k.fail = [(429, 2)]
    d = new([k.url])
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], True)
        posts = k.posts_config()
        assert len(posts) == 2, posts
        gap = posts[1]["time"] - posts[0]["time"]
        assert gap >= 1.9, "Retry-After: 2 not honoured (%.2f s)" % gap
    finally:
        d.close()
        k.close()


def test_500_and_cut_retried_with_backoff():
    k = FakeKong()
    k.fail = [(500, None), (503, None)]
    # curl itself re-sends once when a reused connection dies unanswered; two cuts make sure at
    # least one reaches the sink.
    k.cut = 2
    other = FakeKong()
    d = new([k.url, other.url])
    try:
        p = d.publish(config(2))
        wait_for(lambda: k.accepted == 1, "accepted after retries")
        assert len(k.posts_config()) == 5, len(k.posts_config())
        assert len(other.posts_config()) == 1  # the healthy one was pushed once
        applied(d, p["hash"], True)
        m = d.metrics()
        assert 'success="false",protocol="db-less",failure_reason="other",dataplane="%s"} 2' % k.url in m, m
        assert 'failure_reason="network",dataplane="%s"}' % k.url in m, m
        assert 'success="true",protocol="db-less",failure_reason="",dataplane="%s"} 1' % k.url in m
        ts = [r["time"] for r in k.posts_config()]
        assert all(b > a for a, b in zip(ts, ts[1:]))
    finally:
        d.close()
        k.close()
        other.close()


def test_413_names_the_settings():
    k = FakeKong()
    k.fail = [(413, None)]
    d = new([k.url])
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], True)
        assert d.log_has("KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE")
        assert d.log_has("nginx_admin_client_body_buffer_size")
    finally:
        d.close()
        k.close()


def test_400_fallback():
    ks = [FakeKong(), FakeKong()]
    for k in ks:
        k.reject = [["k8s-name:ing-1", "k8s-kind:Ingress"]]
    d = new([k.url for k in ks])
    try:
        p = d.publish(config(3))
        rej = d.wait_event(lambda e: e["event"] == "rejected", "rejected")
        assert rej["hash"] == p["hash"]
        assert [(b["kind"], b["namespace"], b["name"], b["uid"]) for b in rej["broken"]] == \
            [("Ingress", "default", "ing-1", "uid-ing-1")], rej
        assert "rejected by the fake gateway" in rej["broken"][0]["message"]
        fb = d.wait_event(lambda e: e["event"] == "applied" and e["fallback"], "fallback applied")
        assert fb["ok"] is True
        applied(d, p["hash"], False)
        for k in ks:
            wait_for(lambda: k.accepted == 1, "fallback accepted")
            names = [s["name"] for s in k.config["services"]]
            assert names == ["default.ing-0.80", "default.ing-2.80"], names
        # host.rejected() is asked once per revision, not once per gateway.
        assert len(d.find(lambda e: e["event"] == "rejected")) == 1
        m = d.metrics()
        assert "ingress_controller_configuration_push_broken_resource_count{dataplane=\"%s\"} 1" % ks[0].url in m
        assert "ingress_controller_fallback_configuration_push_count{success=\"true\"" in m
        # The same revision again: no new push, no new rejection.
        m = d.mark()
        d.publish(config(3))
        d.wait_event(lambda e: e["event"] == "applied" and e["hash"] == p["hash"], "re-published", start=m)
        assert all(k.rejected == 1 and len(k.posts_config()) == 2 for k in ks)
        # Fixed config: the gateways leave the fallback.
        for k in ks:
            k.reject = []
        p2 = d.publish(config(3, prefix="fixed"))
        applied(d, p2["hash"], True)
    finally:
        d.close()
        for k in ks:
            k.close()


def test_400_without_fallback_keeps_last_good_and_restart_repush():
    k = FakeKong()
    d = new([k.url], no_fallback=True)
    try:
        p1 = d.publish(config(2))
        applied(d, p1["hash"], True)
        good = k.hash
        k.reject = [["k8s-kind:Ingress", "k8s-name:bad-0"]]
        p2 = d.publish(config(1, prefix="bad"))
        applied(d, p2["hash"], False)
        assert k.hash == good and k.rejected == 1
        assert d.log_has("gateway rejected the configuration")
        # Kong restarts empty: the sink notices the zero hash and restores the last good one.
        k.restart()
        wait_for(lambda: k.hash == good, "last good configuration pushed again after restart")
        assert d.log_has("restarted")
    finally:
        d.close()
        k.close()


def test_restart_repushes_current():
    k = FakeKong()
    d = new([k.url])
    try:
        p = d.publish(config(2))
        applied(d, p["hash"], True)
        h = k.hash
        k.restart()
        wait_for(lambda: k.accepted == 2 and k.hash == h, "re-push after restart")
    finally:
        d.close()
        k.close()


def test_down_gateway_then_up():
    k = FakeKong()
    url = k.url
    k.down()
    other = FakeKong()
    d = new([url, other.url])
    try:
        p = d.publish(config(1))
        # Only the live gateway is ready: the round succeeds for it; the other stays pending.
        applied(d, p["hash"], True)
        gws = {g["url"]: g for g in d.gateways()}
        assert gws[url]["state"] == "pending" and gws[other.url]["state"] == "ready", gws
        assert "tether_dataplane_gateways{state=\"pending\"} 1" in d.metrics()
        k.up()
        wait_for(lambda: k.accepted == 1, "configured once up")
        # A ready gateway whose /status fails goes back to pending.
        other.status_down = True
        wait_for(lambda: any(g["url"] == other.url and g["state"] == "pending" for g in d.gateways()),
                 "pending after failing /status")
    finally:
        d.close()
        k.close()
        other.close()


def test_pending_gateway_probed_before_the_interval():
    k = FakeKong()
    url = k.url
    k.down()
    # The readiness interval is far away: only the pending backoff can find the gateway.
    d = new([url], readiness_interval_s=120, readiness_timeout_s=2)
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], False)
        k.up()
        applied(d, p["hash"], True)
    finally:
        d.close()
        k.close()


def test_large_201_answer_is_cut_not_failed():
    # Kong's 201 echoes the whole configuration; the sink stops reading after 4 MB.
    k = FakeKong()
    k.small_answer = False
    d = new([k.url])
    try:
        p = d.publish(config(14000))
        applied(d, p["hash"], True)
        assert k.accepted == 1 and len(k.posts_config()) == 1
    finally:
        d.close()
        k.close()


def test_latest_revision_wins():
    k = FakeKong()
    k.delay = 0.3
    d = new([k.url])
    try:
        pubs = [d.publish(config(i + 1)) for i in range(15)]
        applied(d, pubs[-1]["hash"], True)
        assert len(k.config["services"]) == 15
        # Revisions published while a push was out are coalesced: the gateway never goes back.
        wait_for(lambda: len(k.posts_config()) == k.accepted, "every post answered")
        assert k.accepted <= 15
        assert d.gateways()[0]["hash"] == pubs[-1]["hash"]
    finally:
        d.close()
        k.close()


def test_ipv6_static_url():
    import socket
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        print("# skip: no IPv6 loopback")
        return
    k = FakeKong(host="::1")
    d = new([k.url + "/"])
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], True)
        assert d.gateways()[0]["url"] == "http://[::1]:%d" % k.port
    finally:
        d.close()
        k.close()


def test_all_down_reports_failure():
    k = FakeKong()
    url = k.url
    k.down()
    d = new([url])
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], False)
        k.up()
        applied(d, p["hash"], True)
    finally:
        d.close()
        k.close()


def test_router_flavor_and_metrics():
    k = FakeKong(flavor="expressions")
    old = FakeKong(version="3.3.0", flavor="expressions")
    d = new([k.url, old.url])
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], True)
        assert d.log_has("older than 3.4.1")
        assert d.query("flavor")["flavor"] == "expressions"
        m = d.metrics()
        for name in ("ingress_controller_configuration_push_count{",
                     "ingress_controller_configuration_push_duration_milliseconds_bucket{",
                     "ingress_controller_configuration_push_size{",
                     "ingress_controller_configuration_push_last_successful{",
                     "ingress_controller_configuration_push_broken_resource_count{",
                     "tether_dataplane_gateways{state=\"ready\"} 2"):
            assert name in m, name
        assert 'dataplane="%s",le="+Inf"} 1' % k.url in m
        st = d.query("status")["status"]
        assert st["ready"] == 2 and st["revision"] == p["hash"] and st["last_good"] == p["hash"]
    finally:
        d.close()
        k.close()
        old.close()


def test_bad_config_is_refused():
    for cfg, want in (({"admin_urls": ["http://a:1"], "admin_svc": "ns/svc"}, "can't set both"),
                      ({"admin_svc": "nonamespace"}, "NAMESPACE/NAME"),
                      ({"admin_urls": ["ftp://x"]}, "--kong-admin-url ftp://x"),
                      ({"admin_urls": ["http://x"], "headers": ["novalue"]}, "--kong-admin-header"),
                      ({"admin_urls": ["https://x"], "ca_cert_file": "/nonexistent/ca.crt"},
                       "--kong-admin-ca-cert-file /nonexistent/ca.crt"),
                      ({"admin_urls": ["https://x"], "client_cert_file": "/etc/hostname"},
                       "kong-admin-tls-client-key")):
        d = Driver(DRIVER, cfg)
        try:
            assert d.error and want in d.error, (cfg, d.error)
        finally:
            d.p.stdin.close()
            d.p.wait(timeout=30)
            assert d.p.returncode == 0


if __name__ == "__main__":
    run_tests([test_push_to_several_and_skip, test_slow_gateway_does_not_delay_others,
               test_timeout_then_retry, test_429_retry_after, test_500_and_cut_retried_with_backoff,
               test_413_names_the_settings, test_400_fallback,
               test_400_without_fallback_keeps_last_good_and_restart_repush,
               test_restart_repushes_current, test_down_gateway_then_up, test_all_down_reports_failure,
               test_pending_gateway_probed_before_the_interval, test_large_201_answer_is_cut_not_failed,
               test_latest_revision_wins, test_ipv6_static_url,
               test_router_flavor_and_metrics, test_bad_config_is_refused])
