#!/usr/bin/env bash
# Regenerates sextant.go and sextant_wrap.c in this directory from bindings/sextant.i
# (with bindings/go/go_typemaps.i). SWIG: $SWIG, else swig on PATH; it must be the
# version the Python binding uses (4.5.1, from PyPI: pip install swig==4.5.1).
# SWIG runs from the repository root with relative paths, so that the output does
# not depend on where the repository is (the drift test regenerates elsewhere).
# Usage: generate.sh [output directory]   (default: this directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
out=$(mkdir -p "${1:-$here}" && cd "${1:-$here}" && pwd)
swig=${SWIG:-swig}
want=4.5.1
have=$("$swig" -version | sed -n 's/^SWIG Version //p')
if [ "$have" != "$want" ]; then
  echo "generate.sh: SWIG $want needed, $swig is '$have'" >&2
  exit 2
fi
cd "$root"
"$swig" -go -cgo -intgosize 64 -package sx -Ibindings -Icore/include \
  -outdir "$out" -o "$out/sextant_wrap.c" bindings/sextant.i
# gofmt the Go output, so that the committed file is what go vet and editors expect.
gofmt -w "$out/sextant.go"
# One core_<layer>_<file>.c per core source (cgo compiles every .c file of the
# package directory; each includes its source), stale ones removed.
rm -f "$out"/core_*.c
for src in core/src/*/*.c; do
  rel=${src#core/src/}
  name=core_$(echo "${rel%.c}" | tr / _).c
  printf '/* Compiles core/src/%s into the Go package (cgo builds every .c file here). */\n#include "%s"\n' \
    "$rel" "$rel" >"$out/$name"
done
