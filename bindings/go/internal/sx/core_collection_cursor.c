/* Compiles core/src/collection/cursor.c into the Go package (cgo builds every .c file here). */
#include "collection/cursor.c"
