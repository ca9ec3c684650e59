#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every flag that deploy/ sets exists in `tether run --help`: the CONTROLLER_* variables of the
Kubernetes topologies (CONTROLLER_KONG_ADMIN_SVC is --kong-admin-svc), the flags of the edge
unit, and the flags in the tables of deploy/README.md. Skipped (77) until `tether run` is built."""
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

F = dl.Failures('test_flags')
TETHER = os.environ.get('TETHER')

wanted = {}  # flag -> where
for topo in dl.TOPOLOGIES:
    for o, spec in dl.pod_specs(dl.kustomize_build(os.path.join(dl.DEPLOY, topo))):
        if o['metadata']['name'] != 'tether':
            continue
        for c in spec['containers']:
            for e in c.get('env', []):
                if e['name'].startswith('CONTROLLER_'):
                    f = '--' + e['name'][len('CONTROLLER_'):].lower().replace('_', '-')
                    wanted.setdefault(f, '%s env %s' % (topo, e['name']))
text = open(os.path.join(dl.DEPLOY, 'edge', 'tether.service'), encoding='utf-8').read()
m = re.search(r'^ExecStart=(.*?)(?<!\\)$', text.replace('\\\n', ' '), flags=re.M)
for a in shlex.split(m.group(1)) if m else []:
    if a.startswith('--'):
        wanted.setdefault(a.split('=')[0], 'edge/tether.service')
readme = open(os.path.join(dl.DEPLOY, 'README.md'), encoding='utf-8').read()
for f in re.findall(r'^\| `(--[a-z0-9-]+)', readme, flags=re.M):
    wanted.setdefault(f, 'README flags table')
F.check(len(wanted) > 10, 'only %d flags found' % len(wanted))

r = subprocess.run([TETHER, 'run', '--help'], capture_output=True, text=True, timeout=30)
if r.returncode == 2 and 'not built yet' in r.stderr:
    print('SKIP: tether run is not built yet (%d flags to check)' % len(wanted))
    sys.exit(dl.SKIP)
helptext = r.stdout + r.stderr
F.check(r.returncode == 0, 'tether run --help exit %d' % r.returncode)
known = set(re.findall(r'(--[a-z0-9][a-z0-9-]*)', helptext))
for f, where in sorted(wanted.items()):
    F.check(f in known, '%s (%s) is not a flag of tether run' % (f, where))
F.done()
