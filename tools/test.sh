#!/usr/bin/env bash
# Builds Sextant and runs every test, installing what is missing:
#   0. format: every C/C++ source as .clang-format lays it out (tools/format.sh --check);
#   1. debug build (warnings are errors, lock-rank checker on): the full suite;
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the same under ThreadSanitizer;
#   4. the Python binding: pip-installed into a virtual environment under build/,
#      then its pytest suite (the conformance cases again, threads, processes, fork);
#      then hostile: tools/hostile.py through it, SX_HOSTILE_PROBES (400) probes of
#      seed SX_HOSTILE_SEED (1): API misuse, damaged files, resource limits, kill -9,
#      each in a child with a timeout; anything but a clear error or the committed
#      data (a crash, hang, wrong result, rollback, stray exception) fails the run;
#   5. the Go binding: go vet, go test -race (bindings/go/run_tests.sh);
#   6. the Node binding: the addon built offline, node --test (bindings/node/run_tests.sh);
#   7. the conformance matrix: the cases through the C, Python, Go and Node runners,
#      one table (tools/conformance.sh, reusing the builds above);
#   8. interop: C, Python, Go and Node processes on one file at once
#      (tools/interop.sh: read-back bit for bit, readers beside writers taking turns,
#      SIGKILLed writers of each language);
#   9. examples: the Python, Go and Node search services with their ingest
#      processes on one file (tools/examples.sh, smoke tests);
#  10. release: the library, the CLI, the tests and the C benchmarks built with -O3
#      (warnings are errors there too: the optimizer finds what a debug build does
#      not, e.g. -Wformat-truncation in the test workers; a benchmark whose
#      libraries are missing is skipped, see bench/CMakeLists.txt), and the kernel,
#      quantization and collection tests run as the optimizer compiled them;
#  11. fuzz: the libFuzzer fuzzers (clang, ASan+UBSan; tests/fuzz): every kept
#      regression input replayed, then each fuzzer run for SX_FUZZ_SECONDS (60)
#      (tools/fuzz.sh; clang is installed for this part only);
#  12. soak: tools/soak.sh for SX_SOAK_SECONDS (120): multi-process readers and
#      writers on one database, kill -9, simulated power loss, opens of mid-write and
#      damaged copies, invariants checked after every round (hours: tools/soak.sh N).
# The long stress and crash tests run at full length in (1) and shorter under the
# sanitizers (which slow everything 3-15x).
# Usage: tools/test.sh [format|debug|asan|tsan|python|hostile|go|node|matrix|interop|examples|release|fuzz|soak]...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tools/deps.sh"

configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(format release debug asan tsan python hostile go node matrix interop examples fuzz soak)
jobs=$(nproc 2>/dev/null || echo 2)

run() { # name, cmake args..., then env for ctest after "--"
  local name=$1; shift
  local cm=() envs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cm+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  envs=("$@")
  local dir="$root/build/$name"
  echo "=== $name: configure and build"
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSX_BENCH=OFF "${cm[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== $name: test"
  (cd "$dir" && env "${envs[@]}" ctest --output-on-failure -j "$jobs" --timeout 1200)
}

for c in "${configs[@]}"; do
  case $c in
    debug) run debug -- SX_STRESS_SECONDS=${SX_STRESS_SECONDS:-20} ;;
    asan) run asan -DSX_SANITIZE=address,undefined -- SX_STRESS_SECONDS=6 SX_CRASH_ITERATIONS=40 \
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ;;
    tsan) run tsan -DSX_SANITIZE=thread -- SX_STRESS_SECONDS=5 SX_CRASH_ITERATIONS=20 \
            TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ;;
    python) echo "=== python: build, install and test the binding"
            bash "$root/bindings/python/run_tests.sh" ;;
    hostile) echo "=== hostile: tools/hostile.py through the Python binding"
             [ -x "$root/build/py-venv/bin/python" ] || bash "$root/bindings/python/run_tests.sh" -q
             (cd "${TMPDIR:-/tmp}" && "$root/build/py-venv/bin/python" "$root/tools/hostile.py" \
               --seed "${SX_HOSTILE_SEED:-1}" --probes "${SX_HOSTILE_PROBES:-400}") ;;
    go) echo "=== go: vet, build and test the binding"
        bash "$root/bindings/go/run_tests.sh" ;;
    node) echo "=== node: build the addon and test the binding"
          bash "$root/bindings/node/run_tests.sh" ;;
    matrix) echo "=== matrix: the conformance cases through all four runners"
            SX_MATRIX_REUSE=1 bash "$root/tools/conformance.sh" ;;
    interop) echo "=== interop: four languages on one file"
             SX_MATRIX_REUSE=1 SX_INTEROP_REPORT="$root/build/interop-figures.json" \
               bash "$root/tools/interop.sh" ;;
    examples) echo "=== examples: the service examples' smoke tests"
              bash "$root/tools/examples.sh" ;;
    format) echo "=== format: the sources as .clang-format lays them out"
            bash "$root/tools/format.sh" --check ;;
    release) echo "=== release: build the library, the tools, the tests and the C benchmarks with -O3"
             cmake -S "$root" -B "$root/build/release" -G Ninja -DCMAKE_BUILD_TYPE=Release \
               -DSX_BENCH=ON -DSX_TESTS=ON >/dev/null
             cmake --build "$root/build/release" -j "$jobs"
             # The kernels and the scans over them as the optimizer compiled them.
             (cd "$root/build/release" && ctest --output-on-failure -j "$jobs" --timeout 600 \
               -R '^(Kernels|Quant|FlatProperty|AllMetrics/FlatProperty|Collection)\.') ;;
    fuzz) echo "=== fuzz: replay the kept inputs, then each fuzzer for ${SX_FUZZ_SECONDS:-60}s"
          SX_DEPS_FUZZ=1 bash "$root/tools/deps.sh"
          bash "$root/tools/fuzz.sh" 0 >/dev/null
          (cd "$root/build/fuzz" && ctest --output-on-failure -R fuzz_regress)
          bash "$root/tools/fuzz.sh" "${SX_FUZZ_SECONDS:-60}" ;;
    soak) bash "$root/tools/soak.sh" --seconds "${SX_SOAK_SECONDS:-120}" ;;
    *) echo "unknown configuration '$c' (format, debug, asan, tsan, python, hostile, go, node, matrix, interop, examples, release, fuzz, soak)" >&2; exit 2 ;;
  esac
done
echo "=== all configurations passed: ${configs[*]}"
