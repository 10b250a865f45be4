/*
 * api.c: the public entry points of sextant.h. Argument checks, versioned options,
 * status names; everything else is delegated to the session layer. Every function
 * here is exported; nothing else is.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "session/session.h"

static const char *const status_names[SX_STATUS_COUNT] = {
    "OK",     "NOT_FOUND", "EXISTS",  "INVALID_ARGUMENT", "DIMENSION_MISMATCH",
    "READ_ONLY", "BUSY",   "CLOSED",  "MISUSE",           "CORRUPT",
    "IO",     "FULL",      "NOMEM",   "VERSION",          "CANCELLED"};

SX_EXPORT const char *sx_version(void) { return "0.1.0"; }
SX_EXPORT int sx_version_number(void) { return SX_VERSION_NUMBER; }
SX_EXPORT int sx_format_version(void) { return SX_FORMAT_VERSION; }

SX_EXPORT const char *sx_status_name(int status) {
  return status >= 0 && status < SX_STATUS_COUNT ? status_names[status] : "UNKNOWN";
}

SX_EXPORT int sx_open_options_init(sx_open_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_OPEN_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_open_options d = SX_OPEN_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
  return SX_OK;
}

SX_EXPORT int sx_db_open(sx_db **out, const char *path, const sx_open_options *opts,
                         sx_error *err) {
  return sx__db_open_vfs(out, path, opts, NULL, err);
}

SX_EXPORT int sx_db_close(sx_db *db) { return sx__db_close(db); }
SX_EXPORT void sx_db_free(sx_db *db) { sx__db_free(db); }
SX_EXPORT const char *sx_db_path(const sx_db *db) { return sx__db_path(db); }

SX_EXPORT int sx_db_checkpoint(sx_db *db, int timeout_ms, sx_error *err) {
  return sx__db_checkpoint(db, timeout_ms, err);
}

SX_EXPORT int sx_db_stats_get(sx_db *db, sx_db_stats *out, sx_error *err) {
  return sx__db_stats(db, out, err);
}

SX_EXPORT int sx_db_check(sx_db *db, sx_error *err) { return sx__db_check(db, err); }

SX_EXPORT int sx_read_begin(sx_db *db, sx_read **out, sx_error *err) {
  return sx__read_begin(db, out, err);
}

SX_EXPORT int sx_read_end(sx_read *r) { return sx__read_end(r); }
SX_EXPORT void sx_read_free(sx_read *r) { sx__read_free(r); }

SX_EXPORT int sx_read_user_version(sx_read *r, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = sx__read_enter(r, err);
  if (rc) return rc;
  const uint8_t *p0;
  rc = sx__read_page(r, 0, &p0, err);
  if (!rc) *out = sx__page0_user_version(p0);
  sx__read_leave(r);
  return rc;
}

SX_EXPORT int sx_write_begin(sx_db *db, int timeout_ms, sx_write **out, sx_error *err) {
  return sx__write_begin(db, timeout_ms, out, err);
}

SX_EXPORT int sx_write_commit(sx_write *w, sx_error *err) { return sx__write_commit(w, err); }
SX_EXPORT int sx_write_abort(sx_write *w) { return sx__write_abort(w); }
SX_EXPORT void sx_write_free(sx_write *w) { sx__write_free(w); }

SX_EXPORT int sx_write_set_user_version(sx_write *w, uint64_t value, sx_error *err) {
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  uint8_t *p0;
  sx__txn *t = sx__write_txn(w);
  rc = t ? sx__txn_write(t, 0, &p0, err) : sx__err_set(err, SX_CLOSED, "write session has ended");
  if (!rc) sx__page0_set_user_version(p0, value);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT int sx_write_user_version(sx_write *w, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  const uint8_t *p0;
  sx__txn *t = sx__write_txn(w);
  rc = t ? sx__txn_read(t, 0, &p0, err) : sx__err_set(err, SX_CLOSED, "write session has ended");
  if (!rc) *out = sx__page0_user_version(p0);
  sx__write_leave(w);
  return rc;
}

/* ---- collections --------------------------------------------------------------- */

struct sx_collection {
  sx_read *r; /* exactly one of r, w */
  sx_write *w;
  sx__coll c;
};

static const char *const metric_names[] = {"l2", "ip", "cosine"};

SX_EXPORT const char *sx_metric_name(int metric) {
  return metric >= 0 && metric <= 2 ? metric_names[metric] : NULL;
}

SX_EXPORT int sx_metric_parse(const char *name, sx_metric *out, sx_error *err) {
  for (int i = 0; name && out && i <= 2; i++) {
    if (strcmp(name, metric_names[i]) == 0) {
      *out = (sx_metric)i;
      return SX_OK;
    }
  }
  return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown metric '%.40s' (l2, ip, cosine)",
                     name ? name : "(null)");
}

SX_EXPORT int sx_collection_options_init(sx_collection_options *opts, unsigned version) {
  if (!opts || version < 1 || version > SX_COLLECTION_OPTIONS_VERSION) return SX_INVALID_ARGUMENT;
  sx_collection_options d = SX_COLLECTION_OPTIONS_INIT;
  *opts = d;
  opts->version = version;
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

SX_EXPORT int sx_write_create_collection(sx_write *w, const char *name,
                                         const sx_collection_options *opts, sx_error *err) {
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  rc = sx__coll_create(v.t, name, opts, err);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT int sx_write_drop_collection(sx_write *w, const char *name, sx_error *err) {
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  rc = sx__coll_drop(v.t, name, err);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT size_t sx_names_count(const sx_names *names) { return names ? names->n : 0; }
SX_EXPORT const char *sx_names_get(const sx_names *names, size_t i) {
  return names && i < names->n ? names->names[i] : NULL;
}
SX_EXPORT void sx_names_free(sx_names *names) { sx__names_free(names); }

SX_EXPORT int sx_read_list_collections(sx_read *r, sx_names **out, sx_error *err) {
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

SX_EXPORT int sx_write_list_collections(sx_write *w, sx_names **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  sx__pv v;
  int rc = write_view(w, &v, err);
  if (rc) return rc;
  rc = sx__coll_list(&v, out, err);
  sx__write_leave(w);
  return rc;
}

SX_EXPORT int sx_write_upsert(sx_write *w, const char *collection, size_t n,
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

SX_EXPORT int sx_write_delete(sx_write *w, const char *collection, size_t n,
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

SX_EXPORT int sx_read_collection(sx_read *r, const char *name, sx_collection **out,
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

SX_EXPORT int sx_write_collection(sx_write *w, const char *name, sx_collection **out,
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
  if (c->r) sx__read_leave(c->r);
  else sx__write_leave(c->w);
}

SX_EXPORT int sx_collection_describe(sx_collection *c, sx_collection_info *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_describe(&c->c, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT int sx_collection_stats_get(sx_collection *c, sx_collection_stats *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_stats(&c->c, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT int sx_collection_count(sx_collection *c, uint64_t *out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_count(&c->c, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT int sx_collection_get(sx_collection *c, const char *id, sx_record **out,
                                sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_get(&c->c, id, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT const char *sx_record_id(const sx_record *rec) { return rec ? rec->id : NULL; }
SX_EXPORT const float *sx_record_vector(const sx_record *rec, size_t *dim) {
  if (dim) *dim = rec ? rec->dim : 0;
  return rec ? rec->vec : NULL;
}
SX_EXPORT const char *sx_record_metadata(const sx_record *rec) { return rec ? rec->meta : NULL; }
SX_EXPORT void sx_record_free(sx_record *rec) { sx__record_free(rec); }


SX_EXPORT int sx_collection_search(sx_collection *c, const float *query, size_t dim, size_t k,
                                   const sx_search_options *opts, sx_results **out,
                                   sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_search(&c->c, query, 1, dim, k, opts, 1, out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT int sx_collection_search_batch(sx_collection *c, const float *queries, size_t nq,
                                         size_t dim, size_t k, const sx_search_options *opts,
                                         sx_results **out, sx_error *err) {
  if (!out) return sx__err_set(err, SX_INVALID_ARGUMENT, "output pointer is NULL");
  *out = NULL;
  int rc = coll_enter(c, err);
  if (rc) return rc;
  rc = sx__coll_search(&c->c, queries, nq, dim, k, opts,
                       c->r ? sx__read_threads(c->r) : sx__write_threads(c->w), out, err);
  coll_leave(c);
  return rc;
}

SX_EXPORT size_t sx_results_queries(const sx_results *res) { return res ? res->nq : 0; }
SX_EXPORT size_t sx_results_count(const sx_results *res, size_t q) {
  return res && q < res->nq ? res->off[q + 1] - res->off[q] : 0;
}
SX_EXPORT const char *sx_results_id(const sx_results *res, size_t q, size_t i) {
  return i < sx_results_count(res, q) ? res->ids[res->off[q] + i] : NULL;
}
SX_EXPORT float sx_results_distance(const sx_results *res, size_t q, size_t i) {
  return i < sx_results_count(res, q) ? res->dist[res->off[q] + i] : NAN;
}
SX_EXPORT void sx_results_free(sx_results *res) { sx__results_free(res); }
