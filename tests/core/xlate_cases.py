#!/usr/bin/env python3
"""Translation cases of our own (tests/core/cases/<name>/): `tether translate -f in.yaml -o json`
with the flags in args.txt (optional) must print expected.json exactly (as JSON values), and
every line of warnings.txt (optional) must appear in stderr. Rules not covered by KIC's golden
corpus live here: L4 ingresses, default backends, annotations, plugin combinations, consumers.
Each case runs twice: as it comes, and with TETHER_SPLIT_MIN=1, so that every pass that shares
its work with a helper thread does so even on these small inputs."""
import json, os, subprocess, sys

tether = os.environ["TETHER"]
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def check(d, p, problems, how):
    if p.returncode != 0:
        problems.append("exit %d%s: %s" % (p.returncode, how, p.stderr[-500:]))
        return
    got = json.loads(p.stdout)
    want = json.load(open(os.path.join(d, "expected.json")))
    if got != want:
        problems.append("output differs%s:\n%s" % (how, json.dumps(got, indent=1, sort_keys=True)[:4000]))
    wpath = os.path.join(d, "warnings.txt")
    if os.path.exists(wpath):
        for line in open(wpath):
            line = line.strip()
            if line and line not in p.stderr:
                problems.append("stderr%s lacks %r; stderr was:\n%s" % (how, line, p.stderr))
    elif p.stderr.strip():
        problems.append("unexpected warnings%s: %s" % (how, p.stderr))


failed = 0
cases = sorted(os.listdir(here))
for case in cases:
    d = os.path.join(here, case)
    args = []
    if os.path.exists(os.path.join(d, "args.txt")):
        args = open(os.path.join(d, "args.txt")).read().split()
    problems = []
    for split in ("", "1"):
        env = dict(os.environ, TETHER_SPLIT_MIN=split)
        p = subprocess.run([tether, "translate", "-f", os.path.join(d, "in.yaml"), "-o", "json"] + args,
                           capture_output=True, text=True, timeout=60, env=env)
        check(d, p, problems, " (TETHER_SPLIT_MIN=1)" if split else "")
    print("%s %s" % ("FAIL" if problems else "ok", case))
    for pr in problems:
        print("  " + pr)
    failed += bool(problems)
print("%d passed, %d failed" % (len(cases) - failed, failed))
sys.exit(1 if failed else 0)
