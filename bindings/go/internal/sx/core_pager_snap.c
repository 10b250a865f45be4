/* Compiles core/src/pager/snap.c into the Go package (cgo builds every .c file here). */
#include "pager/snap.c"
