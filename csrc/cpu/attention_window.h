// The per-window building blocks of paged attention shared by decode and prefill: a set of
// query vectors (scaled into the log2 domain) is scored against a window of up to kWindow
// K rows, the online softmax folds the window in, and the window's V rows (converted to
// fp32 as they are read) are accumulated into per-query fp32 accumulators.
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
// max / sum, and the window's scores (then probabilities).
struct Work {
  std::vector<float> q, acc, m, l, s;
  void prepare(int nq, int D) {
    q.resize(size_t(nq) * D);
    acc.assign(size_t(nq) * D, 0.f);
    m.assign(nq, -INFINITY);
    l.assign(nq, 0.f);
    s.resize(size_t(nq) * kWindow);
  }
};

inline Work& work() {
  thread_local Work w;
  return w;
}

// Scores of GH query vectors against R consecutive K rows: GH*R dot products share each
// converted K vector and each query vector load. The K rows may lie in different blocks.
template <DType T, int GH, int R>
inline void dotTile(const float* q, int D, const Elem<T>* const* k, float* s) {
  // Fully unrolled so the accumulators live in registers.
  __m256 acc[GH * R];
#pragma GCC unroll 16
  for (int i = 0; i < GH * R; ++i) acc[i] = _mm256_setzero_ps();
  for (int d = 0; d < D; d += 8) {
    __m256 kv[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) kv[r] = load8<T>(k[r], d);
#pragma GCC unroll 16
    for (int g = 0; g < GH; ++g) {
      const __m256 qv = _mm256_loadu_ps(q + int64_t(g) * D + d);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[g * R + r] = _mm256_fmadd_ps(qv, kv[r], acc[g * R + r]);
    }
  }
  alignas(32) float t[16];
  int i = 0;
  for (; i + 8 <= GH * R; i += 8) _mm256_store_ps(t + i, hsum8(acc + i));
  for (; i < GH * R; ++i) t[i] = hsum(acc[i]);
  for (int g = 0; g < GH; ++g)
    for (int r = 0; r < R; ++r) s[g * kWindow + r] = t[g * R + r];
}

template <DType T, int GH>
void scoreRowsGH(const float* q, int D, const Elem<T>* const* k, int rows, float* s) {
  // 8 to 12 accumulators: enough independent FMA chains to cover the FMA latency.
  constexpr int R = GH >= 5 ? 1 : GH == 4 ? 3 : GH == 3 ? 4 : 8 / GH;
  int j = 0;
  for (; j + R <= rows; j += R) dotTile<T, GH, R>(q, D, k + j, s + j);
  for (; j < rows; ++j) dotTile<T, GH, 1>(q, D, k + j, s + j);
}

// Scores of GH (<= 8) query vectors against the window's K rows, s[g * kWindow + j].
template <DType T>
void scoreRows(const float* q, int GH, int D, const Elem<T>* const* k, int rows, float* s) {
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

// Row pointers of the window's K rows, so score tiles run across block boundaries.
template <DType T>
inline int windowKeyRows(const Elem<T>* pool, const Segment* segs, int nseg, int D, const Elem<T>** rows) {
  int n = 0;
  for (int i = 0; i < nseg; ++i)
    for (int r = 0; r < segs[i].rows; ++r) rows[n++] = pool + segs[i].k + int64_t(r) * D;
  return n;
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

// acc[g][0 .. 16) += sum_j p[g][j] * V_j[0 .. 16) for GP query vectors: the accumulators
// stay in registers over the window and each converted V vector feeds GP FMAs. With few
// query vectors, J rows are in flight at once (separate partial sums) so there are always
// at least 8 independent FMA chains to hide the FMA latency.
template <DType T, int GP>
inline void pvTile(const float* p, const Elem<T>* v, int n, int D, float* acc) {
  constexpr int J = GP == 1 ? 4 : GP <= 3 ? 2 : 1;
  __m256 x[J][GP][2];
#pragma GCC unroll 4
  for (int g = 0; g < GP; ++g) {
    x[0][g][0] = _mm256_loadu_ps(acc + int64_t(g) * D);
    x[0][g][1] = _mm256_loadu_ps(acc + int64_t(g) * D + 8);
#pragma GCC unroll 4
    for (int u = 1; u < J; ++u) x[u][g][0] = x[u][g][1] = _mm256_setzero_ps();
  }
  int j = 0;
  for (; j + J <= n; j += J) {
#pragma GCC unroll 4
    for (int u = 0; u < J; ++u) {
      const __m256 v0 = load8<T>(v, int64_t(j + u) * D), v1 = load8<T>(v, int64_t(j + u) * D + 8);
#pragma GCC unroll 4
      for (int g = 0; g < GP; ++g) {
        const __m256 pj = _mm256_broadcast_ss(p + g * kWindow + j + u);
        x[u][g][0] = _mm256_fmadd_ps(pj, v0, x[u][g][0]);
        x[u][g][1] = _mm256_fmadd_ps(pj, v1, x[u][g][1]);
      }
    }
  }
  for (; j < n; ++j) {
    const __m256 v0 = load8<T>(v, int64_t(j) * D), v1 = load8<T>(v, int64_t(j) * D + 8);
#pragma GCC unroll 4
    for (int g = 0; g < GP; ++g) {
      const __m256 pj = _mm256_broadcast_ss(p + g * kWindow + j);
      x[0][g][0] = _mm256_fmadd_ps(pj, v0, x[0][g][0]);
      x[0][g][1] = _mm256_fmadd_ps(pj, v1, x[0][g][1]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < GP; ++g) {
#pragma GCC unroll 4
    for (int u = 1; u < J; ++u) {
      x[0][g][0] = _mm256_add_ps(x[0][g][0], x[u][g][0]);
      x[0][g][1] = _mm256_add_ps(x[0][g][1], x[u][g][1]);
    }
    _mm256_storeu_ps(acc + int64_t(g) * D, x[0][g][0]);
    _mm256_storeu_ps(acc + int64_t(g) * D + 8, x[0][g][1]);
  }
}

// Every supported head dim is a multiple of 16, so the 16-wide column blocks cover it.
template <DType T, int GP>
void pvHeads(const float* p, const Elem<T>* v, int n, int D, float* acc) {
  for (int d = 0; d < D; d += 16) pvTile<T, GP>(p, v + d, n, D, acc + d);
}

// acc[i] += sum_j p[i][j] * V_j for query vectors i in [i0, i0 + nq) and the n rows of one
// segment of the window (whose first row is window row `first`).
template <DType T>
void accumulateSegment(Work& w, int i0, int nq, int D, const Elem<T>* v, int n, int first) {
  const float* p = w.s.data() + int64_t(i0) * kWindow + first;
  float* acc = w.acc.data() + int64_t(i0) * D;
  int i = 0;
  for (; i + 4 <= nq; i += 4) pvHeads<T, 4>(p + int64_t(i) * kWindow, v, n, D, acc + int64_t(i) * D);
  switch (nq - i) {
    case 1: pvHeads<T, 1>(p + int64_t(i) * kWindow, v, n, D, acc + int64_t(i) * D); break;
    case 2: pvHeads<T, 2>(p + int64_t(i) * kWindow, v, n, D, acc + int64_t(i) * D); break;
    case 3: pvHeads<T, 3>(p + int64_t(i) * kWindow, v, n, D, acc + int64_t(i) * D); break;
    default: break;
  }
}

}  // namespace kvcake::cpu
