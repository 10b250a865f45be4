#!/usr/bin/env bash
# Regenerates sextant.go and sextant_wrap.c in this directory from bindings/sextant.i
# (with bindings/go/go_typemaps.i). SWIG: $SWIG, else swig on PATH; it must be the
# version the Python binding uses (4.5.1, from PyPI: pip install swig==4.5.1).
# Usage: generate.sh [output directory]   (default: this directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
out=${1:-$here}
swig=${SWIG:-swig}
want=4.5.1
have=$("$swig" -version | sed -n 's/^SWIG Version //p')
if [ "$have" != "$want" ]; then
  echo "generate.sh: SWIG $want needed, $swig is '$have'" >&2
  exit 2
fi
mkdir -p "$out"
"$swig" -go -cgo -intgosize 64 -package sx \
  -I"$root/bindings" -I"$root/core/include" \
  -outdir "$out" -o "$out/sextant_wrap.c" "$root/bindings/sextant.i"
# gofmt the Go output so that the committed file is what go vet and editors expect.
gofmt -w "$out/sextant.go"
