#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""List/watch against the fake API server: paged list, watch events, bookmarks, cut connection
resume, 410 Gone relist (as ERROR event and as HTTP), 401 on a wrong token, CRD 404 skipped and
picked up later, injected 500/429, --watch-namespace, token file rotation."""
import os
import tempfile
import time

from k8slib import (Driver, TOKEN, check, ingress, kubeconfig, obj, start_fake, wait_until)


def main():
    tmp = tempfile.mkdtemp()
    log = os.path.join(tmp, "access.log")
    fake = start_fake(access_log=log)
    # 1203 Ingresses: three list pages of 500.
    for i in range(1203):
        fake.apply(ingress("ing-%04d" % i, ns="ns%d" % (i % 3)))
    fake.apply(obj("IngressClass", "kong", None, spec={"controller":
                                                      "ingress-controllers.konghq.com/kong"}))
    fake.apply(obj("KongPlugin", "rl", "ns0", plugin="rate-limiting", config={"minute": 5}))
    # A float64 past int64, as the API server writes it (digits): it must not fail the list.
    fake.apply(obj("KongPlugin", "big", "ns0", plugin="x", config={"n": 12345678901234567000}))
    # KongVault's CRD is not installed.
    fake.set_crd("kongvaults", False)
    kc = kubeconfig(tmp, fake.url)

    d = Driver(["--kubeconfig", kc])
    d.wait("synced", timeout=60)
    st = d.state()
    ings = [k for k in st if k[0] == "Ingress"]
    check(len(ings) == 1203, "want 1203 Ingresses after sync, got %d" % len(ings))
    check(("IngressClass", "", "kong") in st, "IngressClass delivered")
    check(("KongPlugin", "ns0", "rl") in st, "KongPlugin delivered")
    check(("KongPlugin", "ns0", "big") in st, "KongPlugin with a number past int64 delivered")
    up = d.ops("upsert", kind="KongPlugin")[0]
    check(up["apiVersion"] == "configuration.konghq.com/v1", "apiVersion set on list items")
    lines = open(log).read().splitlines()
    pages = [ln for ln in lines if ln.startswith("GET /apis/networking.k8s.io/v1/ingresses?limit=500")]
    check(len(pages) == 3, "want 3 list pages, got %d: %s" % (len(pages), pages))
    check(fake.gzipped >= 3, "list pages arrived gzip-encoded (%d)" % fake.gzipped)
    check(any("continue=" in ln for ln in pages), "continue token used")
    check(any("kongvaults" in ln and ln.endswith(" 404") for ln in lines), "kongvaults 404")
    check("KongVault" in d.err_text() or "CRD not installed" in d.err_text(),
          "warning about the missing CRD")

    # Watch events.
    wait_until(lambda: fake.watchers() >= 15, "watches open")
    fake.apply(ingress("new-one", ns="ns1"))
    d.wait("upsert", kind="Ingress", name="new-one")
    fake.delete("Ingress", "ns1", "ing-0001")
    d.wait("remove", kind="Ingress", name="ing-0001")
    m = fake.apply(obj("KongPlugin", "big", "ns0", plugin="x", config={"n": -10 ** 19}))
    d.wait("upsert", kind="KongPlugin", name="big", rv=m["metadata"]["resourceVersion"])
    m = fake.apply(ingress("new-one", ns="ns1", tls_secret="x"))
    d.wait("upsert", kind="Ingress", name="new-one", rv=m["metadata"]["resourceVersion"])

    # Bookmarks arrive (the fake sends one a second).
    wait_until(lambda: fake.bookmarks_sent > 20, "bookmarks sent")

    def ingress_lists():
        return len([ln for ln in open(log) if ln.startswith(
            "GET /apis/networking.k8s.io/v1/ingresses?limit=")])

    # Cut connection: resume from the last resourceVersion, no relist.
    lists_before = ingress_lists()
    fake.cut_watches()
    time.sleep(0.3)
    fake.apply(ingress("after-cut", ns="ns2"))
    d.wait("upsert", kind="Ingress", name="after-cut")
    check(ingress_lists() == lists_before, "a cut watch resumed without relisting (%d lists "
          "more)" % (ingress_lists() - lists_before))
    resumes = [ln for ln in open(log).read().splitlines()
               if "ingresses?watch=1&resourceVersion=" in ln]
    check(len(resumes) >= 2, "watch resumed")
    check(all("resourceVersion=&" not in ln for ln in resumes), "resume has a resourceVersion")

    # 410 Gone as an ERROR event: relist; the deletion during the outage is seen.
    fake.state.bookmark_s = 3600
    time.sleep(1.2)
    # The relist's second page answers 410 (continue token expired): the list starts over.
    fake.fail_next(1, 410, match="/ingresses?limit=500&continue=")
    fake.expire()
    fake.delete("Ingress", "ns0", "ing-0000")
    d.wait("remove", kind="Ingress", name="ing-0000")
    check(any("/ingresses?limit=500&continue=" in ln and ln.endswith(" 410\n")
              for ln in open(log)), "a continue request answered 410")
    check("continue token expired" in d.err_text(), "the expired continue token restarted the "
          "list")
    wait_until(lambda: ingress_lists() > lists_before, "relist after 410")

    # 410 as HTTP status on the watch request.
    lists_before = ingress_lists()
    fake.expire(as_http=True)
    fake.apply(ingress("after-410", ns="ns0"))
    d.wait("upsert", kind="Ingress", name="after-410")
    check(ingress_lists() > lists_before, "relisted after HTTP 410")
    fake.state.gone_as_http = False
    fake.state.bookmark_s = 1.0

    # CRD installed later: picked up on the retry (30 s), objects delivered.
    fake.apply(obj("KongVault", "v1", None, spec={"backend": "env", "prefix": "env-vault"}))
    fake.set_crd("kongvaults", True)
    d.wait("upsert", kind="KongVault", name="v1", timeout=75)

    # Injected 500s and 429s on watches: retried with backoff, events still arrive.
    fake.fail_next(3, 500, match="ingresses?watch")
    fake.fail_next(2, 429, match="ingresses?watch")
    fake.cut_watches()
    fake.apply(ingress("after-errors", ns="ns1"))
    d.wait("upsert", kind="Ingress", name="after-errors", timeout=60)

    # Final state equals the fake's.
    want = {("Ingress", o["metadata"]["namespace"], o["metadata"]["name"])
            for o in fake.list_objects("Ingress")}
    wait_until(lambda: {k for k in d.state() if k[0] == "Ingress"} == want, "same Ingresses")

    d.send({"cmd": "metrics"})
    mt = d.wait("metrics")[0]["text"]
    check('tether_k8s_relists_total{kind="Ingress",namespace=""}' in mt, "relist metric")
    check(d.stop() == 0, "driver exits 0 on SIGTERM")
    check(d.ops("exit"), "driver closed its loop cleanly")

    # Wrong token: 401, nothing delivered, retried.
    kc_bad = kubeconfig(tempfile.mkdtemp(), fake.url, token="wrong")
    d2 = Driver(["--kubeconfig", kc_bad])
    wait_until(lambda: "401" in d2.err_text(), "401 logged")
    time.sleep(1)
    check(not d2.ops("upsert"), "nothing delivered with a wrong token")
    check(d2.stop() == 0, "driver 2 exits 0")

    # Token file rotation and --watch-namespace (in-cluster style via TETHER_SA_DIR).
    sa = tempfile.mkdtemp()
    with open(os.path.join(sa, "token"), "w") as f:
        f.write("first-token\n")
    with open(os.path.join(sa, "ca.crt"), "w") as f:
        f.write("")
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write("ns1")
    fake.set_tokens(["first-token"])
    d3 = Driver(["--kubeconfig", kubeconfig(tmp, fake.url, token=None,
                                            extra_user={"tokenFile": os.path.join(sa, "token")}),
                 "--watch-namespace", "ns1,ns2"])
    d3.wait("synced", timeout=60)
    nss = {k[1] for k in d3.state() if k[0] == "Ingress"}
    check(nss == {"ns1", "ns2"}, "only watched namespaces: %s" % nss)
    check(("IngressClass", "", "kong") in d3.state(), "cluster-scoped kinds still watched")
    with open(os.path.join(sa, "token.new"), "w") as f:
        f.write("second-token\n")
    os.rename(os.path.join(sa, "token.new"), os.path.join(sa, "token"))
    fake.set_tokens(["second-token"])
    fake.cut_watches()
    fake.apply(ingress("rotated", ns="ns2"))
    d3.wait("upsert", kind="Ingress", name="rotated", timeout=60)
    check(d3.stop() == 0, "driver 3 exits 0")
    fake.stop()
    print("ok")


if __name__ == "__main__":
    main()
