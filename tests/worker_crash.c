/*
 * worker_crash: the writer that tests/test_crash.cc kills.
 *
 *   worker_crash PATH FD MODE AFTER SEED
 *
 * Opens PATH with sync=full and a small autocheckpoint (32 frames, so kills also
 * land inside checkpoints and WAL restarts), reads the current generation g with
 * wl_verify_db (a violation exits with status 4), reports "S g" and then commits
 * g+1, g+2, ... for ever with wl_commit, each touching 1..64 of 200 data pages (so
 * commits range from 3 to 66 frames), reporting "A g" after each acknowledged
 * commit. Reports are single write()s of one line to the pipe fd FD, so the parent
 * knows exactly which commits were acknowledged whenever it kills us.
 *
 * MODE "run" just commits. The other modes make the kill land at a chosen point of
 * the commit that follows the first AFTER commits: the process reports
 * "X MODE g" (g being the generation in flight) and then stops, waiting for the
 * parent's SIGKILL. They work through a VFS that wraps the default one:
 *   wal-write   the commit's WAL write stores only the first half of its bytes
 *               (a torn append, possibly including a restarted WAL's header);
 *   wal-sync    all frames are written (commit frame included), not yet synced,
 *               indexed or published;
 *   publish     frames synced and their wal-index entries appended, but the shared
 *               header not yet published (the header page of P-shm is made
 *               read-only after the WAL sync; the writer's first store into it
 *               faults and the SIGSEGV handler stops there);
 *   ckpt-write  the commit is published, and the autocheckpoint after it has
 *               copied some pages into P (stops at the second page write into P).
 * Exit statuses: 2 usage, 3 open failed, 4 inconsistent database found, 5 a commit
 * failed, 6 the parent went away.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "os/os_internal.h"
#include "session/session.h"
#include "testutil.h"
#include "workload.h"

#define NPAGES 200u
#define MAX_TOUCH 64u
#define AUTOCHECKPOINT 32u

enum { MODE_RUN, MODE_WAL_WRITE, MODE_WAL_SYNC, MODE_PUBLISH, MODE_CKPT_WRITE };
static const char *const mode_names[] = {"run", "wal-write", "wal-sync", "publish", "ckpt-write"};

static int g_fd = -1;
static int g_mode = MODE_RUN;
static volatile sig_atomic_t g_armed;
static const char *g_path;
static sx__vfs g_wrap;
static sx__vfs *g_def;
static void *g_hdr_addr;
static size_t g_hdr_len;
static int g_p_writes;
static char g_stall_msg[96];
static size_t g_stall_len;

static void put(const char *buf, size_t n) {
  /* One write of a short line to a pipe is atomic; a failed write means the parent
   * is gone, and there is nobody left to work for. */
  ssize_t r;
  do {
    r = write(g_fd, buf, n);
  } while (r < 0 && errno == EINTR);
  if (r != (ssize_t)n) _exit(6);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char buf[96];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  put(buf, (size_t)n);
}

/* Reports the stall point and waits for SIGKILL. Async-signal-safe. */
static void stall(void) {
  put(g_stall_msg, g_stall_len);
  for (;;) pause();
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The two WAL files: P-wal (even generations) and P-wal2 (odd). */
static int is_wal(const char *path) {
  return ends_with(path, "-wal") || ends_with(path, "-wal2");
}

static int wrap_open(sx__vfs *vfs, const char *path, int flags, sx__file **out, sx_error *err) {
  (void)vfs;
  /* The default open points the file at the table it was called with: ours. */
  return g_def->open(&g_wrap, path, flags, out, err);
}

/* Size of the last write to the WAL: a new WAL generation's header is written and
 * synced alone (64 bytes) before its frames, and that sync is not the frames' sync. */
static size_t g_last_wal_write;

static int wrap_write(sx__file *f, const void *buf, size_t n, uint64_t off, sx_error *err) {
  if (is_wal(f->path)) g_last_wal_write = n;
  if (g_armed && g_mode == MODE_WAL_WRITE && is_wal(f->path)) {
    size_t half = n / 2 ? n / 2 : 1;
    g_def->write(f, buf, half, off, NULL);
    stall();
  }
  if (g_armed && g_mode == MODE_CKPT_WRITE && strcmp(f->path, g_path) == 0 && ++g_p_writes >= 2)
    stall();
  return g_def->write(f, buf, n, off, err);
}

static int wrap_sync(sx__file *f, int data_only, sx_error *err) {
  int wal = is_wal(f->path);
  if (g_armed && g_mode == MODE_WAL_SYNC && wal && g_last_wal_write > 64) stall();
  int rc = g_def->sync(f, data_only, err);
  if (g_armed && g_mode == MODE_PUBLISH && wal && rc == SX_OK && g_hdr_addr) {
    /* Next: the commit appends its wal-index entries (other mappings), then
     * publishes the header, which now faults. */
    if (mprotect(g_hdr_addr, g_hdr_len, PROT_READ) != 0) {
      perror("worker_crash: mprotect");
      _exit(5);
    }
  }
  return rc;
}

static int wrap_mmap(sx__file *f, uint64_t off, size_t len, int writable, void **out,
                     sx_error *err) {
  int rc = g_def->mmap(f, off, len, writable, out, err);
  if (rc == SX_OK && off == 0 && writable && ends_with(f->path, "-shm")) {
    g_hdr_addr = *out;
    g_hdr_len = len;
  }
  return rc;
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
  (void)ctx;
  const char *a = (const char *)si->si_addr, *h = (const char *)g_hdr_addr;
  if (g_mode == MODE_PUBLISH && g_armed && h && a >= h && a < h + g_hdr_len) stall();
  /* Not ours: die of it as usual. */
  signal(sig, SIG_DFL);
}

static int parse_mode(const char *s) {
  for (int i = 0; i < (int)(sizeof mode_names / sizeof mode_names[0]); i++)
    if (strcmp(s, mode_names[i]) == 0) return i;
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 6 || (g_mode = parse_mode(argv[3])) < 0) {
    fprintf(stderr, "usage: %s PATH FD run|wal-write|wal-sync|publish|ckpt-write AFTER SEED\n",
            argv[0]);
    return 2;
  }
  g_path = argv[1];
  g_fd = atoi(argv[2]);
  uint64_t after = strtoull(argv[4], NULL, 10);
  uint64_t seed = strtoull(argv[5], NULL, 10);
  signal(SIGPIPE, SIG_IGN);

  g_def = sx__vfs_default();
  g_wrap = *g_def;
  g_wrap.name = "worker_crash";
  g_wrap.open = wrap_open;
  g_wrap.write = wrap_write;
  g_wrap.sync = wrap_sync;
  g_wrap.mmap = wrap_mmap;
  if (g_mode == MODE_PUBLISH) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
  }

  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.sync = SX_SYNC_FULL;
  o.autocheckpoint_frames = AUTOCHECKPOINT;
  sx_db *db = NULL;
  sx_error err = SX_ERROR_INIT;
  int rc = sx__db_open_vfs(&db, g_path, &o, &g_wrap, &err);
  if (rc) {
    fprintf(stderr, "worker_crash: open '%s': %s: %s\n", g_path, sx_status_name(rc), err.message);
    return 3;
  }
  uint64_t g = 0;
  char why[512];
  int bad = wl_verify_db(db, &g, why, sizeof why);
  if (bad) {
    fprintf(stderr, "worker_crash: '%s' is inconsistent (%d violations): %s\n", g_path, bad, why);
    return 4;
  }
  say("S %llu\n", (unsigned long long)g);

  uint64_t st = seed;
  for (uint64_t n = 0;; n++) {
    if (n >= after && g_mode != MODE_RUN) {
      /* The message names the commit in flight (ckpt-write may stall in a later one). */
      g_stall_len = (size_t)snprintf(g_stall_msg, sizeof g_stall_msg, "X %s %llu\n",
                                     mode_names[g_mode], (unsigned long long)(g + 1));
      g_armed = 1;
    }
    uint32_t touch = 1 + (uint32_t)(sx_test_splitmix64(&st) % MAX_TOUCH);
    rc = wl_commit(db, g + 1, NPAGES, touch, seed, 10000, &err);
    if (rc) {
      fprintf(stderr, "worker_crash: commit %llu: %s: %s\n", (unsigned long long)(g + 1),
              sx_status_name(rc), err.message);
      return 5;
    }
    g++;
    say("A %llu\n", (unsigned long long)g);
  }
}
