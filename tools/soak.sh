#!/usr/bin/env bash
# The soak test: hours of multi-process readers and writers on one database, random
# kill -9, simulated power loss (the fault VFS), and opens of copies taken mid-write
# and of copies with random bytes flipped, with the invariants checked after every
# round (tests/worker_soak.c says which). Not part of CI at full length; the test
# command runs it for two minutes (tools/test.sh soak).
#
# Usage: tools/soak.sh [HOURS]          (default 1; fractions allowed: 0.25)
#        tools/soak.sh --seconds N
# Environment: SX_SOAK_SEED (default: from the clock, printed), SX_SOAK_DIR (default:
# a new directory under /tmp, removed when the run passes), SX_SOAK_SANITIZE (e.g.
# address,undefined: build with sanitizers, in build/soak-san).
# Exits non-zero when an invariant breaks, keeping the failing round's files (the
# path is printed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=3600
if [ "${1:-}" = "--seconds" ]; then
  seconds=${2:?--seconds needs a number}
elif [ -n "${1:-}" ]; then
  seconds=$(awk -v h="$1" 'BEGIN { printf "%d", h * 3600 }')
fi
seed=${SX_SOAK_SEED:-$(date +%s%N)}
dir=${SX_SOAK_DIR:-$(mktemp -d /tmp/sx-soak-XXXXXX)}
build="$root/build/soak"
cm=()
if [ -n "${SX_SOAK_SANITIZE:-}" ]; then
  build="$root/build/soak-san"
  cm=(-DSX_SANITIZE="$SX_SOAK_SANITIZE")
fi
jobs=$(nproc 2>/dev/null || echo 2)
echo "=== soak: build ($build)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSX_BENCH=OFF "${cm[@]}" >/dev/null
cmake --build "$build" -j "$jobs" --target worker_soak
echo "=== soak: $seconds s in $dir (SX_SOAK_SEED=$seed)"
if "$build/tests/worker_soak" "$dir" "$seconds" "$seed"; then
  [ -n "${SX_SOAK_DIR:-}" ] || rm -rf "$dir"
else
  echo "soak FAILED (SX_SOAK_SEED=$seed); files kept in $dir" >&2
  exit 1
fi
