/*
 * hnsw_quant.c: the int8 codes of a quantized HNSW graph (SX_QUANTIZATION_INT8).
 *
 * Why this code: a collection grows by incremental inserts and never retrains, so a
 * code must depend on its own vector only. Each vector gets a per-vector affine
 * code: its offset lo = min v_i and scale s = (max v_i - lo) / 255, then
 * c_i = round((v_i - lo) / s), 8 bits per component, and beside them its exact |v|^2
 * and |v|. A record is 16 header bytes (float lo, s, |v|^2, |v|) and dim codes,
 * padded to 16 bytes; records are packed so that none straddles a page (the walk
 * reads each in place, and the hardware prefetcher follows it within its page). A
 * global per-dimension code (trained ranges) would code skewed data tighter, but a
 * range learnt from the first vectors goes stale as others arrive, and retraining
 * rewrites every code in one commit.
 *
 * Searching, the query is scaled to int16 (its own scale qscale = max |q_i| / qmax,
 * qmax chosen so that dim * 255 * qmax < 2^31: the integer dot product never
 * overflows), and q.v ~ lo sum q_i + s qscale sum qq_i c_i, one integer dot product
 * per code (sx__qdot: AVX512-VNNI where present). L2 is |q|^2 + |v|^2 - 2 q.v with the
 * exact norms, cosine divides by the exact |q| |v|. The walk's ef results are then
 * measured again against the float32 vectors (hnsw_search.c), so what a search
 * returns, and in what order, is exact; the codes only steer the walk. Inserts
 * measure float32 vectors, so the graph is the one an unquantized collection builds.
 *
 * Exact searches read the codes first (sx__hnsw_bounds, called by the collection's
 * scan): from a code, a lower bound of the float32 distance the scan's kernel would
 * measure. With v^ the decoded vector, |v_i - v^_i| <= s / 2, so |v - v^| <= rho =
 * s sqrt(dim) / 2; the int16 query adds at most qerr = qscale / 2 per component, so
 * |q.v - ip| <= |q| rho + qerr s sum c_i (sum c_i bounded both by 255 dim and, through
 * |v|, by Cauchy-Schwarz). Each term is widened for float rounding (header, sums,
 * the kernel's own: (2 dim + 64) 2^-23 relative), the bound computed in double and
 * rounded down. The scan measures only vectors whose bound is within its k best, so
 * it returns what a scan of every vector returns. On Fashion-MNIST (784-d) about a
 * quarter of the bytes are read (the codes, and the vectors near the top k).
 *
 * Codes are written by sx__hnsw_insert_batch, in the commit that stores the vectors,
 * for every slot it links (a reused slot's code is overwritten then; a free slot's
 * stale code is never read, as no list links to it). sx__hnsw_check encodes every
 * vector in the graph again and compares.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

static uint32_t record_bytes(uint32_t dim) {
  return (16 + dim + 15) & ~15u;
}

int sx__hnsw_quant_fits(uint32_t dim, uint32_t ps) {
  return dim <= SX_DIM_MAX && record_bytes(dim) <= ps;
}

int sx__hnsw_quant_open(sx__hnsw *g, const uint8_t *o, sx_error *err) {
  uint32_t quant = sx__rd32(o + g->L.quant_off);
  if (quant > SX_QUANTIZATION_INT8 || (quant && !sx__hnsw_quant_fits(g->dim, g->ps)))
    return sx__err_set(err, SX_CORRUPT, "HNSW graph of page %u has a bad quantization (%u)",
                       g->L.owner, quant);
  g->quant = (int)quant;
  memset(&g->codes, 0, sizeof g->codes);
  g->codes.pa_off = g->L.codes_off;
  if (!quant) return SX_OK;
  g->cb = record_bytes(g->dim);
  g->cpp = g->ps / g->cb;
  g->cpp_m = g->cpp > 1 ? UINT64_MAX / g->cpp + 1 : 0;
  g->qdot = sx__qdot();
  g->qq = calloc(((size_t)g->dim + 31) & ~(size_t)31, sizeof *g->qq);
  return g->qq ? SX_OK : sx__err_set(err, SX_NOMEM, "out of memory");
}

/* The record of vector x (dim floats, finite) into rec (cb bytes). */
static void encode(const float *x, uint32_t dim, uint32_t cb, uint8_t *rec) {
  double lo = x[0], hi = x[0], n2 = 0;
  for (uint32_t i = 0; i < dim; i++) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    n2 += (double)x[i] * x[i];
  }
  if (n2 > FLT_MAX) n2 = FLT_MAX;
  /* Codes from the float offset and scale the search reads back. */
  float h[4] = {(float)lo, (float)((hi - lo) / 255), (float)n2, (float)sqrt(n2)};
  memset(rec, 0, cb);
  memcpy(rec, h, sizeof h);
  for (uint32_t i = 0; i < dim && h[1] > 0; i++) {
    double c = floor(((double)x[i] - h[0]) / h[1] + 0.5);
    rec[16 + i] = (uint8_t)(c >= 255 ? 255 : c > 0 ? c : 0); /* NaN: 0, never converted */
  }
}

int sx__hnsw_quant_put(sx__hnsw *g, const uint64_t *slots, size_t n, sx_error *err) {
  for (size_t i = 0; i < n; i++) {
    int rc = sx__hnsw_read_vec(g, slots[i], g->vbuf, err);
    uint32_t r, leaf = code_leaf(g, (uint32_t)slots[i], &r);
    uint8_t *lp;
    if (!rc) rc = sx__hnsw_lc_getw(g, &g->codes, leaf, &lp, err);
    if (rc) return rc;
    encode(g->vbuf, g->dim, g->cb, lp + (size_t)r * g->cb);
  }
  return SX_OK;
}

/* Scales q (dim floats) to int16 into qq (dim values) and fills its side. */
static void query_prep(uint32_t dim, const float *q, int16_t *qq, sx__hnsw_qside *o) {
  double sum = 0, n2 = 0;
  float mx = 0;
  for (uint32_t i = 0; i < dim; i++) {
    sum += q[i];
    n2 += (double)q[i] * q[i];
    if (fabsf(q[i]) > mx) mx = fabsf(q[i]);
  }
  int32_t qmax = (int32_t)(2147483647.0 / (255.0 * dim));
  if (qmax > 32767) qmax = 32767;
  o->qscale = mx > 0 ? mx / (float)qmax : 0;
  float inv = mx > 0 ? (float)qmax / mx : 0;
  /* Rounded half away from zero by a truncating conversion, which vectorizes (lrintf
   * did not, and took 4% of a search). |q_i * inv| <= qmax + rounding. */
  for (uint32_t i = 0; i < dim; i++) {
    float t = q[i] * inv;
    int32_t v = (int32_t)(t + (t >= 0 ? 0.5f : -0.5f));
    qq[i] = (int16_t)(v > qmax ? qmax : v < -qmax ? -qmax : v);
  }
  o->qsum = (float)sum;
  o->qn2 = (float)n2;
  o->qn = (float)sqrt(n2);
  /* |qq_i - q_i inv| <= 1/2 (clamping moves a value by rounding only), and
   * qscale * inv is 1 within a few float roundings. */
  o->qerr = 0.5 * o->qscale * (1 + 0x1p-10) + 0x1p-20 * mx;
}

void sx__hnsw_quant_query(sx__hnsw *g, const float *q) {
  query_prep(g->dim, q, g->qq, &g->qs);
}

/* Lower bounds of the float32 distances of n vectors from their codes' headers
 * (offset lo, scale s, |v|^2, |v|) and integer dot products with a prepared query:
 * loops of arithmetic only, which the compiler vectorizes. What depends on a vector
 * alone is computed once (vside_of), as a batch's queries share it. */
/* gcc vectorizes the bounds' loop once comparisons may not trap (no value changes). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_TRAPS __attribute__((optimize("no-trapping-math")))
#else
#define NO_TRAPS
#endif

/* Per vector: its header widened to double, |lo|, the code's error radius rho and
 * the bound on s |c| (eqv) that the query's rounding is multiplied by. */
typedef struct vside {
  double *lo, *s, *vn2, *vn, *alo, *rho, *eqv;
} vside;

NO_TRAPS static void vside_of(uint32_t dim, size_t n, const float *lo_, const float *s_,
                              const float *vn2_, const float *vn_, const vside *V) {
  const double sd = sqrt((double)dim), smax = 255.0 * dim;
  for (size_t i = 0; i < n; i++) {
    double lo = lo_[i], s = s_[i], vn = vn_[i];
    double alo = fabs(lo);
    /* |v_i - (lo + s c_i)| <= s / 2, widened for the float offset and scale. */
    double rho = (s * (0.5 + 0x1p-12) + 0x1p-20 * alo) * sd;
    /* The query's side: |s sum (qscale qq_i - q_i) c_i| <= qerr s sum c_i, and
     * s |c| = |v^ - lo| <= |v| + rho + |lo| sqrt(dim). */
    double e1 = smax * s, e2 = sd * (vn + rho + alo * sd);
    V->lo[i] = lo;
    V->s[i] = s;
    V->vn2[i] = vn2_[i];
    V->vn[i] = vn;
    V->alo[i] = alo;
    V->rho[i] = rho;
    V->eqv[i] = e1 < e2 ? e1 : e2;
  }
}

static inline __attribute__((always_inline)) NO_TRAPS void bounds_of_m(
    uint32_t dim, const sx__hnsw_qside *Q, const int metric, size_t n, const vside *V,
    const int32_t *dot_, float *lb) {
  const double sd = sqrt((double)dim), qn = Q->qn, qn2 = Q->qn2, qsum = Q->qsum;
  const double qerr = Q->qerr, qscale = Q->qscale, qlo = 0x1p-40 * sd * qn;
  /* The float32 kernels' rounding: within (2 dim + 64) 2^-23 of (|q| + |v|)^2 (l2),
   * of |q| |v| (ip), of 1 (cosine): over twice a sequential sum's worst case. */
  const double delta = (2.0 * dim + 64) * 0x1p-23;
  for (size_t i = 0; i < n; i++) {
    double s = V->s[i], vn2 = V->vn2[i], vn = V->vn[i], dot = dot_[i];
    double t1 = V->lo[i] * qsum, t2 = s * qscale * dot;
    double ip = t1 + t2;
    /* q.v lies within ip +- e: the code's error, the query's, the float sums (qsum is
     * a float of a double sum; the norms and the header are floats). */
    double e =
        qn * V->rho[i] + qerr * V->eqv[i] + 0x1p-20 * (fabs(t1) + fabs(t2)) + V->alo[i] * qlo;
    double b;
    if (metric == SX__L2) {
      b = qn2 + vn2 - 2 * (ip + e) - delta * (qn + vn) * (qn + vn) - 0x1p-20 * (qn2 + vn2);
    } else if (metric == SX__IP) {
      b = 1 - (ip + e) - delta * qn * vn - 0x1p-22;
    } else {
      double den = qn * vn;
      b = den > 0 ? 1 - (ip + e) / (den > 0 ? den : 1) - delta - 0x1p-22 : -HUGE_VAL;
    }
    /* Rounded to a float no larger than b; NaN or infinite: no bound. */
    double x = b - 0x1p-22 * fabs(b) - 0x1p-126;
    x = x < FLT_MAX ? x : FLT_MAX;
    lb[i] = x >= -DBL_MAX ? (float)x : -INFINITY;
  }
}

/* One loop per metric; a second copy for AVX2 (four doubles a step instead of two,
 * without FMA: the same roundings, so the same bounds). */
#define BOUNDS_OF(name, attr)                                                                 \
  attr NO_TRAPS static void name(int metric, uint32_t dim, const sx__hnsw_qside *Q, size_t n, \
                                 const vside *V, const int32_t *dot, float *lb) {             \
    if (metric == SX__L2)                                                                     \
      bounds_of_m(dim, Q, SX__L2, n, V, dot, lb);                                             \
    else if (metric == SX__IP)                                                                \
      bounds_of_m(dim, Q, SX__IP, n, V, dot, lb);                                             \
    else                                                                                      \
      bounds_of_m(dim, Q, SX__COSINE, n, V, dot, lb);                                         \
  }
BOUNDS_OF(bounds_of_base, )
#if defined(__x86_64__) || defined(__i386__)
BOUNDS_OF(bounds_of_avx2, __attribute__((target("avx2"))))
#endif

static void bounds_of(const sx__hnsw *g, const sx__hnsw_qside *Q, size_t n, const vside *V,
                      const int32_t *dot, float *lb) {
#if defined(__x86_64__) || defined(__i386__)
  if (sx__kernel_level() >= SX__KERNEL_AVX2) {
    bounds_of_avx2(g->metric, g->dim, Q, n, V, dot, lb);
    return;
  }
#endif
  bounds_of_base(g->metric, g->dim, Q, n, V, dot, lb);
}

/* A code's header (offset lo, scale s, |v|^2, |v|) into its arrays; SX_CORRUPT when
 * no encoding writes it. */
static int header_of(const uint8_t *rec, uint32_t slot, float *lo, float *s, float *vn2, float *vn,
                     sx_error *err) {
  float h[4];
  memcpy(h, rec, sizeof h);
  if (!code_header_ok(h))
    return sx__err_set(err, SX_CORRUPT, "HNSW code of slot %u has a bad header", slot);
  *lo = h[0];
  *s = h[1];
  *vn2 = h[2];
  *vn = h[3];
  return SX_OK;
}

int sx__hnsw_bounds(sx__hnsw *g, const float *q, const uint32_t *slots, size_t n, float *lb,
                    sx_error *err) {
  if (!g->quant) {
    for (size_t i = 0; i < n; i++) lb[i] = -INFINITY;
    return SX_OK;
  }
  if (q) sx__hnsw_quant_query(g, q);
  enum { CHUNK = 64 };
  float lo[CHUNK], s[CHUNK], vn2[CHUNK], vn[CHUNK];
  int32_t dot[CHUNK];
  double vd[7][CHUNK];
  const vside V = {vd[0], vd[1], vd[2], vd[3], vd[4], vd[5], vd[6]};
  for (size_t at = 0; at < n; at += CHUNK) {
    size_t m = n - at < CHUNK ? n - at : CHUNK;
    for (size_t i = 0; i < m; i++) {
      if (at + i + 4 < n) prefetch_code_all(g, slots[at + i + 4]);
      const uint8_t *rec;
      int rc = code_of(g, slots[at + i], &rec, err);
      if (!rc) rc = header_of(rec, slots[at + i], &lo[i], &s[i], &vn2[i], &vn[i], err);
      if (rc) return rc;
      dot[i] = g->qdot(g->qq, rec + 16, g->dim);
    }
    vside_of(g->dim, m, lo, s, vn2, vn, &V);
    bounds_of(g, &g->qs, m, &V, dot, lb + at);
  }
  return SX_OK;
}

struct sx__hnsw_cbatch {
  size_t nq, cap;
  sx__hnsw_qside *qs; /* per query */
  sx__qdbatch *qd;    /* the queries' int16 values, for sx__qdot_batch */
  const uint8_t **cp; /* scratch, per code of a call: its dim codes */
  float *hdr;         /* scratch: lo, s, |v|^2, |v| of each code, cap apart */
  double *vd;         /* scratch: the vside arrays, cap apart */
  int32_t *dots;      /* scratch: nq x cap integer dot products */
};

sx__hnsw_cbatch *sx__hnsw_cbatch_new(const sx__hnsw *g, const float *qs, size_t nq, size_t cap) {
  sx__hnsw_cbatch *b = calloc(1, sizeof *b);
  if (!b || !g->quant) goto fail;
  size_t dim = g->dim;
  int16_t *qq = malloc((nq * dim + 1) * sizeof *qq);
  b->nq = nq;
  b->cap = cap;
  b->qs = malloc((nq + 1) * sizeof *b->qs);
  b->cp = malloc((cap + 1) * sizeof *b->cp);
  b->hdr = malloc((4 * cap + 1) * sizeof *b->hdr);
  b->vd = malloc((7 * cap + 1) * sizeof *b->vd);
  b->dots =
      cap && nq > SIZE_MAX / sizeof(int32_t) / cap ? NULL : malloc(nq * cap * sizeof *b->dots + 1);
  if (qq && b->qs)
    for (size_t i = 0; i < nq; i++) query_prep(g->dim, qs + i * dim, qq + i * dim, &b->qs[i]);
  if (qq && b->qs) b->qd = sx__qdbatch_new(qq, dim, nq, dim);
  free(qq);
  if (b->qd && b->cp && b->hdr && b->vd && b->dots) return b;
fail:
  sx__hnsw_cbatch_free(b);
  return NULL;
}

void sx__hnsw_cbatch_free(sx__hnsw_cbatch *b) {
  if (!b) return;
  sx__qdbatch_free(b->qd);
  free(b->qs);
  free(b->cp);
  free(b->hdr);
  free(b->vd);
  free(b->dots);
  free(b);
}

int sx__hnsw_bounds_batch(sx__hnsw *g, sx__hnsw_cbatch *b, const uint32_t *slots, size_t n,
                          float *lb, sx_error *err) {
  if (n > b->cap)
    return sx__err_set(err, SX_MISUSE, "%zu codes for a batch of at most %zu", n, b->cap);
  float *lo = b->hdr, *s = lo + b->cap, *vn2 = s + b->cap, *vn = vn2 + b->cap;
  for (size_t i = 0; i < n; i++) {
    if (i + 4 < n) prefetch_code_all(g, slots[i + 4]);
    const uint8_t *rec;
    int rc = code_of(g, slots[i], &rec, err);
    if (!rc) rc = header_of(rec, slots[i], &lo[i], &s[i], &vn2[i], &vn[i], err);
    if (rc) return rc;
    b->cp[i] = rec + 16;
  }
  sx__qdot_batch(b->qd, b->cp, n, b->dots);
  double *d = b->vd;
  const vside V = {d,
                   d + b->cap,
                   d + 2 * b->cap,
                   d + 3 * b->cap,
                   d + 4 * b->cap,
                   d + 5 * b->cap,
                   d + 6 * b->cap};
  vside_of(g->dim, n, lo, s, vn2, vn, &V);
  for (size_t q = 0; q < b->nq; q++) bounds_of(g, &b->qs[q], n, &V, b->dots + q * n, lb + q * n);
  return SX_OK;
}

int sx__hnsw_quant_check(sx__hnsw *g, uint64_t s, sx_error *err) {
  uint8_t *want = malloc(g->cb);
  if (!want) return sx__err_set(err, SX_NOMEM, "out of memory");
  const uint8_t *rec;
  int rc = sx__hnsw_read_vec(g, s, g->vbuf, err);
  for (uint32_t i = 0; !rc && i < g->dim; i++)
    if (!isfinite(g->vbuf[i]))
      rc = sx__err_set(err, SX_CORRUPT, "vector of slot %llu has a non-finite component at %u",
                       (unsigned long long)s, i);
  if (!rc) rc = code_of(g, (uint32_t)s, &rec, err);
  if (!rc) {
    encode(g->vbuf, g->dim, g->cb, want);
    if (memcmp(want, rec, g->cb) != 0)
      rc = sx__err_set(err, SX_CORRUPT, "HNSW code of slot %llu does not match its vector",
                       (unsigned long long)s);
  }
  free(want);
  return rc;
}
