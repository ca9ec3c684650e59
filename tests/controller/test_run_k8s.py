# SPDX-License-Identifier: Apache-2.0
"""`tether run --kubeconfig` against the fake Kubernetes API server: objects flow into the
declarative file, changes and deletions follow, a translation failure becomes a Kubernetes
Event, and with leader election exactly one of two replicas publishes, the other taking over
once the leader is gone."""
import json
import os
import shutil
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.environ.get("TETHER_FAKES") or os.path.join(HERE, "..", "fakes"))
import kube_apiserver  # noqa: E402
from ctl_util import Tether, check, read, tmpdir, wait_for  # noqa: E402

TOKEN = "ctl-test-token"


def kubeconfig(d, server):
    path = os.path.join(d, "kubeconfig.json")
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                   "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}],
                   "clusters": [{"name": "c", "cluster": {"server": server}}],
                   "users": [{"name": "u", "user": {"token": TOKEN}}]}, f)
    return path


def ingress(name, host, svc=None):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "uid": "uid-" + name},
            "spec": {"ingressClassName": "kong",
                     "rules": [{"host": host, "http": {"paths": [{
                         "path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": svc or name, "port": {"number": 80}}}}]}}]}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": "uid-svc-" + name},
            "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def hosts(text):
    out = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "hosts" and isinstance(x, list):
                    out.update(x)
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    if text:
        walk(json.loads(text))
    return out


def start_fake():
    fake = kube_apiserver.FakeApiServer(token=TOKEN).start()
    fake.apply({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "kong"},
                "spec": {"controller": "ingress-controllers.konghq.com/kong"}})
    fake.apply(service("a"))
    fake.apply(ingress("a", "a.example"))
    return fake


def test_follow_cluster():
    d = tmpdir()
    fake = start_fake()
    out = os.path.join(d, "kong.json")
    t = Tether(["--kubeconfig", kubeconfig(d, fake.url), "--kong-config-out", out,
                "--sync-debounce", "20ms"], env={"POD_NAMESPACE": "kong", "POD_NAME": "ctl-0"})
    try:
        wait_for(lambda: "a.example" in hosts(read(out)), "config from the cluster")
        fake.apply(service("b"))
        fake.apply(ingress("b", "b.example"))
        wait_for(lambda: hosts(read(out)) == {"a.example", "b.example"}, "new Ingress")
        fake.delete("Ingress", "default", "a")
        wait_for(lambda: hosts(read(out)) == {"b.example"}, "deleted Ingress")
        # a backend Service that does not exist: a translation failure and an Event
        fake.apply(ingress("broken", "broken.example", svc="missing"))
        t.wait_log("translation failure")

        def event():
            for e in fake.list_objects("Event"):
                if e.get("reason") == "KongConfigurationTranslationFailed" and \
                        (e.get("involvedObject") or {}).get("name") == "broken":
                    return e
        e = wait_for(event, "KongConfigurationTranslationFailed event")
        check(e.get("type") == "Warning", "event type %r" % e)
    finally:
        rc = t.stop()
        fake.stop()
    check(rc == 0, "exit %d\n%s" % (rc, t.stderr()[-3000:]))
    shutil.rmtree(d)


def test_leader_election():
    d = tmpdir()
    fake = start_fake()
    kc = kubeconfig(d, fake.url)
    outs = [os.path.join(d, "r%d.json" % i) for i in range(2)]
    reps = [Tether(["--kubeconfig", kc, "--kong-config-out", outs[i], "--force-leader-election",
                    "enabled", "--election-namespace", "kong"],
                   env={"POD_NAMESPACE": "kong", "POD_NAME": "ctl-%d" % i}) for i in range(2)]
    try:
        wait_for(lambda: any(read(o) for o in outs), "a leader publishes", timeout=60)
        leader = 0 if read(outs[0]) else 1
        follower = 1 - leader
        # the follower keeps its caches warm but publishes nothing
        fake.apply(service("c"))
        fake.apply(ingress("c", "c.example"))
        wait_for(lambda: "c.example" in hosts(read(outs[leader])), "leader follows")
        check(read(outs[follower]) is None, "the follower must not publish")
        check(reps[follower].logs("became the leader") == [], "two leaders")
        from ctl_util import http_get
        wait_for(lambda: http_get(reps[follower].url("health", "/readyz"))[0] == 200,
                 "a follower with warm caches is ready")
        # the leader goes away (no lease release on SIGKILL): the follower takes over
        reps[leader].p.send_signal(signal.SIGKILL)
        reps[leader].wait_exit()
        wait_for(lambda: "c.example" in hosts(read(outs[follower])), "take-over", timeout=60)
        check(reps[follower].logs("became the leader"), "take-over logged")
    finally:
        for r in reps:
            r.kill()
        fake.stop()
    shutil.rmtree(d)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok -", name, flush=True)
