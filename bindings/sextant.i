/*
 * sextant.i: the one SWIG interface of every Sextant binding.
 *
 *   swig -python -builtin -threads ...   bindings/python (the low-level module)
 *   swig -go -cgo ...                    bindings/go      (to come)
 *   swig -javascript -napi ...           bindings/node    (to come)
 *
 * This file is language-neutral. It says, once, what each C construct of
 * core/include/sextant.h *is*; a per-language file says how that looks in the
 * language. The roles:
 *
 * - Opaque handles (sx_db, sx_read, sx_write, sx_collection, and the result holders
 *   sx_names, sx_record, sx_results) become classes whose destructor is the C free
 *   function, so a garbage collector may drop them in any order, on any thread
 *   (the C API allows exactly that). Handles are never constructed by the binding.
 * - `T **out` parameters are outputs: the call takes no argument for them; the
 *   language file turns the filled pointer into a return value (owning the handle).
 *   Scalar and struct out-parameters (`uint64_t *out`, `size_t *deleted`,
 *   `sx_metric *out`, `sx_db_stats *out`, `sx_collection_info *out`, `sx_collection_stats *out`) likewise.
 * - `sx_error *err` takes no argument: a local error buffer is passed, and when the
 *   call returns a status other than SX_OK, the language file raises / throws /
 *   returns an error carrying sx_status_name(status) and the buffer's message.
 * - Status results: every function listed in SX_STATUS_ERR_FUNCS / _NOERR_FUNCS returns
 *   an ::sx_status; SX_OK yields "no value" (or the out-parameters), anything else an
 *   error. The *_NOERR ones have no sx_error, so the message is the status name's
 *   plain-language default (see the language file).
 * - Arrays in: ids `(size_t n, const char *const *ids)`, one query
 *   `(const float *query, size_t dim)`, a batch `(const float *queries, size_t nq,
 *   size_t dim)`, and the upsert batch `(size_t n, const char *const *ids, const
 *   float *vectors, size_t dim, const char *const *metadata)` (one argument, so that
 *   the language file can check that the counts agree before C reads anything).
 *   These patterns are matched by their exact C parameter names; each language
 *   file maps them to its native arrays.
 *
 * What a language file (<lang>/<lang>_typemaps.i) provides, for these patterns:
 *   %typemap(out) int SX_STATUS, int SX_STATUS_NOERR     the status results
 *   %typemap(argout) sx_error *err                       the error, from `result`
 *                                                        (SWIG's name for the C
 *                                                        return value) and $1->message
 *   %typemap(argout) for each out-parameter above
 *   %typemap(in) (and freearg) for the array patterns above, and `const char *`
 *   %typemap(in) const sx_search_options *opts           if it supports the cancel
 *                                                        hook (a C trampoline)
 * and may %ignore accessors it does not need (python: sx_names_*, sx_record_*,
 * sx_results_*, whose contents its argouts copy out at once).
 *
 * The C code here is plain C that every target compiles, C++ included (-napi): the
 * typemaps keep their state in typemap locals, declared at the top of each wrapper,
 * so no `goto fail` jumps over an initialization. Code that only one language needs
 * lives in its file (python/python_typemaps.i, ...).
 */
%module sextant

%{
#include <stdlib.h>
#include <string.h>
#include "sextant.h"
%}

/* ---- opaque handles --------------------------------------------------------- */

/* SWIG needs a (fake, empty) body to make a class of an incomplete type; the C
 * compiler never sees it. No constructor: handles come only from the C API. */
%define SX_HANDLE(TYPE, FREE)
%nodefaultctor TYPE;
typedef struct TYPE {} TYPE;
%extend TYPE {
  ~TYPE() { FREE($self); }
}
%enddef

SX_HANDLE(sx_db, sx_db_free)
SX_HANDLE(sx_read, sx_read_free)
SX_HANDLE(sx_write, sx_write_free)
SX_HANDLE(sx_collection, sx_collection_free)
SX_HANDLE(sx_names, sx_names_free)
SX_HANDLE(sx_record, sx_record_free)
SX_HANDLE(sx_results, sx_results_free)

/* ---- out-parameters: the C side (no argument; a local receives the value) ----- */

%typemap(in, numinputs=0)
  sx_db **out (sx_db *sx_tmp), sx_read **out (sx_read *sx_tmp),
  sx_write **out (sx_write *sx_tmp), sx_collection **out (sx_collection *sx_tmp),
  sx_names **out (sx_names *sx_tmp), sx_record **out (sx_record *sx_tmp),
  sx_results **out (sx_results *sx_tmp) {
  sx_tmp = NULL;
  $1 = &sx_tmp;
}

%typemap(in, numinputs=0) uint64_t *out (uint64_t sx_tmp), size_t *deleted (size_t sx_tmp),
                          sx_metric *out (sx_metric sx_tmp) {
  sx_tmp = 0;
  $1 = &sx_tmp;
}

%typemap(in, numinputs=0) sx_db_stats *out (sx_db_stats sx_tmp),
                          sx_collection_info *out (sx_collection_info sx_tmp),
                          sx_collection_stats *out (sx_collection_stats sx_tmp) {
  memset(&sx_tmp, 0, sizeof sx_tmp);
  $1 = &sx_tmp;
}

/* ---- errors ------------------------------------------------------------------- */

%typemap(in, numinputs=0) sx_error *err (sx_error sx_errbuf) {
  sx_errbuf.code = 0;
  sx_errbuf.message[0] = '\0';
  $1 = &sx_errbuf;
}
/* The struct itself is never needed by a binding. */
%ignore sx_error;

/* Handles are released by their class's destructor (above); an explicit free next
 * to it would let a program free twice. */
%ignore sx_db_free;
%ignore sx_read_free;
%ignore sx_write_free;
%ignore sx_collection_free;
%ignore sx_names_free;
%ignore sx_record_free;
%ignore sx_results_free;

/* Functions whose int result is an sx_status, with an sx_error last ... */
%define SX_STATUS_ERR_FUNCS
  int sx_db_open, int sx_db_checkpoint, int sx_db_stats_get, int sx_db_check,
  int sx_read_begin, int sx_read_user_version,
  int sx_write_begin, int sx_write_commit, int sx_write_set_user_version,
  int sx_write_user_version, int sx_metric_parse,
  int sx_write_create_collection, int sx_write_drop_collection,
  int sx_read_list_collections, int sx_write_list_collections,
  int sx_write_upsert, int sx_write_delete,
  int sx_read_collection, int sx_write_collection,
  int sx_collection_describe, int sx_collection_count, int sx_collection_stats_get,
  int sx_collection_get,
  int sx_collection_search, int sx_collection_search_batch
%enddef
/* ... and without one. (sx_version_number and sx_format_version return plain ints.) */
%define SX_STATUS_NOERR_FUNCS
  int sx_open_options_init, int sx_collection_options_init,
  int sx_db_close, int sx_read_end, int sx_write_abort
%enddef

/* ---- the language's half -------------------------------------------------------- */

#if defined(SWIGPYTHON)
%include "python/python_typemaps.i"
#elif defined(SWIGGO)
%include "go/go_typemaps.i"
#elif defined(SWIGJAVASCRIPT)
%include "node/node_typemaps.i"
#else
#error "sextant.i: no typemaps for this target language (add <lang>/<lang>_typemaps.i)"
#endif

%apply int SX_STATUS { SX_STATUS_ERR_FUNCS };
%apply int SX_STATUS_NOERR { SX_STATUS_NOERR_FUNCS };

/* ---- the API -------------------------------------------------------------------- */

%include <stdint.i>
%include "sextant.h"
