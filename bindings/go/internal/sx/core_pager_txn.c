/* Compiles core/src/pager/txn.c into the Go package (cgo builds every .c file here). */
#include "pager/txn.c"
