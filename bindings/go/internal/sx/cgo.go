package sx

// The C core is compiled into this package from the repository's sources (core_*.c
// include them), with the flags of the CMake release build: C11, -O3, NDEBUG, _GNU_SOURCE;
// the SIMD kernels carry their own target attributes and are chosen at run time.

// #cgo CFLAGS: -I${SRCDIR}/../../../../core/include -I${SRCDIR}/../../../../core/src
// #cgo CFLAGS: -std=c11 -O3 -DNDEBUG -D_GNU_SOURCE -Wno-unused-parameter
// #cgo LDFLAGS: -ljansson -lm -lpthread
import "C"
