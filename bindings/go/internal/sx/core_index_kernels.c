/* Compiles core/src/index/kernels.c into the Go package (cgo builds every .c file here). */
#include "index/kernels.c"
