/* Compiles core/src/pager/check.c into the Go package (cgo builds every .c file here). */
#include "pager/check.c"
