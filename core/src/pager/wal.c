/*
 * wal.c: the WAL files: their headers, frames, replay and recovery, reserving space,
 * writing frames durably, and the switch between the two files (generations). The
 * formats and the durability order are described in pager_int.h.
 */
#include "pager/pager_int.h"

#include <stdlib.h>

/* The WAL header: magic, version, page size, generation, salts, then how the
 * previous generation ended (its frame count and final running checksum, so recovery
 * can tell it is whole), the database id (offset 28), and a checksum of the first 48
 * bytes. */
void sx__wal_header_make(const sx__pager *p, uint8_t b[WAL_HDR], const sx__hdrc *h, uint64_t *ck0,
                         uint64_t *ck1) {
  memset(b, 0, WAL_HDR);
  sx__wr32(b, WAL_MAGIC);
  sx__wr32(b + 4, WAL_VERSION);
  sx__wr32(b + 8, p->ps);
  sx__wr32(b + 28, p->dbid);
  sx__wr32(b + 12, h->gen);
  sx__wr32(b + 16, h->salt0);
  sx__wr32(b + 20, h->salt1);
  sx__wr32(b + 24, (uint32_t)(h->base - h->pbase));
  sx__wr64(b + 32, h->pck0);
  sx__wr64(b + 40, h->pck1);
  uint64_t a = 0, c = 0;
  sx__cksum(b, 48, &a, &c);
  sx__wr64(b + 48, a);
  sx__wr64(b + 56, c);
  *ck0 = a;
  *ck1 = c;
}

void sx__wal_seal(uint8_t *wal, uint64_t len, uint64_t from) {
  uint32_t ps = len >= WAL_HDR ? sx__rd32(wal + 8) : 0;
  if (ps < 4096 || ps > 65536 || (ps & (ps - 1))) return;
  const uint64_t fsz = FRAME_HDR + (uint64_t)ps, nframes = (len - WAL_HDR) / fsz;
  if (from > nframes) return;
  uint64_t a = 0, c = 0;
  if (from == 0) {
    sx__cksum(wal, 48, &a, &c);
    sx__wr64(wal + 48, a);
    sx__wr64(wal + 56, c);
  } else {
    a = sx__rd64(wal + WAL_HDR + (from - 1) * fsz + 16);
    c = sx__rd64(wal + WAL_HDR + (from - 1) * fsz + 24);
  }
  for (uint64_t f = from; f < nframes; f++) {
    uint8_t *fr = wal + WAL_HDR + f * fsz;
    memcpy(fr + 8, wal + 16, 8); /* the header's salts */
    sx__cksum(fr, 16, &a, &c);
    sx__cksum_long(fr + FRAME_HDR, ps, &a, &c);
    sx__wr64(fr + 16, a);
    sx__wr64(fr + 24, c);
  }
}

/* New salts for the current generation, which has no frames yet. */
static void hdr_resalt(sx__pager *p, sx__hdrc *h) {
  h->salt0 = sx__pager_random32();
  h->salt1 = sx__pager_random32();
  uint8_t b[WAL_HDR];
  sx__wal_header_make(p, b, h, &h->ck0, &h->ck1);
}

/* The next generation, in the other WAL file, starting after frame mx. */
static void hdr_next_gen(sx__pager *p, sx__hdrc *h) {
  h->pbase = h->base;
  h->pck0 = h->ck0;
  h->pck1 = h->ck1;
  h->base = h->mx;
  h->gen++;
  hdr_resalt(p, h);
}

int sx__wal_orphans(sx__pager *p, sx_error *err) {
  for (int w = 0; w < 2; w++) {
    int ex = p->vfs->exists(p->vfs, p->wal_path[w], err);
    if (ex < 0) return -ex;
    if (!ex) continue;
    sx__file *f = NULL;
    int rc = p->vfs->open(p->vfs, p->wal_path[w], SX__OPEN_READ, &f, err);
    if (rc) return rc;
    uint8_t b[WAL_HDR + FRAME_HDR];
    uint64_t sz = 0;
    rc = sx__file_size(f, &sz, err);
    if (!rc && sz >= sizeof b) rc = sx__file_read(f, b, sizeof b, 0, err);
    sx__file_close(f);
    if (rc || sz < sizeof b) {
      if (rc) return rc;
      continue;
    }
    uint64_t a = 0, c = 0;
    sx__cksum(b, 48, &a, &c);
    if (sx__rd32(b) == WAL_MAGIC && sx__rd64(b + 48) == a && sx__rd64(b + 56) == c &&
        sx__rd32(b + WAL_HDR + 8) == sx__rd32(b + 16) &&
        sx__rd32(b + WAL_HDR + 12) == sx__rd32(b + 20))
      return sx__err_set(err, SX_CORRUPT,
                         "database '%s' is empty, but its WAL '%s' holds frames of a database",
                         p->path, p->wal_path[w]);
  }
  return SX_OK;
}

int sx__wal_read_header(sx__pager *p, int w, sx__walhdr *wh, sx_error *err) {
  memset(wh, 0, sizeof *wh);
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc || sz < WAL_HDR) return rc;
  uint8_t b[WAL_HDR];
  rc = sx__file_read(p->wal[w], b, WAL_HDR, 0, err);
  if (rc) return rc;
  uint64_t a = 0, c = 0;
  sx__cksum(b, 48, &a, &c);
  wh->ok = sx__rd32(b) == WAL_MAGIC && sx__rd32(b + 4) == WAL_VERSION && sx__rd32(b + 8) == p->ps &&
           sx__rd64(b + 48) == a && sx__rd64(b + 56) == c &&
           sx__rd32(b + 24) <= SX__WAL_FRAMES_MAX &&
           (sx__rd32(b + 12) & 1) == (uint32_t)w; /* generation g lives in file g & 1 */
  wh->gen = sx__rd32(b + 12);
  wh->salt0 = sx__rd32(b + 16);
  wh->salt1 = sx__rd32(b + 20);
  wh->prev_frames = sx__rd32(b + 24);
  wh->dbid = sx__rd32(b + 28);
  wh->pck0 = sx__rd64(b + 32);
  wh->pck1 = sx__rd64(b + 40);
  wh->ck0 = a;
  wh->ck1 = c;
  return SX_OK;
}

/*
 * Frame f breaks the chain: it should run the checksum from (pre0, pre1) to (t0, t1)
 * (the value the frames after it chain from) but runs it to (c0, c1). Nonzero when
 * that is explained by damage confined to the frame's first 16 bytes (page number,
 * commit field, salts) leaving the salts as salts: the checksum is linear, so the
 * additive change (dx, dy) of the two words of that block is the one solution of
 * M^(n-1) (dx, dx + dy) = (t0 - c0, t1 - c1), with M = [[1,1],[1,2]] the step of
 * sx__cksum and n its blocks per frame; the salts word corrected by dy must read
 * back as the generation's salts (a 64-bit test). Damage elsewhere in the frame (a
 * torn page image) passes that test only by chance.
 */
static int header_block_damaged(const sx__pager *p, const sx__walhdr *wh, const uint8_t *f,
                                uint64_t c0, uint64_t c1, uint64_t t0, uint64_t t1) {
  uint64_t u = t0 - c0, v = t1 - c1;
  for (uint32_t i = 0; i < p->ps / 16; i++) { /* M^-1 = [[2,-1],[-1,1]] */
    uint64_t nu = 2 * u - v, nv = v - u;
    u = nu;
    v = nv;
  }
  uint64_t y = 0;
  memcpy(&y, f + 8, 8);
  return y + (v - u) == ((uint64_t)wh->salt1 << 32 | wh->salt0);
}

/*
 * Damage or a torn tail? The chain broke at frame r (pre0, pre1: the running checksum
 * of the frames before it). It is damage when the frames after it are whole: frame
 * r + 1 carries this generation's salts and chains from frame r's true checksum, and
 * so on up to a commit frame; those commits were written after frame r whole, and
 * replaying up to the break would drop them silently: SX_CORRUPT, naming the frame.
 * Frame r's true checksum is either the one it stores (its page number, commit
 * field, salts or page image damaged) or the chain run over its bytes as they are
 * (its stored checksum damaged).
 *
 * A torn tail must still roll back. After a crash or power cut the frames after a
 * torn frame are zeros, an older generation's (other salts), or frames of this
 * generation that an unpublished commit left and a later commit did not overwrite
 * (each commit writes a zeroed frame header right after its commit frame, txn.c, so
 * such leftovers never chain on from a commit): none chains from frame r. One tear
 * does leave whole commits after a broken frame: without syncs between commits
 * (sync=normal, sync=off) a power cut may keep the next commit whole and only a
 * prefix of the sectors of this one, whose last frame is its commit frame, so that
 * frame's header is whole and a suffix of its page image stale. A frame header never
 * spans two sectors (frames start 64 + 32k bytes into a 512-byte sector), so a tear
 * keeps it whole or not at all. Hence whole commits after frame r are damage when
 * frame r is not a commit frame, or its stored checksum is the damaged part, or its
 * salts differ while its stored checksum holds, or its first 16 bytes are
 * (header_block_damaged). Damage inside a commit frame's page image cannot be told
 * from that tear here and rolls back, as does damage to the file's last frame, unless
 * a later commit proves frame r durable.
 *
 * That proof, in the same pass: in format 2 the first frame of a commit carries
 * FRAME_DURABLE when every frame before it was synced before it was written (txn.c).
 * Such a frame of this generation anywhere after r proves frame r whole once: damage,
 * however much of r and the frames after it is gone (a whole frame zeroed or
 * replaced, two frames damaged). Nothing a crash or power cut leaves puts one there:
 * the commit in flight begins at or before the tear, commits after it were never
 * written (sync=full) or carry no flag (written before a sync covered r), and a
 * failed commit's leftover frames lose their first frame to the next commit, which
 * starts where it started.
 */
static int chain_check(sx__pager *p, int w, const sx__walhdr *wh, uint64_t r, uint64_t nfr,
                       uint64_t pre0, uint64_t pre1, uint8_t *buf, size_t per, sx_error *err) {
  uint64_t s[2][2] = {{0, 0}, {pre0, pre1}}; /* candidates for frame r's true checksum */
  int live[2] = {1, 1}, header_damage = 0;
  int chained = 1;      /* frames after r may still chain on from it */
  uint64_t durable = 0; /* the first frame after r proving it durable, if any */
  int settled = 0;      /* nothing later can change the verdict */
  int rc = SX_OK;
  for (uint64_t j = r; j <= nfr && !rc && !settled;) {
    size_t cnt = (size_t)((nfr - j + 1) < per ? (nfr - j + 1) : per);
    rc = sx__file_read(p->wal[w], buf, cnt * p->fsz, WAL_HDR + (j - 1) * p->fsz, err);
    for (size_t i = 0; i < cnt && !rc && !settled; i++, j++) {
      const uint8_t *f = buf + i * p->fsz;
      if (j == r) {
        s[0][0] = sx__rd64(f + 16);
        s[0][1] = sx__rd64(f + 24);
        sx__cksum(f, 16, &s[1][0], &s[1][1]);
        sx__cksum_long(f + FRAME_HDR, p->ps, &s[1][0], &s[1][1]);
        header_damage = !sx__frame_npages(p, f) || sx__rd32(f + 8) != wh->salt0 ||
                        sx__rd32(f + 12) != wh->salt1 ||
                        header_block_damaged(p, wh, f, s[1][0], s[1][1], s[0][0], s[0][1]);
        continue;
      }
      int ours = sx__rd32(f + 8) == wh->salt0 && sx__rd32(f + 12) == wh->salt1;
      if (!durable && ours && sx__frame_durable(p, f)) durable = j;
      if (chained && !ours) chained = 0;
      for (int k = 0; k < 2 && chained; k++) {
        if (!live[k]) continue;
        uint64_t a = s[k][0], b = s[k][1];
        sx__cksum(f, 16, &a, &b);
        sx__cksum_long(f + FRAME_HDR, p->ps, &a, &b);
        live[k] = sx__rd64(f + 16) == a && sx__rd64(f + 24) == b;
        s[k][0] = a;
        s[k][1] = b;
      }
      if (chained && !live[0] && !live[1]) chained = 0;
      if (chained && sx__frame_npages(p, f)) {
        if (live[1] || header_damage)
          return sx__err_set(err, SX_CORRUPT,
                             "WAL '%s' is damaged at frame %llu: whole frames and a commit "
                             "follow it (not a torn write)",
                             p->wal_path[w], (unsigned long long)r);
        chained = 0; /* a torn commit frame */
      }
      settled = !chained && (durable || !p->cksum);
    }
  }
  if (!rc && durable)
    rc = sx__err_set(err, SX_CORRUPT,
                     "WAL '%s' is damaged at frame %llu: frame %llu, written after it "
                     "was synced, follows it (not a torn write)",
                     p->wal_path[w], (unsigned long long)r, (unsigned long long)durable);
  return rc;
}

/* Frames 1..n of WAL file w read without their header: frame 1's salts, then frames
 * 2.. chaining from the checksum stored in the frame before. *nchain: how many chain
 * so (0 when frame 1 is zeros); *last_commit: the last commit frame among them, with
 * its stored checksum in *e0, *e1. */
static int headless_scan(sx__pager *p, int w, uint64_t *nchain, uint64_t *last_commit, uint64_t *e0,
                         uint64_t *e1, uint32_t *s0, uint32_t *s1, sx_error *err) {
  *nchain = *last_commit = *e0 = *e1 = 0;
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc || sz < WAL_HDR + p->fsz) return rc;
  uint64_t nfr = (sz - WAL_HDR) / p->fsz;
  if (nfr > SX__WAL_FRAMES_MAX) nfr = SX__WAL_FRAMES_MAX;
  uint8_t *f = malloc(p->fsz);
  if (!f) return sx__err_set(err, SX_NOMEM, "out of memory recovering '%s'", p->wal_path[w]);
  uint64_t a = 0, b = 0;
  for (uint64_t r = 1; r <= nfr && !rc; r++) {
    rc = sx__file_read(p->wal[w], f, p->fsz, WAL_HDR + (r - 1) * p->fsz, err);
    if (rc) break;
    if (r == 1) {
      *s0 = sx__rd32(f + 8);
      *s1 = sx__rd32(f + 12);
      if (!*s0 && !*s1) break; /* zeros: no frame */
    } else {
      uint64_t x = a, y = b;
      sx__cksum(f, 16, &x, &y);
      sx__cksum_long(f + FRAME_HDR, p->ps, &x, &y);
      if (sx__rd32(f + 8) != *s0 || sx__rd32(f + 12) != *s1 || sx__rd64(f + 16) != x ||
          sx__rd64(f + 24) != y)
        break;
    }
    a = sx__rd64(f + 16);
    b = sx__rd64(f + 24);
    *nchain = r;
    if (sx__frame_npages(p, f)) {
      *last_commit = r;
      *e0 = a;
      *e1 = b;
    }
  }
  free(f);
  return rc;
}

/* Whether WAL file w holds frames of a generation that made a commit, wherever they
 * are: two neighbouring frames with the same salts, the second chaining from the
 * checksum the first stores, one of them a commit frame or either carrying
 * FRAME_DURABLE. Random or damaged bytes do not chain; genuine frames do, even past
 * a damaged frame or header. *cleared: the header and frame 1's header are zeros
 * (sx__wal_restart clears a file so, over frames already in P). */
static int committed_frames(sx__pager *p, int w, int *out, int *cleared, sx_error *err) {
  *out = *cleared = 0;
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc || sz < WAL_HDR + p->fsz) return rc;
  uint64_t nfr = (sz - WAL_HDR) / p->fsz;
  if (nfr > SX__WAL_FRAMES_MAX) nfr = SX__WAL_FRAMES_MAX;
  uint8_t *f = malloc(2 * (size_t)p->fsz);
  if (!f) return sx__err_set(err, SX_NOMEM, "out of memory recovering '%s'", p->wal_path[w]);
  static const uint8_t zeros[WAL_HDR + FRAME_HDR];
  rc = sx__file_read(p->wal[w], f, WAL_HDR + FRAME_HDR, 0, err);
  *cleared = !rc && memcmp(f, zeros, sizeof zeros) == 0;
  uint8_t *prev = f, *cur = f + p->fsz;
  for (uint64_t r = 1; r <= nfr && !rc && !*out; r++) {
    rc = sx__file_read(p->wal[w], cur, p->fsz, WAL_HDR + (r - 1) * p->fsz, err);
    if (!rc && r > 1 && (sx__rd32(cur + 8) || sx__rd32(cur + 12)) &&
        memcmp(cur + 8, prev + 8, 8) == 0 &&
        (sx__frame_npages(p, cur) || sx__frame_npages(p, prev) || sx__frame_durable(p, cur) ||
         sx__frame_durable(p, prev))) {
      uint64_t x = sx__rd64(prev + 16), y = sx__rd64(prev + 24);
      sx__cksum(cur, 16, &x, &y);
      sx__cksum_long(cur + FRAME_HDR, p->ps, &x, &y);
      *out = sx__rd64(cur + 16) == x && sx__rd64(cur + 24) == y;
    }
    uint8_t *t = prev;
    prev = cur;
    cur = t;
  }
  free(f);
  return rc;
}

/*
 * A WAL file w whose header fails its checks while the other file's header, o, is
 * valid (or absent). A header is written, and synced, before any frame of its
 * generation, so a torn header lies only over an older, wholly checkpointed
 * generation's frames: the generation the other file builds on. Cases:
 * - the file holds exactly the generation the other file builds on (its frames chain
 *   up to the count and final checksum the other header records): the header alone
 *   was damaged, or torn; the generation is recovered without it (*wh made valid,
 *   frame 1 trusted, `headless`), so that its frames, perhaps not yet in P, stay
 *   readable;
 * - the file holds no committed frames (committed_frames), or was cleared by
 *   sx__wal_restart: ignored;
 * - anything else holds committed frames that no valid header accounts for: the
 *   newest generation under a damaged header (whichever header is valid, the other
 *   file's is older), refused with SX_CORRUPT rather than dropped.
 */
static int header_repair(sx__pager *p, int w, sx__walhdr *wh, const sx__walhdr *other,
                         sx_error *err) {
  uint64_t nchain, lastc, e0, e1;
  uint32_t s0 = 0, s1 = 0;
  int rc = headless_scan(p, w, &nchain, &lastc, &e0, &e1, &s0, &s1, err);
  if (rc) return rc;
  (void)nchain;
  if (lastc && other->ok && other->prev_frames > 0 && ((other->gen - 1) & 1) == (uint32_t)w &&
      lastc == other->prev_frames && e0 == other->pck0 && e1 == other->pck1) {
    /* The previous generation ends in a commit whose stored checksum the other
     * header records; behind it lie only older generations' frames (other salts). */
    memset(wh, 0, sizeof *wh);
    wh->ok = 1;
    wh->headless = 1;
    wh->gen = other->gen - 1;
    wh->salt0 = s0;
    wh->salt1 = s1;
    return SX_OK;
  }
  int committed = 0, cleared = 0;
  rc = committed_frames(p, w, &committed, &cleared, err);
  if (rc || !committed || cleared) return rc;
  return sx__err_set(err, SX_CORRUPT,
                     "WAL header of '%s' is damaged, and the file holds committed frames",
                     p->wal_path[w]);
}

typedef struct replay {
  uint64_t last;     /* last valid commit frame (relative), 0 if none */
  uint32_t npages;   /* database size at it */
  uint64_t ck0, ck1; /* running checksum at it (the header's if none) */
} replay;

/* Indexes frames 1..limit of WAL file w (into index area w) while their salts match
 * and their checksum chain holds; reports the last commit among them. `have` is how
 * many pages exist before this file's frames (P's, and the frames of an older
 * generation replayed first): a page a commit counts beyond P was written in a frame,
 * so a commit frame claiming more pages than that plus the frames up to it is
 * damage, whatever its checksum says (it would size every reader's structures). */
static int replay_wal(sx__pager *p, int w, const sx__walhdr *wh, uint64_t limit, uint64_t have,
                      replay *out, sx_error *err) {
  memset(out, 0, sizeof *out);
  out->ck0 = wh->ck0;
  out->ck1 = wh->ck1;
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc) return rc;
  uint64_t nfr = sz < WAL_HDR ? 0 : (sz - WAL_HDR) / p->fsz;
  if (nfr > limit) nfr = limit;
  /* Bounded by the format's limit, never by this handle's wal_max (a policy for
   * its own commits): another handle may have written a longer WAL. */
  if (nfr > SX__WAL_FRAMES_MAX) nfr = SX__WAL_FRAMES_MAX;
  size_t per = 256; /* frames per read */
  uint8_t *buf = nfr ? malloc((size_t)p->fsz * per) : NULL;
  if (nfr && !buf)
    return sx__err_set(err, SX_NOMEM, "out of memory recovering '%s'", p->wal_path[w]);
  uint64_t ck0 = wh->ck0, ck1 = wh->ck1, r = 1, pre0 = 0, pre1 = 0;
  int stop = 0;
  while (r <= nfr && !stop && !rc) {
    size_t cnt = (size_t)((nfr - r + 1) < per ? (nfr - r + 1) : per);
    rc = sx__file_read(p->wal[w], buf, cnt * p->fsz, WAL_HDR + (r - 1) * p->fsz, err);
    for (size_t i = 0; i < cnt && !rc; i++, r++) {
      const uint8_t *f = buf + i * p->fsz;
      pre0 = ck0;
      pre1 = ck1;
      if (sx__rd32(f + 8) != wh->salt0 || sx__rd32(f + 12) != wh->salt1) {
        stop = 1;
        break;
      }
      sx__cksum(f, 16, &ck0, &ck1);
      sx__cksum_long(f + FRAME_HDR, p->ps, &ck0, &ck1);
      if (r == 1 && wh->headless) { /* its header is gone: frame 1 seeds the chain */
        ck0 = sx__rd64(f + 16);
        ck1 = sx__rd64(f + 24);
      }
      if (sx__rd64(f + 16) != ck0 || sx__rd64(f + 24) != ck1) {
        stop = 1;
        break;
      }
      if (sx__frame_npages(p, f) > have + r)
        rc = sx__err_set(err, SX_CORRUPT,
                         "WAL '%s' frame %llu commits a database of %u pages, but the file and "
                         "the frames up to it hold %llu",
                         p->wal_path[w], (unsigned long long)r, sx__frame_npages(p, f),
                         (unsigned long long)(have + r));
      if (!rc) rc = sx__index_append(p, w, r, sx__rd32(f), err);
      if (!rc && sx__frame_npages(p, f)) {
        out->last = r;
        out->npages = sx__frame_npages(p, f);
        out->ck0 = ck0;
        out->ck1 = ck1;
      }
    }
  }
  if (!rc && stop) rc = chain_check(p, w, wh, r, nfr, pre0, pre1, buf, per, err);
  free(buf);
  if (!rc) rc = sx__index_truncate(p, w, out->last, err);
  return rc;
}

/*
 * Rebuilds the shared index from the WAL files. The newer generation (by the
 * generation number in a valid header) is the current one; its header says how many
 * frames the previous generation had and how its checksum chain ended. If the other
 * file holds that previous generation whole, it is replayed first. If it holds it
 * damaged, only its valid prefix is replayed and the newer generation is ignored (it
 * builds on frames that are gone). If it holds something else, the previous
 * generation was already copied into P: a generation's file is reused only after
 * every frame of it is in P.
 */
int sx__wal_recover(sx__pager *p, sx_error *err) {
  sx__hdrc h;
  memset(&h, 0, sizeof h);
  uint64_t psz = 0;
  int rc = sx__file_size(p->db, &psz, err);
  if (rc) return rc;
  atomic_store(&p->p_size, psz);
  uint32_t npages_p = sx__pfile_npages(p, psz / p->ps);
  h.npages = npages_p;

  sx__walhdr wh[2];
  for (int w = 0; w < 2 && !rc; w++) rc = sx__wal_read_header(p, w, &wh[w], err);
  /* Another database's WAL (both ids set and different) is as good as absent. */
  int foreign[2] = {0, 0};
  for (int w = 0; w < 2 && !rc; w++)
    if (wh[w].ok && p->dbid && wh[w].dbid && wh[w].dbid != p->dbid) {
      wh[w].ok = 0;
      foreign[w] = 1;
    }
  for (int w = 0; w < 2 && !rc; w++)
    if (!wh[w].ok && !foreign[w]) rc = header_repair(p, w, &wh[w], &wh[1 - w], err);
  if (rc) return rc;
  int n = -1;
  if (wh[0].ok && wh[1].ok)
    n = (int32_t)(wh[1].gen - wh[0].gen) > 0 ? 1 : 0;
  else if (wh[0].ok)
    n = 0;
  else if (wh[1].ok)
    n = 1;
  if (n < 0) {
    /* No WAL: a fresh generation in P-wal. */
    h.gen = 2;
    hdr_resalt(p, &h);
    goto publish;
  }
  int o = 1 - n;
  replay rp, rn;
  if (wh[n].prev_frames > 0 && wh[o].ok && wh[o].gen == wh[n].gen - 1) {
    rc = replay_wal(p, o, &wh[o], wh[n].prev_frames, npages_p, &rp, err);
    if (rc) return rc;
    if (rp.last != wh[n].prev_frames || rp.ck0 != wh[n].pck0 || rp.ck1 != wh[n].pck1) {
      /* The previous generation is damaged. When the newer one holds commits, they
       * were acknowledged after the damage: refuse rather than drop them. */
      rc = replay_wal(p, n, &wh[n], SX__WAL_FRAMES_MAX, npages_p + rp.last, &rn, err);
      if (!rc && rn.last)
        rc = sx__err_set(err, SX_CORRUPT,
                         "WAL '%s' is damaged at frame %llu, and '%s' holds commits made after it",
                         p->wal_path[o], (unsigned long long)rp.last + 1, p->wal_path[n]);
      if (!rc) rc = sx__index_truncate(p, n, 0, err);
      if (rc) return rc;
      /* No newer commit: keep the previous generation's valid prefix. */
      h.gen = wh[o].gen;
      h.salt0 = wh[o].salt0;
      h.salt1 = wh[o].salt1;
      h.pck0 = wh[o].pck0;
      h.pck1 = wh[o].pck1;
      h.mx = rp.last;
      h.npages = rp.last ? rp.npages : npages_p;
      h.ck0 = rp.ck0;
      h.ck1 = rp.ck1;
      if (rp.last == 0) hdr_resalt(p, &h);
      goto publish;
    }
    h.base = wh[n].prev_frames;
    h.npages = rp.npages;
  }
  h.gen = wh[n].gen;
  h.salt0 = wh[n].salt0;
  h.salt1 = wh[n].salt1;
  h.pck0 = wh[n].pck0;
  h.pck1 = wh[n].pck1;
  rc = replay_wal(p, n, &wh[n], SX__WAL_FRAMES_MAX, npages_p + h.base, &rn, err);
  if (rc) return rc;
  h.mx = h.base + rn.last;
  if (rn.last) h.npages = rn.npages;
  h.ck0 = rn.ck0;
  h.ck1 = rn.ck1;
  /* A generation without frames gets new salts, so no frame left in its file from
   * before can ever chain on. */
  if (rn.last == 0) hdr_resalt(p, &h);
publish:
  h.backfill = 0;
  h.target = 0;
  h.pbase = 0;
  sx__hdr_publish(p, &h);
  sx__hdr_publish(p, &h); /* both copies valid */
  return SX_OK;
}

/*
 * Moves the writer to the other WAL file (the next generation) when that file is
 * free: every frame of the generation it holds is in P, and no pinned reader reads
 * those frames. It does so once the current file is past the autocheckpoint size or
 * wholly copied into P. Readers of the current generation never stand in the way,
 * so steady short reads cannot starve the switch; only a reader pinned across a
 * whole generation can (then the WAL grows, up to its cap). See the reader protocol
 * at the top for why publishing, then scanning the slots, is safe.
 */
int sx__wal_try_switch(sx__pager *p, sx__hdrc *h, sx_error *err) {
  if (h->mx == h->base || h->backfill < h->base) return SX_OK;
  if (h->mx - h->base < p->autockpt && h->backfill < h->mx) return SX_OK;
  uint64_t minpin;
  int prev_users;
  sx__scan_slots(p, h->base, &minpin, &prev_users, NULL, NULL);
  if (prev_users) return SX_OK;
  if (p->sync == SX_SYNC_NORMAL && !(p->synced_gen == h->gen && p->synced_mx == h->mx)) {
    /* The generation left behind is durable before the next one says how it ends
     * (unless this handle's checkpoint synced it and no frame came since: mx only
     * grows, so an equal mx in the same generation means the same frames). */
    int rc = sx__file_sync(p->wal[h->gen & 1], 1, err);
    if (rc) {
      sx__pager_poison(p);
      return rc;
    }
  }
  sx__hdrc old = *h, nh = *h;
  hdr_next_gen(p, &nh);
  sx__hdr_publish(p, &nh);
  sx__scan_slots(p, old.base, &minpin, &prev_users, NULL, NULL);
  if (prev_users) {
    sx__hdr_publish(p, &old); /* a reader slipped in: stay in this generation */
    return SX_OK;
  }
  *h = nh;
  return SX_OK;
}

/*
 * Restart: the WAL gives its space back. After a checkpoint has copied every frame
 * into P (backfill == mx) nothing in either WAL file is needed any more, so a file
 * longer than the handle's limit (sx_open_options.wal_size_limit) may be cut to it,
 * while the database stays open. Two things stand in the way:
 *
 * Readers. A reader maps the WAL files and reads frames (floor, mx] of its snapshot;
 * touching a mapped page past the end of a file is SIGBUS. The checkpoint published
 * backfill == mx before the scan below, so (reader protocol, pager_int.h) a reader
 * either shows in the scan or begins with floor == mx and reads no frame at all.
 * Only when no live reader has floor < mx are the files cut; the next frames any
 * reader will read are written (and the file grown) before they are published.
 * Mappings that reach past the new end are harmless until then: a page is checked
 * against the file's size when it is touched, not when it is mapped.
 *
 * Recovery. A cut file keeps a valid header and a prefix of its frames, which
 * recovery would take for a torn generation: it would drop what follows it, or
 * replay stale frames over P. So both headers are invalidated first (zeroed, older
 * generation first, each made durable before the next step), and only then are the
 * files cut. With both headers invalid recovery reads P alone, which holds every
 * commit (the checkpoint synced it). The writer moves to a new generation before
 * touching either file, so that if this process dies in between, the next writer
 * (of any process) writes a fresh header instead of appending frames behind a header
 * that is about to vanish.
 */
int sx__wal_restart(sx__pager *p, sx__hdrc *h, sx_error *err) {
  if (h->backfill < h->mx) return SX_OK;
  uint64_t sz[2];
  for (int w = 0; w < 2; w++) {
    int rc = sx__file_size(p->wal[w], &sz[w], err);
    if (rc) return rc;
  }
  if (sz[0] <= p->wal_limit && sz[1] <= p->wal_limit) return SX_OK;
  uint64_t minpin;
  int frame_readers;
  sx__scan_slots(p, UINT64_MAX, &minpin, &frame_readers, NULL, NULL);
  if (frame_readers) return SX_OK; /* the next complete checkpoint tries again */
  if (h->mx != h->base) {
    /* The current generation has frames (and a header on disk): start the next one,
     * whose first commit writes its header at the start of the other file. */
    hdr_next_gen(p, h);
    sx__hdr_publish(p, h);
  }
  sx__walhdr wh[2];
  int rc = SX_OK;
  for (int w = 0; w < 2 && !rc; w++) rc = sx__wal_read_header(p, w, &wh[w], err);
  if (rc) return rc;
  /* Older generation first: were the newer one's header gone and the older one's
   * not, recovery would replay the older generation over P. */
  int first = 0;
  if (wh[0].ok && wh[1].ok)
    first = (int32_t)(wh[1].gen - wh[0].gen) > 0 ? 0 : 1;
  else if (wh[0].ok)
    first = 1; /* file 1 has nothing valid: it goes first (a no-op) */
  /* The header and frame 1's header: no frame behind a cleared header chains, so a
   * header found zeroed over committed frames is damage (header_repair). */
  static const uint8_t zeros[WAL_HDR + FRAME_HDR];
  for (int i = 0; i < 2 && !rc; i++) {
    int w = i == 0 ? first : 1 - first;
    if (!wh[w].ok) continue;
    rc = sx__file_write(p->wal[w], zeros, sz[w] < sizeof zeros ? WAL_HDR : sizeof zeros, 0, err);
    if (!rc && p->sync != SX_SYNC_OFF) {
      rc = sx__file_sync(p->wal[w], 1, err);
      if (rc) sx__pager_poison(p);
    }
  }
  for (int w = 0; w < 2 && !rc; w++)
    if (sz[w] > p->wal_limit) rc = sx__file_truncate(p->wal[w], p->wal_limit, err);
  p->wal_size[0] = p->wal_size[1] = 0;
  p->wal_cuts_seen = __atomic_add_fetch(&p->hdr->wal_cuts, 1, __ATOMIC_RELAXED);
  return rc;
}

void sx__wal_frame_make(const sx__pager *p, const sx__hdrc *h, uint8_t *f, uint32_t pgno,
                        uint32_t commit, const uint8_t *page, uint64_t *ck0, uint64_t *ck1) {
  sx__wr32(f, pgno);
  sx__wr32(f + 4, commit);
  sx__wr32(f + 8, h->salt0);
  sx__wr32(f + 12, h->salt1);
  memcpy(f + FRAME_HDR, page, p->ps);
  sx__cksum(f, 16, ck0, ck1);
  sx__cksum_long(f + FRAME_HDR, p->ps, ck0, ck1);
  sx__wr64(f + 16, *ck0);
  sx__wr64(f + 24, *ck1);
}

/* Bytes of frames a writer at sync normal lets pile up before it starts their
 * writeback. */
#define WAL_WRITEBACK (512u << 10)

int sx__wal_write(sx__pager *p, int w, const uint8_t *buf, size_t len, uint64_t off,
                  size_t hdr_bytes, sx_error *err) {
  int rc = sx__wal_reserve(p, w, off + len, err);
  if (rc) return rc;
  size_t skip = 0;
  if (hdr_bytes && p->sync != SX_SYNC_OFF) {
    /* A new WAL generation: its header is durable before any of its frames overwrite
     * the old generation's, or a power cut could keep the old header and a prefix of
     * old frames, which recovery would replay over the newer checkpointed file. */
    rc = sx__file_write(p->wal[w], buf, WAL_HDR, 0, err);
    if (rc) return rc;
    rc = sx__file_sync(p->wal[w], 1, err);
    if (rc) {
      sx__pager_poison(p);
      return rc;
    }
    skip = WAL_HDR;
  }
  rc = sx__file_write(p->wal[w], buf + skip, len - skip, off + skip, err);
  if (rc) return rc;
  if (p->sync == SX_SYNC_NORMAL) {
    /* The checkpoint's sync would otherwise find the whole generation's frames still
     * to write and wait for all of them: start their writeback as they come. */
    if (p->wal_wb[w] > off) p->wal_wb[w] = off; /* a new generation, from the start */
    if (off + len - p->wal_wb[w] >= WAL_WRITEBACK) {
      sx__file_writeback(p->wal[w], p->wal_wb[w], off + len - p->wal_wb[w]);
      p->wal_wb[w] = off + len;
    }
  }
  if (p->sync == SX_SYNC_FULL) {
    rc = sx__file_sync(p->wal[w], 1, err);
    if (rc) sx__pager_poison(p);
  }
  return rc;
}

/*
 * Makes WAL file w at least `need` bytes long by appending zeros, a megabyte at a
 * time: commits then overwrite blocks already allocated, and their fdatasync need
 * not also record a new file size. Zeros beyond the last frame fail the checksum
 * chain, so recovery ignores them.
 */
#define WAL_GROW (1u << 20)
int sx__wal_reserve(sx__pager *p, int w, uint64_t need, sx_error *err) {
  uint64_t cuts = __atomic_load_n(&p->hdr->wal_cuts, __ATOMIC_RELAXED);
  if (cuts != p->wal_cuts_seen) {
    /* Another handle cut the files (sx__wal_restart): what this one knew is stale. */
    p->wal_size[0] = p->wal_size[1] = 0;
    p->wal_cuts_seen = cuts;
  }
  /* Without syncs there is no fdatasync to spare: frames extend the file. */
  if (p->sync == SX_SYNC_OFF || p->wal_size[w] >= need) return SX_OK;
  uint64_t sz = 0;
  int rc = sx__file_size(p->wal[w], &sz, err);
  if (rc) return rc;
  if (sz < need) {
    static const uint8_t zeros[65536];
    uint64_t target = (need + WAL_GROW - 1) / WAL_GROW * WAL_GROW;
    for (uint64_t off = sz; off < target && !rc;) {
      size_t n = target - off < sizeof zeros ? (size_t)(target - off) : sizeof zeros;
      rc = sx__file_write(p->wal[w], zeros, n, off, err);
      off += n;
    }
    if (rc) return rc;
    sz = target;
  }
  p->wal_size[w] = sz;
  return SX_OK;
}
