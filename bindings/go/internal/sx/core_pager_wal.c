/* Compiles core/src/pager/wal.c into the Go package (cgo builds every .c file here). */
#include "pager/wal.c"
