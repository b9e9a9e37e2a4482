#pragma GCC target("avx2,fma,f16c")
// The AVX2 path of the model GEMM (gemm.h): 8-lane dot products, tiles of up to 4 rows of
// a x 2 rows of w (1 x 8 for a single row) within the 16 ymm registers. The k tail is
// zero-padded through a small stack buffer (AVX2 has no masked 16-bit load).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu/gemm.h"

namespace kvcake::cpu {

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
  if (nr == 1) return tile<MR, 1, WT>(t, m, n);
  return tile<MR, 2, WT>(t, m, n);
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
  for (int64_t n = n0; n < n1; n += 2) {
    const int nr = int(n1 - n < 2 ? n1 - n : 2);
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

void gemmBlockAvx2(const GemmTask& t, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  switch (t.wType) {
    case 0: return block<0>(t, m0, m1, n0, n1);
    case 1: return block<1>(t, m0, m1, n0, n1);
    default: return block<2>(t, m0, m1, n0, n1);
  }
}

}  // namespace kvcake::cpu
