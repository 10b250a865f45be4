/* Compiles core/src/session/compact.c into the Go package (cgo builds every .c file here). */
#include "session/compact.c"
