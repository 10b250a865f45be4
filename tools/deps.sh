#!/usr/bin/env bash
# Installs what building and testing Sextant needs, when it is missing: a C/C++
# toolchain, CMake, Ninja, GoogleTest and SQLite's headers (the benchmark's peer).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need=()
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
[ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
[ -f /usr/include/jansson.h ] || need+=(libjansson-dev)
[ -f /usr/include/jsmn.h ] || need+=(libjsmn-dev)  # header-only JSON tokenizer (filters)
command -v pkg-config >/dev/null || need+=(pkg-config)

if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The conformance schema check validates case files with the jsonschema package.
if ! python3 -c "import jsonschema" 2>/dev/null; then
  echo "deps: installing jsonschema (PyPI)"
  python3 -m pip install --quiet jsonschema
fi
