#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (clang, ASan + UBSan, build/fuzz) and runs each for a
# given time: tests/fuzz/CMakeLists.txt says what each one does.
#   tools/fuzz.sh [seconds per fuzzer, default 600; 0: build only] [file|api|json]...
# Each fuzzer starts from its committed seeds (tests/fuzz/corpus/<name>) and its
# regression inputs (tests/fuzz/regress/<name>) and grows a working corpus in
# build/fuzz/work/<name> (kept between runs, not committed). A crash, leak, hang
# (-timeout) or model mismatch stops that fuzzer and leaves the input in
# build/fuzz/artifacts/; copy it into tests/fuzz/regress/<name>/ once understood, so
# ctest (fuzz_regress_<name>) replays it for ever. Exits nonzero if any fuzzer found
# something. Environment: SX_FUZZ_JOBS (parallel fuzzers, default 1), CC/CXX
# (default clang/clang++), SX_FUZZ_KEEP_GOING=1 (go on after a finding, libFuzzer's
# -fork=1 -ignore_crashes=1: every finding is left in build/fuzz/artifacts/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-600}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(file api json)
build=$root/build/fuzz

if ! command -v "${CC:-clang}" >/dev/null; then
  echo "fuzz.sh: clang is needed (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS=-O1 -DCMAKE_CXX_FLAGS=-O1 -DSX_TESTS=OFF -DSX_BENCH=OFF -DSX_FUZZ=ON \
  -DSX_SANITIZE=address,undefined >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target fuzz_file fuzz_api fuzz_json

[ "$secs" -gt 0 ] || exit 0
mkdir -p "$build/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
run_one() {
  local n=$1 max_len=4096
  [ "$n" = file ] && max_len=262144
  mkdir -p "$build/work/$n"
  local more=()
  [ -z "${SX_FUZZ_KEEP_GOING:-}" ] || more=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  local dirs=("$build/work/$n" "$root/tests/fuzz/corpus/$n")
  [ -d "$root/tests/fuzz/regress/$n" ] && dirs+=("$root/tests/fuzz/regress/$n")
  local before after
  before=$(ls "$build/artifacts" | grep -c "^$n-" || true)
  "$build/tests/fuzz/fuzz_$n" "${more[@]}" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2560 \
    -max_len=$max_len -print_final_stats=1 -artifact_prefix="$build/artifacts/$n-" \
    "${dirs[@]}" >"$build/fuzz_$n.log" 2>&1 || return 1
  # In -fork mode libFuzzer exits 0 after ignored findings: new artifacts tell.
  after=$(ls "$build/artifacts" | grep -c "^$n-" || true)
  [ "$after" -eq "$before" ]
}
pids=()
jobs=${SX_FUZZ_JOBS:-1}
for n in "${names[@]}"; do
  echo "=== fuzz_$n: ${secs}s (log: build/fuzz/fuzz_$n.log)"
  run_one "$n" &
  pids+=("$!:$n")
  if [ ${#pids[@]} -ge "$jobs" ]; then
    p=${pids[0]}
    pids=("${pids[@]:1}")
    if wait "${p%%:*}"; then echo "fuzz_${p#*:}: ok"; else echo "fuzz_${p#*:}: FOUND SOMETHING (see its log)"; status=1; fi
    grep -h "stat::number_of_executed_units" "$build/fuzz_${p#*:}.log" || true
  fi
done
for p in "${pids[@]}"; do
  if wait "${p%%:*}"; then echo "fuzz_${p#*:}: ok"; else echo "fuzz_${p#*:}: FOUND SOMETHING (see its log)"; status=1; fi
  grep -h "stat::number_of_executed_units" "$build/fuzz_${p#*:}.log" || true
done
exit $status
