/*
 * results.c: the objects a read hands back (collection names, a record, a batch of
 * records, search results) and their public accessors. The collection layer builds
 * them (coll.c, records.c, cursor.c, search.c); their layouts (results.h) are seen by
 * no other layer. Each is immutable once returned: any number of threads may read it.
 */
#include <math.h>
#include <stdlib.h>

#include "collection/results.h"

SX_EXPORT size_t sx_names_count(const sx_names *names) {
  return names ? names->n : 0;
}

SX_EXPORT const char *sx_names_get(const sx_names *names, size_t i) {
  return names && i < names->n ? names->names[i] : NULL;
}

SX_EXPORT void sx_names_free(sx_names *names) {
  sx__names_free(names);
}

SX_EXPORT const char *sx_record_id(const sx_record *rec) {
  return rec ? rec->id : NULL;
}

SX_EXPORT const float *sx_record_vector(const sx_record *rec, size_t *dim) {
  if (dim) *dim = rec ? rec->dim : 0;
  return rec ? rec->vec : NULL;
}

SX_EXPORT const char *sx_record_metadata(const sx_record *rec) {
  return rec ? rec->meta : NULL;
}

SX_EXPORT void sx_record_free(sx_record *rec) {
  sx__record_free(rec);
}

SX_EXPORT size_t sx_results_queries(const sx_results *res) {
  return res ? res->nq : 0;
}

SX_EXPORT size_t sx_results_count(const sx_results *res, size_t q) {
  return res && q < res->nq ? res->off[q + 1] - res->off[q] : 0;
}

SX_EXPORT const char *sx_results_id(const sx_results *res, size_t q, size_t i) {
  return i < sx_results_count(res, q) ? res->ids[res->off[q] + i] : NULL;
}

SX_EXPORT float sx_results_distance(const sx_results *res, size_t q, size_t i) {
  return i < sx_results_count(res, q) ? res->dist[res->off[q] + i] : NAN;
}

SX_EXPORT size_t sx_results_total(const sx_results *res) {
  return res ? res->off[res->nq] : 0;
}

SX_EXPORT const size_t *sx_results_offsets(const sx_results *res) {
  return res ? res->off : NULL;
}

SX_EXPORT const float *sx_results_distances(const sx_results *res) {
  return res ? res->dist : NULL;
}

SX_EXPORT const char *sx_results_id_data(const sx_results *res, const size_t **id_offsets) {
  if (id_offsets) *id_offsets = res ? res->id_off : NULL;
  if (!res) return NULL;
  return res->blob ? res->blob : "";
}

SX_EXPORT const char *sx_results_metadata(const sx_results *res, size_t q, size_t i) {
  if (i >= sx_results_count(res, q) || !res->meta_off) return NULL;
  size_t h = res->off[q] + i;
  return res->meta_off[h + 1] == res->meta_off[h] ? NULL : res->meta + res->meta_off[h];
}

SX_EXPORT const float *sx_results_vector(const sx_results *res, size_t q, size_t i) {
  if (i >= sx_results_count(res, q) || !res->vecs) return NULL;
  return res->vecs + (res->off[q] + i) * res->vdim;
}

SX_EXPORT size_t sx_results_dim(const sx_results *res) {
  return res && res->vecs ? res->vdim : 0;
}

SX_EXPORT const char *sx_results_metadata_data(const sx_results *res, const size_t **offsets) {
  if (offsets) *offsets = res ? res->meta_off : NULL;
  if (!res || !res->meta_off) return NULL;
  return res->meta ? res->meta : "";
}

SX_EXPORT const float *sx_results_vectors(const sx_results *res) {
  return res ? res->vecs : NULL;
}

SX_EXPORT void sx_results_free(sx_results *res) {
  sx__results_free(res);
}

SX_EXPORT size_t sx_records_count(const sx_records *recs) {
  return recs ? recs->n : 0;
}

SX_EXPORT size_t sx_records_dim(const sx_records *recs) {
  return recs ? recs->dim : 0;
}

SX_EXPORT int sx_records_found(const sx_records *recs, size_t i) {
  return recs && i < recs->n ? recs->found[i] : 0;
}

SX_EXPORT const char *sx_records_id(const sx_records *recs, size_t i) {
  return recs && i < recs->n ? recs->ids + recs->id_off[i] : NULL;
}

SX_EXPORT const float *sx_records_vector(const sx_records *recs, size_t i) {
  return sx_records_found(recs, i) ? recs->vec + i * recs->dim : NULL;
}

SX_EXPORT const char *sx_records_metadata(const sx_records *recs, size_t i) {
  if (!recs || i >= recs->n || recs->meta_off[i + 1] == recs->meta_off[i]) return NULL;
  return recs->meta + recs->meta_off[i];
}

SX_EXPORT const float *sx_records_vectors(const sx_records *recs) {
  return recs && recs->n ? recs->vec : NULL;
}

SX_EXPORT const unsigned char *sx_records_found_data(const sx_records *recs) {
  return recs && recs->n ? recs->found : NULL;
}

SX_EXPORT const char *sx_records_id_data(const sx_records *recs, const size_t **offsets) {
  if (offsets) *offsets = recs ? recs->id_off : NULL;
  return recs ? recs->ids : NULL;
}

SX_EXPORT const char *sx_records_metadata_data(const sx_records *recs, const size_t **offsets) {
  if (offsets) *offsets = recs ? recs->meta_off : NULL;
  return recs ? recs->meta : NULL;
}

SX_EXPORT void sx_records_free(sx_records *recs) {
  sx__records_free(recs);
}
