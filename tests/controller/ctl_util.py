# SPDX-License-Identifier: Apache-2.0
"""Helpers for the `tether run` integration tests: start the binary, follow its JSON logs,
find the ports it bound, wait on conditions with generous deadlines."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

TETHER = os.environ.get("TETHER", "build/tether")
DEADLINE = 30.0


def wait_for(cond, what, timeout=DEADLINE, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


class Tether:
    """A running `tether run`; stderr lines are parsed as JSON log records."""

    def __init__(self, args, env=None, endpoints=True):
        cmd = [TETHER, "run"] + list(args)
        if endpoints:
            for flag in ("--health-probe-bind-address", "--metrics-bind-address",
                         "--diagnostics-bind-address"):
                if not any(a.startswith(flag) for a in args):
                    cmd += [flag, "127.0.0.1:0"]
        e = dict(os.environ)
        e.update(env or {})
        self.records, self.raw = [], []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                                  text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            with self.lock:
                self.raw.append(line)
                try:
                    self.records.append(json.loads(line))
                except ValueError:
                    pass

    def logs(self, msg=None, **fields):
        with self.lock:
            recs = list(self.records)
        return [r for r in recs if (msg is None or r.get("msg") == msg)
                and all(r.get(k) == v for k, v in fields.items())]

    def wait_log(self, msg, timeout=DEADLINE, **fields):
        return wait_for(lambda: self.logs(msg, **fields), "log %r %r" % (msg, fields), timeout)[0]

    def port(self, server):
        return self.wait_log("listening", server=server)["port"]

    def url(self, server, path):
        return "http://127.0.0.1:%d%s" % (self.port(server), path)

    def stop(self, sig=signal.SIGTERM, timeout=DEADLINE):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        rc = self.p.wait(timeout)
        self.t.join(5)
        return rc

    def wait_exit(self, timeout=60):
        rc = self.p.wait(timeout)
        self.t.join(5)
        return rc

    def stderr(self):
        with self.lock:
            return "".join(self.raw)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def http_get(url, timeout=10):
    """(status, body) of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def raw_request(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        return out.decode(errors="replace")
    finally:
        s.close()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(path, text):
    """Replace a file the way editors do (write a temp file, rename)."""
    tmp = path + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %(name)s
  namespace: default
  annotations:
    kubernetes.io/ingress.class: kong
spec:
  ingressClassName: kong
  rules:
  - host: %(host)s
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: %(name)s
            port:
              number: 80
---
apiVersion: v1
kind: Service
metadata:
  name: %(name)s
  namespace: default
spec:
  ports:
  - port: 80
    targetPort: 8080
    protocol: TCP
"""


def ingress(name, host):
    return INGRESS % {"name": name, "host": host}


def tmpdir():
    return tempfile.mkdtemp(prefix="tether-ctl-")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
