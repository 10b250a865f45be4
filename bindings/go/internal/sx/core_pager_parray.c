/* Compiles core/src/pager/parray.c into the Go package (cgo builds every .c file here). */
#include "pager/parray.c"
