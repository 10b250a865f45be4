/*
 * File fuzzer: the input becomes a database file P (and optionally its WAL P-wal),
 * which is opened read-only and read-write and walked through every read call
 * (check, list, describe, count, get, cursor, flat and HNSW search, batch search),
 * then one upsert, delete and commit, and a drop. Any status is fine; a crash, a
 * hang, a leak or a sanitizer report is a finding.
 *
 * Input: byte 0 holds flags (bit 0: a WAL follows; bit 1: leave the WAL and page checksums as
 * they are). With a WAL, bytes 1-4 give P's length (little endian, taken modulo the
 * rest), then P, then the WAL. Without, the rest is P. WAL checksums (header and the
 * running frame checksum) and frame salts are recomputed after mutation unless bit 1
 * is set, so mutations reach past the checksum into recovery and the pages; so are
 * P's page checksums (format 2, pager_int.h), through the library's own sx__pfile_seal.
 *
 * SX_FUZZ_SEEDS=<dir> makes the seed corpus there and exits (tools/fuzz.sh).
 */
#include "fuzz_common.h"
#include "pager/pager.h"

#define WAL_HDR 64u
#define FRAME_HDR 32u

static void cksum(const uint8_t *d, size_t n, uint64_t *s0, uint64_t *s1) {
  uint64_t a = *s0, b = *s1;
  for (size_t i = 0; i + 16 <= n; i += 16) {
    uint64_t x, y;
    memcpy(&x, d + i, 8);
    memcpy(&y, d + i + 8, 8);
    a += x + b;
    b += y + a;
  }
  *s0 = a;
  *s1 = b;
}

/* The format of core/src/pager (pager_int.h, wal.c): a 64-byte header whose last 16
 * bytes checksum the first 48; frames of 32 + ps bytes, salts at 8 and 12, the
 * running checksum (over each frame's first 16 bytes and its page) at 16 and 24. */
static void fix_wal(uint8_t *w, size_t n) {
  if (n < WAL_HDR) return;
  uint32_t ps;
  memcpy(&ps, w + 8, 4);
  if (ps < 4096 || ps > 65536 || (ps & (ps - 1))) return;
  uint64_t a = 0, b = 0;
  cksum(w, 48, &a, &b);
  memcpy(w + 48, &a, 8);
  memcpy(w + 56, &b, 8);
  for (size_t off = WAL_HDR; off + FRAME_HDR + ps <= n; off += FRAME_HDR + ps) {
    uint8_t *f = w + off;
    memcpy(f + 8, w + 16, 8); /* the header's salts */
    cksum(f, 16, &a, &b);
    cksum(f + FRAME_HDR, ps, &a, &b);
    memcpy(f + 16, &a, 8);
    memcpy(f + 24, &b, 8);
  }
}

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
  const uint8_t *rest = data + 1;
  size_t nrest = size - 1, np = nrest, nw = 0;
  if ((flags & 1) && nrest >= 4) {
    uint32_t l;
    memcpy(&l, rest, 4);
    rest += 4;
    nrest -= 4;
    np = nrest ? l % (nrest + 1) : 0;
    nw = nrest - np;
  }
  char p[512], pw[512];
  fz_path(p, sizeof p, "f.sx");
  fz_path(pw, sizeof pw, "f.sx-wal");
  fz_remove_db("f.sx");
  uint8_t *pc = malloc(np ? np : 1);
  if (!pc) return 0;
  memcpy(pc, rest, np);
  uint32_t ver = 0, ps = 0;
  if (np >= 24) {
    memcpy(&ver, pc + 16, 4);
    memcpy(&ps, pc + 20, 4);
  }
  if (!(flags & 2) && ver == SX_FORMAT_VERSION && ps >= 4096 && ps <= 65536 && !(ps & (ps - 1)))
    sx__pfile_seal(pc, np, ps);
  int bad_p = fz_write_file(p, pc, np);
  free(pc);
  if (bad_p) return 0;
  if (flags & 1) {
    uint8_t *w = malloc(nw ? nw : 1);
    if (!w) return 0;
    memcpy(w, rest + np, nw);
    if (!(flags & 2)) fix_wal(w, nw);
    int bad = fz_write_file(pw, w, nw);
    free(w);
    if (bad) return 0;
  }
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

static void make_seeds(const char *dir) {
  char p[512], pw[512];
  fz_path(p, sizeof p, "seed.sx");
  fz_path(pw, sizeof pw, "seed.sx-wal");
  for (int variant = 0; variant < 3; variant++) {
    fz_remove_db("seed.sx");
    sx_db *db = fz_open(p, 0);
    if (!db) return;
    fill(db, variant > 0);
    size_t np = 0, nw = 0;
    uint8_t *pb = NULL, *wb = NULL;
    if (variant == 2) { /* copied while open: the commits are in the WAL */
      pb = fz_read_file(p, &np);
      wb = fz_read_file(pw, &nw);
      sx_db_free(db);
      /* The WAL is reserved ahead: keep its header and the frames up to the last
       * nonzero byte. */
      while (nw > WAL_HDR && wb[nw - 1] == 0) nw--;
      if (nw > WAL_HDR) {
        size_t fs = FRAME_HDR + 4096;
        nw = WAL_HDR + (nw - WAL_HDR + fs - 1) / fs * fs;
      }
    } else {
      sx_db_free(db); /* the last close copies the WAL into P */
      pb = fz_read_file(p, &np);
    }
    size_t n = 1 + (variant == 2 ? 4 : 0) + np + nw;
    uint8_t *in = malloc(n);
    in[0] = variant == 2 ? 1 : 0;
    size_t at = 1;
    if (variant == 2) {
      uint32_t l = (uint32_t)np;
      memcpy(in + 1, &l, 4);
      at = 5;
    }
    if (np) memcpy(in + at, pb, np);
    if (nw) memcpy(in + at + np, wb, nw);
    char name[32];
    snprintf(name, sizeof name, "seed-%d", variant);
    fz_seed(dir, name, in, n);
    free(in);
    free(pb);
    free(wb);
  }
  fz_remove_db("seed.sx");
}
