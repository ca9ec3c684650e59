# SPDX-License-Identifier: Apache-2.0
"""`tether run --manifests DIR --kong-config-out FILE`: the output follows edits of the
manifests (change, new file, removed object, broken YAML kept, removed file), --once exit codes,
usage errors, clean shutdown on SIGTERM."""
import json
import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctl_util import Tether, check, ingress, read, tmpdir, wait_for, write  # noqa: E402


def hosts(cfg_text):
    """Every route host named in a config."""
    out = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "hosts" and isinstance(x, list):
                    out.update(h for h in x if isinstance(h, str))
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(json.loads(cfg_text))
    return out


def test_follow_edits():
    d = tmpdir()
    m = os.path.join(d, "m")
    os.makedirs(os.path.join(m, "sub"))
    out = os.path.join(d, "kong.json")
    write(os.path.join(m, "a.yaml"), ingress("a", "a.example"))
    t = Tether(["--manifests", m, "--kong-config-out", out, "--sync-debounce", "20ms"])
    try:
        wait_for(lambda: read(out) and "a.example" in hosts(read(out)), "first config")
        # an edit
        write(os.path.join(m, "a.yaml"), ingress("a", "a2.example"))
        wait_for(lambda: "a2.example" in hosts(read(out)), "edited host")
        check("a.example" not in hosts(read(out)), "old host still there")
        # a new file in a sub folder
        write(os.path.join(m, "sub", "b.yml"), ingress("b", "b.example"))
        wait_for(lambda: "b.example" in hosts(read(out)), "new file")
        # an object removed from a file
        write(os.path.join(m, "sub", "b.yml"), ingress("c", "c.example"))
        wait_for(lambda: hosts(read(out)) == {"a2.example", "c.example"}, "object removed")
        # broken YAML: error names the file and line, objects are kept
        before = read(out)
        write(os.path.join(m, "a.yaml"), ingress("a", "a2.example") + "---\nkind: [unclosed\n")
        rec = t.wait_log("cannot load a document, skipping it")
        check(rec["file"].endswith("a.yaml") and rec.get("line", 0) > 0, "error names file/line: %r" % rec)
        write(os.path.join(m, "a.yaml"), "kind: [broken\n")
        wait_for(lambda: len(t.logs("cannot load a document, skipping it")) >= 2, "second error")
        check(hosts(read(out)) == hosts(before), "a broken file must keep its objects")
        # the file removed: its objects go
        os.unlink(os.path.join(m, "a.yaml"))
        wait_for(lambda: hosts(read(out)) == {"c.example"}, "file removed")
        # output files are written whole (atomic rename): never a partial JSON
        json.loads(read(out))
    finally:
        rc = t.stop()
    check(rc == 0, "SIGTERM exit code %d\n%s" % (rc, t.stderr()))
    check(t.logs("stopped", exit_code=0), "no clean stop")
    check(not t.logs("event loop did not close cleanly"), "loop not closed cleanly")
    shutil.rmtree(d)


def test_single_file_and_yaml_output():
    d = tmpdir()
    f = os.path.join(d, "one.yaml")
    out = os.path.join(d, "kong.yaml")
    write(f, ingress("one", "one.example"))
    t = Tether(["--manifests", f, "--kong-config-out", out, "--sync-debounce=10ms"])
    try:
        wait_for(lambda: read(out) and "one.example" in read(out), "yaml output")
        write(f, ingress("one", "two.example"))
        wait_for(lambda: "two.example" in read(out), "single file edit")
    finally:
        check(t.stop() == 0, "exit code")
    shutil.rmtree(d)


def test_once():
    d = tmpdir()
    write(os.path.join(d, "a.yaml"), ingress("a", "a.example"))
    out = os.path.join(d, "kong.json")
    t = Tether(["--manifests", d, "--kong-config-out", out, "--once"])
    rc = t.wait_exit()
    check(rc == 0, "--once ok: exit %d\n%s" % (rc, t.stderr()))
    check("a.example" in hosts(read(out)), "--once wrote the config")
    # an empty source still yields a (empty) configuration
    e = os.path.join(d, "empty")
    os.makedirs(e)
    t = Tether(["--manifests", e, "--kong-config-out", os.path.join(d, "empty.json"), "--once"])
    check(t.wait_exit() == 0, "--once on an empty folder")
    check(read(os.path.join(d, "empty.json")) is not None, "empty config written")
    # a sink that fails: non-zero
    t = Tether(["--manifests", d, "--kong-config-out", os.path.join(d, "no", "such", "x.json"),
                "--once"])
    rc = t.wait_exit()
    check(rc not in (0, 2), "--once with a failing sink must fail, got %d" % rc)
    shutil.rmtree(d)


def test_usage_errors():
    for args, needle in ((["--no-such-flag"], "unknown flag --no-such-flag"),
                         (["--sync-debounce", "fast"], "--sync-debounce"),
                         (["--manifests", "/nonexistent"], "/nonexistent"),
                         (["--kong-admin-url", "http://a", "--kong-admin-svc", "a/b"], "both")):
        t = Tether(args, endpoints=False)
        rc = t.wait_exit()
        check(rc == 2, "%r: exit %d" % (args, rc))
        check(needle in t.stderr(), "%r: message %r" % (args, t.stderr()))
    t = Tether(["--help"], endpoints=False)
    check(t.wait_exit() == 0, "--help exit code")
    check("--kong-config-out" in t.p.stdout.read(), "--help lists flags")


def test_sigint_and_env():
    d = tmpdir()
    write(os.path.join(d, "a.yaml"), ingress("a", "env.example"))
    out = os.path.join(d, "kong.json")
    t = Tether([], env={"CONTROLLER_MANIFESTS": d, "CONTROLLER_KONG_CONFIG_OUT": out})
    try:
        wait_for(lambda: read(out) and "env.example" in read(out), "config from env flags")
    finally:
        rc = t.stop(signal.SIGINT)
    check(rc == 0, "SIGINT exit %d" % rc)
    shutil.rmtree(d)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok -", name)
