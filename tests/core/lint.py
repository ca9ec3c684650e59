#!/usr/bin/env python3
"""Source checks that a compiler does not make: no banned C functions (curl's list plus system;
see ../shared/STYLE.md section 9), an SPDX line atop every C file."""
import os, re, sys

src = os.environ["TETHER_SRC"]
banned = re.compile(r"(?<![\w.>])(sprintf|vsprintf|strcpy|strncpy|strcat|strtok|atoi|atol|sscanf|gets|"
                    r"localtime|gmtime|system)\s*\(")
problems = []
for top in ("core", "certs", "mtls", "dataplane", "konnect", "tests"):
    for root, _, files in os.walk(os.path.join(src, top)):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(root, f)
            text = open(path, encoding="utf-8", errors="replace").read()
            if "SPDX-License-Identifier" not in "\n".join(text.splitlines()[:2]):
                problems.append("%s: no SPDX line at the top" % os.path.relpath(path, src))
            for n, line in enumerate(text.splitlines(), 1):
                code = line.split("//")[0]
                if code.lstrip().startswith(("*", "/*")):
                    continue
                m = banned.search(code)
                if m:
                    problems.append("%s:%d: banned function %s()" % (os.path.relpath(path, src), n, m.group(1)))
for p in problems:
    print(p)
print("%d passed, %d failed" % (0 if problems else 1, len(problems)))
sys.exit(1 if problems else 0)
