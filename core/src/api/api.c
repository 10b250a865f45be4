/*
 * api.c: the public entry points of sextant.h. Argument checks, versioned options,
 * status names; everything else is delegated to the session layer. Every function
 * here is exported; nothing else is.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "session/session.h"

static const char *const status_names[SX_STATUS_COUNT] = {
    "OK",        "NOT_FOUND", "EXISTS", "INVALID_ARGUMENT", "DIMENSION_MISMATCH",
    "READ_ONLY", "BUSY",      "CLOSED", "MISUSE",           "CORRUPT",
    "IO",        "FULL",      "NOMEM",  "VERSION",          "CANCELLED"};

SX_EXPORT const char *sx_version(void) {
  return "0.1.0";
}
SX_EXPORT int sx_version_number(void) {
  return SX_VERSION_NUMBER;
}
SX_EXPORT int sx_format_version(void) {
  return SX_FORMAT_VERSION;
}

SX_EXPORT const char *sx_status_name(int status) {
  return status >= 0 && status < SX_STATUS_COUNT ? status_names[status] : "UNKNOWN";
}

/* ---- cancel tokens ------------------------------------------------------------- */

SX_EXPORT sx_status sx_cancel_new(sx_cancel **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = calloc(1, sizeof **out);
  return *out ? SX_OK : sx__err_set(err, SX_NOMEM, "out of memory");
}
SX_EXPORT void sx_cancel_set(sx_cancel *c) {
  if (c) __atomic_store_n(&c->set, 1, __ATOMIC_RELAXED);
}
SX_EXPORT void sx_cancel_reset(sx_cancel *c) {
  if (c) __atomic_store_n(&c->set, 0, __ATOMIC_RELAXED);
}
SX_EXPORT int sx_cancel_is_set(const sx_cancel *c) {
  return sx__cancelled(c);
}
SX_EXPORT void sx_cancel_free(sx_cancel *c) {
  free(c);
}

/* ---- database handles -------------------------------------------------------------- */

SX_EXPORT sx_status sx_open_options_init(sx_open_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_OPEN_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_open_options d = SX_OPEN_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
  return SX_OK;
}

SX_EXPORT sx_status sx_db_open(sx_db **out, const char *path, const sx_open_options *opts,
                               sx_error *err) {
  return sx__db_open_vfs(out, path, opts, NULL, err);
}

SX_EXPORT sx_status sx_db_close(sx_db *db) {
  return sx__db_close(db);
}
SX_EXPORT void sx_db_free(sx_db *db) {
  sx__db_free(db);
}
SX_EXPORT const char *sx_db_path(const sx_db *db) {
  return sx__db_path(db);
}

SX_EXPORT sx_status sx_db_checkpoint(sx_db *db, int timeout_ms, sx_error *err) {
  return sx__db_checkpoint(db, timeout_ms, NULL, err);
}

SX_EXPORT sx_status sx_write_options_init(sx_write_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_WRITE_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_write_options d = SX_WRITE_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
  return SX_OK;
}

/* The caller's write options (NULL: the defaults), checked. */
static int write_options(const sx_write_options *opts, sx_write_options *o, sx_error *err) {
  sx_write_options d = SX_WRITE_OPTIONS_INIT;
  *o = d;
  if (!opts) return SX_OK;
  if (opts->version < 1 || opts->version > SX_WRITE_OPTIONS_VERSION)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown write options version %u", opts->version);
  *o = *opts;
  return SX_OK;
}

SX_EXPORT sx_status sx_db_checkpoint_opts(sx_db *db, const sx_write_options *opts, sx_error *err) {
  sx_write_options o;
  int rc = write_options(opts, &o, err);
  return rc ? rc : sx__db_checkpoint(db, o.timeout_ms, o.cancel_token, err);
}

/* Output structs carry the version the caller knows; version 1 is the whole struct
 * of this header, so far. */
#define CHECK_OUT_VERSION(out, current, what)                                                    \
  do {                                                                                           \
    if (!(out)) return sx__err_set(err, SX_INVALID_ARGUMENT, "%s output is NULL", what);         \
    if ((out)->version < 1 || (out)->version > (current))                                        \
      return sx__err_set(err, SX_INVALID_ARGUMENT,                                               \
                         "%s version %u is unknown (set it to %u, or use the INIT macro)", what, \
                         (out)->version, (unsigned)(current));                                   \
  } while (0)

SX_EXPORT sx_status sx_db_stats_get(sx_db *db, sx_db_stats *out, sx_error *err) {
  CHECK_OUT_VERSION(out, SX_DB_STATS_VERSION, "sx_db_stats");
  return sx__db_stats(db, out, err);
}

SX_EXPORT sx_status sx_db_check(sx_db *db, sx_error *err) {
  return sx__db_check(db, err);
}

SX_EXPORT sx_status sx_read_begin(sx_db *db, sx_read **out, sx_error *err) {
  return sx__read_begin(db, out, err);
}

SX_EXPORT sx_status sx_read_end(sx_read *r) {
  return sx__read_end(r);
}
SX_EXPORT void sx_read_free(sx_read *r) {
  sx__read_free(r);
}

SX_EXPORT sx_status sx_read_user_version(sx_read *r, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  return sx__read_user_version(r, out, err);
}

SX_EXPORT sx_status sx_write_begin(sx_db *db, int timeout_ms, sx_write **out, sx_error *err) {
  return sx__write_begin(db, timeout_ms, NULL, out, err);
}

SX_EXPORT sx_status sx_write_begin_opts(sx_db *db, const sx_write_options *opts, sx_write **out,
                                        sx_error *err) {
  if (out) *out = NULL;
  sx_write_options o;
  int rc = write_options(opts, &o, err);
  return rc ? rc : sx__write_begin(db, o.timeout_ms, o.cancel_token, out, err);
}

SX_EXPORT sx_status sx_write_commit(sx_write *w, sx_error *err) {
  return sx__write_commit(w, err);
}
SX_EXPORT sx_status sx_write_abort(sx_write *w) {
  return sx__write_abort(w);
}
SX_EXPORT void sx_write_free(sx_write *w) {
  sx__write_free(w);
}

SX_EXPORT sx_status sx_write_set_user_version(sx_write *w, uint64_t value, sx_error *err) {
  return sx__write_set_user_version(w, value, err);
}

SX_EXPORT sx_status sx_write_user_version(sx_write *w, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  return sx__write_user_version(w, out, err);
}

/* ---- collections --------------------------------------------------------------- */

struct sx_collection {
  sx_read *r; /* exactly one of r, w */
  sx_write *w;
  sx__coll c;
};

/* The names of an enum's values, and the parser behind every sx_*_parse(): `what` and
 * `list` name the enum in the message ("unknown metric 'x' (l2, ip, cosine)"). */
static const char *const metric_names[] = {"l2", "ip", "cosine"};
static const char *const quant_names[] = {"none", "int8"};
static const char *const sync_names[] = {"full", "normal", "off"};
static const char *const index_names[] = {"hnsw", "flat"};

#define COUNT(names) ((int)(sizeof(names) / sizeof *(names)))
#define NAME_OF(names, v) ((v) >= 0 && (v) < COUNT(names) ? (names)[v] : NULL)

/* Sets *out to the index of `name` in names[0..n). */
static sx_status parse_name(const char *const *names, int n, const char *what, const char *list,
                            const char *name, int *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  for (int i = 0; name && i < n; i++) {
    if (strcmp(name, names[i]) == 0) {
      *out = i;
      return SX_OK;
    }
  }
  return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown %s '%.40s' (%s)", what,
                     name ? name : "(null)", list);
}

SX_EXPORT const char *sx_metric_name(int metric) {
  return NAME_OF(metric_names, metric);
}

SX_EXPORT sx_status sx_metric_parse(const char *name, sx_metric *out, sx_error *err) {
  int v = 0;
  sx_status st = parse_name(metric_names, COUNT(metric_names), "metric", "l2, ip, cosine", name,
                            out ? &v : NULL, err);
  if (st == SX_OK) *out = (sx_metric)v;
  return st;
}

SX_EXPORT const char *sx_quantization_name(int quantization) {
  return NAME_OF(quant_names, quantization);
}

SX_EXPORT sx_status sx_quantization_parse(const char *name, sx_quantization *out, sx_error *err) {
  int v = 0;
  sx_status st = parse_name(quant_names, COUNT(quant_names), "quantization", "none, int8", name,
                            out ? &v : NULL, err);
  if (st == SX_OK) *out = (sx_quantization)v;
  return st;
}

SX_EXPORT const char *sx_sync_name(int sync) {
  return NAME_OF(sync_names, sync);
}

SX_EXPORT sx_status sx_sync_parse(const char *name, sx_sync *out, sx_error *err) {
  int v = 0;
  sx_status st = parse_name(sync_names, COUNT(sync_names), "sync level", "full, normal, off", name,
                            out ? &v : NULL, err);
  if (st == SX_OK) *out = (sx_sync)v;
  return st;
}

SX_EXPORT const char *sx_index_type_name(int index) {
  return NAME_OF(index_names, index);
}

SX_EXPORT sx_status sx_index_type_parse(const char *name, sx_index_type *out, sx_error *err) {
  int v = 0;
  sx_status st = parse_name(index_names, COUNT(index_names), "index type", "flat, hnsw", name,
                            out ? &v : NULL, err);
  if (st == SX_OK) *out = (sx_index_type)v;
  return st;
}

/* The bytes of an sx_collection_options of a version (a version 1 struct ends before
 * quantization). */
static size_t coll_options_size(unsigned version) {
  return version == 1 ? offsetof(sx_collection_options, quantization)
                      : sizeof(sx_collection_options);
}

SX_EXPORT sx_status sx_collection_options_init(sx_collection_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_COLLECTION_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_collection_options d = SX_COLLECTION_OPTIONS_INIT;
  d.version = version;
  memcpy(opts, &d, coll_options_size(version));
  return SX_OK;
}

/* Enters w and gives its transaction's page view. */
static int write_view(sx_write *w, sx__pv *v, sx_error *err) {
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  sx__write_pv(w, v);
  if (!v->t) {
    sx__write_leave(w);
    return sx__err_set(err, SX_CLOSED, "write session has ended");
  }
  return SX_OK;
}

SX_EXPORT sx_status sx_write_create_collection(sx_write *w, const char *name,
                                               const sx_collection_options *opts, sx_error *err) {
  /* The caller's options as a current-version struct (the version is checked again
   * with the rest by sx__coll_create). */
  sx_collection_options o = SX_COLLECTION_OPTIONS_INIT;
  if (opts && opts->version >= 1 && opts->version <= SX_COLLECTION_OPTIONS_VERSION) {
    memcpy(&o, opts, coll_options_size(opts->version));
    o.version = SX_COLLECTION_OPTIONS_VERSION;
    opts = &o;
  }
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  rc = sx__coll_create(v.t, name, opts, err);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT sx_status sx_write_drop_collection(sx_write *w, const char *name, sx_error *err) {
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  rc = sx__coll_drop(v.t, name, err);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT sx_status sx_read_list_collections(sx_read *r, sx_names **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  int rc = sx__read_enter(r, err);
  if (rc) return rc;
  sx__pv v;
  sx__read_pv(r, &v);
  rc = sx__coll_list(&v, out, err);
  sx__read_leave(r);
  return rc;
}

SX_EXPORT sx_status sx_write_list_collections(sx_write *w, sx_names **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  rc = sx__coll_list(&v, out, err);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT sx_status sx_write_upsert(sx_write *w, const char *collection, size_t n,
                                    const char *const *ids, const float *vectors, size_t dim,
                                    const char *const *metadata, sx_error *err) {
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  sx__coll c;
  rc = sx__coll_open(&v, collection, &c, err);
  if (!rc) rc = sx__coll_upsert(&c, n, ids, vectors, dim, metadata, sx__write_threads(w), err);
  sx__write_leave(w);
  return rc;
}

/* Unpacks n ids (and optional texts) given as one buffer plus n + 1 offsets into
 * NUL-terminated strings: one copy of the bytes and one pointer array for all. */
typedef struct unpacked {
  char *buf;
  const char **ptrs;
} unpacked;

static int unpack(const char *what, size_t n, const char *data, const size_t *off, int allow_empty,
                  unpacked *u, sx_error *err) {
  u->buf = NULL;
  u->ptrs = NULL;
  if (!data || !off)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "%s buffer or offsets are NULL", what);
  for (size_t i = 0; i < n; i++)
    if (off[i + 1] < off[i])
      return sx__err_set(err, SX_INVALID_ARGUMENT,
                         "%s offsets decrease at item %zu (%zu after %zu)", what, i, off[i + 1],
                         off[i]);
  size_t bytes = off[n] - off[0];
  u->buf = malloc(bytes + n + 1);
  u->ptrs = calloc(n ? n : 1, sizeof *u->ptrs);
  if (!u->buf || !u->ptrs) {
    free(u->buf);
    free(u->ptrs);
    return sx__err_set(err, SX_NOMEM, "out of memory unpacking %zu %ss", n, what);
  }
  char *at = u->buf;
  for (size_t i = 0; i < n; i++) {
    size_t len = off[i + 1] - off[i];
    if (memchr(data + off[i], 0, len)) {
      free(u->buf);
      free(u->ptrs);
      return sx__err_set(err, SX_INVALID_ARGUMENT, "%s of item %zu contains a NUL byte", what, i);
    }
    memcpy(at, data + off[i], len);
    at[len] = 0;
    u->ptrs[i] = len == 0 && allow_empty ? NULL : at;
    at += len + 1;
  }
  return SX_OK;
}

static void unpacked_free(unpacked *u) {
  free(u->buf);
  free(u->ptrs);
}

SX_EXPORT sx_status sx_write_upsert_packed(sx_write *w, const char *collection, size_t n,
                                           const char *ids, const size_t *id_offsets,
                                           const float *vectors, size_t dim, const char *metadata,
                                           const size_t *metadata_offsets, sx_error *err) {
  unpacked ui, um = {NULL, NULL};
  int rc = unpack("id", n, ids, id_offsets, 0, &ui, err);
  if (rc) return rc;
  if (metadata || metadata_offsets)
    rc = unpack("metadata", n, metadata, metadata_offsets, 1, &um, err);
  if (!rc) rc = sx_write_upsert(w, collection, n, ui.ptrs, vectors, dim, um.ptrs, err);
  unpacked_free(&ui);
  unpacked_free(&um);
  return rc;
}

SX_EXPORT sx_status sx_write_delete_packed(sx_write *w, const char *collection, size_t n,
                                           const char *ids, const size_t *id_offsets,
                                           size_t *deleted, sx_error *err) {
  if (deleted) *deleted = 0;
  unpacked ui;
  int rc = unpack("id", n, ids, id_offsets, 0, &ui, err);
  if (rc) return rc;
  rc = sx_write_delete(w, collection, n, ui.ptrs, deleted, err);
  unpacked_free(&ui);
  return rc;
}

SX_EXPORT sx_status sx_write_delete(sx_write *w, const char *collection, size_t n,
                                    const char *const *ids, size_t *deleted, sx_error *err) {
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  sx__coll c;
  rc = sx__coll_open(&v, collection, &c, err);
  if (!rc) rc = sx__coll_delete(&c, n, ids, sx__write_threads(w), deleted, err);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT sx_status sx_read_collection(sx_read *r, const char *name, sx_collection **out,
                                       sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  int rc = sx__read_enter(r, err);
  if (rc) return rc;
  sx__pv v;
  sx__read_pv(r, &v);
  sx_collection *c = calloc(1, sizeof *c);
  if (!c) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  if (!rc) rc = sx__coll_open(&v, name, &c->c, err);
  if (!rc) rc = sx__coll_pool_init(&c->c, err);
  if (!rc) {
    c->r = r;
    sx__read_ref(r);
    *out = c;
  } else {
    free(c);
  }
  sx__read_leave(r);
  return rc;
}

SX_EXPORT sx_status sx_write_collection(sx_write *w, const char *name, sx_collection **out,
                                        sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  sx_collection *c = calloc(1, sizeof *c);
  if (!c) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  if (!rc) rc = sx__coll_open(&v, name, &c->c, err);
  if (!rc) {
    c->w = w;
    sx__write_ref(w);
    *out = c;
  } else {
    free(c);
  }
  sx__write_leave(w);
  return rc;
}

SX_EXPORT void sx_collection_free(sx_collection *c) {
  if (!c) return;
  sx__coll_pool_free(&c->c);
  if (c->r) sx__read_unref(c->r);
  if (c->w) sx__write_unref(c->w);
  free(c);
}

/* Enters the view's session; the collection's page view is refreshed from it. */
static int coll_enter(sx_collection *c, sx_error *err) {
  if (!c) return sx__err_set(err, SX_MISUSE, "collection is NULL");
  /* A read view's page view was set when it was opened and never changes (several
   * threads may search through it at once); a write view follows its session. */
  if (c->r) return sx__read_enter(c->r, err);
  sx__pv v;
  int rc = write_view(c->w, &v, err);
  if (rc) return rc;
  c->c.v = v;
  rc = sx__coll_revalidate(&c->c, err);
  if (rc) sx__write_leave(c->w);
  return rc;
}

static void coll_leave(sx_collection *c) {
  if (c->r)
    sx__read_leave(c->r);
  else
    sx__write_leave(c->w);
}

SX_EXPORT sx_status sx_collection_describe(sx_collection *c, sx_collection_info *out,
                                           sx_error *err) {
  CHECK_OUT_VERSION(out, SX_COLLECTION_INFO_VERSION, "sx_collection_info");
  int rc = coll_enter(c, err);
  if (rc) return rc;
  sx_collection_info info;
  rc = sx__coll_describe(&c->c, &info, err);
  coll_leave(c);
  if (!rc) {
    /* A version 1 struct ends before quantization. */
    info.version = out->version;
    memcpy(out, &info,
           out->version == 1 ? offsetof(sx_collection_info, quantization) : sizeof info);
  }
  return rc;
}

SX_EXPORT sx_status sx_collection_stats_get(sx_collection *c, sx_collection_stats *out,
                                            sx_error *err) {
  CHECK_OUT_VERSION(out, SX_COLLECTION_STATS_VERSION, "sx_collection_stats");
  int rc = coll_enter(c, err);
  if (rc) return rc;
  sx_collection_stats st;
  rc = sx__coll_stats(&c->c, &st, err);
  coll_leave(c);
  if (!rc) {
    st.version = out->version;
    *out = st;
  }
  return rc;
}

SX_EXPORT sx_status sx_collection_count(sx_collection *c, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_count(&c->c, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT sx_status sx_collection_get(sx_collection *c, const char *id, sx_record **out,
                                      sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_get(&c->c, id, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT sx_status sx_search_options_init(sx_search_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_SEARCH_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_search_options d = SX_SEARCH_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
  return SX_OK;
}

/* The caller's search options (NULL: the defaults) as a current-version struct. */
static int search_options(const sx_search_options *opts, sx_search_options *o, sx_error *err) {
  sx_search_options d = SX_SEARCH_OPTIONS_INIT;
  *o = d;
  if (!opts) return SX_OK;
  if (opts->version < 1 || opts->version > SX_SEARCH_OPTIONS_VERSION)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown search options version %u",
                       opts->version);
  /* A version 1 struct ends before cancel_token, a version 2 one before filter. */
  memcpy(o, opts,
         opts->version == 1   ? offsetof(sx_search_options, cancel_token)
         : opts->version == 2 ? offsetof(sx_search_options, filter)
                              : sizeof *o);
  o->version = SX_SEARCH_OPTIONS_VERSION;
  if (o->include & ~(SX_INCLUDE_METADATA | SX_INCLUDE_VECTOR))
    return sx__err_set(err, SX_INVALID_ARGUMENT, "include mask 0x%x has unknown bits", o->include);
  if (o->threads > 64)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "threads %u is more than 64", o->threads);
  if (sx__cancelled(o->cancel_token))
    return sx__err_set(err, SX_CANCELLED, "search was cancelled before it began");
  return SX_OK;
}

SX_EXPORT sx_status sx_collection_search(sx_collection *c, const float *query, size_t dim, size_t k,
                                         const sx_search_options *opts, sx_results **out,
                                         sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  sx_search_options o;
  int rc = search_options(opts, &o, err);
  if (rc) return rc;
  rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_search(&c->c, query, 1, dim, k, &o, 1, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT sx_status sx_collection_search_batch(sx_collection *c, const float *queries, size_t nq,
                                               size_t dim, size_t k, const sx_search_options *opts,
                                               sx_results **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  sx_search_options o;
  int rc = search_options(opts, &o, err);
  if (rc) return rc;
  rc = coll_enter(c, err);
  if (rc) return rc;
  int threads = o.threads ? (int)o.threads
                : c->r    ? sx__read_threads(c->r)
                          : sx__write_threads(c->w);
  rc = sx__coll_search(&c->c, queries, nq, dim, k, &o, threads, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT sx_status sx_filter_check(const char *filter, sx_error *err) {
  sx__filter *f = NULL;
  int rc = sx__filter_compile(filter, &f, err);
  sx__filter_free(f);
  return rc;
}

/* ---- batch get and cursors ------------------------------------------------------ */

SX_EXPORT sx_status sx_collection_get_batch(sx_collection *c, size_t n, const char *const *ids,
                                            sx_records **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_get_many(&c->c, n, ids, 0, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT sx_status sx_collection_get_packed(sx_collection *c, size_t n, const char *ids,
                                             const size_t *id_offsets, sx_records **out,
                                             sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  unpacked ui;
  int rc = unpack("id", n, ids, id_offsets, 0, &ui, err);
  if (rc) return rc;
  rc = sx_collection_get_batch(c, n, ui.ptrs, out, err);
  unpacked_free(&ui);
  return rc;
}

struct sx_cursor {
  sx_collection col;   /* its own view of the collection (a session reference, no search pool) */
  sx__idlist ids;      /* the ids to visit, sorted */
  _Atomic size_t next; /* the next of them */
  atomic_bool busy;    /* a call is in sx_cursor_next (a second one at once is MISUSE) */
};

SX_EXPORT sx_status sx_collection_cursor(sx_collection *c, const char *after, sx_cursor **out,
                                         sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  if (after && strlen(after) > SX_ID_MAX)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "cursor start id '%.40s...' is longer than %d bytes", after, SX_ID_MAX);
  int rc = coll_enter(c, err);
  if (rc) return rc;
  sx_cursor *cur = calloc(1, sizeof *cur);
  if (!cur) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  if (!rc) rc = sx__coll_sorted_ids(&c->c, after, &cur->ids, err);
  if (!rc) {
    cur->col.r = c->r;
    cur->col.w = c->w;
    cur->col.c = c->c;
    cur->col.c.pool = NULL;
    if (c->r)
      sx__read_ref(c->r);
    else
      sx__write_ref(c->w);
    *out = cur;
  } else {
    free(cur);
  }
  coll_leave(c);
  return rc;
}

SX_EXPORT sx_status sx_cursor_next(sx_cursor *cur, size_t max, sx_records **out, sx_error *err) {
  if (!cur) return sx__err_set(err, SX_MISUSE, "cursor is NULL");
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  if (max == 0) return sx__err_set(err, SX_INVALID_ARGUMENT, "batch size is 0");
  /* Two calls at once would both advance `next` (past the end: reads out of bounds). */
  if (atomic_exchange(&cur->busy, true))
    return sx__err_set(err, SX_MISUSE,
                       "cursor is in use by another call (use a cursor from one thread at a "
                       "time)");
  int rc = coll_enter(&cur->col, err);
  if (rc) {
    atomic_store(&cur->busy, false);
    return rc;
  }
  /* On a write session every id of a batch may have been deleted since: an empty
   * batch must mean the end, so go on to the next. */
  size_t next = atomic_load_explicit(&cur->next, memory_order_relaxed);
  do {
    size_t m = cur->ids.n - next < max ? cur->ids.n - next : max;
    sx_records_free(*out);
    *out = NULL;
    const char *const *ids = m ? (const char *const *)cur->ids.ptrs + next : NULL;
    rc = sx__coll_get_many(&cur->col.c, m, ids, 1, out, err);
    if (!rc) next += m;
  } while (!rc && sx_records_count(*out) == 0 && next < cur->ids.n);
  atomic_store_explicit(&cur->next, next, memory_order_relaxed);
  coll_leave(&cur->col);
  atomic_store(&cur->busy, false);
  return rc;
}

SX_EXPORT uint64_t sx_cursor_remaining(const sx_cursor *cur) {
  return cur ? cur->ids.n - atomic_load_explicit(&((sx_cursor *)cur)->next, memory_order_relaxed)
             : 0;
}

SX_EXPORT void sx_cursor_free(sx_cursor *cur) {
  if (!cur) return;
  if (cur->col.r) sx__read_unref(cur->col.r);
  if (cur->col.w) sx__write_unref(cur->col.w);
  sx__idlist_free(&cur->ids);
  free(cur);
}

/* ---- online backup ------------------------------------------------------------- */

SX_EXPORT sx_status sx_backup_options_init(sx_backup_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_BACKUP_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_backup_options d = SX_BACKUP_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
  return SX_OK;
}

SX_EXPORT sx_status sx_db_backup(sx_db *db, const char *dest, const sx_backup_options *opts,
                                 sx_error *err) {
  sx_backup_options o = SX_BACKUP_OPTIONS_INIT;
  if (opts) {
    if (opts->version < 1 || opts->version > SX_BACKUP_OPTIONS_VERSION)
      return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown backup options version %u",
                         opts->version);
    o = *opts;
  }
  return sx__db_backup(db, dest, &o, err);
}

/* ---- space accounting and compaction ---------------------------------------------- */

SX_EXPORT sx_status sx_read_space_get(sx_read *r, sx_space_stats *out, sx_error *err) {
  CHECK_OUT_VERSION(out, SX_SPACE_STATS_VERSION, "sx_space_stats");
  sx_space_stats s = SX_SPACE_STATS_INIT;
  int rc = sx__read_space(r, &s, err);
  if (!rc) {
    s.version = out->version;
    *out = s;
  }
  return rc;
}

SX_EXPORT sx_status sx_compact_options_init(sx_compact_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_COMPACT_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_compact_options d = SX_COMPACT_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
  return SX_OK;
}

SX_EXPORT sx_status sx_db_compact(sx_db *db, const sx_compact_options *opts, sx_error *err) {
  sx_compact_options o = SX_COMPACT_OPTIONS_INIT;
  if (opts) {
    if (opts->version < 1 || opts->version > SX_COMPACT_OPTIONS_VERSION)
      return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown compact options version %u",
                         opts->version);
    o = *opts;
  }
  return sx__db_compact(db, &o, err);
}
