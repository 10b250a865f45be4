#!/usr/bin/env bash
# The Sextant demo, in two parts, each on a database in a fresh temporary directory:
#
#  1. The C API in one process (examples/demo.c): a write session, a search, and a
#     read session that keeps its snapshot while a later commit changes the data.
#  2. One file, four processes in three languages at once: a Python ingest process
#     commits batches of embeddings continuously while searcher processes in Python,
#     Go and Node search the same file, each search in a fresh snapshot, with no lock
#     of their own. Each prints what it sees once a second (the snapshot's generation,
#     i.e. the ingest's batch number, its vector count, a search) and its throughput
#     at the end; the file then passes its integrity check.
#
# Installs and builds what is missing first (tools/deps.sh; the Python binding's venv
# via bindings/python/run_tests.sh --collect-only; npm ci in bindings/node; go build of
# examples/go), at the same time. The first run on a fresh 2-core machine spends about
# 3-4 minutes there (the core is compiled by CMake, pip, node-gyp and cgo); later runs
# take about 15 s in all. Usage: tools/demo.sh [--c-only | --no-c]
# Environment: SX_DEMO_SECONDS (how long the searchers run, default 10), SX_PY_VENV.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tools/go_env.sh" # the core's sources in the Go build cache's key
venv=${SX_PY_VENV:-$root/build/py-venv}
seconds=${SX_DEMO_SECONDS:-10}
part_c=1 part_multi=1
case "${1:-}" in
  --c-only) part_multi=0 ;;
  --no-c) part_c=0 ;;
  "") ;;
  *) echo "usage: tools/demo.sh [--c-only | --no-c]" >&2; exit 2 ;;
esac
t_start=$SECONDS
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

bash "$root/tools/deps.sh"

apt_install() {
  echo "demo.sh: installing $* (apt-get)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "$@" >/dev/null
}

# A build step, run in the background with its output in a log (shown only when it
# fails); prints how long it took. The steps run at the same time: each compiles the
# core its own way (CMake for C and Python, node-gyp, cgo).
step() {
  local name=$1 log=$dir/$2; shift 2
  local t=$SECONDS
  if "$@" >"$log" 2>&1; then
    echo "--- built: $name ($((SECONDS - t)) s)"
  else
    echo "demo.sh: $name failed: $*; the end of its output:" >&2
    grep -E "error|FAILED" "$log" | head -5 >&2 || tail -10 "$log" >&2
    return 1
  fi
}
build_c() {
  cmake -S "$root" -B "$root/build/release" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSX_TESTS=OFF -DSX_BENCH=OFF && cmake --build "$root/build/release" --target demo
}
node_build() {
  if [ ! -d "$root/bindings/node/node_modules" ]; then
    env -C "$root/bindings/node" npm ci --no-audit --no-fund
  else
    env -C "$root/bindings/node" npm run build
  fi
}

echo "=== building what is missing (in parallel; logs in a temporary directory)"
t_build=$SECONDS
if [ $part_multi = 1 ]; then
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  command -v go >/dev/null || apt_install golang-go
fi
declare -A job=()
[ $part_c = 0 ] || { step "the C demo (CMake, Release)" c-build.log build_c & job[c]=$!; }
if [ $part_multi = 1 ]; then
  if ! "$venv/bin/python" -c "import sextant" 2>/dev/null; then
    step "the Python binding (bindings/python/run_tests.sh --collect-only: venv, pip install)" \
      python-build.log env SX_PY_VENV="$venv" "$root/bindings/python/run_tests.sh" --collect-only -q &
    job[python]=$!
  fi
  if [ ! -f "$root/bindings/node/build/Release/sextant.node" ]; then
    step "the Node binding (npm ci in bindings/node)" node-build.log node_build & job[node]=$!
  fi
  step "the Go programs (go build in examples/go)" go-build.log \
    go -C "$root/examples/go" build -o "$root/build/examples/go/" ./... & job[go]=$!
fi
failed=()
for k in "${!job[@]}"; do wait "${job[$k]}" || failed+=("$k"); done
echo "(ready in $((SECONDS - t_build)) s)"
c_failed=0
for k in "${failed[@]}"; do
  if [ "$k" = c ] && [ $part_multi = 1 ]; then
    # Part 2 does not need this build (each binding compiles the core itself).
    c_failed=1
    echo "demo.sh: skipping part 1" >&2
  else
    exit 1
  fi
done

if [ $part_c = 1 ] && [ $c_failed = 0 ]; then
  echo
  echo "=== part 1: the C API in one process (examples/demo.c)"
  "$root/build/release/examples/demo" "$dir/demo.sx"
  echo "--- and again on the same file: the collection persists, the upserts replace"
  "$root/build/release/examples/demo" "$dir/demo.sx"
fi
[ $part_multi = 1 ] || exit 0

db="$dir/shared.sx"
echo
echo "=== part 2: one file ($db), one writer and three readers in three languages at once"
echo "    ingest:    python examples/python/ingest.py  (200 new 64-d vectors per commit, sync=full, HNSW)"
echo "    searchers: python examples/python/searcher.py, go examples/go/cmd/searcher, node examples/node/searcher.js"
echo "    each search begins a read session: a snapshot of everything committed before it; no locks of ours"
echo
"$venv/bin/python" "$root/examples/python/ingest.py" --db "$db" --batch 200 --interval 0.02 --progress 1 &
ingest=$!
pids+=("$ingest")
searchers=()
"$venv/bin/python" "$root/examples/python/searcher.py" --db "$db" --seconds "$seconds" & searchers+=($!)
"$root/build/examples/go/searcher" -db "$db" -seconds "$seconds" -threads 1 & searchers+=($!)
node "$root/examples/node/searcher.js" --db "$db" --seconds "$seconds" --inflight 2 & searchers+=($!)
pids+=("${searchers[@]}")
status=0
for p in "${searchers[@]}"; do wait "$p" || status=1; done
kill -TERM "$ingest"
wait "$ingest" || status=1
echo
"$venv/bin/python" - "$db" <<'PY'
import sys, sextant
with sextant.open(sys.argv[1], read_only=True) as db:
    db.check()
    with db.read() as r:
        print(f"after: {r.count('docs')} vectors in generation {r.user_version()}; integrity check: ok")
PY
echo "(demo: $((SECONDS - t_start)) s in all)"
[ $c_failed = 0 ] || status=1
exit $status
