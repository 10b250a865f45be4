/* Compiles core/src/index/kernels_avx512.c into the Go package (cgo builds every .c file here). */
#include "index/kernels_avx512.c"
