/* Compiles core/src/session/user_version.c into the Go package (cgo builds every .c file here). */
#include "session/user_version.c"
