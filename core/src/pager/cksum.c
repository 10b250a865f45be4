/*
 * cksum.c: the page checksum of P (pager_int.h, "Page checksums"), the layout of P's
 * pages and checksum pages, and the WAL's running checksum over long runs. CRC32C
 * (Castagnoli), with the SSE4.2 instruction when the CPU has it (chosen once, at
 * first use) and a table otherwise; the WAL checksum with AVX-512 when the CPU has
 * it. Each gives the same values either way.
 */
#include "pager/pager_int.h"

#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include <nmmintrin.h>
#define SX_CRC_X86 1
#else
#define SX_CRC_X86 0
#endif

/* ---- CRC32C ----------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;   /* the CPU has SSE4.2 */
static int crc_vpcl; /* and AVX-512 carry-less multiplication (VPCLMULQDQ) */
static int crc_mode; /* tests: 0 the fastest the CPU has, 1 no VPCLMULQDQ, 2 the table */

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#if SX_CRC_X86
  __builtin_cpu_init();
  crc_hw = __builtin_cpu_supports("sse4.2") != 0;
  crc_vpcl = crc_hw && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("vpclmulqdq");
#endif
}

/* The raw register update (no pre- or post-inversion), as the crc32 instruction
 * does it: slicing by 8 bytes. */
static uint32_t crc_sw(uint32_t c, const uint8_t *d, size_t n) {
  for (; n >= 8; d += 8, n -= 8) {
    uint64_t x;
    memcpy(&x, d, 8);
    x ^= c;
    c = crc_table[7][x & 0xff] ^ crc_table[6][(x >> 8) & 0xff] ^ crc_table[5][(x >> 16) & 0xff] ^
        crc_table[4][(x >> 24) & 0xff] ^ crc_table[3][(x >> 32) & 0xff] ^
        crc_table[2][(x >> 40) & 0xff] ^ crc_table[1][(x >> 48) & 0xff] ^ crc_table[0][x >> 56];
  }
  for (; n; d++, n--) c = crc_table[0][(c ^ *d) & 0xff] ^ (c >> 8);
  return c;
}

#if SX_CRC_X86
__attribute__((target("sse4.2"))) static uint32_t crc_hw_upd(uint32_t c, const uint8_t *d,
                                                             size_t n) {
  uint64_t c64 = c;
  for (; n >= 8; d += 8, n -= 8) {
    uint64_t x;
    memcpy(&x, d, 8);
    c64 = _mm_crc32_u64(c64, x);
  }
  c = (uint32_t)c64;
  for (; n; d++, n--) c = _mm_crc32_u8(c, *d);
  return c;
}

/* Four lanes at once (the instruction's latency is three cycles, its throughput one):
 * lane i runs over bytes [i*q, (i+1)*q), q a multiple of 8. */
__attribute__((target("sse4.2"))) static void crc_hw4(const uint8_t *d, size_t q, uint32_t c[4]) {
  uint64_t a = c[0], b = c[1], e = c[2], f = c[3];
  for (size_t i = 0; i < q; i += 8) {
    uint64_t x0, x1, x2, x3;
    memcpy(&x0, d + i, 8);
    memcpy(&x1, d + q + i, 8);
    memcpy(&x2, d + 2 * q + i, 8);
    memcpy(&x3, d + 3 * q + i, 8);
    a = _mm_crc32_u64(a, x0);
    b = _mm_crc32_u64(b, x1);
    e = _mm_crc32_u64(e, x2);
    f = _mm_crc32_u64(f, x3);
  }
  c[0] = (uint32_t)a;
  c[1] = (uint32_t)b;
  c[2] = (uint32_t)e;
  c[3] = (uint32_t)f;
}

/*
 * The same four lanes by folding, 64 bytes a step with carry-less multiplication:
 * the crc32 instruction takes 8 bytes a cycle at best (one port), VPCLMULQDQ folds
 * 64. A lane's bytes are 128-bit little-endian chunks, each the bit-reflected
 * polynomial of its 16 bytes; a chunk X moves D bits further on as
 * clmul(X.lo, K1) ^ clmul(X.hi, K2) with K1 = x^(D+63), K2 = x^(D-1) mod the CRC32C
 * polynomial, each bit-reflected in 64 bits (tools' derivation: the Intel white paper
 * "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ", reflected form).
 * Each lane keeps 64 bytes in a register and folds them onto the next 64 (D = 512);
 * at the end its four chunks fold onto the last (D = 384, 256, 128) and the crc32
 * instruction reduces those 16 bytes. The starting value is XORed into a lane's first
 * four bytes, as the instruction would. q: a multiple of 64.
 */
#define K_FOLD(k1, k2) _mm_set_epi64x((long long)(k2), (long long)(k1))
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) static __m128i fold128(__m128i x,
                                                                                   __m128i k) {
  return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) static void crc_vpcl4(const uint8_t *d,
                                                                                  size_t q,
                                                                                  uint32_t c[4]) {
  const __m512i k512 = _mm512_broadcast_i32x4(K_FOLD(0x1c19243b00000000ull, 0x75bba45b00000000ull));
  __m512i acc[4];
  for (int l = 0; l < 4; l++)
    acc[l] = _mm512_xor_si512(_mm512_loadu_si512(d + l * q),
                              _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)c[l])));
  for (size_t i = 64; i < q; i += 64)
    for (int l = 0; l < 4; l++) {
      __m512i lo = _mm512_clmulepi64_epi128(acc[l], k512, 0x00),
              hi = _mm512_clmulepi64_epi128(acc[l], k512, 0x11);
      acc[l] = _mm512_ternarylogic_epi64(lo, hi, _mm512_loadu_si512(d + l * q + i), 0x96);
    }
  const __m128i k384 = K_FOLD(0xa46ef4aa00000000ull, 0x6051243f00000000ull),
                k256 = K_FOLD(0x33ccbbbc00000000ull, 0xa2158b3400000000ull),
                k128 = K_FOLD(0x3743f7bd00000000ull, 0x3171d43000000000ull);
  for (int l = 0; l < 4; l++) {
    __m128i x = _mm_xor_si128(fold128(_mm512_extracti32x4_epi32(acc[l], 0), k384),
                              fold128(_mm512_extracti32x4_epi32(acc[l], 1), k256));
    x = _mm_xor_si128(x, fold128(_mm512_extracti32x4_epi32(acc[l], 2), k128));
    x = _mm_xor_si128(x, _mm512_extracti32x4_epi32(acc[l], 3));
    uint64_t r = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    c[l] = (uint32_t)_mm_crc32_u64(r, (uint64_t)_mm_extract_epi64(x, 1));
  }
}
#endif

static uint32_t crc_upd(uint32_t c, const uint8_t *d, size_t n) {
  pthread_once(&crc_once, crc_init);
#if SX_CRC_X86
  if (crc_hw && crc_mode < 2) return crc_hw_upd(c, d, n);
#endif
  return crc_sw(c, d, n);
}

uint32_t sx__crc32c(uint32_t crc, const void *data, size_t n) {
  return ~crc_upd(~crc, data, n);
}

void sx__crc32c_mode_for_test(int mode) {
  pthread_once(&crc_once, crc_init);
  crc_mode = mode;
}

/* ---- the page checksum --------------------------------------------------------- */

/* The page's four quarters each get a CRC32C (four independent chains run at the
 * speed of one); the page number and the four values then go through one more. A
 * page moved to another place, or any damage within one quarter, changes it. */
uint32_t sx__page_cksum(uint32_t pgno, const uint8_t *page, uint32_t ps) {
  pthread_once(&crc_once, crc_init);
  size_t q = ps / 4;
  uint32_t c[4] = {~0u, ~0u, ~0u, ~0u};
#if SX_CRC_X86
  if (crc_vpcl && crc_mode == 0)
    crc_vpcl4(page, q, c);
  else if (crc_hw && crc_mode < 2)
    crc_hw4(page, q, c);
  else
#endif
    for (int i = 0; i < 4; i++) c[i] = crc_sw(c[i], page + i * q, q);
  uint8_t tail[20];
  sx__wr32(tail, pgno);
  for (int i = 0; i < 4; i++) sx__wr32(tail + 4 + 4 * i, ~c[i]);
  return ~crc_upd(~0u, tail, sizeof tail);
}

/* ---- the WAL checksum over long runs ---------------------------------------------- */

/*
 * sx__cksum's step is linear: with (x, y) the two words of a 16-byte block,
 *   a' = a + b + x,   b' = a + 2b + x + y,
 * that is s' = M s + (x, x + y) with M = [[1, 1], [1, 2]], all modulo 2^64. So after
 * m blocks, s = M^m s0 + sum over blocks i of M^(m-1-i) (x_i, x_i + y_i): each word
 * enters with a constant weight taken from M^j = [[p_j, q_j], [q_j, r_j]], and the
 * sums are independent products that SIMD lanes add up in any order (a chain of
 * dependent adds, 4 cycles a block, was 9% of a one-vector commit). Runs go CK_RUN
 * blocks at a time; wa/wb hold the weights of a run's blocks in memory order, x and y
 * interleaved as they lie: block k of a run of m blocks uses entry CK_RUN - m + k.
 */
#define CK_RUN 256
static uint64_t ck_p[CK_RUN + 1], ck_q[CK_RUN + 1], ck_r[CK_RUN + 1];
static uint64_t ck_wa[2 * CK_RUN], ck_wb[2 * CK_RUN];
static pthread_once_t ck_once = PTHREAD_ONCE_INIT;
static int ck_simd; /* the CPU has AVX-512F and DQ */
static int ck_portable;

static void ck_init(void) {
  ck_p[0] = 1, ck_q[0] = 0, ck_r[0] = 1;
  for (int j = 0; j < CK_RUN; j++) { /* M^(j+1) = M^j M */
    ck_p[j + 1] = ck_p[j] + ck_q[j];
    ck_q[j + 1] = ck_p[j] + 2 * ck_q[j];
    ck_r[j + 1] = ck_q[j] + 2 * ck_r[j];
  }
  for (int k = 0; k < CK_RUN; k++) {
    int j = CK_RUN - 1 - k; /* blocks after this one in a full run */
    ck_wa[2 * k] = ck_p[j] + ck_q[j], ck_wa[2 * k + 1] = ck_q[j];
    ck_wb[2 * k] = ck_q[j] + ck_r[j], ck_wb[2 * k + 1] = ck_r[j];
  }
#if SX_CRC_X86
  __builtin_cpu_init();
  ck_simd = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#endif
}

#if SX_CRC_X86
/* The weighted sums of m blocks (m % 4 == 0) at d: *sa for a, *sb for b. */
__attribute__((target("avx512f,avx512dq"))) static void ck_run_avx512(const uint8_t *d, size_t m,
                                                                      uint64_t *sa, uint64_t *sb) {
  const uint64_t *wa = ck_wa + 2 * (CK_RUN - m), *wb = ck_wb + 2 * (CK_RUN - m);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, b0 = a0, b1 = a0;
  size_t k = 0;
  for (; k + 8 <= m; k += 8) { /* 8 blocks: two registers of x, y pairs */
    __m512i z0 = _mm512_loadu_si512(d + 16 * k), z1 = _mm512_loadu_si512(d + 16 * k + 64);
    a0 = _mm512_add_epi64(a0, _mm512_mullo_epi64(z0, _mm512_loadu_si512(wa + 2 * k)));
    a1 = _mm512_add_epi64(a1, _mm512_mullo_epi64(z1, _mm512_loadu_si512(wa + 2 * k + 8)));
    b0 = _mm512_add_epi64(b0, _mm512_mullo_epi64(z0, _mm512_loadu_si512(wb + 2 * k)));
    b1 = _mm512_add_epi64(b1, _mm512_mullo_epi64(z1, _mm512_loadu_si512(wb + 2 * k + 8)));
  }
  if (k < m) { /* 4 blocks */
    __m512i z0 = _mm512_loadu_si512(d + 16 * k);
    a0 = _mm512_add_epi64(a0, _mm512_mullo_epi64(z0, _mm512_loadu_si512(wa + 2 * k)));
    b0 = _mm512_add_epi64(b0, _mm512_mullo_epi64(z0, _mm512_loadu_si512(wb + 2 * k)));
  }
  /* The lanes' sum modulo 2^64 (GCC's _mm512_reduce_add_epi64 adds signed lanes,
   * which may overflow). */
  uint64_t la[8], lb[8];
  _mm512_storeu_si512(la, _mm512_add_epi64(a0, a1));
  _mm512_storeu_si512(lb, _mm512_add_epi64(b0, b1));
  *sa = *sb = 0;
  for (int i = 0; i < 8; i++) *sa += la[i], *sb += lb[i];
}
#endif

void sx__cksum_long(const uint8_t *d, size_t n, uint64_t *s0, uint64_t *s1) {
  pthread_once(&ck_once, ck_init);
#if SX_CRC_X86
  if (ck_simd && !ck_portable) {
    size_t blocks = n / 16, done = 0;
    uint64_t a = *s0, b = *s1;
    while (blocks - done >= 4) {
      size_t m = blocks - done < CK_RUN ? (blocks - done) & ~(size_t)3 : CK_RUN;
      uint64_t sa, sb;
      ck_run_avx512(d + 16 * done, m, &sa, &sb);
      uint64_t na = ck_p[m] * a + ck_q[m] * b + sa;
      b = ck_q[m] * a + ck_r[m] * b + sb;
      a = na;
      done += m;
    }
    *s0 = a;
    *s1 = b;
    sx__cksum(d + 16 * done, n - 16 * done, s0, s1);
    return;
  }
#endif
  sx__cksum(d, n, s0, s1);
}

void sx__cksum_portable_for_test(int on) {
  pthread_once(&ck_once, ck_init);
  ck_portable = on;
}

/* ---- the layout of P ------------------------------------------------------------- */

uint64_t sx__pfile_page(uint32_t ps, uint32_t pgno) {
  uint32_t k = ps / 4;
  return pgno == 0 ? 0 : (uint64_t)pgno + pgno / k + 1;
}

uint64_t sx__pfile_cksum_page(uint32_t ps, uint32_t pgno) {
  uint64_t k = ps / 4, g = pgno / k;
  return g == 0 ? 1 : g * (k + 1);
}

uint64_t sx__pfile_pages(uint32_t ps, uint32_t npages) {
  /* Group 0's checksum page (file page 1) follows page 0: a database of one page
   * still has two file pages. Every later group's checksum page comes first. */
  return npages == 0 ? 0 : npages == 1 ? 2 : sx__pfile_page(ps, npages - 1) + 1;
}

void sx__pfile_seal(uint8_t *file, uint64_t len, uint32_t ps) {
  uint32_t k = ps / 4;
  for (uint64_t pg = 0;; pg++) {
    uint64_t at = sx__pfile_page(ps, (uint32_t)pg), cat = sx__pfile_cksum_page(ps, (uint32_t)pg);
    if (pg > UINT32_MAX - 1 || (at + 1) * ps > len || (cat + 1) * ps > len) break;
    sx__wr32(file + cat * ps + (pg % k) * 4, sx__page_cksum((uint32_t)pg, file + at * ps, ps));
  }
}

/* ---- new files in P's format ------------------------------------------------------ */

int sx__pimage_begin(sx__pimage *im, sx__pager *p, sx__file *f, sx_error *err) {
  im->p = p;
  im->f = f;
  im->next = 0;
  im->ck = p->cksum ? calloc(1, p->ps) : NULL;
  if (p->cksum && !im->ck) return sx__err_set(err, SX_NOMEM, "out of memory");
  return SX_OK;
}

/* Writes the checksum page of the group of page pgno. */
static int pimage_flush(sx__pimage *im, uint32_t pgno, sx_error *err) {
  uint32_t ps = im->p->ps;
  int rc = sx__file_write(im->f, im->ck, ps, sx__pfile_cksum_page(ps, pgno) * ps, err);
  memset(im->ck, 0, ps);
  return rc;
}

int sx__pimage_put(sx__pimage *im, uint32_t first, const uint8_t *pages, uint32_t n,
                   sx_error *err) {
  uint32_t ps = im->p->ps, k = ps / 4;
  if (first != im->next)
    return sx__err_set(err, SX_MISUSE, "page %u written out of order (expected %u)", first,
                       im->next);
  if (!im->p->cksum) {
    im->next += n;
    return sx__file_write(im->f, pages, (size_t)n * ps, (uint64_t)first * ps, err);
  }
  int rc = SX_OK;
  for (uint32_t i = 0; i < n && !rc;) {
    /* A run within one group is contiguous in the file (page 0 is alone: group 0's
     * checksum page follows it). */
    uint32_t pg = first + i, m = pg == 0 ? 1 : k - pg % k;
    if (m > n - i) m = n - i;
    for (uint32_t j = 0; j < m; j++)
      sx__wr32(im->ck + ((pg + j) % k) * 4,
               sx__page_cksum(pg + j, pages + (size_t)(i + j) * ps, ps));
    rc = sx__file_write(im->f, pages + (size_t)i * ps, (size_t)m * ps, sx__pfile_page(ps, pg) * ps,
                        err);
    if (!rc && (pg + m) % k == 0) rc = pimage_flush(im, pg, err);
    i += m;
  }
  im->next += n;
  return rc;
}

int sx__pimage_end(sx__pimage *im, int failed, sx_error *err) {
  int rc = SX_OK;
  if (!failed && im->p->cksum && im->next % (im->p->ps / 4) != 0)
    rc = pimage_flush(im, im->next - 1, err);
  free(im->ck);
  im->ck = NULL;
  return rc;
}

uint32_t sx__pfile_npages(const sx__pager *p, uint64_t fpages) {
  uint64_t n = fpages;
  if (p->cksum && fpages > 1) n -= 1 + (fpages - 1) / (p->ps / 4 + 1);
  if (n > UINT32_MAX) n = UINT32_MAX;
  return n == 0 ? 1 : (uint32_t)n;
}
