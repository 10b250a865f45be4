/* Compiles core/src/session/backup.c into the Go package (cgo builds every .c file here). */
#include "session/backup.c"
