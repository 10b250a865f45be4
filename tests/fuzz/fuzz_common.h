/*
 * What the fuzzers share: a private directory per process (on /dev/shm when it
 * exists: the file fuzzer writes a database per input), and file helpers.
 */
#ifndef SX_FUZZ_COMMON_H
#define SX_FUZZ_COMMON_H

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sextant.h"

/* The process's scratch directory, made once. */
static inline const char *fz_dir(void) {
  static char dir[256];
  if (!dir[0]) {
    const char *base =
        access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(dir, sizeof dir, "%s/sx-fuzz-%d", base, (int)getpid());
    mkdir(dir, 0700);
  }
  return dir;
}

static inline void fz_path(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s", fz_dir(), name);
}

/* Removes P, P-wal, P-wal2, P-shm of database name. */
static inline void fz_remove_db(const char *name) {
  static const char *suffix[] = {"", "-wal", "-wal2", "-shm"};
  char p[512];
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/%s%s", fz_dir(), name, suffix[i]);
    unlink(p);
  }
}

static inline int fz_write_file(const char *path, const uint8_t *d, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = n ? fwrite(d, 1, n, f) : 0;
  fclose(f);
  return w == n ? 0 : -1;
}

static inline uint8_t *fz_read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  *n = 0;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = (uint8_t *)malloc(len > 0 ? (size_t)len : 1);
  if (b && len > 0 && fread(b, 1, (size_t)len, f) != (size_t)len) len = 0;
  fclose(f);
  *n = len > 0 ? (size_t)len : 0;
  return b;
}

static inline sx_db *fz_open(const char *path, int read_only) {
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.read_only = read_only;
  o.sync = SX_SYNC_OFF;
  o.threads = 1;
  sx_db *db = NULL;
  sx_error err = SX_ERROR_INIT;
  if (sx_db_open(&db, path, &o, &err) != SX_OK) return NULL;
  return db;
}

/* A seed file: dir/name with bytes d. */
static inline void fz_seed(const char *dir, const char *name, const uint8_t *d, size_t n) {
  char p[1024];
  mkdir(dir, 0755);
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (fz_write_file(p, d, n)) fprintf(stderr, "cannot write %s\n", p);
}

#endif
