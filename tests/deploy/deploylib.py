# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the tests of deploy/: YAML loading, a small kustomize build, reporting.

The build understands what deploy/ uses: `resources` (files and folders) and `patches` that are
RFC 6902 JSON patches (inline or from a file) with a `target`. When `kubectl` is installed its
own `kubectl kustomize` is used as well and both results must agree (test_manifests.py).
"""
import copy
import json
import os
import shutil
import subprocess
import sys

import yaml

SRC = os.environ.get('TETHER_SRC') or os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..'))
DEPLOY = os.path.join(SRC, 'deploy')
HERE = os.path.dirname(os.path.abspath(__file__))

# Folders of deploy/ that are kustomizations a user applies with `kubectl apply -k`.
TOPOLOGIES = ['gateway-discovery', 'watch-namespace', 'konnect']
SKIP = 77  # meson: test skipped


class Failures:
    """Collects failures so one run reports all of them, then exits 1 if any."""

    def __init__(self, name):
        self.name = name
        self.items = []
        self.checks = 0

    def check(self, cond, msg):
        self.checks += 1
        if not cond:
            self.items.append(msg)
        return cond

    def fail(self, msg):
        self.check(False, msg)

    def done(self):
        for m in self.items:
            print('FAIL: %s' % m)
        print('%s: %d checks, %d failures' % (self.name, self.checks, len(self.items)))
        sys.exit(1 if self.items else 0)


def rel(path):
    return os.path.relpath(path, SRC)


def yaml_files(root):
    """Every .yaml/.yml file under root, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(('.yaml', '.yml')):
                out.append(os.path.join(dirpath, f))
    return out


def load_docs(path):
    """All non-empty documents of a YAML file (raises yaml.YAMLError on bad YAML)."""
    with open(path, encoding='utf-8') as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def is_kustomization(doc):
    return isinstance(doc, dict) and doc.get('kind') == 'Kustomization' and \
        str(doc.get('apiVersion', '')).startswith('kustomize.config.k8s.io/')


def objects_in(root):
    """(file, object) for every Kubernetes object in YAML files under root, skipping kustomize
    files and patch files (YAML lists)."""
    out = []
    for path in yaml_files(root):
        for doc in load_docs(path):
            if isinstance(doc, dict) and not is_kustomization(doc) and 'kind' in doc:
                out.append((path, doc))
    return out


# ---- a small kustomize -------------------------------------------------------------------------

def _ptr_parts(path):
    if path == '':
        return []
    if not path.startswith('/'):
        raise ValueError('JSON pointer must start with /: %r' % path)
    return [p.replace('~1', '/').replace('~0', '~') for p in path[1:].split('/')]


def json_patch(doc, ops):
    """Apply RFC 6902 operations add/replace/remove/test to a copy of doc."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _ptr_parts(op['path'])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op['op']
        if kind == 'add':
            if isinstance(parent, list):
                if last == '-':
                    parent.append(copy.deepcopy(op['value']))
                else:
                    parent.insert(int(last), copy.deepcopy(op['value']))
            else:
                parent[last] = copy.deepcopy(op['value'])
        elif kind == 'replace':
            if isinstance(parent, list):
                parent[int(last)] = copy.deepcopy(op['value'])
            else:
                if last not in parent:
                    raise KeyError('replace of missing %s' % op['path'])
                parent[last] = copy.deepcopy(op['value'])
        elif kind == 'remove':
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif kind == 'test':
            cur = parent[int(last)] if isinstance(parent, list) else parent[last]
            if cur != op['value']:
                raise ValueError('test failed at %s' % op['path'])
        else:
            raise ValueError('unsupported JSON patch op %r' % kind)
    return doc


def _target_matches(obj, target):
    api = obj.get('apiVersion', '')
    group, _, version = api.rpartition('/')
    if 'group' in target and target['group'] != group:
        return False
    if 'version' in target and target['version'] != version:
        return False
    if 'kind' in target and target['kind'] != obj.get('kind'):
        return False
    md = obj.get('metadata', {})
    if 'name' in target and target['name'] != md.get('name'):
        return False
    if 'namespace' in target and target['namespace'] != md.get('namespace'):
        return False
    return True


KUSTOMIZATION_FIELDS = {'apiVersion', 'kind', 'resources', 'patches'}


def kustomize_build(folder):
    """Objects of a kustomization folder, with its patches applied."""
    kpath = os.path.join(folder, 'kustomization.yaml')
    docs = load_docs(kpath)
    if len(docs) != 1 or not is_kustomization(docs[0]):
        raise ValueError('%s: not one Kustomization document' % rel(kpath))
    k = docs[0]
    unknown = set(k) - KUSTOMIZATION_FIELDS
    if unknown:
        raise ValueError('%s: fields this build does not know: %s' % (rel(kpath), sorted(unknown)))
    objs = []
    for r in k.get('resources', []):
        p = os.path.normpath(os.path.join(folder, r))
        if os.path.isdir(p):
            objs.extend(kustomize_build(p))
        elif os.path.isfile(p):
            objs.extend(d for d in load_docs(p))
        else:
            raise ValueError('%s: resource %s does not exist' % (rel(kpath), r))
    for patch in k.get('patches', []):
        if 'path' in patch:
            ops = load_docs(os.path.join(folder, patch['path']))
            if len(ops) != 1:
                raise ValueError('%s: patch file %s is not one document' % (rel(kpath), patch['path']))
            ops = ops[0]
        else:
            ops = yaml.safe_load(patch['patch'])
        if not isinstance(ops, list):
            raise ValueError('%s: only JSON6902 (list) patches are supported' % rel(kpath))
        target = patch.get('target') or {}
        hits = 0
        for i, o in enumerate(objs):
            if _target_matches(o, target):
                objs[i] = json_patch(o, ops)
                hits += 1
        if hits == 0:
            raise ValueError('%s: patch target %s matches nothing' % (rel(kpath), target))
    return objs


def kubectl_kustomize(folder):
    """Objects from the real `kubectl kustomize`, or None when kubectl is not installed."""
    kubectl = shutil.which('kubectl')
    if not kubectl:
        return None
    r = subprocess.run([kubectl, 'kustomize', folder], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError('kubectl kustomize %s: %s' % (rel(folder), r.stderr.strip()))
    return [d for d in yaml.safe_load_all(r.stdout) if d is not None]


def key(obj):
    md = obj.get('metadata', {})
    return (obj.get('apiVersion'), obj.get('kind'), md.get('namespace', ''), md.get('name'))


def canonical(obj):
    return json.dumps(obj, sort_keys=True)


def find(objs, kind, name, namespace=None):
    for o in objs:
        md = o.get('metadata', {})
        if o.get('kind') == kind and md.get('name') == name and \
                (namespace is None or md.get('namespace') == namespace):
            return o
    return None


def pod_specs(objs):
    """(object, pod spec) for the workloads among objs."""
    out = []
    for o in objs:
        if o.get('kind') in ('Deployment', 'DaemonSet', 'StatefulSet', 'Job'):
            out.append((o, o['spec']['template']['spec']))
        elif o.get('kind') == 'Pod':
            out.append((o, o['spec']))
    return out


def env_of(container):
    return {e['name']: e for e in container.get('env', [])}
