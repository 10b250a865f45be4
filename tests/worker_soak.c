/*
 * worker_soak: the soak test (tools/soak.sh runs it; a 2-minute run is part of the
 * test command). Not a GoogleTest: it runs for a given time and reports counts.
 *
 *   worker_soak DIR SECONDS SEED
 *
 * One database, DIR/db, lives through rounds until SECONDS have passed. A round:
 *   - a page writer (the checkable page workload, workload.h; sync full or normal,
 *     a random autocheckpoint) and a collection writer (collection "c", HNSW: batch
 *     b upserts ids "b<b>-<j>" for j < 20 and the marker "m<b>", and deletes the odd
 *     ids of batch b - 5) commit as fast as they can, each reporting every
 *     acknowledged commit through a pipe; two readers verify snapshots over and
 *     over: each consistent, stable (the same generation and count when verified a
 *     second time in the same session) and never older than the one before;
 *   - mid-round the files are copied while the writers write;
 *   - after a random time every process is killed with SIGKILL;
 *   - invariants: sx_db_check passes (wl_check: the page workload's own pages,
 *     which no structure holds, aside); the page generation is the last acknowledged
 *     one or the one in flight; the collection holds every acknowledged batch (or
 *     the one in flight too) and its count is what that number of batches makes it;
 *     no reader saw a violation;
 *   - the mid-write copy is opened as it is and with random bytes flipped: in a
 *     child process under a 120 s alarm; every call (open, check, verify, count,
 *     search, a commit) must give OK, CORRUPT or NOT_FOUND, never crash or hang.
 * Every fifth round is a power loss instead: one writer alone commits through the
 * fault VFS (tests/faultvfs.c) with sync=full until the power is cut at a random
 * sync; unsynced writes are dropped or torn; every acknowledged commit must be there.
 *
 * Prints one line per round and at the end the counts: rounds, kills, commits
 * verified, power losses, corrupt copies opened (and how many opened fine), failures.
 * Exit 0, or 1 at the first broken invariant, its round's files kept in
 * DIR/fail-<round> as the round left them (verification opens them read-only), with
 * the round's mid-write copy. A database past 20,000 batches is replaced by a fresh
 * one, so hours of rounds stay fast.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "faultvfs.h"
#include "session/session.h"
#include "testutil.h"
#include "workload.h"

#define NPAGES 120u
#define PER 20u
#define DIM 8u
#define KEEP 5u /* batch b deletes the odd ids of batch b - KEEP */

static char g_dir[4096], g_db[4200];
static uint64_t g_rng;

static uint64_t rnd(uint64_t n) {
  return n ? sx_test_splitmix64(&g_rng) % n : 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(int fd, const char *fmt, ...) {
  char buf[600];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  if (write(fd, buf, (size_t)n) != n) _exit(6); /* the parent is gone */
}

/* ---- the collection workload --------------------------------------------------- */

static void vec_of(unsigned b, unsigned j, float *v) {
  for (unsigned i = 0; i < DIM; i++) v[i] = (float)((b * 131 + j * 17 + i * 7) % 1000) / 100.0f;
}

/* Ids batch b has after `batches` batches were committed. */
static unsigned ids_left(unsigned b, unsigned batches) {
  return b + KEEP < batches ? PER / 2 : PER;
}

static int has_id(sx_collection *c, const char *id, int *yes, sx_error *e) {
  sx_record *r = NULL;
  int rc = sx_collection_get(c, id, &r, e);
  sx_record_free(r);
  *yes = rc == SX_OK;
  return rc == SX_NOT_FOUND ? SX_OK : rc;
}

/* Batches present: the markers m0.. m<B-1> exist, none after (binary search). */
static int batches_present(sx_collection *c, unsigned *out, sx_error *e) {
  unsigned lo = 0, hi = 1;
  char id[32];
  int yes = 1, rc;
  for (;;) { /* grow hi until marker hi - 1 is missing */
    snprintf(id, sizeof id, "m%u", hi - 1);
    if ((rc = has_id(c, id, &yes, e))) return rc;
    if (!yes) break;
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) { /* markers < lo present, marker hi - 1 missing */
    unsigned mid = lo + (hi - lo) / 2;
    snprintf(id, sizeof id, "m%u", mid - 1);
    if ((rc = has_id(c, id, &yes, e))) return rc;
    if (yes)
      lo = mid;
    else
      hi = mid;
  }
  snprintf(id, sizeof id, "m%u", lo);
  if ((rc = has_id(c, id, &yes, e))) return rc;
  *out = yes ? lo + 1 : lo;
  return SX_OK;
}

static int coll_commit(sx_db *db, unsigned b, sx_error *e) {
  sx_write *w = NULL;
  int rc = sx_write_begin(db, 5000, &w, e);
  if (rc) return rc;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = DIM;
  co.index = SX_INDEX_HNSW;
  co.hnsw_m = 8;
  if (b == 0) rc = sx_write_create_collection(w, "c", &co, e);
  char ids[PER + 1][32];
  const char *ip[PER + 1];
  float v[(PER + 1) * DIM];
  for (unsigned j = 0; j < PER; j++) {
    snprintf(ids[j], sizeof ids[j], "b%u-%u", b, j);
    vec_of(b, j, v + j * DIM);
  }
  snprintf(ids[PER], sizeof ids[PER], "m%u", b);
  vec_of(b, PER, v + PER * DIM);
  for (unsigned j = 0; j <= PER; j++) ip[j] = ids[j];
  if (!rc) rc = sx_write_upsert(w, "c", PER + 1, ip, v, DIM, NULL, e);
  if (!rc && b >= KEEP) {
    char del[PER / 2][32];
    const char *dp[PER / 2];
    for (unsigned k = 0; k < PER / 2; k++) {
      snprintf(del[k], sizeof del[k], "b%u-%u", b - KEEP, 2 * k + 1);
      dp[k] = del[k];
    }
    size_t gone = 0;
    rc = sx_write_delete(w, "c", PER / 2, dp, &gone, e);
  }
  if (!rc)
    rc = sx_write_commit(w, e);
  else
    sx_write_abort(w);
  sx_write_free(w);
  return rc;
}

/* Checks the collection after `batches` batches: the count, and the ids of the
 * last few batches and of a few random ones. Returns 0 or a violation in why. */
static int coll_verify(sx_collection *c, unsigned batches, char *why, size_t wl) {
  sx_error e = SX_ERROR_INIT;
  uint64_t n = 0, want = 0;
  for (unsigned b = 0; b < batches; b++) want += 1 + ids_left(b, batches);
  if (sx_collection_count(c, &n, &e) != SX_OK)
    return snprintf(why, wl, "count: %.200s", e.message), 1;
  if (n != want)
    return snprintf(why, wl, "collection count %llu after %u batches, expected %llu",
                    (unsigned long long)n, batches, (unsigned long long)want),
           1;
  for (unsigned k = 0; k < 8 && batches; k++) {
    unsigned b = k < 4 ? (batches > k ? batches - 1 - k : 0) : (unsigned)rnd(batches);
    for (unsigned j = 0; j < PER; j++) {
      char id[32];
      int yes = 0;
      snprintf(id, sizeof id, "b%u-%u", b, j);
      if (has_id(c, id, &yes, &e)) return snprintf(why, wl, "get %s: %.200s", id, e.message), 1;
      int want_yes = j % 2 == 0 || b + KEEP >= batches;
      if (yes != want_yes)
        return snprintf(why, wl, "id %s %s after %u batches", id, yes ? "present" : "missing",
                        batches),
               1;
    }
  }
  return 0;
}

/* ---- the processes of a round --------------------------------------------------- */

static sx_db *open_db_ro(int sync, uint32_t ckpt, int read_only) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.read_only = read_only;
  o.sync = (sx_sync)sync;
  o.autocheckpoint_frames = ckpt;
  o.threads = 1;
  sx_db *db = NULL;
  return sx_db_open(&db, g_db, &o, NULL) == SX_OK ? db : NULL;
}

static sx_db *open_db(int sync, uint32_t ckpt) {
  return open_db_ro(sync, ckpt, 0);
}

/* A fresh database gets the page workload's first commit (its manifest on page 1 and
 * its data pages after it) before any writer process starts: were the collection
 * writer first, its catalog would take page 1. Returns the generation committed (1),
 * or 0 when the database already existed. */
static uint64_t init_db(uint64_t seed) {
  if (access(g_db, F_OK) == 0) return 0;
  sx_db *db = open_db(SX_SYNC_FULL, 0);
  sx_error e = SX_ERROR_INIT;
  int rc = db ? wl_commit(db, 1, NPAGES, NPAGES, seed, 5000, &e) : SX_IO;
  if (db) sx_db_close(db);
  if (rc)
    fprintf(stderr, "soak: creating %s: %s: %s\n", g_db, sx_status_name(rc), e.message), exit(1);
  return 1;
}

static void page_writer(int fd, int sync, uint32_t ckpt, uint64_t seed) {
  sx_db *db = open_db(sync, ckpt);
  if (!db) put(fd, "E open"), _exit(3);
  uint64_t g = 0;
  char why[256];
  if (wl_verify_db(db, &g, why, sizeof why)) put(fd, "V page writer: %s", why), _exit(4);
  for (;;) {
    sx_error e = SX_ERROR_INIT;
    int rc = wl_commit(db, g + 1, NPAGES, 1 + (uint32_t)(sx_test_splitmix64(&seed) % 40), seed,
                       5000, &e);
    if (rc == SX_OK) {
      put(fd, "A %llu", (unsigned long long)++g);
    } else if (rc != SX_BUSY) {
      put(fd, "V page commit %llu: %s: %s", (unsigned long long)g + 1, sx_status_name(rc),
          e.message);
      _exit(5);
    }
  }
}

static void coll_writer(int fd, int sync, uint32_t ckpt) {
  sx_db *db = open_db(sync, ckpt);
  if (!db) put(fd, "E open"), _exit(3);
  unsigned b = 0;
  sx_read *r = NULL;
  sx_collection *c = NULL;
  sx_error e = SX_ERROR_INIT;
  if (sx_read_begin(db, &r, &e) != SX_OK) put(fd, "V read: %s", e.message), _exit(4);
  int rc = sx_read_collection(r, "c", &c, &e);
  if (rc == SX_OK) rc = batches_present(c, &b, &e);
  if (rc != SX_OK && rc != SX_NOT_FOUND) put(fd, "V batches: %s", e.message), _exit(4);
  sx_collection_free(c);
  sx_read_free(r);
  for (;;) {
    rc = coll_commit(db, b, &e);
    if (rc == SX_OK)
      put(fd, "B %u", b++);
    else if (rc != SX_BUSY)
      put(fd, "V batch %u: %s: %s", b, sx_status_name(rc), e.message), _exit(5);
  }
}

static void reader(int fd) {
  sx_db *db = open_db(SX_SYNC_FULL, 0);
  if (!db) put(fd, "E open"), _exit(3);
  uint64_t last = 0;
  for (;;) {
    sx_read *r = NULL;
    sx_error e = SX_ERROR_INIT;
    if (sx_read_begin(db, &r, &e) != SX_OK) put(fd, "V read_begin: %s", e.message), _exit(4);
    uint64_t g1 = 0, g2 = 0, n1 = 0, n2 = 0;
    char why[256];
    if (wl_verify(r, &g1, why, sizeof why)) put(fd, "V reader: %s", why), _exit(4);
    if (g1 < last)
      put(fd, "V reader: generation %llu after %llu", (unsigned long long)g1,
          (unsigned long long)last),
          _exit(4);
    sx_collection *c = NULL;
    int has = sx_read_collection(r, "c", &c, &e) == SX_OK;
    if (has && sx_collection_count(c, &n1, &e)) put(fd, "V count: %s", e.message), _exit(4);
    usleep((useconds_t)(rand() % 2000));
    if (wl_verify(r, &g2, why, sizeof why) || g2 != g1)
      put(fd, "V snapshot moved: %llu then %llu (%s)", (unsigned long long)g1,
          (unsigned long long)g2, why),
          _exit(4);
    if (has && (sx_collection_count(c, &n2, &e) || n2 != n1))
      put(fd, "V snapshot count moved: %llu then %llu", (unsigned long long)n1,
          (unsigned long long)n2),
          _exit(4);
    sx_collection_free(c);
    sx_read_free(r);
    last = g1;
  }
}

/* ---- the driver ---------------------------------------------------------------------- */

typedef struct proc {
  pid_t pid;
  int fd; /* read end of its pipe */
  char buf[4096];
  size_t len;
} proc;

typedef struct round_state {
  uint64_t acked_g; /* last acknowledged page generation */
  long acked_b;     /* last acknowledged batch, -1 none */
  int violation;
  char why[700];
} round_state;

static void on_line(round_state *rs, const char *line) {
  if (line[0] == 'A')
    rs->acked_g = strtoull(line + 2, NULL, 10);
  else if (line[0] == 'B')
    rs->acked_b = strtol(line + 2, NULL, 10);
  else if (!rs->violation)
    rs->violation = 1, snprintf(rs->why, sizeof rs->why, "%.690s", line);
}

static void drain(proc *ps, int n, round_state *rs, int timeout_ms) {
  struct pollfd pf[8];
  for (int i = 0; i < n; i++) pf[i] = (struct pollfd){ps[i].fd, POLLIN, 0};
  if (poll(pf, (nfds_t)n, timeout_ms) <= 0) return;
  for (int i = 0; i < n; i++) {
    if (!(pf[i].revents & (POLLIN | POLLHUP))) continue;
    ssize_t got = read(ps[i].fd, ps[i].buf + ps[i].len, sizeof ps[i].buf - 1 - ps[i].len);
    if (got <= 0) continue;
    ps[i].len += (size_t)got;
    char *s = ps[i].buf, *nl;
    while ((nl = memchr(s, '\n', ps[i].buf + ps[i].len - s))) {
      *nl = 0;
      on_line(rs, s);
      s = nl + 1;
    }
    ps[i].len -= (size_t)(s - ps[i].buf);
    memmove(ps[i].buf, s, ps[i].len);
  }
}

static pid_t spawn(proc *p, int role, int sync, uint32_t ckpt, uint64_t seed) {
  int fds[2];
  if (pipe(fds)) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    srand((unsigned)seed);
    if (role == 0) page_writer(fds[1], sync, ckpt, seed);
    if (role == 1) coll_writer(fds[1], sync, ckpt);
    reader(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  p->pid = pid;
  p->fd = fds[0];
  p->len = 0;
  return pid;
}

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb");
  if (!a) return unlink(to), 0; /* absent: absent in the copy too */
  FILE *b = fopen(to, "wb");
  if (!b) return fclose(a), -1;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  fclose(a);
  return fclose(b);
}

static void copy_set(const char *from, const char *to) {
  static const char *const sfx[] = {"", "-wal", "-wal2"};
  char a[4300], b[4300];
  for (int i = 0; i < 3; i++) {
    snprintf(a, sizeof a, "%s%s", from, sfx[i]);
    snprintf(b, sizeof b, "%s%s", to, sfx[i]);
    copy_file(a, b);
  }
  snprintf(b, sizeof b, "%s-shm", to);
  unlink(b);
}

/* The invariants after a round, in this process (read-only: the files stay as the
 * round left them, for keep_failure). */
static int verify(round_state *rs, uint64_t prev_g, long prev_b, uint64_t *g_out, long *b_out,
                  int power_loss) {
  sx_db *db = open_db_ro(SX_SYNC_FULL, 0, 1);
  sx_error e = SX_ERROR_INIT;
  if (!db) return snprintf(rs->why, sizeof rs->why, "open after the round failed"), 1;
  int bad = 0;
  if (wl_check(db, &e) != SX_OK) bad = 1, snprintf(rs->why, sizeof rs->why, "check: %s", e.message);
  uint64_t g = 0;
  char why[300];
  if (!bad && wl_verify_db(db, &g, why, sizeof why))
    bad = 1, snprintf(rs->why, sizeof rs->why, "pages: %s", why);
  uint64_t lo = rs->acked_g > prev_g ? rs->acked_g : prev_g;
  if (!bad && (g < lo || g > lo + 1))
    bad = 1,
    snprintf(rs->why, sizeof rs->why,
             "page generation %llu, acknowledged %llu (before the round %llu)",
             (unsigned long long)g, (unsigned long long)rs->acked_g, (unsigned long long)prev_g);
  long b = prev_b;
  if (!bad && !power_loss) {
    sx_read *r = NULL;
    sx_collection *c = NULL;
    unsigned nb = 0;
    int rc = sx_read_begin(db, &r, &e);
    if (!rc) rc = sx_read_collection(r, "c", &c, &e);
    if (!rc) rc = batches_present(c, &nb, &e);
    long acked = rs->acked_b > prev_b ? rs->acked_b : prev_b;
    if (rc == SX_NOT_FOUND && acked < 0) {
      nb = 0;
    } else if (rc) {
      bad = 1, snprintf(rs->why, sizeof rs->why, "collection: %s", e.message);
    } else if ((long)nb < acked + 1 || (long)nb > acked + 2) {
      bad = 1,
      snprintf(rs->why, sizeof rs->why, "%u batches present, %ld acknowledged", nb, acked + 1);
    } else if (coll_verify(c, nb, why, sizeof why)) {
      bad = 1, snprintf(rs->why, sizeof rs->why, "collection: %s", why);
    }
    b = (long)nb - 1;
    sx_collection_free(c);
    sx_read_free(r);
  }
  sx_db_free(db);
  *g_out = g;
  *b_out = b;
  return bad;
}

/* Opens the copy at path (flipping `flips` random bytes first) in a child under an
 * alarm; 0: every call gave OK, CORRUPT or NOT_FOUND (*opened: the open worked). */
static int open_copy(const char *path, int flips, int *opened, char *why, size_t wl) {
  for (int i = 0; i < flips; i++) {
    static const char *const sfx[] = {"", "-wal", "-wal2"};
    char f[4300];
    snprintf(f, sizeof f, "%s%s", path, sfx[rnd(3)]);
    int fd = open(f, O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || st.st_size == 0) {
      if (fd >= 0) close(fd);
      continue;
    }
    off_t at = (off_t)rnd((uint64_t)st.st_size);
    uint8_t c = 0;
    if (pread(fd, &c, 1, at) == 1) {
      c ^= (uint8_t)(1 + rnd(255));
      if (pwrite(fd, &c, 1, at) != 1) {
      }
    }
    close(fd);
  }
  int fds[2];
  if (pipe(fds)) return snprintf(why, wl, "pipe"), 1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(120);
    sx_db *db = NULL;
    sx_error e = SX_ERROR_INIT;
    int rc = sx_db_open(&db, path, NULL, &e);
#define OKAY(rc) ((rc) == SX_OK || (rc) == SX_CORRUPT || (rc) == SX_NOT_FOUND)
    if (!OKAY(rc)) put(fds[1], "open gave %s: %s", sx_status_name(rc), e.message), _exit(1);
    if (!db) _exit(3); /* refused as CORRUPT: fine */
    rc = wl_check(db, &e);
    if (!OKAY(rc)) put(fds[1], "check gave %s: %s", sx_status_name(rc), e.message), _exit(1);
    uint64_t g;
    char w[200];
    wl_verify_db(db, &g, w, sizeof w);
    sx_read *r = NULL;
    rc = sx_read_begin(db, &r, &e);
    if (!OKAY(rc)) put(fds[1], "read gave %s: %s", sx_status_name(rc), e.message), _exit(1);
    sx_collection *c = NULL;
    if (r && sx_read_collection(r, "c", &c, &e) == SX_OK) {
      uint64_t n;
      rc = sx_collection_count(c, &n, &e);
      if (!OKAY(rc)) put(fds[1], "count gave %s: %s", sx_status_name(rc), e.message), _exit(1);
      float q[DIM];
      vec_of(3, 3, q);
      sx_results *res = NULL;
      rc = sx_collection_search(c, q, DIM, 10, NULL, &res, &e);
      sx_results_free(res);
      if (!OKAY(rc)) put(fds[1], "search gave %s: %s", sx_status_name(rc), e.message), _exit(1);
    }
    sx_collection_free(c);
    sx_read_free(r);
    rc = coll_commit(db, 1000000, &e);
    if (!OKAY(rc) && rc != SX_INVALID_ARGUMENT)
      put(fds[1], "commit gave %s: %s", sx_status_name(rc), e.message), _exit(1);
    sx_db_free(db);
    _exit(0);
  }
  close(fds[1]);
  char msg[700] = {0};
  ssize_t got = read(fds[0], msg, sizeof msg - 1);
  (void)got;
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  *opened = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 1 && WEXITSTATUS(st) != 3)
    return snprintf(why, wl, "damaged copy: child exit %d", WEXITSTATUS(st)), 1;
  if (WIFSIGNALED(st))
    return snprintf(why, wl, "opening a damaged copy: signal %d%s", WTERMSIG(st),
                    WTERMSIG(st) == SIGALRM ? " (a hang)" : ""),
           1;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 1) return snprintf(why, wl, "damaged copy: %s", msg), 1;
  return 0;
}

/* A power-loss round: one writer through the fault VFS, sync=full, cut at a random
 * sync. Runs in a child (the fault VFS is per process); reports acks on fd. */
static void power_writer(int fd, uint64_t seed) {
  sx__faultvfs *fv = sx__faultvfs_new();
  sx__faultvfs_crash_at_sync(fv, 1 + sx_test_splitmix64(&seed) % 60);
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.autocheckpoint_frames = 16 + (uint32_t)(sx_test_splitmix64(&seed) % 200);
  sx_db *db = NULL;
  uint64_t g = 0;
  if (sx__db_open_vfs(&db, g_db, &o, sx__faultvfs_vfs(fv), NULL) == SX_OK) {
    char why[256];
    if (wl_verify_db(db, &g, why, sizeof why)) put(fd, "V power writer: %s", why), _exit(4);
    while (!sx__faultvfs_crashed(fv)) {
      if (wl_commit(db, g + 1, NPAGES, 1 + (uint32_t)(sx_test_splitmix64(&seed) % 40), seed, 5000,
                    NULL) != SX_OK)
        break;
      put(fd, "A %llu", (unsigned long long)++g);
    }
  }
  sx_db_free(db);
  int how = seed & 1 ? SX__LOSS_TEAR : SX__LOSS_DROP;
  if (sx__faultvfs_power_loss(fv, how, seed) != SX_OK) put(fd, "E power loss"), _exit(7);
  sx__faultvfs_free(fv);
  _exit(0);
}

static void keep_failure(int round) {
  char to[4300], cmd[20000];
  snprintf(to, sizeof to, "%s/fail-%d", g_dir, round);
  mkdir(to, 0755);
  snprintf(cmd, sizeof cmd, "cp -a '%s'/db* '%s'/ 2>/dev/null; cp -a '%s'/copy* '%s'/ 2>/dev/null",
           g_dir, to, g_dir, to);
  if (system(cmd)) {
  }
  fprintf(stderr, "soak: the failing round's files are kept in %s\n", to);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: worker_soak DIR SECONDS SEED\n");
    return 2;
  }
  snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
  snprintf(g_db, sizeof g_db, "%s/db", g_dir);
  double seconds = atof(argv[2]);
  g_rng = strtoull(argv[3], NULL, 10);
  signal(SIGPIPE, SIG_IGN);
  mkdir(g_dir, 0755);
  printf("soak: %s for %.0f s, seed %s\n", g_dir, seconds, argv[3]);
  fflush(stdout);
  const double t0 = now_s();
  uint64_t prev_g = 0, kills = 0, verified = 0, power = 0, copies = 0, copies_ok = 0;
  long prev_b = -1;
  int round = 0, failures = 0;
  while (now_s() - t0 < seconds && !failures) {
    if (init_db(sx_test_splitmix64(&g_rng))) prev_g = 1;
    round++;
    round_state rs = {0, -1, 0, {0}};
    const int power_loss = round % 5 == 0;
    proc ps[4];
    int n = 0;
    char copy[4300];
    snprintf(copy, sizeof copy, "%s/copy", g_dir);
    if (power_loss) {
      power++;
      int fds[2];
      if (pipe(fds)) return 1;
      uint64_t seed = sx_test_splitmix64(&g_rng);
      pid_t pid = fork();
      if (pid == 0) close(fds[0]), power_writer(fds[1], seed);
      close(fds[1]);
      ps[0] = (proc){pid, fds[0], {0}, 0};
      n = 1;
      int st = 0;
      while (waitpid(pid, &st, WNOHANG) == 0) drain(ps, 1, &rs, 50);
      fcntl(fds[0], F_SETFL, O_NONBLOCK);
      drain(ps, 1, &rs, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        if (!rs.violation)
          rs.violation = 1,
          snprintf(rs.why, sizeof rs.why, "power writer ended with status %d", st);
      close(fds[0]);
    } else {
      const int sync = rnd(2) ? SX_SYNC_FULL : SX_SYNC_NORMAL;
      static const uint32_t ckpts[] = {16, 64, 256, 1000};
      spawn(&ps[n++], 0, sync, ckpts[rnd(4)], sx_test_splitmix64(&g_rng));
      spawn(&ps[n++], 1, sync, ckpts[rnd(4)], sx_test_splitmix64(&g_rng));
      spawn(&ps[n++], 2, 0, 0, sx_test_splitmix64(&g_rng));
      spawn(&ps[n++], 2, 0, 0, sx_test_splitmix64(&g_rng));
      const double len = 0.3 + (double)rnd(1500) / 1000.0, start = now_s();
      int copied = 0;
      while (now_s() - start < len && !rs.violation) {
        drain(ps, n, &rs, 20);
        if (!copied && now_s() - start > len / 2) copy_set(g_db, copy), copied = 1;
      }
      if (!copied) copy_set(g_db, copy);
      for (int i = 0; i < n; i++) kill(ps[i].pid, SIGKILL), kills++;
      for (int i = 0; i < n; i++) waitpid(ps[i].pid, NULL, 0);
      for (int k = 0; k < 3; k++) drain(ps, n, &rs, 0);
      for (int i = 0; i < n; i++) close(ps[i].fd);
    }
    uint64_t g = 0;
    long b = prev_b;
    if (!rs.violation && verify(&rs, prev_g, prev_b, &g, &b, power_loss)) rs.violation = 1;
    if (!rs.violation) {
      verified += (g - prev_g) + (uint64_t)(b - prev_b);
      prev_g = g;
      prev_b = b;
    }
    if (!rs.violation && !power_loss) {
      /* The mid-write copy, as it is, then twice with bytes flipped (each from a fresh
       * copy of the copy). */
      char dmg[4300];
      snprintf(dmg, sizeof dmg, "%s/copy-dmg", g_dir);
      for (int k = 0; k < 3 && !rs.violation; k++) {
        copy_set(copy, dmg);
        int opened = 0;
        if (open_copy(dmg, k == 0 ? 0 : 1 + (int)rnd(8), &opened, rs.why, sizeof rs.why))
          rs.violation = 1;
        copies++;
        copies_ok += (uint64_t)opened;
      }
    }
    printf("round %d%s: generation %llu, batches %ld%s%s\n", round,
           power_loss ? " (power loss)" : "", (unsigned long long)prev_g, prev_b + 1,
           rs.violation ? ", FAILED: " : "", rs.violation ? rs.why : "");
    fflush(stdout);
    if (rs.violation) {
      failures++;
      keep_failure(round);
    }
    if (!failures && prev_b > 20000) {
      /* Hours of rounds: start a fresh database before this one grows too slow. */
      static const char *const sfx[] = {"", "-wal", "-wal2", "-shm"};
      for (int i = 0; i < 4; i++) {
        char f[4300];
        snprintf(f, sizeof f, "%s%s", g_db, sfx[i]);
        unlink(f);
      }
      prev_g = 0;
      prev_b = -1;
    }
  }
  printf(
      "soak: rounds=%d kills=%llu commits_verified=%llu power_losses=%llu "
      "corrupt_copies_opened=%llu (opened: %llu, refused as CORRUPT: %llu) failures=%d, %.0f s\n",
      round, (unsigned long long)kills, (unsigned long long)verified, (unsigned long long)power,
      (unsigned long long)copies, (unsigned long long)copies_ok,
      (unsigned long long)(copies - copies_ok), failures, now_s() - t0);
  return failures ? 1 : 0;
}
