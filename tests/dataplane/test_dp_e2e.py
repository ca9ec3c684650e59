#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`tether run` with the data plane sink, end to end against fake Kong Admin APIs: two gateways
configured from manifests (--once), the fallback configuration without a rejected Ingress, a
restarted gateway configured again, and the push metrics on /metrics.
Skipped (exit 77) while the binary has no `run` with --kong-admin-url."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "controller"))
from dphelp import FakeKong, wait_for  # noqa: E402
from ctl_util import Tether as Run  # noqa: E402

TETHER = os.environ.get("TETHER", "build/tether")


def manifests(d, names, broken=()):
    docs = []
    for n in names:
        ann = {"konghq.com/strip-path": "true"}
        if n in broken:
            ann["test.konghq.com/broken"] = "true"
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": n, "namespace": "default", "uid": "svc-" + n},
                     "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                     "metadata": {"name": n, "namespace": "default", "uid": "ing-" + n, "annotations": ann},
                     "spec": {"ingressClassName": "kong", "rules": [{"host": n + ".example", "http": {"paths": [
                         {"path": "/", "pathType": "Prefix",
                          "backend": {"service": {"name": n, "port": {"number": 80}}}}]}}]}})
    path = os.path.join(d, "m.yaml")
    with open(path, "w") as f:
        f.write("\n---\n".join(json.dumps(x) for x in docs))
    return path


def hosts(cfg):
    return sorted(h for s in (cfg or {}).get("services", []) for r in s.get("routes", [])
                  for h in r.get("hosts", []))


def test_once_two_gateways():
    d = tempfile.mkdtemp()
    ks = [FakeKong(), FakeKong()]
    try:
        m = manifests(d, ["a", "b"])
        r = Run(["--manifests", m, "--kong-admin-url", ",".join(k.url for k in ks), "--once",
                 "--state-dir", os.path.join(d, "state")])
        rc = r.p.wait(60)
        assert rc == 0, "exit %d: %s" % (rc, r.stderr()[-2000:])
        for k in ks:
            assert k.accepted == 1 and hosts(k.config) == ["a.example", "b.example"], hosts(k.config)
            post = k.posts_config()[0]
            assert post["path"] == "/config?check_hash=1&flatten_errors=1"
            assert post["headers"]["user-agent"].startswith("tether/")
        assert ks[0].hash == ks[1].hash
    finally:
        for k in ks:
            k.close()
        shutil.rmtree(d)


def test_fallback_without_broken_ingress():
    d = tempfile.mkdtemp()
    k = FakeKong()
    k.reject = [["k8s-kind:Ingress", "k8s-name:bad"]]
    try:
        m = manifests(d, ["good", "bad"], broken=("bad",))
        r = Run(["--manifests", m, "--kong-admin-url", k.url, "--once",
                 "--state-dir", os.path.join(d, "state")])
        r.p.wait(60)
        assert k.rejected == 1, r.stderr()[-2000:]
        assert k.accepted == 1 and hosts(k.config) == ["good.example"], (hosts(k.config), r.stderr()[-2000:])
        assert any(x.get("msg") == "gateway rejected the configuration" for x in r.logs())
    finally:
        k.close()
        shutil.rmtree(d)


def test_restart_and_metrics():
    d = tempfile.mkdtemp()
    k = FakeKong()
    try:
        m = manifests(d, ["a"])
        r = Run(["--manifests", m, "--kong-admin-url", k.url, "--state-dir", os.path.join(d, "state"),
                 "--gateway-discovery-readiness-check-interval", "1s",
                 "--gateway-discovery-readiness-check-timeout", "500ms"])
        try:
            wait_for(lambda: k.accepted == 1, "first push")
            h = k.hash
            k.restart()
            wait_for(lambda: k.accepted == 2 and k.hash == h, "push again after a restart")
            port = r.port("metrics")
            want = 'ingress_controller_configuration_push_count{success="true",protocol="db-less",' \
                   'failure_reason="",dataplane="%s"} 2' % k.url

            def metrics():
                return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
            # The fake counts a push before its answer reaches tether: wait for the counter.
            text = wait_for(lambda: (lambda t: t if want in t else None)(metrics()), "push count 2")
            assert 'tether_dataplane_gateways{state="ready"} 1' in text
        finally:
            rc = r.stop()
        assert rc == 0, r.stderr()[-2000:]
    finally:
        k.close()
        shutil.rmtree(d)


def kubeconfig(d, server):
    import yaml
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "t",
           "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u", "namespace": "kong"}}],
           "clusters": [{"name": "c", "cluster": {"server": server}}],
           "users": [{"name": "u", "user": {"token": "dp-e2e-token"}}]}
    path = os.path.join(d, "kubeconfig.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def admin_slice(name, ips_ports):
    port = ips_ports[0][1] if ips_ports else 8444
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "kong",
                         "labels": {"kubernetes.io/service-name": "kong-admin"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "kong-admin",
                                              "uid": "svc-uid"}]},
            "addressType": "IPv4", "ports": [{"name": "admin-tls", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": False},
                           "targetRef": {"kind": "Pod", "namespace": "kong", "name": "gw-%s" % ip}}
                          for ip, _ in ips_ports]}


def test_discovery_through_the_api_server():
    import kube_apiserver
    from dphelp import certs
    c = certs()
    d = tempfile.mkdtemp()
    g2 = FakeKong(host="127.0.0.2", cert=c["server.crt"], key=c["server.key"])
    g3 = FakeKong(host="127.0.0.3", port=g2.port, cert=c["server.crt"], key=c["server.key"])
    api = kube_apiserver.FakeApiServer(token="dp-e2e-token").start()
    try:
        for name in ("a",):
            api.apply({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "namespace": "default", "uid": "svc-" + name},
                       "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}})
            api.apply({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                       "metadata": {"name": name, "namespace": "default", "uid": "ing-" + name},
                       "spec": {"ingressClassName": "kong", "rules": [{"host": name + ".example", "http": {
                           "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                               "service": {"name": name, "port": {"number": 80}}}}]}}]}})
        api.apply({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                   "metadata": {"name": "kong"}, "spec": {"controller": "ingress-controllers.konghq.com/kong"}})
        api.apply(admin_slice("kong-admin-1", [("127.0.0.2", g2.port)]))
        r = Run(["--kubeconfig", kubeconfig(d, api.url), "--kong-admin-svc", "kong/kong-admin",
                 "--kong-admin-ca-cert-file", c["ca.crt"], "--state-dir", os.path.join(d, "state"),
                 "--election-namespace", "kong"])
        try:
            wait_for(lambda: g2.accepted == 1, "discovered gateway configured", timeout=60)
            assert hosts(g2.config) == ["a.example"], hosts(g2.config)
            assert "pod.kong-admin.kong.svc" in g2.sni
            # A second gateway appears in the slice: configured without a tick.
            t0 = time.monotonic()
            api.apply(admin_slice("kong-admin-1", [("127.0.0.2", g2.port), ("127.0.0.3", g3.port)]))
            wait_for(lambda: g3.accepted == 1, "second gateway configured", timeout=60)
            print("# figure: EndpointSlice change -> 201 from the new gateway in %d ms"
                  % ((time.monotonic() - t0) * 1000))
            assert g2.accepted == 1
        finally:
            rc = r.stop()
        assert rc == 0, r.stderr()[-3000:]
    finally:
        api.stop()
        g2.close()
        g3.close()
        shutil.rmtree(d)


def main():
    p = subprocess.run([TETHER, "run", "--help"], capture_output=True, text=True)
    if "--kong-admin-url" not in p.stdout + p.stderr:
        print("# skip: this tether has no `run --kong-admin-url` yet")
        sys.exit(77)
    from dphelp import run_tests
    tests = [test_once_two_gateways, test_fallback_without_broken_ingress, test_restart_and_metrics]
    fakes = os.environ.get("TETHER_FAKES") or os.path.join(os.path.dirname(__file__), "..", "fakes")
    if "--kubeconfig" in p.stdout + p.stderr and os.path.exists(os.path.join(fakes, "kube_apiserver.py")):
        tests.append(test_discovery_through_the_api_server)
    else:
        print("# skip discovery through the API server: no Kubernetes client or fake yet")
    run_tests(tests)


if __name__ == "__main__":
    main()
