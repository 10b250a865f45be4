/*
 * bench_storage: the storage engine against SQLite (WAL mode), in one run.
 *
 * 1. Commits per second at sync full / normal / off, 1 and 1,000 pages per commit.
 *    Sextant: a fresh database of `rows` 4 KiB data pages (default 1,000), written by
 *    one untimed first commit (appends); each timed commit then rewrites `per`
 *    existing pages with new bytes through the internal pager API (sx__txn_write), as
 *    tests/workload.c does. SQLite: journal_mode=WAL, synchronous=FULL/NORMAL/OFF,
 *    page_size 4096, default wal_autocheckpoint (1000), a fresh table
 *    t(id INTEGER PRIMARY KEY, v BLOB) of `rows` 4000-byte blobs (one row per leaf
 *    page); each commit is BEGIN IMMEDIATE, `per` prepared UPDATEs, COMMIT. Both pick
 *    the same rows: all of them when per >= rows, else the same pseudo-random
 *    sequence. Within a configuration the two systems take turns in short slices
 *    until each has run for the fixed time (see run_sliced), so both see the same
 *    disk; sync=full with 1 page also slices in a bare pwrite+fdatasync baseline.
 * 2. Read-session begin+end latency: sx_read_begin + sx_read_free, timed one by one,
 *    with no writer and with a writer (a child process, or a thread with
 *    --writer-thread, with its own handle, sync off) committing one page per commit
 *    continuously into the same database. For reference, SQLite's BEGIN; SELECT 1
 *    FROM t LIMIT 1; COMMIT (a WAL read transaction) with prepared statements, with
 *    and without such a writer.
 *
 * Every measurement is repeated (default 3), alternating which system goes first,
 * and the median over repeats is reported. See bench/README.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pager/pager.h"
#include "session/session.h"
#include "sextant.h"

#define PAGE 4096u
#define BLOB 4000
#define MAXREP 64

/* ---- options ------------------------------------------------------------------- */

static double opt_secs = 2.0;  /* per commit configuration, system and repeat */
static double opt_slice = 0.1; /* systems alternate in slices of this many seconds */
static int opt_repeats = 3;
static int opt_iters = 200000;   /* read begin+end iterations per measurement */
static uint32_t opt_rows = 1000; /* data pages / rows in each database */
static const char *opt_dir = NULL;
static int opt_sqlite_cache_kib = 65536; /* PRAGMA cache_size = -this (0: SQLite default) */
static int opt_commits = 1, opt_reads = 1;
static long opt_warmup = 0;       /* untimed commits after the first, before timing */
static int opt_writer_thread = 0; /* the read benchmark's writer: 0 a child process, 1 a thread */
static int opt_only_sync = -1;    /* --sync: run one sync level only (profiling) */
static long opt_only_pages = -1;  /* --pages: run one commit size only (profiling) */
static int opt_only_system = -1;  /* --system: 0 sextant, 1 sqlite only (profiling) */

/* ---- helpers ------------------------------------------------------------------- */

static char g_tmpdir[4096];

static pid_t g_owner_pid;

static void cleanup_tmpdir(void) {
  if (!g_tmpdir[0] || getpid() != g_owner_pid) return;
  DIR *d = opendir(g_tmpdir);
  if (d) {
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d)) != NULL) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(p, sizeof p, "%s/%s", g_tmpdir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(g_tmpdir);
  g_tmpdir[0] = 0;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench_storage: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  fflush(stderr);
  if (getpid() != g_owner_pid) _exit(1); /* a writer child leaves the directory alone */
  exit(1);                               /* atexit removes the temporary directory */
}

#define SXCHK(call)                                                                            \
  do {                                                                                         \
    int rc_ = (call);                                                                          \
    if (rc_ != SX_OK)                                                                          \
      die("%s:%d: %s -> %s: %s", __FILE__, __LINE__, #call, sx_status_name(rc_), err.message); \
  } while (0)

#define SQCHK(db, call, want)                                                         \
  do {                                                                                \
    int rc_ = (call);                                                                 \
    if (rc_ != (want))                                                                \
      die("%s:%d: %s -> %d: %s", __FILE__, __LINE__, #call, rc_, sqlite3_errmsg(db)); \
  } while (0)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* New bytes for a page or row: every 64-bit word depends on the generation. */
static void fill(uint8_t *buf, size_t len, uint32_t id, uint64_t gen) {
  uint64_t v = gen * 0x9E3779B97F4A7C15ull ^ id;
  uint64_t *w = (uint64_t *)buf;
  for (size_t i = 0; i < len / 8; i++) w[i] = v + i;
}

static void db_path(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s", g_tmpdir, name);
}

static void unlink_suffixed(const char *path, const char *suffix) {
  size_t a = strlen(path), b = strlen(suffix);
  char *p = malloc(a + b + 1);
  if (!p) return;
  memcpy(p, path, a);
  memcpy(p + a, suffix, b + 1);
  unlink(p);
  free(p);
}

static void remove_db(const char *path) {
  unlink(path);
  unlink_suffixed(path, "-wal");
  unlink_suffixed(path, "-shm");
  unlink_suffixed(path, "-journal");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct stat3 {
  double med, min, max;
} stat3;

static stat3 summarize(const double *v, int n) {
  double s[MAXREP];
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  stat3 r = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0], s[n - 1]};
  return r;
}

/* Which data page/row the k-th write of commit `gen` touches (1-based). */
typedef struct picker {
  uint32_t rows, per;
  uint64_t rng;
} picker;

static uint32_t pick(picker *pk, uint32_t k) {
  if (pk->per >= pk->rows) return 1 + k;
  return 1 + (uint32_t)(splitmix64(&pk->rng) % pk->rows);
}

static const char *sync_name[3] = {"full", "normal", "off"};
static const char *sqlite_sync_pragma[3] = {"FULL", "NORMAL", "OFF"};

/* ---- Sextant: writes through the internal pager API ------------------------------ */

static sx_db *sx_open(const char *path, int sync) {
  sx_error err = SX_ERROR_INIT;
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = (sx_sync)sync;
  o.page_size = PAGE;
  sx_db *db = NULL;
  SXCHK(sx_db_open(&db, path, &o, &err));
  return db;
}

/* First commit: appends `rows` data pages; returns the first one's number (the
 * pages before it, if any, belong to the engine: header, catalog). */
static uint32_t sx_populate(sx_db *db, uint32_t rows) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = NULL;
  SXCHK(sx_write_begin(db, -1, &w, &err));
  SXCHK(sx__write_enter(w, &err));
  sx__txn *t = sx__write_txn(w);
  uint32_t base = sx__txn_npages(t);
  for (uint32_t i = 0; i < rows; i++) {
    uint32_t pg;
    uint8_t *d;
    SXCHK(sx__txn_alloc(t, &pg, &d, &err));
    if (pg != base + i) die("allocated page %u, expected %u", pg, base + i);
    fill(d, PAGE, pg, 1);
  }
  sx__write_leave(w);
  SXCHK(sx_write_commit(w, &err));
  sx_write_free(w);
  return base;
}

/* One commit rewriting pk->per existing data pages (the first is page `base`). */
static void sx_commit_one(sx_db *db, picker *pk, uint32_t base, uint64_t gen) {
  sx_error err = SX_ERROR_INIT;
  sx_write *w = NULL;
  SXCHK(sx_write_begin(db, -1, &w, &err));
  SXCHK(sx__write_enter(w, &err));
  sx__txn *t = sx__write_txn(w);
  for (uint32_t k = 0; k < pk->per; k++) {
    uint32_t pg = base + pick(pk, k) - 1;
    uint8_t *d;
    SXCHK(sx__txn_write(t, pg, &d, &err));
    fill(d, PAGE, pg, gen);
  }
  sx__write_leave(w);
  SXCHK(sx_write_commit(w, &err));
  sx_write_free(w);
}

/* ---- SQLite ------------------------------------------------------------------------ */

static void sq_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", msg ? msg : "?");
    sqlite3_free(msg);
    die("sqlite: %s: %s", sql, copy);
  }
}

static sqlite3_stmt *sq_prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = NULL;
  SQCHK(db, sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  return s;
}

static void sq_step_done(sqlite3 *db, sqlite3_stmt *s) {
  SQCHK(db, sqlite3_step(s), SQLITE_DONE);
  sqlite3_reset(s);
}

static sqlite3 *sq_open(const char *path, int sync, int create) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) die("sqlite3_open_v2 %s: %s", path, db ? sqlite3_errmsg(db) : "?");
  sqlite3_busy_timeout(db, 10000);
  char sql[256];
  if (create) sq_exec(db, "PRAGMA page_size=4096");
  sqlite3_stmt *jm = sq_prep(db, "PRAGMA journal_mode=WAL");
  SQCHK(db, sqlite3_step(jm), SQLITE_ROW);
  if (strcmp((const char *)sqlite3_column_text(jm, 0), "wal") != 0)
    die("sqlite refused journal_mode=WAL: %s", sqlite3_column_text(jm, 0));
  sqlite3_finalize(jm);
  snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sqlite_sync_pragma[sync]);
  sq_exec(db, sql);
  if (opt_sqlite_cache_kib > 0) {
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%d", opt_sqlite_cache_kib);
    sq_exec(db, sql);
  }
  if (create) sq_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  return db;
}

/* First commit: inserts `rows` 4000-byte blobs, ids 1..rows. */
static void sq_populate(sqlite3 *db, uint32_t rows) {
  static uint8_t buf[BLOB];
  sq_exec(db, "BEGIN IMMEDIATE");
  sqlite3_stmt *ins = sq_prep(db, "INSERT INTO t(id, v) VALUES(?1, ?2)");
  for (uint32_t i = 1; i <= rows; i++) {
    fill(buf, BLOB, i, 1);
    sqlite3_bind_int64(ins, 1, i);
    sqlite3_bind_blob(ins, 2, buf, BLOB, SQLITE_STATIC);
    sq_step_done(db, ins);
  }
  sqlite3_finalize(ins);
  sq_exec(db, "COMMIT");
}

typedef struct sq_writer {
  sqlite3 *db;
  sqlite3_stmt *begin, *upd, *commit;
  uint8_t buf[BLOB];
} sq_writer;

static void sq_writer_init(sq_writer *w, sqlite3 *db) {
  w->db = db;
  w->begin = sq_prep(db, "BEGIN IMMEDIATE");
  w->upd = sq_prep(db, "UPDATE t SET v = ?1 WHERE id = ?2");
  w->commit = sq_prep(db, "COMMIT");
}

static void sq_writer_fini(sq_writer *w) {
  sqlite3_finalize(w->begin);
  sqlite3_finalize(w->upd);
  sqlite3_finalize(w->commit);
}

static void sq_commit_one(sq_writer *w, picker *pk, uint64_t gen) {
  sq_step_done(w->db, w->begin);
  for (uint32_t k = 0; k < pk->per; k++) {
    uint32_t id = pick(pk, k);
    fill(w->buf, BLOB, id, gen);
    sqlite3_bind_blob(w->upd, 1, w->buf, BLOB, SQLITE_STATIC);
    sqlite3_bind_int64(w->upd, 2, id);
    sq_step_done(w->db, w->upd);
    if (sqlite3_changes(w->db) != 1) die("sqlite: update of row %u changed nothing", id);
  }
  sq_step_done(w->db, w->commit);
}

static const uint32_t pers[2] = {1, 1000};

static int want_commit(int s, int pi, int system) {
  return (opt_only_sync < 0 || opt_only_sync == s) &&
         (opt_only_pages < 0 || opt_only_pages == (long)pers[pi]) &&
         (opt_only_system < 0 || opt_only_system == system);
}

/* Flushes what earlier runs left dirty so it does not bleed into the next one. */
static void settle(void) {
  int fd = open(g_tmpdir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    syncfs(fd);
    close(fd);
  }
}

/* ---- commit runs: the two systems (and a baseline) in interleaved time slices ------ */

/*
 * A participant commits on its own fresh database. The participants of one
 * configuration take turns in slices of opt_slice seconds until each has run for
 * opt_secs, so that all of them see the same machine: on a shared machine the cost of
 * fdatasync can change tenfold from one second to the next. The baseline is a bare
 * pwrite of one 4128-byte frame at cycling offsets of a 1000-frame file followed by
 * fdatasync: the ceiling for any engine that syncs once per commit.
 */
enum { P_SEXTANT = 0, P_SQLITE = 1, P_RAW = 2 };

typedef struct participant {
  int kind;
  char path[8192];
  picker pk;
  uint64_t gen, n, ns;
  sx_db *sx;
  uint32_t base;
  sqlite3 *sq;
  sq_writer *w;
  int fd;
} participant;

static void part_open(participant *pt, int kind, int sync, uint32_t per) {
  static const char *names[3] = {"sextant.db", "sqlite.db", "raw.bin"};
  memset(pt, 0, sizeof *pt);
  pt->kind = kind;
  pt->gen = 1;
  pt->pk.rows = opt_rows;
  pt->pk.per = per;
  pt->pk.rng = 0x5eed5eedull;
  db_path(pt->path, sizeof pt->path, names[kind]);
  remove_db(pt->path);
  if (kind == P_SEXTANT) {
    pt->sx = sx_open(pt->path, sync);
    pt->base = sx_populate(pt->sx, opt_rows);
  } else if (kind == P_SQLITE) {
    pt->sq = sq_open(pt->path, sync, 1);
    sq_populate(pt->sq, opt_rows);
    pt->w = malloc(sizeof *pt->w);
    if (!pt->w) die("out of memory");
    sq_writer_init(pt->w, pt->sq);
  } else {
    enum { FR = 4128, NF = 1000 };
    static uint8_t buf[FR];
    pt->fd = open(pt->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (pt->fd < 0) die("open %s: %s", pt->path, strerror(errno));
    for (int i = 0; i < NF; i++) { /* frame by frame, as a WAL fills */
      fill(buf, FR - FR % 8, (uint32_t)i, 1);
      if (pwrite(pt->fd, buf, FR, (off_t)i * FR) != FR) die("pwrite: %s", strerror(errno));
    }
    if (fsync(pt->fd) != 0) die("fsync: %s", strerror(errno));
  }
}

static void part_step(participant *pt);

static void part_step(participant *pt) {
  pt->gen++;
  if (pt->kind == P_SEXTANT) {
    sx_commit_one(pt->sx, &pt->pk, pt->base, pt->gen);
  } else if (pt->kind == P_SQLITE) {
    sq_commit_one(pt->w, &pt->pk, pt->gen);
  } else {
    enum { FR = 4128, NF = 1000 };
    static uint8_t buf[FR];
    fill(buf, FR - FR % 8, (uint32_t)pt->gen, pt->gen);
    if (pwrite(pt->fd, buf, FR, (off_t)(pt->gen % NF) * FR) != FR)
      die("pwrite: %s", strerror(errno));
    if (fdatasync(pt->fd) != 0) die("fdatasync: %s", strerror(errno));
  }
}

static void part_close(participant *pt) {
  if (pt->kind == P_SEXTANT) {
    sx_db_free(pt->sx);
  } else if (pt->kind == P_SQLITE) {
    sq_writer_fini(pt->w);
    free(pt->w);
    SQCHK(pt->sq, sqlite3_close(pt->sq), SQLITE_OK);
  } else {
    close(pt->fd);
  }
  remove_db(pt->path);
}

/* Runs the participants `kinds` (in that order within each round of slices). */
static void run_sliced(participant *pts, const int *kinds, int np, int sync, uint32_t per) {
  for (int i = 0; i < np; i++) {
    part_open(&pts[i], kinds[i], sync, per);
    if (kinds[i] != P_RAW)
      for (long k = 0; k < opt_warmup; k++) part_step(&pts[i]);
  }
  settle();
  uint64_t budget = (uint64_t)(opt_secs * 1e9), slice = (uint64_t)(opt_slice * 1e9);
  for (;;) {
    int active = 0;
    for (int i = 0; i < np; i++) {
      participant *pt = &pts[i];
      if (pt->ns >= budget) continue;
      active = 1;
      uint64_t t0 = now_ns(), t1;
      do {
        part_step(pt);
        pt->n++;
        t1 = now_ns();
      } while (t1 - t0 < slice && pt->ns + (t1 - t0) < budget);
      pt->ns += t1 - t0;
    }
    if (!active) break;
  }
  for (int i = 0; i < np; i++) part_close(&pts[i]);
}

static double part_rate(const participant *pt) {
  return (double)pt->n / ((double)pt->ns / 1e9);
}

/* ---- read-session latency -------------------------------------------------------- */

typedef struct lat {
  double med_us, p99_us, mean_us;
} lat;

static lat lat_summary(uint64_t *ns, int n, uint64_t total_ns) {
  qsort(ns, (size_t)n, sizeof *ns, cmp_u64);
  lat l;
  l.med_us = (double)ns[n / 2] / 1e3;
  l.p99_us = (double)ns[(size_t)n * 99 / 100] / 1e3;
  l.mean_us = (double)total_ns / n / 1e3;
  return l;
}

/*
 * The continuous writer: one page / row per commit, sync off, on its own handle or
 * connection, until told to stop. By default a child process (as another process of
 * an application would be); with --writer-thread a thread of this process. Its
 * control block lives in shared memory either way.
 */
typedef struct writer_ctl {
  atomic_int stop;
  atomic_uint_fast64_t commits;
} writer_ctl;

typedef struct bg_writer {
  writer_ctl *ctl; /* MAP_SHARED */
  int is_sqlite;
  uint32_t base; /* Sextant: first data page */
  char path[8192];
  pid_t pid;
  pthread_t th;
} bg_writer;

static void *writer_loop(void *arg) {
  bg_writer *b = arg;
  picker pk = {opt_rows, 1, 0xb9b9b9b9ull};
  uint64_t gen = 1000000;
  if (b->is_sqlite) {
    sqlite3 *db = sq_open(b->path, 2, 0);
    sq_writer w;
    sq_writer_init(&w, db);
    while (!atomic_load(&b->ctl->stop)) {
      sq_commit_one(&w, &pk, ++gen);
      atomic_fetch_add(&b->ctl->commits, 1);
    }
    sq_writer_fini(&w);
    sqlite3_close(db);
  } else {
    sx_db *db = sx_open(b->path, SX_SYNC_OFF);
    while (!atomic_load(&b->ctl->stop)) {
      sx_commit_one(db, &pk, b->base, ++gen);
      atomic_fetch_add(&b->ctl->commits, 1);
    }
    sx_db_free(db);
  }
  return NULL;
}

/* Starts the writer. The caller holds no handle on the database (a child must not
 * inherit SQLite connections). */
static void bg_start(bg_writer *b, int is_sqlite, uint32_t base, const char *path) {
  b->is_sqlite = is_sqlite;
  b->base = base;
  snprintf(b->path, sizeof b->path, "%s", path);
  atomic_store(&b->ctl->stop, 0);
  atomic_store(&b->ctl->commits, 0);
  fflush(stdout);
  fflush(stderr);
  if (opt_writer_thread) {
    if (pthread_create(&b->th, NULL, writer_loop, b) != 0) die("pthread_create failed");
  } else {
    b->pid = fork();
    if (b->pid < 0) die("fork: %s", strerror(errno));
    if (b->pid == 0) {
      writer_loop(b);
      _exit(0);
    }
  }
  /* Wait until it is committing steadily. */
  uint64_t t0 = now_ns();
  while (atomic_load(&b->ctl->commits) < 50) {
    if (now_ns() - t0 > 10000000000ull) die("background writer made no progress");
    if (!opt_writer_thread && waitpid(b->pid, NULL, WNOHANG) == b->pid)
      die("background writer exited");
    usleep(1000);
  }
}

static void bg_stop(bg_writer *b) {
  atomic_store(&b->ctl->stop, 1);
  if (opt_writer_thread) {
    pthread_join(b->th, NULL);
    return;
  }
  int st = 0;
  if (waitpid(b->pid, &st, 0) != b->pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("background writer failed (status %d)", st);
}

static uint64_t *g_lat; /* opt_iters samples */

/* Opens a reader handle (after the writer started), measures, closes. */
static lat sx_read_bench(const char *path, int with_writer, uint32_t base, bg_writer *b,
                         double *wrate) {
  sx_error err = SX_ERROR_INIT;
  if (with_writer) bg_start(b, 0, base, path);
  sx_db *db = sx_open(path, SX_SYNC_FULL);
  for (int i = 0; i < 1000; i++) { /* warm up (slot cache, allocator) */
    sx_read *r = NULL;
    SXCHK(sx_read_begin(db, &r, &err));
    sx_read_free(r);
  }
  uint64_t c0 = atomic_load(&b->ctl->commits);
  uint64_t start = now_ns();
  for (int i = 0; i < opt_iters; i++) {
    uint64_t t0 = now_ns();
    sx_read *r = NULL;
    int rc = sx_read_begin(db, &r, &err);
    sx_read_free(r);
    uint64_t t1 = now_ns();
    if (rc) SXCHK(rc);
    g_lat[i] = t1 - t0;
  }
  uint64_t total = now_ns() - start;
  *wrate = (double)(atomic_load(&b->ctl->commits) - c0) / ((double)total / 1e9);
  sx_db_free(db);
  if (with_writer) bg_stop(b);
  return lat_summary(g_lat, opt_iters, total);
}

static lat sq_read_bench(const char *path, int with_writer, bg_writer *b, double *wrate) {
  if (with_writer) bg_start(b, 1, 0, path);
  sqlite3 *db = sq_open(path, 0, 0);
  sqlite3_stmt *begin = sq_prep(db, "BEGIN");
  sqlite3_stmt *sel = sq_prep(db, "SELECT 1 FROM t LIMIT 1");
  sqlite3_stmt *commit = sq_prep(db, "COMMIT");
  for (int i = 0; i < 1000; i++) { /* warm up */
    sq_step_done(db, begin);
    SQCHK(db, sqlite3_step(sel), SQLITE_ROW);
    sqlite3_reset(sel);
    sq_step_done(db, commit);
  }
  uint64_t c0 = atomic_load(&b->ctl->commits);
  uint64_t start = now_ns();
  for (int i = 0; i < opt_iters; i++) {
    uint64_t t0 = now_ns();
    sq_step_done(db, begin);
    SQCHK(db, sqlite3_step(sel), SQLITE_ROW);
    sqlite3_reset(sel);
    sq_step_done(db, commit);
    g_lat[i] = now_ns() - t0;
  }
  uint64_t total = now_ns() - start;
  *wrate = (double)(atomic_load(&b->ctl->commits) - c0) / ((double)total / 1e9);
  sqlite3_finalize(begin);
  sqlite3_finalize(sel);
  sqlite3_finalize(commit);
  SQCHK(db, sqlite3_close(db), SQLITE_OK);
  if (with_writer) bg_stop(b);
  return lat_summary(g_lat, opt_iters, total);
}

static double timer_overhead_ns(void) {
  enum { N = 100000 };
  static uint64_t v[N];
  for (int i = 0; i < N; i++) {
    uint64_t a = now_ns();
    v[i] = now_ns() - a;
  }
  qsort(v, N, sizeof *v, cmp_u64);
  return (double)v[N / 2];
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_storage [options]\n"
          "  --time SEC        seconds per commit configuration, system and repeat (default 2)\n"
          "  --slice SEC       the systems take turns in slices this long (default 0.1)\n"
          "  --warmup N        untimed commits on each fresh database before timing (default 0)\n"
          "  --repeats N       repeats of every measurement, median reported (default 3)\n"
          "  --iters N         read begin+end iterations per measurement (default 200000)\n"
          "  --rows N          data pages / rows per database (default 1000, >= 1000)\n"
          "  --dir PATH        where to make the temporary directory (default $TMPDIR or /tmp)\n"
          "  --sqlite-cache-kib N  SQLite PRAGMA cache_size=-N (default 65536; 0 = SQLite's\n"
          "                    default of 2000 KiB)\n"
          "  --commits-only / --reads-only   run one half\n"
          "  --writer-thread   the read benchmark's writer is a thread of this process, not a\n"
          "                    child process\n"
          "  --sync full|normal|off, --pages 1|1000, --system sextant|sqlite\n"
          "                    run only those commit configurations (for profiling); goal\n"
          "                    checks then cover only what ran\n");
}

static const char *fs_name(const char *dir) {
  struct statfs sf;
  if (statfs(dir, &sf) != 0) return "?";
  switch ((unsigned long)sf.f_type) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794c7630:
      return "overlayfs";
    case 0xF2F52010:
      return "f2fs";
    case 0x2FC12FC1:
      return "zfs";
    default:
      return "other";
  }
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"time", required_argument, 0, 't'},    {"slice", required_argument, 0, 'l'},
      {"warmup", required_argument, 0, 'u'},  {"repeats", required_argument, 0, 'r'},
      {"iters", required_argument, 0, 'i'},   {"rows", required_argument, 0, 'n'},
      {"dir", required_argument, 0, 'd'},     {"sqlite-cache-kib", required_argument, 0, 'c'},
      {"commits-only", no_argument, 0, 'C'},  {"reads-only", no_argument, 0, 'R'},
      {"writer-thread", no_argument, 0, 'W'}, {"sync", required_argument, 0, 'S'},
      {"pages", required_argument, 0, 'P'},   {"system", required_argument, 0, 'Y'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "t:l:u:r:i:n:d:c:CRWS:P:Y:h", lo, NULL)) != -1) {
    switch (c) {
      case 't':
        opt_secs = atof(optarg);
        break;
      case 'l':
        opt_slice = atof(optarg);
        break;
      case 'u':
        opt_warmup = atol(optarg);
        break;
      case 'r':
        opt_repeats = atoi(optarg);
        break;
      case 'i':
        opt_iters = atoi(optarg);
        break;
      case 'n':
        opt_rows = (uint32_t)strtoul(optarg, NULL, 10);
        break;
      case 'd':
        opt_dir = optarg;
        break;
      case 'c':
        opt_sqlite_cache_kib = atoi(optarg);
        break;
      case 'C':
        opt_reads = 0;
        break;
      case 'R':
        opt_commits = 0;
        break;
      case 'W':
        opt_writer_thread = 1;
        break;
      case 'S':
        for (int i = 0; i < 3; i++)
          if (!strcmp(optarg, sync_name[i])) opt_only_sync = i;
        if (opt_only_sync < 0) {
          usage(stderr);
          return 2;
        }
        break;
      case 'P':
        opt_only_pages = atol(optarg);
        break;
      case 'Y':
        opt_only_system = !strcmp(optarg, "sextant") ? 0 : !strcmp(optarg, "sqlite") ? 1 : -2;
        if (opt_only_system < -1) {
          usage(stderr);
          return 2;
        }
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind < argc || opt_secs <= 0 || opt_slice <= 0 || opt_warmup < 0 || opt_repeats < 1 ||
      opt_repeats > MAXREP || opt_iters < 100 || opt_rows < 1000 || opt_sqlite_cache_kib < 0) {
    usage(stderr);
    return 2;
  }
  const char *base = opt_dir ? opt_dir : getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  snprintf(g_tmpdir, sizeof g_tmpdir, "%s/sxbench.XXXXXX", base);
  if (!mkdtemp(g_tmpdir)) {
    fprintf(stderr, "bench_storage: cannot make a directory under %s: %s\n", base, strerror(errno));
    return 1;
  }
  g_owner_pid = getpid();
  atexit(cleanup_tmpdir);
  g_lat = malloc((size_t)opt_iters * sizeof *g_lat);
  if (!g_lat) die("out of memory");

  printf("bench_storage: Sextant %s vs SQLite %s\n", sx_version(), sqlite3_libversion());
  printf(
      "directory %s (%s); %ld online CPUs; %d repeats (median reported, [min..max]); "
      "%.1f s per system and commit configuration (%.2f s slices, %ld untimed warm-up commits); "
      "%u pages/rows per database; %d read iterations\n",
      g_tmpdir, fs_name(g_tmpdir), sysconf(_SC_NPROCESSORS_ONLN), opt_repeats, opt_secs, opt_slice,
      opt_warmup, opt_rows, opt_iters);
#if !defined(NDEBUG) || defined(SX_LOCK_CHECK)
  printf(
      "WARNING: not a Release build (NDEBUG unset or lock checker on): figures are not "
      "representative\n");
#endif
  if (opt_sqlite_cache_kib)
    printf(
        "SQLite: journal_mode=WAL, page_size=4096, wal_autocheckpoint=1000 (default), "
        "cache_size=-%d (KiB)\n",
        opt_sqlite_cache_kib);
  else
    printf(
        "SQLite: journal_mode=WAL, page_size=4096, wal_autocheckpoint=1000 (default), "
        "cache_size default\n");
  fflush(stdout);

  /* ---- commits ---- */
  static double sx_rate[3][2][MAXREP], sq_rate[3][2][MAXREP], raw_rate[MAXREP];
  static double ratio[3][2][MAXREP]; /* Sextant / SQLite, paired within a repeat */
  double la0[3] = {0, 0, 0}, la1[3] = {0, 0, 0};
  getloadavg(la0, 3);
  if (opt_commits) {
    for (int rep = 0; rep < opt_repeats; rep++) {
      for (int pi = 0; pi < 2; pi++) {
        for (int s = 0; s < 3; s++) {
          int kinds[3], np = 0;
          /* Alternate who goes first in each round of slices, repeat by repeat. */
          int first = rep % 2 ? P_SQLITE : P_SEXTANT;
          if (want_commit(s, pi, first)) kinds[np++] = first;
          if (want_commit(s, pi, !first)) kinds[np++] = !first;
          if (s == 0 && pi == 0 && opt_only_system < 0) kinds[np++] = P_RAW;
          if (np == 0) continue;
          participant pts[3];
          run_sliced(pts, kinds, np, s, pers[pi]);
          for (int i = 0; i < np; i++) {
            double r = part_rate(&pts[i]);
            if (pts[i].kind == P_SEXTANT)
              sx_rate[s][pi][rep] = r;
            else if (pts[i].kind == P_SQLITE)
              sq_rate[s][pi][rep] = r;
            else
              raw_rate[rep] = r;
            fprintf(
                stderr, "[repeat %d/%d] %-8s commit %-6s %4u page%s: %10.1f /s (%llu commits)\n",
                rep + 1, opt_repeats,
                pts[i].kind == P_SEXTANT  ? "sextant"
                : pts[i].kind == P_SQLITE ? "sqlite"
                                          : "baseline",
                sync_name[s], pers[pi], pers[pi] == 1 ? " " : "s", r, (unsigned long long)pts[i].n);
          }
          if (want_commit(s, pi, 0) && want_commit(s, pi, 1))
            ratio[s][pi][rep] = sx_rate[s][pi][rep] / sq_rate[s][pi][rep];
        }
      }
    }
  }

  /* ---- reads ---- */
  static double sxr_med[2][MAXREP], sxr_p99[2][MAXREP], sxr_mean[2][MAXREP], sxr_w[MAXREP];
  static double sqr_med[2][MAXREP], sqr_p99[2][MAXREP], sqr_mean[2][MAXREP], sqr_w[MAXREP];
  double tov = 0;
  if (opt_reads) {
    tov = timer_overhead_ns();
    char sxp[8192], sqp[8192];
    db_path(sxp, sizeof sxp, "read-sextant.db");
    db_path(sqp, sizeof sqp, "read-sqlite.db");
    sx_db *sdb = sx_open(sxp, SX_SYNC_FULL);
    uint32_t sbase = sx_populate(sdb, opt_rows);
    sx_db_free(sdb);
    sqlite3 *qdb = sq_open(sqp, 0, 1);
    sq_populate(qdb, opt_rows);
    SQCHK(qdb, sqlite3_close(qdb), SQLITE_OK);
    bg_writer *bw = calloc(1, sizeof *bw);
    if (!bw) die("out of memory");
    bw->ctl =
        mmap(NULL, sizeof *bw->ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (bw->ctl == MAP_FAILED) die("mmap: %s", strerror(errno));
    for (int rep = 0; rep < opt_repeats; rep++) {
      for (int w = 0; w < 2; w++) {
        for (int k = 0; k < 2; k++) {
          int sqlite_turn = (k + rep) % 2;
          double wr = 0;
          lat l;
          if (sqlite_turn) {
            l = sq_read_bench(sqp, w, bw, &wr);
            sqr_med[w][rep] = l.med_us;
            sqr_p99[w][rep] = l.p99_us;
            sqr_mean[w][rep] = l.mean_us;
            if (w) sqr_w[rep] = wr;
          } else {
            l = sx_read_bench(sxp, w, sbase, bw, &wr);
            sxr_med[w][rep] = l.med_us;
            sxr_p99[w][rep] = l.p99_us;
            sxr_mean[w][rep] = l.mean_us;
            if (w) sxr_w[rep] = wr;
          }
          fprintf(stderr,
                  "[repeat %d/%d] %-7s read %-11s: median %.3f us, p99 %.3f us, mean %.3f us",
                  rep + 1, opt_repeats, sqlite_turn ? "sqlite" : "sextant",
                  w ? "with writer" : "no writer", l.med_us, l.p99_us, l.mean_us);
          if (w) fprintf(stderr, " (writer %.0f commits/s)", wr);
          fprintf(stderr, "\n");
        }
      }
    }
    munmap(bw->ctl, sizeof *bw->ctl);
    free(bw);
    remove_db(sxp);
    remove_db(sqp);
  }

  /* ---- report ---- */
  getloadavg(la1, 3);
  printf("\nload average (1 min) at start %.2f, at end %.2f\n\n", la0[0], la1[0]);
  stat3 cx[3][2] = {{{0}}}, cq[3][2] = {{{0}}}, rt[3][2] = {{{0}}};
  double raw_med = 0;
  int raw_ran = opt_commits && want_commit(0, 0, 0) && opt_only_system < 0;
  if (opt_commits) {
    printf(
        "Commits per second: median of %d repeats [min..max]. Sextant rewrites N 4 KiB pages,\n"
        "SQLite updates N 4000-byte blob rows, one transaction per commit; in each repeat the\n"
        "systems take turns in %.2f s slices, %.1f s each. Ratio: median over repeats of the\n"
        "paired per-repeat ratio Sextant/SQLite.\n\n",
        opt_repeats, opt_slice, opt_secs);
    printf("%-6s %5s | %-30s | %-30s | %s\n", "sync", "pages", "Sextant commits/s",
           "SQLite (WAL) commits/s", "ratio");
    printf(
        "-------------------------------------------------------------------------------------"
        "--\n");
    for (int pi = 0; pi < 2; pi++) {
      for (int s = 0; s < 3; s++) {
        char a[64] = "-", b[64] = "-", rs[32] = "-";
        if (!want_commit(s, pi, 0) && !want_commit(s, pi, 1)) continue;
        if (want_commit(s, pi, 0)) {
          cx[s][pi] = summarize(sx_rate[s][pi], opt_repeats);
          snprintf(a, sizeof a, "%9.1f [%.1f..%.1f]", cx[s][pi].med, cx[s][pi].min, cx[s][pi].max);
        }
        if (want_commit(s, pi, 1)) {
          cq[s][pi] = summarize(sq_rate[s][pi], opt_repeats);
          snprintf(b, sizeof b, "%9.1f [%.1f..%.1f]", cq[s][pi].med, cq[s][pi].min, cq[s][pi].max);
        }
        if (want_commit(s, pi, 0) && want_commit(s, pi, 1)) {
          rt[s][pi] = summarize(ratio[s][pi], opt_repeats);
          snprintf(rs, sizeof rs, "%5.2fx", rt[s][pi].med);
        }
        printf("%-6s %5u | %-30s | %-30s | %s\n", sync_name[s], pers[pi], a, b, rs);
      }
    }
    if (raw_ran) {
      stat3 rr = summarize(raw_rate, opt_repeats);
      printf(
          "baseline (sliced with full/1): pwrite of one 4128-byte frame + fdatasync: %.1f /s "
          "[%.1f..%.1f]\n",
          rr.med, rr.min, rr.max);
      raw_med = rr.med;
    }
    printf("\n");
  }
  stat3 rx[2] = {{0}}, rq[2] = {{0}}, rxp[2] = {{0}}, rqp[2] = {{0}}, rxm[2] = {{0}},
        rqm[2] = {{0}};
  stat3 wx = {0}, wq = {0};
  if (opt_reads) {
    for (int w = 0; w < 2; w++) {
      rx[w] = summarize(sxr_med[w], opt_repeats);
      rq[w] = summarize(sqr_med[w], opt_repeats);
      rxp[w] = summarize(sxr_p99[w], opt_repeats);
      rqp[w] = summarize(sqr_p99[w], opt_repeats);
      rxm[w] = summarize(sxr_mean[w], opt_repeats);
      rqm[w] = summarize(sqr_mean[w], opt_repeats);
    }
    wx = summarize(sxr_w, opt_repeats);
    wq = summarize(sqr_w, opt_repeats);
    printf(
        "Read transaction begin+end latency in us (median of %d repeats of %d iterations;\n"
        "clock_gettime overhead %.0f ns per sample, included)\n\n",
        opt_repeats, opt_iters, tov);
    printf("%-12s | %-33s | %-33s\n", "", "Sextant sx_read_begin+sx_read_free",
           "SQLite BEGIN;SELECT 1..;COMMIT");
    printf("%-12s | %9s %9s %9s %-3s | %9s %9s %9s\n", "", "median", "p99", "mean", "", "median",
           "p99", "mean");
    printf(
        "------------------------------------------------------------------------------------\n");
    for (int w = 0; w < 2; w++)
      printf("%-12s | %9.3f %9.3f %9.3f %-3s | %9.3f %9.3f %9.3f\n",
             w ? "with writer" : "no writer", rx[w].med, rxp[w].med, rxm[w].med, "", rq[w].med,
             rqp[w].med, rqm[w].med);
    printf(
        "(writer: a %s with its own handle, sync off, 1 page/row per commit: Sextant %.0f\n"
        "commits/s, SQLite %.0f commits/s during the measurement)\n\n",
        opt_writer_thread ? "thread" : "child process", wx.med, wq.med);
  }

  /* Machine-readable figures. */
  if (opt_commits) {
    for (int pi = 0; pi < 2; pi++)
      for (int s = 0; s < 3; s++) {
        const char *unit = pers[pi] == 1 ? "page" : "pages";
        if (want_commit(s, pi, 0))
          printf("RESULT sextant commit %s %u %s: %.1f /s\n", sync_name[s], pers[pi], unit,
                 cx[s][pi].med);
        if (want_commit(s, pi, 1))
          printf("RESULT sqlite commit %s %u %s: %.1f /s\n", sync_name[s], pers[pi], unit,
                 cq[s][pi].med);
      }
  }
  if (raw_ran) printf("RESULT baseline pwrite+fdatasync: %.1f /s\n", raw_med);
  if (opt_reads) {
    for (int w = 0; w < 2; w++) {
      const char *cond = w ? "with-writer" : "no-writer";
      printf("RESULT sextant read begin+end %s median: %.3f us\n", cond, rx[w].med);
      printf("RESULT sextant read begin+end %s p99: %.3f us\n", cond, rxp[w].med);
      printf("RESULT sqlite read txn %s median: %.3f us\n", cond, rq[w].med);
      printf("RESULT sqlite read txn %s p99: %.3f us\n", cond, rqp[w].med);
    }
    printf("RESULT sextant background writer: %.0f commits/s\n", wx.med);
    printf("RESULT sqlite background writer: %.0f commits/s\n", wq.med);
  }

  printf("\nGoal checks\n");
  int fails = 0;
  if (opt_commits) {
    for (int pi = 0; pi < 2; pi++) {
      if (!want_commit(0, pi, 0) || !want_commit(0, pi, 1)) continue;
      int ok = cx[0][pi].med >= cq[0][pi].med;
      fails += !ok;
      printf(
          "GOAL sextant full commits/s >= sqlite synchronous=FULL, %u %s/commit: %s "
          "(sextant %.1f /s, sqlite %.1f /s; paired ratio %.2fx [%.2f..%.2f])\n",
          pers[pi], pers[pi] == 1 ? "page" : "pages", ok ? "PASS" : "FAIL", cx[0][pi].med,
          cq[0][pi].med, rt[0][pi].med, rt[0][pi].min, rt[0][pi].max);
    }
  }
  if (opt_reads) {
    for (int w = 0; w < 2; w++) {
      int ok = rx[w].med < 2.0;
      fails += !ok;
      printf("GOAL sextant read begin+end median < 2 us, %s: %s (%.3f us)\n",
             w ? "with writer" : "no writer", ok ? "PASS" : "FAIL", rx[w].med);
    }
  }
  printf("%d goal%s failed\n", fails, fails == 1 ? "" : "s");
  free(g_lat);
  return 0;
}
