/*
 * api: the public surface. This header only carries what the entry points share;
 * the contract itself is core/include/sextant.h.
 */
#ifndef SX_API_H
#define SX_API_H

#include "sextant.h"

/* Marks a definition as part of the exported ABI (the library is built with
 * -fvisibility=hidden, so only these symbols leave the shared object). */
#define SX_EXPORT __attribute__((visibility("default")))

#endif
