#!/usr/bin/env bash
# Builds and tests the Python binding on a machine that has python3 and pip:
#   1. installs what is missing for the build (C/C++ compiler, jansson headers,
#      Python headers, the venv module) with apt-get, as tools/deps.sh does;
#   2. makes (or reuses) a virtual environment in <repo>/build/py-venv;
#   3. pip installs ./bindings/python (scikit-build-core + CMake build the core and
#      the SWIG module; swig and scikit-build-core come from PyPI as build
#      requirements) with its test extras (pytest, mypy);
#   4. runs pytest -v on bindings/python/tests (the conformance suite, threads,
#      processes, fork, misuse, mypy --strict).
# Usage: bindings/python/run_tests.sh [pytest arguments...]
# Environment: PYTHON (default python3), SX_PY_VENV (default <repo>/build/py-venv),
# SX_PY_STRESS_SECONDS (default 10), CONFORMANCE_CASES.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
venv=${SX_PY_VENV:-$root/build/py-venv}

command -v "$python" >/dev/null || { echo "run_tests.sh: $python not found" >&2; exit 2; }
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

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

# -- build dependencies of the core and the extension
need=()
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)  # the repository's CMake project enables C++
echo '#include <jansson.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(libjansson-dev)
echo '#include <jsmn.h>' | cc -E -x c - >/dev/null 2>&1 || need+=(libjsmn-dev)
if ! "$python" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  need+=("python$pyver-dev")
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# -- the virtual environment (Debian's python3 lacks venv/ensurepip without python3-venv)
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    if command -v apt-get >/dev/null && [ "$("$python" -c 'import sys; print(sys.prefix)')" = /usr ]; then
      apt_install "python$pyver-venv"
      "$python" -m venv "$venv"
    else
      echo "run_tests.sh: '$python -m venv' failed; using virtualenv from PyPI"
      "$python" -m pip install --user -q virtualenv
      "$python" -m virtualenv -q "$venv"
    fi
  fi
fi
vpy="$venv/bin/python"
"$vpy" -m pip install -q --upgrade pip

# -- build and install the binding (pip rebuilds a local directory every time)
echo "=== pip install ./bindings/python[test]"
"$vpy" -m pip install -q "$here[test]"

# -- test, from a directory where "import sextant" can only mean the installed package
echo "=== pytest bindings/python/tests"
cd "$here/tests"
exec "$vpy" -m pytest -v -p no:cacheprovider "$@" "$here/tests"
