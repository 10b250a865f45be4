#!/usr/bin/env bash
# Builds and tests the Node binding on a machine that has (or can apt-get) Node:
#   1. installs what is missing for the build with apt-get (C/C++ compiler, make,
#      python3 for node-gyp, jansson headers; nodejs and npm when there is no node);
#   2. installs SWIG 4.5.1 from PyPI into <repo>/build/node-swig-venv, for the drift
#      test only (the generated wrapper is committed; building needs no SWIG);
#   3. `npm ci` in bindings/node: npm packages from the npm registry only, then the
#      package's install script builds the addon with node-gyp against this Node's
#      own headers (or node-api-headers from npm): nothing is downloaded from elsewhere;
#   4. runs `node --expose-gc --test test/` (conformance, API, event loop, worker_threads,
#      processes with kill -9, misuse and GC, tsc --strict over a typed example, drift).
# Usage: bindings/node/run_tests.sh [extra node --test arguments, e.g. test/api.test.js]
# Environment: SX_NODE_STRESS_SECONDS (default 3), SX_NODE_EL_N (default 200000),
# SX_NODE_GC_HANDLES (default 100000), CONFORMANCE_CASES, CONFORMANCE_SKIP,
# SEXTANT_CONFORMANCE_REPORT (a path: the conformance runner's JSON report goes there).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${SX_NODE_SWIG_VENV:-$root/build/node-swig-venv}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "run_tests.sh: please install: $*" >&2
    exit 2
  fi
  echo "run_tests.sh: installing $* (apt-get)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "$@" >/dev/null
}

# -- build dependencies
need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
echo '#include <jansson.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(libjansson-dev)
echo '#include <jsmn.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(libjsmn-dev)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# -- SWIG 4.5.1 from PyPI, for the drift test
if ! "$venv/bin/swig" -version 2>/dev/null | grep -q 'SWIG Version 4.5.1'; then
  echo "=== pip install swig==4.5.1 into $venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    apt_install "python$pyver-venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q swig==4.5.1
fi

# -- install the npm packages and build the addon (the package's install script)
cd "$here"
echo "=== npm ci (builds the addon with node-gyp, local headers)"
npm ci --no-audit --no-fund --loglevel=error

# -- test
echo "=== node --expose-gc --test ($(node --version))"
export SX_NODE_REQUIRE_SWIG=1 SWIG="$venv/bin/swig"
if [ $# -eq 0 ]; then set -- test/*.test.js; fi
exec node --expose-gc --test "$@"
