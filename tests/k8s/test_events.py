#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Events (deduplicated, with the fields kubectl shows) and Ingress status from the publish
Service (written only when it differs)."""
import tempfile
import time

from k8slib import Driver, check, ingress, kubeconfig, obj, start_fake, wait_until


def main():
    tmp = tempfile.mkdtemp()
    fake = start_fake()
    ing = fake.apply(ingress("web", ns="shop"))
    other = ingress("other", ns="shop")
    other["spec"]["ingressClassName"] = "nginx"
    fake.apply(other)
    plain = ingress("plain", ns="shop")
    del plain["spec"]["ingressClassName"]
    fake.apply(plain)
    # An empty ingressClassName names no class: not ours, and not class-less either (KIC).
    empty = ingress("empty", ns="shop")
    empty["spec"]["ingressClassName"] = ""
    fake.apply(empty)
    kc = kubeconfig(tmp, fake.url)
    d = Driver(["--kubeconfig", kc, "--publish-service", "kong/proxy", "--update-status",
                "--identity", "kong/pod-x"])
    d.wait("synced")
    d.wait("leader", value=True)

    # The same failure five times: one Event.
    for _ in range(5):
        d.send({"cmd": "event", "obj": ing, "type": "Warning",
                "reason": "KongConfigurationTranslationFailed",
                "message": "failed to resolve Kubernetes Service for backend: not found"})
    d.wait("event-sent", count=5)
    evs = wait_until(lambda: fake.list_objects("Event"), "an Event")
    time.sleep(1)
    evs = fake.list_objects("Event")
    check(len(evs) == 1, "one Event for five identical failures, got %d" % len(evs))
    ev = evs[0]
    io = ev["involvedObject"]
    check(io["kind"] == "Ingress" and io["name"] == "web" and io["namespace"] == "shop" and
          io["uid"] == ing["metadata"]["uid"] and io["apiVersion"] == "networking.k8s.io/v1",
          "involvedObject: %s" % io)
    check(ev["metadata"]["namespace"] == "shop", "Event in the object's namespace")
    check(ev["type"] == "Warning" and ev["reason"] == "KongConfigurationTranslationFailed",
          "type and reason")
    check(ev["source"] == {"component": "tether"}, "source.component")
    check(ev["reportingComponent"] == "tether" and ev["reportingInstance"] == "kong/pod-x",
          "reporting fields")
    check(ev["firstTimestamp"].endswith("Z") and ev["count"] == 1, "timestamps and count")
    check(ev["metadata"]["name"].startswith("web."), "event name: %s" % ev["metadata"]["name"])

    # Another message is another Event; a cluster-scoped object's Event goes to "default".
    d.send({"cmd": "event", "obj": ing, "type": "Warning",
            "reason": "KongConfigurationTranslationFailed", "message": "other problem"})
    # A flat reference, as translation failures name objects.
    kcp = {"kind": "KongClusterPlugin", "group": "configuration.konghq.com", "version": "v1",
           "name": "global-rl", "uid": "u-1"}
    d.send({"cmd": "event", "obj": kcp, "type": "Warning",
            "reason": "KongConfigurationTranslationFailed", "message": "bad config"})
    wait_until(lambda: len(fake.list_objects("Event")) == 3, "three Events")
    ev = [e for e in fake.list_objects("Event") if e["involvedObject"]["name"] == "global-rl"]
    check(ev and ev[0]["metadata"]["namespace"] == "default" and
          ev[0]["involvedObject"]["apiVersion"] == "configuration.konghq.com/v1" and
          ev[0]["involvedObject"]["uid"] == "u-1" and
          "namespace" not in ev[0]["involvedObject"],
          "cluster-scoped flat reference: Event in default: %s" % ev)

    # Ingress status from a LoadBalancer publish Service.
    fake.apply(obj("Service", "proxy", "kong", spec={"type": "LoadBalancer",
                                                      "clusterIP": "10.0.0.10"},
                   status={"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}))
    d.wait("upsert", kind="Service", name="proxy")
    cur = fake.get("Ingress", "shop", "web")
    d.send({"cmd": "status", "ingresses": [cur], "lb": None})
    st = d.wait("status-sent")[0]
    check(st["publish"] == [{"ip": "203.0.113.7"}], "publish addresses: %s" % st["publish"])
    wait_until(lambda: (fake.get("Ingress", "shop", "web").get("status") or {})
               .get("loadBalancer", {}).get("ingress") == [{"ip": "203.0.113.7"}],
               "Ingress status written")
    writes = [w for w in fake.writes if w[3] == "web/status"]
    check(len(writes) == 1 and writes[0][0] == "PATCH", "one status PATCH: %s" % writes)
    # Without the explicit call the client follows the Ingresses of its class on its own.
    check(not [w for w in fake.writes if w[3] in ("other/status", "plain/status", "empty/status")],
          "other classes and class-less Ingresses untouched")
    fake.apply(obj("IngressClass", "kong", None, spec={
        "controller": "ingress-controllers.konghq.com/kong"}, metadata={
        "name": "kong", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}))
    wait_until(lambda: (fake.get("Ingress", "shop", "plain").get("status") or {})
               .get("loadBalancer", {}).get("ingress") == [{"ip": "203.0.113.7"}],
               "class-less Ingress gets the status once kong is the default class")
    check(not [w for w in fake.writes if w[3] in ("other/status", "empty/status")],
          "other class and empty ingressClassName untouched")
    # Same status again (object now carries it): nothing written.
    d.wait("upsert", kind="Ingress", name="web", count=2)
    time.sleep(0.5)
    cur = fake.get("Ingress", "shop", "web")
    d.send({"cmd": "status", "ingresses": [cur], "lb": None})
    d.wait("status-sent", count=2)
    time.sleep(1)
    check(len([w for w in fake.writes if w[3] == "web/status"]) == 1, "no write when equal")
    # Address change: written again.
    fake.apply(obj("Service", "proxy", "kong", spec={"type": "LoadBalancer"},
                   status={"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}))
    d.wait("upsert", kind="Service", name="proxy", count=2)
    wait_until(lambda: (fake.get("Ingress", "shop", "web").get("status") or {})
               .get("loadBalancer", {}).get("ingress") == [{"hostname": "lb.example"}],
               "Ingress status follows the publish Service")
    wait_until(lambda: (fake.get("Ingress", "shop", "plain").get("status") or {})
               .get("loadBalancer", {}).get("ingress") == [{"hostname": "lb.example"}],
               "class-less Ingress follows too")
    n = len(fake.writes)
    time.sleep(1)
    check(len(fake.writes) == n, "no further writes once equal")
    check(d.stop() == 0, "driver exits 0")
    fake.stop()
    print("ok")


if __name__ == "__main__":
    main()
