#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Mutual TLS between mtls (libcurl, via tests/mtls/mtls-get) and `openssl s_server -Verify 1`
on loopback, with every certificate made by `tether certs generate` and checked by
`openssl verify`. Also the Konnect case: a self-signed client certificate pinned as the only CA."""
import os
import re
import subprocess
import sys
import tempfile
import time

TETHER = os.environ["TETHER"]
MTLS_GET = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    else:
        print("ok:", what, flush=True)


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kw)


def gen(d, name, *extra):
    r = run(TETHER, "certs", "generate", "--cert", f"{d}/{name}.crt", "--key", f"{d}/{name}.key", *extra)
    if r.returncode != 0:
        sys.exit(f"tether certs generate {name} failed: {r.stderr}")


class SServer:
    """openssl s_server on 127.0.0.1, port 0; the port comes from its ACCEPT line."""

    def __init__(self, cert, key, cafile):
        self.p = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key,
             "-CAfile", cafile, "-Verify", "1", "-verify_return_error", "-www"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        self.port = None
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if line.startswith("ACCEPT"):
                self.port = int(line.strip().rsplit(":", 1)[1])
                break
        if self.port is None:
            self.stop()
            sys.exit("s_server did not start")

    def url(self):
        return f"https://127.0.0.1:{self.port}/"

    def stop(self):
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()


def main():
    with tempfile.TemporaryDirectory(prefix="tether-sserver-") as d:
        gen(d, "ca", "--usage", "ca", "--cn", "Test Root")
        gen(d, "server", "--usage", "server", "--cn", "s_server", "--san", "127.0.0.1",
            "--san", "localhost", "--ca-cert", f"{d}/ca.crt", "--ca-key", f"{d}/ca.key")
        gen(d, "client", "--cn", "tether-client", "--key-type", "rsa-2048",
            "--ca-cert", f"{d}/ca.crt", "--ca-key", f"{d}/ca.key")
        gen(d, "konnect", "--cn", "kongdp")  # self-signed, pinned by the server

        r = run("openssl", "verify", "-CAfile", f"{d}/ca.crt", f"{d}/server.crt", f"{d}/client.crt")
        check(r.returncode == 0, "openssl verify accepts CA-signed server and client certificates")
        r = run("openssl", "verify", "-purpose", "sslclient", "-CAfile", f"{d}/ca.crt", f"{d}/client.crt")
        check(r.returncode == 0, "client certificate is fit for TLS client authentication")
        r = run("openssl", "verify", "-purpose", "sslserver", "-CAfile", f"{d}/ca.crt", f"{d}/server.crt")
        check(r.returncode == 0, "server certificate is fit for TLS servers")
        r = run("openssl", "verify", "-purpose", "sslclient", "-CAfile", f"{d}/konnect.crt", f"{d}/konnect.crt")
        check(r.returncode == 0, "self-signed certificate verifies as its own pinned root")
        r = run("openssl", "verify", "-CAfile", f"{d}/konnect.crt", f"{d}/client.crt")
        check(r.returncode != 0, "openssl verify rejects a certificate from another CA")

        srv = SServer(f"{d}/server.crt", f"{d}/server.key", f"{d}/ca.crt")
        try:
            base = [MTLS_GET, "--ca-file", f"{d}/ca.crt"]
            r = run(*base, "--cert-file", f"{d}/client.crt", "--key-file", f"{d}/client.key", srv.url())
            check(r.returncode == 0, f"mutual TLS with s_server succeeds ({r.stderr.strip()})")
            check("Client certificate" in r.stdout and re.search(r"Subject: CN ?= ?tether-client", r.stdout),
                  "s_server saw the client certificate CN = tether-client")
            check("TLSv1.3" in r.stdout or "TLSv1.2" in r.stdout, "TLS 1.2 or newer negotiated")

            r = run(*base, srv.url())
            check(r.returncode == 1, "without a client certificate s_server refuses the connection")

            r = run(*base, "--cert-file", f"{d}/konnect.crt", "--key-file", f"{d}/konnect.key", srv.url())
            check(r.returncode == 1, "a client certificate from an untrusted issuer is refused")

            r = run(MTLS_GET, "--ca-file", f"{d}/konnect.crt", "--cert-file", f"{d}/client.crt",
                    "--key-file", f"{d}/client.key", srv.url())
            check(r.returncode == 1 and "certificate" in r.stderr.lower(),
                  "a server outside the CA bundle fails verification")

            r = run(MTLS_GET, "--skip-verify", "--cert-file", f"{d}/client.crt",
                    "--key-file", f"{d}/client.key", srv.url())
            check(r.returncode == 0 and "DISABLED" in r.stderr,
                  "--skip-verify connects and warns loudly")

            r = run(*base, "--cert-file", f"{d}/client.crt", "--key-file", f"{d}/konnect.key", srv.url())
            check(r.returncode == 2 and "--tls-client-key-file" in r.stderr and "does not match" in r.stderr,
                  "a mismatched key is refused at load, naming the flag")
            check("PRIVATE KEY" not in r.stderr, "the error does not print the key")

            r = run(*base, "--cert-file", d, "--key-file", f"{d}/client.key", srv.url())
            check(r.returncode == 2 and "is a directory" in r.stderr, "a directory is refused at load")
        finally:
            srv.stop()

        # Konnect's model: the server pins the self-signed client certificate as its only CA.
        pinned = SServer(f"{d}/server.crt", f"{d}/server.key", f"{d}/konnect.crt")
        try:
            r = run(MTLS_GET, "--ca-file", f"{d}/ca.crt", "--cert-file", f"{d}/konnect.crt",
                    "--key-file", f"{d}/konnect.key", pinned.url())
            check(r.returncode == 0 and re.search(r"Subject: CN ?= ?kongdp", r.stdout),
                  f"a pinned self-signed client certificate is accepted ({r.stderr.strip()})")
        finally:
            pinned.stop()

    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
