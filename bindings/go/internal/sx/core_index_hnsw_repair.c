/* Compiles core/src/index/hnsw_repair.c into the Go package (cgo builds every .c file here). */
#include "index/hnsw_repair.c"
