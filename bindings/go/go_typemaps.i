/*
 * go_typemaps.i: the Go half of bindings/sextant.i (included from there).
 *
 * Generated with (see bindings/go/internal/sx/generate.sh, checked by TestGeneratedInSync):
 *   swig -go -cgo -intgosize 64 -package sx -I bindings -I core/include \
 *        -outdir bindings/go/internal/sx -o bindings/go/internal/sx/sextant_wrap.c bindings/sextant.i
 *
 * The package this produces, bindings/go/internal/sx, is private to the module: the
 * package sextant (bindings/go) is its only caller, and checks lengths, NUL bytes and
 * handle states before calling. Go's SWIG module returns one value per function and
 * runs Go code after the C call returns, so, unlike Python, nothing is raised from a
 * typemap here: every status-returning function returns its sx_status as an int, and
 * its outputs go through pointers the Go caller passes (Go memory that C writes during
 * the call and never keeps, as the cgo pointer rules require).
 *
 * Conventions
 * - `sx_error *err` takes a Go `*Errbuf` (the layout of sx_error); nil means "no
 *   details", and C then gets a local buffer.
 * - `T **out` handle outputs take a Go `*uintptr` that receives the C pointer; the Go
 *   layer wraps it as the handle type (SwigcptrSx_db(p), ...) and owns it.
 * - Scalar outputs take `*uint64` (uint64_t, size_t) or `*int32` (sx_metric).
 * - Struct outputs (sx_db_stats, sx_collection_info, sx_collection_stats) take the
 *   SWIG-wrapped struct, allocated by the Go caller, who sets its version field.
 * - Arrays in are Go slices passed without copying: `[]float32` for vectors and
 *   queries, `[]byte` for packed ids and metadata, `[]uint64` for their offsets. A nil
 *   or empty slice is a valid empty array (C gets a non-NULL pointer), except for the
 *   optional metadata buffers, where nil means NULL (no metadata).
 * - Option structs read per call (search, write) take small Go structs declared in
 *   internal/sx/types.go (SearchOpts, WriteOpts): C copies them into the real,
 *   versioned sx_*_options on its stack, so a search costs no extra allocation or
 *   crossing. nil means NULL (defaults).
 *
 * Hand-written additions (documented in bindings/go/README.md): sx_go_results_take,
 * sx_go_results_shape, sx_go_results_copy, sx_go_records_shape, sx_go_records_copy and
 * sx_go_record_vector, which copy results and records into Go slices in a constant
 * number of crossings, and sx_go_bench_search for the benchmarks.
 */

%{
#include <math.h>
#include <time.h>

/* The Go mirror of the per-call option structs (internal/sx/types.go). */
typedef struct sx_go_search_opts {
  uint32_t ef;
  uint32_t threads;
  uintptr_t cancel_token;
} sx_go_search_opts;

typedef struct sx_go_write_opts {
  int32_t timeout_ms;
  int32_t pad;
  uintptr_t cancel_token;
} sx_go_write_opts;

typedef struct sx_go_backup_opts {
  int32_t overwrite;
  int32_t pad;
  uintptr_t cancel_token;
} sx_go_backup_opts;

/* A non-NULL pointer for an empty Go slice: the core treats NULL as a missing argument. */
static const char sx_go_nothing[8] = {0};
%}

/* ---- strings out ------------------------------------------------------------------ */

/* As SWIG's swigCopyString (copy the C-allocated bytes of a returned string into Go
 * memory, free them), written so that go vet's unsafeptr check passes: the data
 * pointer is read as an unsafe.Pointer, never made from a uintptr. */
%fragment("SxCopyString", "go_runtime") %{
func sxCopyString(s string) string {
	p := *(*unsafe.Pointer)(unsafe.Pointer(&s))
	r := string(unsafe.Slice((*byte)(p), len(s)))
	Swig_free(uintptr(p))
	return r
}
%}
%typemap(goout, fragment="SxCopyString") char *, const char *, char[ANY], char[] %{ $result = sxCopyString($1) %}

/* ---- statuses -------------------------------------------------------------------- */

/* Whatever names the shared file gives its status patterns, a status is an int in Go. */
%typemap(gotype) int SX_STATUS, int SX_STATUS_NOERR, sx_status SX_STATUS, sx_status SX_STATUS_NOERR "int"
%typemap(out) int SX_STATUS, int SX_STATUS_NOERR, sx_status SX_STATUS, sx_status SX_STATUS_NOERR
  "$result = (intgo)$1;"
%typemap(goout) int SX_STATUS, int SX_STATUS_NOERR, sx_status SX_STATUS, sx_status SX_STATUS_NOERR ""

/* ---- errors ------------------------------------------------------------------------ */

%typemap(gotype) sx_error *err "*Errbuf"
%typemap(in) sx_error *err (sx_error sx_errbuf) {
  $1 = $input ? (sx_error *)$input : &sx_errbuf;
  $1->code = 0;
  $1->message[0] = '\0';
}
%typemap(argout) sx_error *err ""

/* ---- handle outputs -------------------------------------------------------------------- */

%define SX_GO_HANDLE_OUTS
  sx_db **out, sx_read **out, sx_write **out, sx_collection **out, sx_names **out,
  sx_record **out, sx_results **out, sx_cancel **out, sx_records **out, sx_cursor **out
%enddef
%typemap(gotype) SX_GO_HANDLE_OUTS "*uintptr"
%typemap(in) SX_GO_HANDLE_OUTS {
  $1 = ($1_ltype)$input;
  if ($1) *$1 = NULL;
}
%typemap(argout) SX_GO_HANDLE_OUTS ""

/* ---- scalar outputs -------------------------------------------------------------------- */

%typemap(gotype) uint64_t *out, size_t *deleted "*uint64"
%typemap(in) uint64_t *out, size_t *deleted {
  $1 = ($1_ltype)$input;
  if ($1) *$1 = 0;
}
%typemap(argout) uint64_t *out, size_t *deleted ""
%typemap(gotype) sx_metric *out "*int32"
%typemap(in) sx_metric *out {
  $1 = ($1_ltype)$input;
}
%typemap(argout) sx_metric *out ""

/* ---- struct outputs: the wrapped struct, as any pointer ---------------------------------- */

%typemap(in) sx_db_stats *out = SWIGTYPE *;
%typemap(in) sx_collection_info *out = SWIGTYPE *;
%typemap(in) sx_collection_stats *out = SWIGTYPE *;
%typemap(in) sx_space_stats *out = SWIGTYPE *;
%typemap(argout) sx_db_stats *out, sx_collection_info *out, sx_collection_stats *out,
                 sx_space_stats *out ""

/* ---- slices in -------------------------------------------------------------------------- */

%define SX_GO_SLICE(CDECL, GOTYPE, NULLABLE)
%typemap(gotype) CDECL GOTYPE
%typemap(in) CDECL {
  if ($input.array && $input.len > 0) $1 = ($1_ltype)$input.array;
  else $1 = NULLABLE ? NULL : ($1_ltype)(const void *)sx_go_nothing;
}
/* Go owns the memory: no free (SWIG's char * typemaps would free a copy). */
%typemap(freearg) CDECL ""
%enddef

SX_GO_SLICE(const float *query, "[]float32", 0)
SX_GO_SLICE(const float *queries, "[]float32", 0)
SX_GO_SLICE(const float *vectors, "[]float32", 0)
SX_GO_SLICE(const char *ids, "[]byte", 0)
SX_GO_SLICE(const size_t *id_offsets, "[]uint64", 0)
SX_GO_SLICE(const char *metadata, "[]byte", $input.array == NULL)
SX_GO_SLICE(const size_t *metadata_offsets, "[]uint64", $input.array == NULL)

/* The helpers' outputs: a Go slice gives a pointer and its length. */
%define SX_GO_OUT_SLICE(PTR, LEN, GOTYPE)
%typemap(gotype) (PTR, LEN) GOTYPE
%typemap(in) (PTR, LEN) {
  $1 = ($1_ltype)$input.array;
  $2 = $1 ? (size_t)$input.len : 0;
}
%typemap(freearg) (PTR, LEN) ""
%enddef
SX_GO_OUT_SLICE(float *go_f32, size_t go_f32_len, "[]float32")
SX_GO_OUT_SLICE(uint64_t *go_u64, size_t go_u64_len, "[]uint64")
SX_GO_OUT_SLICE(uint64_t *go_u64b, size_t go_u64b_len, "[]uint64")
SX_GO_OUT_SLICE(char *go_bytes, size_t go_bytes_len, "[]byte")
SX_GO_OUT_SLICE(unsigned char *go_found, size_t go_found_len, "[]byte")
SX_GO_OUT_SLICE(uint64_t *go_idoff, size_t go_idoff_len, "[]uint64")
SX_GO_OUT_SLICE(char *go_ids, size_t go_ids_len, "[]byte")
SX_GO_OUT_SLICE(uint64_t *go_metaoff, size_t go_metaoff_len, "[]uint64")
SX_GO_OUT_SLICE(char *go_meta, size_t go_meta_len, "[]byte")

/* Search with one query: the slice gives both the pointer and the dimension. */
%typemap(gotype) (const float *query, size_t dim) "[]float32"
%typemap(in) (const float *query, size_t dim) {
  $1 = ($1_ltype)($input.array && $input.len > 0 ? $input.array : (const void *)sx_go_nothing);
  $2 = (size_t)$input.len;
}

/* ---- per-call options ---------------------------------------------------------------------- */

%typemap(gotype) const sx_search_options *opts "*SearchOpts"
%typemap(in) const sx_search_options *opts (sx_search_options sx_opts) {
  if ($input) {
    const sx_go_search_opts *g = (const sx_go_search_opts *)$input;
    sx_search_options_init(&sx_opts, SX_SEARCH_OPTIONS_VERSION);
    sx_opts.ef = g->ef;
    sx_opts.threads = g->threads;
    sx_opts.cancel_token = (sx_cancel *)g->cancel_token;
    $1 = &sx_opts;
  } else {
    $1 = NULL;
  }
}

%typemap(gotype) const sx_write_options *opts "*WriteOpts"
%typemap(in) const sx_write_options *opts (sx_write_options sx_opts) {
  if ($input) {
    const sx_go_write_opts *g = (const sx_go_write_opts *)$input;
    sx_write_options_init(&sx_opts, SX_WRITE_OPTIONS_VERSION);
    sx_opts.timeout_ms = g->timeout_ms;
    sx_opts.cancel_token = (sx_cancel *)g->cancel_token;
    $1 = &sx_opts;
  } else {
    $1 = NULL;
  }
}

%typemap(gotype) const sx_backup_options *opts "*BackupOpts"
%typemap(in) const sx_backup_options *opts (sx_backup_options sx_opts) {
  if ($input) {
    const sx_go_backup_opts *g = (const sx_go_backup_opts *)$input;
    sx_backup_options_init(&sx_opts, SX_BACKUP_OPTIONS_VERSION);
    sx_opts.overwrite = g->overwrite;
    sx_opts.cancel_token = (sx_cancel *)g->cancel_token;
    $1 = &sx_opts;
  } else {
    $1 = NULL;
  }
}
%typemap(gotype) const sx_compact_options *opts "*WriteOpts"
%typemap(in) const sx_compact_options *opts (sx_compact_options sx_opts) {
  if ($input) {
    const sx_go_write_opts *g = (const sx_go_write_opts *)$input;
    sx_compact_options_init(&sx_opts, SX_COMPACT_OPTIONS_VERSION);
    sx_opts.timeout_ms = g->timeout_ms;
    sx_opts.cancel_token = (sx_cancel *)g->cancel_token;
    $1 = &sx_opts;
  } else {
    $1 = NULL;
  }
}

/* Progress callbacks would call into Go from the core: not offered (yet). */
%ignore sx_backup_options::progress;
%ignore sx_backup_options::progress_ctx;
%ignore sx_compact_options::progress;
%ignore sx_compact_options::progress_ctx;

/* The cancel hook is for C callers: Go uses cancel tokens (no callback per poll). */
%ignore sx_search_options::cancel;
%ignore sx_search_options::cancel_ctx;

/* The char* arrays of sx_write_upsert and sx_write_delete would need one C string per
 * id; Go uses the packed forms, which take one buffer. */
%ignore sx_write_upsert;
%ignore sx_write_delete;
%ignore sx_collection_get_batch;
/* Raw pointers into results and records: copied out by the helpers below instead. */
%ignore sx_results_offsets;
%ignore sx_results_distances;
%ignore sx_results_id_data;
%ignore sx_record_vector;
%ignore sx_records_vector;
%ignore sx_records_vectors;
%ignore sx_records_found_data;
%ignore sx_records_id_data;
%ignore sx_records_metadata_data;

/* ---- hand-written helpers: copying results into Go slices ----------------------------------- */

%inline %{
/* The shape of search results, in go_u64 (at least 3): queries, total hits, and the
 * bytes of all ids (without NULs). */
void sx_go_results_shape(const sx_results *res, uint64_t *go_u64, size_t go_u64_len) {
  if (go_u64_len < 3) return;
  size_t total = sx_results_total(res);
  const size_t *idoff = NULL;
  (void)sx_results_id_data(res, &idoff);
  go_u64[0] = sx_results_queries(res);
  go_u64[1] = total;
  go_u64[2] = idoff ? idoff[total] : 0;
}

/* Copies results into Go slices sized from sx_go_results_shape: go_u64 the nq + 1 hit
 * offsets, go_f32 the distances, go_u64b the total + 1 id offsets, go_bytes the ids.
 * Returns 0, or -1 when a slice is too short (nothing is copied then). */
int sx_go_results_copy(const sx_results *res, uint64_t *go_u64, size_t go_u64_len, float *go_f32,
                       size_t go_f32_len, uint64_t *go_u64b, size_t go_u64b_len, char *go_bytes,
                       size_t go_bytes_len) {
  size_t nq = sx_results_queries(res), total = sx_results_total(res);
  const size_t *idoff = NULL;
  const char *ids = sx_results_id_data(res, &idoff);
  const size_t *off = sx_results_offsets(res);
  const float *dist = sx_results_distances(res);
  size_t idbytes = idoff ? idoff[total] : 0;
  if (!res || !off || !idoff || go_u64_len < nq + 1 || go_f32_len < total ||
      go_u64b_len < total + 1 || go_bytes_len < idbytes)
    return -1;
  for (size_t i = 0; i <= nq; i++) go_u64[i] = off[i];
  if (total) memcpy(go_f32, dist, total * sizeof(float));
  for (size_t i = 0; i <= total; i++) go_u64b[i] = idoff[i];
  if (idbytes) memcpy(go_bytes, ids, idbytes);
  return 0;
}

/* One crossing for the usual case: fills go_u64 (at least 3) with the shape as
 * sx_go_results_shape does, and when the other slices are large enough copies the
 * results into them as sx_go_results_copy does, frees the results and returns 0.
 * Otherwise returns 1 and leaves the results untouched (the caller sizes slices from
 * the shape, copies, and frees them); -1 for NULL. */
int sx_go_results_take(sx_results *res, uint64_t *go_u64, size_t go_u64_len, float *go_f32,
                       size_t go_f32_len, uint64_t *go_u64b, size_t go_u64b_len, char *go_bytes,
                       size_t go_bytes_len) {
  if (!res || go_u64_len < 3) return -1;
  sx_go_results_shape(res, go_u64, 3);
  size_t nq = (size_t)go_u64[0], total = (size_t)go_u64[1];
  /* The caller's offsets slice holds nq + 1 query offsets after the shape. */
  if (go_u64_len < 3 + nq + 1) return 1;
  if (sx_go_results_copy(res, go_u64 + 3, go_u64_len - 3, go_f32, go_f32_len, go_u64b, go_u64b_len,
                         go_bytes, go_bytes_len) != 0 || total > go_f32_len)
    return 1;
  sx_results_free(res);
  return 0;
}

/* The shape of a batch of records, in go_u64 (at least 4): count, dim, and the bytes
 * of the id and metadata buffers (NULs included). */
void sx_go_records_shape(const sx_records *recs, uint64_t *go_u64, size_t go_u64_len) {
  if (go_u64_len < 4) return;
  size_t n = sx_records_count(recs);
  const size_t *io = NULL, *mo = NULL;
  (void)sx_records_id_data(recs, &io);
  (void)sx_records_metadata_data(recs, &mo);
  go_u64[0] = n;
  go_u64[1] = sx_records_dim(recs);
  go_u64[2] = io ? io[n] : 0;
  go_u64[3] = mo ? mo[n] : 0;
}

/* Copies a batch of records into Go slices sized from sx_go_records_shape: the vectors
 * (count * dim), the found flags (count), the id offsets (count + 1) and bytes, the
 * metadata offsets (count + 1) and bytes. Returns 0, or -1 when a slice is too short. */
int sx_go_records_copy(const sx_records *recs, float *go_f32, size_t go_f32_len,
                       unsigned char *go_found, size_t go_found_len, uint64_t *go_idoff,
                       size_t go_idoff_len, char *go_ids, size_t go_ids_len, uint64_t *go_metaoff,
                       size_t go_metaoff_len, char *go_meta, size_t go_meta_len) {
  size_t n = sx_records_count(recs), dim = sx_records_dim(recs);
  const size_t *io = NULL, *mo = NULL;
  const char *ids = sx_records_id_data(recs, &io);
  const char *meta = sx_records_metadata_data(recs, &mo);
  const float *vec = sx_records_vectors(recs);
  const unsigned char *found = sx_records_found_data(recs);
  if (!recs || !io || !mo || go_f32_len < n * dim || go_found_len < n || go_idoff_len < n + 1 ||
      go_ids_len < io[n] || go_metaoff_len < n + 1 || go_meta_len < mo[n])
    return -1;
  if (n && dim && vec) memcpy(go_f32, vec, n * dim * sizeof(float));
  if (n && found) memcpy(go_found, found, n);
  for (size_t i = 0; i <= n; i++) go_idoff[i] = io[i];
  for (size_t i = 0; i <= n; i++) go_metaoff[i] = mo[i];
  if (io[n]) memcpy(go_ids, ids, io[n]);
  if (mo[n]) memcpy(go_meta, meta, mo[n]);
  return 0;
}

/* sx_collection_search and sx_go_results_take in one crossing: the search's status;
 * on SX_OK, *out is NULL when the hits were copied into the slices (and the results
 * freed), else the results, for the caller to copy out and free. */
sx_status sx_go_search(sx_collection *c, const float *query, size_t dim, size_t k,
                       const sx_search_options *opts, sx_results **out, sx_error *err,
                       uint64_t *go_u64, size_t go_u64_len, float *go_f32, size_t go_f32_len,
                       uint64_t *go_u64b, size_t go_u64b_len, char *go_bytes, size_t go_bytes_len) {
  sx_status st = sx_collection_search(c, query, dim, k, opts, out, err);
  if (st == SX_OK && sx_go_results_take(*out, go_u64, go_u64_len, go_f32, go_f32_len, go_u64b,
                                        go_u64b_len, go_bytes, go_bytes_len) == 0)
    *out = NULL;
  return st;
}

/* A record's vector: its dimension, and as much of it as fits copied into go_f32. */
size_t sx_go_record_vector(const sx_record *rec, float *go_f32, size_t go_f32_len) {
  size_t dim = 0;
  const float *v = sx_record_vector(rec, &dim);
  if (v && go_f32_len >= dim && dim) memcpy(go_f32, v, dim * sizeof(float));
  return v ? dim : 0;
}

/* For the benchmarks: `iterations` calls of sx_collection_search (k hits, results
 * freed, default options), cycling through the nq queries, in a C loop; the mean
 * seconds per call, or -1 when a call fails. The floor under which no binding can go. */
double sx_go_bench_search(sx_collection *c, const float *queries, size_t nq, size_t dim, size_t k,
                          long iterations) {
  struct timespec t0, t1;
  int rc = 0;
  if (nq == 0) return -1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iterations && !rc; i++) {
    sx_results *res = NULL;
    rc = sx_collection_search(c, queries + (size_t)i % nq * dim, dim, k, NULL, &res, NULL);
    sx_results_free(res);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc || iterations <= 0) return -1;
  return ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9) / (double)iterations;
}
%}
