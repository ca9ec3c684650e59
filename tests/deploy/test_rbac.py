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
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

F = dl.Failures('test_rbac')
CONTROLLER_NS = 'kong'
ELECTION_ID = '5b374a9e.konghq.com'


def load_needed(path):
    out = set()
    for n, line in enumerate(open(path, encoding='utf-8'), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError('%s:%d: expected "group resource verb"' % (path, n))
        out.add(tuple(parts))
    return out


NEEDED = load_needed(os.path.join(dl.HERE, 'rbac-needed.txt'))

# Which resources have no namespace: the Kong CRDs say so themselves; core ones are listed here.
CLUSTER_SCOPED = {('networking.k8s.io', 'ingressclasses'), ('core', 'namespaces'),
                  ('core', 'nodes')}
for _, crd in dl.objects_in(os.path.join(dl.DEPLOY, 'crds')):
    if crd['spec']['scope'] == 'Cluster':
        CLUSTER_SCOPED.add((crd['spec']['group'], crd['spec']['names']['plural']))


def base_resource(r):
    return r.split('/', 1)[0]


# ---- request -> (group, resource, verb) --------------------------------------------------------
METHODS = ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
NS_SUBRESOURCES = ('status', 'finalize')


def request_to_rbac(method, target):
    """(group, resource, verb, namespace, name) for a request to the API server, or None for
    non-resource paths (/version, discovery). Follows the API server's request-info rules."""
    url = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(url.query)
    parts = [p for p in url.path.split('/') if p]
    if not parts:
        return None
    if parts[0] == 'api' and len(parts) >= 2:
        group, rest = 'core', parts[2:]
    elif parts[0] == 'apis' and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # discovery of a group/version
    watch = False
    if rest[0] == 'watch':
        watch, rest = True, rest[1:]
    ns = None
    if rest and rest[0] == 'namespaces' and len(rest) > 1:
        ns = rest[1]
        if len(rest) > 2 and rest[2] not in NS_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource += '/' + rest[2]
    if resource == 'namespaces' and name:
        ns = name
    if query.get('watch', [''])[0] in ('true', '1'):
        watch = True
    if method == 'GET':
        verb = 'watch' if watch else ('get' if name else 'list')
    elif method == 'POST':
        verb = 'create'
    elif method == 'PUT':
        verb = 'update'
    elif method == 'PATCH':
        verb = 'patch'
    elif method == 'DELETE':
        verb = 'delete' if name else 'deletecollection'
    else:
        return None
    return group, resource, verb, ns, name


def parse_log_line(line):
    """(method, target) from an access-log line: "METHOD /path" anywhere in it."""
    m = re.search(r'\b(%s) (/\S*)' % '|'.join(METHODS), line)
    return (m.group(1), m.group(2)) if m else None


# Self-test of the mapping on the sample log.
for line in open(os.path.join(dl.HERE, 'apiserver-sample.log'), encoding='utf-8'):
    if not line.strip() or line.startswith('#'):
        continue
    req, _, want = line.rstrip('\n').partition(' => ')
    got = parse_log_line(req)
    res = request_to_rbac(*got) if got else None
    have = '-' if res is None else ' '.join(res[:3])
    F.check(have == want.strip(), 'mapping of %r: got %r, want %r' % (req, have, want))


# ---- grants of the tether service account ------------------------------------------------------
class Grants:
    def __init__(self, objs, sa_ns=CONTROLLER_NS, sa='tether'):
        self.cluster = []   # (group, resource, verb, names)
        self.ns = {}        # namespace -> [(group, resource, verb, names)]
        roles = {(o['kind'], o['metadata'].get('namespace'), o['metadata']['name']): o
                 for o in objs if o['kind'] in ('Role', 'ClusterRole')}
        for b in objs:
            if b['kind'] not in ('RoleBinding', 'ClusterRoleBinding'):
                continue
            if not any(s['kind'] == 'ServiceAccount' and s['name'] == sa and
                       s.get('namespace') == sa_ns for s in b['subjects']):
                continue
            rr = b['roleRef']
            bns = b['metadata'].get('namespace')
            role = roles.get((rr['kind'], bns if rr['kind'] == 'Role' else None, rr['name']))
            if not F.check(role is not None, 'binding %s: role %s missing' %
                           (b['metadata']['name'], rr['name'])):
                continue
            target = self.cluster if b['kind'] == 'ClusterRoleBinding' else \
                self.ns.setdefault(bns, [])
            for rule in role.get('rules', []):
                F.check('nonResourceURLs' not in rule, '%s: nonResourceURLs' % rr['name'])
                for g in rule.get('apiGroups', []):
                    for r in rule.get('resources', []):
                        for v in rule.get('verbs', []):
                            F.check('*' not in (g, r, v), '%s: wildcard in %s' % (rr['name'], rule))
                            target.append((g or 'core', r, v,
                                           tuple(rule.get('resourceNames', []))))

    def allows(self, group, resource, verb, ns, name):
        for g, r, v, names in self.cluster + (self.ns.get(ns, []) if ns else []):
            if (g, r, v) == (group, resource, verb) and (not names or name in names):
                return True
        return False

    def triples(self):
        out = {(g, r, v) for g, r, v, _ in self.cluster}
        for rules in self.ns.values():
            out |= {(g, r, v) for g, r, v, _ in rules}
        return out


built = {t: dl.kustomize_build(os.path.join(dl.DEPLOY, t)) for t in dl.TOPOLOGIES}

# Cluster-wide variant (gateway discovery and Konnect: same RBAC).
for topo in ('gateway-discovery', 'konnect'):
    g = Grants(built[topo])
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
g = Grants(wn)
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
    g = Grants(built['gateway-discovery'])
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
