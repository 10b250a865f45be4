/* Compiles core/src/os/os.c into the Go package (cgo builds every .c file here). */
#include "os/os.c"
