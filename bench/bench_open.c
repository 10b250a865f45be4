/*
 * bench_open: the cost of a short-lived handle, against SQLite, in one run.
 *
 * A service that opens the database per request (or a CLI, or a test) pays for the
 * open and the close each time. Each iteration opens a handle on an existing
 * database, reads one count in a read session, and closes the handle:
 *   Sextant: sx_db_open, sx_read_begin, sx_read_collection, sx_collection_count,
 *            then every free, then sx_db_free;
 *   SQLite:  sqlite3_open_v2 (journal_mode=WAL database), prepare and step
 *            SELECT count(*) FROM t, finalize, sqlite3_close.
 * Each database holds `rows` items (default 1,000: 128-d vectors in a flat
 * collection; 512-byte blobs in a table), and a handle of each stays open the whole
 * run, so no timed open is the first (which recovers the WAL) and no close is the
 * last (which checkpoints). The systems take turns in rounds of `iters` iterations
 * (default 500), `rounds` times (default 7), alternating which goes first; the
 * median of the rounds' mean times is reported.
 *
 *   bench_open [--rows N] [--iters N] [--rounds N] [--dir D]
 */
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "sextant.h"

#define DIM 128

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_open: %s: %s\n", what, msg);
  exit(1);
}

static void sx_ok(sx_status rc, const sx_error *err, const char *what) {
  if (rc != SX_OK) die(what, err->message);
}

static void sq_ok(sqlite3 *db, int rc, int want, const char *what) {
  if (rc != want) die(what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static void sx_make(const char *path, int rows) {
  sx_error err = SX_ERROR_INIT;
  sx_db *db = NULL;
  sx_write *w = NULL;
  sx_ok(sx_db_open(&db, path, NULL, &err), &err, "sx_db_open");
  sx_ok(sx_write_begin(db, -1, &w, &err), &err, "sx_write_begin");
  sx_collection_options o = SX_COLLECTION_OPTIONS_INIT;
  o.dim = DIM;
  o.index = SX_INDEX_FLAT;
  sx_ok(sx_write_create_collection(w, "c", &o, &err), &err, "create collection");
  float *v = malloc((size_t)rows * DIM * sizeof *v);
  char(*names)[16] = malloc((size_t)rows * sizeof *names);
  const char **ids = malloc((size_t)rows * sizeof *ids);
  if (!v || !names || !ids) die("setup", "out of memory");
  uint64_t seed = 1;
  bench_gen(v, (size_t)rows * DIM, &seed);
  for (int i = 0; i < rows; i++) {
    snprintf(names[i], sizeof names[i], "v%d", i);
    ids[i] = names[i];
  }
  sx_ok(sx_write_upsert(w, "c", (size_t)rows, ids, v, DIM, NULL, &err), &err, "upsert");
  sx_ok(sx_write_commit(w, &err), &err, "commit");
  sx_write_free(w);
  sx_db_free(db);
  free(v);
  free(names);
  free(ids);
}

static void sq_make(const char *path, int rows) {
  sqlite3 *db = NULL;
  sq_ok(db, sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK,
        "sqlite3_open_v2");
  sq_ok(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK, "WAL");
  sq_ok(db,
        sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL); BEGIN", NULL,
                     NULL, NULL),
        SQLITE_OK, "create table");
  sqlite3_stmt *ins = NULL;
  sq_ok(db, sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES(zeroblob(512))", -1, &ins, NULL),
        SQLITE_OK, "prepare");
  for (int i = 0; i < rows; i++) {
    sq_ok(db, sqlite3_step(ins), SQLITE_DONE, "insert");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  sq_ok(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK, "commit");
  sq_ok(db, sqlite3_close(db), SQLITE_OK, "close");
}

/* One open, count, close; returns the count. */
static uint64_t sx_once(const char *path) {
  sx_error err = SX_ERROR_INIT;
  sx_db *db = NULL;
  sx_read *r = NULL;
  sx_collection *c = NULL;
  uint64_t n = 0;
  sx_ok(sx_db_open(&db, path, NULL, &err), &err, "sx_db_open");
  sx_ok(sx_read_begin(db, &r, &err), &err, "sx_read_begin");
  sx_ok(sx_read_collection(r, "c", &c, &err), &err, "sx_read_collection");
  sx_ok(sx_collection_count(c, &n, &err), &err, "sx_collection_count");
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
  return n;
}

static uint64_t sq_once(const char *path) {
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  sq_ok(db, sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "sqlite3_open_v2");
  sq_ok(db, sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &s, NULL), SQLITE_OK, "prepare");
  sq_ok(db, sqlite3_step(s), SQLITE_ROW, "select");
  uint64_t n = (uint64_t)sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sq_ok(db, sqlite3_close(db), SQLITE_OK, "close");
  return n;
}

/* Mean microseconds of `iters` iterations of one system. */
static double round_us(int sqlite, const char *path, int iters, uint64_t want) {
  double t0 = bench_now();
  for (int i = 0; i < iters; i++)
    if ((sqlite ? sq_once(path) : sx_once(path)) != want) die("count", "wrong count");
  return (bench_now() - t0) / iters * 1e6;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {{"rows", required_argument, 0, 'n'},
                                     {"iters", required_argument, 0, 'i'},
                                     {"rounds", required_argument, 0, 'r'},
                                     {"dir", required_argument, 0, 'd'},
                                     {0, 0, 0, 0}};
  int rows = 1000, iters = 500, rounds = 7, c;
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  while ((c = getopt_long(argc, argv, "n:i:r:d:", lo, NULL)) != -1) {
    switch (c) {
      case 'n':
        rows = atoi(optarg);
        break;
      case 'i':
        iters = atoi(optarg);
        break;
      case 'r':
        rounds = atoi(optarg);
        break;
      case 'd':
        dir = optarg;
        break;
      default:
        fprintf(stderr, "usage: bench_open [--rows N] [--iters N] [--rounds N] [--dir D]\n");
        return 2;
    }
  }
  if (rows < 1 || iters < 1 || rounds < 1 || rounds > 99) die("options", "out of range");
  char sxp[4096], sqp[4096];
  snprintf(sxp, sizeof sxp, "%s/bench_open-%d.sx", dir, (int)getpid());
  snprintf(sqp, sizeof sqp, "%s/bench_open-%d.sqlite", dir, (int)getpid());
  sx_make(sxp, rows);
  sq_make(sqp, rows);

  /* The handles that stay open. */
  sx_error err = SX_ERROR_INIT;
  sx_db *keep_sx = NULL;
  sqlite3 *keep_sq = NULL;
  sx_ok(sx_db_open(&keep_sx, sxp, NULL, &err), &err, "sx_db_open");
  sq_ok(keep_sq, sqlite3_open_v2(sqp, &keep_sq, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "open");
  sq_ok(keep_sq, sqlite3_exec(keep_sq, "SELECT count(*) FROM t", NULL, NULL, NULL), SQLITE_OK,
        "select");

  printf("bench_open: Sextant %s vs SQLite %s, %d rows, %d rounds of %d iterations, in %s\n",
         sx_version(), sqlite3_libversion(), rows, rounds, iters, dir);
#if !defined(NDEBUG) || defined(SX_LOCK_CHECK)
  printf("WARNING: not a Release build (NDEBUG unset or lock checker on)\n");
#endif
  double sx_us[99], sq_us[99];
  round_us(0, sxp, iters / 10 + 1, (uint64_t)rows); /* warm-up */
  round_us(1, sqp, iters / 10 + 1, (uint64_t)rows);
  for (int r = 0; r < rounds; r++) {
    int first = r % 2;
    for (int k = 0; k < 2; k++) {
      int sqlite = k ? !first : first;
      double us = round_us(sqlite, sqlite ? sqp : sxp, iters, (uint64_t)rows);
      (sqlite ? sq_us : sx_us)[r] = us;
      fprintf(stderr, "[round %d/%d] %-7s %8.1f us\n", r + 1, rounds, sqlite ? "sqlite" : "sextant",
              us);
    }
  }
  double a = bench_median(sx_us, rounds), b = bench_median(sq_us, rounds);
  printf("open + one count in a read session + close, mean per iteration (median of rounds):\n");
  printf("  Sextant %.1f us, SQLite (WAL) %.1f us: Sextant/SQLite %.2fx the time\n", a, b, a / b);
  printf("RESULT sextant open+count+close: %.1f us\n", a);
  printf("RESULT sqlite open+count+close: %.1f us\n", b);

  sx_db_free(keep_sx);
  sqlite3_close(keep_sq);
  const char *sfx[] = {"", "-wal", "-wal2", "-shm", "-journal"};
  for (int i = 0; i < 5; i++) {
    char p[4200];
    snprintf(p, sizeof p, "%s%s", sxp, sfx[i]);
    unlink(p);
    snprintf(p, sizeof p, "%s%s", sqp, sfx[i]);
    unlink(p);
  }
  return 0;
}
