/*
 * check.c: pager statistics and the integrity check of the latest snapshot (the P
 * header, the WAL checksum chains, bounds and the free list).
 */
#include "pager/pager_int.h"

#include <stdlib.h>

int sx__pager_stats_get(sx__pager *p, sx__pager_stats *out, sx_error *err) {
  sx__hdrc h;
  sx__hdr_read(p, &h);
  uint64_t minpin;
  int wu, nr;
  int32_t pid;
  sx__scan_slots(p, h.base, &minpin, &wu, &nr, &pid);
  memset(out, 0, sizeof *out);
  out->npages = h.npages;
  /* Frames the WAL files hold that may still be needed: the current generation's,
   * and the previous one's while it is not all in P. */
  uint64_t start = h.backfill < h.base ? h.pbase : h.base;
  out->wal_frames = h.mx - start;
  out->wal_backfilled = h.backfill - start;
  out->commits = h.commits;
  out->checkpoints = h.checkpoints;
  out->readers = (uint32_t)nr;
  out->mx = h.mx;
  out->oldest_lag = minpin == UINT64_MAX || minpin > h.mx ? 0 : h.mx - minpin;
  out->oldest_pid = pid;
  return SX_OK;
}

/* Checks frames 1..nfr of WAL file w with plain reads: a valid header of generation
 * gen, matching salts, an unbroken checksum chain, and a commit frame at nfr (of
 * npages pages, unless npages is 0). Reports the header's account of the previous
 * generation and the chain's value at frame nfr. */
static int check_chain(sx__pager *p, int w, uint32_t gen, uint64_t nfr, uint32_t npages,
                       uint64_t *pck0, uint64_t *pck1, uint32_t *prev_frames, uint64_t *end0,
                       uint64_t *end1, sx_error *err) {
  sx__walhdr wh;
  int rc = sx__wal_read_header(p, w, &wh, err);
  if (rc) return rc;
  uint8_t f1[FRAME_HDR];
  if (!wh.ok && !npages && nfr > 0 &&
      sx__file_read(p->wal[w], f1, FRAME_HDR, WAL_HDR, NULL) == SX_OK) {
    /* The previous generation, recovered without its damaged header (wal.c,
     * header_repair): frame 1 seeds the chain, whose end is checked below. */
    wh.ok = wh.headless = 1;
    wh.gen = gen;
    wh.salt0 = sx__rd32(f1 + 8);
    wh.salt1 = sx__rd32(f1 + 12);
  }
  if (!wh.ok || wh.gen != gen)
    return sx__err_set(err, SX_CORRUPT, "WAL header of '%s' does not match the shared index",
                       p->wal_path[w]);
  if (pck0) *pck0 = wh.pck0;
  if (pck1) *pck1 = wh.pck1;
  if (prev_frames) *prev_frames = wh.prev_frames;
  uint8_t *buf = malloc(p->fsz);
  if (!buf) return sx__err_set(err, SX_NOMEM, "out of memory");
  uint64_t a = wh.ck0, b = wh.ck1;
  for (uint64_t r = 1; r <= nfr && !rc; r++) {
    rc = sx__file_read(p->wal[w], buf, p->fsz, WAL_HDR + (r - 1) * p->fsz, err);
    if (rc) break;
    sx__cksum(buf, 16, &a, &b);
    sx__cksum_long(buf + FRAME_HDR, p->ps, &a, &b);
    if (r == 1 && wh.headless) {
      a = sx__rd64(buf + 16);
      b = sx__rd64(buf + 24);
    }
    if (sx__rd32(buf + 8) != wh.salt0 || sx__rd32(buf + 12) != wh.salt1 ||
        sx__rd64(buf + 16) != a || sx__rd64(buf + 24) != b)
      rc = sx__err_set(err, SX_CORRUPT, "WAL frame %llu of '%s' fails its checksum",
                       (unsigned long long)r, p->wal_path[w]);
    else if (r == nfr &&
             (sx__frame_npages(p, buf) == 0 || (npages && sx__frame_npages(p, buf) != npages)))
      rc = sx__err_set(err, SX_CORRUPT, "WAL frame %llu of '%s' should end a commit of %u pages",
                       (unsigned long long)r, p->wal_path[w], npages);
  }
  free(buf);
  if (end0) *end0 = a;
  if (end1) *end1 = b;
  return rc;
}

/* Page 0: what the pager owns of it. The magic, version and page size were checked
 * at open in P; here they are checked again in the snapshot's copy (which may come
 * from the WAL), with the free list's head and count. */
int sx__page0_valid(const sx__pager *p, const uint8_t *p0, uint32_t npages, sx_error *err) {
  if (memcmp(p0 + P0_MAGIC, P_MAGIC, 16) != 0)
    return sx__err_set(err, SX_CORRUPT, "header page of '%s' has a bad magic", p->path);
  if (sx__rd32(p0 + P0_VERSION) != p->version)
    return sx__err_set(err, SX_CORRUPT, "header page of '%s' has format version %u", p->path,
                       sx__rd32(p0 + P0_VERSION));
  if (sx__rd32(p0 + P0_PAGESIZE) != p->ps)
    return sx__err_set(err, SX_CORRUPT, "header page of '%s' has page size %u (the file's is %u)",
                       p->path, sx__rd32(p0 + P0_PAGESIZE), p->ps);
  uint32_t head = sx__rd32(p0 + P0_FREEHEAD), cnt = sx__rd32(p0 + P0_FREECOUNT);
  if (head >= npages || cnt >= npages || (head == 0) != (cnt == 0))
    return sx__err_set(
        err, SX_CORRUPT,
        "header page of '%s' has a bad free list: head page %u, count %u, of %u pages", p->path,
        head, cnt, npages);
  return SX_OK;
}

int sx__pager_check_pages(sx__pager *p, const sx__snap *s, uint8_t *used, sx_error *err) {
  const uint8_t *p0;
  int rc = sx__view_page(p, s, 0, &p0, err);
  if (!rc) rc = sx__page0_valid(p, p0, s->npages, err);
  if (rc) return rc;
  uint32_t cnt = 0, want = sx__rd32(p0 + P0_FREECOUNT);
  for (uint32_t pg = sx__rd32(p0 + P0_FREEHEAD); pg != 0; cnt++) {
    if (cnt >= want)
      return sx__err_set(err, SX_CORRUPT, "free list of '%s' is longer than its count %u", p->path,
                         want);
    if (pg >= s->npages || (used[pg / 8] >> (pg % 8) & 1))
      return sx__err_set(err, SX_CORRUPT, "free page %u of '%s' is also in use (or listed twice)",
                         pg, p->path);
    used[pg / 8] |= (uint8_t)(1u << (pg % 8));
    const uint8_t *fp;
    rc = sx__view_page(p, s, pg, &fp, err);
    if (rc) return rc;
    pg = sx__rd32(fp);
  }
  /* Every page is somewhere: a page neither in use nor free is lost (a structure
   * that lost its link to it, or a free list cut short). */
  uint32_t lost = 0, first = 0;
  for (uint32_t pg = 1; pg < s->npages; pg++)
    if (!(used[pg / 8] >> (pg % 8) & 1) && lost++ == 0) first = pg;
  if (lost)
    return sx__err_set(err, SX_CORRUPT,
                       "%u page%s of '%s' (page %u first) %s neither in use nor on the free list",
                       lost, lost == 1 ? "" : "s", p->path, first, lost == 1 ? "is" : "are");
  return SX_OK;
}

int sx__pager_check(sx__pager *p, sx_error *err) {
  sx__snap s;
  int rc = sx__pager_snap_begin(p, &s, err);
  if (rc) return rc;
  uint8_t *bitmap = NULL;
  /* A snapshot that reads only from P does not depend on the WAL (whose files may be
   * reused under it); otherwise the files it reads cannot be reused while it is
   * pinned, so their frames can be checked with plain reads. */
  if (s.floor == s.mx) goto pages;
  uint64_t pck0 = 0, pck1 = 0;
  uint32_t prev_frames = 0;
  if (s.mx > s.base) {
    rc = check_chain(p, (int)(s.gen & 1), s.gen, s.mx - s.base, s.npages, &pck0, &pck1,
                     &prev_frames, NULL, NULL, err);
    if (rc) goto end;
  }
  if (s.floor < s.base) {
    /* The previous generation, whole, ending where the current one says it ends. */
    uint64_t e0, e1;
    rc = check_chain(p, (int)((s.gen + 1) & 1), s.gen - 1, s.base - s.pbase, 0, NULL, NULL, NULL,
                     &e0, &e1, err);
    if (rc) goto end;
    if (s.mx > s.base && (prev_frames != s.base - s.pbase || e0 != pck0 || e1 != pck1)) {
      rc = sx__err_set(err, SX_CORRUPT, "WAL '%s' does not end where '%s' says it does",
                       p->wal_path[(s.gen + 1) & 1], p->wal_path[s.gen & 1]);
      goto end;
    }
  }
pages:
  /* Every page of the snapshot can be read (from P or the WAL), each one it takes from
   * P matches its checksum (whatever this handle verified before), and the free list
   * is a chain of distinct pages. */
  for (uint32_t pg = 0; pg < s.npages; pg++) {
    const uint8_t *pp = NULL;
    int w = 0;
    uint64_t r;
    rc = sx__view_locate(p, &s, pg, &w, &r, err);
    if (!rc && r == 0) rc = sx__db_page(p, pg, &pp, err);
    if (!rc && r == 0) rc = sx__db_page_verify(p, pg, pp, err);
    if (!rc && r != 0) rc = sx__wal_frame(p, w, r, &pp, err);
    if (rc) goto end;
  }
  const uint8_t *p0;
  rc = sx__view_page(p, &s, 0, &p0, err);
  if (!rc) rc = sx__page0_valid(p, p0, s.npages, err);
  if (rc) goto end;
  bitmap = calloc(s.npages / 8 + 1, 1);
  if (!bitmap) {
    rc = sx__err_set(err, SX_NOMEM, "out of memory");
    goto end;
  }
  uint32_t cnt = 0, want = sx__rd32(p0 + P0_FREECOUNT);
  for (uint32_t pg = sx__rd32(p0 + P0_FREEHEAD); pg != 0; cnt++) {
    if (pg >= s.npages || (bitmap[pg / 8] & (1u << (pg % 8))) || cnt > want) {
      rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' is damaged at page %u", p->path, pg);
      goto end;
    }
    bitmap[pg / 8] |= (uint8_t)(1u << (pg % 8));
    const uint8_t *fp;
    rc = sx__view_page(p, &s, pg, &fp, err);
    if (!rc) rc = sx__pager_free_page_valid(p, pg, fp, s.npages, err);
    if (rc) goto end;
    pg = sx__rd32(fp);
  }
  if (cnt != want)
    rc = sx__err_set(err, SX_CORRUPT, "free list of '%s' has %u pages, header says %u", p->path,
                     cnt, want);
end:
  free(bitmap);
  sx__pager_snap_end(p, &s);
  return rc;
}
