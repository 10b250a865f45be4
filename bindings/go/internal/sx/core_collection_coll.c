/* Compiles core/src/collection/coll.c into the Go package (cgo builds every .c file here). */
#include "collection/coll.c"
