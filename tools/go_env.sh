# Sourced (with $root set) by every script that builds the Go binding.
# cgo compiles the core through bindings/go/internal/sx/*.c, each of which #includes
# a file of core/src. Go's build cache keys on the package's own files and flags, not
# on what they include (golang/go#24355), so after an edit to the core alone, or in a
# second clone at another commit, `go test` would link a stale build of the core. A
# hash of the core's sources, passed as a -D flag, makes them part of the key.
sx_core_hash=$(cd "$root" && find core/include core/src -name '*.[ch]' | LC_ALL=C sort |
  xargs cat | sha256sum | cut -c1-16)
CGO_CFLAGS=$(printf '%s' "${CGO_CFLAGS:--g -O2}" | sed 's/ -DSX_CORE_SOURCES=[0-9a-f]*//g')
export CGO_CFLAGS="$CGO_CFLAGS -DSX_CORE_SOURCES=$sx_core_hash"
