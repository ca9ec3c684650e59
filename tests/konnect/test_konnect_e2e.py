#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`tether run` with a fake Kong gateway and the fake Konnect, end to end: the gateway and Konnect
get the configuration from manifests; with Konnect down the gateway still gets every change at
once and Konnect catches up when it is back; nodes are reported; the push metrics carry
protocol="deck". Skipped (exit 77) while the binary has no `run` with Konnect or the fake Kong
is missing."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "controller"))
from kharness import CP_ID, fake, pki, wait_for  # noqa: E402
from ctl_util import Tether as Run  # noqa: E402

TETHER = os.environ.get("TETHER", "build/tether")


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def manifests(path, names):
    docs = []
    for n in names:
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": n, "namespace": "default", "uid": "svc-" + n},
                     "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                     "metadata": {"name": n, "namespace": "default", "uid": "ing-" + n},
                     "spec": {"ingressClassName": "kong", "rules": [{"host": n + ".example", "http": {
                         "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                             "service": {"name": n, "port": {"number": 80}}}}]}}]}})
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n---\n".join(json.dumps(x) for x in docs))
    os.rename(tmp, path)


def gw_hosts(cfg):
    return sorted(h for s in (cfg or {}).get("services", []) for r in s.get("routes", [])
                  for h in r.get("hosts", []))


def konnect_hosts(fk):
    with fk.lock:
        return sorted(h for r in fk.entities["routes"].values() for h in r.get("hosts") or [])


def main():
    if not os.path.exists(TETHER):
        skip("no tether binary")
    h = subprocess.run([TETHER, "run", "--help"], capture_output=True, text=True)
    if "konnect-sync-enabled" not in h.stdout + h.stderr or "not built yet" in h.stderr:
        skip("tether run has no Konnect support yet")
    sys.path.insert(0, os.environ.get("TETHER_FAKES", ""))
    try:
        from kong_admin import FakeKong
    except ImportError:
        skip("tests/fakes/kong_admin.py is missing")
    d = tempfile.mkdtemp(prefix="tether-konnect-e2e-")
    p = pki()
    fk = fake()
    kong = FakeKong()
    run = None
    try:
        m = os.path.join(d, "m.yaml")
        manifests(m, ["a", "b"])
        run = Run(["--manifests", d, "--kong-admin-url", kong.url, "--konnect-sync-enabled",
                   "--konnect-address", fk.address, "--konnect-control-plane-id", CP_ID,
                   "--konnect-tls-client-cert-file", p["client.crt"],
                   "--konnect-tls-client-key-file", p["client.key"],
                   "--konnect-ca-cert-file", p["ca.crt"],
                   "--konnect-upload-config-period", "10s",
                   "--konnect-refresh-node-period", "30s",
                   "--state-dir", os.path.join(d, "state")])
        wait_for(lambda: gw_hosts(kong.config) == ["a.example", "b.example"], 60,
                 "the gateway configured")
        wait_for(lambda: konnect_hosts(fk) == ["a.example", "b.example"], 60,
                 "Konnect configured: " + run.stderr()[-1500:])
        # Nodes: tether itself and the gateway (static URL: gateway_<host:port>).
        wait_for(lambda: sorted(n["type"] for n in fk.nodes.values()) ==
                 ["ingress-controller", "kong-proxy"], 60, "nodes reported")
        # Konnect down: the gateway still gets the change at once; Konnect catches up later.
        fk.set_mode("down")
        manifests(m, ["a", "b", "c"])
        wait_for(lambda: gw_hosts(kong.config) == ["a.example", "b.example", "c.example"], 30,
                 "the gateway configured while Konnect is down")
        assert konnect_hosts(fk) == ["a.example", "b.example"]
        fk.set_mode("ok")
        wait_for(lambda: konnect_hosts(fk) == ["a.example", "b.example", "c.example"], 90,
                 "Konnect caught up")
        port = run.port("metrics")
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
        text = text.decode()
        assert 'protocol="deck"' in text and "tether_konnect_sync_rounds_total" in text, text
        rc = run.stop()
        assert rc == 0, run.stderr()[-2000:]
        run = None
    finally:
        if run:
            run.stop()
        kong.close()
        fk.stop()
        shutil.rmtree(d, ignore_errors=True)
    print("ok - tether run with Konnect")
    return 0


if __name__ == "__main__":
    sys.exit(main())
