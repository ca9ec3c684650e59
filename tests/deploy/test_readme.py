#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/README.md says true things: every deploy/ path it names exists, every `kubectl apply -k`
target is a kustomization, the Secrets table lists exactly the Secrets the topologies mount, the
examples table lists exactly the files of deploy/examples, and (once `tether run` is built) the
translation metrics of the metrics table are served on /metrics."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

F = dl.Failures('test_readme')
readme = open(os.path.join(dl.DEPLOY, 'README.md'), encoding='utf-8').read()

TOP = '|'.join(re.escape(e) for e in sorted(os.listdir(dl.DEPLOY)))
for p in sorted(set(re.findall(r'(?<![\w/-])(deploy/(?:%s)(?:/[\w.-]*[\w])*)' % TOP, readme))):
    F.check(os.path.exists(os.path.join(dl.SRC, p)), 'README names %s, which does not exist' % p)
for p in sorted(set(re.findall(r'kubectl apply (?:--server-side )?-k ([\w/.-]*[\w])', readme))):
    F.check(os.path.isfile(os.path.join(dl.SRC, p, 'kustomization.yaml')),
            'kubectl apply -k %s: not a kustomization' % p)
for t in dl.TOPOLOGIES:
    F.check('kubectl apply -k deploy/%s' % t in readme, 'README never applies deploy/%s' % t)

# The folder table at the top lists every folder of deploy/.
for entry in sorted(os.listdir(dl.DEPLOY)):
    if os.path.isdir(os.path.join(dl.DEPLOY, entry)):
        if entry != 'rbac':
            F.check('| `%s/` |' % entry in readme, 'README table lacks the folder %s/' % entry)
        for sub in sorted(os.listdir(os.path.join(dl.DEPLOY, entry))):
            if entry == 'rbac':
                F.check('| `rbac/%s/` |' % sub in readme, 'README table lacks rbac/%s/' % sub)

# Examples table = files of deploy/examples.
listed = set(re.findall(r'^\| `([\w.-]+\.yaml)` \|', readme, flags=re.M))
files = set(f for f in os.listdir(os.path.join(dl.DEPLOY, 'examples')) if f.endswith('.yaml'))
F.check(files <= listed, 'examples not in the README table: %s' % sorted(files - listed))

# Secrets table = Secrets the Kubernetes topologies mount (Konnect adds konnect-client-tls).
table = set(re.findall(r'^\s*\| `([a-z0-9-]+)` \| (?:gateways|tether)', readme, flags=re.M))
mounted = set()
for t in ('gateway-discovery', 'watch-namespace'):
    for o, spec in dl.pod_specs(dl.kustomize_build(os.path.join(dl.DEPLOY, t))):
        mounted |= {v['secret']['secretName'] for v in spec.get('volumes', []) if 'secret' in v}
F.check(table == mounted, 'README Secrets table %s, topologies mount %s' %
        (sorted(table), sorted(mounted)))

# Metrics: the translation metrics are served once run exists.
TETHER = os.environ.get('TETHER')
metrics = set(re.findall(r'^\| `(ingress_controller_[a-z_]+)` \|', readme, flags=re.M))
F.check(len(metrics) >= 8, 'metrics table too short: %s' % sorted(metrics))
if TETHER:
    with tempfile.TemporaryDirectory() as tmp:
        errpath = os.path.join(tmp, 'stderr')
        with open(errpath, 'w') as err:
            p = subprocess.Popen([TETHER, 'run', '--manifests', 'deploy/examples',
                                  '--kong-config-out', os.path.join(tmp, 'kong.json'),
                                  '--health-probe-bind-address', '127.0.0.1:0',
                                  '--metrics-bind-address', '127.0.0.1:0',
                                  '--diagnostics-bind-address', '0'],
                                 cwd=dl.SRC, stdout=subprocess.DEVNULL, stderr=err)
        try:
            port, body = None, ''
            end = time.monotonic() + 30
            while time.monotonic() < end and p.poll() is None:
                for line in open(errpath, encoding='utf-8', errors='replace'):
                    try:
                        j = json.loads(line)
                    except ValueError:
                        continue
                    if j.get('server') == 'metrics' and j.get('port'):
                        port = j['port']
                if port and os.path.exists(os.path.join(tmp, 'kong.json')):
                    try:
                        body = urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port,
                                                      timeout=5).read().decode()
                    except OSError:
                        body = ''
                    if 'ingress_controller_translation_count' in body:
                        break
                time.sleep(0.1)
            stderr = open(errpath, encoding='utf-8', errors='replace').read()
            if p.poll() is not None and 'not built yet' in stderr:
                print('info: tether run not built yet, metrics not checked')
            else:
                checked = sorted(x for x in metrics if 'translation' in x)
                print('info: checked on /metrics: %s' % ', '.join(checked))
                for m in checked:
                    F.check(re.search(r'^%s(_bucket|_sum|_count)?[{ ]' % m, body, flags=re.M),
                            'README metric %s is not on /metrics' % m)
        finally:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
F.done()
