/* Compiles core/src/index/hnsw.c into the Go package (cgo builds every .c file here). */
#include "index/hnsw.c"
