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
 * - Opaque handles (sx_db, sx_read, sx_write, sx_collection, sx_cancel, and the result
 *   holders sx_names, sx_record, sx_results) become classes whose destructor is the C free
 *   function, so a garbage collector may drop them in any order, on any thread
 *   (the C API allows exactly that). Handles are never constructed by the binding.
 * - `T **out` parameters are outputs: the call takes no argument for them; the
 *   language file turns the filled pointer into a return value (owning the handle).
 *   Scalar and struct out-parameters (`uint64_t *out`, `size_t *deleted`,
 *   `sx_metric *out`, `sx_quantization *out`, `sx_sync *out`, `sx_index_type *out`,
 *   `sx_db_stats *out`, `sx_collection_info *out`, `sx_collection_stats *out`) likewise.
 * - `sx_error *err` takes no argument: a local error buffer is passed, and when the
 *   call returns a status other than SX_OK, the language file raises / throws /
 *   returns an error carrying sx_status_name(status) and the buffer's message.
 * - Status results: a function whose C return type is sx_status (every fallible one;
 *   the type, not a list of names, says so) yields "no value" (or its out-parameters)
 *   on SX_OK and an error otherwise. Those without an sx_error (sx_db_close,
 *   sx_read_end, sx_write_abort, the *_options_init functions) have no message: the
 *   language file uses a plain-language default for the status.
 * - Arrays in: ids `(size_t n, const char *const *ids)`, one query
 *   `(const float *query, size_t dim)`, a batch `(const float *queries, size_t nq,
 *   size_t dim)`, and the upsert batch `(size_t n, const char *const *ids, const
 *   float *vectors, size_t dim, const char *const *metadata)` (one argument, so that
 *   the language file can check that the counts agree before C reads anything).
 *   The packed forms pass ids (and metadata) as one buffer plus n + 1 offsets:
 *   `(size_t n, const char *ids, const size_t *id_offsets, ...)`; a language file
 *   that packs its native arrays itself maps those (Go, Node) or ignores the packed
 *   functions (Python, whose array typemaps serve the plain forms).
 *   These patterns are matched by their exact C parameter names; each language
 *   file maps them to its native arrays.
 * - Output structs (sx_db_stats, sx_collection_info, sx_collection_stats) are
 *   versioned: the out-parameter typemap below sets `version` before the call.
 *
 * What a language file (<lang>/<lang>_typemaps.i) provides, for these patterns:
 *   %typemap(out) sx_status (and whatever else it needs   the status results
 *     for the functions without an sx_error)
 *   %typemap(argout) sx_error *err                       the error, from `result`
 *                                                        (SWIG's name for the C
 *                                                        return value) and $1->message
 *   %typemap(argout) for each out-parameter above
 *   %typemap(in) (and freearg) for the array patterns above, and `const char *`
 *   %typemap(in) const sx_search_options *opts           if it supports the cancel
 *                                                        hook (a C trampoline)
 * and may %ignore accessors it does not need (python: sx_names_*, sx_record_*,
 * sx_results_*, whose contents its argouts copy out at once). It may also override
 * any typemap of this file (it is included after them). Every function of sextant.h
 * must be either wrapped or %ignore'd on purpose: each binding has a test that
 * compares its module with the header, so a function added to the C API and
 * forgotten here fails a test instead of silently missing.
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
SX_HANDLE(sx_cancel, sx_cancel_free)

/* ---- out-parameters: the C side (no argument; a local receives the value) ----- */

%typemap(in, numinputs=0)
  sx_db **out (sx_db *sx_tmp), sx_read **out (sx_read *sx_tmp),
  sx_write **out (sx_write *sx_tmp), sx_collection **out (sx_collection *sx_tmp),
  sx_names **out (sx_names *sx_tmp), sx_record **out (sx_record *sx_tmp),
  sx_results **out (sx_results *sx_tmp), sx_cancel **out (sx_cancel *sx_tmp) {
  sx_tmp = NULL;
  $1 = &sx_tmp;
}

%typemap(in, numinputs=0) uint64_t *out (uint64_t sx_tmp), size_t *deleted (size_t sx_tmp),
                          sx_metric *out (sx_metric sx_tmp),
                          sx_quantization *out (sx_quantization sx_tmp),
                          sx_sync *out (sx_sync sx_tmp),
                          sx_index_type *out (sx_index_type sx_tmp) {
  sx_tmp = 0;
  $1 = &sx_tmp;
}

/* Output structs: zeroed, with the version this interface was generated for. */
%typemap(in, numinputs=0) sx_db_stats *out (sx_db_stats sx_tmp) {
  memset(&sx_tmp, 0, sizeof sx_tmp);
  sx_tmp.version = SX_DB_STATS_VERSION;
  $1 = &sx_tmp;
}
%typemap(in, numinputs=0) sx_collection_info *out (sx_collection_info sx_tmp) {
  memset(&sx_tmp, 0, sizeof sx_tmp);
  sx_tmp.version = SX_COLLECTION_INFO_VERSION;
  $1 = &sx_tmp;
}
%typemap(in, numinputs=0) sx_collection_stats *out (sx_collection_stats sx_tmp) {
  memset(&sx_tmp, 0, sizeof sx_tmp);
  sx_tmp.version = SX_COLLECTION_STATS_VERSION;
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
%ignore sx_cancel_free;

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

/* ---- the API -------------------------------------------------------------------- */

%include <stdint.i>
%include "sextant.h"
