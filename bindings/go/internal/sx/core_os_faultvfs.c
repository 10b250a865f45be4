/* Compiles core/src/os/faultvfs.c into the Go package (cgo builds every .c file here). */
#include "os/faultvfs.c"
