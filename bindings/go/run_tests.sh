#!/usr/bin/env bash
# Builds and tests the Go binding on a machine with Go (1.24 or later) and a C compiler:
#   1. installs what is missing for the build with apt-get (gcc, jansson's headers),
#      as bindings/python/run_tests.sh does;
#   2. finds SWIG 4.5.1 for the drift test ($SWIG, swig on PATH, or
#      <repo>/build/go-swig-venv), else installs it there from PyPI (pip install
#      swig==4.5.1, the version the Python binding builds with);
#   3. go vet ./... (the generated package included)
#   4. go test -race ./... : the conformance suite, goroutines, processes, misuse,
#      cancellation, examples, and the drift test (the committed SWIG output must be
#      what bindings/sextant.i generates now);
#   5. the same tests without -race under GOEXPERIMENT=cgocheck2 (every pointer C
#      writes through is checked), in -short mode (no multi-process tests).
# Usage: bindings/go/run_tests.sh [go test arguments...]
# Environment: SX_GO_STRESS_SECONDS (default 2), SX_GO_SWIG_VENV (default
# <repo>/build/go-swig-venv), SX_GO_CGOCHECK2=0 to skip step 5, CONFORMANCE_CASES,
# CONFORMANCE_SKIP, SEXTANT_CONFORMANCE_REPORT (a path: the conformance outcomes as JSON).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tools/go_env.sh" # the core's sources in the Go build cache's key
venv=${SX_GO_SWIG_VENV:-$root/build/go-swig-venv}
export SX_GO_STRESS_SECONDS=${SX_GO_STRESS_SECONDS:-2}

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

# -- Go itself
if ! command -v go >/dev/null; then
  apt_install golang-go
fi
gover=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n1.24\n' "${gover%%-*}" | sort -V | head -1)" != "1.24" ]; then
  echo "run_tests.sh: Go $gover is too old: the binding needs Go 1.24 or later (runtime.AddCleanup)" >&2
  exit 2
fi

# -- the C side: a compiler and jansson's headers (the core is compiled by cgo)
need=()
command -v cc >/dev/null || need+=(gcc)
echo '#include <jansson.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(libjansson-dev)
echo '#include <jsmn.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(libjsmn-dev)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# -- SWIG 4.5.1 for the drift test
swig_ok() { [ -n "$1" ] && "$1" -version 2>/dev/null | grep -q 'SWIG Version 4.5.1'; }
swig=""
for cand in "${SWIG:-}" "$(command -v swig || true)" "$venv/bin/swig"; do
  if swig_ok "$cand"; then swig=$cand; break; fi
done
if [ -z "$swig" ]; then
  echo "run_tests.sh: installing SWIG 4.5.1 from PyPI into $venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q swig==4.5.1
  swig="$venv/bin/swig"
fi
export SWIG=$swig SX_GO_REQUIRE_SWIG=1

cd "$here"
echo "=== go vet ./..."
go vet ./...
echo "=== go test -race ./... (stress ${SX_GO_STRESS_SECONDS}s)"
go test -race -count=1 "$@" ./...
if [ "${SX_GO_CGOCHECK2:-1}" != 0 ]; then
  echo "=== GOEXPERIMENT=cgocheck2 go test -short ./..."
  GOEXPERIMENT=cgocheck2 go test -short -count=1 "$@" ./...
fi
echo "=== all Go tests passed"
