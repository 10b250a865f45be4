/* Compiles core/src/os/par.c into the Go package (cgo builds every .c file here). */
#include "os/par.c"
