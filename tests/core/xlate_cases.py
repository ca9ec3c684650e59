#!/usr/bin/env python3
"""Translation cases of our own (tests/core/cases/<name>/): `tether translate -f in.yaml -o json`
with the flags in args.txt (optional) must print expected.json exactly (as JSON values), and
every line of warnings.txt (optional) must appear in stderr. Rules not covered by KIC's golden
corpus live here: L4 ingresses, default backends, annotations, plugin combinations, consumers."""
import json, os, subprocess, sys

tether = os.environ["TETHER"]
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
failed = 0
cases = sorted(os.listdir(here))
for case in cases:
    d = os.path.join(here, case)
    args = []
    if os.path.exists(os.path.join(d, "args.txt")):
        args = open(os.path.join(d, "args.txt")).read().split()
    p = subprocess.run([tether, "translate", "-f", os.path.join(d, "in.yaml"), "-o", "json"] + args,
                       capture_output=True, text=True, timeout=60)
    problems = []
    if p.returncode != 0:
        problems.append("exit %d: %s" % (p.returncode, p.stderr[-500:]))
    else:
        got = json.loads(p.stdout)
        want = json.load(open(os.path.join(d, "expected.json")))
        if got != want:
            problems.append("output differs:\n" + json.dumps(got, indent=1, sort_keys=True)[:4000])
    wpath = os.path.join(d, "warnings.txt")
    if os.path.exists(wpath):
        for line in open(wpath):
            line = line.strip()
            if line and line not in p.stderr:
                problems.append("stderr lacks %r; stderr was:\n%s" % (line, p.stderr))
    else:
        if p.stderr.strip():
            problems.append("unexpected warnings: %s" % p.stderr)
    print("%s %s" % ("FAIL" if problems else "ok", case))
    for pr in problems:
        print("  " + pr)
    failed += bool(problems)
print("%d passed, %d failed" % (len(cases) - failed, failed))
sys.exit(1 if failed else 0)
