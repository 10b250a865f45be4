/* Compiles core/src/collection/filter.c into the Go package (cgo builds every .c file here). */
#include "collection/filter.c"
