#!/usr/bin/env bash
# Builds what the example services need, when it is missing, and runs their smoke test
# (examples/smoke_test.py): the Python (FastAPI + uvicorn workers), Go (net/http) and
# Node (node:http, async API) search services, each with its ingest process on one
# database file; it prints the requests/s of each.
#   - Python: the venv of bindings/python/run_tests.sh (build/py-venv, or $SX_PY_VENV)
#     with the sextant package (built by run_tests.sh --collect-only when missing) and
#     fastapi/uvicorn from PyPI (examples/python/requirements.txt);
#   - Node: npm ci in bindings/node when node_modules or the addon is missing;
#   - Go: go build of examples/go into build/examples/go (incremental).
# Usage: tools/examples.sh [python] [go] [node] [smoke_test.py options, e.g. --requests 3000]
# Environment: SX_PY_VENV, SX_EXAMPLES_REQUESTS (default 2000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tools/go_env.sh" # the core's sources in the Go build cache's key
venv=${SX_PY_VENV:-$root/build/py-venv}
export SX_EXAMPLES_REQUESTS=${SX_EXAMPLES_REQUESTS:-2000}
want=" ${*:-python go node} "
case "$want" in *" python "*|*" go "*|*" node "*) ;; *) want=" python go node $want" ;; esac

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "examples.sh: please install: $*" >&2
    exit 2
  fi
  echo "examples.sh: installing $* (apt-get)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "$@" >/dev/null
}

# Runs a build step with its output in a log, shown only when the step fails.
logdir=$root/build/examples
mkdir -p "$logdir"
quietly() {
  local log=$logdir/$1; shift
  if ! "$@" >"$log" 2>&1; then
    echo "examples.sh: failed: $*; the end of $log:" >&2
    tail -25 "$log" >&2
    return 1
  fi
}

t0=$SECONDS
# -- Python: the binding's venv with sextant, fastapi and uvicorn (the smoke test itself
#    needs only the standard library, and runs with this venv's python)
if ! "$venv/bin/python" -c "import sextant" 2>/dev/null; then
  echo "=== building the Python binding into $venv (bindings/python/run_tests.sh --collect-only)"
  quietly python-build.log env SX_PY_VENV="$venv" "$root/bindings/python/run_tests.sh" --collect-only -q
fi
if [[ $want == *" python "* ]] && ! "$venv/bin/python" -c "import fastapi, uvicorn" 2>/dev/null; then
  echo "=== pip install -r examples/python/requirements.txt"
  quietly pip.log "$venv/bin/python" -m pip install -r "$root/examples/python/requirements.txt"
fi

# -- Node: the addon
if [[ $want == *" node "* ]]; then
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d "$root/bindings/node/node_modules" ]; then
    echo "=== npm ci (bindings/node; builds the addon)"
    quietly node-build.log env -C "$root/bindings/node" npm ci --no-audit --no-fund
  elif [ ! -f "$root/bindings/node/build/Release/sextant.node" ]; then
    echo "=== npm run build (bindings/node)"
    quietly node-build.log env -C "$root/bindings/node" npm run build
  fi
fi

# -- Go: the example commands (cgo compiles the core; cached after the first build)
if [[ $want == *" go "* ]]; then
  command -v go >/dev/null || apt_install golang-go
  echo '#include <jansson.h>' | cc -E -x c - >/dev/null 2>&1 || apt_install libjansson-dev
  echo '#include <jsmn.h>' | cc -E -x c - >/dev/null 2>&1 || apt_install libjsmn-dev
  echo "=== go build examples/go"
  quietly go-build.log go -C "$root/examples/go" build -o "$root/build/examples/go/" ./...
fi
echo "=== ready in $((SECONDS - t0)) s; examples/smoke_test.py"
exec "$venv/bin/python" "$root/examples/smoke_test.py" "$@"
