/* Compiles core/src/collection/results.c into the Go package (cgo builds every .c file here). */
#include "collection/results.c"
