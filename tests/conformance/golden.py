#!/usr/bin/env python3
"""Run KIC's golden corpus (../shared/conformance/run-golden) against the built tether, skipping
what tests/conformance/skip.txt lists as out of scope, then hold `tether translate -o yaml`
against the golden files byte for byte (run-golden compares JSON values; KIC's files are go-yaml
v2's text, which tether's YAML writer follows). Exits 77 (skipped) when the corpus is not beside
the checkout."""
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


def byte_identical(corpus):
    import yaml  # run-golden needs PyYAML too
    skipped = set()
    for line in open(skip):
        line = line.split("#")[0].strip()
        if line:
            skipped.add(line)
    same, differ = 0, []
    for case in sorted(os.listdir(corpus)):
        d = os.path.join(corpus, case)
        if case in skipped or "test.konghq.com/broken" in open(os.path.join(d, "in.yaml")).read():
            continue  # out of scope, or a fallback case (its golden comes from `tether run`)
        for name in sorted(os.listdir(d)):
            if not name.endswith("_golden.yaml") or "%s/%s" % (case, name[:-12]) in skipped:
                continue
            variant = name[: -len("_golden.yaml")]
            flags, args = {}, []
            settings = os.path.join(d, variant + "_settings.yaml")
            if os.path.exists(settings):
                flags = (yaml.safe_load(open(settings)) or {}).get("feature_flags", {}) or {}
            gates = []
            for k, on in sorted(flags.items()):
                if k == "ExpressionRoutes":
                    args += ["--router-flavor", "expressions"] if on else []
                else:
                    gates.append("%s=%s" % (k, "true" if on else "false"))
            if gates:
                args += ["--feature-gates", ",".join(gates)]
            out = subprocess.run([os.environ["TETHER"], "translate", "-f",
                                  os.path.join(d, "in.yaml"), "-o", "yaml"] + args,
                                 capture_output=True).stdout
            if out == open(os.path.join(d, name), "rb").read():
                same += 1
            else:
                differ.append("%s/%s" % (case, variant))
    print("-o yaml byte-identical to the golden file: %d, different: %d %s"
          % (same, len(differ), " ".join(differ)), flush=True)
    return 1 if differ or not same else 0


rc = rc or byte_identical(os.path.join(shared, "conformance", "kic-golden"))
sys.exit(rc)
