#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`tether run` with the data plane sink, end to end against fake Kong Admin APIs: two gateways
configured from manifests (--once), the fallback configuration without a rejected Ingress, a
restarted gateway configured again, and the push metrics on /metrics.
Skipped (exit 77) while the binary has no `run` with --kong-admin-url."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dphelp import FakeKong, wait_for  # noqa: E402

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


class Run:
    def __init__(self, args):
        cmd = [TETHER, "run"] + args + ["--health-probe-bind-address", "127.0.0.1:0",
                                         "--metrics-bind-address", "127.0.0.1:0",
                                         "--diagnostics-bind-address", "127.0.0.1:0"]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stderr:
            with self.lock:
                self.lines.append(line)

    def records(self):
        out = []
        with self.lock:
            for l in self.lines:
                try:
                    out.append(json.loads(l))
                except ValueError:
                    pass
        return out

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        return self.p.wait(60)

    def text(self):
        with self.lock:
            return "".join(self.lines)


def test_once_two_gateways():
    d = tempfile.mkdtemp()
    ks = [FakeKong(), FakeKong()]
    try:
        m = manifests(d, ["a", "b"])
        r = Run(["--manifests", m, "--kong-admin-url", ",".join(k.url for k in ks), "--once",
                 "--state-dir", os.path.join(d, "state")])
        rc = r.p.wait(60)
        assert rc == 0, "exit %d: %s" % (rc, r.text()[-2000:])
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
        assert k.rejected == 1, r.text()[-2000:]
        assert k.accepted == 1 and hosts(k.config) == ["good.example"], (hosts(k.config), r.text()[-2000:])
        assert any(x.get("msg") == "gateway rejected the configuration" for x in r.records())
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
            port = wait_for(lambda: next((x["port"] for x in r.records() if x.get("msg") == "listening"
                                          and x.get("server") == "metrics"), None), "metrics port")
            want = 'ingress_controller_configuration_push_count{success="true",protocol="db-less",' \
                   'failure_reason="",dataplane="%s"} 2' % k.url

            def metrics():
                return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
            # The fake counts a push before its answer reaches tether: wait for the counter.
            text = wait_for(lambda: (lambda t: t if want in t else None)(metrics()), "push count 2")
            assert 'tether_dataplane_gateways{state="ready"} 1' in text
        finally:
            rc = r.stop()
        assert rc == 0, r.text()[-2000:]
    finally:
        k.close()
        shutil.rmtree(d)


def main():
    p = subprocess.run([TETHER, "run", "--help"], capture_output=True, text=True)
    if "--kong-admin-url" not in p.stdout + p.stderr:
        print("# skip: this tether has no `run --kong-admin-url` yet")
        sys.exit(77)
    from dphelp import run_tests
    run_tests([test_once_two_gateways, test_fallback_without_broken_ingress, test_restart_and_metrics])


if __name__ == "__main__":
    main()
