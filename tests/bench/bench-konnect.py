#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Konnect benchmark (prints figures, asserts nothing): revision-to-201 of a local gateway
(tests/bench/fast-kong) while Konnect (tests/fakes/konnect.py) is healthy, black-holed or
rate-limiting, all in one run (modes alternate in blocks). See bench-konnect.c.
Usage: bench-konnect.py BUILD_DIR [--revisions 200] [--services 200] [--block 20] [--gap-ms 50]
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--revisions", type=int, default=200)
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--block", type=int, default=20)
    ap.add_argument("--gap-ms", type=int, default=50)
    a = ap.parse_args()
    bench = os.path.join(a.build, "tests", "bench", "bench-konnect")
    fast_kong = os.path.join(a.build, "tests", "bench", "fast-kong")
    for exe in (bench, fast_kong):
        if not os.path.exists(exe):
            sys.exit("missing %s (needs the dataplane module and its fast-kong)" % exe)
    pki = tempfile.mkdtemp(prefix="tether-bench-konnect-")
    procs = []
    try:
        kn = subprocess.Popen([sys.executable, os.path.join(SRC, "tests", "fakes", "konnect.py"),
                               "--pki-dir", pki], stdout=subprocess.PIPE, text=True)
        procs.append(kn)
        port = int(kn.stdout.readline().split()[1])
        control = int(kn.stdout.readline().split()[1])
        kong = subprocess.Popen([fast_kong, "1"], stdout=subprocess.PIPE, text=True)
        procs.append(kong)
        kport = int(kong.stdout.readline().split()[1])
        # fast-kong prints a line per 201: drain them so it never blocks on a full pipe.
        subprocess.Popen(["cat"], stdin=kong.stdout, stdout=subprocess.DEVNULL)
        r = subprocess.run([bench, "--kong", "http://127.0.0.1:%d" % kport,
                            "--konnect", "https://127.0.0.1:%d" % port,
                            "--control", "http://127.0.0.1:%d" % control,
                            "--cert", os.path.join(pki, "client.crt"),
                            "--key", os.path.join(pki, "client.key"),
                            "--ca", os.path.join(pki, "ca.crt"),
                            "--revisions", str(a.revisions), "--services", str(a.services),
                            "--block", str(a.block), "--gap-ms", str(a.gap_ms)])
        return r.returncode
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
