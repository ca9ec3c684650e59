#!/usr/bin/env python3
"""Run KIC's golden corpus (../shared/conformance/run-golden) against the built tether, skipping
what tests/conformance/skip.txt lists as out of scope. Exits 77 (skipped) when the corpus is not
beside the checkout."""
import os, subprocess, sys

src = os.environ["TETHER_SRC"]
shared = os.environ.get("TETHER_SHARED") or os.path.join(src, "..", "shared")
runner = os.path.join(shared, "conformance", "run-golden")
if not os.path.exists(runner):
    print("no conformance corpus at %s; skipping" % runner)
    sys.exit(77)
skip = os.path.join(src, "tests", "conformance", "skip.txt")
ours = os.path.join(src, "tests", "conformance", "cases")
rc = 0
# Once as shipped, once with every pass that can share work with a helper thread doing so.
for split in (None, "1"):
    env = dict(os.environ)
    if split:
        env["TETHER_SPLIT_MIN"] = split
        print("--- again with TETHER_SPLIT_MIN=%s" % split, flush=True)
    p = subprocess.run([sys.executable, runner, "--tether", os.environ["TETHER"], "-v",
                        "--skip-file", skip], env=env)
    # Our own cases in the corpus' format (fallback for a broken Service and a broken Secret).
    q = subprocess.run([sys.executable, runner, "--tether", os.environ["TETHER"], "-v",
                        "--cases", ours], env=env)
    rc = rc or p.returncode or q.returncode
sys.exit(rc)
