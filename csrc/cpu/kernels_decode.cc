// Paged decode attention. One task owns (sequence, context split) and all of its heads: it
// walks the split window by window, and for each KV head scores every query head of that
// GQA group against each K row while the row is in cache, then folds the V rows into
// per-head accumulators with an online (running max / running sum) softmax. Taking all KV
// heads of a block together sweeps the block's K half and V half as contiguous regions (its
// head runs are adjacent); one KV head per task touches one small run per block and was
// measured ~1.4x slower from page and prefetcher misses.
// No software prefetch of the next block: issuing one per cache line of the next block's
// run for each head (a block ahead, into L2) measured no change in shuffled-vs-identity
// time with kernel-check; what remains of the paging cost is TLB reach, which the backend's
// huge-page pools address (cpu_backend.cc).
// Long contexts with few sequences are split so every core has work; the splits' partial
// results are merged with the log-sum-exp rule afterwards.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "cpu/kernels.h"
#include "cpu/attention_window.h"

namespace kvcake::cpu {

namespace {

// Context positions per split below which splitting costs more than it gains.
constexpr int64_t kMinSplitTokens = 512;

struct Item {
  int32_t seq;
  int64_t begin, end;  // cache positions [begin, end)
  int64_t partial;     // partial-result slot, -1 when the sequence is not split
};

// Converts one head's K (v = false) or V rows of a window to fp32, row j at out + j * D.
// Each segment is one contiguous run of rows * D elements.
template <DType T>
inline void convertWindow(const Elem<T>* pool, const Segment* segs, int nseg, int D, bool v, float* out) {
  for (int i = 0; i < nseg; ++i) {
    const Elem<T>* src = pool + (v ? segs[i].v : segs[i].k);
    float* dst = out + int64_t(segs[i].first) * D;
    const int64_t len = int64_t(segs[i].rows) * D;  // a multiple of 8 (D is)
    int64_t e = 0;
    for (; e + 32 <= len; e += 32) {
      const __m256 a = load8<T>(src, e), b = load8<T>(src, e + 8);
      const __m256 c = load8<T>(src, e + 16), d = load8<T>(src, e + 24);
      _mm256_storeu_ps(dst + e, a);
      _mm256_storeu_ps(dst + e + 8, b);
      _mm256_storeu_ps(dst + e + 16, c);
      _mm256_storeu_ps(dst + e + 24, d);
    }
    for (; e < len; e += 8) _mm256_storeu_ps(dst + e, load8<T>(src, e));
  }
}

template <DType T>
void decodeTask(const DecodeArgs& a, const Item& it, float* partAcc, float* partML) {
  const KVLayout& L = a.layout;
  const int D = L.headDim, H = a.numHeads, G = H / L.numKvHeads;
  const auto* pool = static_cast<const Elem<T>*>(a.pool);
  Work& w = work();
  w.prepare(H, D);
  const int64_t qOff = int64_t(it.seq) * H * D;
  const float qScale = a.scale * kLog2e;
  for (int64_t i = 0; i < int64_t(H) * D; i += 8)
    _mm256_storeu_ps(w.q.data() + i, _mm256_mul_ps(_mm256_set1_ps(qScale), load8<T>(a.q, qOff + i)));
  const int32_t* table = a.blockTables + int64_t(it.seq) * a.tableStride;

  // Segments are gathered for KV head 0; head h's rows sit h * headStride further on.
  Segment segs[kMaxSegments], next[kMaxSegments];
  const Elem<T>* krows[kWindow];
  // fp32 copy of one head's window rows (16-bit KV only), row j at kf + j * D.
  thread_local std::vector<float> scratch;
  scratch.resize(size_t(kWindow) * D + 8);
  float* kf = scratch.data();
  const float* kfrows[kWindow];
  for (int j = 0; j < kWindow; ++j) kfrows[j] = kf + int64_t(j) * D;
  int nseg = gatherWindow(L, table, 0, it.begin, it.end, segs, true);
  for (int64_t c = it.begin; c < it.end;) {
    const int n = windowRows(segs, nseg);
    const int nnext = gatherWindow(L, table, 0, c + n, it.end, next, true);
    if constexpr (T == DType::F32) {
      for (int h = 0; h < L.numKvHeads; ++h) {
        const int64_t ho = int64_t(h) * L.headStride();
        windowKeyRows<T>(pool + ho, segs, nseg, D, krows);
        const float* q = w.q.data() + int64_t(h) * G * D;
        float* s = w.s.data() + int64_t(h) * G * kWindow;
        for (int g0 = 0; g0 < G; g0 += 8)
          scoreRows<T>(q + int64_t(g0) * D, std::min(8, G - g0), D, krows, n, s + int64_t(g0) * kWindow);
      }
      softmaxUpdate(w, H, D, n);
      for (int h = 0; h < L.numKvHeads; ++h) {
        const int64_t ho = int64_t(h) * L.headStride();
        for (int i = 0; i < nseg; ++i)
          accumulateSegment<T>(w, h * G, G, D, pool + ho + segs[i].v, segs[i].rows, segs[i].first);
      }
    } else {
      // 16-bit KV: each head's window rows are first converted to fp32 in an L1-resident
      // scratch (a tight load/convert/store stream with many loads in flight), then scored
      // and accumulated by the fp32 tiles. Converting inside the tiles left the FMAs
      // waiting on each vcvtph2ps of a freshly loaded line; here the G query heads of a
      // group reuse the converted rows from L1.
      for (int h = 0; h < L.numKvHeads; ++h) {
        const int64_t ho = int64_t(h) * L.headStride();
        convertWindow<T>(pool + ho, segs, nseg, D, false, kf);
        const float* q = w.q.data() + int64_t(h) * G * D;
        float* s = w.s.data() + int64_t(h) * G * kWindow;
        for (int g0 = 0; g0 < G; g0 += 8)
          scoreRows<DType::F32>(q + int64_t(g0) * D, std::min(8, G - g0), D, kfrows, n, s + int64_t(g0) * kWindow);
      }
      softmaxUpdate(w, H, D, n);
      for (int h = 0; h < L.numKvHeads; ++h) {
        const int64_t ho = int64_t(h) * L.headStride();
        convertWindow<T>(pool + ho, segs, nseg, D, true, kf);
        accumulateSegment<DType::F32>(w, h * G, G, D, kf, n, 0);
      }
    }
    std::copy(next, next + nnext, segs);
    nseg = nnext;
    c += n;
  }
  if (it.partial < 0) {
    for (int h = 0; h < H; ++h) {
      const __m256 inv = _mm256_set1_ps(w.l[h] > 0.f ? 1.f / w.l[h] : 0.f);
      for (int d = 0; d < D; d += 8)
        store8<T>(a.out, qOff + int64_t(h) * D + d, _mm256_mul_ps(inv, _mm256_loadu_ps(w.acc.data() + int64_t(h) * D + d)));
    }
  } else {
    const int64_t slot = it.partial * H;
    std::copy(w.acc.begin(), w.acc.begin() + int64_t(H) * D, partAcc + slot * D);
    for (int h = 0; h < H; ++h) partML[(slot + h) * 2] = w.m[h], partML[(slot + h) * 2 + 1] = w.l[h];
  }
}

// One (sequence, query head) of a split sequence: out = sum_i 2^(m_i - M) acc_i / l with
// l = sum_i 2^(m_i - M) l_i (scores are in the log2 domain).
template <DType T>
void mergeSplits(const DecodeArgs& a, int seq, int64_t firstPartial, int nsplit, int h,
                 const float* partAcc, const float* partML) {
  const int D = a.layout.headDim;
  float M = -INFINITY;
  for (int i = 0; i < nsplit; ++i) M = std::max(M, partML[((firstPartial + i) * a.numHeads + h) * 2]);
  float l = 0.f;
  __m256 out[Limits::kMaxHeadDim / 8];
  for (int d = 0; d < D / 8; ++d) out[d] = _mm256_setzero_ps();
  for (int i = 0; i < nsplit; ++i) {
    const int64_t slot = (firstPartial + i) * a.numHeads + h;
    if (!(partML[slot * 2 + 1] > 0.f)) continue;
    const float wgt = exp2Scalar(partML[slot * 2] - M);
    l += wgt * partML[slot * 2 + 1];
    const __m256 wv = _mm256_set1_ps(wgt);
    for (int d = 0; d < D / 8; ++d) out[d] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(partAcc + slot * D + d * 8), out[d]);
  }
  const __m256 inv = _mm256_set1_ps(l > 0.f ? 1.f / l : 0.f);
  const int64_t o = (int64_t(seq) * a.numHeads + h) * D;
  for (int d = 0; d < D / 8; ++d) store8<T>(a.out, o + d * 8, _mm256_mul_ps(inv, out[d]));
}

template <DType T>
void decodeTyped(const DecodeArgs& a, ThreadPool& pool) {
  const KVLayout& L = a.layout;
  int64_t total = 0;
  for (int b = 0; b < a.batch; ++b) total += a.contextLens[b];
  // Aim for several tasks per thread so uneven sequence lengths still balance; splits are
  // whole blocks so a split never starts mid-block.
  const int64_t targetTasks = int64_t(pool.size()) * 4;
  int64_t splitTokens = std::max<int64_t>(kMinSplitTokens, (total + targetTasks - 1) / targetTasks);
  splitTokens = (splitTokens + L.blockSize - 1) / L.blockSize * L.blockSize;

  std::vector<Item> items;
  items.reserve(size_t(a.batch));
  struct SplitSeq { int32_t seq, nsplit; int64_t firstPartial; };
  std::vector<SplitSeq> splitSeqs;
  int64_t partials = 0;
  for (int b = 0; b < a.batch; ++b) {
    const int64_t n = a.contextLens[b];
    const int64_t ns = std::max<int64_t>(1, (n + splitTokens - 1) / splitTokens);
    if (ns == 1) {
      items.push_back(Item{b, 0, n, -1});
      continue;
    }
    splitSeqs.push_back(SplitSeq{b, int32_t(ns), partials});
    for (int64_t i = 0; i < ns; ++i)
      items.push_back(Item{b, i * splitTokens, std::min(n, (i + 1) * splitTokens), partials++});
  }
  std::vector<float> partAcc(size_t(partials) * a.numHeads * L.headDim), partML(size_t(partials) * a.numHeads * 2);
  pool.parallelFor(int64_t(items.size()),
                   [&](int64_t t) { decodeTask<T>(a, items[size_t(t)], partAcc.data(), partML.data()); });
  if (splitSeqs.empty()) return;
  pool.parallelFor(int64_t(splitSeqs.size()), [&](int64_t i) {
    const SplitSeq& s = splitSeqs[size_t(i)];
    for (int h = 0; h < a.numHeads; ++h)
      mergeSplits<T>(a, s.seq, s.firstPartial, s.nsplit, h, partAcc.data(), partML.data());
  });
}

}  // namespace

void decodeAttention(const DecodeArgs& a, ThreadPool& pool) {
  if (a.layout.headDim % 8 != 0 || a.layout.headDim > Limits::kMaxHeadDim)
    throwArg("decodeAttention: headDim must be a multiple of 8 and at most 256");
  switch (a.layout.dtype) {
    case DType::F32: return decodeTyped<DType::F32>(a, pool);
    case DType::F16: return decodeTyped<DType::F16>(a, pool);
    default: return decodeTyped<DType::BF16>(a, pool);
  }
}

}  // namespace kvcake::cpu
