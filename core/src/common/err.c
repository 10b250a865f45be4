/* err.c: sx__err_set, how every layer reports a failure (common.h). */
#include <stdarg.h>
#include <stdio.h>

#include "common/common.h"

int sx__err_set(sx_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}
