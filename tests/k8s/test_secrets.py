#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Secret and ConfigMap filtering as KIC: only referenced or labelled ones are delivered; an
unrelated one is delivered when a reference to it appears and retracted when it goes."""
import os
import tempfile
import time

from k8slib import (Driver, check, ingress, kubeconfig, obj, secret, start_fake, wait_until)

N_UNRELATED = int(os.environ.get("K8S_TEST_SECRETS", "3000"))


def delivered(d, kind):
    return {(k[1], k[2]) for k in d.state() if k[0] == kind}


def main():
    tmp = tempfile.mkdtemp()
    log = os.path.join(tmp, "access.log")
    fake = start_fake(access_log=log)
    for i in range(N_UNRELATED):
        fake.apply(secret("u-%05d" % i, ns="ns%d" % (i % 4), data={"blob": "QUJD" * 64}))
    fake.apply(secret("tls-a", ns="shop"))
    fake.apply(ingress("web", ns="shop", tls_secret="tls-a"))
    fake.apply(secret("ca", ns="kong", labels={"konghq.com/ca-cert": "true"}))
    fake.apply(secret("not-ca", ns="kong", labels={"konghq.com/ca-cert": "false"}))
    fake.apply(secret("cred", ns="shop", labels={"konghq.com/credential": "key-auth"}))
    fake.apply(secret("plugin-conf", ns="shop"))
    fake.apply(obj("KongPlugin", "p", "shop", plugin="rate-limiting",
                   configFrom={"secretKeyRef": {"name": "plugin-conf", "key": "c"}}))
    fake.apply(secret("cluster-conf", ns="other"))
    fake.apply(obj("KongClusterPlugin", "cp", None, plugin="key-auth",
                   configFrom={"secretKeyRef": {"namespace": "other", "name": "cluster-conf",
                                                "key": "c"}}))
    fake.apply(secret("consumer-cred", ns="shop"))
    fake.apply(obj("KongConsumer", "alice", "shop", username="alice",
                   credentials=["consumer-cred"]))
    fake.apply(secret("client-cert", ns="shop"))
    fake.apply(obj("ConfigMap", "ca-cm", "shop", data={"ca.crt": "x"}))
    fake.apply(obj("ConfigMap", "unrelated-cm", "shop", data={"a": "b"}))
    fake.apply(obj("Service", "backend", "shop", spec={"type": "ClusterIP"}, metadata={
        "name": "backend", "namespace": "shop", "annotations": {
            "konghq.com/client-cert": "client-cert",
            "konghq.com/ca-certificates-configmaps": "ca-cm"}}))

    d = Driver(["--kubeconfig", kubeconfig(tmp, fake.url), "--print-objects"])
    d.wait("synced", timeout=90)
    want = {("shop", "tls-a"), ("kong", "ca"), ("shop", "cred"), ("shop", "plugin-conf"),
            ("other", "cluster-conf"), ("shop", "consumer-cred"), ("shop", "client-cert")}
    got = delivered(d, "Secret")
    check(got == want, "delivered Secrets: extra %s, missing %s" % (got - want, want - got))
    check(delivered(d, "ConfigMap") == {("shop", "ca-cm")}, "ConfigMaps: %s"
          % delivered(d, "ConfigMap"))
    s = [j for j in d.ops("upsert", kind="Secret", name="tls-a")][0]
    check(s["obj"]["data"] == {"k": "dmFsdWU="} and s["obj"]["apiVersion"] == "v1",
          "delivered Secret has its data and apiVersion")
    wait_until(lambda: fake.watchers() >= 18, "watches open")

    # A reference to a held-back Secret appears: it is fetched and delivered.
    fake.apply(ingress("late", ns="ns1", tls_secret="u-00001"))
    d.wait("upsert", kind="Secret", ns="ns1", name="u-00001")
    check(any(ln.startswith("GET /api/v1/namespaces/ns1/secrets/u-00001 ")
              for ln in open(log)), "held-back Secret fetched by name")
    # The reference goes: it is retracted.
    fake.delete("Ingress", "ns1", "late")
    d.wait("remove", kind="Secret", ns="ns1", name="u-00001")
    # An unrelated Secret changing: nothing.
    n = len(d.snapshot())
    fake.apply(secret("u-00002", ns="ns2", data={"blob": "Wlla"}))
    # A Secret gaining the CA label: delivered; losing it: retracted.
    fake.apply(secret("u-00003", ns="ns3", labels={"konghq.com/ca-cert": "true"}))
    d.wait("upsert", kind="Secret", name="u-00003")
    fake.apply(secret("u-00003", ns="ns3"))
    d.wait("remove", kind="Secret", name="u-00003")
    check(not d.ops("upsert", name="u-00002"), "unrelated Secret change not delivered")
    # A reference to a Secret that does not exist yet: delivered when it is created.
    fake.apply(obj("KongConsumer", "bob", "shop", username="bob", credentials=["later"]))
    time.sleep(0.5)
    fake.apply(secret("later", ns="shop"))
    d.wait("upsert", kind="Secret", name="later")
    # A referenced Secret deleted: removed.
    fake.delete("Secret", "shop", "plugin-conf")
    d.wait("remove", kind="Secret", name="plugin-conf")
    check(len(d.snapshot()) > n, "driver still delivering")
    d.send({"cmd": "metrics"})
    mt = d.wait("metrics")[0]["text"]
    check('tether_k8s_objects{kind="Secret",namespace=""} %d' % (N_UNRELATED + 8) in mt,
          "every Secret name known (held back ones included)")
    check(d.stop() == 0, "driver exits 0")
    fake.stop()
    print("ok")


if __name__ == "__main__":
    main()
