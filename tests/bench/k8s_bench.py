#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark of the Kubernetes client (not run by meson test): N Ingress sets (Ingress, Service,
EndpointSlice, TLS Secret) plus M unrelated Secrets on the fake API server; prints the time to
the initial sync, the peak RSS of the client process (k8s-driver: client only, no store), and
the delay from a change on the server to its delivery.
With TETHER set and --tether, runs the real `tether run --kong-config-out` instead and reports
its peak RSS (store and translator included) and the delay from a change on the server to the
new output file.
--no-tls leaves the TLS Secrets unreferenced (they are then held back like the unrelated ones).
Usage: K8S_DRIVER=build/tests/k8s/k8s-driver tests/bench/k8s_bench.py [N] [M] [--tether] [--no-tls]"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "k8s"))
from k8slib import Driver, ingress, kubeconfig, obj, secret, start_fake, wait_until  # noqa


def rss_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def bench_tether(fake, n, tls):
    import json
    import signal
    import subprocess
    tmp = tempfile.mkdtemp()
    out = os.path.join(tmp, "kong.json")
    t0 = time.monotonic()
    p = subprocess.Popen([os.environ["TETHER"], "run", "--kubeconfig", kubeconfig(tmp, fake.url),
                          "--kong-config-out", out, "--health-probe-bind-address", "0",
                          "--metrics-bind-address", "0", "--diagnostics-bind-address", "0",
                          "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warn")],
                         stderr=open(os.path.join(tmp, "tether.log"), "wb"))
    print("tether log: " + os.path.join(tmp, "tether.log"))

    def routes():
        try:
            with open(out) as f:
                cfg = json.load(f)
        except (OSError, ValueError):
            return None
        return {h for s in cfg.get("services", []) for r in s.get("routes", [])
                for h in r.get("hosts", [])}
    wait_until(lambda: (routes() or set()) >= {"app-%05d.example" % (n - 1)}, "output",
               timeout=900)
    print("tether: first full configuration after %.1f s" % (time.monotonic() - t0))
    print("tether RSS at first configuration: %d kB" % rss_kb(p.pid, "VmRSS"))
    # Let the namespace plan be made (in the background, about a translation's time), then change.
    time.sleep(float(os.environ.get("BENCH_SETTLE_S", "5")))
    lat = []
    for i in range(3):
        ing = ingress("app-%05d" % i, ns="ns%d" % (i % 50),
                      tls_secret="tls-%05d" % i if tls else None)
        ing["spec"]["rules"][0]["host"] = "changed-%d.example" % i
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = \
            "svc-%05d" % i
        before = os.stat(out).st_mtime_ns
        t1 = time.monotonic()
        fake.apply(ing)
        # The output file is replaced atomically: its new mtime is when the change is out.
        while os.stat(out).st_mtime_ns == before and time.monotonic() - t1 < 600:
            time.sleep(0.002)
        lat.append((time.monotonic() - t1) * 1000)
        assert "changed-%d.example" % i in (routes() or ()), "the new file lacks the change"
        time.sleep(1.5)  # quiet: tether checks a merged configuration against a full one
    lat.sort()
    print("tether: change on the server to new output file: median %.0f ms, max %.0f ms "
          "(3 changes, file polled every 2 ms; includes the watch, the debounce and translation)"
          % (lat[1], lat[-1]))
    print("tether RSS: now %d kB, peak %d kB" % (rss_kb(p.pid, "VmRSS"), rss_kb(p.pid, "VmHWM")))
    p.send_signal(signal.SIGTERM)
    p.wait(60)


def main():
    use_tether = "--tether" in sys.argv
    tls = "--no-tls" not in sys.argv
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if len(args) > 0 else 10000
    m = int(args[1]) if len(args) > 1 else 20000
    fake = start_fake()
    # One real key pair for every TLS Secret, so that translation has no failures.
    import base64
    import subprocess
    kd = tempfile.mkdtemp()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", kd + "/k.pem", "-out",
                    kd + "/c.pem", "-days", "2", "-subj", "/CN=bench"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    crt = base64.b64encode(open(kd + "/c.pem", "rb").read()).decode()
    key = base64.b64encode(open(kd + "/k.pem", "rb").read()).decode()
    t0 = time.monotonic()
    for i in range(n):
        ns = "ns%d" % (i % 50)
        ing = ingress("app-%05d" % i, ns=ns, tls_secret="tls-%05d" % i if tls else None)
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = \
            "svc-%05d" % i
        fake.apply(ing)
        fake.apply(obj("Service", "svc-%05d" % i, ns, spec={
            "type": "ClusterIP", "clusterIP": "10.0.%d.%d" % (i // 250, i % 250),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}))
        fake.apply(obj("EndpointSlice", "svc-%05d-abc" % i, ns, addressType="IPv4",
                       endpoints=[{"addresses": ["10.1.%d.%d" % (i // 250, i % 250)],
                                   "conditions": {"ready": True}}],
                       ports=[{"name": "http", "port": 8080}],
                       metadata={"name": "svc-%05d-abc" % i, "namespace": ns,
                                 "labels": {"kubernetes.io/service-name": "svc-%05d" % i}}))
        fake.apply(secret("tls-%05d" % i, ns=ns, data={"tls.crt": crt, "tls.key": key}))
    for i in range(m):
        fake.apply(secret("unrelated-%05d" % i, ns="ns%d" % (i % 50),
                          data={"blob": "QUJDRA==" * 256}))
    print("fake filled in %.1f s" % (time.monotonic() - t0))
    if use_tether:
        bench_tether(fake, n, tls)
        fake.stop()
        return
    tmp = tempfile.mkdtemp()
    t0 = time.monotonic()
    d = Driver(["--kubeconfig", kubeconfig(tmp, fake.url)])
    d.wait("synced", timeout=600)
    with open("/proc/%d/stat" % d.p.pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    print("initial sync: %.2f s (client CPU %.2f s; the rest is the Python fake), %d objects "
          "delivered" % (time.monotonic() - t0, cpu, len(d.ops("upsert"))))
    wait_until(lambda: fake.watchers() >= 18, "watches", timeout=60)
    lat = []
    for i in range(20):
        t1 = time.monotonic()
        fake.apply(ingress("app-%05d" % i, ns="ns%d" % (i % 50),
                           tls_secret="tls-%05d" % i if tls else None)
                   | {"metadata": {"name": "app-%05d" % i, "namespace": "ns%d" % (i % 50),
                                   "labels": {"rev": str(i)}}})
        ups = d.wait("upsert", kind="Ingress", name="app-%05d" % i, count=2, timeout=30)
        lat.append(ups[-1]["t_us"] / 1000.0 - t1 * 1000)
    lat.sort()
    print("change to delivery: median %.1f ms, max %.1f ms (20 changes)" % (lat[10], lat[-1]))
    print("client RSS: now %d kB, peak %d kB" % (rss_kb(d.p.pid, "VmRSS"),
                                                rss_kb(d.p.pid, "VmHWM")))
    d.stop()
    fake.stop()


if __name__ == "__main__":
    main()
