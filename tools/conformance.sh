#!/usr/bin/env bash
# The conformance matrix: runs the conformance cases through the C, Python, Go and
# Node runners and prints one table, case file x runner, with passed / expected
# failure (listed in the runner's skip file, conformance/skip/<runner>.json) / failed
# counts and totals. Fails when a runner is missing, fails to run, or fails a case.
#
# Usage: tools/conformance.sh [c] [python] [go] [node]     (default: all four)
# Environment:
#   CONFORMANCE_CASES   a directory of case files (default: conformance/cases); every
#                       runner reads it, and honours its own skip file
#   SX_MATRIX_REUSE=1   reuse what tools/test.sh has just built (build/debug's runner,
#                       the Python venv's installed package, the Node addon) instead
#                       of building each binding first
# Each runner writes its outcomes to $SEXTANT_CONFORMANCE_REPORT (JSON:
# {"runner", "results": [{"file", "test", "outcome"}]}); tools/matrix.py tabulates them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tools/go_env.sh" # the core's sources in the Go build cache's key
runners=("$@")
[ ${#runners[@]} -gt 0 ] || runners=(c python go node)
reuse=${SX_MATRIX_REUSE:-0}
out=$root/build/conformance-matrix
rm -rf "$out"
mkdir -p "$out"
export PYTHONDONTWRITEBYTECODE=1

run_c() {
  local dir=$root/build/debug
  if [ "$reuse" != 1 ] || [ ! -x "$dir/conformance/runner_c" ]; then
    bash "$root/tools/deps.sh"
    cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSX_BENCH=OFF >/dev/null
    cmake --build "$dir" --target runner_c
  fi
  "$dir/conformance/runner_c" --gtest_brief=1
}

run_python() {
  local vpy=$root/build/py-venv/bin/python
  if [ "$reuse" != 1 ] || ! "$vpy" -c "import sextant" 2>/dev/null; then
    if [ -x "$vpy" ]; then
      "$vpy" -m pip install -q "$root/bindings/python[test]"
    else  # makes the venv (installing what is missing) and the package; collects only
      SEXTANT_CONFORMANCE_REPORT= bash "$root/bindings/python/run_tests.sh" --collect-only -q >/dev/null
    fi
  fi
  (cd "$root/bindings/python/tests" && "$vpy" -m pytest -q -p no:cacheprovider test_conformance.py)
}

run_go() {
  command -v go >/dev/null || { echo "go is not installed" >&2; return 2; }
  (cd "$root/bindings/go" && go test -count=1 -run 'TestConformance' .)
}

run_node() {
  command -v node >/dev/null || { echo "node is not installed" >&2; return 2; }
  local here=$root/bindings/node
  if [ "$reuse" != 1 ] || [ ! -d "$here/node_modules" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  (cd "$here" && node --test test/conformance.test.js)
}

status=0
for r in "${runners[@]}"; do
  case $r in c|python|go|node) ;; *) echo "unknown runner '$r' (c, python, go, node)" >&2; exit 2 ;; esac
  echo "=== conformance: $r runner"
  log=$out/$r.log
  if SEXTANT_CONFORMANCE_REPORT=$out/$r.json "run_$r" >"$log" 2>&1; then
    echo "$r: exit 0"
  else
    echo "$r: FAILED (exit $?); the last lines of $log:"
    tail -n 30 "$log"
    status=1
  fi
done

python3 "$root/tools/matrix.py" "$out" "${runners[@]}" || status=1
exit $status
