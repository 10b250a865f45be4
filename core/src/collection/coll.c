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
#include "collection/results.h"

#define CAT_OFF SX__PAGE0_USER_OFFSET /* page 0: u32 first catalog page */
#define CAT_NEXT 0
#define CAT_N 4
#define CAT_ENT 8
#define CAT_ENT_SIZE 72 /* name[68] NUL-padded, u32 header page */

const unsigned sx__coll_pa_all[SX__COLL_NPA] = {
    SX__H_PA_VEC, SX__H_PA_SLOTS, SX__H_PA_HEAP,  SX__H_PA_HASH,  SX__H_PA_FREE,   SX__H_PA_LIVE,
    SX__H_PA_G0,  SX__H_PA_META,  SX__H_PA_UPPER, SX__H_PA_NORMS, SX__H_PA_STAMPS, SX__H_PA_CODES};

void sx__coll_hnsw_layout(uint32_t hdr, sx__hnsw_layout *out) {
  memset(out, 0, sizeof *out);
  out->owner = hdr;
  out->ep_off = SX__H_HNSW_EP;
  out->graph0_off = SX__H_PA_G0;
  out->meta_off = SX__H_PA_META;
  out->upper_off = SX__H_PA_UPPER;
  out->norms_off = SX__H_PA_NORMS;
  out->upper_len_off = SX__H_UPPER_LEN;
  out->vec_off = SX__H_PA_VEC;
  out->live_off = SX__H_PA_LIVE;
  out->nslots_off = SX__H_NSLOTS;
  out->count_off = SX__H_COUNT;
  out->nfree_off = SX__H_NFREE;
  out->stamp_off = SX__H_PA_STAMPS;
  out->stamp_seq_off = SX__H_STAMP_SEQ;
  out->quant_off = SX__H_QUANT;
  out->codes_off = SX__H_PA_CODES;
  out->debt_off = SX__H_LINK_DEBT;
}

static uint32_t cat_cap(uint32_t ps) {
  return (ps - CAT_ENT) / CAT_ENT_SIZE;
}

/* ---- names, ids ------------------------------------------------------------- */

int sx__check_name(const char *name, sx_error *err) {
  if (!name) return sx__err_set(err, SX_INVALID_ARGUMENT, "collection name is NULL");
  size_t n = strlen(name);
  if (n == 0 || n > SX_NAME_MAX || name[0] == '.')
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "collection name '%.80s' must be 1 to 64 characters of A-Z a-z 0-9 _ - . "
                       "not beginning with '.'",
                       name);
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
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "id '%.40s...' of item %zu is %zu bytes (at most %d)", id, item, n,
                       SX_ID_MAX);
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
      return sx__err_set(err, SX_INVALID_ARGUMENT,
                         "%s %zu has a non-finite component %g at index %zu", what, item,
                         (double)v[j], j);
    n2 += (double)v[j] * v[j];
  }
  if (metric == SX__COSINE && !nz)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "%s %zu is a zero vector, which has no cosine distance", what, item);
  if (metric != SX__L2 && n2 > SX__NORM2_MAX)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "%s %zu's squared norm %g overflows float32 (at most %g under %s)", what,
                       item, n2, SX__NORM2_MAX, metric == SX__IP ? "ip" : "cosine");
  if (metric == SX__COSINE && n2 < SX__NORM2_MIN)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "%s %zu's squared norm %g underflows float32 (at least %g under cosine)",
                       what, item, n2, SX__NORM2_MIN);
  return SX_OK;
}

/* ---- catalog ------------------------------------------------------------------ */

/* A catalog page, as read at page pg: its entry count within the page, its next link
 * in range and not to itself, every entry a NUL-terminated name and a header page in
 * range. */
static int cat_page_valid(const sx__pv *v, uint32_t pg, const uint8_t *cp, sx_error *err) {
  uint32_t npages = sx__pv_npages(v), n = sx__rd32(cp + CAT_N), next = sx__rd32(cp + CAT_NEXT);
  if (n > cat_cap(sx__pager_page_size(v->p)))
    return sx__err_set(err, SX_CORRUPT, "catalog page %u has a bad entry count %u", pg, n);
  if (next >= npages || next == pg)
    return sx__err_set(err, SX_CORRUPT, "catalog page %u links to page %u (of %u)", pg, next,
                       npages);
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *e = cp + CAT_ENT + i * CAT_ENT_SIZE;
    uint32_t hdr = sx__rd32(e + 68);
    if (memchr(e, 0, SX_NAME_MAX + 1) == NULL || e[0] == 0)
      return sx__err_set(err, SX_CORRUPT, "catalog page %u has a bad name in entry %u", pg, i);
    if (hdr == 0 || hdr >= npages || hdr == pg)
      return sx__err_set(err, SX_CORRUPT, "catalog page %u entry %u names header page %u (of %u)",
                         pg, i, hdr, npages);
  }
  return SX_OK;
}

/* The catalog chain, one page at a time: *pg is 0 at the start and after the last
 * page; each page returned is validated; the walk is bounded (sx__walk). */
typedef struct catwalk {
  const sx__pv *v;
  sx__walk w;
  uint32_t next;
} catwalk;

static int cat_walk_begin(catwalk *cw, const sx__pv *v, sx_error *err) {
  const uint8_t *p0;
  cw->v = v;
  sx__walk_init(&cw->w, sx__pv_npages(v));
  int rc = sx__pv_page(v, 0, &p0, err);
  cw->next = rc ? 0 : sx__rd32(p0 + CAT_OFF);
  if (!rc && cw->next >= sx__pv_npages(v))
    rc = sx__err_set(err, SX_CORRUPT, "header page 0 names catalog page %u (of %u)", cw->next,
                     sx__pv_npages(v));
  return rc;
}

static int cat_walk_next(catwalk *cw, uint32_t *pg, const uint8_t **cp, sx_error *err) {
  *pg = cw->next;
  if (!*pg) return SX_OK;
  if (sx__walk_step(&cw->w, *pg))
    return sx__err_set(err, SX_CORRUPT, "catalog chain loops back to page %u", *pg);
  int rc = sx__pv_page(cw->v, *pg, cp, err);
  if (!rc) rc = cat_page_valid(cw->v, *pg, *cp, err);
  if (!rc) cw->next = sx__rd32(*cp + CAT_NEXT);
  return rc;
}

typedef struct catpos {
  uint32_t page; /* catalog page holding the entry, 0 if none */
  uint32_t idx;
  uint32_t hdr;
} catpos;

static int cat_find(const sx__pv *v, const char *name, catpos *pos, sx_error *err) {
  memset(pos, 0, sizeof *pos);
  catwalk cw;
  int rc = cat_walk_begin(&cw, v, err);
  for (;;) {
    uint32_t pg = 0;
    const uint8_t *cp;
    if (!rc) rc = cat_walk_next(&cw, &pg, &cp, err);
    if (rc || !pg) return rc;
    uint32_t n = sx__rd32(cp + CAT_N);
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t *e = cp + CAT_ENT + i * CAT_ENT_SIZE;
      if (strncmp((const char *)e, name, 68) == 0) {
        pos->page = pg;
        pos->idx = i;
        pos->hdr = sx__rd32(e + 68);
        return SX_OK;
      }
    }
  }
}

int sx__coll_mark_catalog(const sx__pv *v, uint8_t *used, sx_error *err) {
  catwalk cw;
  int rc = cat_walk_begin(&cw, v, err);
  for (;;) {
    uint32_t pg = 0;
    const uint8_t *cp;
    if (!rc) rc = cat_walk_next(&cw, &pg, &cp, err);
    if (rc || !pg) return rc;
    rc = sx__page_mark(v, pg, used, "the catalog", err);
  }
}

/* The collection header page pg (of collection name) as read: the schema, the HNSW
 * parameters and every counter in range, the counters bounded by the file's size
 * (each slot takes SX__SLOT_SIZE bytes of the slots array, and so on), so that
 * nothing sized or indexed by them can wrap or run past the file. */
static int hdr_valid(const sx__pv *v, uint32_t pg, const char *name, const uint8_t *h,
                     sx_error *err) {
  uint64_t bytes = (uint64_t)sx__pv_npages(v) * sx__pager_page_size(v->p);
  uint32_t dim = sx__rd32(h + SX__H_DIM), metric = sx__rd32(h + SX__H_METRIC),
           index = sx__rd32(h + SX__H_INDEX);
  uint32_t m = sx__rd32(h + SX__H_M), efc = sx__rd32(h + SX__H_EFC);
  uint64_t nslots = sx__rd64(h + SX__H_NSLOTS), count = sx__rd64(h + SX__H_COUNT),
           nfree = sx__rd64(h + SX__H_NFREE);
  uint64_t heaplen = sx__rd64(h + SX__H_HEAPLEN), hcap = sx__rd64(h + SX__H_HASHCAP),
           hused = sx__rd64(h + SX__H_HASHUSED);
  const char *field = NULL;
  uint64_t val = 0;
#define BAD(f, x) \
  do {            \
    field = f;    \
    val = x;      \
    goto bad;     \
  } while (0)
  if (sx__rd32(h + SX__H_MAGIC) != SX__COLL_MAGIC) BAD("magic", sx__rd32(h + SX__H_MAGIC));
  if (dim == 0 || dim > SX_DIM_MAX) BAD("dim", dim);
  if (metric > 2) BAD("metric", metric);
  if (index > 1) BAD("index type", index);
  if (index == SX_INDEX_HNSW && (m < 2 || m > SX__HNSW_M_MAX)) BAD("HNSW m", m);
  if (index == SX_INDEX_HNSW && (efc < 1 || efc > 100000)) BAD("HNSW ef_construction", efc);
  uint32_t quant = sx__rd32(h + SX__H_QUANT);
  if (quant > SX_QUANTIZATION_INT8 || (quant && index != SX_INDEX_HNSW) ||
      (quant && !sx__hnsw_quant_fits(dim, sx__pager_page_size(v->p))))
    BAD("quantization", quant);
  /* Only a quantized collection has codes. */
  if (!quant && sx__rd32(h + SX__H_PA_CODES)) BAD("codes root", sx__rd32(h + SX__H_PA_CODES));
  if (nslots > 0xfffffffeu || nslots > bytes / SX__SLOT_SIZE) BAD("nslots", nslots);
  if (count > nslots) BAD("count", count);
  if (nfree > nslots - count) BAD("nfree", nfree);
  if (heaplen > bytes) BAD("heap length", heaplen);
  if ((hcap & (hcap - 1)) || hcap > 8 * nslots + 2048) BAD("id map capacity", hcap);
  if (hused > hcap || hused > count) BAD("id map count", hused);
  if (index == SX_INDEX_HNSW) {
    uint32_t ep = sx__rd32(h + SX__H_HNSW_EP);
    if (ep > nslots) BAD("HNSW entry point", ep);
    if (sx__rd64(h + SX__H_UPPER_LEN) > bytes)
      BAD("HNSW upper-links length", sx__rd64(h + SX__H_UPPER_LEN));
  }
#undef BAD
  return SX_OK;
bad:
  return sx__err_set(err, SX_CORRUPT, "header page %u of collection '%s' has a bad %s (%llu)", pg,
                     name, field, (unsigned long long)val);
}

static int load_coll(const sx__pv *v, uint32_t hdr, const char *name, sx__coll *c, sx_error *err) {
  const uint8_t *h;
  int rc = sx__pv_page(v, hdr, &h, err);
  if (!rc) rc = hdr_valid(v, hdr, name, h, err);
  if (rc) return rc;
  if (strncmp((const char *)h + SX__H_NAME, name, 65) != 0)
    return sx__err_set(err, SX_CORRUPT, "header page %u of collection '%s' has another name", hdr,
                       name);
  memset(c, 0, sizeof *c);
  c->v = *v;
  c->hdr = hdr;
  snprintf(c->name, sizeof c->name, "%s", name);
  c->dim = sx__rd32(h + SX__H_DIM);
  c->metric = (int)sx__rd32(h + SX__H_METRIC);
  c->index = (int)sx__rd32(h + SX__H_INDEX);
  c->m = sx__rd32(h + SX__H_M);
  c->efc = sx__rd32(h + SX__H_EFC);
  c->quant = (int)sx__rd32(h + SX__H_QUANT);
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
  catwalk cw;
  int rc = cat_walk_begin(&cw, v, err);
  size_t cap = 0;
  for (;;) {
    uint32_t pg = 0;
    const uint8_t *cp;
    if (!rc) rc = cat_walk_next(&cw, &pg, &cp, err);
    if (rc || !pg) break;
    uint32_t n = sx__rd32(cp + CAT_N);
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
      if (!s)
        rc = sx__err_set(err, SX_NOMEM, "out of memory");
      else
        res->names[res->n++] = s;
    }
  }
  if (rc) {
    sx__names_free(res);
    return rc;
  }
  if (res->n) qsort(res->names, res->n, sizeof *res->names, cmp_str);
  *out = res;
  return SX_OK;
}

/* Checks the options of a new collection (a current-version struct: api.c
 * normalizes older ones); *m and *efc: its HNSW parameters (0 for flat), defaults
 * applied. ps: the page size (codes must fit in a page). */
static int check_create_options(const char *name, const sx_collection_options *o, uint32_t ps,
                                uint32_t *m, uint32_t *efc, sx_error *err) {
  int rc = sx__check_name(name, err);
  if (rc) return rc;
  if (!o) return sx__err_set(err, SX_INVALID_ARGUMENT, "collection options are NULL");
  if (o->version < 1 || o->version > SX_COLLECTION_OPTIONS_VERSION)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown collection options version %u",
                       o->version);
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
  if ((int)o->quantization < 0 || (int)o->quantization > SX_QUANTIZATION_INT8)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "unknown quantization %d", (int)o->quantization);
  if (o->quantization != SX_QUANTIZATION_NONE && o->index != SX_INDEX_HNSW)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "quantization %s needs an HNSW index (collection '%s' is flat: its scans "
                       "are exact)",
                       sx_quantization_name(o->quantization), name);
  if (o->quantization != SX_QUANTIZATION_NONE && !sx__hnsw_quant_fits(o->dim, ps))
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "quantization %s needs dimension + 16 bytes within a page: dimension %u is "
                       "too large for page size %u",
                       sx_quantization_name(o->quantization), o->dim, ps);
  return SX_OK;
}

/* A catalog page with room for one more entry, writable: the first in the chain that
 * has some, or a new one chained at the head. */
static int cat_page_with_room(sx__txn *t, uint8_t **out, sx_error *err) {
  uint32_t ps = sx__pager_page_size(sx__txn_pager(t));
  uint8_t *p0, *cp = NULL;
  sx__pv v = {sx__txn_pager(t), NULL, t};
  catwalk cw;
  int rc = cat_walk_begin(&cw, &v, err);
  for (;;) {
    uint32_t pg = 0;
    const uint8_t *rp;
    if (!rc) rc = cat_walk_next(&cw, &pg, &rp, err);
    if (rc || !pg) break;
    if (sx__rd32(rp + CAT_N) < cat_cap(ps)) {
      rc = sx__txn_write(t, pg, &cp, err);
      break;
    }
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
  int rc = check_create_options(name, o, sx__pager_page_size(sx__txn_pager(t)), &m, &efc, err);
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
    sx__wr32(h + SX__H_MAGIC, SX__COLL_MAGIC);
    sx__wr32(h + SX__H_DIM, o->dim);
    sx__wr32(h + SX__H_METRIC, (uint32_t)o->metric);
    sx__wr32(h + SX__H_INDEX, (uint32_t)o->index);
    sx__wr32(h + SX__H_M, m);
    sx__wr32(h + SX__H_EFC, efc);
    sx__wr32(h + SX__H_QUANT, (uint32_t)o->quantization);
    snprintf((char *)h + SX__H_NAME, 65, "%s", name);
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
  if (rc)
    sx__txn_rollback(t);
  else
    sx__txn_release(t);
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
  for (size_t i = 0; i < SX__COLL_NPA && !rc; i++)
    rc = sx__pa_free(t, pos.hdr, sx__coll_pa_all[i], err);
  if (!rc) rc = sx__txn_free_page(t, pos.hdr, err);
  uint8_t *cp;
  if (!rc) rc = sx__txn_write(t, pos.page, &cp, err);
  if (!rc) {
    /* Freeing the collection's pages must not have touched its catalog entry: in a
     * damaged file a page array may point into the catalog page itself. */
    uint32_t n = sx__rd32(cp + CAT_N);
    const uint8_t *e = cp + CAT_ENT + (size_t)pos.idx * CAT_ENT_SIZE;
    if (n == 0 || n > cat_cap(sx__pager_page_size(v.p)) || pos.idx >= n ||
        strncmp((const char *)e, name, 68) != 0 || sx__rd32(e + 68) != pos.hdr)
      rc = sx__err_set(err, SX_CORRUPT,
                       "catalog page %u changed while collection '%s' was dropped: its pages "
                       "overlap the catalog",
                       pos.page, name);
  }
  if (!rc) {
    uint32_t n = sx__rd32(cp + CAT_N);
    if (pos.idx != n - 1)
      memcpy(cp + CAT_ENT + pos.idx * CAT_ENT_SIZE, cp + CAT_ENT + (n - 1) * CAT_ENT_SIZE,
             CAT_ENT_SIZE);
    memset(cp + CAT_ENT + (n - 1) * CAT_ENT_SIZE, 0, CAT_ENT_SIZE);
    sx__wr32(cp + CAT_N, n - 1);
  }
  if (rc)
    sx__txn_rollback(t);
  else
    sx__txn_release(t);
  return rc;
}

/* ---- reading a collection ---------------------------------------------------------- */

int sx__coll_header(const sx__coll *c, const uint8_t **h, sx_error *err) {
  int rc = sx__pv_page(&c->v, c->hdr, h, err);
  return rc ? rc : hdr_valid(&c->v, c->hdr, c->name, *h, err);
}

int sx__coll_count(const sx__coll *c, uint64_t *out, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (!rc) *out = sx__rd64(h + SX__H_COUNT);
  return rc;
}

int sx__coll_stats(const sx__coll *c, sx_collection_stats *out, sx_error *err) {
  const uint8_t *h;
  int rc = sx__coll_header(c, &h, err);
  if (rc) return rc;
  out->count = sx__rd64(h + SX__H_COUNT);
  out->slots = sx__rd64(h + SX__H_NSLOTS);
  out->free = sx__rd64(h + SX__H_NFREE);
  if (out->count + out->free > out->slots)
    return sx__err_set(err, SX_CORRUPT,
                       "collection '%s' counts disagree: count %llu, free %llu, slots %llu",
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
  out->quantization = (sx_quantization)c->quant;
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
