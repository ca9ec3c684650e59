#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the build dependencies (Debian 12, as root),
# builds with gcc (warnings are errors) and with clang ASan+UBSan, runs every meson suite in
# both, replays unit tests under valgrind, runs the unit tests and the translation tests (whose
# passes share their work between threads) under ThreadSanitizer, and ends with one line
# "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

deps=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev python3 python3-yaml
      libuv1-dev libcurl4-openssl-dev libssl-dev libjansson-dev libyaml-dev zlib1g-dev
      libcmocka-dev valgrind openssl iproute2 procps)
missing=()
for p in "${deps[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

results=()
run_suite() { # name, build dir, extra meson test args...
    local name=$1 dir=$2
    shift 2
    echo "=== $name"
    # Each run keeps its own log; meson appends the wrapper's name to the base (testlog-NAME-valgrind).
    rm -f "$dir/meson-logs/testlog-$name"*.json
    meson test -C "$dir" --print-errorlogs --num-processes 2 --logbase "testlog-$name" "$@" || true
    results+=("$(ls "$dir/meson-logs/testlog-$name"*.json)")
}

echo "=== build (gcc, -Werror)"
[ -d build ] || meson setup build --werror >/dev/null
ninja -C build
run_suite gcc build

echo "=== build (clang, ASan + UBSan)"
[ -d build-san ] || CC=clang meson setup build-san -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-sanitize-recover=all >/dev/null
ninja -C build-san
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 run_suite asan build-san

echo "=== build (clang, ThreadSanitizer)"
[ -d build-tsan ] || CC=clang meson setup build-tsan -Db_sanitize=thread -Db_lundef=false >/dev/null
ninja -C build-tsan
export TSAN_OPTIONS="halt_on_error=1:suppressions=$top/tests/tsan.supp"
# clang 14's TSan refuses some kernels' address-space layouts (high vm.mmap_rnd_bits); without
# address randomization it runs there too. Where neither works, the stage says so and is skipped.
tsan_wrap=()
if ! build-tsan/tether --version >/dev/null 2>&1; then
    if setarch "$(uname -m)" -R build-tsan/tether --version >/dev/null 2>&1; then
        tsan_wrap=(--wrapper "setarch $(uname -m) -R")
    else
        tsan_wrap=(skip)
    fi
fi
if [ "${tsan_wrap[0]:-}" = skip ]; then
    echo "ThreadSanitizer cannot run on this machine (kernel address layout): stage skipped"
else
    run_suite tsan build-tsan --suite unit "${tsan_wrap[@]}"
    run_suite tsan-translate build-tsan translate-cases golden "${tsan_wrap[@]}"
fi
unset TSAN_OPTIONS

echo "=== valgrind (unit tests)"
run_suite valgrind build --suite unit \
    --wrapper "valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect -q" \
    --timeout-multiplier 10

python3 - "${results[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    for line in open(path):
        t = json.loads(line)
        r = t.get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
            print("FAILED: %s (%s) in %s" % (t.get("name"), r, path))
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
PY
