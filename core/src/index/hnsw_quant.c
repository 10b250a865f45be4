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
