/* Compiles core/src/collection/records.c into the Go package (cgo builds every .c file here). */
#include "collection/records.c"
