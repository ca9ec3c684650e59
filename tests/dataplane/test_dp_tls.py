#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Data plane sink over TLS and mutual TLS: CA verification, client certificates, the TLS
server name override, a gateway with a certificate from another CA, skip-verify."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dphelp import FakeKong, certs, config, new_driver, run_tests, wait_for  # noqa: E402

DRIVER = sys.argv[1]


def new(urls, **kw):
    return new_driver(DRIVER, urls, **kw)


def applied(d, h, ok):
    return d.wait_event(lambda e: e["event"] == "applied" and e["hash"] == h and e["ok"] == ok,
                        "applied ok=%s" % ok)


def test_tls_with_ca():
    c = certs()
    k = FakeKong(cert=c["server.crt"], key=c["server.key"])
    d = new([k.url], ca_cert_file=c["ca.crt"])
    try:
        p = d.publish(config(2))
        applied(d, p["hash"], True)
        assert k.accepted == 1
    finally:
        d.close()
        k.close()


def test_mutual_tls():
    c = certs()
    k = FakeKong(cert=c["server.crt"], key=c["server.key"], client_ca=c["ca.crt"])
    good = new([k.url], ca_cert_file=c["ca.crt"], client_cert_file=c["client.crt"],
               client_key_file=c["client.key"])
    try:
        p = good.publish(config(1))
        applied(good, p["hash"], True)
        assert k.accepted == 1
    finally:
        good.close()
    # No client certificate, or one from another CA: the gateway never becomes ready.
    for extra in ({}, {"client_cert_file": c["badclient.crt"], "client_key_file": c["badclient.key"]}):
        d = new([k.url], ca_cert_file=c["ca.crt"], **extra)
        try:
            p = d.publish(config(3))
            applied(d, p["hash"], False)
            assert k.accepted == 1
            assert all(g["state"] == "pending" for g in d.gateways())
        finally:
            d.close()
    k.close()


def test_wrong_server_certificate_and_skip_verify():
    c = certs()
    k = FakeKong(cert=c["wrong.crt"], key=c["wrong.key"])
    d = new([k.url], ca_cert_file=c["ca.crt"])
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], False)
        assert k.posts_config() == [] and k.accepted == 0
    finally:
        d.close()
    d = new([k.url], skip_verify=True)
    try:
        assert d.log_has("--kong-admin-tls-skip-verify")
        p = d.publish(config(1))
        applied(d, p["hash"], True)
    finally:
        d.close()
        k.close()


def test_server_name_override():
    c = certs()
    k = FakeKong(cert=c["server.crt"], key=c["server.key"])
    d = new([k.url], ca_cert_file=c["ca.crt"], tls_server_name="kong.test")
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], True)
        assert "kong.test" in k.sni, k.sni
        assert k.posts_config()[0]["headers"]["host"].startswith("kong.test:")
        # Metrics and state keep the URL as given.
        assert d.gateways()[0]["url"] == k.url
    finally:
        d.close()
    # A name the certificate does not carry fails verification: the name is really used.
    d = new([k.url], ca_cert_file=c["ca.crt"], tls_server_name="not-in-cert.example")
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], False)
    finally:
        d.close()
        k.close()


def test_client_certificate_rotation():
    c = certs()
    k = FakeKong(cert=c["server.crt"], key=c["server.key"], client_ca=c["ca.crt"])
    d_ = tempfile.mkdtemp()
    crt, key = os.path.join(d_, "tls.crt"), os.path.join(d_, "tls.key")
    shutil.copy(c["badclient.crt"], crt)
    shutil.copy(c["badclient.key"], key)
    d = new([k.url], ca_cert_file=c["ca.crt"], client_cert_file=crt, client_key_file=key)
    try:
        p = d.publish(config(1))
        applied(d, p["hash"], False)
        # Rotate the files in place (key first, as a Secret update swaps both): no restart.
        for src, dst in ((c["client.key"], key), (c["client.crt"], crt)):
            tmp = dst + ".new"
            shutil.copy(src, tmp)
            os.replace(tmp, dst)
        wait_for(lambda: k.accepted == 1, "configured with the rotated certificate", timeout=60)
    finally:
        d.close()
        k.close()
        shutil.rmtree(d_)


if __name__ == "__main__":
    run_tests([test_tls_with_ca, test_mutual_tls, test_wrong_server_certificate_and_skip_verify,
               test_server_name_override, test_client_certificate_rotation])
