// The AVX-512 path of the model GEMM (gemm.h): 16-lane dot products, tiles of up to 4 rows
// of a x 4 rows of w in registers (1 x 8 for a single row, where the chains, not the
// loads, are what must be kept busy); the k tail by masked loads.
//
// Build convention (cpu/isa.h): headers first, compiled for the baseline; then the target
// pragma; everything after it lives in namespace kvcake::cpu::avx512, so no inline function
// of the standard library or of this project is emitted here with instructions an AVX2
// machine lacks.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>

#include "cpu/model_paths.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
// GCC 12 reports the _mm512_undefined_* idiom inside its own intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace kvcake::cpu::avx512 {

namespace {

template <int WT>
inline __m512 loadW(const void* w, int64_t i) {
  if constexpr (WT == 0) {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    if constexpr (WT == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <int WT>
inline __m512 loadWMasked(const void* w, int64_t i, __mmask16 m) {
  if constexpr (WT == 0) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
    if constexpr (WT == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// Lane j + j+8, then + j+4, then + j+2, then lane 0 + lane 1 (gemm.h's fixed tree).
inline float reduce16(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
  return _mm_cvtss_f32(s1);
}

template <int MR, int NR, int WT>
void tile(const GemmTask& t, int64_t m, int64_t n) {
  const int64_t K = t.k;
  const int64_t kFull = K & ~int64_t(15);
  const float* a[MR];
  const void* w[NR];
  for (int i = 0; i < MR; ++i) a[i] = t.a + (m + i) * t.lda;
  for (int j = 0; j < NR; ++j)
    w[j] = static_cast<const char*>(t.w) + (n + j) * K * (WT == 0 ? 4 : 2);
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kFull; k += 16) {
    __m512 av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm512_loadu_ps(a[i] + k);
    for (int j = 0; j < NR; ++j) {
      const __m512 wv = loadW<WT>(w[j], k);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], wv, acc[i][j]);
    }
  }
  if (kFull < K) {
    const __mmask16 mask = __mmask16((1u << (K - kFull)) - 1u);
    __m512 av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm512_maskz_loadu_ps(mask, a[i] + kFull);
    for (int j = 0; j < NR; ++j) {
      const __m512 wv = loadWMasked<WT>(w[j], kFull, mask);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = reduce16(acc[i][j]);
      if (t.bias) s += t.bias[n + j];
      t.out[(m + i) * t.ldo + n + j] = s;
    }
}

template <int MR, int WT>
void tileRows(const GemmTask& t, int64_t m, int64_t n, int nr) {
  switch (nr) {
    case 1: return tile<MR, 1, WT>(t, m, n);
    case 2: return tile<MR, 2, WT>(t, m, n);
    case 3: return tile<MR, 3, WT>(t, m, n);
    default: return tile<MR, 4, WT>(t, m, n);
  }
}

template <int WT>
void block(const GemmTask& t, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 == 1) {
    for (int64_t n = n0; n < n1; n += 8) {
      const int64_t nr = n1 - n < 8 ? n1 - n : 8;
      switch (nr) {
        case 8: tile<1, 8, WT>(t, m0, n); break;
        case 7: tile<1, 7, WT>(t, m0, n); break;
        case 6: tile<1, 6, WT>(t, m0, n); break;
        case 5: tile<1, 5, WT>(t, m0, n); break;
        default: tileRows<1, WT>(t, m0, n, int(nr)); break;
      }
    }
    return;
  }
  // w rows outer: a tile of w (4 rows x k) stays in L1/L2 while the rows of a pass by.
  for (int64_t n = n0; n < n1; n += 4) {
    const int nr = int(n1 - n < 4 ? n1 - n : 4);
    for (int64_t m = m0; m < m1; m += 4) {
      switch (m1 - m < 4 ? m1 - m : 4) {
        case 1: tileRows<1, WT>(t, m, n, nr); break;
        case 2: tileRows<2, WT>(t, m, n, nr); break;
        case 3: tileRows<3, WT>(t, m, n, nr); break;
        default: tileRows<4, WT>(t, m, n, nr); break;
      }
    }
  }
}

}  // namespace

void gemmBlock(const GemmTask& t, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (t.wType) {
    case 0: return block<0>(t, m0, m1, n0, n1);
    case 1: return block<1>(t, m0, m1, n0, n1);
    default: return block<2>(t, m0, m1, n0, n1);
  }
}

// The FMA peak reference for benchmarks: 24 independent chains of 512-bit FMAs (enough to
// cover the latency on every current core), no memory traffic. Returns the FLOPs done.
double fmaLoop(int64_t iters) {
  __m512 c0 = _mm512_set1_ps(float(0) * 1e-3f);
  __m512 c1 = _mm512_set1_ps(float(1) * 1e-3f);
  __m512 c2 = _mm512_set1_ps(float(2) * 1e-3f);
  __m512 c3 = _mm512_set1_ps(float(3) * 1e-3f);
  __m512 c4 = _mm512_set1_ps(float(4) * 1e-3f);
  __m512 c5 = _mm512_set1_ps(float(5) * 1e-3f);
  __m512 c6 = _mm512_set1_ps(float(6) * 1e-3f);
  __m512 c7 = _mm512_set1_ps(float(7) * 1e-3f);
  __m512 c8 = _mm512_set1_ps(float(8) * 1e-3f);
  __m512 c9 = _mm512_set1_ps(float(9) * 1e-3f);
  __m512 c10 = _mm512_set1_ps(float(10) * 1e-3f);
  __m512 c11 = _mm512_set1_ps(float(11) * 1e-3f);
  __m512 c12 = _mm512_set1_ps(float(12) * 1e-3f);
  __m512 c13 = _mm512_set1_ps(float(13) * 1e-3f);
  __m512 c14 = _mm512_set1_ps(float(14) * 1e-3f);
  __m512 c15 = _mm512_set1_ps(float(15) * 1e-3f);
  __m512 c16 = _mm512_set1_ps(float(16) * 1e-3f);
  __m512 c17 = _mm512_set1_ps(float(17) * 1e-3f);
  __m512 c18 = _mm512_set1_ps(float(18) * 1e-3f);
  __m512 c19 = _mm512_set1_ps(float(19) * 1e-3f);
  __m512 c20 = _mm512_set1_ps(float(20) * 1e-3f);
  __m512 c21 = _mm512_set1_ps(float(21) * 1e-3f);
  __m512 c22 = _mm512_set1_ps(float(22) * 1e-3f);
  __m512 c23 = _mm512_set1_ps(float(23) * 1e-3f);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  // Named registers, and an empty asm per chain so the compiler keeps each in a register
  // rather than swapping the loops and running the chains through memory.
  for (int64_t it = 0; it < iters; ++it) {
    c0 = _mm512_fmadd_ps(c0, x, y);
    c1 = _mm512_fmadd_ps(c1, x, y);
    c2 = _mm512_fmadd_ps(c2, x, y);
    c3 = _mm512_fmadd_ps(c3, x, y);
    c4 = _mm512_fmadd_ps(c4, x, y);
    c5 = _mm512_fmadd_ps(c5, x, y);
    c6 = _mm512_fmadd_ps(c6, x, y);
    c7 = _mm512_fmadd_ps(c7, x, y);
    c8 = _mm512_fmadd_ps(c8, x, y);
    c9 = _mm512_fmadd_ps(c9, x, y);
    c10 = _mm512_fmadd_ps(c10, x, y);
    c11 = _mm512_fmadd_ps(c11, x, y);
    c12 = _mm512_fmadd_ps(c12, x, y);
    c13 = _mm512_fmadd_ps(c13, x, y);
    c14 = _mm512_fmadd_ps(c14, x, y);
    c15 = _mm512_fmadd_ps(c15, x, y);
    c16 = _mm512_fmadd_ps(c16, x, y);
    c17 = _mm512_fmadd_ps(c17, x, y);
    c18 = _mm512_fmadd_ps(c18, x, y);
    c19 = _mm512_fmadd_ps(c19, x, y);
    c20 = _mm512_fmadd_ps(c20, x, y);
    c21 = _mm512_fmadd_ps(c21, x, y);
    c22 = _mm512_fmadd_ps(c22, x, y);
    c23 = _mm512_fmadd_ps(c23, x, y);
    __asm__ volatile("" : "+v"(c0));
    __asm__ volatile("" : "+v"(c1));
    __asm__ volatile("" : "+v"(c2));
    __asm__ volatile("" : "+v"(c3));
    __asm__ volatile("" : "+v"(c4));
    __asm__ volatile("" : "+v"(c5));
    __asm__ volatile("" : "+v"(c6));
    __asm__ volatile("" : "+v"(c7));
    __asm__ volatile("" : "+v"(c8));
    __asm__ volatile("" : "+v"(c9));
    __asm__ volatile("" : "+v"(c10));
    __asm__ volatile("" : "+v"(c11));
    __asm__ volatile("" : "+v"(c12));
    __asm__ volatile("" : "+v"(c13));
    __asm__ volatile("" : "+v"(c14));
    __asm__ volatile("" : "+v"(c15));
    __asm__ volatile("" : "+v"(c16));
    __asm__ volatile("" : "+v"(c17));
    __asm__ volatile("" : "+v"(c18));
    __asm__ volatile("" : "+v"(c19));
    __asm__ volatile("" : "+v"(c20));
    __asm__ volatile("" : "+v"(c21));
    __asm__ volatile("" : "+v"(c22));
    __asm__ volatile("" : "+v"(c23));
  }
  __m512 s = c0;
  s = _mm512_add_ps(s, c1);
  s = _mm512_add_ps(s, c2);
  s = _mm512_add_ps(s, c3);
  s = _mm512_add_ps(s, c4);
  s = _mm512_add_ps(s, c5);
  s = _mm512_add_ps(s, c6);
  s = _mm512_add_ps(s, c7);
  s = _mm512_add_ps(s, c8);
  s = _mm512_add_ps(s, c9);
  s = _mm512_add_ps(s, c10);
  s = _mm512_add_ps(s, c11);
  s = _mm512_add_ps(s, c12);
  s = _mm512_add_ps(s, c13);
  s = _mm512_add_ps(s, c14);
  s = _mm512_add_ps(s, c15);
  s = _mm512_add_ps(s, c16);
  s = _mm512_add_ps(s, c17);
  s = _mm512_add_ps(s, c18);
  s = _mm512_add_ps(s, c19);
  s = _mm512_add_ps(s, c20);
  s = _mm512_add_ps(s, c21);
  s = _mm512_add_ps(s, c22);
  s = _mm512_add_ps(s, c23);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return double(iters) * 24 * 16 * 2;
}

}  // namespace kvcake::cpu::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
