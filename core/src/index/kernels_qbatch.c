/*
 * kernels_qbatch.c: prepared query batches (sx__qbatch, kernels.h) and the AVX2
 * level's packed batch kernel that runs on them.
 *
 * Why: at AVX2 the plain batch kernel (kernels.c: two queries x four vectors, read
 * where they lie) ran Fashion-MNIST's batch at about half the FMA peak of an AMD EPYC
 * VM (Zen 3), 0.60-0.65x faiss's IndexFlatL2, whose BLAS sgemm runs near the peak.
 * The packed kernel takes the layout of an sgemm (GotoBLAS, BLIS):
 *   - the queries are laid out once per batch, six at a time and dimension-major
 *     (qp[k * 6 + i]), so a micro-kernel step reads one stream of query floats;
 *   - each block of up to QB_VB vectors is copied, QB_K dimensions at a time, into
 *     tiles of 16 vectors, dimension-major (vt[k * 16 + lane]), shifted as below and
 *     transposed eight by eight in registers: the packed block stays in L2;
 *   - the micro-kernel keeps 6 x 16 dot products in twelve registers: per dimension
 *     two loads, six broadcasts and twelve FMAs.
 * In a throwaway harness on that VM (500 queries, 784-d) this layout ran at 36-42 G
 * pair-dimensions a second against 28-32 for the same micro-kernel reading queries
 * in place (bench/README.md has the figures through the binding).
 *
 * l2 is computed as |q'|^2 + |v'|^2 - 2 q'.v' over q' = q - mu, v' = v - mu, where mu
 * is the queries' mean: a shift leaves every distance unchanged, and without it data
 * with a common offset (non-negative pixels) fails the cancellation guard of kernels.c
 * for most pairs. The guard is the same as the AVX-512 kernel's: a pair whose
 * result is below (|q'|^2 + |v'|^2) / 8 is computed again directly, from the floats
 * as stored, so exact duplicates come out as 0. Shifting rounds each component once
 * more (q' and v' are floats); while the guard holds, that error is a few ulps of d.
 * When more than a quarter of a block's pairs fail the guard, the batch goes on with
 * the plain kernel (kernels.c), which computes (q - v)^2 directly.
 *
 * A scan that keeps the k best of each query passes each query's current worst
 * (sx__distance_qbatch_within). After each block of dimensions but the last, a group
 * of six queries with a tile of 16 vectors whose pairs are all proven beyond their
 * bounds from the sums so far (tile_beyond) is dropped: its pairs get +inf and it
 * skips the dimensions left. Vectors far from every query of a group fall out after
 * a prefix of their dimensions; on Fashion-MNIST (k = 10, blocks of 128 dimensions)
 * about a fifth of the multiply-adds go (measured with numpy against the final k-th
 * distances), and uniformly random data, whose distances all lie close together,
 * drops nothing. The blocks are 128 dimensions rather than 256 for that.
 *
 * A batch is used by one thread at a time (its packed block is scratch); it keeps
 * pointers to the caller's queries and norms, which must outlive it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/kernels_int.h"
#include "sextant.h"

#define QB_R 6    /* queries per micro-kernel call */
#define QB_W 16   /* vectors per tile: two ymm of lanes */
#define QB_K 128  /* dimensions per packed block (the bounds are checked after each) */
#define QB_VB 256 /* vectors packed at once: QB_K x QB_VB floats = 128 KB */
/* Queries packed once, at most (bytes). Beyond, each call packs them again, QB_QC at
 * a time and one block of dimensions at a time: a copy of the queries per call (a
 * block of vectors) instead of one per batch, so that a large batch does not double
 * its memory in every thread scanning it. */
#define QB_PACK_MAX (16u << 20)
#define QB_QC 1020 /* queries a repacked chunk holds (a multiple of six) */

struct sx__qbatch {
  int metric;
  int level;  /* the kernel level it was made for */
  int packed; /* the AVX2 packed kernel below; else the level's plain batch */
  int direct; /* l2 pairs failed the guard too often: the plain kernel from now on */
  const float *qs, *qnorms;
  size_t nq, dim;
  float *qp; /* ceil(nq / 6) groups of 6 x dim, dimension-major, zero padded; or,
              * when repack, one chunk's groups of 6 x kc for one block */
  int repack;
  float *mu; /* l2: the shift, the queries' mean (dim floats) */
  float *qx; /* per query: l2 |q - mu|^2; cosine 1 / |q| (0 for |q| = 0) */
  float *vt; /* scratch: one packed block, QB_K x QB_VB */
  float *vx; /* scratch, per vector of the block: l2 |v - mu|^2; cosine 1 / |v| */
  /* Bounds (l2, sx__distance_qbatch_within): per dimension block but the last, each
   * query's |q - mu|^2 over the dimensions up to the block's end (qpre[kb * nq + q]);
   * per group of six queries and tile, whether its pairs are all proven beyond their
   * bounds (done[g * QB_VB / 16 + t]); the relative slack of a proof. */
  float *qpre;
  uint8_t *done;
  float eps;
};

/* Component k of query q as packed: shifted by mu for l2. */
static inline float qval(const sx__qbatch *b, size_t q, size_t k) {
  float x = b->qs[q * b->dim + k];
  return b->mu ? x - b->mu[k] : x;
}

/* Queries [q0, q0 + nc) over dimensions [k0, k0 + kc) into groups of six, k-major:
 * dst[g * 6 * ld + (k - k0) * 6 + i] for group g (from q0), ld = kc or dim. */
static void pack_queries(const sx__qbatch *b, size_t q0, size_t nc, size_t k0, size_t kc, size_t ld,
                         float *dst) {
  size_t ng = (nc + QB_R - 1) / QB_R;
  for (size_t g = 0; g < ng; g++)
    for (size_t k = 0; k < kc; k++)
      for (size_t i = 0; i < QB_R; i++) {
        size_t q = q0 + g * QB_R + i;
        dst[g * QB_R * ld + k * QB_R + i] = q < q0 + nc ? qval(b, q, k0 + k) : 0.0f;
      }
}

#if SX_X86

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* Lanes [0, n) of a tile's two registers, as the masks maskload/maskstore take. */
AVX2_INLINE void lane_masks(size_t n, __m256i *m0, __m256i *m1) {
  __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i nn = _mm256_set1_epi32((int)n);
  *m0 = _mm256_cmpgt_epi32(nn, idx);
  *m1 = _mm256_cmpgt_epi32(nn, _mm256_add_epi32(idx, _mm256_set1_epi32(8)));
}

typedef struct {
  const float *vt; /* the tile: kc rows of 16 */
  size_t kc;
  const float *qp; /* the group's packed rows from this block's first dimension */
  float *ob;       /* out row of the group's first query, at the tile's first vector */
  size_t ldo;
  int full; /* all 16 lanes valid (else m0, m1) */
  __m256i m0, m1;
  int first;       /* start from zero (else add to what out holds) */
  int metric;      /* -1: store the raw sums (dimension blocks follow); else finish */
  const float *qx; /* per query of the group */
  __m256 vx0, vx1; /* per vector lane */
  uint32_t *redo;  /* l2: per query, lanes (bit 8 g + b) to compute again directly */
} qb_args;

/* The tile's valid lanes as bits (bit 8 g + b). */
AVX2_INLINE int lane_bits(int full, __m256i m0, __m256i m1) {
  return full ? 0xffff
              : _mm256_movemask_ps(_mm256_castsi256_ps(m0)) |
                    _mm256_movemask_ps(_mm256_castsi256_ps(m1)) << 8;
}

AVX2_INLINE __m256 ld(const float *p, int full, __m256i m) {
  return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
AVX2_INLINE void st(float *p, int full, __m256i m, __m256 x) {
  if (full)
    _mm256_storeu_ps(p, x);
  else
    _mm256_maskstore_ps(p, m, x);
}

/* R queries x one tile over kc dimensions, in 2R registers; then stored raw or
 * finished as distances in registers. */
AVX2_INLINE void micro(const int R, const qb_args *a) {
  __m256 acc[QB_R][2];
  const int full = a->full;
  const size_t ldo = a->ldo;
  float *ob = a->ob;
#pragma GCC unroll 6
  for (int i = 0; i < R; i++) {
    if (a->first) {
      acc[i][0] = _mm256_setzero_ps();
      acc[i][1] = _mm256_setzero_ps();
    } else {
      acc[i][0] = ld(ob + i * ldo, full, a->m0);
      acc[i][1] = ld(ob + i * ldo + 8, full, a->m1);
    }
  }
  const float *vt = a->vt, *qp = a->qp;
  const size_t kc = a->kc;
  for (size_t k = 0; k < kc; k++) {
    __m256 v0 = _mm256_load_ps(vt + k * QB_W), v1 = _mm256_load_ps(vt + k * QB_W + 8);
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
      __m256 b = _mm256_broadcast_ss(qp + k * QB_R + i);
      acc[i][0] = _mm256_fmadd_ps(b, v0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(b, v1, acc[i][1]);
    }
  }
  __m256 one = _mm256_set1_ps(1.0f);
  switch (a->metric) {
    case SX__L2: {
      /* d = |q'|^2 + |v'|^2 - 2 q'.v', with the cancellation guard (top of file). */
      __m256 eighth = _mm256_set1_ps(0.125f), m2 = _mm256_set1_ps(-2.0f);
      int valid = lane_bits(full, a->m0, a->m1);
#pragma GCC unroll 6
      for (int i = 0; i < R; i++) {
        __m256 qq = _mm256_set1_ps(a->qx[i]);
        __m256 s0 = _mm256_add_ps(qq, a->vx0), s1 = _mm256_add_ps(qq, a->vx1);
        acc[i][0] = _mm256_fmadd_ps(m2, acc[i][0], s0);
        acc[i][1] = _mm256_fmadd_ps(m2, acc[i][1], s1);
        int r0 =
            _mm256_movemask_ps(_mm256_cmp_ps(acc[i][0], _mm256_mul_ps(s0, eighth), _CMP_LT_OQ));
        int r1 =
            _mm256_movemask_ps(_mm256_cmp_ps(acc[i][1], _mm256_mul_ps(s1, eighth), _CMP_LT_OQ));
        a->redo[i] = (uint32_t)((r0 | r1 << 8) & valid);
      }
      break;
    }
    case SX__IP:
#pragma GCC unroll 6
      for (int i = 0; i < R; i++) {
        acc[i][0] = _mm256_sub_ps(one, acc[i][0]);
        acc[i][1] = _mm256_sub_ps(one, acc[i][1]);
      }
      break;
    case SX__COSINE: {
      __m256 zero = _mm256_setzero_ps(), two = _mm256_set1_ps(2.0f);
#pragma GCC unroll 6
      for (int i = 0; i < R; i++) {
        __m256 qi = _mm256_set1_ps(a->qx[i]);
        __m256 r0 = _mm256_fnmadd_ps(acc[i][0], _mm256_mul_ps(qi, a->vx0), one);
        __m256 r1 = _mm256_fnmadd_ps(acc[i][1], _mm256_mul_ps(qi, a->vx1), one);
        acc[i][0] = _mm256_min_ps(_mm256_max_ps(r0, zero), two);
        acc[i][1] = _mm256_min_ps(_mm256_max_ps(r1, zero), two);
      }
      break;
    }
    default:
      break;
  }
#pragma GCC unroll 6
  for (int i = 0; i < R; i++) {
    st(ob + i * ldo, full, a->m0, acc[i][0]);
    st(ob + i * ldo + 8, full, a->m1, acc[i][1]);
  }
}

/* One function per query count: the register layout is fixed at compile time. */
// clang-format off
#define MICRO(R) static AVX2 void micro_##R(const qb_args *a) { micro(R, a); }
MICRO(1) MICRO(2) MICRO(3) MICRO(4) MICRO(5) MICRO(6)
#undef MICRO
static void (*const micro_table[QB_R + 1])(const qb_args *) = {
    NULL, micro_1, micro_2, micro_3, micro_4, micro_5, micro_6};
// clang-format on

/* Eight registers of eight floats transposed: r[u] becomes element u of each. */
AVX2_INLINE void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Dimensions [k0, k0 + kc) of nv vectors (shifted by mu when given) into tiles of 16
 * (vt + t * 16 * kc), lanes past nv zero; adds each lane's sum of squares to vsq
 * when it is given. Eight vectors by eight dimensions at a time, transposed in
 * registers; the rest one float at a time. */
static AVX2 void pack_block(const float *const *v, size_t nv, size_t k0, size_t kc, const float *mu,
                            float *vt, float *vsq) {
  size_t nt = (nv + QB_W - 1) / QB_W;
  for (size_t t = 0; t < nt; t++) {
    float *dst = vt + t * QB_W * kc;
    for (size_t g = 0; g < QB_W; g += 8) {
      size_t j0 = t * QB_W + g, k = 0;
      __m256 sq = _mm256_setzero_ps();
      if (j0 + 8 <= nv) {
        for (; k + 8 <= kc; k += 8) {
          __m256 r[8];
          __m256 sh = mu ? _mm256_loadu_ps(mu + k0 + k) : _mm256_setzero_ps();
          for (size_t l = 0; l < 8; l++)
            r[l] = _mm256_sub_ps(_mm256_loadu_ps(v[j0 + l] + k0 + k), sh);
          transpose8(r);
          for (size_t u = 0; u < 8; u++) {
            _mm256_store_ps(dst + (k + u) * QB_W + g, r[u]);
            sq = _mm256_fmadd_ps(r[u], r[u], sq);
          }
        }
      }
      float tail[8] = {0};
      for (size_t l = 0; l < 8; l++) {
        size_t j = j0 + l;
        for (size_t kk = k; kk < kc; kk++) {
          float x = j >= nv ? 0.0f : mu ? v[j][k0 + kk] - mu[k0 + kk] : v[j][k0 + kk];
          dst[kk * QB_W + g + l] = x;
          tail[l] += x * x;
        }
      }
      if (vsq) {
        __m256 s = _mm256_add_ps(_mm256_loadu_ps(vsq + t * QB_W + g), sq);
        _mm256_storeu_ps(vsq + t * QB_W + g, _mm256_add_ps(s, _mm256_loadu_ps(tail)));
      }
    }
  }
}

/* Whether the raw sums a micro-kernel left in out (dimensions up to some block's end,
 * l2) prove every pair of r queries with a tile's valid lanes beyond its query's
 * bound. Over the dimensions so far, d_p = |q'|^2 + |v'|^2 - 2 q'.v' (qpre, vsq, the
 * sums) is within eps (|q'|^2 + |v'|^2) of the exact partial distance, which bounds
 * the whole distance from below; the distance the kernel would return is within a
 * factor 1 - 2 eps of that (the cancellation guard keeps the dot-product form's error
 * within 16 ulps-per-dimension of d, and a pair it sends back is computed directly).
 * eps = (8 dim + 64) 2^-24 covers those float errors and this function's own. */
AVX2_INLINE int tile_beyond(const float *ob, size_t ldo, size_t r, const float *qpre,
                            const float *vsq, const float *bound, float eps, int full, __m256i m0,
                            __m256i m1) {
  __m256 v0 = _mm256_loadu_ps(vsq), v1 = _mm256_loadu_ps(vsq + 8);
  __m256 e = _mm256_set1_ps(eps), f = _mm256_set1_ps(1.0f - 2.0f * eps);
  __m256 m2 = _mm256_set1_ps(-2.0f);
  /* Lanes past the tile's vectors count as proven. */
  int pad = ~lane_bits(full, m0, m1) & 0xffff;
  for (size_t i = 0; i < r; i++) {
    __m256 q = _mm256_set1_ps(qpre[i]), t = _mm256_set1_ps(bound[i]);
    __m256 s0 = _mm256_add_ps(q, v0), s1 = _mm256_add_ps(q, v1);
    __m256 d0 = _mm256_fmadd_ps(m2, ld(ob + i * ldo, full, m0), s0);
    __m256 d1 = _mm256_fmadd_ps(m2, ld(ob + i * ldo + 8, full, m1), s1);
    __m256 lb0 = _mm256_mul_ps(_mm256_fnmadd_ps(e, s0, d0), f);
    __m256 lb1 = _mm256_mul_ps(_mm256_fnmadd_ps(e, s1, d1), f);
    int ok = _mm256_movemask_ps(_mm256_cmp_ps(lb0, t, _CMP_GT_OQ)) |
             _mm256_movemask_ps(_mm256_cmp_ps(lb1, t, _CMP_GT_OQ)) << 8;
    if ((ok | pad) != 0xffff) return 0;
  }
  return 1;
}

/* The packed kernel over vecs[0, n): out[i * n + j]; with bound (l2), pairs proven
 * beyond their query's bound get +inf, and their tiles skip the dimensions left. */
static AVX2 void qbatch_avx2(sx__qbatch *b, const float *const *vecs, size_t n, const float *bound,
                             float *out) {
  const size_t nq = b->nq, dim = b->dim;
  const int metric = b->metric;
  if (metric != SX__L2) bound = NULL;
  uint32_t redo[QB_R];
  qb_args a;
  a.ldo = n;
  a.redo = redo;
  for (size_t j0 = 0; j0 < n; j0 += QB_VB) {
    size_t nv = n - j0 < QB_VB ? n - j0 : QB_VB, nt = (nv + QB_W - 1) / QB_W;
    const float *const *v = vecs + j0;
    if (b->direct) {
      sx__batch_plain_avx2(metric, b->qs, b->qnorms, nq, v, nv, dim, out + j0, n);
      continue;
    }
    int want_sq = metric != SX__IP;
    if (want_sq) memset(b->vx, 0, nt * QB_W * sizeof(float));
    if (bound) memset(b->done, 0, (nq + QB_R - 1) / QB_R * (QB_VB / QB_W));
    size_t count = 0;
    for (size_t k0 = 0, kb = 0;; k0 += QB_K, kb++) {
      size_t kc = dim - k0 < QB_K ? dim - k0 : QB_K;
      int last = k0 + QB_K >= dim;
      pack_block(v, nv, k0, kc, b->mu, b->vt, want_sq ? b->vx : NULL);
      if (last && metric == SX__COSINE)
        for (size_t j = 0; j < nt * QB_W; j++) {
          float s = b->vx[j];
          b->vx[j] = s > 0.0f ? 1.0f / sqrtf(s) : 0.0f;
        }
      a.kc = kc;
      a.first = k0 == 0;
      a.metric = last ? metric : -1;
      for (size_t i0 = 0; i0 < nq; i0 += QB_R) {
        size_t r = nq - i0 < QB_R ? nq - i0 : QB_R;
        uint8_t *done = bound ? b->done + i0 / QB_R * (QB_VB / QB_W) : NULL;
        if (b->repack && i0 % QB_QC == 0)
          pack_queries(b, i0, nq - i0 < QB_QC ? nq - i0 : QB_QC, k0, kc, kc, b->qp);
        a.qp = b->repack ? b->qp + i0 % QB_QC * kc : b->qp + i0 * dim + k0 * QB_R;
        a.qx = b->qx + i0;
        for (size_t t = 0; t < nt; t++) {
          if (done && done[t]) continue;
          size_t lanes = nv - t * QB_W < QB_W ? nv - t * QB_W : QB_W;
          a.full = lanes == QB_W;
          lane_masks(lanes, &a.m0, &a.m1);
          a.vt = b->vt + t * QB_W * kc;
          a.ob = out + i0 * n + j0 + t * QB_W;
          if (last && metric != SX__IP) {
            a.vx0 = _mm256_loadu_ps(b->vx + t * QB_W);
            a.vx1 = _mm256_loadu_ps(b->vx + t * QB_W + 8);
          }
          micro_table[r](&a);
          if (!last) {
            if (done && tile_beyond(a.ob, n, r, b->qpre + kb * nq + i0, b->vx + t * QB_W,
                                    bound + i0, b->eps, a.full, a.m0, a.m1)) {
              done[t] = 1;
              for (size_t i = 0; i < r; i++)
                for (size_t l = 0; l < lanes; l++) a.ob[i * n + l] = INFINITY;
            }
            continue;
          }
          if (metric != SX__L2) continue;
          for (size_t i = 0; i < r; i++)
            for (uint32_t m = redo[i]; m; m &= m - 1) {
              size_t j = t * QB_W + (size_t)__builtin_ctz(m);
              out[(i0 + i) * n + j0 + j] = sx__raw_l2_avx2(b->qs + (i0 + i) * dim, v[j], dim);
              count++;
            }
        }
      }
      if (last) break;
    }
    if (count * 4 > nq * nv) b->direct = 1;
  }
}

/* The packed queries, shift and per-query values; 0 on out of memory. */
static int prepare_avx2(sx__qbatch *b) {
  size_t nq = b->nq, dim = b->dim, ng = (nq + QB_R - 1) / QB_R;
  b->repack = (double)ng * QB_R * dim * sizeof(float) > QB_PACK_MAX;
  b->qp = malloc((b->repack ? (size_t)QB_QC * (dim < QB_K ? dim : QB_K) : ng * QB_R * dim) *
                 sizeof(float));
  b->qx = malloc(nq * sizeof(float));
  b->vt = aligned_alloc(64, QB_K * QB_VB * sizeof(float));
  b->vx = malloc(QB_VB * sizeof(float));
  size_t nkb = (dim + QB_K - 1) / QB_K;
  double *sum = NULL;
  if (b->metric == SX__L2) {
    b->mu = malloc(dim * sizeof(float));
    b->qpre = malloc((nkb > 1 ? nkb - 1 : 1) * nq * sizeof(float));
    b->done = malloc(ng * (QB_VB / QB_W));
    sum = calloc(dim, sizeof(double));
  }
  b->eps = (float)((8.0 * (double)dim + 64) * 0x1p-24);
  if (!b->qp || !b->qx || !b->vt || !b->vx ||
      (b->metric == SX__L2 && (!b->mu || !b->qpre || !b->done || !sum))) {
    free(sum);
    return 0;
  }
  const float *qs = b->qs;
  if (sum) {
    for (size_t i = 0; i < nq; i++)
      for (size_t k = 0; k < dim; k++) sum[k] += qs[i * dim + k];
    for (size_t k = 0; k < dim; k++) b->mu[k] = (float)(sum[k] / (double)nq);
    free(sum);
  }
  if (!b->repack) pack_queries(b, 0, nq, 0, dim, dim, b->qp);
  for (size_t q = 0; q < nq; q++) {
    if (b->metric == SX__L2) {
      double s = 0;
      for (size_t k = 0; k < dim; k++) {
        double x = qval(b, q, k);
        s += x * x;
        if ((k + 1) % QB_K == 0 && k + 1 < dim) b->qpre[((k + 1) / QB_K - 1) * nq + q] = (float)s;
      }
      b->qx[q] = (float)s;
    } else if (b->metric == SX__COSINE) {
      float qn = b->qnorms ? b->qnorms[q] : sx__norm(qs + q * dim, dim);
      b->qx[q] = qn != 0.0f ? 1.0f / qn : 0.0f;
    }
  }
  return 1;
}

#endif /* SX_X86 */

static void drop_packed(sx__qbatch *b) {
  free(b->qp);
  free(b->qx);
  free(b->vt);
  free(b->vx);
  free(b->mu);
  free(b->qpre);
  free(b->done);
  b->qp = b->qx = b->vt = b->vx = b->mu = b->qpre = NULL;
  b->done = NULL;
  b->packed = 0;
}

sx__qbatch *sx__qbatch_new(int metric, const float *qs, const float *qnorms, size_t nq,
                           size_t dim) {
  sx__qbatch *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->metric = metric;
  b->level = sx__kernel_level();
  b->qs = qs;
  b->qnorms = qnorms;
  b->nq = nq;
  b->dim = dim;
#if SX_X86
  /* Without the memory for the packed layout the plain kernel does the same work. */
  if (b->level == SX__KERNEL_AVX2 && metric_ok(metric) && nq >= SX__QBATCH_MINQ && dim > 0) {
    b->packed = 1;
    if (!prepare_avx2(b)) drop_packed(b);
  }
#endif
  return b;
}

void sx__qbatch_free(sx__qbatch *b) {
  if (!b) return;
  drop_packed(b);
  free(b);
}

int sx__qbatch_kernel(const sx__qbatch *b) {
  if (b->packed) return b->direct ? SX__QBATCH_PLAIN : SX__QBATCH_PACKED;
  return b->level == SX__KERNEL_AVX2 ? SX__QBATCH_PLAIN : SX__QBATCH_LEVEL;
}

void sx__distance_qbatch(sx__qbatch *b, const float *const *vecs, size_t n, float *out) {
  sx__distance_qbatch_within(b, vecs, n, NULL, out);
}

void sx__distance_qbatch_within(sx__qbatch *b, const float *const *vecs, size_t n,
                                const float *bound, float *out) {
#if SX_X86
  if (b->packed) {
    qbatch_avx2(b, vecs, n, bound, out);
    return;
  }
  if (b->level == SX__KERNEL_AVX2) {
    sx__batch_plain_avx2(b->metric, b->qs, b->qnorms, b->nq, vecs, n, b->dim, out, n);
    return;
  }
#endif
  sx__batch_level(b->level, b->metric, b->qs, b->qnorms, b->nq, vecs, n, b->dim, out);
}
