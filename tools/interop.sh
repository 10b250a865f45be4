#!/usr/bin/env bash
# The cross-language interop test (tests/interop/test_interop.py, protocol in
# tests/interop/PROTOCOL.md): builds the four workers, then runs it.
# Usage: tools/interop.sh [pytest arguments...]
# Environment: SX_INTEROP_LANGS, SX_INTEROP_SECONDS, SX_INTEROP_KILLS (see the test),
# SX_MATRIX_REUSE=1 to reuse the Python package and Node addon tools/test.sh built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tools/go_env.sh" # the core's sources in the Go build cache's key
langs=${SX_INTEROP_LANGS:-c python go node}
reuse=${SX_MATRIX_REUSE:-0}
vpy=$root/build/py-venv/bin/python
bash "$root/tools/deps.sh"

for lang in $langs; do
  case $lang in
    c) cmake -S "$root" -B "$root/build/debug" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSX_BENCH=OFF >/dev/null
       cmake --build "$root/build/debug" --target interop_c ;;
    python) if [ "$reuse" != 1 ] || ! "$vpy" -c "import sextant" 2>/dev/null; then
              if [ -x "$vpy" ]; then "$vpy" -m pip install -q "$root/bindings/python[test]"
              else bash "$root/bindings/python/run_tests.sh" --collect-only -q >/dev/null; fi
            fi ;;
    go) mkdir -p "$root/build/interop"
        (cd "$root/bindings/go" && go build -o "$root/build/interop/interop_go" ./cmd/sextant-interop) ;;
    node) if [ "$reuse" != 1 ] || [ ! -d "$root/bindings/node/node_modules" ]; then
            (cd "$root/bindings/node" && npm ci --no-audit --no-fund --loglevel=error)
          fi ;;
    *) echo "unknown language '$lang'" >&2; exit 2 ;;
  esac
done
"$vpy" -c "import pytest" 2>/dev/null || "$vpy" -m pip install -q pytest
export SX_INTEROP_LANGS=$langs
exec "$vpy" -m pytest -v -s -p no:cacheprovider "$@" "$root/tests/interop/test_interop.py"
