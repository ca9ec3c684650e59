#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Data plane benchmark (prints figures, asserts nothing):
 1. a revision of 10,000 Ingress sets pushed to 20 fake gateways on loopback: time from the
    revision to the last 201, and peak RSS growth of the process running the sink;
 2. Gateway Discovery: time from handing over an EndpointSlice with a new gateway to that
    gateway's 201 (TLS, the same revision).
Usage: bench-dataplane.py BUILD_DIR [--sets N] [--gateways N]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "dataplane"))
sys.path.insert(0, os.path.join(SRC, "tests", "fakes"))
from dphelp import Driver, certs, wait_for  # noqa: E402
from kong_admin import FakeKong  # noqa: E402


def ingress_sets(n):
    services, upstreams = [], []
    for i in range(n):
        ns, name = "ns-%d" % (i % 50), "app-%d" % i
        tags = ["k8s-name:%s" % name, "k8s-namespace:%s" % ns, "k8s-kind:Ingress",
                "k8s-uid:%08d-0000-4000-8000-000000000000" % i, "k8s-group:networking.k8s.io",
                "k8s-version:v1", "managed-by-ingress-controller"]
        stags = ["k8s-name:%s" % name, "k8s-namespace:%s" % ns, "k8s-kind:Service",
                 "k8s-uid:%08d-1111-4000-8000-000000000000" % i, "k8s-version:v1"]
        host = "%s.%s.80.svc" % (name, ns)
        services.append({
            "name": "%s.%s.80" % (ns, name), "host": host, "port": 80, "protocol": "http",
            "path": "/", "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000,
            "retries": 5, "id": "%08x-aaaa-5bbb-8ccc-%012x" % (i, i), "tags": stags,
            "routes": [{"name": "%s.%s.%s.example.com.80" % (ns, name, name),
                        "hosts": ["%s.example.com" % name], "paths": ["/", "/api/v1/%s" % name],
                        "path_handling": "v0", "preserve_host": True, "protocols": ["http", "https"],
                        "regex_priority": 0, "strip_path": False, "https_redirect_status_code": 426,
                        "request_buffering": True, "response_buffering": True,
                        "id": "%08x-dddd-5eee-8fff-%012x" % (i, i), "tags": tags}]})
        upstreams.append({"name": host, "algorithm": "round-robin", "tags": stags,
                          "targets": [{"target": "10.%d.%d.%d:8080" % (i >> 16 & 255, i >> 8 & 255, i & 255),
                                       "weight": 100}]})
    return {"_format_version": "3.0", "services": services, "upstreams": upstreams}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--sets", type=int, default=10000)
    ap.add_argument("--gateways", type=int, default=20)
    a = ap.parse_args()
    driver = os.path.join(a.build, "tests", "dataplane", "dp-driver")
    fast = os.path.join(a.build, "tests", "bench", "fast-kong")
    cfg = ingress_sets(a.sets)

    srv = subprocess.Popen([fast, str(a.gateways)], stdout=subprocess.PIPE, text=True)
    ports = srv.stdout.readline().split()[1:]
    accepted = []

    def reader():
        for line in srv.stdout:
            if line.startswith("ACCEPTED"):
                accepted.append(line.split())
    threading.Thread(target=reader, daemon=True).start()
    d = Driver(driver, {"admin_urls": ["http://127.0.0.1:%s" % p for p in ports],
                        "readiness_interval_s": 10, "readiness_timeout_s": 5})
    try:
        wait_for(lambda: all(g["state"] == "ready" for g in d.gateways()) and len(d.gateways()) == a.gateways,
                 "gateways ready")
        pub = d.publish(cfg)
        ev = d.wait_event(lambda e: e["event"] == "applied" and e["hash"] == pub["hash"], "applied", timeout=120)
        wait_for(lambda: len(accepted) >= a.gateways, "all 201s")
        print("push: %d Ingress sets, %.1f MB body, %d gateways: revision -> last 201 in %d ms "
              "(ok=%s); revision built in %d ms" % (a.sets, pub["bytes"] / 1e6, a.gateways,
                                                    ev["since_publish_ms"], ev["ok"], pub["build_ms"]))
        print("push: RSS %.1f MB before the push, peak %.1f MB during it: growth %.1f MB"
              % (pub["maxrss_kb"] / 1024, ev["maxrss_kb"] / 1024, (ev["maxrss_kb"] - pub["maxrss_kb"]) / 1024))
    finally:
        d.close()
        srv.kill()
        srv.wait()

    # Discovery: a TLS gateway appears in an EndpointSlice; time until its 201.
    c = certs()
    k = FakeKong(host="127.0.0.2", cert=c["server.crt"], key=c["server.key"])
    k.fast = True
    d = Driver(driver, {"admin_svc": "kong/kong-admin", "ca_cert_file": c["ca.crt"],
                        "readiness_interval_s": 10, "readiness_timeout_s": 5})
    try:
        pub = d.publish(cfg)
        sl = {"metadata": {"name": "kong-admin-x", "namespace": "kong"},
              "ports": [{"name": "admin-tls", "port": k.port}],
              "endpoints": [{"addresses": ["127.0.0.2"], "conditions": {"ready": False},
                             "targetRef": {"kind": "Pod", "namespace": "kong", "name": "gw-x"}}]}
        t0 = time.monotonic()
        d.send({"op": "discovered", "slices": [sl]})
        wait_for(lambda: k.accepted == 1, "discovered gateway configured", timeout=60)
        t1 = k.accepted_at
        reqs = [(r["method"], r["path"], int((r["time"] - t0) * 1000)) for r in k.requests]
        print("discovery: EndpointSlice -> 201 from the new gateway (TLS, %.1f MB) in %d ms; "
              "requests (ms after the slice): %s" % (pub["bytes"] / 1e6, (t1 - t0) * 1000, reqs))
    finally:
        d.close()
        k.close()


if __name__ == "__main__":
    main()
