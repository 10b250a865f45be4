/* The checkable page workload; see workload.h. */
#include "workload.h"

#include <stdio.h>
#include <string.h>

#include "pager/pager.h"
#include "session/session.h"
#include "testutil.h"

#define MANIFEST 1u
#define WL_PAGE 4096u /* the workload runs on databases with the default page size */

static void fill(uint8_t *page, uint32_t ps, uint32_t pgno, uint64_t g) {
  uint64_t *w = (uint64_t *)page;
  for (uint32_t i = 0; i < ps / 8; i++) w[i] = g;
  w[1] = pgno;
}

int wl_apply(sx_write *w, uint64_t g, uint32_t npages, uint32_t touch, uint64_t seed,
             sx_error *err) {
  int rc = sx__write_enter(w, err);
  if (rc) return rc;
  sx__txn *t = sx__write_txn(w);
  uint8_t *m;
  if (sx__txn_npages(t) <= MANIFEST) {
    /* First commit: the manifest and every data page. */
    uint32_t pg;
    rc = sx__txn_alloc(t, &pg, &m, err);
    if (!rc && pg != MANIFEST) rc = SX_CORRUPT;
    for (uint32_t i = 0; !rc && i < npages; i++) {
      uint8_t *d;
      rc = sx__txn_alloc(t, &pg, &d, err);
    }
    touch = npages;
  }
  if (!rc) rc = sx__txn_write(t, MANIFEST, &m, err);
  if (rc) goto out;
  {
    uint64_t *mw = (uint64_t *)m;
    if (mw[1] == 0) mw[1] = npages;
    npages = (uint32_t)mw[1];
    uint64_t st = seed ^ (g * 0x9E3779B97F4A7C15ull);
    for (uint32_t k = 0; k < npages && !rc; k++) {
      uint32_t i = touch >= npages ? k : (uint32_t)(sx_test_splitmix64(&st) % npages);
      if (touch < npages && k >= touch) break;
      uint8_t *d;
      rc = sx__txn_write(t, 2 + i, &d, err);
      if (rc) break;
      fill(d, WL_PAGE, 2 + i, g);
      mw[2 + i] = g;
    }
    if (!rc) {
      mw[0] = g;
      uint8_t *p0w;
      rc = sx__txn_write(t, 0, &p0w, err);
      if (!rc) sx__page0_set_user_version(p0w, g);
    }
  }
out:
  sx__write_leave(w);
  return rc;
}

/* Data pages the workload of db made (the manifest's word 1), 0 when it has none. */
static uint64_t wl_npages(sx_db *db) {
  sx_read *r = NULL;
  sx_error e = SX_ERROR_INIT;
  uint64_t n = 0;
  if (sx_read_begin(db, &r, &e)) return 0;
  const uint8_t *m;
  if (sx__read_enter(r, &e) == SX_OK) {
    if (sx__read_page(r, MANIFEST, &m, &e) == SX_OK) memcpy(&n, m + 8, 8);
    sx__read_leave(r);
  }
  sx_read_free(r);
  return n;
}

sx_status wl_check(sx_db *db, sx_error *err) {
  sx_error e = SX_ERROR_INIT;
  sx_status rc = sx_db_check(db, &e);
  unsigned lost = 0, first = 0;
  const char *at = strstr(e.message, "(page ");
  if (rc == SX_CORRUPT && strstr(e.message, "neither in use nor on the free list") && at &&
      sscanf(e.message, "%u page", &lost) == 1 && sscanf(at, "(page %u first)", &first) == 1 &&
      first == MANIFEST && lost == wl_npages(db) + 1)
    rc = SX_OK;
  if (rc && err) *err = e;
  return rc;
}

int wl_commit(sx_db *db, uint64_t g, uint32_t npages, uint32_t touch, uint64_t seed, int timeout_ms,
              sx_error *err) {
  sx_write *w = NULL;
  int rc = sx_write_begin(db, timeout_ms, &w, err);
  if (rc) return rc;
  rc = wl_apply(w, g, npages, touch, seed, err);
  if (rc)
    sx_write_abort(w);
  else
    rc = sx_write_commit(w, err);
  sx_write_free(w);
  return rc;
}

#define WHY(...)                                                        \
  do {                                                                  \
    if (bad++ == 0 && why) snprintf(why, (size_t)why_len, __VA_ARGS__); \
  } while (0)

int wl_verify(sx_read *r, uint64_t *g, char *why, int why_len) {
  int bad = 0;
  sx_error err = SX_ERROR_INIT;
  if (why && why_len) why[0] = 0;
  *g = 0;
  uint64_t uv = 0;
  if (sx_read_user_version(r, &uv, &err)) {
    WHY("user version: %s", err.message);
    return bad;
  }
  if (sx__read_enter(r, &err)) {
    WHY("enter: %s", err.message);
    return bad;
  }
  const uint8_t *m;
  if (sx__read_page(r, MANIFEST, &m, &err)) {
    if (uv != 0)
      WHY("manifest unreadable at user version %llu: %s", (unsigned long long)uv, err.message);
    sx__read_leave(r);
    return bad;
  }
  const uint64_t *mw = (const uint64_t *)m;
  uint64_t gg = mw[0];
  uint32_t n = (uint32_t)mw[1];
  if (gg != uv)
    WHY("manifest generation %llu but user version %llu", (unsigned long long)gg,
        (unsigned long long)uv);
  for (uint32_t i = 0; i < n && i < 500; i++) {
    const uint8_t *d;
    uint64_t e = mw[2 + i];
    if (e > gg)
      WHY("page %u has generation %llu past commit %llu", 2 + i, (unsigned long long)e,
          (unsigned long long)gg);
    if (sx__read_page(r, 2 + i, &d, &err)) {
      WHY("page %u unreadable: %s", 2 + i, err.message);
      continue;
    }
    const uint64_t *dw = (const uint64_t *)d;
    if (dw[1] != 2 + i) WHY("page %u carries page number %llu", 2 + i, (unsigned long long)dw[1]);
    for (uint32_t k = 0; k < WL_PAGE / 8; k++) {
      if (k == 1) continue;
      if (dw[k] != e) {
        WHY("page %u word %u is %llu, manifest says generation %llu (snapshot %llu)", 2 + i, k,
            (unsigned long long)dw[k], (unsigned long long)e, (unsigned long long)gg);
        break;
      }
    }
  }
  sx__read_leave(r);
  *g = gg;
  return bad;
}

int wl_verify_db(sx_db *db, uint64_t *g, char *why, int why_len) {
  sx_read *r = NULL;
  sx_error err = SX_ERROR_INIT;
  int rc = sx_read_begin(db, &r, &err);
  if (rc) {
    if (why) snprintf(why, (size_t)why_len, "read_begin: %s", err.message);
    return 1;
  }
  int bad = wl_verify(r, g, why, why_len);
  sx_read_free(r);
  return bad;
}
