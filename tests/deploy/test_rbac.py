#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""RBAC is least privilege and sufficient.

- The rules bound to the tether service account in each topology grant exactly the
  (group, resource, verb) triples of rbac-needed.txt: everything needed, nothing more, no
  wildcards; leases only in the controller's namespace.
- The watch-namespace variant grants the namespaced kinds only in the watched namespaces.
- When TETHER_APISERVER_LOG names the fake API server's access log of the integration tests
  (lines "METHOD /api/... "), every request in it maps to a (group, resource, verb) that the
  cluster-wide RBAC grants. The mapping from request to verb is checked on apiserver-sample.log.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402
from rbaclib import (CONTROLLER_NS, ELECTION_ID, NEEDED, CLUSTER_SCOPED, Grants,  # noqa: E402
                     base_resource, parse_log_line, request_to_rbac)

F = dl.Failures('test_rbac')
# Self-test of the mapping on the sample log.
for line in open(os.path.join(dl.HERE, 'apiserver-sample.log'), encoding='utf-8'):
    if not line.strip() or line.startswith('#'):
        continue
    req, _, want = line.rstrip('\n').partition(' => ')
    got = parse_log_line(req)
    res = request_to_rbac(*got) if got else None
    have = '-' if res is None else ' '.join(res[:3])
    F.check(have == want.strip(), 'mapping of %r: got %r, want %r' % (req, have, want))


built = {t: dl.kustomize_build(os.path.join(dl.DEPLOY, t)) for t in dl.TOPOLOGIES}

# Cluster-wide variant (gateway discovery and Konnect: same RBAC).
for topo in ('gateway-discovery', 'konnect'):
    g = Grants(F, built[topo])
    extra = g.triples() - NEEDED
    missing = NEEDED - g.triples()
    F.check(not extra, '%s: RBAC grants more than rbac-needed.txt: %s' % (topo, sorted(extra)))
    F.check(not missing, '%s: RBAC lacks %s' % (topo, sorted(missing)))
    for grp, res, verb in sorted(NEEDED):
        if res == 'leases':
            F.check(g.allows(grp, res, verb, CONTROLLER_NS, ELECTION_ID),
                    '%s: %s %s not granted in %s' % (topo, res, verb, CONTROLLER_NS))
            F.check(not any(r == 'leases' for _, r, _, _ in g.cluster),
                    '%s: leases must not be granted cluster-wide' % topo)
            F.check(not g.allows(grp, res, 'update', CONTROLLER_NS, 'another-lease'),
                    '%s: lease updates must be limited to %s' % (topo, ELECTION_ID))
        else:
            F.check(g.allows(grp, res, verb, 'some-namespace', 'x'),
                    '%s: %s %s %s not granted cluster-wide' % (topo, grp, res, verb))

# Namespaced variant.
wn = built['watch-namespace']
tether = dl.find(wn, 'Deployment', 'tether', CONTROLLER_NS)
watched = [n for n in dl.env_of(tether['spec']['template']['spec']['containers'][0])
           .get('CONTROLLER_WATCH_NAMESPACE', {}).get('value', '').split(',') if n]
F.check(watched, 'watch-namespace: no watched namespace')
g = Grants(F, wn)
extra = g.triples() - NEEDED
F.check(not extra, 'watch-namespace: grants more than needed: %s' % sorted(extra))
for grp, res, verb in sorted(NEEDED):
    b = (grp, base_resource(res))
    if res == 'leases':
        F.check(g.allows(grp, res, verb, CONTROLLER_NS, ELECTION_ID),
                'watch-namespace: leases %s' % verb)
    elif b in CLUSTER_SCOPED or res == 'events':
        F.check(g.allows(grp, res, verb, None, 'x'),
                'watch-namespace: cluster-scoped %s %s %s not granted' % (grp, res, verb))
    else:
        for ns in watched:
            F.check(g.allows(grp, res, verb, ns, 'x'),
                    'watch-namespace: %s %s %s not granted in %s' % (grp, res, verb, ns))
        F.check(not any((gg, rr, vv) == (grp, res, verb) for gg, rr, vv, _ in g.cluster),
                'watch-namespace: %s %s %s granted cluster-wide' % (grp, res, verb))
# Gateway Discovery and --publish-service read the controller's own namespace.
for res in ('endpointslices', 'services'):
    grp = 'discovery.k8s.io' if res == 'endpointslices' else 'core'
    for verb in ('get', 'list', 'watch'):
        F.check(g.allows(grp, res, verb, CONTROLLER_NS, 'kong-admin'),
                'watch-namespace: %s %s in %s' % (res, verb, CONTROLLER_NS))

# ---- calls the fake API server saw -------------------------------------------------------------
log = os.environ.get('TETHER_APISERVER_LOG')
if log:
    g = Grants(F, built['gateway-discovery'])
    seen = set()
    if F.check(os.path.isfile(log), 'TETHER_APISERVER_LOG=%s: no such file' % log):
        for n, line in enumerate(open(log, encoding='utf-8', errors='replace'), 1):
            req = parse_log_line(line)
            if not req:
                continue
            res = request_to_rbac(*req)
            if res is None:
                continue  # discovery and /version: allowed to every authenticated user
            grp, resource, verb, ns, name = res
            seen.add((grp, resource, verb))
            F.check(g.allows(grp, resource, verb, ns, name),
                    '%s:%d: %s %s needs "%s %s %s" (ns %s), not granted' %
                    (log, n, req[0], req[1], grp, resource, verb, ns))
        F.check(seen, '%s: no API request found in the log' % log)
        F.check(seen <= NEEDED, 'calls not in rbac-needed.txt: %s' % sorted(seen - NEEDED))
        print('info: %d distinct calls seen; in rbac-needed.txt but never seen: %s' %
              (len(seen), ', '.join(' '.join(t) for t in sorted(NEEDED - seen)) or 'none'))
else:
    print('info: TETHER_APISERVER_LOG not set, only the static comparison ran')

F.done()
