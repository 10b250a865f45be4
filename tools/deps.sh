#!/usr/bin/env bash
# Installs what building and testing Sextant needs, when it is missing: a C/C++
# toolchain, CMake, Ninja, GoogleTest and SQLite's headers (the benchmark's peer);
# with SX_DEPS_FUZZ set, clang and libFuzzer too (the fuzz configuration).
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
# The fuzz configuration only (tools/test.sh fuzz sets SX_DEPS_FUZZ): clang and its
# libFuzzer and sanitizer runtimes. Normal builds use gcc and do not need them.
if [ -n "${SX_DEPS_FUZZ:-}" ]; then
  command -v clang >/dev/null || need+=(clang)
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
    need+=(libclang-rt-14-dev)
fi

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
