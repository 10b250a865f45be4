/* Compiles core/src/pager/pager.c into the Go package (cgo builds every .c file here). */
#include "pager/pager.c"
