#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""TLS to the API server: kubeconfig with certificate-authority-data and a client certificate
(checked by the fake), a wrong CA refused, insecure-skip-tls-verify, and in-cluster
configuration (KUBERNETES_SERVICE_HOST + service account folder via TETHER_SA_DIR)."""
import base64
import os
import subprocess
import tempfile
import time

from k8slib import (TOKEN, Driver, check, ingress, kubeconfig, start_fake, wait_until)


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj",
            "/CN=" + name, cwd=d)


def make_cert(d, name, ca, ext):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext",
            cwd=d)


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def main():
    d = tempfile.mkdtemp()
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
              "extendedKeyUsage=serverAuth\n")
    make_cert(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    p = lambda n: os.path.join(d, n)  # noqa: E731
    fake = start_fake(tls_cert=p("server.crt"), tls_key=p("server.key"), client_ca=p("ca.crt"))
    fake.apply(ingress("secure", ns="web"))
    check(fake.url.startswith("https://"), "fake serves TLS")

    # CA data + client certificate data, no token: the fake sees the client certificate.
    fake.set_tokens(None)
    kc = kubeconfig(d, fake.url, token=None,
                    extra_cluster={"certificate-authority-data": b64(p("ca.crt"))},
                    extra_user={"client-certificate-data": b64(p("client.crt")),
                                "client-key-data": b64(p("client.key"))})
    a = Driver(["--kubeconfig", kc])
    a.wait("synced")
    a.wait("upsert", kind="Ingress", name="secure")
    check(fake.client_certs and all(c == "client" for c in fake.client_certs),
          "client certificate presented: %s" % fake.client_certs[:3])
    check(a.stop() == 0, "a exits 0")

    # CA and client cert as files, relative to the kubeconfig.
    fake.client_certs.clear()
    kc2 = kubeconfig(d, fake.url, token=None,
                     extra_cluster={"certificate-authority": "ca.crt"},
                     extra_user={"client-certificate": "client.crt", "client-key": "client.key"})
    b = Driver(["--kubeconfig", kc2])
    b.wait("synced")
    check(fake.client_certs, "client certificate from files presented")
    check(b.stop() == 0, "b exits 0")

    # Wrong CA: nothing delivered, TLS errors logged.
    kc3 = kubeconfig(d, fake.url, extra_cluster={
        "certificate-authority-data": b64(p("other-ca.crt"))})
    c = Driver(["--kubeconfig", kc3])
    wait_until(lambda: "certificate" in c.err_text() or "SSL" in c.err_text(), "TLS error")
    time.sleep(0.5)
    check(not c.ops("upsert"), "nothing delivered with an untrusted server")
    check(c.stop() == 0, "c exits 0")

    # insecure-skip-tls-verify.
    kc4 = kubeconfig(d, fake.url, extra_cluster={"insecure-skip-tls-verify": True})
    e = Driver(["--kubeconfig", kc4])
    e.wait("synced")
    check(e.stop() == 0, "e exits 0")

    # In-cluster: token, CA and namespace from the service account folder.
    sa = os.path.join(d, "sa")
    os.mkdir(sa)
    with open(os.path.join(sa, "token"), "w") as f:
        f.write(TOKEN + "\n")
    with open(os.path.join(sa, "ca.crt"), "wb") as f:
        f.write(open(p("ca.crt"), "rb").read())
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write("kong-system")
    fake.set_tokens([TOKEN])
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(fake.port),
           "TETHER_SA_DIR": sa, "KUBECONFIG": ""}
    g = Driver(["--leader-election", "--identity", "pod-g"], env=env)
    g.wait("synced")
    g.wait("leader", value=True)
    check(fake.get("Lease", "kong-system", "5b374a9e.konghq.com") is not None,
          "Lease in the service account's namespace")
    check(g.stop() == 0, "g exits 0")

    # In-cluster without a token file: a clear error.
    os.unlink(os.path.join(sa, "token"))
    h = Driver([], env=env)
    rc = h.p.wait(20)
    check(rc != 0 and "token" in h.err_text(), "missing token reported: %s" % h.err_text())
    fake.stop()
    print("ok")


if __name__ == "__main__":
    main()
