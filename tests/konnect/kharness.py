# SPDX-License-Identifier: Apache-2.0
"""Helpers for the Konnect integration tests: the fake, the driver process, config builders."""
import copy
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.environ.get("TETHER_FAKES", os.path.join(os.path.dirname(__file__), "..",
                                                               "fakes")))
import konnect as fakekonnect  # noqa: E402

GOKONG_NS = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")
CP_ID = "3f1b2a3c-0d4e-4f5a-8b6c-7d8e9f0a1b2c"


def kid(kind, name):
    """The deterministic id go-kong gives an entity (FillIDs)."""
    return str(uuid.uuid5(uuid.uuid5(GOKONG_NS, kind), name))


def wait_for(cond, timeout=60.0, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


_pki = None


def pki():
    global _pki
    if _pki is None:
        d = tempfile.mkdtemp(prefix="tether-konnect-pki-")
        _pki = fakekonnect.make_pki(d)
    return _pki


def fake(client_ca=None):
    return fakekonnect.FakeKonnect(pki(), cp_id=CP_ID, client_ca=client_ca).start()


class Driver:
    """The konnect-driver process: the sink on a loop, commanded over stdin."""

    def __init__(self, exe, fk, cert=None, key=None, **opts):
        p = pki()
        args = [exe, "--address", fk.address, "--cp", CP_ID, "--cert", cert or p["client.crt"],
                "--key", key or p["client.key"], "--ca", p["ca.crt"]]
        defaults = {"period": 0.05, "node-period": 30, "full-resync": 600, "backoff-min": 0.3,
                    "backoff-max": 2, "timeout": 5, "retries": 5, "concurrency": 4,
                    "hostname": "kong/tether-0"}
        defaults.update({k.replace("_", "-"): v for k, v in opts.items()})
        for k, v in defaults.items():
            if v is True:
                args.append("--" + k)
            elif v is not None and v is not False:
                args += ["--" + k, str(v)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=sys.stderr if os.environ.get("KONNECT_DEBUG")
                                     else subprocess.DEVNULL)
        self.events = []
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.cv:
                self.events.append(ev)
                self.cv.notify_all()

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def wait_event(self, pred, timeout=60.0, what="event", start=0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.reader.is_alive():
                    raise AssertionError("timed out waiting for " + what)
                self.cv.wait(min(left, 0.5))

    def publish(self, config, failures=None):
        n = len(self.events)
        cmd = {"op": "publish", "config": config}
        if failures is not None:
            cmd["failures"] = failures
        self.send(cmd)
        ev = self.wait_event(lambda e: e["event"] == "published", what="published", start=n)
        return ev["seq"]

    def wait_applied(self, seq, ok=1, timeout=60.0):
        return self.wait_event(lambda e: e["event"] == "applied" and e["seq"] == seq and
                               e["ok"] == ok, timeout, "applied seq=%d ok=%d" % (seq, ok))

    def applied(self):
        with self.cv:
            return [(e["seq"], e["ok"]) for e in self.events if e["event"] == "applied"]

    def _query(self, op):
        n = len(self.events)
        self.send({"op": op})
        return self.wait_event(lambda e: e["event"] == op, what=op, start=n)

    def status(self):
        return self._query("status")["status"]

    def metrics(self, prefix=None):
        n = len(self.events)
        cmd = {"op": "metrics"}
        if prefix is not None:
            cmd["prefix"] = prefix
        self.send(cmd)
        return self.wait_event(lambda e: e["event"] == "metrics", what="metrics", start=n)["text"]

    def metric(self, name):
        """Value of one sample, e.g. 'tether_konnect_retries_total{reason="429"}'."""
        for line in self.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def quit(self):
        self.send({"op": "quit"})
        ev = self.wait_event(lambda e: e["event"] == "closed", 60, "closed")
        assert ev["loop_close"] == 0, "loop did not close clean"
        assert self.proc.wait(30) == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake%s\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL%s\n-----END PRIVATE KEY-----\n"


def config(n=10, variant=0, consumers=True):
    """A KIC-shaped declarative config: n Ingress-like services with a route each, plugins,
    an upstream per service with targets, a certificate with SNIs, consumers with credentials,
    a consumer group, a global plugin referencing a consumer by name."""
    services, upstreams = [], []
    for i in range(n):
        name = "default.svc-%04d.80" % i
        rname = "default.ing-%04d.svc-%04d.example.com.80" % (i, i)
        route = {"name": rname, "id": kid("routes", rname), "hosts": ["h%d.example.com" % i],
                 "paths": ["/p%d" % i], "protocols": ["http", "https"], "strip_path": False,
                 "preserve_host": True, "https_redirect_status_code": 426,
                 "path_handling": "v0", "tags": ["k8s-name:ing-%04d" % i, "k8s-kind:Ingress"]}
        svc = {"name": name, "id": kid("services", name), "host": "svc-%04d.default.80.svc" % i,
               "port": 80, "protocol": "http", "path": "/", "retries": 5,
               "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000,
               "routes": [route], "tags": ["k8s-name:svc-%04d" % i, "k8s-kind:Service"]}
        if i % 5 == 0:
            route["plugins"] = [{"name": "rate-limiting", "config": {"minute": 10 + i}}]
        if i % 7 == 0:
            svc["plugins"] = [{"name": "cors", "id": kid("plugins", "cors-%d" % i),
                               "config": {"origins": ["*"]}}]
        services.append(svc)
        upstreams.append({"name": "svc-%04d.default.80.svc" % i, "algorithm": "round-robin",
                          "targets": [{"target": "10.0.%d.%d:8080" % (i // 250, i % 250),
                                       "weight": 100}]})
    if variant:
        services[0]["routes"][0]["paths"] = ["/changed-%d" % variant]
    cfg = {"_format_version": "3.0", "services": services, "upstreams": upstreams,
           "certificates": [{"id": "2b1c0f3e-8a52-4c4b-9a6e-4d1c2b3a4f50",
                             "cert": PEM_CERT % "A", "key": PEM_KEY % "A",
                             "snis": [{"name": "a.example.com"}, {"name": "b.example.com"}],
                             "tags": ["k8s-name:tls"]}],
           "plugins": [{"name": "prometheus", "id": kid("plugins", "prometheus")},
                       {"name": "request-termination", "consumer": "alice",
                        "config": {"status_code": 403}}]}
    if consumers:
        cfg["consumers"] = [
            {"username": "alice", "id": kid("consumers", "alice"),
             "keyauth_credentials": [{"key": "alice-SECRET-key", "tags": ["k8s-name:alice-key"]}],
             "basicauth_credentials": [{"username": "alice", "password": "alice-SECRET-pw"}],
             "acls": [{"group": "admins"}]},
            {"username": "bob", "id": kid("consumers", "bob"),
             "hmacauth_credentials": [{"username": "bob", "secret": "bob-SECRET-hmac"}]}]
        cfg["consumer_groups"] = [{"name": "gold", "id": kid("consumergroups", "gold")}]
        # Membership as KIC writes it for DB-less: by username and group name.
        cfg["consumer_group_consumers"] = [{"consumer": "alice", "consumer_group": "gold"}]
    return cfg


def no_secrets_sent(fk):
    """Whether any stored entity holds one of the secrets of config()."""
    blob = json.dumps(fk.snapshot())
    return all(s not in blob for s in ("SECRETKEYMATERIAL", "alice-SECRET-key", "alice-SECRET-pw",
                                       "bob-SECRET-hmac"))


def issue_client(directory, name):
    """A new client certificate and key signed by the test CA, written to directory/name.*."""
    p = pki()
    d = os.path.dirname(p["ca.crt"])
    key, csr, crt = (os.path.join(directory, name + e) for e in (".key", ".csr", ".crt"))
    run = lambda *a: subprocess.run(["openssl"] + list(a), check=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=" + name)
    run("x509", "-req", "-in", csr, "-CA", p["ca.crt"], "-CAkey", os.path.join(d, "ca.key"),
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", os.path.join(d, "client.ext"))
    return crt, key
