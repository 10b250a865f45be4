#!/bin/sh
# Installs the build in $1 into a scratch prefix, then builds and runs a program
# against the installed library the way a system user would: pkg-config for the
# flags, the shared library found by its SONAME.
set -eu
build=$1
prefix=$(mktemp -d "${TMPDIR:-/tmp}/sx-install-XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion sextant)" = "$(sed -n 's/^project(sextant VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../CMakeLists.txt")" ]
soname=$(readelf -d "$libdir/libsextant.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libsextant.so.0" ] || { echo "unexpected SONAME '$soname'" >&2; exit 1; }
[ -f "$prefix/include/sextant.h" ]
cat > "$prefix/use.c" <<'C'
#include <sextant.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  sx_db *db = NULL;
  sx_error err = SX_ERROR_INIT;
  if (sx_db_open(&db, argv[1], NULL, &err) != SX_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
  sx_db_stats st = SX_DB_STATS_INIT;
  if (sx_db_stats_get(db, &st, &err) != SX_OK || st.page_size != 4096) return 2;
  sx_db_free(db);
  printf("%s\n", sx_version());
  return argc == 2 ? 0 : 3;
}
C
# shellcheck disable=SC2046
cc -o "$prefix/use" "$prefix/use.c" $(pkg-config --cflags --libs sextant) -Wl,-rpath,"$libdir"
out=$("$prefix/use" "$prefix/t.sx")
[ "$out" = "$(pkg-config --modversion sextant)" ] || { echo "version '$out'" >&2; exit 1; }
echo "installed library, header and pkg-config file work (SONAME $soname)"
