/* Compiles core/src/lock/lock.c into the Go package (cgo builds every .c file here). */
#include "lock/lock.c"
