#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The certificate steps of deploy/README.md work as written: every `tether certs generate`
command of the README runs (with $TETHER) in a scratch folder; the files named by its
`kubectl create secret` lines exist; the Secrets it prints are valid, named as the Deployments
mount them; the gateway certificate verifies for pod.kong-admin.kong.svc; and curl (libcurl, as
tether) completes a mutual-TLS request with tether's client certificate against an
`openssl s_server` that requires one signed by the CA, while a request without it fails.
Skipped (77) while `tether certs` is not built."""
import base64
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402
from k8sfields import validate_object  # noqa: E402

F = dl.Failures('test_readme_certs')
TETHER = os.environ['TETHER']
readme = open(os.path.join(dl.DEPLOY, 'README.md'), encoding='utf-8').read()

commands = []
for block in re.findall(r'```sh\n(.*?)```', readme, flags=re.S):
    for cmd in re.sub(r'\\\n\s*', ' ', block).splitlines():
        cmd = cmd.strip()
        if cmd.startswith(('tether certs generate', 'kubectl -n kong create secret')):
            commands.append(cmd)
F.check(sum(c.startswith('tether certs') for c in commands) >= 4,
        'README has too few tether certs commands: %s' % commands)

r = subprocess.run([TETHER, 'certs', 'generate', '--help'], capture_output=True, text=True)
if r.returncode == 2 and 'not built yet' in r.stderr:
    print('SKIP: tether certs is not built yet')
    sys.exit(dl.SKIP)

tmp = tempfile.mkdtemp(prefix='tether-readme-certs-')
secrets = {}
try:
    for cmd in commands:
        left, pipe, _ = cmd.partition('|')
        left, redir, outfile = left.partition('>')
        argv = shlex.split(left)
        if argv[0] == 'kubectl':
            for f in re.findall(r'(?:--cert|--key|--from-file=[\w.]+)=(\S+)', cmd):
                F.check(os.path.isfile(os.path.join(tmp, f)), 'README: %s needs %s, which no earlier '
                        'command made' % (cmd, f))
            continue
        r = subprocess.run([TETHER] + argv[1:], cwd=tmp, capture_output=True, text=True,
                           timeout=60)
        if not F.check(r.returncode == 0, 'README command failed (%d): %s\n%s' %
                       (r.returncode, cmd, r.stderr)):
            continue
        if '--k8s-secret' in argv:
            F.check(pipe or redir, '%s: the Secret manifest goes nowhere' % cmd)
            docs = [d for d in __import__('yaml').safe_load_all(r.stdout) if d]
            if F.check(len(docs) == 1, '%s: expected one Secret' % cmd):
                s = docs[0]
                errs = validate_object(s, 'README secret') or []
                F.check(not errs, '%s: %s' % (cmd, errs))
                F.check(s.get('type') == 'kubernetes.io/tls', '%s: type %s' % (cmd, s.get('type')))
                F.check(s['metadata'].get('namespace') == 'kong', '%s: namespace' % cmd)
                name = s['metadata']['name']
                secrets[name] = s
                for k in ('tls.crt', 'tls.key'):
                    with open(os.path.join(tmp, '%s.%s' % (name, k.split('.')[1])), 'wb') as f:
                        f.write(base64.b64decode(s['data'][k]))

    # The Secrets printed are the ones the topologies mount.
    mounted = set()
    for topo in dl.TOPOLOGIES:
        for o, spec in dl.pod_specs(dl.kustomize_build(os.path.join(dl.DEPLOY, topo))):
            mounted |= {v['secret']['secretName'] for v in spec.get('volumes', []) if 'secret' in v}
    for name in secrets:
        F.check(name in mounted, 'README makes Secret %s, which no Deployment mounts' % name)
    for name in ('tether-admin-client-tls', 'konnect-client-tls'):
        F.check(name in secrets, 'README does not make %s with tether certs' % name)

    def ossl_verify(*args):
        r = subprocess.run(['openssl', 'verify'] + list(args), cwd=tmp, capture_output=True,
                           text=True)
        return r.returncode == 0, r.stdout + r.stderr

    ok, out = ossl_verify('-CAfile', 'admin-ca.crt', '-purpose', 'sslserver',
                          '-verify_hostname', 'pod.kong-admin.kong.svc', 'kong-admin.crt')
    F.check(ok, 'gateway certificate for pod.kong-admin.kong.svc: %s' % out)
    ok, out = ossl_verify('-CAfile', 'admin-ca.crt', '-purpose', 'sslclient',
                          'tether-admin-client-tls.crt')
    F.check(ok, 'tether client certificate: %s' % out)
    ok, out = ossl_verify('-CAfile', 'konnect-client-tls.crt', '-purpose', 'sslclient',
                          'konnect-client-tls.crt')
    F.check(ok, 'Konnect client certificate (self-signed, clientAuth): %s' % out)

    # Mutual TLS as between tether (libcurl) and Kong's Admin API (nginx, ssl_verify_client on).
    if shutil.which('curl'):
        # Port 0: s_server binds a free port and prints it ("ACCEPT 127.0.0.1:PORT").
        server = subprocess.Popen(
            ['openssl', 's_server', '-accept', '127.0.0.1:0', '-www', '-naccept', '2',
             '-cert', 'kong-admin.crt', '-key', 'kong-admin.key', '-CAfile', 'admin-ca.crt',
             '-Verify', '3', '-verify_return_error'],
            cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        port = None
        for _ in range(20):
            line = server.stdout.readline()
            m = re.search(r'ACCEPT .*:(\d+)$', line.strip())
            if m:
                port = int(m.group(1))
                break
            if not line:
                break
        if port is None:
            server.kill()
            server.wait(timeout=10)
            server = None
        if F.check(server is not None, 'openssl s_server did not start'):
            try:
                base = ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20',
                        '--cacert', 'admin-ca.crt', '--connect-to',
                        'pod.kong-admin.kong.svc:%d:127.0.0.1:%d' % (port, port),
                        'https://pod.kong-admin.kong.svc:%d/' % port]
                r = subprocess.run(base[:1] + ['--cert', 'tether-admin-client-tls.crt', '--key',
                                               'tether-admin-client-tls.key'] + base[1:],
                                   cwd=tmp, capture_output=True, text=True, timeout=30)
                F.check(r.returncode == 0 and r.stdout == '200',
                        'mutual TLS with the README certificates failed: %s %s' %
                        (r.stdout, r.stderr))
                r = subprocess.run(base, cwd=tmp, capture_output=True, text=True, timeout=30)
                F.check(r.returncode != 0, 'the Admin API accepted a client without certificate')
            finally:
                server.kill()
                server.wait(timeout=10)
    else:
        print('info: curl missing, handshake not tried')
finally:
    shutil.rmtree(tmp, ignore_errors=True)

F.done()
