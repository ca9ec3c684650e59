#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Pod security of every workload in every topology: non-root, read-only root filesystem, no
privilege escalation, all capabilities dropped, RuntimeDefault seccomp (the "restricted" Pod
Security Standard that the kong namespace enforces), probes, resource requests and limits; and
tether's own settings: probes on /healthz and /readyz port 10254, metrics annotations for port
10255, requests 20m/32Mi and limits 500m/256Mi, two replicas with leader election."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

F = dl.Failures('test_security')


def cpu_m(q):
    q = str(q)
    return float(q[:-1]) if q.endswith('m') else float(q) * 1000


def mem_mi(q):
    q = str(q)
    for suf, mul in (('Ki', 1 / 1024), ('Mi', 1), ('Gi', 1024)):
        if q.endswith(suf):
            return float(q[:-2]) * mul
    return float(q) / (1024 * 1024)


def check_pod(where, o, spec, ns_labels):
    psc = spec.get('securityContext', {})
    F.check(spec.get('hostNetwork') is not True and spec.get('hostPID') is not True,
            '%s: host namespaces' % where)
    F.check(psc.get('seccompProfile', {}).get('type') == 'RuntimeDefault',
            '%s: pod seccompProfile RuntimeDefault' % where)
    for v in spec.get('volumes', []):
        F.check('hostPath' not in v, '%s: hostPath volume %s' % (where, v['name']))
    for c in spec['containers'] + spec.get('initContainers', []):
        w = '%s container %s' % (where, c['name'])
        sc = c.get('securityContext', {})
        non_root = sc.get('runAsNonRoot', psc.get('runAsNonRoot'))
        uid = sc.get('runAsUser', psc.get('runAsUser'))
        F.check(non_root is True, '%s: runAsNonRoot' % w)
        F.check(uid is None or uid != 0, '%s: runAsUser 0' % w)
        F.check(sc.get('readOnlyRootFilesystem') is True, '%s: readOnlyRootFilesystem' % w)
        F.check(sc.get('allowPrivilegeEscalation') is False, '%s: allowPrivilegeEscalation' % w)
        F.check(sc.get('privileged') is not True, '%s: privileged' % w)
        F.check('ALL' in sc.get('capabilities', {}).get('drop', []), '%s: drop ALL' % w)
        F.check(not sc.get('capabilities', {}).get('add'), '%s: added capabilities' % w)
        for p in ('livenessProbe', 'readinessProbe'):
            F.check(p in c, '%s: %s missing' % (w, p))
        res = c.get('resources', {})
        for part in ('requests', 'limits'):
            for r in ('cpu', 'memory'):
                F.check(r in res.get(part, {}), '%s: resources.%s.%s missing' % (w, part, r))
        if 'requests' in res and 'limits' in res:
            try:
                F.check(cpu_m(res['requests']['cpu']) <= cpu_m(res['limits']['cpu']) and
                        mem_mi(res['requests']['memory']) <= mem_mi(res['limits']['memory']),
                        '%s: requests above limits' % w)
            except (KeyError, ValueError) as e:
                F.fail('%s: bad quantity %s' % (w, e))
        # A read-only root needs every written path on a volume: emptyDir for state and /tmp.
        mounts = {m['mountPath'].rstrip('/') for m in c.get('volumeMounts', [])}
        for e in c.get('env', []):
            if e['name'] in ('KONG_PREFIX', 'CONTROLLER_STATE_DIR'):
                F.check(e['value'].rstrip('/') in mounts,
                        '%s: %s=%s is not a mounted volume' % (w, e['name'], e['value']))
    F.check(ns_labels.get('pod-security.kubernetes.io/enforce') == 'restricted',
            '%s: namespace does not enforce the restricted Pod Security Standard' % where)


for topo in dl.TOPOLOGIES:
    objs = dl.kustomize_build(os.path.join(dl.DEPLOY, topo))
    pods = dl.pod_specs(objs)
    F.check(len(pods) == 2, '%s: expected 2 workloads, got %d' % (topo, len(pods)))
    for o, spec in pods:
        ns = dl.find(objs, 'Namespace', o['metadata'].get('namespace'))
        check_pod('%s %s/%s' % (topo, o['kind'], o['metadata']['name']), o, spec,
                  (ns or {}).get('metadata', {}).get('labels', {}))

    t = dl.find(objs, 'Deployment', 'tether', 'kong')
    if not F.check(t is not None, '%s: tether Deployment missing' % topo):
        continue
    tpl = t['spec']['template']
    c = tpl['spec']['containers'][0]
    w = '%s tether' % topo
    F.check(c['livenessProbe'].get('httpGet', {}).get('path') == '/healthz' and
            c['livenessProbe']['httpGet'].get('port') in (10254, 'health'), '%s: liveness' % w)
    F.check(c['readinessProbe'].get('httpGet', {}).get('path') == '/readyz' and
            c['readinessProbe']['httpGet'].get('port') in (10254, 'health'), '%s: readiness' % w)
    ann = tpl['metadata'].get('annotations', {})
    F.check(ann.get('prometheus.io/scrape') == 'true' and ann.get('prometheus.io/port') == '10255',
            '%s: prometheus.io annotations' % w)
    ports = {p['containerPort'] for p in c.get('ports', [])}
    F.check({10254, 10255} <= ports, '%s: container ports 10254/10255' % w)
    res = c['resources']
    F.check(cpu_m(res['requests']['cpu']) == 20 and mem_mi(res['requests']['memory']) == 32,
            '%s: requests 20m/32Mi' % w)
    F.check(cpu_m(res['limits']['cpu']) == 500 and mem_mi(res['limits']['memory']) == 256,
            '%s: limits 500m/256Mi' % w)
    F.check(t['spec']['replicas'] == 2, '%s: 2 replicas' % w)
    env = dl.env_of(c)
    # Leader election: identity from the pod, and never forced off.
    F.check(env.get('POD_NAME', {}).get('valueFrom', {}).get('fieldRef', {}).get('fieldPath') ==
            'metadata.name', '%s: POD_NAME from metadata.name' % w)
    F.check(env.get('POD_NAMESPACE', {}).get('valueFrom', {}).get('fieldRef', {})
            .get('fieldPath') == 'metadata.namespace', '%s: POD_NAMESPACE' % w)
    F.check(env.get('CONTROLLER_FORCE_LEADER_ELECTION', {}).get('value', 'enabled') != 'disabled',
            '%s: leader election disabled' % w)
    F.check(tpl['spec'].get('serviceAccountName') == 'tether', '%s: service account' % w)
    # Private keys: files mounted read-only, never plain env values.
    for e in c.get('env', []):
        F.check(not (e['name'].endswith('_KEY') and 'value' in e and 'BEGIN' in e['value']),
                '%s: %s holds a key in the manifest' % (w, e['name']))
    for m in c.get('volumeMounts', []):
        if m['mountPath'].startswith('/etc/'):
            F.check(m.get('readOnly') is True, '%s: %s not read-only' % (w, m['mountPath']))

    g = dl.find(objs, 'Deployment', 'kong-gateway', 'kong')
    if F.check(g is not None, '%s: kong-gateway Deployment missing' % topo):
        genv = dl.env_of(g['spec']['template']['spec']['containers'][0])
        F.check(genv.get('KONG_DATABASE', {}).get('value') == 'off', '%s: Kong DB-less' % topo)
        listen = genv.get('KONG_ADMIN_LISTEN', {}).get('value', '')
        F.check(listen and all('ssl' in part.split() for part in listen.split(',')),
                '%s: every Admin API listener must be TLS: %r' % (topo, listen))
        F.check(genv.get('KONG_NGINX_ADMIN_SSL_VERIFY_CLIENT', {}).get('value') == 'on' and
                'KONG_NGINX_ADMIN_SSL_CLIENT_CERTIFICATE' in genv,
                '%s: Admin API must require client certificates' % topo)
        F.check(g['spec']['template']['spec'].get('automountServiceAccountToken') is False,
                '%s: the gateway needs no API token' % topo)

F.done()
