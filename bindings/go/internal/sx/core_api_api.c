/* Compiles core/src/api/api.c into the Go package (cgo builds every .c file here). */
#include "api/api.c"
