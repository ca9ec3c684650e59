#!/usr/bin/env python3
"""`tether run` exports the expiry of the sinks' client certificates on /metrics
(tether_tls_client_cert_expiry_seconds), made with `tether certs` at run time."""
import json, os, re, subprocess, sys, tempfile, time, urllib.request

tether = os.environ["TETHER"]
src = os.environ["TETHER_SRC"]

with tempfile.TemporaryDirectory() as d:
    def gen(*args):
        subprocess.run([tether, "certs", "generate"] + list(args), check=True, capture_output=True)
    gen("--cert", d + "/ca.crt", "--key", d + "/ca.key", "--usage", "ca", "--cn", "test-ca")
    gen("--cert", d + "/c.crt", "--key", d + "/c.key", "--cn", "client", "--days", "10",
        "--ca-cert", d + "/ca.crt", "--ca-key", d + "/ca.key")
    p = subprocess.Popen([tether, "run", "--manifests", os.path.join(src, "deploy", "examples"),
                          "--kong-admin-url", "https://127.0.0.1:1",
                          "--kong-admin-tls-client-cert-file", d + "/c.crt",
                          "--kong-admin-tls-client-key-file", d + "/c.key",
                          "--kong-admin-ca-cert-file", d + "/ca.crt",
                          "--metrics-bind-address", "127.0.0.1:0",
                          "--health-probe-bind-address", "127.0.0.1:0",
                          "--diagnostics-bind-address", "0"],
                         stderr=subprocess.PIPE, text=True)
    port, seen = None, []
    deadline = time.time() + 30
    try:
        while time.time() < deadline and port is None:
            line = p.stderr.readline()
            if not line:
                break
            seen.append(line)
            rec = json.loads(line)
            if rec.get("server") == "metrics" and rec.get("port"):
                port = rec["port"]
        if port is None:
            print("FAIL: no metrics port in the log")
            sys.exit(1)
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    finally:
        p.terminate()
        # Read through p.stderr: communicate(timeout=) reads the raw pipe and would drop
        # what readline() already buffered (the warning can arrive in the same chunk).
        rest = p.stderr.read()
        p.wait(timeout=30)
    m = re.search(r'^tether_tls_client_cert_expiry_seconds\{flag="kong-admin-tls-client-cert"\} (\d+)', body, re.M)
    ok = m is not None and 9 * 86400 < int(m.group(1)) <= 10 * 86400
    # A certificate that expires within 30 days is warned about.
    logs = [json.loads(l) for l in seen + rest.splitlines() if l.startswith("{")]
    warned = any(r.get("level") == "warn" and "expir" in r.get("msg", "") for r in logs)
    print("%s expiry metric present and about 10 days" % ("ok" if ok else "FAIL"))
    print("%s expiry within 30 days is warned" % ("ok" if warned else "FAIL"))
    print("%d passed, %d failed" % (ok + warned, (not ok) + (not warned)))
    sys.exit(0 if ok and warned else 1)
