/*
 * api: the public surface. This header only carries what the entry points share;
 * the contract itself is core/include/sextant.h.
 */
#ifndef SX_API_H
#define SX_API_H

#include "common/common.h" /* SX_EXPORT */
#include "sextant.h"

#endif
