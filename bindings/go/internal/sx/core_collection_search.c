/* Compiles core/src/collection/search.c into the Go package (cgo builds every .c file here). */
#include "collection/search.c"
