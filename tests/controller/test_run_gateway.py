# SPDX-License-Identifier: Apache-2.0
"""`tether run` with the data plane sink against fake Kong Admin APIs: the router flavor comes
from the gateway, --state-dir restores the last accepted configuration to a fresh gateway before
any source exists (the API server is down), --once exit codes, push metrics on /metrics.
Skipped (77) when the binary has no data plane sink."""
import json
import os
import shutil
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.environ.get("TETHER_FAKES") or os.path.join(HERE, "..", "fakes"))
from ctl_util import Tether, check, http_get, ingress, tmpdir, wait_for, write  # noqa: E402

try:
    import kong_admin  # noqa: E402
except ImportError:
    kong_admin = None


def routes(cfg):
    return [r for s in (cfg or {}).get("services", []) for r in s.get("routes", [])]


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def has_dataplane():
    d = tmpdir()
    t = Tether(["--manifests", d, "--kong-admin-url", "http://127.0.0.1:%d" % dead_port(),
                "--once"])
    try:
        wait_for(lambda: t.p.poll() is not None or t.logs("starting"), "start")
        wait_for(lambda: t.p.poll() is not None or t.logs("manifests loaded"), "start", 10)
        return "no data plane sink" not in t.stderr()
    finally:
        t.kill()
        shutil.rmtree(d)


def test_flavor_from_gateway(d):
    kong = kong_admin.FakeKong(flavor="expressions")
    write(os.path.join(d, "m", "a.yaml"), ingress("a", "a.example"))
    t = Tether(["--manifests", os.path.join(d, "m"), "--kong-admin-url", kong.url, "--once"])
    rc = t.wait_exit()
    check(rc == 0, "--once exit %d\n%s" % (rc, t.stderr()[-3000:]))
    rs = routes(kong.config)
    check(rs and all("expression" in r for r in rs), "expression routes: %r" % rs)
    kong.close()


def test_state_restore(d):
    state = os.path.join(d, "state")
    kong = kong_admin.FakeKong()
    t = Tether(["--manifests", os.path.join(d, "m"), "--kong-admin-url", kong.url,
                "--state-dir", state, "--once"])
    check(t.wait_exit() == 0, "first run\n" + t.stderr()[-3000:])
    saved = kong.config
    check(routes(saved), "first config has routes")
    wait_for(lambda: os.path.exists(os.path.join(state, "last-config.json.gz")), "state saved")
    kong.close()

    # a fresh gateway, and an API server that is not there
    fresh = kong_admin.FakeKong()
    kc = os.path.join(d, "kubeconfig.json")
    with open(kc, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                   "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}],
                   "clusters": [{"name": "c", "cluster": {
                       "server": "http://127.0.0.1:%d" % dead_port()}}],
                   "users": [{"name": "u", "user": {"token": "x"}}]}, f)
    t = Tether(["--kubeconfig", kc, "--kong-admin-url", fresh.url, "--state-dir", state])
    try:
        wait_for(lambda: fresh.config is not None, "restored config pushed", timeout=30)
        check(fresh.config == saved, "the fresh gateway runs the saved configuration")
        st, text = http_get(t.url("metrics", "/metrics"))
        check("ingress_controller_configuration_push_count" in text, "push metrics exported")
        check(http_get(t.url("health", "/readyz"))[0] == 200, "ready with the restored config")
    finally:
        rc = t.stop()
    check(rc == 0, "exit %d" % rc)
    fresh.close()


def test_once_failure(d):
    kong = kong_admin.FakeKong()
    kong.status_down = True  # never becomes ready
    t = Tether(["--manifests", os.path.join(d, "m"), "--kong-admin-url", kong.url, "--once",
                "--gateway-discovery-readiness-check-interval", "1s",
                "--gateway-discovery-readiness-check-timeout", "500ms"])
    try:
        rc = t.p.wait(20)
        check(rc != 0, "--once with no ready gateway must not succeed")
    except Exception:
        # still waiting for a gateway is acceptable: it never claims success
        check(t.p.poll() is None, "unexpected state")
        t.stop()
    kong.close()


def main():
    if kong_admin is None or not has_dataplane():
        print("skipped: no data plane sink in this build")
        sys.exit(77)
    d = tmpdir()
    os.makedirs(os.path.join(d, "m"))
    write(os.path.join(d, "m", "a.yaml"), ingress("a", "a.example"))
    for fn in (test_flavor_from_gateway, test_state_restore, test_once_failure):
        fn(d)
        print("ok -", fn.__name__, flush=True)
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
