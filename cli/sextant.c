/*
 * sextant: the command-line tool. Looks inside a database, copies it, loads and dumps
 * vectors, searches, all through the public API (sextant.h) only.
 *
 *   sextant [--json] COMMAND [OPTIONS] DATABASE [ARGS]
 *
 * Exit codes (stable; scripts may rely on them):
 *   0  success
 *   1  an error the library reported (I/O, busy, ...), or a bad input file
 *   2  usage: unknown command or option, missing or bad argument
 *   3  the database failed its integrity check, or a file is not a valid database
 *   4  not found: the database, a collection, or (get) one or more ids
 *   5  busy: the writer lock was not available in time
 *   130 interrupted (SIGINT); an import keeps the batches it committed
 *
 * Output is text for people, or with --json one JSON document (get and export write
 * JSON Lines either way). Errors go to stderr, one line, naming the value at fault.
 * A progress bar (rate and ETA) goes to stderr on long work when it is a terminal.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sextant.h"

enum {
  EX_OK = 0,
  EX_ERR = 1,
  EX_USAGE = 2,
  EX_CORRUPT = 3,
  EX_NOTFOUND = 4,
  EX_BUSY = 5,
  EX_INT = 130
};

static int g_json;              /* --json */
static int g_progress = -1;     /* -1: when stderr is a terminal */
static int g_timeout_ms = 5000; /* writer lock wait */
static const char *g_cmd = "";
static sx_cancel *g_cancel;
static volatile sig_atomic_t g_interrupted;

/* ---- errors ---------------------------------------------------------------------- */

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "sextant %s: ", g_cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return code;
}

static int status_exit(int st) {
  switch (st) {
    case SX_OK:
      return EX_OK;
    case SX_NOT_FOUND:
      return EX_NOTFOUND;
    case SX_CORRUPT:
    case SX_VERSION:
      return EX_CORRUPT;
    case SX_BUSY:
      return EX_BUSY;
    case SX_CANCELLED:
      return EX_INT;
    case SX_INVALID_ARGUMENT:
    case SX_DIMENSION_MISMATCH:
      return EX_ERR;
    default:
      return EX_ERR;
  }
}

/* Reports a library failure: "sextant CMD: NAME: message". */
static int sx_fail(int st, const sx_error *e) {
  return fail(status_exit(st), "%s: %s", sx_status_name(st),
              e->message[0] ? e->message : "(no detail)");
}

static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
  sx_cancel_set(g_cancel);
}

/* ---- progress bar ------------------------------------------------------------------ */

typedef struct progress {
  const char *what;
  double t0, last;
  int on;
} progress;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress_begin(progress *p, const char *what) {
  p->what = what;
  p->t0 = p->last = now_s();
  p->on = g_progress < 0 ? isatty(2) : g_progress;
}

static void progress_show(progress *p, uint64_t done, uint64_t total, int final) {
  if (!p->on) return;
  double t = now_s();
  if (!final && t - p->last < 0.2) return;
  p->last = t;
  double el = t - p->t0, rate = el > 0 ? done / el : 0;
  if (total) {
    double eta = rate > 0 ? (total - done) / rate : 0;
    int w = 30, fill = (int)(w * (double)done / total);
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r%s [%s] %" PRIu64 "/%" PRIu64 " %5.1f%%  %.0f/s  ETA %.0fs ", p->what, bar,
            done, total, 100.0 * done / total, rate, eta);
  } else {
    fprintf(stderr, "\r%s %" PRIu64 "  %.0f/s ", p->what, done, rate);
  }
  if (final) fprintf(stderr, "\n");
  fflush(stderr);
}

static void backup_progress(void *ctx, uint64_t done, uint64_t total) {
  progress_show((progress *)ctx, done, total, 0);
}

/* ---- opening ------------------------------------------------------------------------ */

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* Opens the database; `create` allows making a new one, otherwise it must exist. */
static int open_db(const char *path, int read_only, int create, sx_db **db) {
  sx_error e = SX_ERROR_INIT;
  if (!create && !file_exists(path)) return fail(EX_NOTFOUND, "database '%s' does not exist", path);
  sx_open_options o = SX_OPEN_OPTIONS_INIT;
  o.read_only = read_only;
  int st = sx_db_open(db, path, &o, &e);
  return st ? sx_fail(st, &e) : EX_OK;
}

static int begin_write(sx_db *db, sx_write **w) {
  sx_error e = SX_ERROR_INIT;
  sx_write_options wo = SX_WRITE_OPTIONS_INIT;
  wo.timeout_ms = g_timeout_ms;
  wo.cancel_token = g_cancel;
  int st = sx_write_begin_opts(db, &wo, w, &e);
  return st ? sx_fail(st, &e) : EX_OK;
}

/* A read view of a collection. */
static int read_coll(sx_db *db, const char *name, sx_read **r, sx_collection **c) {
  sx_error e = SX_ERROR_INIT;
  int st = sx_read_begin(db, r, &e);
  if (!st) st = sx_read_collection(*r, name, c, &e);
  return st ? sx_fail(st, &e) : EX_OK;
}

static uint64_t file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static char *cat2(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (!s) abort();
  memcpy(s, a, la);
  memcpy(s + la, b, lb + 1);
  return s;
}

/* ---- JSON output helpers ----------------------------------------------------------- */

static void json_out(json_t *j) {
  char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  puts(s ? s : "null");
  free(s);
  json_decref(j);
}

static void put_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"':
        fputs("\\\"", f);
        break;
      case '\\':
        fputs("\\\\", f);
        break;
      case '\n':
        fputs("\\n", f);
        break;
      case '\r':
        fputs("\\r", f);
        break;
      case '\t':
        fputs("\\t", f);
        break;
      default:
        if (*p < 0x20)
          fprintf(f, "\\u%04x", *p);
        else
          fputc(*p, f);
    }
  }
  fputc('"', f);
}

/* One record as a JSON line: {"id", "vector", "metadata"}. Floats with 9 significant
 * digits, which read back to the same float32 bit for bit. */
static void put_record(FILE *f, const char *id, const float *v, size_t dim, const char *meta) {
  fputs("{\"id\":", f);
  put_json_string(f, id);
  fputs(",\"vector\":[", f);
  char num[32];
  for (size_t j = 0; j < dim; j++) {
    int n = snprintf(num, sizeof num, "%.9g", (double)v[j]);
    if (j) fputc(',', f);
    fwrite(num, 1, (size_t)n, f);
  }
  fputs("],\"metadata\":", f);
  fputs(meta ? meta : "null", f);
  fputs("}\n", f);
}

static json_t *coll_json(const sx_collection_info *ci) {
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(ci->name));
  json_object_set_new(o, "dim", json_integer(ci->dim));
  json_object_set_new(o, "metric", json_string(sx_metric_name(ci->metric)));
  json_t *ix = json_object();
  json_object_set_new(ix, "type", json_string(sx_index_type_name(ci->index)));
  if (ci->index == SX_INDEX_HNSW) {
    json_object_set_new(ix, "m", json_integer(ci->hnsw_m));
    json_object_set_new(ix, "ef_construction", json_integer(ci->hnsw_ef_construction));
    json_object_set_new(ix, "quantization", json_string(sx_quantization_name(ci->quantization)));
  }
  json_object_set_new(o, "index", ix);
  json_object_set_new(o, "count", json_integer((json_int_t)ci->count));
  return o;
}

/* ---- parsing numbers ------------------------------------------------------------------ */

static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || errno || s[0] == '-' || v < lo || v > hi)
    return fail(EX_USAGE, "%s '%s' is not a whole number from %" PRIu64 " to %" PRIu64, opt, s, lo,
                hi);
  *out = v;
  return EX_OK;
}

/* One of the collection options `create` and `import` share (--metric, --index, --m,
 * --ef-construction, --quantization: getopt codes m, i, M, E, Q) into co; EX_USAGE,
 * said, when bad. */
static int coll_option(int o, const char *arg, sx_collection_options *co) {
  uint64_t v = 0;
  sx_error e = SX_ERROR_INIT;
  switch (o) {
    case 'm':
      if (sx_metric_parse(arg, &co->metric, &e)) return fail(EX_USAGE, "--metric: %s", e.message);
      return 0;
    case 'i':
      if (sx_index_type_parse(arg, &co->index, &e)) return fail(EX_USAGE, "--index: %s", e.message);
      return 0;
    case 'Q':
      if (sx_quantization_parse(arg, &co->quantization, &e))
        return fail(EX_USAGE, "--quantization: %s", e.message);
      return 0;
    case 'M':
      if (parse_u64("--m", arg, 2, 256, &v)) return EX_USAGE;
      co->hnsw_m = (uint32_t)v;
      return 0;
    default: /* 'E' */
      if (parse_u64("--ef-construction", arg, 1, 100000, &v)) return EX_USAGE;
      co->hnsw_ef_construction = (uint32_t)v;
      return 0;
  }
}

/* A vector written as numbers separated by commas and/or spaces (brackets allowed). */
static int parse_vector_text(const char *what, const char *s, float **out, size_t *dim) {
  size_t cap = 16, n = 0;
  float *v = malloc(cap * sizeof *v);
  const char *p = s;
  for (;;) {
    while (*p && (isspace((unsigned char)*p) || *p == ',' || *p == '[' || *p == ']')) p++;
    if (!*p) break;
    char *end;
    errno = 0;
    double d = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(d) || fabs(d) > 3.4028234663852886e38) {
      int len = 0;
      while (p[len] && !isspace((unsigned char)p[len]) && p[len] != ',' && len < 40) len++;
      free(v);
      return fail(EX_USAGE, "%s: '%.*s' (component %zu) is not a finite number", what, len, p, n);
    }
    if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    v[n++] = (float)d;
    p = end;
  }
  if (n == 0) {
    free(v);
    return fail(EX_USAGE, "%s has no numbers", what);
  }
  *out = v;
  *dim = n;
  return EX_OK;
}

/* ---- input files: .npy, .fvecs/.bvecs, JSON Lines --------------------------------------- */

enum fmt { F_NONE, F_NPY, F_FVECS, F_BVECS, F_JSONL };

static enum fmt fmt_parse(const char *s) {
  if (!strcmp(s, "npy")) return F_NPY;
  if (!strcmp(s, "fvecs")) return F_FVECS;
  if (!strcmp(s, "bvecs")) return F_BVECS;
  if (!strcmp(s, "jsonl") || !strcmp(s, "ndjson")) return F_JSONL;
  return F_NONE;
}

static enum fmt fmt_guess(const char *path) {
  const char *dot = strrchr(path, '.');
  return dot ? fmt_parse(dot + 1) : F_NONE;
}

/* A reader of vectors (and, for JSON Lines, ids and metadata) from a file. */
typedef struct reader {
  enum fmt fmt;
  const char *path;
  FILE *f;
  size_t dim;
  uint64_t rows;      /* total when known (npy, fvecs/bvecs by file size), else 0 */
  uint64_t row;       /* rows read so far */
  int elem;           /* npy: 1 (u1), 4 (f4) or 8 (f8); vecs: 4 or 1 */
  unsigned char *raw; /* a row's raw bytes */
  char *line;         /* jsonl */
  size_t linecap;
  uint64_t lineno;
  int vectors_only; /* jsonl query files: each line's "vector"; an "id" is not needed */
} reader;

/* The value of key in a .npy header dict ("'descr': '<f4', ..."), into buf. */
static int npy_field(const char *hdr, const char *key, char *buf, size_t cap) {
  char k[32];
  snprintf(k, sizeof k, "'%s'", key);
  const char *p = strstr(hdr, k);
  if (!p) return 0;
  p += strlen(k);
  while (*p == ' ') p++;
  if (*p++ != ':') return 0;
  while (*p == ' ') p++;
  size_t n = 0;
  if (*p == '\'') {
    p++;
    while (*p && *p != '\'' && n + 1 < cap) buf[n++] = *p++;
  } else if (*p == '(') {
    while (*p && *p != ')' && n + 1 < cap) buf[n++] = *p++;
    if (*p == ')' && n + 1 < cap) buf[n++] = ')';
  } else {
    while (*p && *p != ',' && *p != '}' && n + 1 < cap) buf[n++] = *p++;
  }
  buf[n] = 0;
  while (n && buf[n - 1] == ' ') buf[--n] = 0;
  return 1;
}

static int npy_open(reader *r) {
  unsigned char pre[10];
  if (fread(pre, 1, 10, r->f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
    return fail(EX_ERR, "'%s' is not a .npy file (no \\x93NUMPY magic)", r->path);
  unsigned major = pre[6];
  uint32_t hlen;
  if (major == 1) {
    hlen = pre[8] | (uint32_t)pre[9] << 8;
  } else if (major == 2 || major == 3) {
    unsigned char b[2];
    if (fread(b, 1, 2, r->f) != 2) return fail(EX_ERR, "'%s': truncated .npy header", r->path);
    hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)b[0] << 16 | (uint32_t)b[1] << 24;
  } else {
    return fail(EX_ERR, "'%s': .npy format version %u is not supported (1, 2 or 3)", r->path,
                major);
  }
  if (hlen > 1 << 20) return fail(EX_ERR, "'%s': .npy header length %u is too long", r->path, hlen);
  char *hdr = malloc(hlen + 1);
  if (fread(hdr, 1, hlen, r->f) != hlen) {
    free(hdr);
    return fail(EX_ERR, "'%s': truncated .npy header", r->path);
  }
  hdr[hlen] = 0;
  /* The header is padded with spaces and ends in a newline: quoted in one line of an
   * error, without them and with any other control byte as '?'. */
  for (size_t i = 0; i < hlen; i++)
    if ((unsigned char)hdr[i] < 0x20 || hdr[i] == 0x7f) hdr[i] = i + 1 == hlen ? 0 : '?';
  for (size_t n = strlen(hdr); n && hdr[n - 1] == ' ';) hdr[--n] = 0;
  char descr[64], fo[64], shape[256];
  int rc = EX_OK;
  if (!npy_field(hdr, "descr", descr, sizeof descr) ||
      !npy_field(hdr, "fortran_order", fo, sizeof fo) ||
      !npy_field(hdr, "shape", shape, sizeof shape)) {
    rc = fail(EX_ERR, "'%s': .npy header '%.200s' lacks descr, fortran_order or shape", r->path,
              hdr);
  } else if (strcmp(fo, "False") != 0) {
    rc = fail(EX_ERR, "'%s': fortran_order %s is not supported (C order only)", r->path, fo);
  } else if (!strcmp(descr, "<f4") || !strcmp(descr, "=f4")) {
    r->elem = 4;
  } else if (!strcmp(descr, "<f8") || !strcmp(descr, "=f8")) {
    r->elem = 8;
  } else if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1")) {
    r->elem = 1;
  } else {
    rc = fail(EX_ERR,
              "'%s': dtype '%s' is not supported (float32 '<f4', float64 '<f8' or uint8 '|u1')",
              r->path, descr);
  }
  if (!rc) {
    /* Exactly two dimensions: "(rows, dim)", the second maybe followed by a comma.
     * A third (rows, a, b) is refused rather than read as (rows, a). */
    unsigned long long a = 0, b = 0;
    int end = 0;
    if (sscanf(shape, "(%llu , %llu %n", &a, &b, &end) != 2 ||
        (strcmp(shape + end, ")") != 0 && strcmp(shape + end, ",)") != 0) || b == 0 ||
        b > SX_DIM_MAX)
      rc = fail(EX_ERR, "'%s': shape %s is not 2-D (rows, dim) with dim 1..%d", r->path, shape,
                SX_DIM_MAX);
    r->rows = a;
    r->dim = (size_t)b;
  }
  free(hdr);
  if (!rc) {
    long at = ftell(r->f);
    uint64_t row = (uint64_t)r->dim * r->elem, size = file_size(r->path);
    /* rows * row can pass 2^64 (a shape of 2^62 rows): compare by division. */
    if (at < 0 || (uint64_t)at > size || r->rows > (size - (uint64_t)at) / row)
      rc = fail(EX_ERR,
                "'%s' is truncated: shape %s needs %" PRIu64 " rows of %" PRIu64
                " bytes after the %ld-byte header, the file has %" PRIu64 " bytes",
                r->path, shape, r->rows, row, at, size);
  }
  return rc;
}

static int vecs_open(reader *r) {
  int32_t d;
  if (fread(&d, 4, 1, r->f) != 1) {
    r->dim = 0;
    r->rows = 0;
    return EX_OK;
  }
  if (d <= 0 || d > SX_DIM_MAX)
    return fail(EX_ERR, "'%s': vector 0 has dimension %d (1..%d)", r->path, (int)d, SX_DIM_MAX);
  r->dim = (size_t)d;
  r->elem = r->fmt == F_FVECS ? 4 : 1;
  uint64_t rec = 4 + r->dim * (uint64_t)r->elem, sz = file_size(r->path);
  if (sz % rec)
    return fail(EX_ERR,
                "'%s': size %" PRIu64 " is not a multiple of a record (%" PRIu64
                " bytes, dimension %zu)",
                r->path, sz, rec, r->dim);
  r->rows = sz / rec;
  fseek(r->f, 0, SEEK_SET);
  return EX_OK;
}

static int reader_open(reader *r, const char *path, enum fmt fmt) {
  memset(r, 0, sizeof *r);
  r->path = path;
  r->fmt = fmt;
  r->f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!r->f)
    return fail(errno == ENOENT ? EX_NOTFOUND : EX_ERR, "cannot open '%s': %s", path,
                strerror(errno));
  int rc = fmt == F_NPY ? npy_open(r) : fmt == F_JSONL ? EX_OK : vecs_open(r);
  if (!rc && r->dim) r->raw = malloc(r->dim * 8 + 8);
  return rc;
}

static void reader_close(reader *r) {
  if (r->f && r->f != stdin) fclose(r->f);
  free(r->raw);
  free(r->line);
}

/* Reads one row's vector into v (r->dim floats). Returns 1 for a row, 0 at the end. */
static int read_row_binary(reader *r, float *v, int *rc) {
  *rc = EX_OK;
  if (r->rows && r->row >= r->rows) return 0;
  if (r->fmt != F_NPY) {
    int32_t d;
    if (fread(&d, 4, 1, r->f) != 1) return 0;
    if ((size_t)d != r->dim) {
      *rc = fail(EX_ERR, "'%s': vector %" PRIu64 " has dimension %d, the first had %zu", r->path,
                 r->row, (int)d, r->dim);
      return 0;
    }
  }
  size_t bytes = r->dim * (size_t)r->elem;
  if (fread(r->raw, 1, bytes, r->f) != bytes) {
    *rc = fail(EX_ERR, "'%s' ends inside vector %" PRIu64, r->path, r->row);
    return 0;
  }
  if (r->elem == 4) {
    memcpy(v, r->raw, bytes);
  } else if (r->elem == 8) {
    for (size_t j = 0; j < r->dim; j++) {
      double d;
      memcpy(&d, r->raw + j * 8, 8);
      v[j] = (float)d;
    }
  } else {
    for (size_t j = 0; j < r->dim; j++) v[j] = r->raw[j];
  }
  for (size_t j = 0; j < r->dim; j++)
    if (!isfinite(v[j])) {
      *rc = fail(EX_ERR, "'%s': vector %" PRIu64 " has a non-finite component %g at index %zu",
                 r->path, r->row, (double)v[j], j);
      return 0;
    }
  r->row++;
  return 1;
}

/* ---- the "metadata" member of a jsonl line, as written ---------------------------------- */

/* Metadata goes to the core as the text the line holds, not as jansson would write it
 * again: the core takes what jansson cannot hold (a NUL in a key, integers beyond 64
 * bits) and stores the text as given, so an export imports back byte for byte. These
 * scanners only find where values end (strings and nesting skipped); jansson checks the
 * rest of the line, the core the metadata. Each returns the index past what it skipped,
 * or 0 when the text ends first. */
static size_t skip_ws(const char *s, size_t i) {
  while (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') i++;
  return i;
}

static size_t skip_string(const char *s, size_t i) { /* s[i] == '"' */
  for (i++; s[i] && s[i] != '"'; i++)
    if (s[i] == '\\' && s[i + 1]) i++;
  return s[i] == '"' ? i + 1 : 0;
}

static size_t skip_value(const char *s, size_t i) {
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] != '{' && s[i] != '[') { /* a number, true, false or null */
    size_t from = i;
    while (s[i] && !strchr(",}] \t\r\n", s[i])) i++;
    return i > from ? i : 0;
  }
  for (int depth = 0;;) {
    char c = s[i];
    if (!c) return 0;
    if (c == '"') {
      if (!(i = skip_string(s, i))) return 0;
      continue;
    }
    if (c == '{' || c == '[') depth++;
    if ((c == '}' || c == ']') && --depth == 0) return i + 1;
    i++;
  }
}

/* Whether the key text s[b..e) (quotes included) is "metadata", escapes decoded. */
static int is_metadata_key(const char *s, size_t b, size_t e) {
  if (e - b == 10 && memcmp(s + b, "\"metadata\"", 10) == 0) return 1;
  if (!memchr(s + b, '\\', e - b)) return 0;
  json_t *k = json_loadb(s + b, e - b, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  int yes = json_is_string(k) && json_string_length(k) == 8 &&
            memcmp(json_string_value(k), "metadata", 8) == 0;
  json_decref(k);
  return yes;
}

/* The value of the first top-level "metadata" member of the object text s: s[*b..*e),
 * or *b == *e == 0 when it has none. -1 when s is not an object these scanners can walk
 * (jansson then says what is wrong with it). */
static int find_metadata(const char *s, size_t *b, size_t *e) {
  *b = *e = 0;
  size_t i = skip_ws(s, 0);
  if (s[i] != '{') return -1;
  i = skip_ws(s, i + 1);
  if (s[i] == '}') return 0;
  for (;;) {
    if (s[i] != '"') return -1;
    size_t kb = i;
    if (!(i = skip_string(s, i))) return -1;
    size_t ke = i;
    i = skip_ws(s, i);
    if (s[i] != ':') return -1;
    i = skip_ws(s, i + 1);
    size_t vb = i;
    if (!(i = skip_value(s, i))) return -1;
    if (!*e && is_metadata_key(s, kb, ke)) {
      *b = vb;
      *e = i;
    }
    i = skip_ws(s, i);
    if (s[i] == '}') return 0;
    if (s[i] != ',') return -1;
    i = skip_ws(s, i + 1);
  }
}

/* Reads one JSON line: id (malloc'd; "" for a query line without one), vector (r->dim
 * floats; the first line sets the dimension: *v reallocated), metadata (malloc'd, the
 * text as the line writes it, or NULL). */
static int read_row_jsonl(reader *r, char **id, float **v, char **meta, int *rc) {
  *rc = EX_OK;
  ssize_t len;
  for (;;) {
    len = getline(&r->line, &r->linecap, r->f);
    if (len < 0) return 0;
    r->lineno++;
    const char *p = r->line;
    while (isspace((unsigned char)*p)) p++;
    if (*p) break; /* blank lines are skipped */
  }
  if (strlen(r->line) != (size_t)len) {
    *rc = fail(EX_ERR, "'%s' line %" PRIu64 ": a NUL byte at column %zu (JSON text has none)",
               r->path, r->lineno, strlen(r->line) + 1);
    return 0;
  }
  /* jansson reads the line with its metadata value replaced by null (see above). */
  size_t mb, me;
  const char *text = r->line;
  char *masked = NULL;
  int scanned = find_metadata(r->line, &mb, &me) == 0;
  if (scanned && me > mb) {
    masked = malloc((size_t)len + 5);
    if (!masked) {
      *rc = fail(EX_ERR, "out of memory");
      return 0;
    }
    memcpy(masked, r->line, mb);
    memcpy(masked + mb, "null", 4);
    memcpy(masked + mb + 4, r->line + me, (size_t)len - me + 1);
    text = masked;
  }
  json_error_t je;
  json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  free(masked);
  if (!j || !json_is_object(j)) {
    *rc = j ? fail(EX_ERR, "'%s' line %" PRIu64 ": not a JSON object", r->path, r->lineno)
            : fail(EX_ERR, "'%s' line %" PRIu64 ": %s at column %d", r->path, r->lineno, je.text,
                   je.column);
    json_decref(j);
    return 0;
  }
  json_t *jid = json_object_get(j, "id"), *jv = json_object_get(j, "vector");
  /* The metadata as written: an object (checked by the core when stored), null or none. */
  int has_meta = me > mb && r->line[mb] == '{';
  if (!scanned || (json_object_get(j, "metadata") != NULL) != (me > mb)) {
    /* jansson read an object the scanners could not walk: never drop its metadata. */
    *rc = fail(EX_ERR, "'%s' line %" PRIu64 ": cannot tell where \"metadata\" ends", r->path,
               r->lineno);
  } else if ((jid || !r->vectors_only) && !json_is_string(jid)) { /* a query needs no id */
    *rc = fail(EX_ERR, "'%s' line %" PRIu64 ": \"id\" is missing or not a string", r->path,
               r->lineno);
  } else if (jid && strlen(json_string_value(jid)) != json_string_length(jid)) {
    *rc = fail(EX_ERR, "'%s' line %" PRIu64 ": \"id\" holds a NUL character (\\u0000)", r->path,
               r->lineno);
  } else if (!json_is_array(jv) || json_array_size(jv) == 0) {
    *rc = fail(EX_ERR, "'%s' line %" PRIu64 ": \"vector\" is missing or not a non-empty array",
               r->path, r->lineno);
  } else if (me > mb && !has_meta && !(me - mb == 4 && memcmp(r->line + mb, "null", 4) == 0)) {
    *rc = fail(EX_ERR, "'%s' line %" PRIu64 ": \"metadata\" is not an object or null", r->path,
               r->lineno);
  } else if (r->dim && json_array_size(jv) != r->dim) {
    *rc = fail(EX_ERR, "'%s' line %" PRIu64 ": vector has %zu components, earlier lines had %zu",
               r->path, r->lineno, json_array_size(jv), r->dim);
  }
  if (!*rc && !r->dim) {
    r->dim = json_array_size(jv);
    *v = realloc(*v, r->dim * sizeof **v);
  }
  for (size_t k = 0; !*rc && k < r->dim; k++) {
    json_t *x = json_array_get(jv, k);
    double d = json_number_value(x);
    if (!json_is_number(x) || !isfinite(d) || fabs(d) > 3.4028234663852886e38)
      *rc =
          fail(EX_ERR, "'%s' line %" PRIu64 ": vector component %zu is not a finite float32 number",
               r->path, r->lineno, k);
    else
      (*v)[k] = (float)d;
  }
  if (!*rc) {
    *id = strdup(jid ? json_string_value(jid) : "");
    *meta = has_meta ? strndup(r->line + mb, me - mb) : NULL;
    r->row++;
  }
  json_decref(j);
  return *rc ? 0 : 1;
}

/* ---- ids files ------------------------------------------------------------------------------ */

/* The next id of an ids file: one per line, LF or CRLF. 1 with *line holding it, 0 at
 * the end, -1 (after saying why) for a line holding a NUL byte, which an id cannot:
 * cut there, it would name another id. */
static int read_id_line(FILE *f, const char *path, uint64_t lineno, char **line, size_t *cap) {
  ssize_t len = getline(line, cap, f);
  if (len <= 0) return 0;
  if ((*line)[len - 1] == '\n') (*line)[--len] = 0;
  if (len && (*line)[len - 1] == '\r') (*line)[--len] = 0;
  if (strlen(*line) != (size_t)len) {
    fail(EX_ERR, "ids file '%s' line %" PRIu64 " holds a NUL byte", path, lineno);
    return -1;
  }
  return 1;
}

/* ---- commands ------------------------------------------------------------------------------ */

typedef struct cmd {
  const char *name;
  const char *args;
  const char *help;
  int (*fn)(int argc, char **argv);
} cmd;

static const cmd *g_this;
static void cmd_usage(FILE *f);

/* Common option parsing: --help, --json; the rest by the command. Returns -1 to go on. */
#define COMMON_LONG                   \
  {"help", no_argument, NULL, 'h'}, { \
    "json", no_argument, NULL, 'J'    \
  }
#define COMMON_CASES   \
  case 'h':            \
    cmd_usage(stdout); \
    return EX_OK;      \
  case 'J':            \
    g_json = 1;        \
    break;             \
  default:             \
    cmd_usage(stderr); \
    return EX_USAGE;

static int need_args(int argc, int optind_, int lo, int hi) {
  int n = argc - optind_;
  if (n < lo || (hi >= 0 && n > hi)) {
    fail(EX_USAGE, "expected %s (see sextant %s --help)", g_this->args, g_this->name);
    return 0;
  }
  return 1;
}

static int c_info(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 1, 1)) return EX_USAGE;
  const char *path = argv[optind];
  sx_db *db;
  int rc = open_db(path, 1, 0, &db);
  if (rc) return rc;
  sx_error e = SX_ERROR_INIT;
  sx_db_stats s = SX_DB_STATS_INIT;
  sx_read *r = NULL;
  sx_names *names = NULL;
  uint64_t uv = 0;
  int st = sx_db_stats_get(db, &s, &e);
  if (!st) st = sx_read_begin(db, &r, &e);
  if (!st) st = sx_read_list_collections(r, &names, &e);
  if (!st) st = sx_read_user_version(r, &uv, &e);
  json_t *colls = json_array();
  for (size_t i = 0; !st && i < sx_names_count(names); i++) {
    sx_collection *c;
    sx_collection_info ci = SX_COLLECTION_INFO_INIT;
    st = sx_read_collection(r, sx_names_get(names, i), &c, &e);
    if (!st) st = sx_collection_describe(c, &ci, &e);
    sx_collection_free(c);
    if (!st) json_array_append_new(colls, coll_json(&ci));
  }
  if (st) {
    json_decref(colls);
    rc = sx_fail(st, &e);
  } else {
    char *wal = cat2(path, "-wal"), *wal2 = cat2(path, "-wal2");
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(path));
    json_object_set_new(o, "library_version", json_string(sx_version()));
    json_object_set_new(o, "format_version", json_integer(sx_format_version()));
    json_object_set_new(o, "page_size", json_integer(s.page_size));
    json_object_set_new(o, "page_count", json_integer((json_int_t)s.page_count));
    json_object_set_new(o, "file_bytes", json_integer((json_int_t)file_size(path)));
    json_object_set_new(o, "wal_bytes",
                        json_integer((json_int_t)(file_size(wal) + file_size(wal2))));
    json_object_set_new(o, "user_version", json_integer((json_int_t)uv));
    json_object_set_new(o, "collections", colls);
    if (g_json) {
      json_out(o);
    } else {
      printf(
          "database      %s\nlibrary       %s (format %d)\npage size     %u\npages         %" PRIu64
          "\nfile bytes    %" PRIu64 "\nwal bytes     %" PRIu64 "\nuser version  %" PRIu64
          "\ncollections   %zu\n",
          path, sx_version(), sx_format_version(), s.page_size, s.page_count, file_size(path),
          file_size(wal) + file_size(wal2), uv, json_array_size(colls));
      size_t i;
      json_t *c;
      json_array_foreach(colls, i, c) {
        printf("  %-24s dim %-6" JSON_INTEGER_FORMAT " %-6s %-4s %" JSON_INTEGER_FORMAT
               " vectors\n",
               json_string_value(json_object_get(c, "name")),
               json_integer_value(json_object_get(c, "dim")),
               json_string_value(json_object_get(c, "metric")),
               json_string_value(json_object_get(json_object_get(c, "index"), "type")),
               json_integer_value(json_object_get(c, "count")));
      }
      json_decref(o);
    }
    free(wal);
    free(wal2);
  }
  sx_names_free(names);
  sx_read_free(r);
  sx_db_free(db);
  return rc;
}

static int c_stats(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 1, 1)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) return rc;
  sx_error e = SX_ERROR_INIT;
  sx_db_stats s = SX_DB_STATS_INIT;
  sx_space_stats sp = SX_SPACE_STATS_INIT;
  sx_read *r = NULL;
  int st = sx_db_stats_get(db, &s, &e);
  /* The space figures come from a snapshot; the other figures are taken first, so
   * this tool's own reader is not counted in them. */
  if (!st) st = sx_read_begin(db, &r, &e);
  if (!st) st = sx_read_space_get(r, &sp, &e);
  sx_read_free(r);
  if (st) {
    rc = sx_fail(st, &e);
  } else {
    json_t *o = json_object();
    json_object_set_new(o, "page_size", json_integer(s.page_size));
    json_object_set_new(o, "page_count", json_integer((json_int_t)s.page_count));
    json_object_set_new(o, "file_bytes", json_integer((json_int_t)file_size(argv[optind])));
    json_object_set_new(o, "wal_frames", json_integer((json_int_t)s.wal_frames));
    json_object_set_new(o, "wal_backfilled", json_integer((json_int_t)s.wal_backfilled));
    json_object_set_new(o, "commits", json_integer((json_int_t)s.commits));
    json_object_set_new(o, "checkpoints", json_integer((json_int_t)s.checkpoints));
    json_object_set_new(o, "readers", json_integer(s.readers));
    json_object_set_new(o, "reader_slots", json_integer(s.reader_slots));
    json_object_set_new(o, "oldest_reader_lag", json_integer((json_int_t)s.oldest_reader_lag));
    json_object_set_new(o, "oldest_reader_pid", json_integer(s.oldest_reader_pid));
    json_object_set_new(o, "free_pages", json_integer((json_int_t)sp.free_pages));
    json_object_set_new(o, "collection_pages", json_integer((json_int_t)sp.collection_pages));
    json_object_set_new(o, "live_bytes", json_integer((json_int_t)sp.live_bytes));
    json_object_set_new(o, "reclaimable_bytes", json_integer((json_int_t)sp.reclaimable_bytes));
    if (g_json) {
      json_out(o);
    } else {
      const char *k;
      json_t *v;
      json_object_foreach(o, k, v)
          printf("%-18s %" JSON_INTEGER_FORMAT "\n", k, json_integer_value(v));
      json_decref(o);
    }
  }
  sx_db_free(db);
  return rc;
}

static int c_check(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 1, 1)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) {
    if (g_json) {
      json_t *o = json_object();
      json_object_set_new(o, "ok", json_false());
      json_object_set_new(o, "status", json_string(rc == EX_CORRUPT ? "CORRUPT" : "ERROR"));
      json_out(o);
    }
    return rc;
  }
  sx_error e = SX_ERROR_INIT;
  int st = sx_db_check(db, &e);
  if (g_json) {
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(st == SX_OK));
    json_object_set_new(o, "status", json_string(sx_status_name(st)));
    if (st) json_object_set_new(o, "message", json_string(e.message));
    json_out(o);
  } else if (!st) {
    printf("ok\n");
  }
  rc = st ? sx_fail(st, &e) : EX_OK;
  sx_db_free(db);
  return rc;
}

static int c_collections(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 1, 1)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) return rc;
  sx_error e = SX_ERROR_INIT;
  sx_read *r = NULL;
  sx_names *names = NULL;
  int st = sx_read_begin(db, &r, &e);
  if (!st) st = sx_read_list_collections(r, &names, &e);
  if (st) {
    rc = sx_fail(st, &e);
  } else if (g_json) {
    json_t *a = json_array();
    for (size_t i = 0; i < sx_names_count(names); i++)
      json_array_append_new(a, json_string(sx_names_get(names, i)));
    json_out(a);
  } else {
    for (size_t i = 0; i < sx_names_count(names); i++) puts(sx_names_get(names, i));
  }
  sx_names_free(names);
  sx_read_free(r);
  sx_db_free(db);
  return rc;
}

static int c_describe(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 2, 2)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) return rc;
  sx_read *r = NULL;
  sx_collection *c = NULL;
  rc = read_coll(db, argv[optind + 1], &r, &c);
  if (!rc) {
    sx_error e = SX_ERROR_INIT;
    sx_collection_info ci = SX_COLLECTION_INFO_INIT;
    sx_collection_stats cs = SX_COLLECTION_STATS_INIT;
    int st = sx_collection_describe(c, &ci, &e);
    if (!st) st = sx_collection_stats_get(c, &cs, &e);
    if (st) {
      rc = sx_fail(st, &e);
    } else {
      json_t *o = coll_json(&ci);
      json_t *so = json_object();
      json_object_set_new(so, "slots", json_integer((json_int_t)cs.slots));
      json_object_set_new(so, "dead", json_integer((json_int_t)cs.dead));
      json_object_set_new(so, "free", json_integer((json_int_t)cs.free));
      json_object_set_new(o, "slots", so);
      if (g_json) {
        json_out(o);
      } else {
        printf("name      %s\ndim       %u\nmetric    %s\nindex     %s", ci.name, ci.dim,
               sx_metric_name(ci.metric), sx_index_type_name(ci.index));
        if (ci.index == SX_INDEX_HNSW)
          printf(" (m %u, ef_construction %u, quantization %s)", ci.hnsw_m, ci.hnsw_ef_construction,
                 sx_quantization_name(ci.quantization));
        printf("\ncount     %" PRIu64 "\nslots     %" PRIu64 " (%" PRIu64 " dead, %" PRIu64
               " free)\n",
               ci.count, cs.slots, cs.dead, cs.free);
        json_decref(o);
      }
    }
  }
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
  return rc;
}

static int c_count(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 2, 2)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) return rc;
  sx_read *r = NULL;
  sx_collection *c = NULL;
  rc = read_coll(db, argv[optind + 1], &r, &c);
  if (!rc) {
    sx_error e = SX_ERROR_INIT;
    uint64_t n;
    int st = sx_collection_count(c, &n, &e);
    if (st)
      rc = sx_fail(st, &e);
    else if (g_json)
      printf("{\"count\": %" PRIu64 "}\n", n);
    else
      printf("%" PRIu64 "\n", n);
  }
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
  return rc;
}

static int c_get(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 3, -1)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) return rc;
  sx_read *r = NULL;
  sx_collection *c = NULL;
  rc = read_coll(db, argv[optind + 1], &r, &c);
  if (!rc) {
    sx_error e = SX_ERROR_INIT;
    sx_records *recs = NULL;
    size_t n = (size_t)(argc - optind - 2);
    int st = sx_collection_get_batch(c, n, (const char *const *)argv + optind + 2, &recs, &e);
    if (st) rc = sx_fail(st, &e);
    for (size_t i = 0; !st && i < n; i++) {
      if (!sx_records_found(recs, i)) {
        rc = fail(EX_NOTFOUND, "id '%s' is not in collection '%s'", sx_records_id(recs, i),
                  argv[optind + 1]);
        continue;
      }
      put_record(stdout, sx_records_id(recs, i), sx_records_vector(recs, i), sx_records_dim(recs),
                 sx_records_metadata(recs, i));
    }
    sx_records_free(recs);
  }
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
  return rc;
}

/* The collection options given on the command line (bits of coll_given()). */
enum { GIVE_METRIC = 1, GIVE_INDEX = 2, GIVE_M = 4, GIVE_EFC = 8, GIVE_QUANT = 16 };

static unsigned coll_given(int o) {
  return o == 'm'   ? GIVE_METRIC
         : o == 'i' ? GIVE_INDEX
         : o == 'M' ? GIVE_M
         : o == 'E' ? GIVE_EFC
                    : GIVE_QUANT;
}

/* An existing collection's options against those given for it: they apply only when
 * import creates it, so one that differs is an error, not silently ignored. */
static int given_options_match(const char *name, const sx_collection_info *ci,
                               const sx_collection_options *co, unsigned given, sx_error *e) {
  const char *what = NULL;
  char want[64] = "", have[64] = "";
  int hnsw = ci->index == SX_INDEX_HNSW;
  if ((given & GIVE_METRIC) && co->metric != ci->metric) {
    what = "metric";
    snprintf(want, sizeof want, "%s", sx_metric_name(co->metric));
    snprintf(have, sizeof have, "%s", sx_metric_name(ci->metric));
  } else if ((given & GIVE_INDEX) && co->index != ci->index) {
    what = "index";
    snprintf(want, sizeof want, "%s", sx_index_type_name(co->index));
    snprintf(have, sizeof have, "%s", sx_index_type_name(ci->index));
  } else if ((given & GIVE_M) && (!hnsw || co->hnsw_m != ci->hnsw_m)) {
    what = "m";
    snprintf(want, sizeof want, "%u", co->hnsw_m);
    snprintf(have, sizeof have, hnsw ? "%u" : "none (flat)", ci->hnsw_m);
  } else if ((given & GIVE_EFC) &&
             (!hnsw || co->hnsw_ef_construction != ci->hnsw_ef_construction)) {
    what = "ef-construction";
    snprintf(want, sizeof want, "%u", co->hnsw_ef_construction);
    snprintf(have, sizeof have, hnsw ? "%u" : "none (flat)", ci->hnsw_ef_construction);
  } else if ((given & GIVE_QUANT) && co->quantization != ci->quantization) {
    what = "quantization";
    snprintf(want, sizeof want, "%s", sx_quantization_name(co->quantization));
    snprintf(have, sizeof have, "%s", sx_quantization_name(ci->quantization));
  }
  if (!what) return SX_OK;
  snprintf(e->message, sizeof e->message,
           "collection '%s' exists with %s %s, not %s (--%s applies when import creates it)", name,
           what, have, want, what);
  return SX_INVALID_ARGUMENT;
}

/* Creates the collection in w when missing (dimension from the input), or checks that
 * its dimension (and the options given for it) match. Creating it in the first batch's
 * session means a failed import leaves no empty collection behind. */
static int ensure_collection(sx_write *w, const char *name, size_t dim,
                             const sx_collection_options *co_in, unsigned given, int *created) {
  sx_error e = SX_ERROR_INIT;
  sx_collection *c = NULL;
  int st = sx_write_collection(w, name, &c, &e);
  *created = 0;
  if (st == SX_NOT_FOUND) {
    sx_collection_options co = *co_in;
    co.dim = (uint32_t)dim;
    st = sx_write_create_collection(w, name, &co, &e);
    *created = !st;
  } else if (!st) {
    sx_collection_info ci = SX_COLLECTION_INFO_INIT;
    st = sx_collection_describe(c, &ci, &e);
    if (!st && ci.dim != dim) {
      st = SX_DIMENSION_MISMATCH;
      snprintf(e.message, sizeof e.message,
               "the input's dimension %zu does not match collection '%s' (dimension %u)", dim, name,
               ci.dim);
    }
    if (!st) st = given_options_match(name, &ci, co_in, given, &e);
  }
  sx_collection_free(c);
  return st ? sx_fail(st, &e) : EX_OK;
}

static int c_create(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG,
                                     {"dim", required_argument, NULL, 'd'},
                                     {"metric", required_argument, NULL, 'm'},
                                     {"index", required_argument, NULL, 'i'},
                                     {"m", required_argument, NULL, 'M'},
                                     {"ef-construction", required_argument, NULL, 'E'},
                                     {"quantization", required_argument, NULL, 'Q'},
                                     {0}};
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  uint64_t v = 0;
  for (int o; (o = getopt_long(argc, argv, "hd:", lo, NULL)) != -1;) switch (o) {
      case 'd':
        if (parse_u64("--dim", optarg, 1, SX_DIM_MAX, &v)) return EX_USAGE;
        co.dim = (uint32_t)v;
        break;
      case 'm':
      case 'i':
      case 'M':
      case 'E':
      case 'Q':
        if (coll_option(o, optarg, &co)) return EX_USAGE;
        break;
        COMMON_CASES
    }
  if (!need_args(argc, optind, 2, 2)) return EX_USAGE;
  if (!co.dim) return fail(EX_USAGE, "--dim is required");
  sx_db *db;
  int rc = open_db(argv[optind], 0, 1, &db);
  if (rc) return rc;
  sx_write *w;
  rc = begin_write(db, &w);
  if (!rc) {
    sx_error e = SX_ERROR_INIT;
    int st = sx_write_create_collection(w, argv[optind + 1], &co, &e);
    if (!st) st = sx_write_commit(w, &e);
    rc = st ? sx_fail(st, &e) : EX_OK;
    if (!rc && g_json) printf("{\"created\": true}\n");
    sx_write_free(w);
  }
  sx_db_free(db);
  return rc;
}

static int c_import(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG,
                                     {"format", required_argument, NULL, 'f'},
                                     {"ids", required_argument, NULL, 'I'},
                                     {"id-prefix", required_argument, NULL, 'P'},
                                     {"start", required_argument, NULL, 'S'},
                                     {"batch", required_argument, NULL, 'b'},
                                     {"skip-existing", no_argument, NULL, 'k'},
                                     {"metric", required_argument, NULL, 'm'},
                                     {"index", required_argument, NULL, 'i'},
                                     {"m", required_argument, NULL, 'M'},
                                     {"ef-construction", required_argument, NULL, 'E'},
                                     {"quantization", required_argument, NULL, 'Q'},
                                     {"progress", no_argument, NULL, 'p'},
                                     {"no-progress", no_argument, NULL, 'q'},
                                     {"sync", required_argument, NULL, 's'},
                                     {0}};
  enum fmt fmt = F_NONE;
  const char *ids_path = NULL, *prefix = "";
  uint64_t start = 0, batch = 10000;
  int skip_existing = 0;
  sx_sync sync = SX_SYNC_FULL;
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  unsigned given = 0;
  int numbered = 0; /* 1: --id-prefix, 2: --start given (the last of them) */
  for (int o; (o = getopt_long(argc, argv, "hf:b:", lo, NULL)) != -1;) switch (o) {
      case 'f':
        if ((fmt = fmt_parse(optarg)) == F_NONE)
          return fail(EX_USAGE, "--format '%s' is not npy, fvecs, bvecs or jsonl", optarg);
        break;
      case 'I':
        ids_path = optarg;
        break;
      case 'P':
        prefix = optarg;
        numbered = 1;
        break;
      case 'S':
        if (parse_u64("--start", optarg, 0, UINT64_MAX, &start)) return EX_USAGE;
        numbered = 2;
        break;
      case 'b':
        if (parse_u64("--batch", optarg, 1, 1000000, &batch)) return EX_USAGE;
        break;
      case 'k':
        skip_existing = 1;
        break;
      case 'm':
      case 'i':
      case 'M':
      case 'E':
      case 'Q':
        if (coll_option(o, optarg, &co)) return EX_USAGE;
        given |= coll_given(o);
        break;
      case 'p':
        g_progress = 1;
        break;
      case 'q':
        g_progress = 0;
        break;
      case 's': {
        sx_error se = SX_ERROR_INIT;
        if (sx_sync_parse(optarg, &sync, &se)) return fail(EX_USAGE, "--sync: %s", se.message);
        break;
      }
        COMMON_CASES
    }
  if (!need_args(argc, optind, 3, 3)) return EX_USAGE;
  const char *path = argv[optind], *name = argv[optind + 1], *in = argv[optind + 2];
  if (fmt == F_NONE && (fmt = fmt_guess(in)) == F_NONE)
    return fail(EX_USAGE,
                "cannot tell the format of '%s' from its name: give --format npy|fvecs|bvecs|jsonl",
                in);
  if (fmt == F_JSONL && (ids_path || numbered))
    return fail(EX_USAGE, "--%s does not apply to JSON Lines (each line has its id)",
                ids_path        ? "ids"
                : numbered == 1 ? "id-prefix"
                                : "start");
  if (ids_path && numbered)
    return fail(EX_USAGE, "--%s does not apply with --ids (the ids file names every row)",
                numbered == 1 ? "id-prefix" : "start");
  reader rd;
  int rc = reader_open(&rd, in, fmt);
  FILE *idf = NULL;
  if (!rc && ids_path && !(idf = fopen(ids_path, "r")))
    rc = fail(EX_NOTFOUND, "cannot open ids file '%s': %s", ids_path, strerror(errno));
  if (!rc && idf && rd.rows) {
    /* One id per vector: a count that differs means misaligned ids, refused before
     * anything is stored. (Without a known count, too few lines fail when they run out.) */
    uint64_t lines = 0;
    char *l = NULL;
    size_t lc = 0;
    while (getline(&l, &lc, idf) > 0) lines++;
    free(l);
    if (lines != rd.rows)
      rc = fail(EX_ERR, "ids file '%s' has %" PRIu64 " lines for %" PRIu64 " vectors", ids_path,
                lines, rd.rows);
    rewind(idf);
  }
  /* JSON Lines: the dimension comes with the first line. */
  float *row = NULL;
  char *id1 = NULL, *meta1 = NULL;
  int have1 = 0;
  if (!rc && fmt == F_JSONL) {
    have1 = read_row_jsonl(&rd, &id1, &row, &meta1, &rc);
    if (!rc && !have1) rc = fail(EX_ERR, "'%s' has no records", in);
  }
  sx_db *db = NULL;
  if (!rc && rd.dim == 0) rc = fail(EX_ERR, "'%s' has no vectors", in);
  if (!rc) {
    sx_open_options oo = SX_OPEN_OPTIONS_INIT;
    sx_error e = SX_ERROR_INIT;
    oo.sync = sync;
    int st = sx_db_open(&db, path, &oo, &e);
    if (st) rc = sx_fail(st, &e);
  }
  int created = 0, checked = 0;
  size_t dim = rd.dim;
  size_t cap = (size_t)batch;
  float *vecs = NULL;
  char **ids = NULL, **metas = NULL;
  if (!rc) {
    vecs = malloc(cap * dim * sizeof *vecs);
    ids = calloc(cap, sizeof *ids);
    metas = calloc(cap, sizeof *metas);
    if (!row) row = malloc(dim * sizeof *row);
  }
  progress pg;
  progress_begin(&pg, "import");
  uint64_t total = rd.rows, done = 0, stored = 0, skipped = 0;
  char *idline = NULL;
  size_t idcap = 0;
  for (int more = 1; !rc && more;) {
    size_t n = 0;
    while (n < cap) {
      int got;
      if (fmt == F_JSONL) {
        if (have1) {
          ids[n] = id1;
          metas[n] = meta1;
          memcpy(vecs + n * dim, row, dim * sizeof *row);
          have1 = 0;
          n++;
          continue;
        }
        got = read_row_jsonl(&rd, &ids[n], &row, &metas[n], &rc);
        if (got) memcpy(vecs + n * dim, row, dim * sizeof *row);
      } else {
        got = read_row_binary(&rd, vecs + n * dim, &rc);
        if (got) {
          char buf[64];
          if (idf) {
            int got_id = read_id_line(idf, ids_path, rd.row, &idline, &idcap);
            if (got_id <= 0) {
              rc = got_id < 0
                       ? EX_ERR
                       : fail(EX_ERR, "ids file '%s' has %" PRIu64 " lines, fewer than the vectors",
                              ids_path, rd.row - 1);
              break;
            }
            ids[n] = strdup(idline);
          } else {
            if (rd.row - 1 > UINT64_MAX - start) { /* the numbers would wrap to 0 */
              rc = fail(EX_ERR, "row %" PRIu64 " from --start %" PRIu64 " passes %" PRIu64,
                        rd.row - 1, start, UINT64_MAX);
              break;
            }
            snprintf(buf, sizeof buf, "%" PRIu64, start + rd.row - 1);
            ids[n] = cat2(prefix, buf);
          }
        }
      }
      if (rc || !got) {
        more = 0;
        break;
      }
      n++;
    }
    if (rc || n == 0) {
      for (size_t i = 0; i < n; i++) {
        free(ids[i]);
        free(metas[i]);
        ids[i] = metas[i] = NULL;
      }
      break;
    }
    sx_error e = SX_ERROR_INIT;
    sx_write *w = NULL;
    if (g_interrupted) rc = EX_INT; /* this batch is not stored: the message is below */
    if (!rc) rc = begin_write(db, &w);
    if (!rc && !checked) rc = ensure_collection(w, name, dim, &co, given, &created);
    checked = 1;
    size_t m = n;
    if (!rc && skip_existing) {
      /* Leave out ids already present (resuming an interrupted import unchanged). */
      sx_collection *c = NULL;
      sx_records *recs = NULL;
      int st = sx_write_collection(w, name, &c, &e);
      if (!st) st = sx_collection_get_batch(c, n, (const char *const *)ids, &recs, &e);
      if (st) rc = sx_fail(st, &e);
      m = 0;
      for (size_t i = 0; !rc && i < n; i++) {
        if (sx_records_found(recs, i)) {
          free(ids[i]);
          free(metas[i]);
          continue;
        }
        if (m != i) {
          ids[m] = ids[i];
          metas[m] = metas[i];
          memmove(vecs + m * dim, vecs + i * dim, dim * sizeof *vecs);
        }
        m++;
      }
      if (!rc)
        for (size_t i = m; i < n; i++) ids[i] = metas[i] = NULL;
      skipped += n - m;
      sx_records_free(recs);
      sx_collection_free(c);
    }
    if (!rc) {
      int st = sx_write_upsert(w, name, m, (const char *const *)ids, vecs, dim,
                               (const char *const *)metas, &e);
      if (st == SX_INVALID_ARGUMENT || st == SX_DIMENSION_MISMATCH)
        rc = fail(EX_ERR, "%s: rows %" PRIu64 "..%" PRIu64 " of '%s': %s", sx_status_name(st), done,
                  done + n - 1, in, e.message);
      else if (!st)
        st = sx_write_commit(w, &e);
      if (st && !rc) rc = sx_fail(st, &e);
    }
    sx_write_free(w);
    for (size_t i = 0; i < n; i++) {
      free(ids[i]);
      free(metas[i]);
      ids[i] = metas[i] = NULL;
    }
    if (!rc) {
      done += n;
      stored += m;
      progress_show(&pg, done, total, 0);
    }
    if (g_interrupted) {
      rc = fail(EX_INT,
                "interrupted after %" PRIu64
                " rows (committed); run the same import again to resume"
                " (--skip-existing keeps what is stored)",
                done);
      break;
    }
    if (rc) break;
  }
  if (!rc) progress_show(&pg, done, total, 1);
  double secs = now_s() - pg.t0;
  if (!rc) {
    if (g_json)
      printf("{\"rows\": %" PRIu64 ", \"stored\": %" PRIu64 ", \"skipped\": %" PRIu64
             ", \"created\": %s, \"seconds\": %.3f, \"rows_per_second\": %.1f}\n",
             done, stored, skipped, created ? "true" : "false", secs, secs > 0 ? done / secs : 0.0);
    else
      printf("imported %" PRIu64 " rows (%" PRIu64 " stored, %" PRIu64
             " skipped) into '%s' in %.2fs (%.0f rows/s)\n",
             done, stored, skipped, name, secs, secs > 0 ? done / secs : 0.0);
  }
  free(idline);
  free(vecs);
  free(ids);
  free(metas);
  free(row);
  if (idf) fclose(idf);
  reader_close(&rd);
  sx_db_free(db);
  return rc;
}

static void npy_header(FILE *f, uint64_t rows, size_t dim) {
  char dict[256];
  int n = snprintf(dict, sizeof dict,
                   "{'descr': '<f4', 'fortran_order': False, 'shape': (%" PRIu64 ", %zu), }", rows,
                   dim);
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  uint16_t hl = (uint16_t)(n + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  unsigned char b[2] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
  fwrite(b, 1, 2, f);
  fwrite(dict, 1, (size_t)n, f);
  for (size_t i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
}

/* An output file of export: stdout ("-"), a device or FIFO written as it is, or a
 * regular file written beside itself and renamed into place when all went well (through
 * its symlinks, so that a link to a file has the file replaced, not the link). */
typedef struct output {
  const char *path; /* as given */
  FILE *f;
  char *tmp, *target; /* regular files: where it is written, what it replaces */
} output;

static int output_open(output *o, const char *path) {
  memset(o, 0, sizeof *o);
  o->path = path;
  struct stat st;
  int exists = strcmp(path, "-") && stat(path, &st) == 0;
  if (!strcmp(path, "-")) {
    o->f = stdout;
  } else if (exists && S_ISDIR(st.st_mode)) {
    return fail(EX_ERR, "cannot write '%s': it is a directory", path);
  } else if (exists && !S_ISREG(st.st_mode)) {
    /* A device, FIFO or socket (/dev/null, /dev/stdout, a pipe): renaming a file over
     * it would replace the device node or the link. */
    if (!(o->f = fopen(path, "wb")))
      return fail(EX_ERR, "cannot write '%s': %s", path, strerror(errno));
  } else {
    o->target = exists ? realpath(path, NULL) : NULL;
    if (!o->target) o->target = strdup(path);
    o->tmp = cat2(o->target, ".part");
    if (!(o->f = fopen(o->tmp, "wb")))
      return fail(EX_ERR, "cannot write '%s': %s", o->tmp, strerror(errno));
  }
  return EX_OK;
}

/* Finishes o: flushed (a regular file synced and renamed into place) when rc is EX_OK,
 * else a regular file's temporary removed. Returns rc, or the error finishing met. */
static int output_close(output *o, int rc) {
  if (o->f && o->tmp) {
    if (fflush(o->f) || ferror(o->f) || fsync(fileno(o->f)))
      rc = rc ? rc : fail(EX_ERR, "cannot write '%s': %s", o->tmp, strerror(errno));
    fclose(o->f);
    if (!rc && rename(o->tmp, o->target))
      rc = fail(EX_ERR, "cannot rename '%s' to '%s': %s", o->tmp, o->target, strerror(errno));
    if (rc) unlink(o->tmp);
  } else if (o->f) {
    if ((fflush(o->f) || ferror(o->f)) && !rc)
      rc = fail(EX_ERR, "cannot write '%s': %s", o->f == stdout ? "stdout" : o->path,
                strerror(errno));
    if (o->f != stdout) fclose(o->f);
  }
  free(o->tmp);
  free(o->target);
  memset(o, 0, sizeof *o);
  return rc;
}

/* An id as the line of an ids file holds it: one without a line break (else, after
 * saying why, EX_ERR: the file has one id per line). */
static int put_id_line(FILE *f, const char *id, uint64_t record) {
  if (strpbrk(id, "\r\n")) {
    fprintf(stderr, "sextant %s: record %" PRIu64 " has the id ", g_cmd, record);
    put_json_string(stderr, id);
    fputs(
        ", which holds a line break: an ids file has one id per line (export it as JSON "
        "Lines)\n",
        stderr);
    return EX_ERR;
  }
  fputs(id, f);
  fputc('\n', f);
  return EX_OK;
}

static int c_export(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG,
                                     {"format", required_argument, NULL, 'f'},
                                     {"output", required_argument, NULL, 'o'},
                                     {"ids-output", required_argument, NULL, 'I'},
                                     {"after", required_argument, NULL, 'a'},
                                     {"batch", required_argument, NULL, 'b'},
                                     {"progress", no_argument, NULL, 'p'},
                                     {"no-progress", no_argument, NULL, 'q'},
                                     {0}};
  enum fmt fmt = F_NONE;
  const char *out = NULL, *ids_out = NULL, *after = NULL;
  uint64_t batch = 1000;
  for (int o; (o = getopt_long(argc, argv, "hf:o:b:", lo, NULL)) != -1;) switch (o) {
      case 'f':
        fmt = fmt_parse(optarg);
        if (fmt != F_JSONL && fmt != F_NPY)
          return fail(EX_USAGE, "--format '%s' is not jsonl or npy", optarg);
        break;
      case 'o':
        out = optarg;
        break;
      case 'I':
        ids_out = optarg;
        break;
      case 'a':
        after = optarg;
        break;
      case 'b':
        if (parse_u64("--batch", optarg, 1, 1000000, &batch)) return EX_USAGE;
        break;
      case 'p':
        g_progress = 1;
        break;
      case 'q':
        g_progress = 0;
        break;
        COMMON_CASES
    }
  if (!need_args(argc, optind, 2, 2)) return EX_USAGE;
  if (fmt == F_NONE) fmt = out && fmt_guess(out) == F_NPY ? F_NPY : F_JSONL;
  if (fmt == F_NPY && (!out || !strcmp(out, "-")))
    return fail(EX_USAGE, "npy export needs --output FILE (the ids go to FILE.ids)");
  if (fmt != F_NPY && ids_out)
    return fail(EX_USAGE, "--ids-output applies to npy exports (JSON Lines carry their ids)");
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) return rc;
  sx_read *r = NULL;
  sx_collection *c = NULL;
  sx_cursor *cur = NULL;
  output o = {0}, io = {0}; /* the records (or vectors), and the ids of an npy export */
  char *idpath = NULL;
  rc = read_coll(db, argv[optind + 1], &r, &c);
  sx_error e = SX_ERROR_INIT;
  if (!rc) {
    int st = sx_collection_cursor(c, after, &cur, &e);
    if (st) rc = sx_fail(st, &e);
  }
  if (!rc) rc = output_open(&o, out ? out : "-");
  if (!rc && fmt == F_NPY) {
    idpath = ids_out ? strdup(ids_out) : cat2(out, ".ids");
    rc = output_open(&io, idpath);
    sx_collection_info ci = SX_COLLECTION_INFO_INIT;
    sx_collection_describe(c, &ci, &e);
    if (!rc) npy_header(o.f, sx_cursor_remaining(cur), ci.dim);
  }
  progress pg;
  progress_begin(&pg, "export");
  uint64_t total = cur ? sx_cursor_remaining(cur) : 0, done = 0;
  while (!rc) {
    sx_records *recs = NULL;
    int st = sx_cursor_next(cur, (size_t)batch, &recs, &e);
    if (st) {
      rc = sx_fail(st, &e);
      break;
    }
    size_t n = sx_records_count(recs), dim = sx_records_dim(recs);
    for (size_t i = 0; i < n && !rc; i++) {
      if (fmt == F_JSONL)
        put_record(o.f, sx_records_id(recs, i), sx_records_vector(recs, i), dim,
                   sx_records_metadata(recs, i));
      else
        rc = put_id_line(io.f, sx_records_id(recs, i), done + i);
    }
    if (fmt == F_NPY && n) fwrite(sx_records_vectors(recs), sizeof(float), n * dim, o.f);
    sx_records_free(recs);
    if (n == 0) break;
    done += n;
    progress_show(&pg, done, total, 0);
    if (g_interrupted) rc = fail(EX_INT, "interrupted after %" PRIu64 " records", done);
  }
  if (!rc) progress_show(&pg, done, total, 1);
  rc = output_close(&io, rc);
  rc = output_close(&o, rc);
  if (!rc && out && strcmp(out, "-") && g_json) {
    printf("{\"records\": %" PRIu64 ", \"output\": ", done);
    put_json_string(stdout, out);
    puts("}");
  }
  free(idpath);
  sx_cursor_free(cur);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
  return rc;
}

/* Reads query vectors from a file: .npy / .fvecs / .bvecs / .jsonl ("vector" of each
 * line), or text (one vector per line, numbers separated by commas or spaces). */
static int read_queries(const char *path, float **qs, size_t *nq, size_t *dim) {
  enum fmt fmt = strcmp(path, "-") ? fmt_guess(path) : F_NONE;
  *qs = NULL;
  *nq = *dim = 0;
  size_t cap = 0;
  if (fmt == F_NONE) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return fail(EX_NOTFOUND, "cannot open query file '%s': %s", path, strerror(errno));
    char *line = NULL;
    size_t lc = 0;
    int rc = EX_OK;
    uint64_t ln = 0;
    while (!rc && getline(&line, &lc, f) > 0) {
      ln++;
      const char *p = line;
      while (isspace((unsigned char)*p)) p++;
      if (!*p) continue;
      float *v;
      size_t d;
      char what[64];
      snprintf(what, sizeof what, "query line %" PRIu64, ln);
      rc = parse_vector_text(what, line, &v, &d);
      if (rc) break;
      if (*dim && d != *dim) {
        free(v);
        rc = fail(EX_USAGE, "query line %" PRIu64 " has %zu numbers, the first had %zu", ln, d,
                  *dim);
        break;
      }
      *dim = d;
      if (*nq == cap) *qs = realloc(*qs, (cap = cap ? cap * 2 : 16) * d * sizeof **qs);
      memcpy(*qs + *nq * d, v, d * sizeof *v);
      (*nq)++;
      free(v);
    }
    free(line);
    if (f != stdin) fclose(f);
    if (!rc && !*nq) rc = fail(EX_USAGE, "query file '%s' has no vectors", path);
    return rc;
  }
  reader rd;
  int rc = reader_open(&rd, path, fmt);
  rd.vectors_only = 1;
  float *row = NULL;
  char *id = NULL, *meta = NULL;
  while (!rc) {
    int got;
    if (fmt == F_JSONL) {
      got = read_row_jsonl(&rd, &id, &row, &meta, &rc);
      free(id);
      free(meta);
      id = meta = NULL;
    } else {
      if (!row) row = malloc(rd.dim * sizeof *row);
      got = read_row_binary(&rd, row, &rc);
    }
    if (!got) break;
    *dim = rd.dim;
    if (*nq == cap) *qs = realloc(*qs, (cap = cap ? cap * 2 : 16) * rd.dim * sizeof **qs);
    memcpy(*qs + *nq * rd.dim, row, rd.dim * sizeof *row);
    (*nq)++;
  }
  free(row);
  reader_close(&rd);
  if (!rc && !*nq) rc = fail(EX_USAGE, "query file '%s' has no vectors", path);
  return rc;
}

static int c_search(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG,
                                     {"vector", required_argument, NULL, 'v'},
                                     {"query-file", required_argument, NULL, 'Q'},
                                     {"k", required_argument, NULL, 'k'},
                                     {"ef", required_argument, NULL, 'e'},
                                     {"filter", required_argument, NULL, 'F'},
                                     {"exact", no_argument, NULL, 'X'},
                                     {0}};
  const char *vtext = NULL, *qfile = NULL, *filter = NULL;
  uint64_t k = 10, ef = 0;
  int exact = 0;
  /* A vector given as the third argument may begin with a minus sign: take it out
   * before getopt sees it as options. */
  for (int i = 1, pos = 0; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {
      pos++;
    } else if ((isdigit((unsigned char)a[1]) || a[1] == '.') && pos == 2 && !vtext) {
      vtext = a;
      memmove(argv + i, argv + i + 1, (size_t)(argc - i - 1) * sizeof *argv);
      argc--;
      i--;
    } else if (strchr("vQke", a[1]) && a[2] == 0) {
      i++; /* skips the option's value */
    } else if (!strcmp(a, "--vector") || !strcmp(a, "--query-file") || !strcmp(a, "--k") ||
               !strcmp(a, "--ef") || !strcmp(a, "--filter")) {
      i++;
    }
  }
  for (int o; (o = getopt_long(argc, argv, "hv:Q:k:", lo, NULL)) != -1;) switch (o) {
      case 'v':
        vtext = optarg;
        break;
      case 'Q':
        qfile = optarg;
        break;
      case 'k':
        if (parse_u64("-k", optarg, 1, 100000, &k)) return EX_USAGE;
        break;
      case 'e':
        if (parse_u64("--ef", optarg, 1, 1000000, &ef)) return EX_USAGE;
        break;
      case 'F':
        filter = optarg;
        break;
      case 'X':
        exact = 1;
        break;
        COMMON_CASES
    }
  if (!need_args(argc, optind, 2, 3)) return EX_USAGE;
  if (filter) {
    /* Checked before the database is opened: a bad filter is a usage error. */
    sx_error fe = SX_ERROR_INIT;
    if (sx_filter_check(filter, &fe)) return fail(EX_USAGE, "--filter: %s", fe.message);
  }
  const char *positional = argc - optind == 3 ? argv[optind + 2] : NULL;
  if ((vtext != NULL) + (positional != NULL) + (qfile != NULL) != 1)
    return fail(EX_USAGE,
                "give one query: a vector (\"0.1,0.2,...\" or --vector), or --query-file FILE (- "
                "for stdin)");
  if (positional) vtext = positional;
  float *qs = NULL;
  size_t nq = 1, dim = 0;
  int rc = vtext ? parse_vector_text("query vector", vtext, &qs, &dim)
                 : read_queries(qfile, &qs, &nq, &dim);
  if (rc) return rc;
  sx_db *db;
  rc = open_db(argv[optind], 1, 0, &db);
  if (rc) {
    free(qs);
    return rc;
  }
  sx_read *r = NULL;
  sx_collection *c = NULL;
  rc = read_coll(db, argv[optind + 1], &r, &c);
  if (!rc) {
    sx_error e = SX_ERROR_INIT;
    sx_search_options so = SX_SEARCH_OPTIONS_INIT;
    so.ef = (uint32_t)ef;
    so.cancel_token = g_cancel;
    so.filter = filter;
    so.exact = (uint32_t)exact;
    sx_results *res = NULL;
    double t0 = now_s();
    int st = sx_collection_search_batch(c, qs, nq, dim, (size_t)k, &so, &res, &e);
    double ms = (now_s() - t0) * 1e3;
    if (st) {
      rc = sx_fail(st, &e);
    } else if (g_json) {
      json_t *all = json_array();
      for (size_t q = 0; q < nq; q++) {
        json_t *hits = json_array();
        for (size_t i = 0; i < sx_results_count(res, q); i++) {
          json_t *h = json_object();
          json_object_set_new(h, "id", json_string(sx_results_id(res, q, i)));
          json_object_set_new(h, "distance", json_real(sx_results_distance(res, q, i)));
          json_array_append_new(hits, h);
        }
        json_array_append_new(all, hits);
      }
      json_t *o = json_object();
      json_object_set_new(o, "queries", json_integer((json_int_t)nq));
      json_object_set_new(o, "k", json_integer((json_int_t)k));
      json_object_set_new(o, "milliseconds", json_real(ms));
      json_object_set_new(o, "results",
                          nq == 1 ? json_incref(json_array_get(all, 0)) : json_incref(all));
      json_decref(all);
      json_out(o);
    } else {
      for (size_t q = 0; q < nq; q++) {
        if (nq > 1) printf("query %zu\n", q);
        for (size_t i = 0; i < sx_results_count(res, q); i++)
          printf("%3zu  %-40s %.6g\n", i + 1, sx_results_id(res, q, i),
                 (double)sx_results_distance(res, q, i));
      }
    }
    sx_results_free(res);
  }
  free(qs);
  sx_collection_free(c);
  sx_read_free(r);
  sx_db_free(db);
  return rc;
}

static int c_checkpoint(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 1, 1)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 0, 0, &db);
  if (rc) return rc;
  sx_error e = SX_ERROR_INIT;
  sx_write_options wo = SX_WRITE_OPTIONS_INIT;
  wo.timeout_ms = g_timeout_ms;
  wo.cancel_token = g_cancel;
  int st = sx_db_checkpoint_opts(db, &wo, &e);
  sx_db_stats s = SX_DB_STATS_INIT;
  if (!st) st = sx_db_stats_get(db, &s, &e);
  if (st) {
    rc = sx_fail(st, &e);
  } else if (g_json) {
    printf("{\"wal_frames\": %" PRIu64 ", \"wal_backfilled\": %" PRIu64 ", \"complete\": %s}\n",
           s.wal_frames, s.wal_backfilled, s.wal_frames == s.wal_backfilled ? "true" : "false");
  } else {
    printf("checkpointed %" PRIu64 " of %" PRIu64 " WAL frames%s\n", s.wal_backfilled, s.wal_frames,
           s.wal_frames == s.wal_backfilled ? "" : " (a reader pins an older snapshot)");
  }
  sx_db_free(db);
  return rc;
}

static int c_delete(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {"ids-file", required_argument, NULL, 'I'}, {0}};
  const char *ids_file = NULL;
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      case 'I':
        ids_file = optarg;
        break;
        COMMON_CASES
    }
  if (!need_args(argc, optind, ids_file ? 2 : 3, -1)) return EX_USAGE;
  size_t n = 0, cap = 16;
  char **ids = malloc(cap * sizeof *ids);
  for (int i = optind + 2; i < argc; i++) {
    if (n == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
    ids[n++] = strdup(argv[i]);
  }
  int rc = EX_OK;
  if (ids_file) {
    FILE *f = strcmp(ids_file, "-") ? fopen(ids_file, "r") : stdin;
    if (!f) rc = fail(EX_NOTFOUND, "cannot open ids file '%s': %s", ids_file, strerror(errno));
    char *line = NULL;
    size_t lc = 0;
    for (uint64_t lineno = 1; !rc; lineno++) {
      int got = read_id_line(f, ids_file, lineno, &line, &lc);
      if (got < 0) rc = EX_ERR;
      if (got <= 0) break;
      if (!*line) continue;
      if (n == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
      ids[n++] = strdup(line);
    }
    free(line);
    if (f && f != stdin) fclose(f);
  }
  sx_db *db = NULL;
  if (!rc) rc = open_db(argv[optind], 0, 0, &db);
  sx_write *w = NULL;
  if (!rc) rc = begin_write(db, &w);
  if (!rc) {
    sx_error e = SX_ERROR_INIT;
    size_t deleted = 0;
    int st = sx_write_delete(w, argv[optind + 1], n, (const char *const *)ids, &deleted, &e);
    if (!st) st = sx_write_commit(w, &e);
    if (st)
      rc = sx_fail(st, &e);
    else if (g_json)
      printf("{\"requested\": %zu, \"deleted\": %zu}\n", n, deleted);
    else
      printf("deleted %zu of %zu ids\n", deleted, n);
  }
  for (size_t i = 0; i < n; i++) free(ids[i]);
  free(ids);
  sx_write_free(w);
  sx_db_free(db);
  return rc;
}

static int c_drop(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG, {0}};
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      COMMON_CASES
    }
  if (!need_args(argc, optind, 2, 2)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 0, 0, &db);
  if (rc) return rc;
  sx_write *w = NULL;
  rc = begin_write(db, &w);
  if (!rc) {
    sx_error e = SX_ERROR_INIT;
    int st = sx_write_drop_collection(w, argv[optind + 1], &e);
    if (!st) st = sx_write_commit(w, &e);
    if (st)
      rc = sx_fail(st, &e);
    else if (g_json)
      printf("{\"dropped\": true}\n");
  }
  sx_write_free(w);
  sx_db_free(db);
  return rc;
}

static int c_backup(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG,
                                     {"overwrite", no_argument, NULL, 'f'},
                                     {"progress", no_argument, NULL, 'p'},
                                     {"no-progress", no_argument, NULL, 'q'},
                                     {0}};
  sx_backup_options bo = SX_BACKUP_OPTIONS_INIT;
  for (int o; (o = getopt_long(argc, argv, "hf", lo, NULL)) != -1;) switch (o) {
      case 'f':
        bo.overwrite = 1;
        break;
      case 'p':
        g_progress = 1;
        break;
      case 'q':
        g_progress = 0;
        break;
        COMMON_CASES
    }
  if (!need_args(argc, optind, 2, 2)) return EX_USAGE;
  sx_db *db;
  int rc = open_db(argv[optind], 1, 0, &db);
  if (rc) return rc;
  progress pg;
  progress_begin(&pg, "backup (pages)");
  bo.progress = backup_progress;
  bo.progress_ctx = &pg;
  bo.cancel_token = g_cancel;
  sx_error e = SX_ERROR_INIT;
  int st = sx_db_backup(db, argv[optind + 1], &bo, &e);
  if (pg.on && pg.last > pg.t0) fprintf(stderr, "\n");
  double secs = now_s() - pg.t0;
  if (st) {
    rc = sx_fail(st, &e);
  } else if (g_json) {
    fputs("{\"backup\": ", stdout);
    put_json_string(stdout, argv[optind + 1]);
    printf(", \"bytes\": %" PRIu64 ", \"seconds\": %.3f}\n", file_size(argv[optind + 1]), secs);
  } else {
    printf("backed up to %s (%" PRIu64 " bytes) in %.2fs\n", argv[optind + 1],
           file_size(argv[optind + 1]), secs);
  }
  sx_db_free(db);
  return rc;
}

static void compact_progress(void *ctx, uint64_t done, uint64_t total) {
  progress_show((progress *)ctx, done, total, 0);
}

static int space_of(sx_db *db, sx_space_stats *sp) {
  sx_error e = SX_ERROR_INIT;
  sx_read *r = NULL;
  int st = sx_read_begin(db, &r, &e);
  if (!st) st = sx_read_space_get(r, sp, &e);
  sx_read_free(r);
  return st ? sx_fail(st, &e) : EX_OK;
}

/* Nonzero when dest names the database at src or one of its companions (-wal, -shm). */
static int same_db_file(const char *src, const char *dest) {
  char *a = realpath(src, NULL), *b = realpath(dest, NULL);
  size_t la = a ? strlen(a) : 0;
  int same = a && b && (!strcmp(a, b) || (!strncmp(a, b, la) && b[la] == '-'));
  free(a);
  free(b);
  return same;
}

/* compact --into: writes the live records of db (opened from src) to a scratch
 * database beside dest, then backs that up to dest (written beside it, synced, renamed
 * into place; refused while a handle has a database at dest open), and fills *after
 * with its space figures (dest itself is never opened: no -wal or -shm beside it). An
 * existing dest is taken through its symlinks and must be a regular file other than
 * the database: a rename over a device node, a FIFO or the source would replace it. */
static int compact_into(sx_db *db, const char *src, const char *dest, int overwrite,
                        sx_space_stats *after) {
  struct stat sb;
  if (stat(dest, &sb) == 0) {
    if (!S_ISREG(sb.st_mode))
      return fail(EX_ERR, "'%s' is not a regular file (a device, FIFO or directory)", dest);
    if (same_db_file(src, dest))
      return fail(EX_ERR, "'%s' is the database itself (--into names a new file)", dest);
    if (!overwrite) return fail(EX_ERR, "'%s' exists (remove it, or --overwrite)", dest);
  }
  char *real = realpath(dest, NULL); /* NULL: dest does not exist yet */
  if (real) dest = real;
  char suffix[64];
  snprintf(suffix, sizeof suffix, ".tmp-%d", (int)getpid());
  char *tmp = cat2(dest, suffix), *tw = cat2(tmp, "-wal"), *tw2 = cat2(tmp, "-wal2"),
       *ts = cat2(tmp, "-shm");
  sx_error e = SX_ERROR_INIT;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.sync = SX_SYNC_OFF; /* a scratch file: what reaches dest is its backup, synced */
  sx_db *out = NULL;
  sx_read *r = NULL;
  sx_names *names = NULL;
  int st = sx_db_open(&out, tmp, &oo, &e);
  if (!st) st = sx_read_begin(db, &r, &e);
  if (!st) st = sx_read_list_collections(r, &names, &e);
  uint64_t total = 0, done = 0;
  for (size_t i = 0; !st && i < sx_names_count(names); i++) {
    sx_collection *c;
    uint64_t n = 0;
    st = sx_read_collection(r, sx_names_get(names, i), &c, &e);
    if (!st) st = sx_collection_count(c, &n, &e);
    sx_collection_free(c);
    total += n;
  }
  progress pg;
  progress_begin(&pg, "compact");
  for (size_t i = 0; !st && i < sx_names_count(names); i++) {
    const char *name = sx_names_get(names, i);
    sx_collection *c = NULL;
    sx_cursor *cur = NULL;
    sx_collection_info ci = SX_COLLECTION_INFO_INIT;
    st = sx_read_collection(r, name, &c, &e);
    if (!st) st = sx_collection_describe(c, &ci, &e);
    if (!st) st = sx_collection_cursor(c, NULL, &cur, &e);
    sx_write *w = NULL;
    if (!st) {
      sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
      co.dim = ci.dim;
      co.metric = ci.metric;
      co.index = ci.index;
      co.hnsw_m = ci.hnsw_m;
      co.hnsw_ef_construction = ci.hnsw_ef_construction;
      co.quantization = ci.quantization;
      st = sx_write_begin(out, 0, &w, &e);
      if (!st) st = sx_write_create_collection(w, name, &co, &e);
    }
    while (!st) {
      sx_records *recs = NULL;
      st = sx_cursor_next(cur, 4096, &recs, &e);
      size_t n = sx_records_count(recs);
      if (!st && n) {
        const size_t *ioff, *moff;
        const char *ids = sx_records_id_data(recs, &ioff),
                   *meta = sx_records_metadata_data(recs, &moff);
        /* The records' own buffers, as the packed upsert takes them (NULs included:
         * each id's range is shortened by one below). */
        size_t *io = malloc((n + 1) * sizeof *io), *mo = malloc((n + 1) * sizeof *mo);
        char *idb = malloc(ioff[n] + 1);
        size_t at = 0;
        for (size_t k = 0; k < n; k++) {
          size_t len = ioff[k + 1] - ioff[k] - 1;
          memcpy(idb + at, ids + ioff[k], len);
          io[k] = at;
          at += len;
        }
        io[n] = at;
        char *mb = malloc(moff[n] + 1);
        at = 0;
        for (size_t k = 0; k < n; k++) {
          size_t len = moff[k + 1] > moff[k] ? moff[k + 1] - moff[k] - 1 : 0;
          memcpy(mb + at, meta + moff[k], len);
          mo[k] = at;
          at += len;
        }
        mo[n] = at;
        st = sx_write_upsert_packed(w, name, n, idb, io, sx_records_vectors(recs), ci.dim, mb, mo,
                                    &e);
        free(io);
        free(mo);
        free(idb);
        free(mb);
        done += n;
        progress_show(&pg, done, total, 0);
      }
      sx_records_free(recs);
      if (!n) break;
      if (g_interrupted && !st) {
        st = SX_CANCELLED;
        snprintf(e.message, sizeof e.message, "interrupted");
      }
    }
    if (!st) st = sx_write_commit(w, &e);
    sx_write_free(w);
    sx_cursor_free(cur);
    sx_collection_free(c);
  }
  if (!st) progress_show(&pg, done, total, 1);
  sx_names_free(names);
  sx_read_free(r);
  /* The new file goes to dest as a backup of it does: written beside dest, synced,
   * renamed over it; an existing dest's WAL files go too, which is refused while a
   * handle has that database open. */
  sx_backup_options bo = SX_BACKUP_OPTIONS_INIT;
  bo.overwrite = overwrite;
  if (!st) st = sx_db_backup(out, dest, &bo, &e);
  int rc = st ? sx_fail(st, &e) : space_of(out, after);
  sx_db_free(out);
  unlink(tmp);
  unlink(tw);
  unlink(tw2);
  unlink(ts);
  free(tmp);
  free(tw);
  free(tw2);
  free(ts);
  free(real);
  return rc;
}

static int c_compact(int argc, char **argv) {
  static const struct option lo[] = {COMMON_LONG,
                                     {"into", required_argument, NULL, 'i'},
                                     {"overwrite", no_argument, NULL, 'f'},
                                     {"no-checkpoint", no_argument, NULL, 'n'},
                                     {"progress", no_argument, NULL, 'p'},
                                     {"no-progress", no_argument, NULL, 'q'},
                                     {0}};
  const char *into = NULL;
  int overwrite = 0, ckpt = 1;
  for (int o; (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) switch (o) {
      case 'i':
        into = optarg;
        break;
      case 'f':
        overwrite = 1;
        break;
      case 'n':
        ckpt = 0;
        break;
      case 'p':
        g_progress = 1;
        break;
      case 'q':
        g_progress = 0;
        break;
        COMMON_CASES
    }
  if (!need_args(argc, optind, 1, 1)) return EX_USAGE;
  const char *path = argv[optind];
  sx_db *db;
  int rc = open_db(path, into != NULL, 0, &db);
  if (rc) return rc;
  sx_space_stats before = SX_SPACE_STATS_INIT, after = SX_SPACE_STATS_INIT;
  uint64_t fbefore = file_size(path), fafter = 0;
  rc = space_of(db, &before);
  double t0 = now_s();
  if (!rc && into) {
    rc = compact_into(db, path, into, overwrite, &after);
    fafter = file_size(into);
  } else if (!rc) {
    progress pg;
    progress_begin(&pg, "compact");
    sx_compact_options co = SX_COMPACT_OPTIONS_INIT;
    co.timeout_ms = g_timeout_ms;
    co.cancel_token = g_cancel;
    co.progress = compact_progress;
    co.progress_ctx = &pg;
    sx_error e = SX_ERROR_INIT;
    int st = sx_db_compact(db, &co, &e);
    if (pg.on && pg.last > pg.t0) fprintf(stderr, "\n");
    if (!st && ckpt) st = sx_db_checkpoint(db, g_timeout_ms, &e);
    rc = st ? sx_fail(st, &e) : space_of(db, &after);
    fafter = file_size(path);
  }
  double secs = now_s() - t0;
  if (!rc) {
    if (g_json) {
      printf("{\"seconds\": %.3f, \"into\": ", secs);
      if (into)
        put_json_string(stdout, into);
      else
        fputs("null", stdout);
      printf(", \"file_bytes_before\": %" PRIu64 ", \"file_bytes_after\": %" PRIu64
             ", \"live_bytes\": %" PRIu64 ", \"collection_pages_before\": %" PRIu64
             ", \"collection_pages_after\": %" PRIu64 ", \"free_pages_after\": %" PRIu64
             ", \"reclaimable_bytes_before\": %" PRIu64 ", \"reclaimable_bytes_after\": %" PRIu64
             "}\n",
             fbefore, fafter, after.live_bytes, before.collection_pages, after.collection_pages,
             after.free_pages, before.reclaimable_bytes, after.reclaimable_bytes);
    } else {
      printf("compacted in %.2fs: collections %" PRIu64 " -> %" PRIu64
             " pages, reclaimable %" PRIu64 " -> %" PRIu64 " bytes; file %" PRIu64 " -> %" PRIu64
             " bytes%s\n",
             secs, before.collection_pages, after.collection_pages, before.reclaimable_bytes,
             after.reclaimable_bytes, fbefore, fafter,
             into ? ""
                  : " (freed pages are reused by later writes; --into DEST writes a file of only "
                    "the live data)");
    }
  }
  sx_db_free(db);
  return rc;
}

static const cmd CMDS[] = {
    {"info", "DATABASE", "file, format and collections at a glance", c_info},
    {"stats", "DATABASE", "WAL, checkpoints and readers, across all processes", c_stats},
    {"check", "DATABASE", "integrity check; exit 3 when the database is damaged", c_check},
    {"collections", "DATABASE", "names of the collections", c_collections},
    {"describe", "DATABASE COLLECTION", "schema, count and slot use of a collection", c_describe},
    {"count", "DATABASE COLLECTION", "number of live vectors", c_count},
    {"get", "DATABASE COLLECTION ID...", "records as JSON Lines; exit 4 if any id is missing",
     c_get},
    {"create",
     "DATABASE COLLECTION --dim N [--metric l2|ip|cosine] [--index hnsw|flat] [--m M] "
     "[--ef-construction EF] [--quantization none|int8]",
     "create a collection (and the database when missing)", c_create},
    {"import",
     "DATABASE COLLECTION FILE [--format npy|fvecs|bvecs|jsonl] [--ids FILE] [--id-prefix P] "
     "[--start N]"
     " [--batch N] [--skip-existing] [--sync full|normal|off] [--metric M] [--index I] [--m M]"
     " [--ef-construction EF] [--quantization Q]",
     "load vectors in batched commits; the collection is created when missing. Ids: JSON Lines "
     "carry them; for\n"
     "  the others, one per line from --ids, else PREFIX + row number (from --start). Re-running "
     "an interrupted\n"
     "  import resumes it: ids already present are replaced (same data), or left as they are with "
     "--skip-existing.\n"
     "  The collection options apply when import creates the collection; for one that exists "
     "they must match it",
     c_import},
    {"export",
     "DATABASE COLLECTION [-o FILE] [--format jsonl|npy] [--ids-output FILE] [--after ID] [--batch "
     "N]",
     "records in id order as JSON Lines (stdout by default), or a float32 .npy plus an ids file "
     "(FILE.ids)",
     c_export},
    {"search",
     "DATABASE COLLECTION [VECTOR | --vector V | --query-file FILE|-] [-k K] [--ef EF] [--filter "
     "JSON] [--exact]",
     "nearest neighbours; a vector is numbers separated by commas or spaces; a query file is .npy, "
     ".fvecs,\n"
     "  .bvecs, .jsonl or text with one vector per line; --filter keeps the items whose metadata\n"
     "  matches a JSON filter ({\"tag\": \"t1\", \"i\": {\"$lt\": 10}}, see sextant.h); --exact "
     "scans",
     c_search},
    {"checkpoint", "DATABASE", "copy the WAL into the database file as far as readers allow",
     c_checkpoint},
    {"delete", "DATABASE COLLECTION [ID...] [--ids-file FILE|-]",
     "delete ids (missing ones are not an error)", c_delete},
    {"drop", "DATABASE COLLECTION", "drop a collection and free its pages", c_drop},
    {"backup", "DATABASE DEST [--overwrite]",
     "online, consistent copy to DEST (temp file, fsync, rename); writers and readers carry on",
     c_backup},
    {"compact", "DATABASE [--into DEST [--overwrite]] [--no-checkpoint]",
     "rewrite every collection densely, reclaiming deleted records' space, as one write session "
     "(readers\n"
     "  carry on); the freed pages are reused by later writes. With --into, write a new database "
     "of only the\n"
     "  live records to DEST instead (the source is only read)",
     c_compact},
};

static void cmd_usage(FILE *f) {
  fprintf(f, "usage: sextant [--json] %s %s\n\n  %s\n", g_this->name, g_this->args, g_this->help);
  fprintf(f, "\n  --json   one JSON document on stdout\n  --help   this text\n");
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: sextant [--json] [--timeout MS] COMMAND [OPTIONS] DATABASE [ARGS]\n"
          "       sextant COMMAND --help\n\ncommands:\n");
  for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
    fprintf(f, "  %-12s %s\n", CMDS[i].name, CMDS[i].help);
  fprintf(f,
          "\noptions:\n  --json        JSON output (get and export always write JSON Lines)\n"
          "  --timeout MS  longest wait for the writer lock (default 5000; -1 waits for ever)\n"
          "  --version     library version\n"
          "\nexit codes: 0 ok, 1 error, 2 usage, 3 corrupt database, 4 not found, 5 busy, 130 "
          "interrupted\n");
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--json"))
      g_json = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return EX_OK;
    } else if (!strcmp(argv[i], "--version")) {
      printf("sextant %s (format %d)\n", sx_version(), sx_format_version());
      return EX_OK;
    } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < -1 || v > 86400000) {
        fprintf(stderr, "sextant: --timeout '%s' is not -1 or 0..86400000\n", argv[i]);
        return EX_USAGE;
      }
      g_timeout_ms = (int)v;
    } else {
      fprintf(stderr, "sextant: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return EX_USAGE;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return EX_USAGE;
  }
  for (size_t k = 0; k < sizeof CMDS / sizeof CMDS[0]; k++) {
    if (strcmp(argv[i], CMDS[k].name)) continue;
    g_this = &CMDS[k];
    g_cmd = CMDS[k].name;
    sx_error e = SX_ERROR_INIT;
    if (sx_cancel_new(&g_cancel, &e)) return EX_ERR;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    optind = 1;
    int rc = CMDS[k].fn(argc - i, argv + i);
    if (fflush(stdout)) rc = rc ? rc : fail(EX_ERR, "cannot write to stdout: %s", strerror(errno));
    sx_cancel_free(g_cancel);
    return rc;
  }
  fprintf(stderr, "sextant: unknown command '%s' (sextant --help lists them)\n", argv[i]);
  return EX_USAGE;
}
