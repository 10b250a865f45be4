/*
 * worker_mp: the helper process of tests/test_multiproc.cc. One program, one role
 * per run, chosen by argv[1]; every role works on the checkable page workload
 * (workload.h) and reports on stdout as lines of key=value pairs.
 *
 *   writer PATH SECONDS SYNC AUTOCKPT NPAGES TOUCH
 *       Commits generation after generation, as fast as it can, for SECONDS,
 *       rewriting TOUCH data pages per commit (sync: full|normal|off; an empty
 *       database gets NPAGES data pages in its first commit). Every few
 *       commits it re-reads its own commit and watches the WAL (restarts). Prints
 *       "commits=N violations=V first_gen=F last_gen=G checkpoints=C restarts=R
 *       max_wal_frames=W".
 *   reader PATH SECONDS THREADS [PAUSE_US]
 *       THREADS threads share one handle; each loops: sx_read_begin (timed),
 *       wl_verify, generation never going backwards within the thread, end, then
 *       sleeps PAUSE_US microseconds (default 0). Prints
 *       "sessions=N violations=V max_begin_us=X first_gen=F last_gen=G".
 *   hold PATH [NSESSIONS]
 *       Begins NSESSIONS read sessions (default 1; stops early when every reader
 *       slot is taken), verifies the first, prints "gen=G sessions=K violations=V
 *       ready", then serves commands from stdin, one per line:
 *         verify  re-verifies every pinned session: "pinned gen=G violations=V"
 *         fresh   verifies a new session:         "fresh gen=G violations=V"
 *         quit    ends everything and exits 0
 *       At end of input it sleeps until killed.
 *   write-hold PATH
 *       Begins the write session (no waiting) and applies generation g+1 without
 *       committing; prints "gen=G ready" (G = the committed generation) or
 *       "status=NAME" and exits 3 if the lock is taken. Commands: "commit" (prints
 *       "committed status=NAME gen=G"), "quit"; at end of input it sleeps until killed.
 *   try-write PATH TIMEOUT_MS
 *       sx_write_begin with TIMEOUT_MS; on success commits generation g+1. Prints
 *       "status=NAME waited_ms=X gen=G" (G: generation committed, or current).
 *   check PATH
 *       wl_check (sx_db_check) and wl_verify of the latest snapshot: "check=NAME gen=G
 * violations=V". fork-hold PATH read|write Begins a read (or write) session, then fork()s a child
 * that never touches the database and lives until its stdin (inherited) reaches end of input.
 *       Prints "ready child=PID" and sleeps until killed.
 *
 * Exit status: 0 success, 1 a violation (first one described on stderr), 2 bad
 * usage or setup failure, 3 (write-hold) the writer lock was taken.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "os/os.h"
#include "sextant.h"
#include "workload.h"

#define WHY_LEN 512

static void die(const char *what, const sx_error *err) {
  fprintf(stderr, "worker_mp[%d]: %s: %s\n", (int)getpid(), what, err ? err->message : "");
  exit(2);
}

static void usage(void) {
  fprintf(stderr,
          "usage: worker_mp writer PATH SECONDS SYNC AUTOCKPT NPAGES TOUCH\n"
          "       worker_mp reader PATH SECONDS THREADS [PAUSE_US]\n"
          "       worker_mp hold PATH [NSESSIONS]\n"
          "       worker_mp write-hold PATH\n"
          "       worker_mp try-write PATH TIMEOUT_MS\n"
          "       worker_mp check PATH\n"
          "       worker_mp fork-hold PATH read|write\n");
  exit(2);
}

static sx_db *open_db(const char *path, sx_sync sync, uint32_t autockpt) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = sync;
  o.autocheckpoint_frames = autockpt;
  sx_db *db = NULL;
  sx_error err = SX_ERROR_INIT;
  if (sx_db_open(&db, path, &o, &err) != SX_OK) die("open", &err);
  return db;
}

static uint64_t deadline_after(double seconds) {
  return sx__now_ns() + (uint64_t)(seconds * 1e9);
}

/* Keeps the first violation's description; counts all. */
typedef struct tally {
  uint64_t violations;
  char first[WHY_LEN];
} tally;

static void violation(tally *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(tally *t, const char *fmt, ...) {
  if (t->violations++ == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->first, sizeof t->first, fmt, ap);
    va_end(ap);
  }
}

/* Sleeps until killed. */
static void sleep_forever(void) {
  for (;;) pause();
}

/* ---- writer ---------------------------------------------------------------- */

static int role_writer(int argc, char **argv) {
  if (argc != 8) usage();
  const char *path = argv[2];
  double seconds = atof(argv[3]);
  sx_sync sync = strcmp(argv[4], "full") == 0     ? SX_SYNC_FULL
                 : strcmp(argv[4], "normal") == 0 ? SX_SYNC_NORMAL
                 : strcmp(argv[4], "off") == 0    ? SX_SYNC_OFF
                                                  : (usage(), SX_SYNC_FULL);
  uint32_t autockpt = (uint32_t)strtoul(argv[5], NULL, 10);
  uint32_t npages = (uint32_t)strtoul(argv[6], NULL, 10);
  uint32_t touch = (uint32_t)strtoul(argv[7], NULL, 10);
  sx_db *db = open_db(path, sync, autockpt);
  sx_error err = SX_ERROR_INIT;
  tally t = {0, {0}};
  char why[WHY_LEN];
  uint64_t g = 0;
  if (wl_verify_db(db, &g, why, sizeof why)) violation(&t, "writer start: %s", why);
  uint64_t first = g, commits = 0, restarts = 0, max_wal = 0, prev_wal = 0;
  uint64_t seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
  uint64_t end = deadline_after(seconds);
  while (sx__now_ns() < end && t.violations == 0) {
    g++;
    int rc = wl_commit(db, g, npages, touch, seed, 10000, &err);
    if (rc != SX_OK) {
      violation(&t, "commit of generation %llu failed: %s: %s", (unsigned long long)g,
                sx_status_name(rc), err.message);
      break;
    }
    commits++;
    sx_db_stats st = SX_DB_STATS_INIT;
    if (sx_db_stats_get(db, &st, &err) == SX_OK) {
      if (st.wal_frames < prev_wal) restarts++;
      prev_wal = st.wal_frames;
      if (st.wal_frames > max_wal) max_wal = st.wal_frames;
    }
    if (commits % 64 == 0) {
      uint64_t seen = 0;
      if (wl_verify_db(db, &seen, why, sizeof why))
        violation(&t, "writer re-read: %s", why);
      else if (seen != g)
        violation(&t, "writer committed generation %llu but reads %llu", (unsigned long long)g,
                  (unsigned long long)seen);
    }
  }
  if (t.violations == 0) {
    uint64_t seen = 0;
    if (wl_verify_db(db, &seen, why, sizeof why))
      violation(&t, "writer final read: %s", why);
    else if (seen != first + commits)
      violation(&t, "writer made %llu commits after generation %llu but reads %llu",
                (unsigned long long)commits, (unsigned long long)first, (unsigned long long)seen);
  }
  sx_db_stats st = SX_DB_STATS_INIT;
  sx_db_stats_get(db, &st, NULL);
  printf(
      "commits=%llu violations=%llu first_gen=%llu last_gen=%llu checkpoints=%llu restarts=%llu "
      "max_wal_frames=%llu\n",
      (unsigned long long)commits, (unsigned long long)t.violations, (unsigned long long)first,
      (unsigned long long)(first + commits), (unsigned long long)st.checkpoints,
      (unsigned long long)restarts, (unsigned long long)max_wal);
  if (t.violations) fprintf(stderr, "worker_mp[%d] writer: %s\n", (int)getpid(), t.first);
  sx_db_free(db);
  return t.violations ? 1 : 0;
}

/* ---- reader ---------------------------------------------------------------- */

typedef struct rthread {
  pthread_t th;
  sx_db *db;
  uint64_t end;
  unsigned pause_us;
  uint64_t sessions, max_begin_ns, first_gen, last_gen;
  tally t;
} rthread;

static void *reader_main(void *arg) {
  rthread *r = arg;
  char why[WHY_LEN];
  int have = 0;
  while (sx__now_ns() < r->end) {
    sx_read *s = NULL;
    sx_error err = SX_ERROR_INIT;
    uint64_t t0 = sx__now_ns();
    int rc = sx_read_begin(r->db, &s, &err);
    uint64_t dt = sx__now_ns() - t0;
    if (dt > r->max_begin_ns) r->max_begin_ns = dt;
    if (rc != SX_OK) {
      violation(&r->t, "sx_read_begin: %s: %s", sx_status_name(rc), err.message);
      continue;
    }
    uint64_t g = 0;
    if (wl_verify(s, &g, why, sizeof why)) {
      violation(&r->t, "snapshot: %s", why);
    } else {
      if (have && g < r->last_gen)
        violation(&r->t, "generation went backwards: %llu after %llu", (unsigned long long)g,
                  (unsigned long long)r->last_gen);
      if (!have) r->first_gen = g;
      have = 1;
      r->last_gen = g;
    }
    r->sessions++;
    sx_read_free(s);
    if (r->pause_us) usleep(r->pause_us);
  }
  return NULL;
}

static int role_reader(int argc, char **argv) {
  if (argc != 5 && argc != 6) usage();
  unsigned pause_us = argc == 6 ? (unsigned)atoi(argv[5]) : 0;
  const char *path = argv[2];
  double seconds = atof(argv[3]);
  int nthreads = atoi(argv[4]);
  if (nthreads < 1 || nthreads > 256) usage();
  sx_db *db = open_db(path, SX_SYNC_FULL, 0);
  rthread *ts = calloc((size_t)nthreads, sizeof *ts);
  if (!ts) die("out of memory", NULL);
  uint64_t end = deadline_after(seconds);
  for (int i = 0; i < nthreads; i++) {
    ts[i].db = db;
    ts[i].end = end;
    ts[i].pause_us = pause_us;
    if (pthread_create(&ts[i].th, NULL, reader_main, &ts[i]) != 0) die("pthread_create", NULL);
  }
  uint64_t sessions = 0, violations = 0, max_ns = 0, first = UINT64_MAX, last = 0;
  const char *why = NULL;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(ts[i].th, NULL);
    sessions += ts[i].sessions;
    violations += ts[i].t.violations;
    if (ts[i].t.violations && !why) why = ts[i].t.first;
    if (ts[i].max_begin_ns > max_ns) max_ns = ts[i].max_begin_ns;
    if (ts[i].sessions && ts[i].first_gen < first) first = ts[i].first_gen;
    if (ts[i].last_gen > last) last = ts[i].last_gen;
  }
  if (first == UINT64_MAX) first = 0;
  printf("sessions=%llu violations=%llu max_begin_us=%llu first_gen=%llu last_gen=%llu\n",
         (unsigned long long)sessions, (unsigned long long)violations,
         (unsigned long long)(max_ns / 1000), (unsigned long long)first, (unsigned long long)last);
  if (why) fprintf(stderr, "worker_mp[%d] reader: %s\n", (int)getpid(), why);
  sx_db_free(db);
  free(ts);
  return violations ? 1 : 0;
}

/* ---- hold -------------------------------------------------------------------- */

static int role_hold(int argc, char **argv) {
  if (argc != 3 && argc != 4) usage();
  int want = argc == 4 ? atoi(argv[3]) : 1;
  if (want < 1) usage();
  sx_db *db = open_db(argv[2], SX_SYNC_FULL, 0);
  sx_read **rs = calloc((size_t)want, sizeof *rs);
  if (!rs) die("out of memory", NULL);
  int n = 0;
  sx_error err = SX_ERROR_INIT;
  while (n < want) {
    int rc = sx_read_begin(db, &rs[n], &err);
    if (rc == SX_BUSY && n > 0) break;
    if (rc) die("sx_read_begin", &err);
    n++;
  }
  char why[WHY_LEN];
  uint64_t g0 = 0;
  int bad = wl_verify(rs[0], &g0, why, sizeof why);
  if (bad) fprintf(stderr, "worker_mp[%d] hold: %s\n", (int)getpid(), why);
  printf("gen=%llu sessions=%d violations=%d ready\n", (unsigned long long)g0, n, bad);
  fflush(stdout);
  char line[128];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "verify", 6) == 0) {
      int v = 0;
      uint64_t g = 0;
      for (int i = 0; i < n; i++) {
        uint64_t gi = 0;
        int b = wl_verify(rs[i], &gi, why, sizeof why);
        if (b)
          fprintf(stderr, "worker_mp[%d] hold, pinned session %d: %s\n", (int)getpid(), i, why);
        if (!b && gi != g0) {
          b = 1;
          fprintf(
              stderr,
              "worker_mp[%d] hold, pinned session %d: began at generation %llu, now reads %llu\n",
              (int)getpid(), i, (unsigned long long)g0, (unsigned long long)gi);
        }
        v += b;
        if (i == 0) g = gi;
      }
      printf("pinned gen=%llu violations=%d\n", (unsigned long long)g, v);
    } else if (strncmp(line, "fresh", 5) == 0) {
      uint64_t g = 0;
      int b = wl_verify_db(db, &g, why, sizeof why);
      if (b) fprintf(stderr, "worker_mp[%d] hold, fresh session: %s\n", (int)getpid(), why);
      printf("fresh gen=%llu violations=%d\n", (unsigned long long)g, b);
    } else if (strncmp(line, "quit", 4) == 0) {
      for (int i = 0; i < n; i++) sx_read_free(rs[i]);
      free(rs);
      sx_db_free(db);
      return 0;
    } else {
      printf("error=unknown-command\n");
    }
    fflush(stdout);
  }
  sleep_forever();
  return 0;
}

/* ---- write-hold / try-write ---------------------------------------------------- */

static int role_write_hold(int argc, char **argv) {
  if (argc != 3) usage();
  sx_db *db = open_db(argv[2], SX_SYNC_FULL, 0);
  char why[WHY_LEN];
  uint64_t g = 0;
  if (wl_verify_db(db, &g, why, sizeof why)) {
    fprintf(stderr, "worker_mp[%d] write-hold: %s\n", (int)getpid(), why);
    return 1;
  }
  sx_write *w = NULL;
  sx_error err = SX_ERROR_INIT;
  int rc = sx_write_begin(db, 0, &w, &err);
  if (rc) {
    printf("status=%s\n", sx_status_name(rc));
    fflush(stdout);
    sx_db_free(db);
    return 3;
  }
  if (wl_apply(w, g + 1, 0, 3, 77, &err)) die("wl_apply", &err);
  printf("gen=%llu ready\n", (unsigned long long)g);
  fflush(stdout);
  char line[128];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "commit", 6) == 0) {
      rc = sx_write_commit(w, &err);
      printf("committed status=%s gen=%llu\n", sx_status_name(rc), (unsigned long long)(g + 1));
    } else if (strncmp(line, "quit", 4) == 0) {
      sx_write_free(w);
      sx_db_free(db);
      return 0;
    } else {
      printf("error=unknown-command\n");
    }
    fflush(stdout);
  }
  sleep_forever();
  return 0;
}

static int role_try_write(int argc, char **argv) {
  if (argc != 4) usage();
  sx_db *db = open_db(argv[2], SX_SYNC_FULL, 0);
  int timeout = atoi(argv[3]);
  char why[WHY_LEN];
  uint64_t g = 0;
  if (wl_verify_db(db, &g, why, sizeof why)) {
    fprintf(stderr, "worker_mp[%d] try-write: %s\n", (int)getpid(), why);
    return 1;
  }
  sx_write *w = NULL;
  sx_error err = SX_ERROR_INIT;
  uint64_t t0 = sx__now_ns();
  int rc = sx_write_begin(db, timeout, &w, &err);
  uint64_t waited = (sx__now_ns() - t0) / 1000000u;
  if (rc == SX_OK) {
    rc = wl_apply(w, g + 1, 0, 3, 99, &err);
    if (!rc)
      rc = sx_write_commit(w, &err);
    else
      sx_write_abort(w);
    if (!rc) g++;
    sx_write_free(w);
  }
  printf("status=%s waited_ms=%llu gen=%llu\n", sx_status_name(rc), (unsigned long long)waited,
         (unsigned long long)g);
  sx_db_free(db);
  return rc == SX_OK || rc == SX_BUSY ? 0 : 1;
}

static int role_check(int argc, char **argv) {
  if (argc != 3) usage();
  sx_db *db = open_db(argv[2], SX_SYNC_FULL, 0);
  sx_error err = SX_ERROR_INIT;
  int rc = wl_check(db, &err);
  if (rc) fprintf(stderr, "worker_mp[%d] check: %s\n", (int)getpid(), err.message);
  char why[WHY_LEN];
  uint64_t g = 0;
  int bad = wl_verify_db(db, &g, why, sizeof why);
  if (bad) fprintf(stderr, "worker_mp[%d] check: %s\n", (int)getpid(), why);
  printf("check=%s gen=%llu violations=%d\n", sx_status_name(rc), (unsigned long long)g, bad);
  sx_db_free(db);
  return rc || bad ? 1 : 0;
}

static int role_fork_hold(int argc, char **argv) {
  if (argc != 4) usage();
  int writing = strcmp(argv[3], "write") == 0;
  if (!writing && strcmp(argv[3], "read") != 0) usage();
  sx_db *db = open_db(argv[2], SX_SYNC_FULL, 0);
  sx_error err = SX_ERROR_INIT;
  sx_read *r = NULL;
  sx_write *w = NULL;
  if (writing ? sx_write_begin(db, 0, &w, &err) : sx_read_begin(db, &r, &err)) die("begin", &err);
  fflush(stdout);
  int started[2];
  if (pipe(started) != 0) die("pipe", NULL);
  pid_t child = fork();
  if (child < 0) die("fork", NULL);
  if (child == 0) {
    /* A child that does its own work and never uses the inherited handle. It
     * says when it runs, so the parent is not killed before the child is past
     * fork() (and its atfork handlers). */
    char b[64] = {0};
    close(started[0]);
    if (write(started[1], b, 1) != 1) _exit(2);
    close(started[1]);
    while (read(0, b, sizeof b) > 0) {
    }
    _exit(0);
  }
  close(started[1]);
  char c;
  if (read(started[0], &c, 1) != 1) die("fork child did not start", NULL);
  close(started[0]);
  printf("ready child=%d\n", (int)child);
  fflush(stdout);
  sleep_forever();
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) usage();
  const char *role = argv[1];
  if (strcmp(role, "writer") == 0) return role_writer(argc, argv);
  if (strcmp(role, "reader") == 0) return role_reader(argc, argv);
  if (strcmp(role, "hold") == 0) return role_hold(argc, argv);
  if (strcmp(role, "write-hold") == 0) return role_write_hold(argc, argv);
  if (strcmp(role, "try-write") == 0) return role_try_write(argc, argv);
  if (strcmp(role, "check") == 0) return role_check(argc, argv);
  if (strcmp(role, "fork-hold") == 0) return role_fork_hold(argc, argv);
  usage();
  return 2;
}
