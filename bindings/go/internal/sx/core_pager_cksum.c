/* Compiles core/src/pager/cksum.c into the Go package (cgo builds every .c file here). */
#include "pager/cksum.c"
