#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""RBAC against the calls tether really makes: run `tether run` against the fake API
server (tests/fakes/kube_apiserver.py) holding deploy/examples plus a few objects that make
tether write (an Ingress whose Service is missing: an Event; the kong-proxy Service: Ingress
status), with leader election on; then every request of the fake's access log must be granted by
the RBAC of deploy/gateway-discovery, and be listed in rbac-needed.txt. A second run with
--watch-namespace default is held against deploy/watch-namespace. Skipped (77) while the fake or
the Kubernetes source of `tether run` is not there yet."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402
from rbaclib import CONTROLLER_NS, NEEDED, Grants, parse_log_line, request_to_rbac  # noqa: E402

F = dl.Failures('test_rbac_live')
TETHER = os.environ['TETHER']
FAKE = os.path.join(os.environ.get('TETHER_FAKES', os.path.join(dl.SRC, 'tests', 'fakes')),
                    'kube_apiserver.py')
TOKEN = 'rbac-live-token-0123456789'
if not os.path.isfile(FAKE):
    print('SKIP: %s is not there yet' % FAKE)
    sys.exit(dl.SKIP)
helptext = subprocess.run([TETHER, 'run', '--help'], capture_output=True, text=True).stdout
if '--kubeconfig' not in helptext:
    print('SKIP: tether run has no --kubeconfig yet')
    sys.exit(dl.SKIP)

extra = [
    {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'kong'}},
    {'apiVersion': 'v1', 'kind': 'Service',
     'metadata': {'name': 'kong-proxy', 'namespace': 'kong'},
     'spec': {'type': 'LoadBalancer', 'selector': {'app': 'kong'},
              'ports': [{'name': 'proxy', 'port': 80, 'targetPort': 8000, 'protocol': 'TCP'}]},
     'status': {'loadBalancer': {'ingress': [{'ip': '192.0.2.100'}]}}},
    {'apiVersion': 'networking.k8s.io/v1', 'kind': 'Ingress',
     'metadata': {'name': 'no-such-service', 'namespace': 'default'},
     'spec': {'ingressClassName': 'kong', 'rules': [{'host': 'missing.example.com', 'http': {
         'paths': [{'path': '/', 'pathType': 'Prefix', 'backend': {
             'service': {'name': 'missing', 'port': {'number': 80}}}}]}}]}},
]


def run_against_fake(tmp, tag, extra_args):
    """Run tether once against a fresh fake; return the access-log lines (or None to skip)."""
    objs = [o for _, o in dl.objects_in(os.path.join(dl.DEPLOY, 'examples'))] + extra
    objfile = os.path.join(tmp, '%s-objects.yaml' % tag)
    with open(objfile, 'w') as f:
        yaml.safe_dump_all(objs, f)
    log = os.path.join(tmp, '%s-access.log' % tag)
    portfile = os.path.join(tmp, '%s-port' % tag)
    fake = subprocess.Popen([sys.executable, FAKE, '--port-file', portfile, '--token', TOKEN,
                             '--access-log', log, '--objects', objfile],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 30
        while not os.path.exists(portfile) and time.monotonic() < end and fake.poll() is None:
            time.sleep(0.05)
        if not F.check(os.path.exists(portfile), 'fake API server did not start: %s' %
                       (fake.stderr.read() if fake.poll() is not None else '')):
            return []
        port = int(open(portfile).read())
        kcfg = os.path.join(tmp, '%s-kubeconfig.yaml' % tag)
        with open(kcfg, 'w') as f:
            yaml.safe_dump({
                'apiVersion': 'v1', 'kind': 'Config', 'current-context': 't',
                'contexts': [{'name': 't', 'context': {'cluster': 'c', 'user': 'u'}}],
                'clusters': [{'name': 'c', 'cluster': {'server': 'http://127.0.0.1:%d' % port}}],
                'users': [{'name': 'u', 'user': {'token': TOKEN}}]}, f)
        env = dict(os.environ, POD_NAME='tether-0', POD_NAMESPACE=CONTROLLER_NS)
        args = [TETHER, 'run', '--kubeconfig', kcfg,
                '--kong-config-out', os.path.join(tmp, '%s-kong.json' % tag),
                '--state-dir', os.path.join(tmp, '%s-state' % tag),
                '--publish-service', 'kong/kong-proxy', '--force-leader-election', 'enabled',
                '--health-probe-bind-address', '127.0.0.1:0',
                '--metrics-bind-address', '127.0.0.1:0',
                '--diagnostics-bind-address', '127.0.0.1:0'] + extra_args
        errf = tempfile.TemporaryFile(mode='w+')
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errf, text=True, env=env)

        def logged():
            return open(log, encoding='utf-8').read() if os.path.exists(log) else ''

        # Run until tether has made its writes (an Event for the broken Ingress and the Ingress
        # status), or exited, or 20 s passed: what it called by then is what RBAC must allow.
        end = time.monotonic() + 20
        while time.monotonic() < end and proc.poll() is None:
            text = logged()
            if '/events' in text and '/status' in text:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                F.fail('%s: tether did not stop on SIGTERM' % tag)
        errf.seek(0)
        stderr = errf.read()
        if (proc.returncode == 2 and 'not built yet' in stderr) or \
                'no Kubernetes client' in stderr:
            return None
        F.check(proc.returncode == 0, '%s: tether run exit %d: %s' % (tag, proc.returncode,
                                                                      stderr[-3000:]))
        writes = [w for w in ('/events', '/status') if w not in logged()]
        if writes:
            print('info: %s: no %s request seen within 20 s' % (tag, ' or '.join(writes)))
        lines = open(log, encoding='utf-8').read().splitlines() if os.path.exists(log) else []
        F.check(lines, '%s: the fake saw no request' % tag)
        return lines
    finally:
        fake.kill()
        fake.wait(timeout=10)


def check_calls(tag, lines, objs):
    g = Grants(F, objs)
    seen = set()
    for line in lines:
        req = parse_log_line(line)
        res = request_to_rbac(*req) if req else None
        if res is None:
            continue
        grp, resource, verb, ns, name = res
        seen.add((grp, resource, verb))
        F.check(g.allows(grp, resource, verb, ns, name),
                '%s: "%s" needs %s %s %s in namespace %s: not granted' %
                (tag, line.strip(), grp, resource, verb, ns))
    F.check(seen <= NEEDED, '%s: calls missing from rbac-needed.txt: %s' %
            (tag, sorted(seen - NEEDED)))
    print('info: %s: %d requests, %d distinct (group, resource, verb)' %
          (tag, len(lines), len(seen)))


tmp = tempfile.mkdtemp(prefix='tether-rbac-live-')
try:
    lines = run_against_fake(tmp, 'cluster', [])
    if lines is None:
        print('SKIP: tether run has no Kubernetes source yet')
        sys.exit(dl.SKIP)
    check_calls('cluster', lines, dl.kustomize_build(os.path.join(dl.DEPLOY, 'gateway-discovery')))
    lines = run_against_fake(tmp, 'watch-namespace', ['--watch-namespace', 'default'])
    check_calls('watch-namespace', lines or [],
                dl.kustomize_build(os.path.join(dl.DEPLOY, 'watch-namespace')))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
F.done()
