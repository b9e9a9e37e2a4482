// Paged prefill / extend attention (chunked prefill), causal, varlen batch. One task owns a
// query tile: a few consecutive query rows of one sequence times the query heads of one GQA
// group, all scored against each K window while it is in cache, so every K/V row read is
// reused by the whole tile. The causal mask is exact per row: row i of a chunk of qLen
// rows sits at position contextLen - qLen + i and sees keys 0 .. that position.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "cpu/attention_window.h"
#include "cpu/kernels.h"

namespace kvcake::cpu {

namespace {

// Query vectors per tile: enough to amortize each K/V row's load and conversion, few
// enough that scores, probabilities and accumulators stay in L1/L2.
constexpr int kTileVectors = 32;

struct Tile {
  int32_t seq;
  int32_t row0, rows;  // chunk rows [row0, row0 + rows) of sequence seq
};

template <DType T>
void prefillTile(const PrefillArgs& a, const Tile& t, int kvh) {
  const KVLayout& L = a.layout;
  const int D = L.headDim, G = a.numHeads / L.numKvHeads;
  const int nq = t.rows * G;
  const auto* pool = static_cast<const Elem<T>*>(a.pool);
  Work& w = work();
  w.prepare(nq, D);
  const int64_t qLen = a.qStartLoc[t.seq + 1] - a.qStartLoc[t.seq];
  const int64_t firstPos = int64_t(a.contextLens[t.seq]) - qLen + t.row0;  // position of tile row 0
  const float qScale = a.scale * kLog2e;
  // Vector i = r * G + g: row r of the tile, head g of the group (contiguous in q).
  for (int r = 0; r < t.rows; ++r) {
    const int64_t src = ((a.qStartLoc[t.seq] + t.row0 + r) * int64_t(a.numHeads) + int64_t(kvh) * G) * D;
    float* dst = w.q.data() + int64_t(r) * G * D;
    for (int64_t i = 0; i < int64_t(G) * D; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_set1_ps(qScale), load8<T>(a.q, src + i)));
  }
  const int32_t* table = a.blockTables + int64_t(t.seq) * a.tableStride;
  const int64_t end = firstPos + t.rows;  // keys [0, end) are visible to some row

  Segment segs[kMaxSegments], next[kMaxSegments];
  const Elem<T>* krows[kWindow];
  int nseg = gatherWindow(L, table, kvh, 0, end, segs);
  for (int64_t c = 0; c < end;) {
    const int n = windowRows(segs, nseg);
    const int nnext = gatherWindow(L, table, kvh, c + n, end, next);
    prefetchWindow(a.pool, next, nnext, D, sizeof(Elem<T>));
    windowKeyRows<T>(pool, segs, nseg, D, krows);
    for (int i0 = 0; i0 < nq; i0 += 4)
      scoreRows<T>(w.q.data() + int64_t(i0) * D, std::min(4, nq - i0), D, krows, n, w.s.data() + int64_t(i0) * kWindow);
    // Keys past a row's own position are masked; only windows reaching past the tile's
    // first row need it.
    if (c + n > firstPos + 1) {
      for (int r = 0; r < t.rows; ++r) {
        const int64_t visible = firstPos + r + 1 - c;  // keys of this window row r may see
        if (visible >= n) continue;
        const int from = int(std::max<int64_t>(0, visible));
        for (int g = 0; g < G; ++g) std::fill_n(w.s.data() + int64_t(r * G + g) * kWindow + from, n - from, -INFINITY);
      }
    }
    softmaxUpdate(w, nq, D, n);
    for (int i = 0; i < nseg; ++i) accumulateSegment<T>(w, 0, nq, D, pool + segs[i].v, segs[i].rows, segs[i].first);
    std::copy(next, next + nnext, segs);
    nseg = nnext;
    c += n;
  }
  for (int r = 0; r < t.rows; ++r)
    for (int g = 0; g < G; ++g) {
      const int i = r * G + g;
      const int64_t dst = ((a.qStartLoc[t.seq] + t.row0 + r) * int64_t(a.numHeads) + int64_t(kvh) * G + g) * D;
      const __m256 inv = _mm256_set1_ps(w.l[i] > 0.f ? 1.f / w.l[i] : 0.f);
      for (int d = 0; d < D; d += 8)
        store8<T>(a.out, dst + d, _mm256_mul_ps(inv, _mm256_loadu_ps(w.acc.data() + int64_t(i) * D + d)));
    }
}

template <DType T>
void prefillTyped(const PrefillArgs& a, ThreadPool& pool) {
  const int G = a.numHeads / a.layout.numKvHeads;
  const int rowsPerTile = std::max(1, kTileVectors / G);
  std::vector<Tile> tiles;
  for (int b = 0; b < a.batch; ++b) {
    const int32_t qLen = a.qStartLoc[b + 1] - a.qStartLoc[b];
    // Last tiles first: they see the most keys, and starting them early evens out the end.
    for (int32_t r0 = (qLen - 1) / rowsPerTile * rowsPerTile; r0 >= 0 && qLen > 0; r0 -= rowsPerTile)
      tiles.push_back(Tile{b, r0, std::min(rowsPerTile, qLen - r0)});
  }
  std::stable_sort(tiles.begin(), tiles.end(), [&](const Tile& x, const Tile& y) {
    const int64_t ex = a.contextLens[x.seq] - (a.qStartLoc[x.seq + 1] - a.qStartLoc[x.seq]) + x.row0;
    const int64_t ey = a.contextLens[y.seq] - (a.qStartLoc[y.seq + 1] - a.qStartLoc[y.seq]) + y.row0;
    return ex > ey;
  });
  const int64_t kvHeads = a.layout.numKvHeads;
  pool.parallelFor(int64_t(tiles.size()) * kvHeads,
                   [&](int64_t i) { prefillTile<T>(a, tiles[size_t(i / kvHeads)], int(i % kvHeads)); });
}

}  // namespace

void prefillAttention(const PrefillArgs& a, ThreadPool& pool) {
  if (a.layout.headDim % 8 != 0 || a.layout.headDim > Limits::kMaxHeadDim)
    throwArg("prefillAttention: headDim must be a multiple of 8 and at most 256");
  switch (a.layout.dtype) {
    case DType::F32: return prefillTyped<DType::F32>(a, pool);
    case DType::F16: return prefillTyped<DType::F16>(a, pool);
    default: return prefillTyped<DType::BF16>(a, pool);
  }
}

}  // namespace kvcake::cpu
