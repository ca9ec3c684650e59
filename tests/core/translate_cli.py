#!/usr/bin/env python3
"""`tether translate` as a user meets it: exit codes, formats, stdin, folders, and errors that
name the file and line or the object."""
import json, os, subprocess, sys, tempfile

tether = os.environ["TETHER"]
src = os.environ["TETHER_SRC"]
failures = []


def run(args, stdin=None):
    return subprocess.run([tether] + args, input=stdin, capture_output=True, text=True, timeout=60)


def check(name, cond, detail=""):
    if not cond:
        failures.append("%s: %s" % (name, detail))
    print("%s %s" % ("ok" if cond else "FAIL", name))


examples = os.path.join(src, "deploy", "examples")
p = run(["translate", "-f", examples])
check("examples translate cleanly", p.returncode == 0 and p.stderr == "", p.stderr)
check("yaml is the default output", p.stdout.startswith('_format_version: "3.0"'), p.stdout[:80])

pj = run(["translate", "-f", examples, "-o", "json"])
cfg = json.loads(pj.stdout)
check("json output parses", cfg.get("_format_version") == "3.0")
try:
    import re
    import yaml

    class GoYamlLoader(yaml.SafeLoader):
        """PyYAML typing scalars as go-yaml v2 does: 1e+21 is a float too, and after a leading
        '.' an underscore makes text (go-yaml hands that to ParseFloat as it is)."""

    GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
    GoYamlLoader.yaml_implicit_resolvers = {
        k: [(t, r) for t, r in v if not (k == "." and t.endswith(":float"))]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    GoYamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", GO_FLOAT,
                                       list("-+0123456789."))
    check("yaml and json outputs agree", yaml.load(p.stdout, Loader=GoYamlLoader) == cfg)
except ImportError:
    yaml = None

# Numbers as KIC writes them (Go's float64), and YAML that go-yaml types back the same.
scalars = os.path.join(src, "tests", "core", "cases", "yaml-scalars", "in.yaml")
nj = run(["translate", "-f", scalars, "-o", "json"]).stdout
for text in ('"weight": 1\n', '"ratio": 0.1,', '"big": 1e+21,', '"mode": 420,', '"sync_rate": 0.5'):
    check("json writes %s" % text, text in nj, nj[:300])
ny = run(["translate", "-f", scalars]).stdout
for text in ("weight: 1\n", "ratio: 0.1\n", "big: 1e+21\n", 'stamp: "2024-01-02"\n', '- "on"\n'):
    check("yaml writes %r" % text, text in ny, ny[:300])
if yaml:
    check("yaml-scalars: yaml and json outputs agree",
          yaml.load(ny, Loader=GoYamlLoader) == json.loads(nj))

# An encrypted private key is refused, never asked for: with a terminal, OpenSSL's default
# would prompt for a passphrase and wait.
import pty, select, signal, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(tether, [tether, "translate", "-f",
                      os.path.join(src, "tests", "core", "cases", "tls-secrets", "in.yaml")])
out, deadline, status = b"", time.time() + 20, None
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        out += chunk
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
        break
if status is None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
os.close(fd)
check("an encrypted key on a terminal asks for nothing", status == 0 and b"pass phrase" not in out,
      out[-300:])

again = run(["translate", "-f", examples, "-o", "json"])
check("output is deterministic", again.stdout == pj.stdout)

with open(os.path.join(examples, sorted(f for f in os.listdir(examples) if f.endswith(".yaml"))[0])) as f:
    text = f.read()
ps = run(["translate", "-f", "-", "-o", "json"], stdin=text)
check("stdin works", ps.returncode == 0 and json.loads(ps.stdout)["_format_version"] == "3.0", ps.stderr)

with tempfile.TemporaryDirectory() as d:
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("apiVersion: v1\nkind: Service\nmetadata: {name: ok, namespace: ns}\n"
                "spec: {ports: [{port: 80}]}\n"
                "---\nkind: Ingress\nmetadata:\n  name: [broken\n")
    pb = run(["translate", "-f", bad, "-o", "json"])
    check("a broken document is a warning naming file:line", pb.returncode == 0 and (bad + ":") in pb.stderr
          and "warning" in pb.stderr, pb.stderr)
    pst = run(["translate", "-f", bad, "--strict"])
    check("--strict makes it fatal", pst.returncode == 1, "exit %d" % pst.returncode)

    ing = os.path.join(d, "ing.yaml")
    with open(ing, "w") as f:
        f.write("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\n"
                "spec: {ingressClassName: kong, rules: [{http: {paths: [{path: /, pathType: Prefix, "
                "backend: {service: {name: gone, port: {number: 80}}}}]}}]}\n")
    pi = run(["translate", "-f", ing])
    check("a translation failure names the object", pi.returncode == 0 and "Ingress shop/web" in pi.stderr
          and "gone" in pi.stderr, pi.stderr)

    pm = run(["translate", "-f", os.path.join(d, "missing.yaml")])
    check("a missing file is named", "missing.yaml" in pm.stderr, pm.stderr)

    garbage = os.path.join(d, "garbage.yaml")
    with open(garbage, "wb") as f:
        f.write(os.urandom(4096))
    pg = run(["translate", "-f", garbage])
    check("random bytes do not crash", pg.returncode in (0, 1) and pg.returncode >= 0, pg.stderr[-200:])

for args, code in ((["translate"], 2), (["translate", "-f", examples, "-o", "xml"], 2),
                   (["translate", "-f", examples, "--router-flavor", "x"], 2),
                   (["translate", "-f", examples, "--feature-gates", "Nope=true"], 2),
                   (["bogus"], 2), (["--version"], 0), (["translate", "--help"], 0)):
    pc = run(args)
    check("exit %d for %s" % (code, " ".join(args)), pc.returncode == code, "got %d: %s" % (pc.returncode, pc.stderr))

# What KIC refuses to start with is a usage error, with the reason.
for args, want in ((["--feature-gates", "FillIDs=false"],
                    "FillIDs is required if KongCustomEntity"),
                   (["--kong-version", "3.4.0"], "older than 3.4.1"),
                   (["--kong-version", "three"], '"three" is not a Kong version')):
    pc = run(["translate", "-f", examples] + args)
    check("exit 2 for %s" % " ".join(args), pc.returncode == 2 and want in pc.stderr,
          "got %d: %s" % (pc.returncode, pc.stderr))
for args in (["--feature-gates", " FillIDs = false , KongCustomEntity=false"],
             ["--kong-version", "3.4.1"], ["--kong-version", "3.11.0-rc1"],
             ["--kong-version", "3.9.1.0"]):
    pc = run(["translate", "-f", examples] + args)
    check("exit 0 for %s" % " ".join(args), pc.returncode == 0,
          "got %d: %s" % (pc.returncode, pc.stderr))

pe = run(["translate", "-f", examples, "-o", "json", "--router-flavor", "expressions"])
routes = [r for s in json.loads(pe.stdout).get("services", []) for r in s.get("routes", [])]
check("expressions flavor gives expression routes", routes and all("expression" in r and "paths" not in r for r in routes))

print("%d passed, %d failed" % (0 if failures else 1, len(failures)))
sys.exit(1 if failures else 0)
