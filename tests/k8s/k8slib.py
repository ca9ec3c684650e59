# SPDX-License-Identifier: Apache-2.0
"""Helpers for the Kubernetes client tests: the fake API server in-process and the driver."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.environ.get("TETHER_FAKES") or os.path.join(HERE, "..", "fakes")
sys.path.insert(0, FAKES)
import kube_apiserver  # noqa: E402

DRIVER = os.environ.get("K8S_DRIVER", "")
TOKEN = "test-token-0123456789"
DEADLINE = float(os.environ.get("K8S_TEST_DEADLINE", "30"))


DRIVERS = []


def fail(msg):
    print("FAIL: " + msg, flush=True)
    for d in DRIVERS:
        print("--- driver %s (alive %s): last lines" % (d.args, d.alive()))
        for j in d.snapshot()[-8:]:
            print(json.dumps(j)[:300])
        print("--- stderr tail")
        print(d.err_text()[-4000:])
        if d.alive():
            d.p.kill()
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait_until(pred, what, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    fail("timed out waiting for " + what)


def kubeconfig(dirpath, server, token=TOKEN, extra_user=None, extra_cluster=None):
    user = {"token": token} if token else {}
    user.update(extra_user or {})
    cluster = {"server": server}
    cluster.update(extra_cluster or {})
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u",
                                                  "namespace": "kong"}}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    }
    path = os.path.join(dirpath, "kubeconfig.yaml")
    import yaml
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def start_fake(**kw):
    kw.setdefault("token", TOKEN)
    return kube_apiserver.FakeApiServer(**kw).start()


class Driver:
    """The k8s-driver process; collects its JSON lines."""

    def __init__(self, args, env=None):
        check(DRIVER, "K8S_DRIVER not set")
        e = dict(os.environ)
        e.update(env or {})
        self.args = args
        DRIVERS.append(self)
        self.stderr = tempfile.TemporaryFile()
        self.p = subprocess.Popen([DRIVER] + args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.stderr, env=e)
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stdout:
            try:
                j = json.loads(raw)
            except ValueError:
                continue
            with self.lock:
                self.lines.append(j)

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def ops(self, op, **match):
        return [j for j in self.snapshot() if j.get("op") == op and
                all(j.get(k) == v for k, v in match.items())]

    def wait(self, op, what=None, timeout=DEADLINE, count=1, **match):
        return wait_until(lambda: len(self.ops(op, **match)) >= count and self.ops(op, **match),
                          what or f"{op} {match}", timeout)

    def send(self, cmd):
        self.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.p.stdin.flush()

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            fail("driver did not exit on signal")
        self.t.join(5)
        return rc

    def err_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def state(self):
        """kind/ns/name -> rv after replaying upserts and removes."""
        st = {}
        for j in self.snapshot():
            if j.get("op") == "upsert":
                st[(j["kind"], j["ns"], j["name"])] = j["rv"]
            elif j.get("op") == "remove":
                st.pop((j["kind"], j["ns"], j["name"]), None)
        return st


def obj(kind, name, ns="default", **fields):
    md = {"name": name}
    if ns is not None:
        md["namespace"] = ns
    o = {"kind": kind, "metadata": md}
    o.update(fields)
    return o


def ingress(name, ns="default", tls_secret=None):
    spec = {"ingressClassName": "kong", "rules": [{"host": name + ".example", "http": {
        "paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "svc", "port": {"number": 80}}}}]}}]}
    if tls_secret:
        spec["tls"] = [{"hosts": [name + ".example"], "secretName": tls_secret}]
    return obj("Ingress", name, ns, spec=spec)


def secret(name, ns="default", labels=None, data=None):
    o = obj("Secret", name, ns, type="Opaque", data=data or {"k": "dmFsdWU="})
    if labels:
        o["metadata"]["labels"] = labels
    return o
