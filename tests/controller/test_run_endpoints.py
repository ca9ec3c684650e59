# SPDX-License-Identifier: Apache-2.0
"""Health, readiness, metrics and diagnostics endpoints of `tether run`: content, status codes,
request limits, many clients at once, bound address logging with port 0."""
import json
import os
import shutil
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctl_util import (Tether, check, http_get, ingress, raw_request, read, tmpdir,  # noqa: E402
                      wait_for, write)


def main():
    d = tmpdir()
    m = os.path.join(d, "m")
    os.makedirs(m)
    out = os.path.join(d, "kong.json")
    write(os.path.join(m, "a.yaml"), ingress("a", "a.example"))
    # a long debounce shows /readyz before the first revision
    t = Tether(["--manifests", m, "--kong-config-out", out, "--sync-debounce", "3s",
                "--sync-max-wait", "3s"])
    try:
        st, body = http_get(t.url("health", "/healthz"))
        check(st == 200, "/healthz %d" % st)
        st, body = http_get(t.url("health", "/readyz"))
        if read(out) is None:
            check(st == 503, "/readyz before the first revision: %d" % st)
        wait_for(lambda: http_get(t.url("health", "/readyz"))[0] == 200, "ready")
        check(read(out) is not None or True, "")
        st, _ = http_get(t.url("health", "/nope"))
        check(st == 404, "unknown path 404")

        # metrics
        wait_for(lambda: read(out), "output")
        st, text = http_get(t.url("metrics", "/metrics"))
        check(st == 200, "/metrics %d" % st)
        for needle in ('ingress_controller_translation_count{success="true"} 1',
                       "# TYPE ingress_controller_translation_duration_milliseconds histogram",
                       'ingress_controller_translation_duration_milliseconds_bucket{success="true",le="+Inf"} 1',
                       "ingress_controller_translation_broken_resource_count 0",
                       "tether_revisions_published_total 1",
                       'tether_store_objects{kind="Ingress"} 1',
                       'tether_sink_applied_revision{sink="file",success="true"}',
                       "process_resident_memory_bytes "):
            check(needle in text, "metrics lack %r:\n%s" % (needle, text))
        # every sample line is "name{labels} value"
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                float(value)

        # diagnostics
        st, cfg = http_get(t.url("diagnostics", "/debug/config"))
        check(st == 200 and json.loads(cfg) == json.loads(read(out)), "/debug/config = output")
        st, f = http_get(t.url("diagnostics", "/debug/failures"))
        check(st == 200 and json.loads(f)["failures"] == [], "/debug/failures")
        st, s = http_get(t.url("diagnostics", "/debug/sinks"))
        sinks = json.loads(s)
        check(st == 200 and sinks["ready"] and sinks["sinks"][0]["kind"] == "file", "/debug/sinks %r" % sinks)
        check(sinks["sinks"][0]["applied_ok"] is True, "file sink applied")

        # protocol edges
        port = t.port("health")
        r = raw_request(port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        check(r.startswith("HTTP/1.1 405"), "POST: %r" % r[:40])
        r = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        check(r.startswith("HTTP/1.1 431") or r == "", "oversized request: %r" % r[:40])
        r = raw_request(port, b"garbage\r\n\r\n")
        check(r.startswith("HTTP/1.1 400"), "garbage: %r" % r[:40])
        r = raw_request(port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
        check(r.startswith("HTTP/1.1 200") and r.endswith("\r\n\r\n"), "HEAD: %r" % r)
        r = raw_request(port, b"GET /healthz?x=1 HTTP/1.0\r\n\r\n")
        check("Connection: close" in r and r.endswith("ok\n"), "query string: %r" % r)

        # many clients at once, some that never send anything
        idle = [__import__("socket").create_connection(("127.0.0.1", port)) for _ in range(20)]
        results = []

        def get():
            results.append(http_get(t.url("health", "/healthz"))[0])
        threads = [threading.Thread(target=get) for _ in range(50)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        check(results.count(200) == 50, "50 parallel clients: %r" % results)
        for s in idle:
            s.close()
        check(http_get(t.url("health", "/healthz"))[0] == 200, "still serving")
    finally:
        rc = t.stop()
    check(rc == 0, "exit %d\n%s" % (rc, t.stderr()))
    check(not t.logs("event loop did not close cleanly"), "loop closed")

    # a port in use is fatal for health/metrics
    busy = __import__("socket").socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p = busy.getsockname()[1]
    t = Tether(["--manifests", m, "--kong-config-out", out,
                "--health-probe-bind-address", "127.0.0.1:%d" % p])
    rc = t.wait_exit()
    check(rc == 1, "busy port: exit %d" % rc)
    check("cannot listen" in t.stderr(), "busy port message")
    busy.close()
    # IPv6 loopback form and disabling
    if __import__("socket").has_ipv6:
        t = Tether(["--manifests", m, "--kong-config-out", out, "--health-probe-bind-address",
                    "[::1]:0", "--metrics-bind-address", "0", "--diagnostics-bind-address", "off"])
        try:
            rec = t.wait_log("listening", server="health")
            check(rec["address"].startswith("[::1]:"), "v6 address %r" % rec)
            check(not t.logs("listening", server="metrics"), "metrics disabled")
        finally:
            t.stop()
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
    print("ok")
