/* Compiles core/src/pager/shm.c into the Go package (cgo builds every .c file here). */
#include "pager/shm.c"
