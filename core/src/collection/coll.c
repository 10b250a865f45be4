/*
 * coll.c: the catalog, collection headers, the id map, and the data operations
 * (upsert, delete, get, count, describe). Layout in collection.h.
 *
 * Invariants (checked by sx__coll_check_all)
 * - A slot is live iff its bit in `live` is set; a live slot's record names its id in
 *   the heap, and the id map has exactly one entry pointing at it.
 * - count == number of live slots; every slot < nslots is live or on the free stack
 *   (once), except in an HNSW collection, where a slot deleted or replaced stays
 *   dead, in the graph, until reclaim unlinks and frees it.
 * - Operations validate every argument before touching a page, and run under a
 *   transaction savepoint, so a failing operation changes nothing.
 */
#include <assert.h>
#include <jansson.h>
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

#define SLOT_SIZE 32 /* u64 id_off, u32 id_len, u32 meta_len, u64 meta_off, u64 reserved */
#define NO_META 0xffffffffu

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

static int check_id(const char *id, size_t item, sx_error *err) {
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

static uint32_t id_tag(const char *id, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (uint32_t)(h >> 32);
}

/* Checks a vector: finite components, and nonzero under cosine. */
int sx__check_vector(const float *v, size_t dim, int metric, const char *what, size_t item,
                     sx_error *err) {
  /* A branch-free pass first (it vectorizes; this runs on every query): an exponent
   * of all ones is Inf or NaN; a vector is zero iff every component is +-0. */
  uint32_t bad = 0, nz = 0;
  for (size_t j = 0; j < dim; j++) {
    uint32_t b;
    memcpy(&b, &v[j], 4);
    bad |= (b & 0x7f800000u) == 0x7f800000u;
    nz |= b & 0x7fffffffu;
  }
  if (!bad && (metric != SX__COSINE || nz)) return SX_OK;
  double n2 = 0;
  for (size_t j = 0; j < dim; j++) {
    if (!isfinite(v[j]))
      return sx__err_set(err, SX_INVALID_ARGUMENT, "%s %zu has a non-finite component %g at index %zu",
                         what, item, (double)v[j], j);
    n2 += (double)v[j] * v[j];
  }
  if (metric == SX__COSINE && n2 == 0)
    return sx__err_set(err, SX_INVALID_ARGUMENT, "%s %zu is a zero vector, which has no cosine distance",
                       what, item);
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

static int hdr_page(const sx__coll *c, const uint8_t **h, sx_error *err) {
  return sx__pv_page(&c->v, c->hdr, h, err);
}

int sx__coll_count(const sx__coll *c, uint64_t *out, sx_error *err) {
  const uint8_t *h;
  int rc = hdr_page(c, &h, err);
  if (!rc) *out = sx__rd64(h + H_COUNT);
  return rc;
}

int sx__coll_stats(const sx__coll *c, sx_collection_stats *out, sx_error *err) {
  const uint8_t *h;
  int rc = hdr_page(c, &h, err);
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

/* A slot record's fields, from its SLOT_SIZE bytes. */
static void slot_parse(const uint8_t *b, slotrec *r) {
  r->id_off = sx__rd64(b);
  r->id_len = sx__rd32(b + 8);
  r->meta_len = sx__rd32(b + 12);
  r->meta_off = sx__rd64(b + 16);
}

/* SX_CORRUPT unless slot s's id lies within the heap and has a valid length. */
static int id_check(const sx__coll *c, const uint8_t *h, uint64_t s, const slotrec *r,
                    sx_error *err) {
  if (r->id_len == 0 || r->id_len > SX_ID_MAX || r->id_off + r->id_len > sx__rd64(h + H_HEAPLEN))
    return sx__err_set(err, SX_CORRUPT, "slot %llu of collection '%s' has a bad id",
                       (unsigned long long)s, c->name);
  return SX_OK;
}

int sx__slot_read(const sx__coll *c, const uint8_t *h, uint64_t s, slotrec *r, sx_error *err) {
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + H_PA_SLOTS);
  uint8_t b[SLOT_SIZE];
  int rc = sx__pa_read(&cur, s * SLOT_SIZE, b, SLOT_SIZE, err);
  if (!rc) slot_parse(b, r);
  return rc;
}

/* The id of slot s into buf (NUL-terminated); *len its length. */
int sx__slot_id(const sx__coll *c, const uint8_t *h, uint64_t s, char buf[SX_ID_MAX + 1],
                size_t *len, sx_error *err) {
  slotrec r;
  int rc = sx__slot_read(c, h, s, &r, err);
  if (!rc) rc = id_check(c, h, s, &r, err);
  if (rc) return rc;
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + H_PA_HEAP);
  rc = sx__pa_read(&cur, r.id_off, buf, r.id_len, err);
  buf[r.id_len] = 0;
  if (len) *len = r.id_len;
  return rc;
}

int sx__slot_ids(const sx__coll *c, const uint8_t *h, const uint32_t *slots, size_t n, char **blob,
                 size_t *offs, sx_error *err) {
  enum { CHUNK = 64 };
  const uint8_t *rec[CHUNK];
  slotrec r[CHUNK];
  size_t len = 0, cap = 0;
  *blob = NULL;
  sx__pa_cursor sc, hc;
  sx__pa_cursor_init(&sc, &c->v, h + H_PA_SLOTS);
  sx__pa_cursor_init(&hc, &c->v, h + H_PA_HEAP);
  for (size_t at = 0; at < n; at += CHUNK) {
    size_t m = n - at < CHUNK ? n - at : CHUNK, need = 0;
    /* Records never straddle pages (SLOT_SIZE divides the page size). */
    for (size_t i = 0; i < m; i++) {
      uint64_t off = (uint64_t)slots[at + i] * SLOT_SIZE;
      int rc = sx__pa_leaf(&sc, off / sc.ps, &rec[i], err);
      if (rc) return rc;
      rec[i] += off % sc.ps;
      __builtin_prefetch(rec[i]);
    }
    for (size_t i = 0; i < m; i++) {
      slot_parse(rec[i], &r[i]);
      const uint8_t *lp;
      int rc = id_check(c, h, slots[at + i], &r[i], err);
      if (!rc) rc = sx__pa_leaf(&hc, r[i].id_off / hc.ps, &lp, err);
      if (rc) return rc;
      __builtin_prefetch(lp + r[i].id_off % hc.ps);
      need += r[i].id_len + 1;
    }
    if (len + need > cap) {
      size_t nc = cap ? cap : 256;
      while (nc < len + need) nc *= 2;
      char *nb = realloc(*blob, nc);
      if (!nb) return sx__err_set(err, SX_NOMEM, "out of memory for search results");
      *blob = nb;
      cap = nc;
    }
    for (size_t i = 0; i < m; i++) {
      int rc = sx__pa_read(&hc, r[i].id_off, *blob + len, r[i].id_len, err);
      if (rc) return rc;
      offs[at + i] = len;
      (*blob)[len + r[i].id_len] = 0;
      len += r[i].id_len + 1;
    }
  }
  return SX_OK;
}

/* Looks an id up: *slot = its slot or UINT64_MAX; *pos = its hash position (or the
 * empty position where it would go). */
static int id_lookup(const sx__coll *c, const uint8_t *h, const char *id, size_t n, uint64_t *slot,
                     uint64_t *pos, sx_error *err) {
  *slot = UINT64_MAX;
  uint64_t cap = sx__rd64(h + H_HASHCAP);
  if (cap == 0) {
    *pos = 0;
    return SX_OK;
  }
  uint32_t tag = id_tag(id, n);
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + H_PA_HASH);
  char buf[SX_ID_MAX + 1];
  for (uint64_t i = tag & (cap - 1), probes = 0;; i = (i + 1) & (cap - 1), probes++) {
    if (probes > cap) return sx__err_set(err, SX_CORRUPT, "id map of '%s' has no empty entry", c->name);
    uint64_t e;
    int rc = sx__pa_read(&cur, i * 8, &e, 8, err);
    if (rc) return rc;
    if (e == 0) {
      *pos = i;
      return SX_OK;
    }
    if ((uint32_t)(e >> 32) != tag) continue;
    uint64_t s = (e & 0xffffffffu) - 1;
    size_t len;
    rc = sx__slot_id(c, h, s, buf, &len, err);
    if (rc) return rc;
    if (len == n && memcmp(buf, id, n) == 0) {
      *slot = s;
      *pos = i;
      return SX_OK;
    }
  }
}

void sx__record_free(sx_record *r) {
  if (!r) return;
  free(r->id);
  free(r->vec);
  free(r->meta);
  free(r);
}

int sx__coll_get(const sx__coll *c, const char *id, sx_record **out, sx_error *err) {
  *out = NULL;
  int rc = check_id(id, 0, err);
  if (rc) return rc;
  const uint8_t *h;
  rc = hdr_page(c, &h, err);
  if (rc) return rc;
  uint64_t slot, pos;
  size_t n = strlen(id);
  rc = id_lookup(c, h, id, n, &slot, &pos, err);
  if (rc) return rc;
  if (slot == UINT64_MAX)
    return sx__err_set(err, SX_NOT_FOUND, "id '%s' is not in collection '%s'", id, c->name);
  slotrec r;
  rc = sx__slot_read(c, h, slot, &r, err);
  if (rc) return rc;
  sx_record *rec = calloc(1, sizeof *rec);
  if (rec) {
    rec->id = strdup(id);
    rec->vec = malloc((size_t)c->dim * 4);
    rec->dim = c->dim;
    if (r.meta_len != NO_META) rec->meta = malloc((size_t)r.meta_len + 1);
  }
  if (!rec || !rec->id || !rec->vec || (r.meta_len != NO_META && !rec->meta)) {
    sx__record_free(rec);
    return sx__err_set(err, SX_NOMEM, "out of memory");
  }
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + H_PA_VEC);
  rc = sx__pa_read(&cur, slot * c->dim * 4, rec->vec, (size_t)c->dim * 4, err);
  if (!rc && rec->meta) {
    sx__pa_cursor_init(&cur, &c->v, h + H_PA_HEAP);
    rc = sx__pa_read(&cur, r.meta_off, rec->meta, r.meta_len, err);
    rec->meta[r.meta_len] = 0;
  }
  if (rc) {
    sx__record_free(rec);
    return rc;
  }
  *out = rec;
  return SX_OK;
}

/* ---- writing ---------------------------------------------------------------------- */

static int hdr_w(sx__coll *c, uint8_t **h, sx_error *err) {
  return sx__txn_write(c->v.t, c->hdr, h, err);
}

static int heap_append(sx__coll *c, const void *data, size_t n, uint64_t *off, sx_error *err) {
  uint8_t *h;
  int rc = hdr_w(c, &h, err);
  if (rc) return rc;
  *off = sx__rd64(h + H_HEAPLEN);
  rc = sx__pa_write(c->v.t, c->hdr, H_PA_HEAP, *off, data, n, err);
  if (rc) return rc;
  rc = hdr_w(c, &h, err);
  if (!rc) sx__wr64(h + H_HEAPLEN, *off + n);
  return rc;
}

static int hash_put(sx__coll *c, uint64_t pos, uint64_t e, sx_error *err) {
  return sx__pa_write(c->v.t, c->hdr, H_PA_HASH, pos * 8, &e, 8, err);
}

static int live_set(sx__coll *c, uint64_t s, int on, sx_error *err) {
  const uint8_t *h;
  int rc = hdr_page(c, &h, err);
  if (rc) return rc;
  uint8_t b = 0;
  uint64_t nslots = sx__rd64(h + H_NSLOTS);
  /* bytes past the last written one read as zero */
  if (s / 8 < (nslots + 7) / 8 && !(on && s + 1 == nslots && s % 8 == 0)) {
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, h + H_PA_LIVE);
    rc = sx__pa_read(&cur, s / 8, &b, 1, err);
    if (rc) return rc;
  }
  if (on) b |= (uint8_t)(1u << (s % 8));
  else b &= (uint8_t) ~(1u << (s % 8));
  return sx__pa_write(c->v.t, c->hdr, H_PA_LIVE, s / 8, &b, 1, err);
}

/* Rebuilds the id map with capacity cap from the live slots. */
static int hash_rebuild(sx__coll *c, uint64_t cap, sx_error *err) {
  int rc = sx__pa_free(c->v.t, c->hdr, H_PA_HASH, err);
  uint8_t *h;
  if (!rc) rc = hdr_w(c, &h, err);
  if (rc) return rc;
  sx__wr64(h + H_HASHCAP, cap);
  sx__wr64(h + H_HASHUSED, 0);
  /* Zero the table in page-sized pieces (fresh pages come zeroed, but the writes
   * allocate them). */
  uint32_t ps = sx__pager_page_size(c->v.p);
  uint8_t *zero = calloc(1, ps);
  if (!zero) return sx__err_set(err, SX_NOMEM, "out of memory");
  for (uint64_t off = 0; off < cap * 8 && !rc; off += ps)
    rc = sx__pa_write(c->v.t, c->hdr, H_PA_HASH, off, zero, ps, err);
  free(zero);
  uint64_t nslots = sx__rd64(h + H_NSLOTS), used = 0;
  char buf[SX_ID_MAX + 1];
  for (uint64_t s = 0; s < nslots && !rc; s++) {
    const uint8_t *hr;
    rc = hdr_page(c, &hr, err);
    if (rc) break;
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, hr + H_PA_LIVE);
    uint8_t b;
    rc = sx__pa_read(&cur, s / 8, &b, 1, err);
    if (rc || !(b & (1u << (s % 8)))) continue;
    size_t len;
    rc = sx__slot_id(c, hr, s, buf, &len, err);
    uint64_t slot, pos;
    if (!rc) rc = id_lookup(c, hr, buf, len, &slot, &pos, err);
    if (!rc) rc = hash_put(c, pos, ((uint64_t)id_tag(buf, len) << 32) | (s + 1), err);
    used++;
  }
  if (!rc) rc = hdr_w(c, &h, err);
  if (!rc) sx__wr64(h + H_HASHUSED, used);
  return rc;
}

/* Removes the entry at pos (backward-shift deletion keeps probe chains whole). */
static int hash_remove(sx__coll *c, uint64_t pos, sx_error *err) {
  const uint8_t *h;
  int rc = hdr_page(c, &h, err);
  if (rc) return rc;
  uint64_t cap = sx__rd64(h + H_HASHCAP), mask = cap - 1, hole = pos;
  for (uint64_t j = (pos + 1) & mask;; j = (j + 1) & mask) {
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, h + H_PA_HASH);
    uint64_t e;
    rc = sx__pa_read(&cur, j * 8, &e, 8, err);
    if (rc) return rc;
    if (e == 0) break;
    uint64_t home = (e >> 32) & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      rc = hash_put(c, hole, e, err);
      if (rc) return rc;
      hole = j;
    }
  }
  rc = hash_put(c, hole, 0, err);
  uint8_t *hw;
  if (!rc) rc = hdr_w(c, &hw, err);
  if (!rc) sx__wr64(hw + H_HASHUSED, sx__rd64(hw + H_HASHUSED) - 1);
  return rc;
}

/* A slot for a vector: the last freed one, or the next new one. */
static int take_slot(sx__coll *c, uint64_t *slot, sx_error *err) {
  const uint8_t *h;
  int rc = hdr_page(c, &h, err);
  if (rc) return rc;
  uint64_t nfree = sx__rd64(h + H_NFREE);
  uint8_t *hw;
  if (nfree) {
    sx__pa_cursor cur;
    sx__pa_cursor_init(&cur, &c->v, h + H_PA_FREE);
    uint32_t s32;
    rc = sx__pa_read(&cur, (nfree - 1) * 4, &s32, 4, err);
    if (rc) return rc;
    *slot = s32;
    rc = hdr_w(c, &hw, err);
    if (!rc) sx__wr64(hw + H_NFREE, nfree - 1);
    return rc;
  }
  *slot = sx__rd64(h + H_NSLOTS);
  if (*slot >= 0xfffffffeu)
    return sx__err_set(err, SX_FULL, "collection '%s' has reached its maximum of %u vectors",
                       c->name, 0xfffffffeu);
  rc = hdr_w(c, &hw, err);
  if (!rc) sx__wr64(hw + H_NSLOTS, *slot + 1);
  return rc;
}

static int slot_write(sx__coll *c, uint64_t slot, uint64_t id_off, uint32_t id_len,
                      uint64_t meta_off, uint32_t meta_len, sx_error *err) {
  uint8_t rec[SLOT_SIZE] = {0};
  sx__wr64(rec, id_off);
  sx__wr32(rec + 8, id_len);
  sx__wr32(rec + 12, meta_len);
  sx__wr64(rec + 16, meta_off);
  return sx__pa_write(c->v.t, c->hdr, H_PA_SLOTS, slot * SLOT_SIZE, rec, SLOT_SIZE, err);
}

/* Marks a live slot dead: not live, its record zeroed. The caller keeps the counts. */
static int slot_kill(sx__coll *c, uint64_t slot, sx_error *err) {
  int rc = live_set(c, slot, 0, err);
  return rc ? rc : slot_write(c, slot, 0, 0, 0, 0, err);
}

/* Stores one item; *slot_out receives its slot. Linking into an index is the
 * caller's. */
static int upsert_one(sx__coll *c, const char *id, const float *vec, const char *meta,
                      uint64_t *slot_out, sx_error *err) {
  size_t n = strlen(id);
  const uint8_t *h;
  int rc = hdr_page(c, &h, err);
  if (rc) return rc;
  uint64_t slot, pos;
  rc = id_lookup(c, h, id, n, &slot, &pos, err);
  if (rc) return rc;
  uint8_t *hw;
  uint64_t meta_off = 0;
  uint32_t meta_len = NO_META;
  if (meta) {
    size_t ml = strlen(meta);
    rc = heap_append(c, meta, ml, &meta_off, err);
    if (rc) return rc;
    meta_len = (uint32_t)ml;
  }
  uint32_t tag = id_tag(id, n);
  if (slot == UINT64_MAX) {
    /* A new id. */
    rc = hdr_page(c, &h, err);
    if (rc) return rc;
    if ((sx__rd64(h + H_HASHUSED) + 1) * 2 > sx__rd64(h + H_HASHCAP)) {
      uint64_t cap = sx__rd64(h + H_HASHCAP) ? sx__rd64(h + H_HASHCAP) * 2 : 1024;
      rc = hash_rebuild(c, cap, err);
      if (!rc) rc = hdr_page(c, &h, err);
      if (!rc) rc = id_lookup(c, h, id, n, &slot, &pos, err);
      if (rc) return rc;
    }
    uint64_t id_off;
    rc = take_slot(c, &slot, err);
    if (!rc) rc = heap_append(c, id, n, &id_off, err);
    if (!rc) rc = slot_write(c, slot, id_off, (uint32_t)n, meta_off, meta_len, err);
    if (!rc) rc = hash_put(c, pos, ((uint64_t)tag << 32) | (slot + 1), err);
    if (!rc) rc = live_set(c, slot, 1, err);
    if (!rc) rc = hdr_w(c, &hw, err);
    if (rc) return rc;
    sx__wr64(hw + H_HASHUSED, sx__rd64(hw + H_HASHUSED) + 1);
    sx__wr64(hw + H_COUNT, sx__rd64(hw + H_COUNT) + 1);
  } else if (c->index == SX_INDEX_HNSW) {
    /* An existing id of an HNSW collection moves to a fresh slot, linked from its
     * new position; the old one stays a waypoint until it is unlinked. */
    slotrec r;
    uint64_t old = slot;
    rc = hdr_page(c, &h, err); /* the metadata may have moved it */
    if (!rc) rc = sx__slot_read(c, h, old, &r, err);
    if (!rc) rc = take_slot(c, &slot, err);
    if (!rc) rc = slot_write(c, slot, r.id_off, r.id_len, meta_off, meta_len, err);
    if (!rc) rc = hash_put(c, pos, ((uint64_t)tag << 32) | (slot + 1), err);
    if (!rc) rc = slot_kill(c, old, err);
    if (!rc) rc = live_set(c, slot, 1, err);
    if (rc) return rc;
  } else {
    /* An existing id: new metadata (or none) in its record. */
    uint8_t m[12];
    sx__wr32(m, meta_len);
    sx__wr64(m + 4, meta_off);
    rc = sx__pa_write(c->v.t, c->hdr, H_PA_SLOTS, slot * SLOT_SIZE + 12, m, 12, err);
    if (rc) return rc;
  }
  *slot_out = slot;
  return sx__pa_write(c->v.t, c->hdr, H_PA_VEC, slot * c->dim * 4, vec, (size_t)c->dim * 4, err);
}

/* Dead slots of an HNSW collection (deleted or replaced, not yet free) are unlinked
 * from the graph and freed once they are 1/32 of the slots: searches walk through
 * them until then, and each unlink reads every list. */
#define UNLINK_SHARE 32

static int reclaim(sx__coll *c, int nthreads, sx_error *err) {
  const uint8_t *h;
  int rc = hdr_page(c, &h, err);
  if (rc || c->index != SX_INDEX_HNSW) return rc;
  uint64_t nslots = sx__rd64(h + H_NSLOTS), nfree = sx__rd64(h + H_NFREE);
  uint64_t pending = nslots - sx__rd64(h + H_COUNT) - nfree;
  if (pending == 0 || pending * UNLINK_SHARE < nslots) return SX_OK;
  uint8_t *freebits = calloc(nslots / 8 + 1, 1), *livebits = malloc(nslots / 8 + 1);
  uint64_t *dead = malloc(pending * sizeof *dead);
  if (!freebits || !livebits || !dead) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  sx__pa_cursor cur;
  sx__pa_cursor_init(&cur, &c->v, h + H_PA_FREE);
  for (uint64_t i = 0; i < nfree && !rc; i++) {
    uint32_t s;
    rc = sx__pa_read(&cur, i * 4, &s, 4, err);
    if (!rc && s >= nslots) rc = sx__err_set(err, SX_CORRUPT, "free slot %u of '%s' is past the end", s, c->name);
    if (!rc) freebits[s >> 3] |= (uint8_t)(1u << (s & 7));
  }
  sx__pa_cursor_init(&cur, &c->v, h + H_PA_LIVE);
  if (!rc) rc = sx__pa_read(&cur, 0, livebits, (nslots + 7) / 8, err);
  uint64_t nd = 0;
  for (uint64_t s = 0; s < nslots && !rc; s++)
    if (!((livebits[s >> 3] | freebits[s >> 3]) >> (s & 7) & 1)) {
      if (nd == pending) rc = sx__err_set(err, SX_CORRUPT, "collection '%s' counts disagree", c->name);
      else dead[nd++] = s;
    }
  if (!rc) {
    sx__hnsw_layout lay;
    sx__coll_hnsw_layout(c->hdr, &lay);
    rc = sx__hnsw_unlink(&c->v, &lay, c->dim, c->metric, c->m, c->efc, dead, nd, nthreads, err);
  }
  /* Freed highest first, so that inserts reuse the lowest first. */
  for (uint64_t i = nd; i-- > 0 && !rc;) {
    uint32_t s32 = (uint32_t)dead[i];
    rc = sx__pa_write(c->v.t, c->hdr, H_PA_FREE, nfree++ * 4, &s32, 4, err);
  }
  uint8_t *hw;
  if (!rc) rc = hdr_w(c, &hw, err);
  if (!rc) sx__wr64(hw + H_NFREE, nfree);
  free(freebits);
  free(livebits);
  free(dead);
  return rc;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Item positions by id, then by position. */
static int cmp_item(const void *a, const void *b, void *ids) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  int c = strcmp(((const char *const *)ids)[x], ((const char *const *)ids)[y]);
  return c ? c : (x > y) - (x < y);
}

int sx__coll_upsert(sx__coll *c, size_t n, const char *const *ids, const float *vectors,
                    size_t dim, const char *const *metadata, int nthreads, sx_error *err) {
  if (dim != c->dim)
    return sx__err_set(err, SX_DIMENSION_MISMATCH,
                       "dimension %zu does not match collection '%s' (dimension %u)", dim, c->name,
                       c->dim);
  if (n > 0 && (!ids || !vectors))
    return sx__err_set(err, SX_INVALID_ARGUMENT, "ids or vectors are NULL");
  /* Validate everything before touching a page. */
  for (size_t i = 0; i < n; i++) {
    int rc = check_id(ids[i], i, err);
    if (!rc) rc = sx__check_vector(vectors + i * dim, dim, c->metric, "vector of item", i, err);
    if (rc) return rc;
    if (metadata && metadata[i]) {
      json_error_t je;
      json_t *j = json_loads(metadata[i], JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
      if (!j)
        return sx__err_set(err, SX_INVALID_ARGUMENT,
                           "metadata of item %zu is not valid JSON: %s at line %d column %d", i,
                           je.text, je.line, je.column);
      int obj = json_is_object(j);
      json_decref(j);
      if (!obj)
        return sx__err_set(err, SX_INVALID_ARGUMENT, "metadata of item %zu is not a JSON object", i);
      if (strlen(metadata[i]) >= NO_META)
        return sx__err_set(err, SX_INVALID_ARGUMENT, "metadata of item %zu is too long", i);
    }
  }
  int rc = sx__coll_revalidate(c, err);
  if (rc) return rc;
  const uint8_t *h;
  rc = hdr_page(c, &h, err);
  if (rc) return rc;
  uint64_t nslots0 = sx__rd64(h + H_NSLOTS);
  int hnsw = c->index == SX_INDEX_HNSW;
  /* An id given more than once keeps its last item; the others are not stored. */
  size_t *order = malloc((n ? n : 1) * sizeof *order);
  uint8_t *skip = calloc(n ? n : 1, 1);
  uint64_t *slots = hnsw ? malloc((n ? n : 1) * sizeof *slots) : NULL;
  uint8_t *reused = hnsw ? malloc(n ? n : 1) : NULL;
  if (!order || !skip || (hnsw && (!slots || !reused))) rc = sx__err_set(err, SX_NOMEM, "out of memory");
  for (size_t i = 0; i < n && !rc; i++) order[i] = i;
  if (!rc) qsort_r(order, n, sizeof *order, cmp_item, (void *)ids);
  for (size_t i = 0; i + 1 < n && !rc; i++) skip[order[i]] = strcmp(ids[order[i]], ids[order[i + 1]]) == 0;
  sx__txn_savepoint(c->v.t);
  size_t u = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (skip[i]) continue;
    uint64_t slot = 0;
    rc = upsert_one(c, ids[i], vectors + i * dim, metadata ? metadata[i] : NULL, &slot, err);
    if (hnsw) slots[u++] = slot;
  }
  if (!rc && hnsw && u) {
    /* Every vector is stored; now link the slots, lowest first. Those from before
     * this call were freed by an unlink. */
    qsort(slots, u, sizeof *slots, cmp_u64);
    for (size_t i = 0; i < u; i++) reused[i] = slots[i] < nslots0;
    sx__hnsw_layout lay;
    sx__coll_hnsw_layout(c->hdr, &lay);
    rc = sx__hnsw_insert_batch(&c->v, &lay, c->dim, c->metric, c->m, c->efc, slots, reused, u,
                               nthreads, err);
  }
  if (!rc) rc = reclaim(c, nthreads, err); /* replaced vectors left their slots dead */
  free(order);
  free(skip);
  free(slots);
  free(reused);
  if (rc) sx__txn_rollback(c->v.t);
  else sx__txn_release(c->v.t);
  return rc;
}

int sx__coll_delete(sx__coll *c, size_t n, const char *const *ids, int nthreads, size_t *deleted,
                    sx_error *err) {
  if (deleted) *deleted = 0;
  if (n > 0 && !ids) return sx__err_set(err, SX_INVALID_ARGUMENT, "ids are NULL");
  for (size_t i = 0; i < n; i++) {
    int rc = check_id(ids[i], i, err);
    if (rc) return rc;
  }
  int rc = sx__coll_revalidate(c, err);
  if (rc) return rc;
  size_t gone = 0;
  sx__txn_savepoint(c->v.t);
  for (size_t i = 0; i < n && !rc; i++) {
    const uint8_t *h;
    rc = hdr_page(c, &h, err);
    uint64_t slot, pos;
    if (!rc) rc = id_lookup(c, h, ids[i], strlen(ids[i]), &slot, &pos, err);
    if (rc || slot == UINT64_MAX) continue;
    rc = hash_remove(c, pos, err);
    if (!rc) rc = slot_kill(c, slot, err);
    uint8_t *hw;
    if (!rc) rc = hdr_w(c, &hw, err);
    if (!rc) {
      sx__wr64(hw + H_COUNT, sx__rd64(hw + H_COUNT) - 1);
      if (c->index != SX_INDEX_HNSW) { /* an HNSW slot is freed by reclaim */
        uint64_t nfree = sx__rd64(hw + H_NFREE);
        uint32_t s32 = (uint32_t)slot;
        sx__wr64(hw + H_NFREE, nfree + 1);
        rc = sx__pa_write(c->v.t, c->hdr, H_PA_FREE, nfree * 4, &s32, 4, err);
      }
    }
    if (!rc) gone++;
  }
  if (!rc) rc = reclaim(c, nthreads, err);
  if (rc) {
    sx__txn_rollback(c->v.t);
    return rc;
  }
  sx__txn_release(c->v.t);
  if (deleted) *deleted = gone;
  return SX_OK;
}

/* ---- integrity ---------------------------------------------------------------------- */

static int check_one(const sx__pv *v, const char *name, sx_error *err) {
  sx__coll c;
  int rc = sx__coll_open(v, name, &c, err);
  if (rc) return rc == SX_NOT_FOUND ? sx__err_set(err, SX_CORRUPT, "catalog entry '%s' is damaged", name) : rc;
  const uint8_t *h;
  rc = hdr_page(&c, &h, err);
  if (rc) return rc;
  uint64_t nslots = sx__rd64(h + H_NSLOTS), count = sx__rd64(h + H_COUNT), live = 0;
  uint64_t nfree = sx__rd64(h + H_NFREE);
  char buf[SX_ID_MAX + 1];
  sx__pa_cursor lc;
  sx__pa_cursor_init(&lc, v, h + H_PA_LIVE);
  for (uint64_t s = 0; s < nslots; s++) {
    uint8_t b;
    rc = sx__pa_read(&lc, s / 8, &b, 1, err);
    if (rc) return rc;
    if (!(b & (1u << (s % 8)))) continue;
    live++;
    size_t len;
    rc = sx__slot_id(&c, h, s, buf, &len, err);
    uint64_t slot, pos;
    if (!rc) rc = id_lookup(&c, h, buf, len, &slot, &pos, err);
    if (rc) return rc;
    if (slot != s)
      return sx__err_set(err, SX_CORRUPT, "id '%s' of slot %llu in '%s' maps to slot %lld", buf,
                         (unsigned long long)s, name, slot == UINT64_MAX ? -1LL : (long long)slot);
  }
  int hnsw = c.index == SX_INDEX_HNSW;
  if (live != count || (!hnsw && live + nfree != nslots) || (hnsw && live + nfree > nslots) ||
      sx__rd64(h + H_HASHUSED) != live)
    return sx__err_set(err, SX_CORRUPT,
                       "collection '%s' counts disagree: count %llu, live %llu, free %llu, slots %llu, "
                       "ids %llu",
                       name, (unsigned long long)count, (unsigned long long)live,
                       (unsigned long long)nfree, (unsigned long long)nslots,
                       (unsigned long long)sx__rd64(h + H_HASHUSED));
  /* Free slots: in range, not live, each once. */
  uint8_t *freebits = calloc(nslots / 8 + 1, 1);
  if (!freebits) return sx__err_set(err, SX_NOMEM, "out of memory");
  sx__pa_cursor fc;
  sx__pa_cursor_init(&fc, v, h + H_PA_FREE);
  for (uint64_t i = 0; i < nfree && !rc; i++) {
    uint32_t s;
    uint8_t b = 0;
    rc = sx__pa_read(&fc, i * 4, &s, 4, err);
    if (!rc && s < nslots) rc = sx__pa_read(&lc, s / 8, &b, 1, err);
    if (rc) break;
    if (s >= nslots || (b >> (s % 8) & 1) || (freebits[s / 8] >> (s % 8) & 1))
      rc = sx__err_set(err, SX_CORRUPT, "free slot %u of '%s' is past the end, live or freed twice",
                       s, name);
    else
      freebits[s / 8] |= (uint8_t)(1u << (s % 8));
  }
  if (!rc && hnsw) {
    sx__hnsw_layout lay;
    sx__coll_hnsw_layout(c.hdr, &lay);
    sx__hnsw *g;
    rc = sx__hnsw_open(v, &lay, c.dim, c.metric, c.m, c.efc, &g, err);
    if (!rc) rc = sx__hnsw_check(g, freebits, err);
    sx__hnsw_close(g);
  }
  free(freebits);
  return rc;
}

int sx__coll_check_all(const sx__pv *v, sx_error *err) {
  sx_names *names;
  int rc = sx__coll_list(v, &names, err);
  if (rc) return rc;
  for (size_t i = 0; i < names->n && !rc; i++) rc = check_one(v, names->names[i], err);
  sx__names_free(names);
  return rc;
}

/* ---- lookups for batch get and cursors (cursor.c) ------------------------------------ */

int sx__coll_find(const sx__coll *c, const uint8_t *h, const char *id, size_t item, uint64_t *slot,
                  sx_error *err) {
  int rc = check_id(id, item, err);
  uint64_t pos;
  return rc ? rc : id_lookup(c, h, id, strlen(id), slot, &pos, err);
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
