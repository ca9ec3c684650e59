# SPDX-License-Identifier: Apache-2.0
"""Helpers for the data plane integration tests: the driver process, waiting, configs, certs."""
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.environ.get("TETHER_FAKES") or os.path.join(HERE, "..", "fakes")
sys.path.insert(0, FAKES)
from kong_admin import FakeKong  # noqa: E402,F401

DEADLINE = 30.0


def wait_for(pred, what, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Driver:
    """The C driver (tests/dataplane/dp-driver.c): JSON commands in, JSON events out."""

    def __init__(self, path, cfg):
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        self.events = []
        self.logs = []
        self.lock = threading.Lock()
        self.q = queue.Queue()
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.readers:
            t.start()
        self.send({"op": "new", "cfg": cfg})
        ev = self.wait_event(lambda e: e["event"] in ("ready", "error"), "sink creation")
        if ev["event"] == "error":
            self.error = ev["msg"]
        else:
            self.error = None

    def _read(self):
        for line in self.p.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(ev)

    def _read_err(self):
        for line in self.p.stderr:
            if os.environ.get("DP_VERBOSE"):
                sys.stderr.write(line)
            with self.lock:
                self.logs.append(line.rstrip("\n"))

    def send(self, cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()

    def find(self, pred):
        with self.lock:
            return [e for e in self.events if pred(e)]

    def wait_event(self, pred, what, timeout=DEADLINE, start=0):
        def f():
            with self.lock:
                for e in self.events[start:]:
                    if pred(e):
                        return e
            return None
        return wait_for(f, what, timeout)

    def mark(self):
        with self.lock:
            return len(self.events)

    def publish(self, config):
        m = self.mark()
        self.send({"op": "publish", "config": config})
        return self.wait_event(lambda e: e["event"] == "published", "published", start=m)

    def query(self, op, **kw):
        m = self.mark()
        cmd = {"op": op}
        cmd.update(kw)
        self.send(cmd)
        return self.wait_event(lambda e: e["event"] == op or (op == "discovered" and e["event"] == "discovered"),
                               op, start=m)

    def gateways(self):
        return self.query("gateways")["gateways"]

    def metrics(self):
        return self.query("metrics")["text"]

    def log_has(self, text):
        with self.lock:
            return any(text in l for l in self.logs)

    def close(self):
        if self.p.poll() is None:
            self.send({"op": "close"})
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                raise AssertionError("driver did not exit after close")
        for t in self.readers:  # the last events are read once stdout ends
            t.join(10)
        ev = self.find(lambda e: e["event"] == "closed")
        assert ev and ev[0]["loop_close"] == 0, "loop did not close clean: %r" % ev
        assert self.p.returncode == 0, "driver exit %s; stderr tail: %s" % (self.p.returncode, self.logs[-5:])


# Readiness checks quick enough for tests, pushes with time to spare.
FAST = {"readiness_interval_s": 0.5, "readiness_timeout_s": 0.4, "proxy_timeout_s": 20}


def new_driver(driver, urls, **kw):
    """A Driver for the static gateways @urls with FAST timings (@kw overrides them)."""
    cfg = dict(FAST, admin_urls=urls)
    cfg.update(kw)
    d = Driver(driver, cfg)
    assert d.error is None, d.error
    return d


def config(n=1, tag_kind="Ingress", ns="default", prefix="ing", extra_plugin=None):
    """A small translated-looking config: one service + route per object, k8s-* tags on each."""
    services = []
    for i in range(n):
        name = "%s-%d" % (prefix, i)
        tags = ["k8s-name:%s" % name, "k8s-namespace:%s" % ns, "k8s-kind:%s" % tag_kind,
                "k8s-uid:uid-%s" % name, "k8s-group:networking.k8s.io", "k8s-version:v1"]
        svc = {"name": "%s.%s.80" % (ns, name), "host": "%s.%s.80.svc" % (name, ns), "port": 80,
               "protocol": "http", "tags": tags,
               "routes": [{"name": "%s.%s.00" % (ns, name), "paths": ["/%s" % name], "tags": tags}]}
        services.append(svc)
    return {"_format_version": "3.0", "services": services}


_certs = None


def certs():
    """A CA, a server cert for 127.0.0.1 / 127.0.0.2 / pod.kong-admin.kong.svc, a client cert,
    and an unrelated CA with its own server cert (the "wrong certificate")."""
    global _certs
    if _certs:
        return _certs
    d = tempfile.mkdtemp(prefix="dp-certs-")

    def run(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True, cwd=d)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2", "-subj", "/CN=" + ca)
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,DNS:localhost,"
                "DNS:*.kong-admin.kong.svc,DNS:kong.test\n")
    cext = os.path.join(d, "client.ext")
    with open(cext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ca, e in (("server", "ca", ext), ("wrong", "other-ca", ext), ("client", "ca", cext),
                        ("badclient", "other-ca", cext)):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", e)
    _certs = {k: os.path.join(d, k) for k in os.listdir(d)}
    return _certs


def run_tests(tests):
    failed = 0
    for t in tests:
        name = t.__name__
        try:
            t()
            print("ok - %s" % name, flush=True)
        except Exception as e:  # noqa: BLE001
            failed += 1
            import traceback
            traceback.print_exc()
            print("not ok - %s: %s" % (name, e), flush=True)
    print("%d/%d passed" % (len(tests) - failed, len(tests)))
    sys.exit(1 if failed else 0)
