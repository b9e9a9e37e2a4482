// Paged decode and prefill attention, written once against a vector type `Vec` (vec_*.h)
// and compiled once per ISA level: each attention_<level>.cc defines KVCAKE_CPU_NS,
// includes the standard headers, switches the target on, includes its vec_*.h and then
// this file, so every function here lives in that level's own namespace and no inline
// function compiled for one level can stand in for another at link time.
//
// Scores are kept in the log2 domain (queries are pre-multiplied by scale * log2(e)) so the
// softmax needs exp2 only. The online softmax rescales lazily: a running reference max
// moves only when a new score passes it by more than kRescaleAbove, so most windows skip
// the accumulator rescale; probabilities are then at most 2^kRescaleAbove, far inside fp32.
//
// Decode: one task owns (sequence, context split) and all of its heads. It walks the split
// in block-table order, a window of at most one block at a time; for each window it scores
// every query head of each KV head against that head's K rows, folds the window into the
// softmax for all heads at once (scores are stored row-major over heads, so the max, exp2
// and sums run across heads in full vectors), then adds each head's V rows. A block's K
// half and V half are each swept in address order, and while a window is computed the next
// window's K and V lines are prefetched a few at a time from inside the tiles, so the jump
// to a shuffled table's next block is already in flight when it is reached.
//
// Prefill: one task owns a query tile (consecutive query rows of one sequence times the
// query heads of one GQA group), scored against windows of up to kWindow keys that may span
// blocks, with the causal mask exact per row.
#pragma once

#include "cpu/attention_tiles_impl.h"

namespace kvcake::cpu::KVCAKE_CPU_NS {

// ---- decode ----

struct Item {
  int32_t seq;
  int64_t begin, end;  // cache positions [begin, end)
  int64_t partial;     // partial-result slot, -1 when the sequence is not split
};

template <DType T>
void decodeTask(const DecodeArgs& a, const Item& it, float* partAcc, float* partML) {
  const KVLayout& L = a.layout;
  const int D = L.headDim, H = a.numHeads, G = H / L.numKvHeads, bs = L.blockSize;
  const int Hp = (H + kL - 1) / kL * kL;
  const auto* pool = static_cast<const Elem<T>*>(a.pool);
  const int32_t* table = a.blockTables + int64_t(it.seq) * a.tableStride;
  const int64_t rowBytes = int64_t(D) * int64_t(sizeof(Elem<T>));
  Prefetcher pf;
  // The first window has no window before it to hide its fetch: start it now, while the
  // working set is set up.
  if (it.begin < it.end) {
    const int64_t block = table[it.begin / bs];
    const int tok = int(it.begin % bs);
    const int n = int(std::min<int64_t>({int64_t(bs - tok), int64_t(kWindow), it.end - it.begin}));
    for (int kv = 0; kv < 2; ++kv)
      for (int h = 0; h < L.numKvHeads; ++h) {
        pf.reset(pool + L.offset(block, kv, h, tok), n * rowBytes, 1);
        pf.finish();
      }
  }

  Work& w = work();
  w.q.resize(size_t(H) * D);
  if constexpr (kBf16Dot<T>) w.qh.resize(size_t(H) * D);
  w.acc.assign(size_t(H) * D, 0.f);
  w.m.assign(size_t(Hp), 0.f);
  std::fill_n(w.m.begin(), H, -INFINITY);
  w.l.assign(size_t(Hp), 0.f);
  w.s.assign(size_t(kWindow) * Hp, 0.f);
  const int64_t qOff = int64_t(it.seq) * H * D;
  const float qScale = a.scale * kLog2e;
  loadQueries<T>(w, 0, static_cast<const Elem<T>*>(a.q) + qOff, D, H, D, qScale);
  const Elem<T>* krows[kWindow];
  for (int64_t pos = it.begin; pos < it.end;) {
    const int64_t block = table[pos / bs];
    const int tok = int(pos % bs);
    const int n = int(std::min<int64_t>({int64_t(bs - tok), int64_t(kWindow), it.end - pos}));
    // The next window, whose lines are prefetched while this one is computed.
    const int64_t npos = pos + n;
    int64_t nblock = -1;
    int ntok = 0, nn = 0;
    if (npos < it.end) {
      nblock = table[npos / bs];
      ntok = int(npos % bs);
      nn = int(std::min<int64_t>({int64_t(bs - ntok), int64_t(kWindow), it.end - npos}));
    }
    // Where each K/V line feeds two or more query heads, a window's compute outlasts the
    // fetch of the next one, and that window's lines are spread over every inner iteration
    // of the tiles, which keeps the requests in flight few and steady (one thread, fp16,
    // GQA 4: 15-17 GB/s, against 12-14 with the lines sent at each tile's start). With one
    // query head per KV head the compute is the shorter, and the lines go out at each
    // tile's start (18-20 GB/s there, against 15-16 spread out).
    const Prefetcher::Pace pace = G >= 2 ? Prefetcher::Pace::Inner : Prefetcher::Pace::Tile;
    const int GH = scoreHeadsAtOnce(G);
    const int scoreTiles = std::max(1, n / (kL / GH));
    const int scoreSteps = pace == Prefetcher::Pace::Tile ? scoreTiles : scoreTiles * scoreTileIterations<T>(D);
    for (int h = 0; h < L.numKvHeads; ++h) {
      const Elem<T>* k = pool + L.offset(block, 0, h, tok);
      for (int r = 0; r < n; ++r) krows[r] = k + int64_t(r) * D;
      if (nblock >= 0) pf.reset(pool + L.offset(nblock, 0, h, ntok), nn * rowBytes, scoreSteps, pace);
      else pf.reset(nullptr, 0, 1);
      scoreRows<T, true>(w.q.data() + int64_t(h) * G * D, w.qh.data() + (kBf16Dot<T> ? int64_t(h) * G * D : 0), qScale, G,
                   D, krows, n, w.s.data() + h * G, 1, Hp, &pf);
      pf.finish();
    }
    softmaxHeads(w, H, Hp, D, n);
    const int pvTiles = std::max(1, D / (kPvColumns * kL));
    const int pvSteps = pace == Prefetcher::Pace::Tile ? pvTiles : pvTiles * std::max(1, n / pvRowsAtOnce(GH, kPvColumns));
    for (int h = 0; h < L.numKvHeads; ++h) {
      if (nblock >= 0) pf.reset(pool + L.offset(nblock, 1, h, ntok), nn * rowBytes, pvSteps, pace);
      else pf.reset(nullptr, 0, 1);
      accumulateRows<T>(w.s.data() + h * G, 1, Hp, G, D, pool + L.offset(block, 1, h, tok), n,
                        w.acc.data() + int64_t(h) * G * D, &pf);
      pf.finish();
    }
    pos = npos;
  }
  if (it.partial < 0) {
    for (int h = 0; h < H; ++h) {
      const F inv = Vec::set1(w.l[h] > 0.f ? 1.f / w.l[h] : 0.f);
      for (int d = 0; d < D; d += kL)
        Vec::template storeT<T>(static_cast<Elem<T>*>(a.out) + qOff + int64_t(h) * D + d,
                                Vec::mul(inv, Vec::load(w.acc.data() + int64_t(h) * D + d)));
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
void mergeSplits(const DecodeArgs& a, int seq, int64_t firstPartial, int nsplit, int h, const float* partAcc,
                 const float* partML) {
  const int D = a.layout.headDim;
  float M = -INFINITY;
  for (int i = 0; i < nsplit; ++i) M = std::max(M, partML[((firstPartial + i) * a.numHeads + h) * 2]);
  float l = 0.f;
  F out[Limits::kMaxHeadDim / kL];
  for (int d = 0; d < D / kL; ++d) out[d] = Vec::zero();
  for (int i = 0; i < nsplit; ++i) {
    const int64_t slot = (firstPartial + i) * a.numHeads + h;
    if (!(partML[slot * 2 + 1] > 0.f)) continue;
    const float wgt = exp2Scalar(partML[slot * 2] - M);
    l += wgt * partML[slot * 2 + 1];
    const F wv = Vec::set1(wgt);
    for (int d = 0; d < D / kL; ++d) out[d] = Vec::fmadd(wv, Vec::load(partAcc + slot * D + d * kL), out[d]);
  }
  const F inv = Vec::set1(l > 0.f ? 1.f / l : 0.f);
  auto* o = static_cast<Elem<T>*>(a.out) + (int64_t(seq) * a.numHeads + h) * D;
  for (int d = 0; d < D / kL; ++d) Vec::template storeT<T>(o + d * kL, Vec::mul(inv, out[d]));
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
  struct SplitSeq {
    int32_t seq, nsplit;
    int64_t firstPartial;
  };
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
    for (int64_t i = 0; i < ns; ++i) items.push_back(Item{b, i * splitTokens, std::min(n, (i + 1) * splitTokens), partials++});
  }
  std::vector<float> partAcc(size_t(partials) * a.numHeads * L.headDim), partML(size_t(partials) * a.numHeads * 2);
  pool.parallelFor(int64_t(items.size()),
                   [&](int64_t t) { decodeTask<T>(a, items[size_t(t)], partAcc.data(), partML.data()); });
  if (splitSeqs.empty()) return;
  pool.parallelFor(int64_t(splitSeqs.size()), [&](int64_t i) {
    const SplitSeq& s = splitSeqs[size_t(i)];
    for (int h = 0; h < a.numHeads; ++h) mergeSplits<T>(a, s.seq, s.firstPartial, s.nsplit, h, partAcc.data(), partML.data());
  });
}

// ---- prefill ----

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
  w.q.resize(size_t(nq) * D);
  if constexpr (kBf16Dot<T>) w.qh.resize(size_t(nq) * D);
  w.acc.assign(size_t(nq) * D, 0.f);
  w.m.assign(size_t(nq), -INFINITY);
  w.l.assign(size_t(nq), 0.f);
  w.s.resize(size_t(nq) * kWindow);
  const int64_t qLen = a.qStartLoc[t.seq + 1] - a.qStartLoc[t.seq];
  const int64_t firstPos = int64_t(a.contextLens[t.seq]) - qLen + t.row0;  // position of tile row 0
  const float qScale = a.scale * kLog2e;
  // Vector i = r * G + g: row r of the tile, head g of the group (contiguous in q).
  for (int r = 0; r < t.rows; ++r) {
    const int64_t src = ((a.qStartLoc[t.seq] + t.row0 + r) * int64_t(a.numHeads) + int64_t(kvh) * G) * D;
    loadQueries<T>(w, r * G, static_cast<const Elem<T>*>(a.q) + src, D, G, D, qScale);
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
    int nk = 0;
    for (int i = 0; i < nseg; ++i)
      for (int r = 0; r < segs[i].rows; ++r) krows[nk++] = pool + segs[i].k + int64_t(r) * D;
    scoreRows<T, false>(w.q.data(), w.qh.data(), qScale, nq, D, krows, n, w.s.data(), kWindow, 1, nullptr);
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
    softmaxRows(w, nq, D, n);
    for (int i = 0; i < nseg; ++i)
      accumulateRows<T>(w.s.data() + segs[i].first, kWindow, 1, nq, D, pool + segs[i].v, segs[i].rows, w.acc.data(),
                        nullptr);
    std::copy(next, next + nnext, segs);
    nseg = nnext;
    c += n;
  }
  for (int r = 0; r < t.rows; ++r)
    for (int g = 0; g < G; ++g) {
      const int i = r * G + g;
      const int64_t dst = ((a.qStartLoc[t.seq] + t.row0 + r) * int64_t(a.numHeads) + int64_t(kvh) * G + g) * D;
      const F inv = Vec::set1(w.l[i] > 0.f ? 1.f / w.l[i] : 0.f);
      for (int d = 0; d < D; d += kL)
        Vec::template storeT<T>(static_cast<Elem<T>*>(a.out) + dst + d,
                                Vec::mul(inv, Vec::load(w.acc.data() + int64_t(i) * D + d)));
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

// ---- benchmark references ----

// Reads the listed blocks once each (the byte stream cut into equal ranges, one per task,
// as copyBlocks does) and folds them into a max so the loads cannot be dropped.
inline float streamRead(const ReadArgs& a, ThreadPool& pool) {
  const int64_t total = a.blockBytes * a.numBlocks;
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(int64_t(pool.size()) * 4, total / (256 << 10)));
  std::vector<float> part(size_t(tasks), 0.f);
  pool.parallelFor(tasks, [&](int64_t t) {
    const int64_t lo = total * t / tasks, hi = total * (t + 1) / tasks;
    constexpr int64_t kStep = 4 * kL * int64_t(sizeof(float));
    F m0 = Vec::zero(), m1 = m0, m2 = m0, m3 = m0;
    for (int64_t pos = lo / kStep * kStep; pos < hi;) {
      const int64_t blk = pos / a.blockBytes, inBlock = pos % a.blockBytes;
      const int64_t stop = std::min(hi, pos - inBlock + a.blockBytes);
      const float* p = reinterpret_cast<const float*>(a.base + int64_t(a.blocks[blk]) * a.blockBytes + inBlock);
      for (int64_t o = 0; pos + o + kStep <= stop; o += kStep, p += 4 * kL) {
        m0 = Vec::max(m0, Vec::load(p));
        m1 = Vec::max(m1, Vec::load(p + kL));
        m2 = Vec::max(m2, Vec::load(p + 2 * kL));
        m3 = Vec::max(m3, Vec::load(p + 3 * kL));
      }
      pos = stop;
    }
    part[size_t(t)] = Vec::hmax(Vec::max(Vec::max(m0, m1), Vec::max(m2, m3)));
  });
  return *std::max_element(part.begin(), part.end());
}

// `iterations` rounds of 12 independent FMA chains on every thread of the pool: the
// arithmetic peak of this level. Returns the flops done.
inline double fmaPeak(int64_t iterations, ThreadPool& pool) {
  const int n = pool.size();
  std::vector<float> sink(size_t(n), 0.f);
  pool.parallelFor(n, [&](int64_t t) {
    F x[12];
    for (int i = 0; i < 12; ++i) x[i] = Vec::set1(float(i + t) * 1e-3f);
    const F b = Vec::set1(0.999f), c = Vec::set1(1e-4f);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) x[i] = Vec::fmadd(x[i], b, c);
    }
    F s = x[0];
    for (int i = 1; i < 12; ++i) s = Vec::add(s, x[i]);
    sink[size_t(t)] = Vec::hsum(s);
  });
  volatile float keep = sink[0];
  (void)keep;
  return double(iterations) * 12 * kL * 2 * n;
}

// ---- entry points ----

#ifndef KVCAKE_CPU_BF16_ONLY
void decode(const DecodeArgs& a, ThreadPool& pool) {
  switch (a.layout.dtype) {
    case DType::F32: return decodeTyped<DType::F32>(a, pool);
    case DType::F16: return decodeTyped<DType::F16>(a, pool);
    default: return decodeTyped<DType::BF16>(a, pool);
  }
}

void prefill(const PrefillArgs& a, ThreadPool& pool) {
  switch (a.layout.dtype) {
    case DType::F32: return prefillTyped<DType::F32>(a, pool);
    case DType::F16: return prefillTyped<DType::F16>(a, pool);
    default: return prefillTyped<DType::BF16>(a, pool);
  }
}

float referenceRead(const ReadArgs& a, ThreadPool& pool) { return streamRead(a, pool); }
double referenceFma(int64_t iterations, ThreadPool& pool) { return fmaPeak(iterations, pool); }
#else
void decode(const DecodeArgs& a, ThreadPool& pool) {
  if (a.layout.dtype != DType::BF16) throwArg("decode: this path runs bf16 pools only");
  decodeTyped<DType::BF16>(a, pool);
}

void prefill(const PrefillArgs& a, ThreadPool& pool) {
  if (a.layout.dtype != DType::BF16) throwArg("prefill: this path runs bf16 pools only");
  prefillTyped<DType::BF16>(a, pool);
}
#endif

}  // namespace kvcake::cpu::KVCAKE_CPU_NS
