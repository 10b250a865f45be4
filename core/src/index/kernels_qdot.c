/*
 * kernels_qdot.c: integer dot products of a batch of int16 queries with 8-bit codes
 * (sx__qdbatch, kernels.h): the codes side of an exact batch search of a quantized
 * collection (hnsw_quant.c turns the products into lower bounds).
 *
 * Why: a batch's exact scan is bound by arithmetic, not memory (each vector is read
 * once for every query). Over the codes the arithmetic is integer: vpmaddwd
 * multiplies sixteen int16 pairs and adds them two by two into eight int32 lanes, so
 * with its vpaddd one pair of instructions does sixteen multiply-adds where an FMA
 * does eight, and the codes are a quarter of the float32 vectors' bytes. The layout
 * is that of the float32 packed kernel (kernels_qbatch.c):
 *   - the queries are laid out once per batch, six at a time, by pairs of dimensions
 *     (qp[p * 6 + i]: the int16 pair 2p, 2p + 1 of query i as one int32), so a step
 *     broadcasts a query's pair with one load;
 *   - each tile of 16 codes is widened to int16 and laid out by pairs of dimensions
 *     (vt[p * 16 + lane]), transposed eight by eight in registers;
 *   - the micro-kernel keeps 6 x 16 sums in twelve registers: per pair of dimensions
 *     two loads, six broadcasts, twelve vpmaddwd and twelve vpaddd.
 * Every sum is exact (the caller bounds dim * 255 * max |q_i| below 2^31, as for
 * sx__qdot), so every level returns the same integers; levels without AVX2 call
 * sx__qdot per pair.
 *
 * A batch is used by one thread at a time (the packed tile is scratch).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "index/kernels_int.h"

#define QD_R 6  /* queries per micro-kernel call */
#define QD_W 16 /* codes per tile */

struct sx__qdbatch {
  int avx2;
  size_t nq, dim, np; /* np: pairs of dimensions, ceil(dim / 2) */
  int16_t *qq;        /* the C path: nq x dim, row-major */
  int32_t *qp;        /* AVX2: ceil(nq / 6) groups of np x 6 pairs, zero padded */
  int32_t *vt;        /* AVX2 scratch: one tile, np x 16 pairs */
  sx__qdot_fn qdot;
};

sx__qdbatch *sx__qdbatch_new(const int16_t *qq, size_t stride, size_t nq, size_t dim) {
  sx__qdbatch *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->nq = nq;
  b->dim = dim;
  b->np = (dim + 1) / 2;
  b->qdot = sx__qdot();
#if SX_X86
  b->avx2 = sx__kernel_level() >= SX__KERNEL_AVX2;
#endif
  if (b->avx2) {
    size_t ng = (nq + QD_R - 1) / QD_R;
    b->qp = calloc(ng * b->np * QD_R, sizeof *b->qp);
    b->vt = aligned_alloc(32, (b->np * QD_W * sizeof *b->vt + 31) & ~(size_t)31);
    if (!b->qp || !b->vt) goto fail;
    for (size_t i = 0; i < nq; i++) {
      int32_t *g = b->qp + (i / QD_R) * b->np * QD_R + i % QD_R;
      const int16_t *q = qq + i * stride;
      for (size_t p = 0; p < b->np; p++) {
        uint16_t lo = (uint16_t)q[2 * p], hi = 2 * p + 1 < dim ? (uint16_t)q[2 * p + 1] : 0;
        g[p * QD_R] = (int32_t)((uint32_t)lo | (uint32_t)hi << 16);
      }
    }
  } else {
    /* sx__qdot reads the query rounded up to 32 values, the padding zero. */
    size_t d32 = (dim + 31) & ~(size_t)31;
    b->qq = calloc(nq * d32 + 1, sizeof *b->qq);
    if (!b->qq) goto fail;
    for (size_t i = 0; i < nq; i++) memcpy(b->qq + i * d32, qq + i * stride, dim * sizeof *qq);
  }
  return b;
fail:
  sx__qdbatch_free(b);
  return NULL;
}

void sx__qdbatch_free(sx__qdbatch *b) {
  if (!b) return;
  free(b->qq);
  free(b->qp);
  free(b->vt);
  free(b);
}

#if SX_X86
#define AVX2 __attribute__((target("avx2,fma")))

/* Codes c[0..7] (lanes base..base + 7 of the tile), dimensions 16 s .. 16 s + 15,
 * into the tile: eight rows of eight byte pairs transposed, then widened. */
static inline __attribute__((always_inline, target("avx2,fma"))) void pack8x16(
    int32_t *vt, const uint8_t *const *c, size_t s, size_t base) {
  __m128i r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = _mm_loadu_si128((const __m128i *)(c[i] + 16 * s));
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
  }
  /* t[0]: pairs 0-3 of rows 0, 1; t[1]: pairs 4-7; t[2], t[3]: rows 2, 3; ... */
  for (int h = 0; h < 2; h++) {
    u[4 * h + 0] = _mm_unpacklo_epi32(t[4 * h + 0], t[4 * h + 2]); /* pairs 0, 1 */
    u[4 * h + 1] = _mm_unpackhi_epi32(t[4 * h + 0], t[4 * h + 2]); /* pairs 2, 3 */
    u[4 * h + 2] = _mm_unpacklo_epi32(t[4 * h + 1], t[4 * h + 3]); /* pairs 4, 5 */
    u[4 * h + 3] = _mm_unpackhi_epi32(t[4 * h + 1], t[4 * h + 3]); /* pairs 6, 7 */
  }
  int32_t *o = vt + 8 * s * QD_W + base;
  for (int i = 0; i < 4; i++) {
    __m128i w0 = _mm_unpacklo_epi64(u[i], u[4 + i]); /* pair 2i, rows 0-7 */
    __m128i w1 = _mm_unpackhi_epi64(u[i], u[4 + i]); /* pair 2i + 1 */
    _mm256_store_si256((__m256i *)(o + (2 * i) * QD_W), _mm256_cvtepu8_epi16(w0));
    _mm256_store_si256((__m256i *)(o + (2 * i + 1) * QD_W), _mm256_cvtepu8_epi16(w1));
  }
}

/* The tile of codes c[0..15] (all 16 valid pointers), widened, by pairs. */
static AVX2 void pack_tile(int32_t *vt, const uint8_t *const *c, size_t dim, size_t np) {
  size_t s = 0;
  for (; 16 * s + 16 <= dim; s++) {
    pack8x16(vt, c, s, 0);
    pack8x16(vt, c + 8, s, 8);
  }
  for (size_t p = 8 * s; p < np; p++)
    for (int l = 0; l < QD_W; l++) {
      uint32_t lo = c[l][2 * p], hi = 2 * p + 1 < dim ? c[l][2 * p + 1] : 0;
      vt[p * QD_W + l] = (int32_t)(lo | hi << 16);
    }
}

/* Six queries' pairs (qg) against the packed tile: out[r * ldo + lane]. */
static AVX2 void micro6x16(const int32_t *qg, const int32_t *vt, size_t np, int32_t *out,
                           size_t ldo) {
  __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
  __m256i a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  for (size_t p = 0; p < np; p++) {
    __m256i v0 = _mm256_load_si256((const __m256i *)(vt + p * QD_W));
    __m256i v1 = _mm256_load_si256((const __m256i *)(vt + p * QD_W + 8));
    const int32_t *q = qg + p * QD_R;
    /* Query r's pair broadcast, times both halves of the tile, into its two sums. */
#define QD_ROW(r, x0, x1)                                \
  {                                                      \
    __m256i b = _mm256_set1_epi32(q[r]);                 \
    x0 = _mm256_add_epi32(x0, _mm256_madd_epi16(b, v0)); \
    x1 = _mm256_add_epi32(x1, _mm256_madd_epi16(b, v1)); \
  }
    QD_ROW(0, a00, a01)
    QD_ROW(1, a10, a11)
    QD_ROW(2, a20, a21)
    QD_ROW(3, a30, a31)
    QD_ROW(4, a40, a41)
    QD_ROW(5, a50, a51)
#undef QD_ROW
  }
  const __m256i row[2 * QD_R] = {a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51};
  for (int r = 0; r < QD_R; r++) {
    _mm256_storeu_si256((__m256i *)(out + r * ldo), row[2 * r]);
    _mm256_storeu_si256((__m256i *)(out + r * ldo + 8), row[2 * r + 1]);
  }
}

static AVX2 void qdot_batch_avx2(sx__qdbatch *b, const uint8_t *const *codes, size_t n,
                                 int32_t *dots) {
  int32_t tmp[QD_R * QD_W];
  for (size_t j0 = 0; j0 < n; j0 += QD_W) {
    size_t w = n - j0 < QD_W ? n - j0 : QD_W;
    const uint8_t *c[QD_W];
    for (size_t l = 0; l < QD_W; l++) c[l] = codes[j0 + (l < w ? l : 0)]; /* pad: lane 0 */
    pack_tile(b->vt, c, b->dim, b->np);
    for (size_t i0 = 0; i0 < b->nq; i0 += QD_R) {
      const int32_t *qg = b->qp + (i0 / QD_R) * b->np * QD_R;
      size_t r = b->nq - i0 < QD_R ? b->nq - i0 : QD_R;
      if (r == QD_R && w == QD_W) {
        micro6x16(qg, b->vt, b->np, dots + i0 * n + j0, n);
        continue;
      }
      micro6x16(qg, b->vt, b->np, tmp, QD_W);
      for (size_t i = 0; i < r; i++) memcpy(dots + (i0 + i) * n + j0, tmp + i * QD_W, w * 4);
    }
  }
}
#endif

static atomic_size_t min_dim = SX__QDOT_BATCH_MIN_DIM;

int sx__qdot_batch_preferred(size_t dim) {
  return sx__kernel_level() == SX__KERNEL_AVX2 && dim >= atomic_load(&min_dim);
}

size_t sx__qdot_batch_min_dim(size_t dim) {
  return atomic_exchange(&min_dim, dim);
}

void sx__qdot_batch(sx__qdbatch *b, const uint8_t *const *codes, size_t n, int32_t *dots) {
#if SX_X86
  if (b->avx2) {
    qdot_batch_avx2(b, codes, n, dots);
    return;
  }
#endif
  size_t d32 = (b->dim + 31) & ~(size_t)31;
  for (size_t i = 0; i < b->nq; i++)
    for (size_t j = 0; j < n; j++) dots[i * n + j] = b->qdot(b->qq + i * d32, codes[j], b->dim);
}
