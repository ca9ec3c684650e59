#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Leader election: two drivers and one Lease. Exactly one leader; resourceVersion conflicts do
not make it flap; killing it hands over after the lease expires; a clean stop releases the Lease
so the follower takes over at once."""
import signal
import tempfile
import threading
import time

from k8slib import Driver, check, kubeconfig, start_fake, wait_until

LEASE = "5b374a9e.konghq.com"


def leader_of(d):
    ls = d.ops("leader")
    return bool(ls) and ls[-1]["value"]


def main():
    tmp = tempfile.mkdtemp()
    fake = start_fake()
    kc = kubeconfig(tmp, fake.url)
    args = ["--kubeconfig", kc, "--leader-election", "--election-namespace", "kong"]
    a = Driver(args + ["--identity", "kong/pod-a"])
    b = Driver(args + ["--identity", "kong/pod-b"])
    wait_until(lambda: leader_of(a) or leader_of(b), "a leader")
    first, second = (a, b) if leader_of(a) else (b, a)
    first_id = "kong/pod-a" if first is a else "kong/pod-b"
    second_id = "kong/pod-b" if first is a else "kong/pod-a"

    # Never two leaders: sample both for a while, renewals included.
    both = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            if leader_of(a) and leader_of(b):
                both.append(time.monotonic())
            time.sleep(0.02)
    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    time.sleep(5)
    lease = fake.get("Lease", "kong", LEASE)
    check(lease is not None, "Lease created in the election namespace")
    spec = lease["spec"]
    check(spec["holderIdentity"] == first_id, "holder is the leader: %s" % spec)
    check(spec["leaseDurationSeconds"] == 15, "lease duration 15 s")
    check(len(spec["renewTime"]) == 27 and spec["renewTime"].endswith("Z"),
          "renewTime is RFC 3339 with microseconds: %s" % spec["renewTime"])
    rv1 = lease["metadata"]["resourceVersion"]
    wait_until(lambda: fake.get("Lease", "kong", LEASE)["metadata"]["resourceVersion"] != rv1,
               "the leader renews")
    check(not leader_of(second), "the other one follows")

    # Conflicts on the Lease: the leader re-reads and keeps leading.
    fake.fail_next(3, 409, match="/leases/")
    time.sleep(8)
    check(leader_of(first), "still leader after 409 conflicts")
    check(len(first.ops("leader")) == 1, "no flapping: %s" % first.ops("leader"))

    stop.set()
    t.join()
    check(not both, "two leaders at once at %s" % both[:5])

    # Kill the leader: the follower takes over once the lease is observed expired.
    t0 = time.monotonic()
    first.p.send_signal(signal.SIGKILL)
    first.p.wait()
    wait_until(lambda: leader_of(second), "takeover after the leader died", timeout=60)
    took = time.monotonic() - t0
    print("takeover after kill: %.1f s" % took)
    lease = fake.get("Lease", "kong", LEASE)
    check(lease["spec"]["holderIdentity"] == second_id, "new holder in the Lease")
    check(lease["spec"]["leaseTransitions"] >= 1, "leaseTransitions counted")

    # A third candidate; stopping the leader cleanly releases the Lease: fast handover.
    c = Driver(args + ["--identity", "kong/pod-c"])
    time.sleep(3)
    check(not leader_of(c), "the newcomer follows")
    t0 = time.monotonic()
    check(second.stop() == 0, "leader exits 0 on SIGTERM")
    check(fake.get("Lease", "kong", LEASE)["spec"]["holderIdentity"] in ("", "kong/pod-c"),
          "Lease released on close")
    wait_until(lambda: leader_of(c), "takeover after release", timeout=30)
    print("takeover after release: %.1f s" % (time.monotonic() - t0))
    check(c.stop() == 0, "c exits 0")
    fake.stop()
    print("ok")


if __name__ == "__main__":
    main()
