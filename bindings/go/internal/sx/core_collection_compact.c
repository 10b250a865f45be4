/* Compiles core/src/collection/compact.c into the Go package (cgo builds every .c file here). */
#include "collection/compact.c"
