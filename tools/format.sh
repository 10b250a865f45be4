#!/usr/bin/env bash
# The C and C++ sources formatted by the checked-in .clang-format (clang-format from
# Debian's packages, installed when missing).
#   tools/format.sh          reformats them in place
#   tools/format.sh --check  changes nothing; fails naming every file that differs
# Generated code (the SWIG output under bindings/) and third-party headers are not ours
# to format and are left out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v clang-format >/dev/null; then
  echo "format.sh: installing clang-format (apt-get)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq clang-format >/dev/null
fi
mapfile -t files < <(git ls-files -- 'core/*.[ch]' 'cli/*.[ch]' 'tests/*.[ch]' 'tests/*.cc' 'tests/*.hh' \
  'conformance/*.cc' 'bench/*.[ch]' 'bench/*.cc' 'examples/*.[ch]')
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --style=file "$f" | cmp -s - "$f" || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    printf 'format.sh: not formatted by .clang-format (run tools/format.sh):\n' >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files formatted"
else
  clang-format --style=file -i "${files[@]}"
fi
