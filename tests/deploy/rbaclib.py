# SPDX-License-Identifier: Apache-2.0
"""RBAC helpers for the deploy tests: rbac-needed.txt, the mapping of API server requests to
(group, resource, verb) as the API server's authorizer sees them, and the grants of a service
account in a set of manifests."""
import os
import re
import urllib.parse

import deploylib as dl

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


# ---- grants of the tether service account ------------------------------------------------------
class Grants:
    def __init__(self, F, objs, sa_ns=CONTROLLER_NS, sa='tether'):
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


