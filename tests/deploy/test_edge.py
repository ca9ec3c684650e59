#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/edge: the systemd units and kong.conf agree with each other and with the README.
tether runs as a non-root, sandboxed service that writes the file Kong loads; Kong is DB-less
with that file as declarative_config; a path unit reloads Kong when the file changes."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

F = dl.Failures('test_edge')
EDGE = os.path.join(dl.DEPLOY, 'edge')


def unit(name):
    """{section: {key: [values]}} of a systemd unit file (continuations joined)."""
    out, sec, cur = {}, None, ''
    for line in open(os.path.join(EDGE, name), encoding='utf-8'):
        s = line.rstrip('\n')
        if not cur and (not s.strip() or s.lstrip().startswith(('#', ';'))):
            continue
        if s.endswith('\\'):
            cur += s[:-1].strip() + ' '
            continue
        s = (cur + s.strip()).strip()
        cur = ''
        m = re.match(r'^\[(\w+)\]$', s)
        if m:
            sec = out.setdefault(m.group(1), {})
            continue
        k, eq, v = s.partition('=')
        if not F.check(eq and sec is not None, '%s: bad line %r' % (name, s)):
            continue
        sec.setdefault(k.strip(), []).append(v.strip())
    return out


def one(u, sec, key, name):
    vals = u.get(sec, {}).get(key, [])
    F.check(len(vals) == 1, '%s: [%s] %s= should appear once, got %s' % (name, sec, key, vals))
    return vals[-1] if vals else ''


def flag(args, name):
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + '='):
            return a.split('=', 1)[1]
    return None


t = unit('tether.service')
args = shlex.split(one(t, 'Service', 'ExecStart', 'tether.service'))
F.check(args[:2] == ['/usr/local/bin/tether', 'run'], 'ExecStart must be /usr/local/bin/tether run')
manifests = flag(args, '--manifests')
out = flag(args, '--kong-config-out')
state = flag(args, '--state-dir')
F.check(manifests and out and state, 'ExecStart needs --manifests, --kong-config-out, --state-dir')
for f in ('--health-probe-bind-address', '--metrics-bind-address', '--diagnostics-bind-address'):
    v = flag(args, f)
    F.check(v is None or v.startswith(('127.', '[::1]')), '%s should be loopback on an edge host' % f)
svc = t.get('Service', {})
F.check(one(t, 'Service', 'User', 'tether.service') not in ('', 'root', '0'), 'User must not be root')
for k, v in (('NoNewPrivileges', 'yes'), ('ProtectSystem', 'strict'), ('ProtectHome', 'yes'),
             ('PrivateTmp', 'yes'), ('CapabilityBoundingSet', '')):
    F.check(svc.get(k) == [v], 'tether.service: %s=%s' % (k, v))
state_dirs = ['/var/lib/' + d for d in ' '.join(svc.get('StateDirectory', [])).split()]
for p in (os.path.dirname(out or ''), state or ''):
    F.check(p in state_dirs, 'tether.service: %s is not a StateDirectory (ProtectSystem=strict '
            'makes everything else read-only)' % p)
F.check(one(t, 'Install', 'WantedBy', 'tether.service') == 'multi-user.target', 'WantedBy')
F.check('GLIBC_TUNABLES=glibc.malloc.hugetlb=1' in svc.get('Environment', []),
        'tether.service: Environment=GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (malloc in huge pages)')

# kong.conf: DB-less on that file, no Admin API.
conf = {}
for line in open(os.path.join(EDGE, 'kong.conf'), encoding='utf-8'):
    line = line.split('#', 1)[0].strip()
    if line:
        k, _, v = line.partition('=')
        conf[k.strip()] = v.strip()
F.check(conf.get('database') == 'off', 'kong.conf: database = off')
F.check(conf.get('declarative_config') == out, 'kong.conf: declarative_config = %s' % out)
F.check(conf.get('admin_listen') == 'off', 'kong.conf: admin_listen = off (edge needs none)')
F.check(out.endswith(('.json', '.yml', '.yaml')), 'Kong picks the parser by extension: %s' % out)

k = unit('kong.service')
pre = ' '.join(k.get('Service', {}).get('ExecStartPre', []))
F.check(out in pre, 'kong.service waits for %s before starting' % out)
F.check('kong reload' in one(k, 'Service', 'ExecReload', 'kong.service'), 'kong.service reloads')
F.check('tether.service' in ' '.join(k.get('Unit', {}).get('After', [])), 'Kong after tether')

p = unit('kong-reload.path')
F.check(one(p, 'Path', 'PathChanged', 'kong-reload.path') == out, 'path unit watches %s' % out)
target = one(p, 'Path', 'Unit', 'kong-reload.path')
F.check(os.path.exists(os.path.join(EDGE, target)), 'path unit starts missing %s' % target)
r = unit(target) if os.path.exists(os.path.join(EDGE, target)) else {}
F.check('systemctl reload kong.service' in one(r, 'Service', 'ExecStart', target),
        '%s reloads kong.service' % target)
F.check(one(r, 'Service', 'Type', target) == 'oneshot', '%s is oneshot' % target)

# The README installs every file of deploy/edge.
readme = open(os.path.join(dl.DEPLOY, 'README.md'), encoding='utf-8').read()
for f in sorted(os.listdir(EDGE)):
    F.check('deploy/edge/' + f in readme, 'README does not install deploy/edge/%s' % f)
F.check(manifests in readme and out in readme, 'README names %s and %s' % (manifests, out))

# systemd itself accepts every directive (when systemd-analyze is installed).
analyze = shutil.which('systemd-analyze')
if analyze:
    units = sorted(f for f in os.listdir(EDGE) if f.endswith(('.service', '.path')))
    with tempfile.TemporaryDirectory() as tmp:
        for f in units:
            shutil.copy(os.path.join(EDGE, f), tmp)
        r = subprocess.run([analyze, 'verify'] + ['./' + f for f in units], cwd=tmp,
                           capture_output=True, text=True, timeout=60)
    for line in (r.stdout + r.stderr).splitlines():
        # The binaries are not installed here; anything else is a mistake in a unit.
        if 'is not executable' in line or not line.strip():
            continue
        F.fail('systemd-analyze verify: %s' % line)
else:
    print('info: systemd-analyze missing, units not verified by systemd')

F.done()
