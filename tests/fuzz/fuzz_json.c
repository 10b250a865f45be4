/*
 * JSON fuzzer: the input, as metadata text, through the core's check
 * (collection/json.c) and, once accepted, through upsert and get, which must hand
 * back the very same text. Differential check against jansson: an object jansson
 * parses (duplicates rejected, \u0000 allowed) with nesting within
 * SX_METADATA_DEPTH_MAX must be accepted too (jansson refuses some valid JSON, so
 * the other direction is not checked). Aborts on a difference.
 */
#include <jansson.h>

#include "collection/collection.h"
#include "fuzz_common.h"

static sx_db *db;

static void cleanup(void) {
  sx_db_free(db);
  fz_remove_db("j.sx");
  rmdir(fz_dir());
}

static int depth(const json_t *j) {
  int d = 0;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
      int x = depth(v);
      if (x > d) d = x;
    }
    return d + 1;
  }
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      int x = depth(v);
      if (x > d) d = x;
    }
    return d + 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!db) {
    char p[512];
    fz_path(p, sizeof p, "j.sx");
    fz_remove_db("j.sx");
    db = fz_open(p, 0);
    if (!db) abort();
    atexit(cleanup);
    sx_write *w = NULL;
    sx_error err = SX_ERROR_INIT;
    sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
    co.dim = 1;
    co.index = SX_INDEX_FLAT;
    if (sx_write_begin(db, 0, &w, &err) || sx_write_create_collection(w, "j", &co, &err) ||
        sx_write_commit(w, &err))
      abort();
    sx_write_free(w);
  }
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  size_t len = strlen(text); /* the C API takes NUL-terminated texts */
  sx_error err = SX_ERROR_INIT;
  int ours = sx__json_check(text, len, 0, &err);
  if (ours != SX_OK && ours != SX_INVALID_ARGUMENT) abort();

  json_error_t je;
  json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (j && json_is_object(j) && depth(j) <= SX_METADATA_DEPTH_MAX && ours != SX_OK) {
    fprintf(stderr, "jansson accepts what the core refuses: %s\n", err.message);
    abort();
  }
  json_decref(j);

  /* Through the API: accepted text round-trips exactly; refused changes nothing. */
  sx_write *w = NULL;
  if (sx_write_begin(db, 0, &w, &err)) abort();
  const char *ids[1] = {"x"};
  const char *meta[1] = {text};
  float v = 1;
  int rc = sx_write_upsert(w, "j", 1, ids, &v, 1, meta, &err);
  if ((rc == SX_OK) != (ours == SX_OK)) {
    fprintf(stderr, "upsert %d vs check %d: %s\n", rc, ours, err.message);
    abort();
  }
  sx_collection *c = NULL;
  if (sx_write_collection(w, "j", &c, &err)) abort();
  sx_record *rec = NULL;
  int g = sx_collection_get(c, "x", &rec, &err);
  if (rc == SX_OK) {
    const char *m = g == SX_OK ? sx_record_metadata(rec) : NULL;
    if (!m || strcmp(m, text) != 0) {
      fprintf(stderr, "metadata did not round-trip\n");
      abort();
    }
  } else if (g != SX_NOT_FOUND) {
    abort();
  }
  sx_record_free(rec);
  sx_collection_free(c);
  sx_write_abort(w);
  sx_write_free(w);
  free(text);
  return 0;
}
