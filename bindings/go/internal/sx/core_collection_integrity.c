/* Compiles core/src/collection/integrity.c into the Go package (cgo builds every .c file here). */
#include "collection/integrity.c"
