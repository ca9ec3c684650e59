#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`tether certs generate|inspect` end to end: files and modes, openssl verify, JSON output, the
Kubernetes Secret manifest, usage errors (exit 2) and failures (exit 1) on bad input."""
import base64
import json
import os
import stat
import subprocess
import sys
import tempfile

import yaml

TETHER = os.environ["TETHER"]
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def tether(*args):
    return subprocess.run([TETHER, "certs", *args], capture_output=True, text=True, timeout=120)


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def no_crash(r, what):
    # A crash shows as a negative return code (signal) or a sanitizer report.
    check(r.returncode >= 0 and "Sanitizer" not in r.stderr and "runtime error" not in r.stderr,
          f"{what}: no crash")


def main():
    with tempfile.TemporaryDirectory(prefix="tether-certs-cli-") as d:
        p = lambda n: os.path.join(d, n)

        # Help and usage errors.
        for args in (["--help"], ["generate", "--help"], ["inspect", "--help"]):
            r = tether(*args)
            check(r.returncode == 0 and "Usage: tether certs" in r.stdout, f"{' '.join(args)} exits 0")
        usage_cases = [
            [],
            ["frobnicate"],
            ["generate"],
            ["generate", "--cert", p("x.crt")],
            ["generate", "--cert", p("x.crt"), "--key", p("x.key"), "--key-type", "dsa"],
            ["generate", "--cert", p("x.crt"), "--key", p("x.key"), "--days", "0"],
            ["generate", "--cert", p("x.crt"), "--key", p("x.key"), "--days", "12x"],
            ["generate", "--cert", p("x.crt"), "--key", p("x.key"), "--ca-cert", p("ca.crt")],
            ["generate", "--cert", p("x.crt"), "--key", p("x.key"), "--bogus"],
            ["generate", "--cert", p("x.crt"), "--key", p("x.key"), "--cn"],
            ["generate", "--cert", p("x.crt"), "--key", p("x.crt")],
            ["generate", "--k8s-secret", "Bad_Name"],
            ["generate", "--k8s-secret", "ok", "--namespace", "Not.Valid"],
            ["generate", "--cert", p("x.crt"), "--key", p("x.key"), "--namespace", "kong"],
            ["inspect"],
            ["inspect", p("a"), p("b")],
            ["inspect", p("a"), "-o", "xml"],
            ["inspect", p("a"), "--key"],
        ]
        for args in usage_cases:
            r = tether(*args)
            check(r.returncode == 2 and "tether certs" in r.stderr, f"usage error exits 2: {args[:3]}")
        check(not os.path.exists(p("x.crt")) and not os.path.exists(p("x.key")),
              "usage errors write nothing")

        # A CA, a client signed by it, a self-signed Konnect certificate.
        r = tether("generate", "--cert", p("ca.crt"), "--key", p("ca.key"), "--usage", "ca", "--cn", "Root")
        check(r.returncode == 0, "generate CA")
        r = tether("generate", "--cert", p("c.crt"), "--key", p("c.key"), "--cn", "admin-client",
                   "--ca-cert", p("ca.crt"), "--ca-key", p("ca.key"), "--days", "90",
                   "--key-type", "rsa-2048", "--san", "client.example", "--san=10.1.2.3")
        check(r.returncode == 0 and "SHA-256" in r.stderr, "generate CA-signed client")
        check(stat.S_IMODE(os.stat(p("c.key")).st_mode) == 0o600, "key file mode is 0600")
        check(stat.S_IMODE(os.stat(p("ca.key")).st_mode) == 0o600, "CA key file mode is 0600")
        r = openssl("verify", "-purpose", "sslclient", "-CAfile", p("ca.crt"), p("c.crt"))
        check(r.returncode == 0, f"openssl verify: {r.stdout.strip()} {r.stderr.strip()}")
        r = openssl("x509", "-in", p("c.crt"), "-noout", "-text")
        check("Public-Key: (2048 bit)" in r.stdout and "DNS:client.example" in r.stdout
              and "IP Address:10.1.2.3" in r.stdout and "TLS Web Client Authentication" in r.stdout,
              "openssl sees the key size, SANs and clientAuth")
        r = openssl("pkey", "-in", p("c.key"), "-noout")
        check(r.returncode == 0, "openssl reads the key")

        r = tether("generate", "--cert", p("k.crt"), "--key", p("k.key"), "--cn", "kongdp")
        check(r.returncode == 0, "generate self-signed")
        r = openssl("verify", "-CAfile", p("k.crt"), p("k.crt"))
        check(r.returncode == 0, "self-signed verifies against itself")

        r = tether("generate", "--cert", p("big.crt"), "--key", p("big.key"), "--key-type", "rsa-4096")
        r2 = openssl("x509", "-in", p("big.crt"), "-noout", "-text")
        check(r.returncode == 0 and "Public-Key: (4096 bit)" in r2.stdout, "rsa-4096")

        # Existing files are kept unless --force.
        before = open(p("k.crt")).read()
        r = tether("generate", "--cert", p("k.crt"), "--key", p("k.key"))
        check(r.returncode == 1 and "--force" in r.stderr and open(p("k.crt")).read() == before,
              "refuses to overwrite without --force")
        r = tether("generate", "--cert", p("k.crt"), "--key", p("k.key"), "--cn", "kongdp", "--force")
        check(r.returncode == 0 and open(p("k.crt")).read() != before, "--force replaces")

        # inspect, text and JSON.
        r = tether("inspect", p("c.crt"), "--key", p("c.key"))
        check(r.returncode == 0 and "Subject:     CN=admin-client" in r.stdout
              and "matches the certificate" in r.stdout and "DNS:client.example, IP:10.1.2.3" in r.stdout,
              "inspect text")
        r = tether("inspect", p("c.crt"), "--key", p("c.key"), "-o", "json")
        j = json.loads(r.stdout)
        c = j["certificates"][0]
        check(r.returncode == 0 and j["key_matches"] is True and c["subject"] == "CN=admin-client"
              and c["issuer"] == "CN=Root" and c["key_type"] == "RSA" and c["key_bits"] == 2048
              and c["sans"] == ["DNS:client.example", "IP:10.1.2.3"] and not c["expired"]
              and 89 * 86400 < c["expires_in_seconds"] <= 90 * 86400 and not c["is_ca"],
              "inspect JSON fields")
        fp = openssl("x509", "-in", p("c.crt"), "-noout", "-fingerprint", "-sha256").stdout
        check(fp.strip().split("=", 1)[1] == c["sha256"], "fingerprint equals openssl's")
        r = tether("inspect", p("k.crt"), "-o", "json")
        c = json.loads(r.stdout)["certificates"][0]
        check(c["key_type"] == "EC" and c["curve"] == "prime256v1" and c["self_signed"]
              and "key_matches" not in json.loads(r.stdout), "inspect self-signed EC")
        with open(p("chain.pem"), "w") as f:
            f.write(open(p("c.crt")).read() + open(p("ca.crt")).read())
        r = tether("inspect", p("chain.pem"), "-o", "json")
        check(r.returncode == 0 and len(json.loads(r.stdout)["certificates"]) == 2, "inspect a chain")
        der = openssl("x509", "-in", p("c.crt"), "-outform", "DER", "-out", p("c.der"))
        r = tether("inspect", p("c.der"))
        check(r.returncode == 0 and "CN=admin-client" in r.stdout, "inspect DER")

        r = subprocess.run([TETHER, "certs", "inspect", "-", "-o", "json"], input=open(p("c.crt")).read(),
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and json.loads(r.stdout)["certificates"][0]["subject"] == "CN=admin-client",
              "inspect - reads stdin")
        r = tether("inspect", p("c.crt"), "--key", p("k.key"), "-o", "json")
        check(r.returncode == 1 and json.loads(r.stdout)["key_matches"] is False
              and "does not match" in r.stderr, "mismatched key exits 1")

        # Bad inputs: a clear error naming the file, exit 1, never a crash.
        data = open(p("c.crt")).read()
        open(p("trunc.pem"), "w").write(data[: len(data) // 2])
        open(p("garbage.pem"), "wb").write(b"\x00\xffnot a certificate\n" * 10)
        open(p("empty.pem"), "w").close()
        bad = [
            ([p("trunc.pem")], "truncated"),
            ([p("garbage.pem")], "neither a PEM nor a DER"),
            ([p("empty.pem")], "empty"),
            ([d], "is a directory"),
            ([p("missing.pem")], "No such file"),
            ([p("c.key")], "no CERTIFICATE"),
            ([p("c.crt"), "--key", p("trunc.pem")], "no PRIVATE KEY"),
            ([p("c.crt"), "--key", d], "is a directory"),
        ]
        for args, needle in bad:
            r = tether("inspect", *args)
            no_crash(r, f"inspect {os.path.basename(args[-1])}")
            check(r.returncode == 1 and needle in r.stderr and os.path.basename(args[-1]) in r.stderr,
                  f"inspect {os.path.basename(args[-1])}: '{needle}' ({r.stderr.strip()})")
            check("PRIVATE KEY-----" not in r.stderr + r.stdout, "no key bytes printed")

        gen_bad = [
            (["--ca-cert", p("garbage.pem"), "--ca-key", p("ca.key")], "--ca-cert"),
            (["--ca-cert", p("ca.crt"), "--ca-key", p("c.key")], "does not match"),
            (["--ca-cert", p("c.crt"), "--ca-key", p("c.key")], "not a CA"),
            (["--ca-cert", d, "--ca-key", p("ca.key")], "is a directory"),
            (["--ca-cert", p("ca.crt"), "--ca-key", p("empty.pem")], "empty"),
            (["--san", "bad name"], "bad name"),
            (["--cn", "x" * 65], "--cn"),
        ]
        for args, needle in gen_bad:
            r = tether("generate", "--cert", p("g.crt"), "--key", p("g.key"), *args)
            no_crash(r, f"generate {args[0]}")
            check(r.returncode == 1 and needle in r.stderr and not os.path.exists(p("g.crt")),
                  f"generate {args}: '{needle}' ({r.stderr.strip()})")
        r = tether("generate", "--cert", os.path.join(d, "nodir", "x.crt"), "--key", p("n.key"))
        check(r.returncode == 1 and "nodir" in r.stderr, "unwritable path exits 1")

        # Kubernetes Secret manifest.
        r = tether("generate", "--k8s-secret", "konnect-client-tls", "--namespace", "kong", "--cn", "kongdp")
        check(r.returncode == 0, "generate --k8s-secret")
        doc = yaml.safe_load(r.stdout)
        check(doc["kind"] == "Secret" and doc["type"] == "kubernetes.io/tls"
              and doc["metadata"] == {"name": "konnect-client-tls", "namespace": "kong"},
              "Secret manifest shape")
        crt = base64.b64decode(doc["data"]["tls.crt"])
        key = base64.b64decode(doc["data"]["tls.key"])
        open(p("s.crt"), "wb").write(crt)
        open(p("s.key"), "wb").write(key)
        r = tether("inspect", p("s.crt"), "--key", p("s.key"))
        check(r.returncode == 0 and "CN=kongdp" in r.stdout, "Secret data decodes to a matching pair")

    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
