#!/usr/bin/env bash
# Builds Sextant (installing what is missing) and runs the demo on a database in a
# fresh temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tools/deps.sh"
cmake -S "$root" -B "$root/build/release" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSX_TESTS=OFF -DSX_BENCH=OFF >/dev/null
cmake --build "$root/build/release" --target demo >/dev/null
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$root/build/release/examples/demo" "$dir/demo.sx"
echo "--- and again on the same file: the collection persists, the upserts replace"
"$root/build/release/examples/demo" "$dir/demo.sx"
