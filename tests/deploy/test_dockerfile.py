#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/Dockerfile cannot be built here (no container engine), so its structure is checked:
two stages on debian:12, the build stage installs the -dev packages and meson and copies every
source folder that meson.build uses, the final stage installs only runtime libraries (which must
provide every shared library the tether binary links: readelf + dpkg on the built binary), copies
the binary from the build stage, runs as a non-root USER, and has ENTRYPOINT
["/usr/local/bin/tether"]."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

F = dl.Failures('test_dockerfile')
RUNTIME = {'libuv1', 'libcurl4', 'libssl3', 'libjansson4', 'libyaml-0-2', 'zlib1g',
           'ca-certificates'}
BUILD_DEV = {'libuv1-dev', 'libcurl4-openssl-dev', 'libssl-dev', 'libjansson-dev', 'libyaml-dev',
             'zlib1g-dev', 'meson', 'ninja-build', 'pkg-config'}
# In every debian:12 image already (Essential / required by apt).
BASE_IMAGE = {'libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g'}


def instructions(text):
    """[(INSTRUCTION, argument)] with line continuations joined and comments dropped."""
    out, cur = [], ''
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith('#')):
            continue
        if s.startswith('#'):
            continue  # comment inside a continued instruction
        if s.endswith('\\'):
            cur += s[:-1] + ' '
            continue
        cur += s
        word, _, arg = cur.partition(' ')
        out.append((word.upper(), arg.strip()))
        cur = ''
    return out


def apt_packages(run_arg):
    pkgs = set()
    for cmd in re.split(r'&&|;', run_arg):
        words = shlex.split(cmd)
        if len(words) >= 2 and words[0] in ('apt-get', 'apt') and 'install' in words:
            pkgs |= {w for w in words[words.index('install') + 1:] if not w.startswith('-')}
    return pkgs


path = os.path.join(dl.DEPLOY, 'Dockerfile')
ins = instructions(open(path, encoding='utf-8').read())
stages = []
for word, arg in ins:
    if word == 'FROM':
        parts = arg.split()
        stages.append({'image': parts[0], 'name': parts[2] if len(parts) > 2 else None, 'ins': []})
    elif F.check(stages, 'instruction %s before FROM' % word):
        stages[-1]['ins'].append((word, arg))

F.check(len(stages) >= 2, 'expected a multi-stage build, got %d stage(s)' % len(stages))
for s in stages:
    F.check(s['image'] in ('debian:12', 'debian:bookworm', 'debian:12-slim',
                           'debian:bookworm-slim'), 'stage base %s is not Debian 12' % s['image'])
build, final = stages[0], stages[-1]
F.check(build['name'], 'the build stage needs a name (FROM debian:12 AS build)')

# Build stage: compilers, meson, -dev packages; copies every source folder meson uses.
bpk = set()
for w, a in build['ins']:
    if w == 'RUN':
        bpk |= apt_packages(a)
F.check(BUILD_DEV <= bpk, 'build stage lacks %s' % sorted(BUILD_DEV - bpk))
F.check(bool({'gcc', 'clang', 'build-essential'} & bpk), 'build stage installs no C compiler')
copied = set()
for w, a in build['ins']:
    if w == 'COPY' and '--from' not in a:
        srcs = a.split()[:-1]
        copied |= {x.rstrip('/') for x in srcs}
top = open(os.path.join(dl.SRC, 'meson.build'), encoding='utf-8').read()
top_no_tests = re.sub(r"if get_option\('tests'\).*?endif", '', top, flags=re.S)
for folder in re.findall(r"subdir\('([^']+)'\)", top_no_tests):
    F.check(folder in copied, 'build stage does not COPY %s/ (used by meson.build)' % folder)
for f in ('meson.build', 'meson_options.txt'):
    F.check(f in copied, 'build stage does not COPY %s' % f)
for src in re.findall(r"'((?:core|certs|mtls|dataplane|konnect)/[^']+\.c)'", top):
    F.check(src.split('/')[0] in copied, 'source %s is not copied' % src)
runs = ' '.join(a for w, a in build['ins'] if w == 'RUN')
F.check('meson setup' in runs and 'ninja' in runs, 'build stage does not run meson and ninja')
F.check('-Dtests=false' in runs, 'build stage should not build the tests (-Dtests=false)')
opts = open(os.path.join(dl.SRC, 'meson_options.txt'), encoding='utf-8').read()
for opt in re.findall(r'-D(\w+)=', runs):
    F.check(opt in opts or opt.startswith('b_'), 'meson option %s does not exist' % opt)

# Final stage: runtime only.
fpk = set()
for w, a in final['ins']:
    if w == 'RUN':
        fpk |= apt_packages(a)
        F.check('--no-install-recommends' in a or 'install' not in a,
                'final stage: apt-get install without --no-install-recommends')
        F.check('install' not in a or 'rm -rf /var/lib/apt/lists' in a,
                'final stage: apt lists not removed')
F.check(fpk == RUNTIME, 'final stage packages %s, expected %s' % (sorted(fpk), sorted(RUNTIME)))
F.check(not [p for p in fpk if p.endswith('-dev') or p in BUILD_DEV | {'gcc', 'clang'}],
        'final stage installs build packages')
copies = [a for w, a in final['ins'] if w == 'COPY']
F.check(any(re.match(r'--from=%s\s+\S*tether\s+/usr/local/bin/tether$' % re.escape(build['name']),
                     c) for c in copies),
        'final stage must COPY --from=%s the binary to /usr/local/bin/tether' % build['name'])
F.check(all('--from' in c for c in copies), 'final stage copies files from the build context')
users = [a for w, a in final['ins'] if w == 'USER']
F.check(users and users[-1].split(':')[0] not in ('root', '0'), 'final stage USER must be non-root')
ep = [a for w, a in final['ins'] if w == 'ENTRYPOINT']
try:
    F.check(ep and json.loads(ep[-1]) == ['/usr/local/bin/tether'],
            'ENTRYPOINT must be ["/usr/local/bin/tether"], got %s' % ep)
except ValueError:
    F.fail('ENTRYPOINT is not in exec (JSON) form: %s' % ep)
envs = ' '.join(a for w, a in final['ins'] if w == 'ENV')
F.check(re.search(r'\bGLIBC_TUNABLES=\S*glibc\.malloc\.hugetlb=1', envs),
        'final stage: ENV GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (malloc in huge pages)')
exposed = {p for w, a in final['ins'] if w == 'EXPOSE' for p in a.split()}
F.check({'10254', '10255'} <= exposed, 'EXPOSE 10254 10255')

# The runtime packages provide every library the binary links.
tether = os.environ.get('TETHER')
if tether and os.path.exists(tether) and shutil.which('readelf') and shutil.which('dpkg'):
    dyn = subprocess.run(['readelf', '-d', tether], capture_output=True, text=True).stdout
    needed = re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', dyn)
    F.check(needed, 'readelf found no NEEDED libraries in %s' % tether)
    ldd = subprocess.run(['ldd', tether], capture_output=True, text=True).stdout
    paths = dict(re.findall(r'^\s*(\S+) => (\S+)', ldd, flags=re.M))
    for lib in needed:
        if re.match(r'lib(asan|ubsan|tsan|lsan|clang_rt)', lib) or lib.startswith('ld-linux'):
            continue  # sanitizer builds of the tests
        p = paths.get(lib)
        if not F.check(p, 'ldd cannot resolve %s' % lib):
            continue
        real = os.path.realpath(p)
        owner = None
        for cand in (p, real, real.replace('/usr/lib/', '/lib/', 1), p.replace('/lib/', '/usr/lib/', 1)):
            r = subprocess.run(['dpkg', '-S', cand], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(':')[0].strip()
                break
        if F.check(owner, 'no Debian package owns %s' % p):
            F.check(owner in fpk | BASE_IMAGE,
                    '%s comes from %s, which the final stage does not install' % (lib, owner))
    print('info: tether links %s' % ', '.join(needed))
else:
    print('info: binary, readelf or dpkg missing: library coverage not checked')

F.done()
