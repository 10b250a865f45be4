/* Compiles core/src/index/hnsw_quant.c into the Go package (cgo builds every .c file here). */
#include "index/hnsw_quant.c"
