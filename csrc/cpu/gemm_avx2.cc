// The AVX2 path of the model GEMM (gemm.h): 8-lane dot products, tiles of up to 3 rows of
// a x 4 rows of w (1 x 8 for a single row) within the 16 ymm registers. The k tail is
// zero-padded through a small stack buffer (AVX2 has no masked 16-bit load).
//
// Build convention (cpu/isa.h): headers first, compiled for the baseline; then the target
// pragma; everything after it lives in namespace kvcake::cpu::avx2.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu/model_paths.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace kvcake::cpu::avx2 {

namespace {

template <int WT>
inline __m256 loadW(const void* w, int64_t i) {
  if constexpr (WT == 0) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    if constexpr (WT == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// Lane j + j+4, then + j+2, then lane 0 + lane 1 (gemm.h's fixed tree, from 8 lanes).
inline float reduce8(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
  return _mm_cvtss_f32(s1);
}

template <int MR, int NR, int WT>
void tile(const GemmTask& t, int64_t m, int64_t n) {
  constexpr int kElem = WT == 0 ? 4 : 2;
  const int64_t K = t.k;
  const int64_t kFull = K & ~int64_t(7);
  const float* a[MR];
  const void* w[NR];
  for (int i = 0; i < MR; ++i) a[i] = t.a + (m + i) * t.lda;
  for (int j = 0; j < NR; ++j) w[j] = static_cast<const char*>(t.w) + (n + j) * K * kElem;
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kFull; k += 8) {
    __m256 av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm256_loadu_ps(a[i] + k);
    for (int j = 0; j < NR; ++j) {
      const __m256 wv = loadW<WT>(w[j], k);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(av[i], wv, acc[i][j]);
    }
  }
  if (kFull < K) {
    const size_t rest = size_t(K - kFull);
    alignas(32) float ta[MR][8];
    alignas(32) unsigned char tw[NR][32];
    for (int i = 0; i < MR; ++i) {
      for (int l = 0; l < 8; ++l) ta[i][l] = 0.f;
      std::memcpy(ta[i], a[i] + kFull, rest * 4);
    }
    for (int j = 0; j < NR; ++j) {
      std::memset(tw[j], 0, 32);
      std::memcpy(tw[j], static_cast<const char*>(w[j]) + kFull * kElem, rest * kElem);
    }
    __m256 av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm256_load_ps(ta[i]);
    for (int j = 0; j < NR; ++j) {
      const __m256 wv = loadW<WT>(tw[j], 0);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(av[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = reduce8(acc[i][j]);
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
      switch (n1 - n < 8 ? n1 - n : 8) {
        case 8: tile<1, 8, WT>(t, m0, n); break;
        case 7: tile<1, 7, WT>(t, m0, n); break;
        case 6: tile<1, 6, WT>(t, m0, n); break;
        case 5: tile<1, 5, WT>(t, m0, n); break;
        case 4: tile<1, 4, WT>(t, m0, n); break;
        case 3: tile<1, 3, WT>(t, m0, n); break;
        case 2: tile<1, 2, WT>(t, m0, n); break;
        default: tile<1, 1, WT>(t, m0, n); break;
      }
    }
    return;
  }
  for (int64_t n = n0; n < n1; n += 4) {
    const int nr = int(n1 - n < 4 ? n1 - n : 4);
    for (int64_t m = m0; m < m1; m += 3) {
      switch (m1 - m < 3 ? m1 - m : 3) {
        case 1: tileRows<1, WT>(t, m, n, nr); break;
        case 2: tileRows<2, WT>(t, m, n, nr); break;
        default: tileRows<3, WT>(t, m, n, nr); break;
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

// The FMA peak reference for benchmarks: 12 independent chains of 256-bit FMAs.
double fmaLoop(int64_t iters) {
  __m256 c0 = _mm256_set1_ps(float(0) * 1e-3f);
  __m256 c1 = _mm256_set1_ps(float(1) * 1e-3f);
  __m256 c2 = _mm256_set1_ps(float(2) * 1e-3f);
  __m256 c3 = _mm256_set1_ps(float(3) * 1e-3f);
  __m256 c4 = _mm256_set1_ps(float(4) * 1e-3f);
  __m256 c5 = _mm256_set1_ps(float(5) * 1e-3f);
  __m256 c6 = _mm256_set1_ps(float(6) * 1e-3f);
  __m256 c7 = _mm256_set1_ps(float(7) * 1e-3f);
  __m256 c8 = _mm256_set1_ps(float(8) * 1e-3f);
  __m256 c9 = _mm256_set1_ps(float(9) * 1e-3f);
  __m256 c10 = _mm256_set1_ps(float(10) * 1e-3f);
  __m256 c11 = _mm256_set1_ps(float(11) * 1e-3f);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  // Named registers, and an empty asm per chain so the compiler keeps each in a register
  // rather than swapping the loops and running the chains through memory.
  for (int64_t it = 0; it < iters; ++it) {
    c0 = _mm256_fmadd_ps(c0, x, y);
    c1 = _mm256_fmadd_ps(c1, x, y);
    c2 = _mm256_fmadd_ps(c2, x, y);
    c3 = _mm256_fmadd_ps(c3, x, y);
    c4 = _mm256_fmadd_ps(c4, x, y);
    c5 = _mm256_fmadd_ps(c5, x, y);
    c6 = _mm256_fmadd_ps(c6, x, y);
    c7 = _mm256_fmadd_ps(c7, x, y);
    c8 = _mm256_fmadd_ps(c8, x, y);
    c9 = _mm256_fmadd_ps(c9, x, y);
    c10 = _mm256_fmadd_ps(c10, x, y);
    c11 = _mm256_fmadd_ps(c11, x, y);
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
  }
  __m256 s = c0;
  s = _mm256_add_ps(s, c1);
  s = _mm256_add_ps(s, c2);
  s = _mm256_add_ps(s, c3);
  s = _mm256_add_ps(s, c4);
  s = _mm256_add_ps(s, c5);
  s = _mm256_add_ps(s, c6);
  s = _mm256_add_ps(s, c7);
  s = _mm256_add_ps(s, c8);
  s = _mm256_add_ps(s, c9);
  s = _mm256_add_ps(s, c10);
  s = _mm256_add_ps(s, c11);
  alignas(32) float l[8];
  _mm256_store_ps(l, s);
  volatile float sink = l[0];
  (void)sink;
  return double(iters) * 12 * 8 * 2;
}

}  // namespace kvcake::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
