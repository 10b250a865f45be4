/* Compiles core/src/pager/ckpt.c into the Go package (cgo builds every .c file here). */
#include "pager/ckpt.c"
