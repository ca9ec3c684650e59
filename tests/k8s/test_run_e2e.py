#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: the real `tether run` against the fake API server. Objects listed and watched
reach the declarative output file; a change on the server changes the file; a translation
failure becomes a Kubernetes Event; the Ingress status follows --publish-service; with leader
election two replicas elect one, and killing it hands over."""
import json
import os
import signal
import subprocess
import tempfile
import time

from k8slib import check, fail, ingress, kubeconfig, obj, start_fake, wait_until

TETHER = os.environ.get("TETHER", "")


def run(args, tmp, name):
    log = open(os.path.join(tmp, name + ".log"), "wb")
    p = subprocess.Popen([TETHER, "run"] + args + [
        "--health-probe-bind-address", "0", "--metrics-bind-address", "0",
        "--diagnostics-bind-address", "0"], stdout=log, stderr=subprocess.STDOUT)
    p.logpath = log.name
    return p


def hosts(path):
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return None
    out = set()
    for s in cfg.get("services", []):
        for r in s.get("routes", []):
            out.update(r.get("hosts", []))
    return out


def stop(p, what):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        fail(what + " did not exit on SIGTERM")
    if rc != 0:
        print(open(p.logpath).read()[-3000:])
    check(rc == 0, what + " exits 0 on SIGTERM (rc %s)" % rc)


def main():
    check(TETHER, "TETHER not set")
    tmp = tempfile.mkdtemp()
    fake = start_fake(access_log=os.path.join(tmp, "access.log"))
    fake.apply(obj("IngressClass", "kong", None, spec={
        "controller": "ingress-controllers.konghq.com/kong"}))
    fake.apply(obj("Service", "echo", "shop", spec={
        "type": "ClusterIP", "clusterIP": "10.0.0.20",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}))
    fake.apply(obj("EndpointSlice", "echo-1", "shop", addressType="IPv4",
                   endpoints=[{"addresses": ["10.1.0.5"], "conditions": {"ready": True}}],
                   ports=[{"name": "http", "port": 8080, "protocol": "TCP"}],
                   metadata={"name": "echo-1", "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "echo"}}))
    web = ingress("web", ns="shop")
    web["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "echo"
    fake.apply(web)
    broken = ingress("broken", ns="shop")
    broken["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "missing"
    fake.apply(broken)
    fake.apply(obj("Service", "proxy", "kong", spec={"type": "LoadBalancer"},
                   status={"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}}))
    kc = kubeconfig(tmp, fake.url)
    out = os.path.join(tmp, "kong.json")

    p = run(["--kubeconfig", kc, "--kong-config-out", out, "--publish-service", "kong/proxy"],
            tmp, "single")
    wait_until(lambda: hosts(out) and "web.example" in hosts(out), "web.example in the output")
    # A change on the server reaches the file.
    web["spec"]["rules"][0]["host"] = "shop.example"
    fake.apply(web)
    wait_until(lambda: hosts(out) and "shop.example" in hosts(out), "the changed host")
    # The Ingress without its Service: a Warning Event on it.
    wait_until(lambda: [e for e in fake.list_objects("Event")
                        if e["involvedObject"]["name"] == "broken" and
                        e["reason"] == "KongConfigurationTranslationFailed"],
               "a translation failure Event")
    # Ingress status from the publish Service.
    wait_until(lambda: (fake.get("Ingress", "shop", "web").get("status") or {})
               .get("loadBalancer", {}).get("ingress") == [{"ip": "198.51.100.9"}],
               "Ingress status")
    stop(p, "tether")

    # Two replicas with leader election: one leads and writes; killing it hands over.
    outs = [os.path.join(tmp, "a.json"), os.path.join(tmp, "b.json")]
    ps = []
    for i, o in enumerate(outs):
        env_id = "kong/tether-%d" % i
        os.environ["POD_NAMESPACE"], os.environ["POD_NAME"] = "kong", "tether-%d" % i
        ps.append(run(["--kubeconfig", kc, "--kong-config-out", o,
                       "--force-leader-election", "enabled"], tmp, env_id.replace("/", "-")))
    wait_until(lambda: fake.get("Lease", "kong", "5b374a9e.konghq.com") and
               fake.get("Lease", "kong", "5b374a9e.konghq.com")["spec"]["holderIdentity"],
               "a Lease holder")
    holder = fake.get("Lease", "kong", "5b374a9e.konghq.com")["spec"]["holderIdentity"]
    check(holder in ("kong/tether-0", "kong/tether-1"), "holder identity: %s" % holder)
    lead = int(holder[-1])
    wait_until(lambda: hosts(outs[lead]), "the leader writes")
    time.sleep(2)
    check(not os.path.exists(outs[1 - lead]), "the follower does not write")
    ps[lead].send_signal(signal.SIGKILL)
    ps[lead].wait()
    t0 = time.monotonic()
    wait_until(lambda: hosts(outs[1 - lead]), "the follower takes over", timeout=60)
    print("handover after kill: %.1f s" % (time.monotonic() - t0))
    stop(ps[1 - lead], "the new leader")
    fake.stop()
    print("ok")


if __name__ == "__main__":
    main()
