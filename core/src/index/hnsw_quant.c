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

void sx__hnsw_quant_query(sx__hnsw *g, const float *q) {
  double sum = 0, n2 = 0;
  float mx = 0;
  for (uint32_t i = 0; i < g->dim; i++) {
    sum += q[i];
    n2 += (double)q[i] * q[i];
    if (fabsf(q[i]) > mx) mx = fabsf(q[i]);
  }
  int32_t qmax = (int32_t)(2147483647.0 / (255.0 * g->dim));
  if (qmax > 32767) qmax = 32767;
  g->qscale = mx > 0 ? mx / (float)qmax : 0;
  float inv = mx > 0 ? (float)qmax / mx : 0;
  /* Rounded half away from zero by a truncating conversion, which vectorizes (lrintf
   * did not, and took 4% of a search). |q_i * inv| <= qmax + rounding. */
  for (uint32_t i = 0; i < g->dim; i++) {
    float t = q[i] * inv;
    int32_t v = (int32_t)(t + (t >= 0 ? 0.5f : -0.5f));
    g->qq[i] = (int16_t)(v > qmax ? qmax : v < -qmax ? -qmax : v);
  }
  g->qsum = (float)sum;
  g->qn2 = (float)n2;
  g->qn = (float)sqrt(n2);
  /* |qq_i - q_i inv| <= 1/2 (clamping moves a value by rounding only), and
   * qscale * inv is 1 within a few float roundings. */
  g->qerr = 0.5 * g->qscale * (1 + 0x1p-10) + 0x1p-20 * mx;
}

/* Lower bounds of the float32 distances of n vectors from their codes' headers
 * (offset lo, scale s, |v|^2, |v|) and integer dot products with the prepared query;
 * a loop of arithmetic only, which the compiler vectorizes. */
/* gcc vectorizes the bounds' loop once comparisons may not trap (no value changes). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_TRAPS __attribute__((optimize("no-trapping-math")))
#else
#define NO_TRAPS
#endif

static inline __attribute__((always_inline)) NO_TRAPS void bounds_of_m(
    const sx__hnsw *g, const int metric, size_t n, const float *lo_, const float *s_,
    const float *vn2_, const float *vn_, const int32_t *dot_, float *lb) {
  const double sd = sqrt((double)g->dim), qn = g->qn, qn2 = g->qn2, qsum = g->qsum;
  const double qerr = g->qerr, qscale = g->qscale, smax = 255.0 * g->dim;
  /* The float32 kernels' rounding: within (2 dim + 64) 2^-23 of (|q| + |v|)^2 (l2),
   * of |q| |v| (ip), of 1 (cosine): over twice a sequential sum's worst case. */
  const double delta = (2.0 * g->dim + 64) * 0x1p-23;
  for (size_t i = 0; i < n; i++) {
    double lo = lo_[i], s = s_[i], vn2 = vn2_[i], vn = vn_[i], dot = dot_[i];
    double alo = fabs(lo);
    /* |v_i - (lo + s c_i)| <= s / 2, widened for the float offset and scale. */
    double rho = (s * (0.5 + 0x1p-12) + 0x1p-20 * alo) * sd;
    /* The query's side: |s sum (qscale qq_i - q_i) c_i| <= qerr s sum c_i, and
     * s |c| = |v^ - lo| <= |v| + rho + |lo| sqrt(dim). */
    double e1 = smax * s, e2 = sd * (vn + rho + alo * sd);
    double eq = qerr * (e1 < e2 ? e1 : e2);
    double t1 = lo * qsum, t2 = s * qscale * dot;
    double ip = t1 + t2;
    /* q.v lies within ip +- e: the code's error, the query's, the float sums (qsum is
     * a float of a double sum; the norms and the header are floats). */
    double e = qn * rho + eq + 0x1p-20 * (fabs(t1) + fabs(t2)) + alo * 0x1p-40 * sd * qn;
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

/* Lower bounds of the float32 distances of n vectors from their codes' headers
 * (offset lo, scale s, |v|^2, |v|) and integer dot products with the prepared query:
 * arithmetic only, which the compiler vectorizes, one loop per metric. */
NO_TRAPS static void bounds_of(const sx__hnsw *g, size_t n, const float *lo, const float *s,
                               const float *vn2, const float *vn, const int32_t *dot, float *lb) {
  if (g->metric == SX__L2)
    bounds_of_m(g, SX__L2, n, lo, s, vn2, vn, dot, lb);
  else if (g->metric == SX__IP)
    bounds_of_m(g, SX__IP, n, lo, s, vn2, vn, dot, lb);
  else
    bounds_of_m(g, SX__COSINE, n, lo, s, vn2, vn, dot, lb);
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
  for (size_t at = 0; at < n; at += CHUNK) {
    size_t m = n - at < CHUNK ? n - at : CHUNK;
    for (size_t i = 0; i < m; i++) {
      if (at + i + 4 < n) prefetch_code_all(g, slots[at + i + 4]);
      const uint8_t *rec;
      int rc = code_of(g, slots[at + i], &rec, err);
      if (rc) return rc;
      float h[4];
      memcpy(h, rec, sizeof h);
      if (!code_header_ok(h))
        return sx__err_set(err, SX_CORRUPT, "HNSW code of slot %u has a bad header", slots[at + i]);
      lo[i] = h[0];
      s[i] = h[1];
      vn2[i] = h[2];
      vn[i] = h[3];
      dot[i] = g->qdot(g->qq, rec + 16, g->dim);
    }
    bounds_of(g, m, lo, s, vn2, vn, dot, lb + at);
  }
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
