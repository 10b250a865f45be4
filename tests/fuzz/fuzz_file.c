/*
 * File fuzzer: the input becomes a database file set, P and optionally P-wal, P-wal2
 * and P-shm, which is opened read-only and read-write and walked through every read
 * call (check, list, describe, count, get, cursor, flat and HNSW search, batch
 * search), then one upsert, delete and commit, and a drop. Any status is fine; a
 * crash, a hang, a leak or a sanitizer report is a finding.
 *
 * Input: byte 0 holds flags: bit 0, a P-wal follows P; bit 2, a P-wal2; bit 3, a P-shm
 * (an opener with no other process attached rebuilds P-shm from the other files, so
 * its bytes must never matter); bit 1, leave WAL and page checksums as they are. With
 * more than one file, a 4-byte length (little endian, taken modulo what is left) for
 * each but the last comes first, then the files in that order, the last taking the
 * rest (so an input of P and P-wal alone reads as it did before P-wal2 and P-shm
 * were added). WAL checksums (header and the running frame checksum) and frame salts
 * are recomputed after mutation unless bit 1 is set, so mutations reach past the
 * checksum into recovery and the pages; so are P's page checksums (format 2,
 * pager_int.h), through the library's own sx__wal_seal and sx__pfile_seal.
 *
 * SX_FUZZ_SEEDS=<dir> makes the seed corpus there and exits (tools/fuzz.sh).
 */
#include "fuzz_common.h"
#include "pager/pager.h"

/* The WAL's layout (pager_int.h): a 64-byte header, frames of 32 + ps bytes. */
#define WAL_HDR 64u
#define FRAME_HDR 32u

static void walk_collection(sx_collection *c) {
  sx_error err = SX_ERROR_INIT;
  sx_collection_info info = SX_COLLECTION_INFO_INIT;
  uint64_t n = 0;
  sx_collection_count(c, &n, &err);
  sx_collection_stats st = SX_COLLECTION_STATS_INIT;
  sx_collection_stats_get(c, &st, &err);
  if (sx_collection_describe(c, &info, &err) != SX_OK) return;
  char first[SX_ID_MAX + 1] = "";
  sx_cursor *cur = NULL;
  if (sx_collection_cursor(c, NULL, &cur, &err) == SX_OK) {
    for (int b = 0; b < 4; b++) {
      sx_records *recs = NULL;
      if (sx_cursor_next(cur, 64, &recs, &err) != SX_OK) break;
      size_t cnt = sx_records_count(recs);
      if (cnt && !first[0]) snprintf(first, sizeof first, "%s", sx_records_id(recs, 0));
      for (size_t i = 0; i < cnt; i++) (void)sx_records_metadata(recs, i);
      sx_records_free(recs);
      if (!cnt) break;
    }
    sx_cursor_free(cur);
  }
  if (first[0]) {
    sx_record *rec = NULL;
    if (sx_collection_get(c, first, &rec, &err) == SX_OK) {
      size_t dim = 0;
      (void)sx_record_vector(rec, &dim);
      (void)sx_record_metadata(rec);
    }
    sx_record_free(rec);
  }
  if (info.dim == 0 || info.dim > SX_DIM_MAX) return;
  float *q = malloc(2 * (size_t)info.dim * sizeof *q);
  if (!q) return;
  for (size_t i = 0; i < 2 * (size_t)info.dim; i++) q[i] = (float)(i % 7) * 0.25f - 0.6f;
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.ef = 16;
  so.threads = 1;
  sx_results *res = NULL;
  if (sx_collection_search(c, q, info.dim, 5, &so, &res, &err) == SX_OK)
    for (size_t i = 0; i < sx_results_count(res, 0); i++) (void)sx_results_id(res, 0, i);
  sx_results_free(res);
  res = NULL;
  sx_collection_search_batch(c, q, 2, info.dim, 3, &so, &res, &err);
  sx_results_free(res);
  free(q);
}

static void walk(sx_db *db) {
  sx_error err = SX_ERROR_INIT;
  sx_db_check(db, &err);
  sx_read *r = NULL;
  if (sx_read_begin(db, &r, &err) != SX_OK) return;
  sx_names *names = NULL;
  if (sx_read_list_collections(r, &names, &err) == SX_OK) {
    for (size_t i = 0; i < sx_names_count(names) && i < 8; i++) {
      sx_collection *c = NULL;
      if (sx_read_collection(r, sx_names_get(names, i), &c, &err) == SX_OK) walk_collection(c);
      sx_collection_free(c);
    }
  }
  sx_names_free(names);
  sx_read_end(r);
  sx_read_free(r);
}

static void write_some(sx_db *db) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = NULL;
  if (sx_write_begin(db, 0, &w, &err) != SX_OK) return;
  sx_names *names = NULL;
  char name[SX_NAME_MAX + 1] = "";
  if (sx_write_list_collections(w, &names, &err) == SX_OK && sx_names_count(names))
    snprintf(name, sizeof name, "%s", sx_names_get(names, 0));
  sx_names_free(names);
  if (name[0]) {
    sx_collection *c = NULL;
    sx_collection_info info = SX_COLLECTION_INFO_INIT;
    if (sx_write_collection(w, name, &c, &err) == SX_OK &&
        sx_collection_describe(c, &info, &err) == SX_OK && info.dim > 0 && info.dim <= SX_DIM_MAX) {
      float *v = malloc(info.dim * sizeof *v);
      if (v) {
        for (uint32_t i = 0; i < info.dim; i++) v[i] = 0.5f + (float)i;
        const char *ids[2] = {"fz-new", "v1"};
        const char *meta[2] = {"{\"fz\":1}", NULL};
        sx_write_upsert(w, name, 1, ids, v, info.dim, meta, &err);
        size_t deleted = 0;
        sx_write_delete(w, name, 1, ids + 1, &deleted, &err);
        free(v);
      }
    }
    sx_collection_free(c);
  }
  sx_write_commit(w, &err);
  sx_write_free(w);
  if (!name[0]) return;
  if (sx_write_begin(db, 0, &w, &err) != SX_OK) return;
  sx_write_drop_collection(w, name, &err);
  sx_write_commit(w, &err);
  sx_write_free(w);
  sx_db_check(db, &err);
}

/* The files of an input, in its order. */
static const char *const suffix[4] = {"", "-wal", "-wal2", "-shm"};

static void make_seeds(const char *dir);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *seeds = getenv("SX_FUZZ_SEEDS");
  if (seeds) {
    make_seeds(seeds);
    exit(0);
  }
  return 0;
}

static void cleanup(void) {
  fz_remove_db("f.sx");
  rmdir(fz_dir());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int once;
  if (!once) {
    once = 1;
    atexit(cleanup);
  }
  if (size < 1) return 0;
  uint8_t flags = data[0];
  int has[4] = {1, flags & 1, (flags >> 2) & 1, (flags >> 3) & 1}, nf = 0;
  for (int k = 0; k < 4; k++) nf += has[k];
  const uint8_t *rest = data + 1;
  size_t nrest = size - 1, len[4] = {0, 0, 0, 0};
  if (nrest < 4 * (size_t)(nf - 1)) { /* no room for the lengths: P alone */
    has[1] = has[2] = has[3] = 0;
    nf = 1;
  }
  const uint8_t *lens = rest;
  rest += 4 * (nf - 1);
  nrest -= 4 * (nf - 1);
  for (int k = 0, i = 0, left = nf; k < 4; k++) {
    if (!has[k]) continue;
    if (--left == 0) {
      len[k] = nrest;
      break;
    }
    uint32_t l;
    memcpy(&l, lens + 4 * i++, 4);
    len[k] = l % (nrest + 1);
    nrest -= len[k];
  }
  fz_remove_db("f.sx");
  for (int k = 0; k < 4; k++) {
    if (!has[k]) {
      rest += len[k];
      continue;
    }
    uint8_t *b = malloc(len[k] ? len[k] : 1);
    if (!b) return 0;
    memcpy(b, rest, len[k]);
    rest += len[k];
    if (!(flags & 2) && k == 0) {
      uint32_t ver = 0, ps = 0;
      if (len[0] >= 24) {
        memcpy(&ver, b + 16, 4);
        memcpy(&ps, b + 20, 4);
      }
      if (ver == SX_FORMAT_VERSION && ps >= 4096 && ps <= 65536 && !(ps & (ps - 1)))
        sx__pfile_seal(b, len[0], ps);
    }
    if (!(flags & 2) && (k == 1 || k == 2)) sx__wal_seal(b, len[k], 0);
    char path[512], name[32];
    snprintf(name, sizeof name, "f.sx%s", suffix[k]);
    fz_path(path, sizeof path, name);
    int bad = fz_write_file(path, b, len[k]);
    free(b);
    if (bad) return 0;
  }
  char p[512];
  fz_path(p, sizeof p, "f.sx");
  sx_db *db = fz_open(p, 1);
  if (db) {
    walk(db);
    sx_db_free(db);
  }
  db = fz_open(p, 0);
  if (db) {
    walk(db);
    write_some(db);
    walk(db);
    sx_db_free(db);
  }
  return 0;
}

/* ---- seeds -------------------------------------------------------------------------- */

static void fill(sx_db *db, int hnsw_too) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = NULL;
  if (sx_write_begin(db, 0, &w, &err)) return;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = 4;
  co.index = SX_INDEX_FLAT;
  sx_write_create_collection(w, "flat", &co, &err);
  if (hnsw_too) {
    co.index = SX_INDEX_HNSW;
    co.metric = SX_METRIC_COSINE;
    co.hnsw_m = 4;
    co.hnsw_ef_construction = 16;
    sx_write_create_collection(w, "graph", &co, &err);
    co.metric = SX_METRIC_L2;
    co.quantization = SX_QUANTIZATION_INT8;
    sx_write_create_collection(w, "codes", &co, &err);
  }
  char idb[40][8];
  const char *ids[40], *meta[40];
  float v[40 * 4];
  for (int i = 0; i < 40; i++) {
    snprintf(idb[i], sizeof idb[i], "v%d", i);
    ids[i] = idb[i];
    meta[i] = i % 3 ? NULL : "{\"k\":[1,2,{\"x\":\"y\"}],\"n\":-1.5e3}";
    for (int d = 0; d < 4; d++) v[i * 4 + d] = (float)((i * 7 + d * 3) % 11) - 5.0f + 0.25f;
  }
  sx_write_upsert(w, "flat", 20, ids, v, 4, meta, &err);
  if (hnsw_too) sx_write_upsert(w, "graph", 40, ids, v, 4, meta, &err);
  if (hnsw_too) sx_write_upsert(w, "codes", 40, ids, v, 4, meta, &err);
  sx_write_commit(w, &err);
  sx_write_free(w);
  if (hnsw_too) { /* a delete, so that the graph has a repaired part */
    sx_write_begin(db, 0, &w, &err);
    sx_write_delete(w, "graph", 3, ids + 5, NULL, &err);
    sx_write_commit(w, &err);
    sx_write_free(w);
  }
}

/* The frames of a WAL file copied while open, up to its last nonzero byte (the file
 * is reserved ahead in zeros), whole frames. */
static void trim_wal(const uint8_t *w, size_t *n) {
  while (*n > WAL_HDR && w[*n - 1] == 0) (*n)--;
  if (*n > WAL_HDR) {
    size_t fs = FRAME_HDR + 4096;
    *n = WAL_HDR + (*n - WAL_HDR + fs - 1) / fs * fs;
  }
}

/* Seed `name` holding the files of f[0..4) (P, P-wal, P-wal2, P-shm; NULL: absent) in
 * the input format above. */
static void put_seed(const char *dir, const char *name, uint8_t *const f[4], const size_t n[4]) {
  uint8_t flags = (f[1] ? 1 : 0) | (f[2] ? 4 : 0) | (f[3] ? 8 : 0);
  int nf = 1 + !!f[1] + !!f[2] + !!f[3];
  size_t total = 1 + 4 * (size_t)(nf - 1);
  for (int k = 0; k < 4; k++) total += f[k] ? n[k] : 0;
  uint8_t *in = malloc(total);
  if (!in) return;
  in[0] = flags;
  size_t at = 1, lens = 1;
  at += 4 * (size_t)(nf - 1);
  for (int k = 0, left = nf; k < 4; k++) {
    if (!f[k]) continue;
    if (--left > 0) { /* modulo what is left, as the reader takes it */
      uint32_t l = (uint32_t)n[k];
      memcpy(in + lens, &l, 4);
      lens += 4;
    }
    if (n[k]) memcpy(in + at, f[k], n[k]);
    at += n[k];
  }
  fz_seed(dir, name, in, total);
  free(in);
}

/* Seeds: 0, P alone (flat); 1, P alone (flat, HNSW, int8); 2, P and P-wal copied while
 * open (the commits in the WAL); 3, P, P-wal and P-wal2 copied while open after the
 * WAL moved to the other file before a checkpoint had copied the generation it left
 * (a reader pinned the checkpoint back), so recovery replays both files; 4, seed 2's files with the
 * P-shm beside them. */
static void make_seeds(const char *dir) {
  char p[512];
  fz_path(p, sizeof p, "seed.sx");
  for (int variant = 0; variant < 5; variant++) {
    fz_remove_db("seed.sx");
    sx_open_options o = SX_OPEN_OPTIONS_INIT;
    o.sync = SX_SYNC_OFF;
    o.threads = 1;
    if (variant == 3) o.autocheckpoint_frames = 8;
    sx_db *db = NULL;
    sx_error err = SX_ERROR_INIT;
    if (sx_db_open(&db, p, &o, &err) != SX_OK) return;
    sx_read *pin = NULL;
    if (variant == 3) {
      fill(db, 0);
      sx_read_begin(db, &pin, &err); /* the checkpoint stops at its snapshot */
    }
    fill(db, variant > 0);
    uint8_t *f[4] = {NULL, NULL, NULL, NULL};
    size_t n[4] = {0, 0, 0, 0};
    int open_copy = variant >= 2;
    if (!open_copy) sx_db_free(db); /* the last close copies the WAL into P */
    for (int k = 0; k < 4; k++) {
      if (k == 2 && variant != 3) continue;
      if (k == 3 && variant != 4) continue;
      if (k > 0 && !open_copy) continue;
      char path[512], nm[32];
      snprintf(nm, sizeof nm, "seed.sx%s", suffix[k]);
      fz_path(path, sizeof path, nm);
      f[k] = fz_read_file(path, &n[k]);
      if (f[k] && (k == 1 || k == 2)) trim_wal(f[k], &n[k]);
      if (k == 3 && n[k] > 8192) n[k] = 8192; /* its header: the rest is index areas */
      if (!f[k]) f[k] = malloc(1);            /* present, empty */
    }
    if (pin) sx_read_free(pin);
    if (open_copy) sx_db_free(db);
    char name[32];
    snprintf(name, sizeof name, "seed-%d", variant);
    put_seed(dir, name, f, n);
    for (int k = 0; k < 4; k++) free(f[k]);
  }
  fz_remove_db("seed.sx");
}
