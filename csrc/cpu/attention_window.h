// The per-window building blocks of paged attention shared by decode and prefill: a set of
// query vectors (scaled into the log2 domain) is scored against a window of up to kWindow
// K rows, the online softmax folds the window in, and the window's V rows (converted to
// fp32 once) are accumulated into per-query fp32 accumulators.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/types.h"
#include "cpu/paged_rows.h"
#include "cpu/simd.h"

namespace kvcake::cpu {

using namespace simd;

template <DType T>
using Elem = std::conditional_t<T == DType::F32, float, uint16_t>;

// Per-task working set for nq query vectors (the query heads of one GQA group in decode,
// rows x heads of a query tile in prefill): scaled queries, fp32 accumulators, running
// max / sum, the window's scores (then probabilities) and its V rows in fp32.
struct Work {
  std::vector<float> q, acc, m, l, s, vf;
  void prepare(int nq, int D) {
    q.resize(size_t(nq) * D);
    acc.assign(size_t(nq) * D, 0.f);
    m.assign(nq, -INFINITY);
    l.assign(nq, 0.f);
    s.resize(size_t(nq) * kWindow);
    vf.resize(size_t(kWindow) * D);
  }
};

inline Work& work() {
  thread_local Work w;
  return w;
}

// Scores of GH query vectors against R consecutive K rows: GH*R dot products share each
// converted K vector and each query vector load.
template <DType T, int GH, int R>
inline void dotTile(const float* q, int D, const Elem<T>* k, float* s) {
  // Fully unrolled so the accumulators live in registers.
  __m256 acc[8];
#pragma GCC unroll 8
  for (int i = 0; i < GH * R; ++i) acc[i] = _mm256_setzero_ps();
  for (int d = 0; d < D; d += 8) {
    __m256 kv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) kv[r] = load8<T>(k, int64_t(r) * D + d);
#pragma GCC unroll 8
    for (int g = 0; g < GH; ++g) {
      const __m256 qv = _mm256_loadu_ps(q + int64_t(g) * D + d);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[g * R + r] = _mm256_fmadd_ps(qv, kv[r], acc[g * R + r]);
    }
  }
  if constexpr (GH * R == 8) {
    alignas(32) float t[8];
    _mm256_store_ps(t, hsum8(acc));
    for (int g = 0; g < GH; ++g)
      for (int r = 0; r < R; ++r) s[g * kWindow + r] = t[g * R + r];
  } else {
    for (int g = 0; g < GH; ++g)
      for (int r = 0; r < R; ++r) s[g * kWindow + r] = hsum(acc[g * R + r]);
  }
}

template <DType T, int GH>
void scoreRowsGH(const float* q, int D, const Elem<T>* k, int rows, float* s) {
  constexpr int R = GH >= 5 ? 1 : GH == 3 ? 2 : 8 / GH;
  int j = 0;
  for (; j + R <= rows; j += R) dotTile<T, GH, R>(q, D, k + int64_t(j) * D, s + j);
  for (; j < rows; ++j) dotTile<T, GH, 1>(q, D, k + int64_t(j) * D, s + j);
}

template <DType T>
void scoreRows(const float* q, int GH, int D, const Elem<T>* k, int rows, float* s) {
  switch (GH) {
    case 1: return scoreRowsGH<T, 1>(q, D, k, rows, s);
    case 2: return scoreRowsGH<T, 2>(q, D, k, rows, s);
    case 3: return scoreRowsGH<T, 3>(q, D, k, rows, s);
    case 4: return scoreRowsGH<T, 4>(q, D, k, rows, s);
    case 5: return scoreRowsGH<T, 5>(q, D, k, rows, s);
    case 6: return scoreRowsGH<T, 6>(q, D, k, rows, s);
    case 7: return scoreRowsGH<T, 7>(q, D, k, rows, s);
    default: return scoreRowsGH<T, 8>(q, D, k, rows, s);
  }
}

// Folds the window's scores into the running max / sum; scores become probabilities
// relative to the new max, and accumulators are rescaled when the max moved.
inline void softmaxUpdate(Work& w, int G, int D, int n) {
  const int padded = (n + 7) & ~7;
  for (int g = 0; g < G; ++g) {
    float* s = w.s.data() + int64_t(g) * kWindow;
    for (int j = n; j < padded; ++j) s[j] = -INFINITY;
    __m256 mx = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < padded; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
    const float mNew = std::max(w.m[g], hmax(mx));
    if (mNew == -INFINITY) continue;  // every key so far masked: nothing to fold in
    const float corr = exp2Scalar(w.m[g] - mNew);
    if (corr != 1.f) {
      const __m256 c = _mm256_set1_ps(corr);
      float* acc = w.acc.data() + int64_t(g) * D;
      for (int d = 0; d < D; d += 8) _mm256_storeu_ps(acc + d, _mm256_mul_ps(c, _mm256_loadu_ps(acc + d)));
    }
    const __m256 mv = _mm256_set1_ps(mNew);
    __m256 sum = _mm256_setzero_ps();
    for (int j = 0; j < padded; j += 8) {
      const __m256 p = exp2Neg(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
      _mm256_storeu_ps(s + j, p);
      sum = _mm256_add_ps(sum, p);
    }
    w.l[g] = w.l[g] * corr + hsum(sum);
    w.m[g] = mNew;
  }
}

// The window's V rows in fp32, converted once and then read by every query head.
template <DType T>
void convertRows(const Elem<T>* v, int rows, int D, float* dst) {
  for (int64_t i = 0; i < int64_t(rows) * D; i += 8) _mm256_storeu_ps(dst + i, load8<T>(v, i));
}

// acc[g][d0 .. d0+8*NV) += sum_j p[g][j] * V[j][same], for GP heads at once: the
// accumulators stay in registers for the whole window, each V load feeds GP FMAs.
template <int GP, int NV>
inline void pvTile(const float* p, const float* vf, int n, int D, float* acc) {
  __m256 x[GP][NV];
#pragma GCC unroll 4
  for (int g = 0; g < GP; ++g)
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) x[g][i] = _mm256_loadu_ps(acc + int64_t(g) * D + 8 * i);
  for (int j = 0; j < n; ++j) {
    __m256 v[NV];
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) v[i] = _mm256_loadu_ps(vf + int64_t(j) * D + 8 * i);
#pragma GCC unroll 4
    for (int g = 0; g < GP; ++g) {
      const __m256 pj = _mm256_broadcast_ss(p + g * kWindow + j);
#pragma GCC unroll 4
      for (int i = 0; i < NV; ++i) x[g][i] = _mm256_fmadd_ps(pj, v[i], x[g][i]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < GP; ++g)
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) _mm256_storeu_ps(acc + int64_t(g) * D + 8 * i, x[g][i]);
}

template <int GP>
void pvHeads(const float* p, const float* vf, int n, int D, float* acc) {
  int d = 0;
  for (; d + 32 <= D; d += 32) pvTile<GP, 4>(p, vf + d, n, D, acc + d);
  switch ((D - d) / 8) {
    case 1: pvTile<GP, 1>(p, vf + d, n, D, acc + d); break;
    case 2: pvTile<GP, 2>(p, vf + d, n, D, acc + d); break;
    case 3: pvTile<GP, 3>(p, vf + d, n, D, acc + d); break;
    default: break;
  }
}

// acc[g] += sum_j p[g][j] * V_j over the window's n rows (already in w.vf).
inline void accumulateWindow(Work& w, int G, int D, int n) {
  int g = 0;
  for (; g + 2 <= G; g += 2)
    pvHeads<2>(w.s.data() + int64_t(g) * kWindow, w.vf.data(), n, D, w.acc.data() + int64_t(g) * D);
  if (g < G) pvHeads<1>(w.s.data() + int64_t(g) * kWindow, w.vf.data(), n, D, w.acc.data() + int64_t(g) * D);
}


}  // namespace kvcake::cpu
