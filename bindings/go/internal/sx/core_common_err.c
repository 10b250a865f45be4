/* Compiles core/src/common/err.c into the Go package (cgo builds every .c file here). */
#include "common/err.c"
