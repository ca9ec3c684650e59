# SPDX-License-Identifier: Apache-2.0
"""--state-dir: the accepted configuration is saved (gzip); a restarted tether publishes it at
once, before its sources produced anything, then replaces it with the sources' revision."""
import gzip
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctl_util import Tether, check, ingress, read, tmpdir, wait_for, write  # noqa: E402


def main():
    d = tmpdir()
    m1, m2, state = os.path.join(d, "m1"), os.path.join(d, "m2"), os.path.join(d, "state")
    os.makedirs(m1)
    os.makedirs(m2)
    write(os.path.join(m1, "a.yaml"), ingress("a", "saved.example"))
    write(os.path.join(m2, "b.yaml"), ingress("b", "fresh.example"))
    out1 = os.path.join(d, "one.json")
    t = Tether(["--manifests", m1, "--kong-config-out", out1, "--state-dir", state, "--once"])
    check(t.wait_exit() == 0, "first run\n" + t.stderr())
    saved = os.path.join(state, "last-config.json.gz")
    wait_for(lambda: os.path.exists(saved), "state file")
    with gzip.open(saved, "rt") as f:
        check(json.load(f) == json.loads(read(out1)), "saved = written config")

    # restart with other manifests and a long debounce: the saved config comes first
    out2 = os.path.join(d, "two.json")
    t = Tether(["--manifests", m2, "--kong-config-out", out2, "--state-dir", state,
                "--sync-debounce", "2s", "--sync-max-wait", "2s"])
    try:
        t.wait_log("restored the last accepted configuration")
        first = wait_for(lambda: read(out2), "restored config written")
        check("saved.example" in first and "fresh.example" not in first,
              "the restored revision is published first: %s" % first)
        wait_for(lambda: "fresh.example" in (read(out2) or ""), "sources replace it")
        with gzip.open(saved, "rt") as f:
            wait_for(lambda: "fresh.example" in gzip.open(saved, "rt").read(), "state updated")
    finally:
        check(t.stop() == 0, "exit code")

    # --once whose sources give what was restored: nothing new to publish, still exits 0
    t = Tether(["--manifests", m2, "--kong-config-out", out2, "--state-dir", state, "--once"])
    rc = t.wait_exit()
    check(rc == 0, "--once with unchanged config: %d\n%s" % (rc, t.stderr()))

    # a corrupt state file is a warning, not a failure
    with open(saved, "wb") as f:
        f.write(b"not gzip")
    t = Tether(["--manifests", m1, "--kong-config-out", out1, "--state-dir", state, "--once"])
    check(t.wait_exit() == 0, "corrupt state")
    check(t.logs("cannot restore the saved configuration, ignoring"), "warning logged")
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
    print("ok")
