/*
 * coll.c: the catalog (collection names to header pages), collection headers and
 * their schema, and the argument checks every operation shares (names, ids,
 * vectors). The records of a collection (slots, the id map, the heap, upsert, delete,
 * get) are in records.c; the integrity check in integrity.c. Layout in collection.h.
 *
 * Every operation validates its arguments before it touches a page.
 */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collection/collection.h"

#define CAT_OFF SX__PAGE0_USER_OFFSET /* page 0: u32 first catalog page */
#define CAT_NEXT 0
#define CAT_N 4
#define CAT_ENT 8
#define CAT_ENT_SIZE 72 /* name[68] NUL-padded, u32 header page */

static const unsigned PA_ALL[] = {H_PA_VEC,  H_PA_SLOTS, H_PA_HEAP,  H_PA_HASH,  H_PA_FREE,
                                  H_PA_LIVE, H_PA_G0,    H_PA_META, H_PA_UPPER, H_PA_NORMS,
                                  H_PA_STAMPS};

void sx__coll_hnsw_layout(uint32_t hdr, sx__hnsw_layout *out) {
  memset(out, 0, sizeof *out);
  out->owner = hdr;
  out->ep_off = H_HNSW_EP;
  out->graph0_off = H_PA_G0;
  out->meta_off = H_PA_META;
  out->upper_off = H_PA_UPPER;
  out->norms_off = H_PA_NORMS;
  out->upper_len_off = H_UPPER_LEN;
  out->vec_off = H_PA_VEC;
  out->live_off = H_PA_LIVE;
  out->nslots_off = H_NSLOTS;
  out->count_off = H_COUNT;
  out->nfree_off = H_NFREE;
  out->stamp_off = H_PA_STAMPS;
  out->stamp_seq_off = H_STAMP_SEQ;
}

static uint32_t cat_cap(uint32_t ps) { return (ps - CAT_ENT) / CAT_ENT_SIZE; }

/* ---- names, ids ------------------------------------------------------------- */

int sx__check_name(const char *name, sx_error *err) {
  if (!name) return sx__err_set(err, SX_INVALID_ARGUMENT, "collection name is NULL");
  size_t n = strlen(name);
  if (n == 0 || n > SX_NAME_MAX || name[0] == '.')
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "collection name '%.80s' must be 1 to 64 characters of A-Z a-z 0-9 _ - . "
                       "not beginning with '.'", name);
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '-' || ch == '.';
    if (!ok)
      return sx__err_set(err, SX_INVALID_ARGUMENT,
                         "collection name '%.80s' has a character outside A-Z a-z 0-9 _ - .", name);
  }
  return SX_OK;
}

static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += len;
  }
  return 1;
}

int sx__check_id(const char *id, size_t item, sx_error *err) {
  if (!id) return sx__err_set(err, SX_INVALID_ARGUMENT, "id of item %zu is NULL", item);
  size_t n = strlen(id);
  if (n == 0) return sx__err_set(err, SX_INVALID_ARGUMENT, "id of item %zu is empty", item);
  if (n > SX_ID_MAX)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "id '%.40s...' of item %zu is %zu bytes (at most %d)",
                       id, item, n, SX_ID_MAX);
  if (!utf8_valid((const unsigned char *)id, n))
    return sx__err_set(err, SX_INVALID_ARGUMENT, "id of item %zu is not valid UTF-8", item);
  return SX_OK;
}

/* Bounds on a vector's squared norm |v|^2 under ip and cosine, whose kernels sum
 * products in float32. Above SX__NORM2_MAX the float32 sums overflow: |q.v| <= |q||v|
 * <= max(|q|^2, |v|^2) keeps every partial dot product and norm product finite when
 * both vectors stay below it (half of FLT_MAX leaves room for the rounding of the
 * sums), where beyond it they became +-Inf and then NaN (Inf - Inf, Inf / Inf) that
 * sorted first. Below SX__NORM2_MIN (2^-133, cosine only) float32 keeps fewer than 16
 * significant bits of |v|^2 (subnormal), and an all-subnormal vector's float32 norm
 * is 0: distance 1 to itself. l2 needs neither bound: its sums are of squares, which
 * overflow to +Inf (a distance too large for float32, still ordered), never NaN. */
#define SX__NORM2_MAX ((double)FLT_MAX / 2)
#define SX__NORM2_MIN 0x1p-133

/* Checks a vector: finite components; under cosine nonzero; under ip and cosine a
 * squared norm float32 can compute with (see SX__NORM2_MAX). */
int sx__check_vector(const float *v, size_t dim, int metric, const char *what, size_t item,
                     sx_error *err) {
  /* A branch-free pass first (it vectorizes; this runs on every query): an exponent
   * of all ones is Inf or NaN; a vector is zero iff every component is +-0; a
   * component of magnitude 2^55 or more (exponent field >= 182; below it, SX_DIM_MAX
   * squares sum to under 2^126), or a cosine vector
   * with no component of 2^-64 or more (exponent field < 63), may be out of the
   * bounds above and takes the exact path. */
  uint32_t bad = 0, nz = 0, big = 0, normal = 0;
  for (size_t j = 0; j < dim; j++) {
    uint32_t b;
    memcpy(&b, &v[j], 4);
    uint32_t e = (b >> 23) & 0xffu;
    bad |= e == 0xffu;
    nz |= b & 0x7fffffffu;
    big |= e >= 182u;
    normal |= e >= 63u;
  }
  if (!bad && (metric == SX__L2 || (!big && (metric == SX__IP || normal)))) return SX_OK;
  double n2 = 0;
  for (size_t j = 0; j < dim; j++) {
    if (!isfinite(v[j]))
      return sx__err_set(err, SX_INVALID_ARGUMENT, "%s %zu has a non-finite component %g at index %zu",
                         what, item, (double)v[j], j);
    n2 += (double)v[j] * v[j];
  }
  if (metric == SX__COSINE && !nz)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "%s %zu is a zero vector, which has no cosine distance",
                       what, item);
  if (metric != SX__L2 && n2 > SX__NORM2_MAX)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "%s %zu's squared norm %g overflows float32 (at most %g under %s)", what, item,
                       n2, SX__NORM2_MAX, metric == SX__IP ? "ip" : "cosine");
  if (metric == SX__COSINE && n2 < SX__NORM2_MIN)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "%s %zu's squared norm %g underflows float32 (at least %g under cosine)", what,
                       item, n2, SX__NORM2_MIN);
  return SX_OK;
}

/* ---- catalog ------------------------------------------------------------------ */

typedef struct catpos {
  uint32_t page; /* catalog page holding the entry, 0 if none */
  uint32_t idx;
  uint32_t hdr;
} catpos;

static int cat_find(const sx__pv *v, const char *name, catpos *pos, sx_error *err) {
  memset(pos, 0, sizeof *pos);
  const uint8_t *p0;
  int rc = sx__pv_page(v, 0, &p0, err);
  if (rc) return rc;
  uint32_t ps = sx__pager_page_size(v->p);
  unsigned guard = 0;
  for (uint32_t pg = sx__rd32(p0 + CAT_OFF); pg; guard++) {
    const uint8_t *cp;
    rc = sx__pv_page(v, pg, &cp, err);
    if (rc) return rc;
    uint32_t n = sx__rd32(cp + CAT_N);
    if (n > cat_cap(ps) || guard > 1u << 20)
      return sx__err_set(err, SX_CORRUPT, "catalog page %u is damaged", pg);
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t *e = cp + CAT_ENT + i * CAT_ENT_SIZE;
      if (strncmp((const char *)e, name, 68) == 0) {
        pos->page = pg;
        pos->idx = i;
        pos->hdr = sx__rd32(e + 68);
        return SX_OK;
      }
    }
    pg = sx__rd32(cp + CAT_NEXT);
  }
  return SX_OK;
}

static int load_coll(const sx__pv *v, uint32_t hdr, const char *name, sx__coll *c, sx_error *err) {
  const uint8_t *h;
  int rc = sx__pv_page(v, hdr, &h, err);
  if (rc) return rc;
  if (sx__rd32(h + H_MAGIC) != SX__COLL_MAGIC || strncmp((const char *)h + H_NAME, name, 65) != 0)
    return sx__err_set(err, SX_CORRUPT, "header page %u of collection '%s' is damaged", hdr, name);
  memset(c, 0, sizeof *c);
  c->v = *v;
  c->hdr = hdr;
  snprintf(c->name, sizeof c->name, "%s", name);
  c->dim = sx__rd32(h + H_DIM);
  c->metric = (int)sx__rd32(h + H_METRIC);
  c->index = (int)sx__rd32(h + H_INDEX);
  c->m = sx__rd32(h + H_M);
  c->efc = sx__rd32(h + H_EFC);
  if (c->dim == 0 || c->dim > SX_DIM_MAX || c->metric < 0 || c->metric > 2 || c->index < 0 ||
      c->index > 1)
    return sx__err_set(err, SX_CORRUPT, "header page %u of collection '%s' has a bad schema", hdr, name);
  return SX_OK;
}

int sx__coll_open(const sx__pv *v, const char *name, sx__coll *c, sx_error *err) {
  int rc = sx__check_name(name, err);
  if (rc) return rc;
  catpos pos;
  rc = cat_find(v, name, &pos, err);
  if (rc) return rc;
  if (!pos.page) return sx__err_set(err, SX_NOT_FOUND, "collection '%s' does not exist", name);
  return load_coll(v, pos.hdr, name, c, err);
}

int sx__coll_revalidate(sx__coll *c, sx_error *err) {
  if (!c->v.t) return SX_OK;
  catpos pos;
  int rc = cat_find(&c->v, c->name, &pos, err);
  if (rc) return rc;
  if (!pos.page || pos.hdr != c->hdr)
    return sx__err_set(err, SX_NOT_FOUND, "collection '%s' was dropped in this session", c->name);
  return SX_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void sx__names_free(sx_names *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) free(n->names[i]);
  free(n->names);
  free(n);
}

int sx__coll_list(const sx__pv *v, sx_names **out, sx_error *err) {
  *out = NULL;
  sx_names *res = calloc(1, sizeof *res);
  if (!res) return sx__err_set(err, SX_NOMEM, "out of memory");
  const uint8_t *p0;
  int rc = sx__pv_page(v, 0, &p0, err);
  size_t cap = 0;
  for (uint32_t pg = rc ? 0 : sx__rd32(p0 + CAT_OFF); pg && !rc;) {
    const uint8_t *cp;
    rc = sx__pv_page(v, pg, &cp, err);
    if (rc) break;
    uint32_t n = sx__rd32(cp + CAT_N);
    if (n > cat_cap(sx__pager_page_size(v->p))) {
      rc = sx__err_set(err, SX_CORRUPT, "catalog page %u is damaged", pg);
      break;
    }
    for (uint32_t i = 0; i < n && !rc; i++) {
      if (res->n == cap) {
        cap = cap ? cap * 2 : 16;
        char **nn = realloc(res->names, cap * sizeof *nn);
        if (!nn) {
          rc = sx__err_set(err, SX_NOMEM, "out of memory");
          break;
        }
        res->names = nn;
      }
      char *s = strndup((const char *)cp + CAT_ENT + i * CAT_ENT_SIZE, SX_NAME_MAX);
      if (!s) rc = sx__err_set(err, SX_NOMEM, "out of memory");
      else res->names[res->n++] = s;
    }
    pg = sx__rd32(cp + CAT_NEXT);
  }
  if (rc) {
    sx__names_free(res);
    return rc;
  }
  if (res->n) qsort(res->names, res->n, sizeof *res->names, cmp_str);
  *out = res;
  return SX_OK;
}

/* Checks the options of a new collection; *m and *efc: its HNSW parameters (0 for
 * flat), defaults applied. */
static int check_create_options(const char *name, const sx_collection_options *o, uint32_t *m,
                                uint32_t *efc, sx_error *err) {
  int rc = sx__check_name(name, err);
  if (rc) return rc;
  if (!o) return sx__err_set(err, SX_INVALID_ARGUMENT, "collection options are NULL");
  if (o->version < 1 || o->version > SX_COLLECTION_OPTIONS_VERSION)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown collection options version %u", o->version);
  if (o->dim < 1 || o->dim > SX_DIM_MAX)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "dimension %u of collection '%s' is not in 1..%d",
                       o->dim, name, SX_DIM_MAX);
  if ((int)o->metric < 0 || (int)o->metric > 2)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown metric %d", (int)o->metric);
  if ((int)o->index < 0 || (int)o->index > 1)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown index type %d", (int)o->index);
  *m = *efc = 0;
  if (o->index == SX_INDEX_HNSW) {
    *m = o->hnsw_m ? o->hnsw_m : 16;
    *efc = o->hnsw_ef_construction ? o->hnsw_ef_construction : 200;
    if (*m < 2 || *m > SX__HNSW_M_MAX)
      return sx__err_set(err, SX_INVALID_ARGUMENT, "HNSW m %u is not in 2..%d", *m, SX__HNSW_M_MAX);
    if (*efc < 1 || *efc > 100000)
      return sx__err_set(err, SX_INVALID_ARGUMENT, "HNSW ef_construction %u is not in 1..100000",
                         *efc);
  }
  return SX_OK;
}

/* A catalog page with room for one more entry, writable: the first in the chain that
 * has some, or a new one chained at the head. */
static int cat_page_with_room(sx__txn *t, uint8_t **out, sx_error *err) {
  uint32_t ps = sx__pager_page_size(sx__txn_pager(t));
  uint8_t *p0, *cp = NULL;
  int rc = sx__txn_write(t, 0, &p0, err);
  uint32_t pg = rc ? 0 : sx__rd32(p0 + CAT_OFF);
  while (!rc && pg) {
    const uint8_t *rp;
    rc = sx__txn_read(t, pg, &rp, err);
    if (rc) break;
    if (sx__rd32(rp + CAT_N) < cat_cap(ps)) {
      rc = sx__txn_write(t, pg, &cp, err);
      break;
    }
    pg = sx__rd32(rp + CAT_NEXT);
  }
  if (!rc && !cp) {
    uint32_t np;
    rc = sx__txn_alloc(t, &np, &cp, err);
    if (!rc) rc = sx__txn_write(t, 0, &p0, err);
    if (!rc) {
      sx__wr32(cp + CAT_NEXT, sx__rd32(p0 + CAT_OFF));
      sx__wr32(p0 + CAT_OFF, np);
    }
  }
  *out = cp;
  return rc;
}

int sx__coll_create(sx__txn *t, const char *name, const sx_collection_options *o, sx_error *err) {
  uint32_t m = 0, efc = 0;
  int rc = check_create_options(name, o, &m, &efc, err);
  if (rc) return rc;
  sx__pv v = {sx__txn_pager(t), NULL, t};
  catpos pos;
  rc = cat_find(&v, name, &pos, err);
  if (rc) return rc;
  if (pos.page) return sx__err_set(err, SX_EXISTS, "collection '%s' already exists", name);

  sx__txn_savepoint(t);
  uint32_t hdr;
  uint8_t *h, *cp = NULL;
  rc = sx__txn_alloc(t, &hdr, &h, err);
  if (!rc) {
    sx__wr32(h + H_MAGIC, SX__COLL_MAGIC);
    sx__wr32(h + H_DIM, o->dim);
    sx__wr32(h + H_METRIC, (uint32_t)o->metric);
    sx__wr32(h + H_INDEX, (uint32_t)o->index);
    sx__wr32(h + H_M, m);
    sx__wr32(h + H_EFC, efc);
    snprintf((char *)h + H_NAME, 65, "%s", name);
    rc = cat_page_with_room(t, &cp, err);
  }
  if (!rc) {
    uint32_t n = sx__rd32(cp + CAT_N);
    assert(n < cat_cap(sx__pager_page_size(v.p)));
    uint8_t *e = cp + CAT_ENT + n * CAT_ENT_SIZE;
    memset(e, 0, CAT_ENT_SIZE);
    memcpy(e, name, strlen(name));
    sx__wr32(e + 68, hdr);
    sx__wr32(cp + CAT_N, n + 1);
  }
  if (rc) sx__txn_rollback(t);
  else sx__txn_release(t);
  return rc;
}

int sx__coll_drop(sx__txn *t, const char *name, sx_error *err) {
  int rc = sx__check_name(name, err);
  if (rc) return rc;
  sx__pv v = {sx__txn_pager(t), NULL, t};
  catpos pos;
  rc = cat_find(&v, name, &pos, err);
  if (rc) return rc;
  if (!pos.page) return sx__err_set(err, SX_NOT_FOUND, "collection '%s' does not exist", name);
  sx__txn_savepoint(t);
  for (size_t i = 0; i < sizeof PA_ALL / sizeof PA_ALL[0] && !rc; i++)
    rc = sx__pa_free(t, pos.hdr, PA_ALL[i], err);
  if (!rc) rc = sx__txn_free_page(t, pos.hdr, err);
  uint8_t *cp;
  if (!rc) rc = sx__txn_write(t, pos.page, &cp, err);
  if (!rc) {
    uint32_t n = sx__rd32(cp + CAT_N);
    if (pos.idx != n - 1)
      memcpy(cp + CAT_ENT + pos.idx * CAT_ENT_SIZE, cp + CAT_ENT + (n - 1) * CAT_ENT_SIZE,
             CAT_ENT_SIZE);
    memset(cp + CAT_ENT + (n - 1) * CAT_ENT_SIZE, 0, CAT_ENT_SIZE);
    sx__wr32(cp + CAT_N, n - 1);
  }
  if (rc) sx__txn_rollback(t);
  else sx__txn_release(t);
  return rc;
}

/* ---- reading a collection ---------------------------------------------------------- */

int sx__coll_header(const sx__coll *c, const uint8_t **h, sx_error *err) {
  return sx__pv_page(&c->v, c->hdr, h, err);
}

int sx__coll_count(const sx__coll *c, uint64_t *out, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (!rc) *out = sx__rd64(h + H_COUNT);
  return rc;
}

int sx__coll_stats(const sx__coll *c, sx_collection_stats *out, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  out->count = sx__rd64(h + H_COUNT);
  out->slots = sx__rd64(h + H_NSLOTS);
  out->free = sx__rd64(h + H_NFREE);
  if (out->count + out->free > out->slots)
    return sx__err_set(err, SX_CORRUPT, "collection '%s' counts disagree: count %llu, free %llu, slots %llu",
                       c->name, (unsigned long long)out->count, (unsigned long long)out->free,
                       (unsigned long long)out->slots);
  out->dead = out->slots - out->count - out->free;
  return SX_OK;
}

int sx__coll_describe(const sx__coll *c, sx_collection_info *out, sx_error *err) {
  uint64_t n;
  int rc = sx__coll_count(c, &n, err);
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", c->name);
  out->dim = c->dim;
  out->metric = (sx_metric)c->metric;
  out->index = (sx_index_type)c->index;
  out->hnsw_m = c->m;
  out->hnsw_ef_construction = c->efc;
  out->count = n;
  return SX_OK;
}

/* ---- compaction: moving a collection's header page down (compact.c) ------------------- */

int sx__coll_move_header(sx__txn *t, const char *name, sx_error *err) {
  sx__pv v = {sx__txn_pager(t), NULL, t};
  catpos pos;
  int rc = cat_find(&v, name, &pos, err);
  if (rc) return rc;
  if (!pos.page) return sx__err_set(err, SX_NOT_FOUND, "collection '%s' does not exist", name);
  uint32_t np;
  uint8_t *nb, *cp;
  const uint8_t *ob;
  rc = sx__txn_alloc(t, &np, &nb, err);
  if (rc) return rc;
  if (np > pos.hdr) return sx__txn_free_page(t, np, err); /* already as low as it goes */
  rc = sx__txn_read(t, pos.hdr, &ob, err);
  if (!rc) rc = sx__txn_write(t, pos.page, &cp, err);
  if (rc) return rc;
  memcpy(nb, ob, sx__pager_page_size(v.p));
  sx__wr32(cp + CAT_ENT + pos.idx * CAT_ENT_SIZE + 68, np);
  return sx__txn_free_page(t, pos.hdr, err);
}
