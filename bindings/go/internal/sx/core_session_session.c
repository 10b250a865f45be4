/* Compiles core/src/session/session.c into the Go package (cgo builds every .c file here). */
#include "session/session.c"
