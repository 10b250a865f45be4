/* Compiles core/src/collection/json.c into the Go package (cgo builds every .c file here). */
#include "collection/json.c"
