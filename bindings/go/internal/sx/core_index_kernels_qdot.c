/* Compiles core/src/index/kernels_qdot.c into the Go package (cgo builds every .c file here). */
#include "index/kernels_qdot.c"
