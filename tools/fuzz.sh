#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (clang, ASan + UBSan, build/fuzz) and runs them:
# tests/fuzz/CMakeLists.txt says what each one does.
#   tools/fuzz.sh [seconds per fuzzer, default 600; 0: build only] [file|api|json]...
#   tools/fuzz.sh --long HOURS [file|api|json]...
# Each fuzzer starts from its committed seeds (tests/fuzz/corpus/<name>) and its
# regression inputs (tests/fuzz/regress/<name>) and grows a working corpus in
# build/fuzz/work/<name> (kept between runs, not committed). A crash, leak, hang
# (-timeout), single allocation over 256 MB (sized by a damaged count: the inputs are
# small) or model mismatch stops that fuzzer and leaves the input in
# build/fuzz/artifacts/; copy it into tests/fuzz/regress/<name>/ once understood, so
# ctest (fuzz_regress_<name>) replays it for ever. Exits nonzero if any fuzzer found
# something. Each run prints the fuzzer's executions and adds them to
# build/fuzz/work/<name>.execs (the total over every run of this build directory).
# Environment: SX_FUZZ_JOBS (fuzzers run at once, default 1), CC/CXX (default
# clang/clang++), SX_FUZZ_KEEP_GOING=1 (go on after a finding, libFuzzer's -fork=1
# -ignore_crashes=1: every finding is left in build/fuzz/artifacts/).
#
# --long: the named fuzzers (default all three) all run at once for HOURS (fractions
# allowed) at nice 19, each in SX_FUZZ_WORKERS worker processes (default 1) sharing
# its working corpus; a worker that finds something starts again, so a long run goes
# on after a finding. At the end each fuzzer's executions, executions per second and
# findings are printed (logs: build/fuzz/long_<name>_<worker>.log) and appended as a
# line to tests/fuzz/executions.tsv (the record of every long run, committed with the
# code; `tools/fuzz.sh --totals` sums it per fuzzer). Exits nonzero if anything was
# found. Do not pause a long run (SIGSTOP) to measure something else: libFuzzer's
# -timeout counts wall time, so the input in flight is reported as a 30 s hang and
# the worker restarts (eight such timeouts, each input replaying in under a second,
# came from pausing the run of 2026-12-06).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
record=$root/tests/fuzz/executions.tsv
if [ "${1:-}" = --totals ]; then
  awk -F'\t' '!/^#/ && NF >= 5 { e[$3] += $4; s[$3] += $5; f[$3] += $6 }
    END { for (n in e) printf "fuzz_%s: %d executions in %.1f h, %d finding(s)\n", n, e[n], s[n] / 3600, f[n] }' \
    "$record" | sort
  exit 0
fi
long=
if [ "${1:-}" = --long ]; then
  long=1
  shift
  secs=$(awk -v h="${1:?--long needs a number of hours}" 'BEGIN { printf "%d", h * 3600 }')
  shift
else
  secs=${1:-600}
  shift || true
fi
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
# Longest input per fuzzer: an API script stops after 200 steps (about 1 KB); a
# database file set needs room for a few dozen pages.
max_len() { case $1 in file) echo 262144 ;; api) echo 1024 ;; *) echo 4096 ;; esac; }
# Executions a log reports: the final stats, or fork mode's last status line.
executions() {
  local n
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -1)
  [ -n "$n" ] || n=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$1" | tail -1)
  echo "${n:-0}"
}
# Adds a run's executions to the build directory's total for that fuzzer.
tally() {
  local f=$build/work/$1.execs t=0
  [ -f "$f" ] && t=$(cat "$f")
  echo $((t + $2)) >"$f"
  echo $((t + $2))
}
# Findings: crashes, leaks, hangs, memory blow-ups (not the slow-unit notes of a
# loaded machine).
findings() { ls "$build/artifacts" | grep -cE "^$1-(crash|leak|timeout|oom)-" || true; }
run_one() {
  local n=$1 log=$2
  shift 2
  mkdir -p "$build/work/$n"
  local dirs=("$build/work/$n" "$root/tests/fuzz/corpus/$n")
  [ -d "$root/tests/fuzz/regress/$n" ] && dirs+=("$root/tests/fuzz/regress/$n")
  local before after rc=0
  before=$(findings "$n")
  "$build/tests/fuzz/fuzz_$n" "$@" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=256 \
    -max_len="$(max_len "$n")" -print_final_stats=1 -artifact_prefix="$build/artifacts/$n-" \
    "${dirs[@]}" >"$log" 2>&1 || rc=1
  # In -fork mode libFuzzer exits 0 after ignored findings: new artifacts tell.
  after=$(findings "$n")
  [ "$rc" -eq 0 ] && [ "$after" -eq "$before" ]
}

if [ -n "$long" ]; then
  # Each worker runs the fuzzer until the deadline, starting it again after a
  # finding; the workers of a fuzzer share its working corpus (libFuzzer rereads it).
  worker() {
    local n=$1 log=$2 end=$3 now
    : >"$log"
    while now=$(date +%s) && [ "$now" -lt "$end" ]; do
      secs=$((end - now)) run_one "$n" "$log.run" -reload=1 || sleep 1
      cat "$log.run" >>"$log"
    done
    rm -f "$log.run"
  }
  renice -n 19 -p $$ >/dev/null 2>&1 || true # the workers inherit it
  # Started in a session of its own (setsid, nohup from a new terminal), the run is
  # its own scheduling autogroup, which competes with others as one task whatever
  # its nice value: the autogroup is made nice too.
  echo 19 >"/proc/$$/autogroup" 2>/dev/null || true
  workers=${SX_FUZZ_WORKERS:-1}
  end=$(($(date +%s) + secs))
  pids=()
  for n in "${names[@]}"; do
    echo "=== fuzz_$n: $secs s, $workers worker(s) (logs: build/fuzz/long_${n}_*.log)"
    findings "$n" >"$build/long_$n.before"
    for k in $(seq 1 "$workers"); do
      worker "$n" "$build/long_${n}_$k.log" "$end" &
      pids+=("$!")
    done
  done
  wait "${pids[@]}" || true
  status=0
  for n in "${names[@]}"; do
    e=0
    for k in $(seq 1 "$workers"); do
      e=$((e + $(sed -n 's/^stat::number_of_executed_units: *//p' "$build/long_${n}_$k.log" |
        awk '{ s += $1 } END { print s + 0 }')))
    done
    new=$(($(findings "$n") - $(cat "$build/long_$n.before")))
    echo "fuzz_$n: $e executions in $secs s ($((e / secs))/s), $new finding(s), $(tally "$n" "$e") in all"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" \
      "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$n" "$e" "$secs" "$new" \
      "$workers worker(s), ASan+UBSan" >>"$record"
    [ "$new" -eq 0 ] || { status=1; ls -t "$build/artifacts" | grep -E "^$n-(crash|leak|timeout|oom)-" | head -n "$new" | sed 's/^/  build\/fuzz\/artifacts\//'; }
  done
  exit $status
fi

more=()
[ -z "${SX_FUZZ_KEEP_GOING:-}" ] || more=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
status=0
report() {
  local n=$1 ok=$2 e
  if [ "$ok" -eq 0 ]; then echo "fuzz_$n: ok"; else echo "fuzz_$n: FOUND SOMETHING (see its log)"; fi
  e=$(executions "$build/fuzz_$n.log")
  echo "fuzz_$n: $e executions in $secs s ($((e / secs))/s), $(tally "$n" "$e") in all"
}
pids=()
jobs=${SX_FUZZ_JOBS:-1}
for n in "${names[@]}"; do
  echo "=== fuzz_$n: ${secs}s (log: build/fuzz/fuzz_$n.log)"
  run_one "$n" "$build/fuzz_$n.log" "${more[@]}" &
  pids+=("$!:$n")
  if [ ${#pids[@]} -ge "$jobs" ]; then
    p=${pids[0]}
    pids=("${pids[@]:1}")
    ok=0
    wait "${p%%:*}" || { ok=1; status=1; }
    report "${p#*:}" $ok
  fi
done
for p in "${pids[@]}"; do
  ok=0
  wait "${p%%:*}" || { ok=1; status=1; }
  report "${p#*:}" $ok
done
exit $status
