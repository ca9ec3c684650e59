#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every YAML file in deploy/ parses; every object names a kind that exists and only fields that
exist (Kong resources against the CRDs shipped in deploy/crds, core kinds against k8sfields.py);
each topology builds (our kustomize build, and `kubectl kustomize` when installed: both agree);
references inside a topology resolve (Secrets, ConfigMaps, service account, Service selectors and
target ports, discovery and publish Services, $(VAR) references)."""
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402
from crdschema import CRDs  # noqa: E402
from k8sfields import validate_object  # noqa: E402

F = dl.Failures('test_manifests')

# ---- 1. every YAML document parses -------------------------------------------------------------
files = dl.yaml_files(dl.DEPLOY)
F.check(len(files) > 20, 'deploy/ has only %d YAML files' % len(files))
for path in files:
    try:
        docs = dl.load_docs(path)
        F.check(docs, '%s: no YAML document' % dl.rel(path))
    except yaml.YAMLError as e:
        F.fail('%s: YAML error: %s' % (dl.rel(path), e))

# ---- 2. CRDs: the same API as the reference set ------------------------------------------------
crd_objs = [o for _, o in dl.objects_in(os.path.join(dl.DEPLOY, 'crds'))]
crds = CRDs(crd_objs)
kinds = sorted(k for _, k in crds.by_kind)
F.check(kinds == sorted([
    'IngressClassParameters', 'KongClusterPlugin', 'KongConsumer', 'KongConsumerGroup',
    'KongCustomEntity', 'KongIngress', 'KongLicense', 'KongPlugin', 'KongServiceFacade',
    'KongUpstreamPolicy', 'KongVault', 'TCPIngress', 'UDPIngress']),
    'deploy/crds defines %s' % kinds)
ref = os.environ.get('TETHER_CRD_REFERENCE',
                     '/work/shared/reference/crds/kubernetes-configuration-v2.0.0-alpha.1')
if os.path.isdir(ref):
    # The shipped CRDs must be the reference ones, unchanged (only a header comment is added).
    ref_objs = {o['metadata']['name']: o for _, o in dl.objects_in(ref)}
    ours = {o['metadata']['name']: o for o in crd_objs}
    F.check(set(ref_objs) == set(ours), 'CRD names differ from the reference: %s' %
            sorted(set(ref_objs) ^ set(ours)))
    for n in ref_objs:
        if n in ours:
            F.check(dl.canonical(ref_objs[n]) == dl.canonical(ours[n]),
                    'CRD %s differs from the reference copy' % n)
for path in dl.yaml_files(os.path.join(dl.DEPLOY, 'crds')):
    if path.endswith('kustomization.yaml'):
        continue
    head = open(path, encoding='utf-8').read(400)
    F.check('github.com/Kong/kubernetes-configuration' in head and 'MIT' in head,
            '%s: header must say where the CRD comes from and its license' % dl.rel(path))


def check_object(obj, where):
    errs = crds.validate(obj, where)
    if errs is None:
        errs = validate_object(obj, where)
    if errs is None:
        F.fail('%s: unknown kind %s %s' % (where, obj.get('apiVersion'), obj.get('kind')))
        return
    F.check(True, '')
    for e in errs:
        F.fail(e)


# ---- 3. every object in plain files, and every built topology ----------------------------------
for path, obj in dl.objects_in(dl.DEPLOY):
    if obj.get('kind') == 'CustomResourceDefinition':
        continue
    check_object(obj, dl.rel(path))

built = {}
for topo in dl.TOPOLOGIES:
    folder = os.path.join(dl.DEPLOY, topo)
    try:
        objs = dl.kustomize_build(folder)
    except Exception as e:  # noqa: BLE001 - report any build problem as a failure
        F.fail('%s: build failed: %s' % (topo, e))
        continue
    built[topo] = objs
    try:
        real = dl.kubectl_kustomize(folder)
    except Exception as e:  # noqa: BLE001
        F.fail('%s: %s' % (topo, e))
        real = None
    if real is not None:
        mine = sorted(dl.canonical(o) for o in objs)
        theirs = sorted(dl.canonical(o) for o in real)
        F.check(mine == theirs, '%s: our build differs from kubectl kustomize' % topo)
    keys = [dl.key(o) for o in objs]
    F.check(len(keys) == len(set(keys)), '%s: duplicate objects' % topo)
    for o in objs:
        if o.get('kind') != 'CustomResourceDefinition':
            check_object(o, topo)

# ---- 4. references inside each topology --------------------------------------------------------
readme_path = os.path.join(dl.DEPLOY, 'README.md')
readme = open(readme_path, encoding='utf-8').read() if os.path.exists(readme_path) else ''


def check_refs(topo, objs):
    for o, spec in dl.pod_specs(objs):
        ns = o['metadata'].get('namespace')
        name = '%s %s/%s' % (topo, o['kind'], o['metadata']['name'])
        labels = o['spec']['template']['metadata'].get('labels', {})
        sel = o['spec']['selector'].get('matchLabels', {})
        F.check(sel and all(labels.get(k) == v for k, v in sel.items()),
                '%s: selector %s does not match the pod labels' % (name, sel))
        sa = spec.get('serviceAccountName')
        if sa:
            F.check(dl.find(objs, 'ServiceAccount', sa, ns) is not None,
                    '%s: ServiceAccount %s missing' % (name, sa))
        vols = {v['name']: v for v in spec.get('volumes', [])}
        for v in vols.values():
            if 'secret' in v:
                sn = v['secret']['secretName']
                # Secrets with keys are made by the user: the README must say how.
                F.check(dl.find(objs, 'Secret', sn, ns) is not None or sn in readme,
                        '%s: Secret %s is neither in the topology nor created in deploy/README.md'
                        % (name, sn))
            if 'configMap' in v:
                F.check(dl.find(objs, 'ConfigMap', v['configMap']['name'], ns) is not None,
                        '%s: ConfigMap %s missing' % (name, v['configMap']['name']))
        for c in spec['containers']:
            for m in c.get('volumeMounts', []):
                F.check(m['name'] in vols, '%s: volumeMount %s has no volume' % (name, m['name']))
            seen = set()
            for e in c.get('env', []):
                F.check(e['name'] not in seen, '%s: env %s set twice' % (name, e['name']))
                for ref in re.findall(r'\$\(([A-Za-z_][A-Za-z0-9_]*)\)', e.get('value', '')):
                    F.check(ref in seen, '%s: env %s refers to $(%s) which is not defined before it'
                            % (name, e['name'], ref))
                seen.add(e['name'])
                vf = e.get('valueFrom', {})
                if 'configMapKeyRef' in vf:
                    r = vf['configMapKeyRef']
                    cm = dl.find(objs, 'ConfigMap', r['name'], ns)
                    F.check(cm is not None and r['key'] in cm.get('data', {}),
                            '%s: env %s: ConfigMap %s key %s missing' %
                            (name, e['name'], r['name'], r['key']))
                if 'secretKeyRef' in vf:
                    F.check(vf['secretKeyRef']['name'] in readme,
                            '%s: env %s: Secret %s not explained in README' %
                            (name, e['name'], vf['secretKeyRef']['name']))
    # Services select pods, and their named target ports exist on those pods.
    for s in [o for o in objs if o['kind'] == 'Service']:
        ns = s['metadata'].get('namespace')
        sel = s['spec'].get('selector', {})
        pods = [(o, spec) for o, spec in dl.pod_specs(objs)
                if o['metadata'].get('namespace') == ns and
                all(o['spec']['template']['metadata'].get('labels', {}).get(k) == v
                    for k, v in sel.items())]
        F.check(pods, '%s Service %s selects no pod' % (topo, s['metadata']['name']))
        for p in s['spec']['ports']:
            tp = p.get('targetPort', p['port'])
            for o, spec in pods:
                ports = [cp for c in spec['containers'] for cp in c.get('ports', [])]
                ok = any((cp.get('name') == tp if isinstance(tp, str) else cp['containerPort'] == tp)
                         and cp.get('protocol', 'TCP') == p.get('protocol', 'TCP') for cp in ports)
                F.check(ok, '%s Service %s port %s: no container port %s/%s in %s' %
                        (topo, s['metadata']['name'], p.get('name'), tp, p.get('protocol', 'TCP'),
                         o['metadata']['name']))
    # Bindings point at roles and service accounts that exist.
    for b in [o for o in objs if o['kind'] in ('RoleBinding', 'ClusterRoleBinding')]:
        rr = b['roleRef']
        F.check(dl.find(objs, rr['kind'], rr['name'],
                        b['metadata'].get('namespace') if rr['kind'] == 'Role' else None)
                is not None, '%s %s: roleRef %s/%s missing' % (topo, b['metadata']['name'],
                                                               rr['kind'], rr['name']))
        for s in b['subjects']:
            F.check(dl.find(objs, 'ServiceAccount', s['name'], s.get('namespace')) is not None,
                    '%s %s: subject %s missing' % (topo, b['metadata']['name'], s['name']))
    # Everything namespaced lives in an existing or well-known namespace.
    nss = {o['metadata']['name'] for o in objs if o['kind'] == 'Namespace'}
    for o in objs:
        ns = o.get('metadata', {}).get('namespace')
        if ns:
            F.check(ns in nss or ns == 'default', '%s: %s/%s in unknown namespace %s' %
                    (topo, o['kind'], o['metadata']['name'], ns))


for topo, objs in built.items():
    check_refs(topo, objs)
    tether = dl.find(objs, 'Deployment', 'tether', 'kong')
    if not F.check(tether is not None, '%s: no tether Deployment' % topo):
        continue
    env = dl.env_of(tether['spec']['template']['spec']['containers'][0])
    svc = env.get('CONTROLLER_KONG_ADMIN_SVC', {}).get('value', '')
    F.check(svc == 'kong/kong-admin', '%s: CONTROLLER_KONG_ADMIN_SVC is %r' % (topo, svc))
    admin = dl.find(objs, 'Service', 'kong-admin', 'kong')
    if F.check(admin is not None, '%s: Service kong/kong-admin missing' % topo):
        F.check(admin['spec'].get('clusterIP') == 'None', '%s: kong-admin must be headless' % topo)
        names = [p.get('name') for p in admin['spec']['ports']]
        want = env.get('CONTROLLER_KONG_ADMIN_SVC_PORT_NAMES', {}).get('value',
                                                                        'admin-tls,kong-admin-tls')
        F.check(any(n in want.split(',') for n in names),
                '%s: kong-admin ports %s are not among %s' % (topo, names, want))
    pub = env.get('CONTROLLER_PUBLISH_SERVICE', {}).get('value', '')
    proxy = dl.find(objs, 'Service', pub.partition('/')[2], pub.partition('/')[0])
    F.check(proxy is not None and proxy['spec'].get('type') == 'LoadBalancer',
            '%s: publish service %r is not a LoadBalancer Service here' % (topo, pub))
    ic = dl.find(objs, 'IngressClass', env.get('CONTROLLER_INGRESS_CLASS', {}).get('value', 'kong'))
    F.check(ic is not None and ic['spec']['controller'] == 'ingress-controllers.konghq.com/kong',
            '%s: IngressClass kong with controller ingress-controllers.konghq.com/kong missing'
            % topo)
    F.check(tether['spec']['replicas'] == 2, '%s: tether replicas' % topo)

# ---- 5. Konnect: the analytics and sync settings -----------------------------------------------
kn = built.get('konnect')
if kn:
    t = dl.find(kn, 'Deployment', 'tether', 'kong')
    g = dl.find(kn, 'Deployment', 'kong-gateway', 'kong')
    tenv = dl.env_of(t['spec']['template']['spec']['containers'][0])
    genv = dl.env_of(g['spec']['template']['spec']['containers'][0])
    for n in ('CONTROLLER_KONNECT_SYNC_ENABLED', 'CONTROLLER_KONNECT_ADDRESS',
              'CONTROLLER_KONNECT_CONTROL_PLANE_ID', 'CONTROLLER_KONNECT_TLS_CLIENT_CERT_FILE',
              'CONTROLLER_KONNECT_TLS_CLIENT_KEY_FILE'):
        F.check(n in tenv, 'konnect: tether lacks %s' % n)
    F.check(tenv.get('CONTROLLER_KONNECT_ADDRESS', {}).get('value') ==
            'https://$(KONNECT_REGION).kic.api.konghq.com', 'konnect: address from the region')
    want = {'KONG_KONNECT_MODE': 'on', 'KONG_VITALS': 'off',
            'KONG_LUA_SSL_TRUSTED_CERTIFICATE': 'system',
            'KONG_CLUSTER_TELEMETRY_ENDPOINT': '$(KONNECT_TELEMETRY_HOST):443',
            'KONG_CLUSTER_TELEMETRY_SERVER_NAME': '$(KONNECT_TELEMETRY_HOST)'}
    for n, v in want.items():
        F.check(genv.get(n, {}).get('value') == v, 'konnect: gateway %s should be %r' % (n, v))
    # The gateway's cluster certificate and tether's Konnect certificate: the same Secret.
    def secret_for(dep, file_path):
        spec = dep['spec']['template']['spec']
        for m in spec['containers'][0]['volumeMounts']:
            if file_path.startswith(m['mountPath'].rstrip('/') + '/'):
                for v in spec['volumes']:
                    if v['name'] == m['name'] and 'secret' in v:
                        return v['secret']['secretName']
        return None
    F.check(secret_for(g, genv['KONG_CLUSTER_CERT']['value']) == 'konnect-client-tls' and
            secret_for(g, genv['KONG_CLUSTER_CERT_KEY']['value']) == 'konnect-client-tls',
            'konnect: KONG_CLUSTER_CERT/KEY must come from the konnect-client-tls Secret')
    F.check(secret_for(t, tenv['CONTROLLER_KONNECT_TLS_CLIENT_CERT_FILE']['value']) ==
            'konnect-client-tls', 'konnect: tether client certificate must be konnect-client-tls')
    cm = dl.find(kn, 'ConfigMap', 'konnect', 'kong')
    F.check(cm and set(cm['data']) == {'region', 'control-plane-id', 'telemetry-host'},
            'konnect: settings ConfigMap keys')
    F.check('tether certs generate' in readme and '--k8s-secret konnect-client-tls' in readme,
            'README must make konnect-client-tls with tether certs generate --k8s-secret')

# ---- 6. the watch-namespace variant really sets the flag ---------------------------------------
wn = built.get('watch-namespace')
if wn:
    t = dl.find(wn, 'Deployment', 'tether', 'kong')
    env = dl.env_of(t['spec']['template']['spec']['containers'][0])
    watched = env.get('CONTROLLER_WATCH_NAMESPACE', {}).get('value', '')
    F.check(watched, 'watch-namespace: CONTROLLER_WATCH_NAMESPACE not set')
    for ns in filter(None, watched.split(',')):
        F.check(dl.find(wn, 'Role', 'tether', ns) is not None,
                'watch-namespace: no Role tether in watched namespace %s' % ns)
    F.check(not any(o['kind'] == 'ClusterRole' and o['metadata']['name'] == 'tether' for o in wn),
            'watch-namespace must not grant the cluster-wide ClusterRole')

# ---- 7. the validators themselves reject broken objects ----------------------------------------
broken = [
    ({'apiVersion': 'configuration.konghq.com/v1', 'kind': 'KongPlugin',
      'metadata': {'name': 'x'}, 'plugin': 'key-auth', 'confg': {}}, 'unknown field "confg"'),
    ({'apiVersion': 'configuration.konghq.com/v1beta1', 'kind': 'TCPIngress',
      'metadata': {'name': 'x'}, 'spec': {'rules': [{'port': '9000', 'backend': {
          'serviceName': 's', 'servicePort': 1}}]}}, 'expected integer'),
    ({'apiVersion': 'configuration.konghq.com/v1beta1', 'kind': 'KongUpstreamPolicy',
      'metadata': {'name': 'x'}, 'spec': {'algorithm': 'random'}}, 'is not one of'),
    ({'apiVersion': 'configuration.konghq.com/v1', 'kind': 'KongClusterPlugin',
      'metadata': {'name': 'x', 'namespace': 'a'}, 'plugin': 'p'}, 'cluster-scoped'),
    ({'apiVersion': 'configuration.konghq.com/v9', 'kind': 'KongPlugin',
      'metadata': {'name': 'x'}, 'plugin': 'p'}, 'is not defined'),
    ({'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'x'},
      'spec': {'selector': {}, 'template': {'spec': {'containers': [{
          'name': 'c', 'securityContext': {'readOnlyRootFileSystem': True}}]}}}},
     'unknown field "readOnlyRootFileSystem"'),
    ({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'x'},
      'data': {'KONG_VITALS': False}}, 'must be strings'),
    ({'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'x'},
      'spec': {'type': 'Loadbalancer', 'ports': []}}, 'is not one of'),
]
for obj, want in broken:
    errs = crds.validate(obj, 'self-test')
    if errs is None:
        errs = validate_object(obj, 'self-test') or []
    F.check(any(want in e for e in errs), 'validator missed %r in %s: %s' % (want, obj['kind'], errs))

# ---- 8. the validators accept KIC's own golden inputs (kinds tether translates) -----------------
golden = os.environ.get('TETHER_GOLDEN_CORPUS', '/work/shared/conformance/kic-golden')
for path in dl.yaml_files(golden) if os.path.isdir(golden) else []:
    if os.path.basename(path) != 'in.yaml':
        continue
    for obj in dl.load_docs(path):
        if obj.get('metadata', {}).get('annotations', {}).get('test.konghq.com/broken') or \
                obj.get('apiVersion', '').startswith('gateway.networking.k8s.io/'):
            continue
        where = 'golden ' + os.path.basename(os.path.dirname(path))
        errs = crds.validate(obj, where)
        if errs is None:
            errs = validate_object(obj, where)
        F.check(errs == [], '%s: validator rejects a valid KIC input: %s' % (where, errs))

F.done()
