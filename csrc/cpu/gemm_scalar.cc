// The scalar path of the model GEMM (gemm.h), compiled for the baseline: the same dot-8
// form as the AVX2 path (8 lanes, each a product then a sum per step in k order, the k tail
// zero-padded, the halving tree, then the bias), in plain arrays the compiler vectorizes
// with what the baseline has (SSE2 on x86-64). Tiles of up to 2 rows of a x 2 rows of w
// (1 x 4 for a single row) keep the lanes in the 16 xmm registers. Runs on any CPU; the
// dispatch picks it where no SIMD level is available or when it is forced. Batch invariant
// like the others: nothing depends on the tile or the rows beside a row.
#include <cstdint>
#include <cstring>

#include "cpu/dtype_scalar.h"
#include "cpu/model_paths.h"

namespace kvcake::cpu::scalar {

namespace {

constexpr int kL = 8;

// kL weights from w (type WT) at element i, as fp32.
template <int WT>
inline void loadW(const void* w, int64_t i, float* out) {
  if constexpr (WT == 0) {
    std::memcpy(out, static_cast<const float*>(w) + i, kL * sizeof(float));
  } else {
    const uint16_t* h = static_cast<const uint16_t*>(w) + i;
    for (int l = 0; l < kL; ++l) out[l] = WT == 1 ? f16ToF32(h[l]) : bf16ToF32(h[l]);
  }
}

// Lane l + l+4, then + l+2, then lane 0 + lane 1 (gemm.h's fixed tree, from 8 lanes).
inline float reduce8(const float* v) {
  const float s0 = v[0] + v[4], s1 = v[1] + v[5], s2 = v[2] + v[6], s3 = v[3] + v[7];
  return (s0 + s2) + (s1 + s3);
}

template <int MR, int NR, int WT>
void tile(const GemmTask& t, int64_t m, int64_t n) {
  constexpr int kElem = WT == 0 ? 4 : 2;
  const int64_t K = t.k;
  const int64_t kFull = K & ~int64_t(kL - 1);
  const float* a[MR];
  const void* w[NR];
  for (int i = 0; i < MR; ++i) a[i] = t.a + (m + i) * t.lda;
  for (int j = 0; j < NR; ++j) w[j] = static_cast<const char*>(t.w) + (n + j) * K * kElem;
  float acc[MR][NR][kL] = {};
  float wv[NR][kL];
  auto step = [&](const float (&av)[MR][kL]) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        for (int l = 0; l < kL; ++l) acc[i][j][l] = av[i][l] * wv[j][l] + acc[i][j][l];
  };
  float av[MR][kL];
  for (int64_t k = 0; k < kFull; k += kL) {
    for (int i = 0; i < MR; ++i) std::memcpy(av[i], a[i] + k, sizeof av[i]);
    for (int j = 0; j < NR; ++j) loadW<WT>(w[j], k, wv[j]);
    step(av);
  }
  if (kFull < K) {
    const size_t rest = size_t(K - kFull);
    unsigned char tw[kL * 4];
    for (int i = 0; i < MR; ++i) {
      for (int l = 0; l < kL; ++l) av[i][l] = 0.f;
      std::memcpy(av[i], a[i] + kFull, rest * 4);
    }
    for (int j = 0; j < NR; ++j) {
      std::memset(tw, 0, sizeof tw);
      std::memcpy(tw, static_cast<const char*>(w[j]) + kFull * kElem, rest * kElem);
      loadW<WT>(tw, 0, wv[j]);
    }
    step(av);
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = reduce8(acc[i][j]);
      if (t.bias) s += t.bias[n + j];
      t.out[(m + i) * t.ldo + n + j] = s;
    }
}

template <int WT>
void block(const GemmTask& t, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 == 1) {
    for (int64_t n = n0; n < n1; n += 4) {
      switch (n1 - n < 4 ? n1 - n : 4) {
        case 4: tile<1, 4, WT>(t, m0, n); break;
        case 3: tile<1, 3, WT>(t, m0, n); break;
        case 2: tile<1, 2, WT>(t, m0, n); break;
        default: tile<1, 1, WT>(t, m0, n); break;
      }
    }
    return;
  }
  for (int64_t n = n0; n < n1; n += 2) {
    const bool two = n1 - n >= 2;
    for (int64_t m = m0; m < m1; m += 2) {
      if (m1 - m >= 2) {
        if (two) tile<2, 2, WT>(t, m, n);
        else tile<2, 1, WT>(t, m, n);
      } else {
        if (two) tile<1, 2, WT>(t, m, n);
        else tile<1, 1, WT>(t, m, n);
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

// The peak reference of this path: 12 independent chains of 4-lane multiply-adds (a
// product and a sum each, 2 flops per lane) in the baseline's 16-byte registers, kept there
// by an empty asm per chain so the compiler does not run the chains one by one through
// memory.
double fmaLoop(int64_t iters) {
  typedef float V4 __attribute__((vector_size(16)));
  V4 c[12];
  for (int i = 0; i < 12; ++i) c[i] = V4{1, 1, 1, 1} * (float(i) * 1e-3f);
  const V4 x = V4{1, 1, 1, 1} * 0.999999f, y = V4{1, 1, 1, 1} * 1e-7f;
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) {
      c[i] = c[i] * x + y;
#if defined(__x86_64__) || defined(_M_X64)
      __asm__ volatile("" : "+x"(c[i]));
#endif
    }
  }
  V4 s = c[0];
  for (int i = 1; i < 12; ++i) s += c[i];
  volatile float sink = s[0];
  (void)sink;
  return double(iters) * 12 * 4 * 2;
}

}  // namespace kvcake::cpu::scalar
