// The building blocks of attention_impl.h, compiled per ISA level in the same way (the level
// file includes it through attention_impl.h, inside that level's namespace): constants, the
// prefetcher, the per-task working set, query loading, score tiles, P*V tiles and the online
// softmax over a window. See attention_impl.h for how decode and prefill use them.
#pragma once

namespace kvcake::cpu::KVCAKE_CPU_NS {

using F = Vec::F;
constexpr int kL = Vec::kLanes;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kRescaleAbove = 16.f;
// Context positions per split below which splitting costs more than it gains.
constexpr int64_t kMinSplitTokens = 512;
// Prefill query vectors per tile: enough to amortize each K/V row's load, few enough that
// scores and accumulators stay in L1/L2.
constexpr int kTileVectors = 32;
// Column vectors of the widest P*V tile (pvHeads).
constexpr int kPvColumns = kL == 16 ? 4 : 2;

template <DType T>
using Elem = std::conditional_t<T == DType::F32, float, uint16_t>;

template <DType T>
constexpr bool kBf16Dot = T == DType::BF16 && Vec::kBf16Dot;

// Vec as a name that depends on T, so the bf16 dot members are looked up only where used.
template <DType T>
struct VecOf {
  using V = Vec;
};

inline float exp2Scalar(float x) { return x < -126.f ? 0.f : std::exp2(x); }

// Prefetches one contiguous run into L2 a few lines per step, so the requests are spread
// through the compute loops instead of queued in one burst. The steps come at one of two
// paces, chosen at reset: once per tile, or once per iteration inside a tile.
struct Prefetcher {
  enum class Pace { Tile, Inner };
  const char* p = nullptr;
  const char* end = nullptr;
  int perStep = 0;
  Pace pace = Pace::Tile;
  void reset(const void* begin, int64_t bytes, int steps, Pace at = Pace::Tile) {
    p = static_cast<const char*>(begin);
    end = p + bytes;
    pace = at;
    const int64_t lines = (bytes + 63) / 64;
    perStep = steps > 0 ? int((lines + steps - 1) / steps) : int(lines);
  }
  // A step at pace `at`; a no-op at the other pace.
  void step(Pace at) {
    if (at != pace) return;
    for (int i = 0; i < perStep && p < end; ++i, p += 64) KVCAKE_PREFETCH_L2(p);
  }
  // Whatever the steps left.
  void finish() {
    for (; p < end; p += 64) KVCAKE_PREFETCH_L2(p);
  }
};

// Query vectors a score tile takes at once out of a group of g (scoreRows: 4, 2, then 1).
constexpr int scoreHeadsAtOnce(int g) { return g >= 4 ? 4 : g >= 2 ? 2 : 1; }
// V rows a P*V tile of gp query vectors and c column vectors keeps in flight (pvTile).
constexpr int pvRowsAtOnce(int gp, int c) { return gp * c >= 8 ? 1 : gp * c >= 4 ? 2 : 4; }

// Per-task working set: scaled queries (and raw bf16 queries for the bf16 dot path),
// fp32 accumulators, running reference max / sum, and a window's scores (then
// probabilities).
struct Work {
  std::vector<float> q, acc, m, l, s;
  std::vector<uint16_t> qh;
};

inline Work& work() {
  thread_local Work w;
  return w;
}

// Query vectors i0 .. i0 + nq of the task from src (vector i0 + i at src + i * srcStride),
// scaled into the log2 domain; raw copies too for the bf16 dot path.
template <DType T>
void loadQueries(Work& w, int i0, const Elem<T>* src, int64_t srcStride, int nq, int D, float qScale) {
  for (int i = 0; i < nq; ++i)
    for (int d = 0; d < D; d += kL)
      Vec::store(w.q.data() + int64_t(i0 + i) * D + d,
                 Vec::mul(Vec::set1(qScale), Vec::template loadT<T>(src + i * srcStride + d)));
  if constexpr (kBf16Dot<T>) {
    for (int i = 0; i < nq; ++i)
      std::memcpy(w.qh.data() + int64_t(i0 + i) * D, src + i * srcStride, size_t(D) * sizeof(uint16_t));
  }
}

// ---- scores ----

// Iterations of scoreTile's loop over the head dim (the steps its inner pace takes): 32
// values at a time on the bf16 dot path, kL otherwise.
template <DType T>
constexpr int scoreTileIterations(int D) {
  return kBf16Dot<T> ? D / 32 : D / kL;
}

// s[r * rs + g * gs] = q_g . k_r for GH query vectors (q + g * D, or qh for the bf16 dot
// path, which multiplies by qScale at the end) and R key rows k[0 .. R): GH * R dot
// products share every key load and every query load, and one reduction finishes them.
// `pf`, if given, is stepped at its inner pace once per iteration over the head dim.
// With HeadsInner (gs == 1, decode) the results leave in runs of GH heads per row, else
// (rs == 1, prefill) in runs of R rows per query vector.
template <DType T, int GH, int R, bool HeadsInner>
inline void scoreTile(const float* q, const uint16_t* qh, float qScale, int D, const Elem<T>* const* k, float* s,
                      int64_t gs, int64_t rs, Prefetcher* pf = nullptr) {
  static_assert(GH * R <= kL, "one reduction per tile");
  constexpr auto at = [](int g, int r) { return HeadsInner ? r * GH + g : g * R + r; };
  F acc[kL];
#pragma GCC unroll 16
  for (int i = 0; i < kL; ++i) acc[i] = Vec::zero();
  if constexpr (kBf16Dot<T>) {
    int d = 0;
    for (; d + 32 <= D; d += 32) {
      if (pf) pf->step(Prefetcher::Pace::Inner);
#pragma GCC unroll 16
      for (int g = 0; g < GH; ++g)
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[at(g, r)] = VecOf<T>::V::dotBf16(acc[at(g, r)], qh + int64_t(g) * D + d, k[r] + d);
    }
    if (d < D) {
#pragma GCC unroll 16
      for (int g = 0; g < GH; ++g)
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[at(g, r)] = VecOf<T>::V::dotBf16Half(acc[at(g, r)], qh + int64_t(g) * D + d, k[r] + d);
    }
  } else {
    (void)qh;
    for (int d = 0; d < D; d += kL) {
      if (pf) pf->step(Prefetcher::Pace::Inner);
      F kv[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) kv[r] = Vec::template loadT<T>(k[r] + d);
#pragma GCC unroll 16
      for (int g = 0; g < GH; ++g) {
        F qv = Vec::load(q + int64_t(g) * D + d);
        Vec::inRegister(qv);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[at(g, r)] = Vec::fmadd(qv, kv[r], acc[at(g, r)]);
      }
    }
  }
  alignas(64) float t[kL];
  F sums = Vec::hsums(acc);
  if constexpr (kBf16Dot<T>) sums = Vec::mul(sums, Vec::set1(qScale));
  Vec::store(t, sums);
  if constexpr (HeadsInner) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) std::memcpy(s + r * rs, t + r * GH, sizeof(float) * GH);
  } else {
#pragma GCC unroll 16
    for (int g = 0; g < GH; ++g) std::memcpy(s + g * gs, t + g * R, sizeof(float) * R);
  }
}

// Scores of GH query vectors against `rows` key rows: tiles of kL / GH rows (so each tile
// fills one reduction), then halving tiles for the rest. `pf` steps in the full tiles.
template <DType T, int GH, bool HeadsInner>
void scoreRowsGH(const float* q, const uint16_t* qh, float qScale, int D, const Elem<T>* const* k, int rows, float* s,
                 int64_t gs, int64_t rs, Prefetcher* pf) {
  constexpr int R = kL / GH;
  int j = 0;
  for (; j + R <= rows; j += R) {
    if (pf) pf->step(Prefetcher::Pace::Tile);
    scoreTile<T, GH, R, HeadsInner>(q, qh, qScale, D, k + j, s + j * rs, gs, rs, pf);
  }
  if constexpr (R >= 2) {
    if (j + R / 2 <= rows) scoreTile<T, GH, R / 2, HeadsInner>(q, qh, qScale, D, k + j, s + j * rs, gs, rs), j += R / 2;
  }
  if constexpr (R >= 4) {
    if (j + R / 4 <= rows) scoreTile<T, GH, R / 4, HeadsInner>(q, qh, qScale, D, k + j, s + j * rs, gs, rs), j += R / 4;
  }
  if constexpr (R >= 8) {
    if (j + R / 8 <= rows) scoreTile<T, GH, R / 8, HeadsInner>(q, qh, qScale, D, k + j, s + j * rs, gs, rs), j += R / 8;
  }
  for (; j < rows; ++j) scoreTile<T, GH, 1, HeadsInner>(q, qh, qScale, D, k + j, s + j * rs, gs, rs);
}

// Scores of nq query vectors (chunks of 4, 2, 1 sharing each key row) against the rows.
template <DType T, bool HeadsInner>
void scoreRows(const float* q, const uint16_t* qh, float qScale, int nq, int D, const Elem<T>* const* k, int rows,
               float* s, int64_t gs, int64_t rs, Prefetcher* pf) {
  int i = 0;
  for (; i + 4 <= nq; i += 4, pf = nullptr)
    scoreRowsGH<T, 4, HeadsInner>(q + int64_t(i) * D, qh + int64_t(i) * D, qScale, D, k, rows, s + i * gs, gs, rs, pf);
  if (i + 2 <= nq) {
    scoreRowsGH<T, 2, HeadsInner>(q + int64_t(i) * D, qh + int64_t(i) * D, qScale, D, k, rows, s + i * gs, gs, rs, pf);
    i += 2;
    pf = nullptr;
  }
  if (i < nq) scoreRowsGH<T, 1, HeadsInner>(q + int64_t(i) * D, qh + int64_t(i) * D, qScale, D, k, rows, s + i * gs, gs, rs, pf);
}

// ---- P * V ----

// acc[g * D + c] += sum_j p[g * pg + j * pj] * V_j[c] for GP query vectors and the C * kL
// columns at v (row j at v + j * D): the accumulators stay in registers over the rows and
// each converted V vector feeds GP FMAs; with few of them, J rows are in flight at once
// (separate partial sums) so there are at least 8 independent FMA chains. `pf`, if given,
// is stepped at its inner pace once per J rows.
template <DType T, int GP, int C>
inline void pvTile(const float* p, int64_t pg, int64_t pj, const Elem<T>* v, int n, int D, float* acc, Prefetcher* pf = nullptr) {
  constexpr int J = pvRowsAtOnce(GP, C);
  F x[J][GP][C];
#pragma GCC unroll 4
  for (int g = 0; g < GP; ++g)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      x[0][g][c] = Vec::load(acc + int64_t(g) * D + c * kL);
#pragma GCC unroll 4
      for (int u = 1; u < J; ++u) x[u][g][c] = Vec::zero();
    }
  int j = 0;
  for (; j + J <= n; j += J) {
    if (pf) pf->step(Prefetcher::Pace::Inner);
#pragma GCC unroll 4
    for (int u = 0; u < J; ++u) {
      F vv[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) vv[c] = Vec::template loadT<T>(v + int64_t(j + u) * D + c * kL);
#pragma GCC unroll 4
      for (int g = 0; g < GP; ++g) {
        const F pb = Vec::bcast(p + g * pg + (j + u) * pj);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) x[u][g][c] = Vec::fmadd(pb, vv[c], x[u][g][c]);
      }
    }
  }
  for (; j < n; ++j) {
    F vv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) vv[c] = Vec::template loadT<T>(v + int64_t(j) * D + c * kL);
#pragma GCC unroll 4
    for (int g = 0; g < GP; ++g) {
      const F pb = Vec::bcast(p + g * pg + j * pj);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) x[0][g][c] = Vec::fmadd(pb, vv[c], x[0][g][c]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < GP; ++g)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
#pragma GCC unroll 4
      for (int u = 1; u < J; ++u) x[0][g][c] = Vec::add(x[0][g][c], x[u][g][c]);
      Vec::store(acc + int64_t(g) * D + c * kL, x[0][g][c]);
    }
}

// Widest column tile: kPvColumns vectors, 64 columns with 16 lanes, 16 with 8 (every head
// dim is a multiple of 16). `pf` steps in the widest tiles.
template <DType T, int GP>
void pvHeads(const float* p, int64_t pg, int64_t pj, const Elem<T>* v, int n, int D, float* acc, Prefetcher* pf) {
  constexpr int CMax = kPvColumns;
  int c = 0;
  for (; c + CMax * kL <= D; c += CMax * kL) {
    if (pf) pf->step(Prefetcher::Pace::Tile);
    pvTile<T, GP, CMax>(p, pg, pj, v + c, n, D, acc + c, pf);
  }
  if constexpr (CMax >= 4) {
    if (c + 2 * kL <= D) pvTile<T, GP, 2>(p, pg, pj, v + c, n, D, acc + c), c += 2 * kL;
  }
  if constexpr (CMax >= 2) {
    if (c + kL <= D) pvTile<T, GP, 1>(p, pg, pj, v + c, n, D, acc + c), c += kL;
  }
}

// acc[i] += sum_j p[i * pg + j * pj] * V_j for query vectors i in [0, nq) (chunks of 4, 2, 1
// sharing each V row) and n consecutive V rows at v.
template <DType T>
void accumulateRows(const float* p, int64_t pg, int64_t pj, int nq, int D, const Elem<T>* v, int n, float* acc,
                    Prefetcher* pf) {
  int i = 0;
  for (; i + 4 <= nq; i += 4, pf = nullptr) pvHeads<T, 4>(p + i * pg, pg, pj, v, n, D, acc + int64_t(i) * D, pf);
  if (i + 2 <= nq) {
    pvHeads<T, 2>(p + i * pg, pg, pj, v, n, D, acc + int64_t(i) * D, pf);
    i += 2;
    pf = nullptr;
  }
  if (i < nq) pvHeads<T, 1>(p + i * pg, pg, pj, v, n, D, acc + int64_t(i) * D, pf);
}

// ---- online softmax ----

// Moves query vector i's reference max to mNew: its sum and accumulators scale by
// 2^(m - mNew).
inline void rebase(Work& w, int i, int D, float mNew) {
  const float corr = exp2Scalar(w.m[i] - mNew);
  w.m[i] = mNew;
  if (corr == 1.f) return;
  w.l[i] *= corr;
  float* acc = w.acc.data() + int64_t(i) * D;
  const F c = Vec::set1(corr);
  for (int d = 0; d < D; d += kL) Vec::store(acc + d, Vec::mul(c, Vec::load(acc + d)));
}

// Decode: folds a window of n rows into the softmax of all H heads. Scores sit at
// s[j * Hp + h] (Hp = H rounded up to kL; padding lanes hold finite junk with m = 0), so
// the max, exp2 and sums run over kL heads per instruction.
inline void softmaxHeads(Work& w, int H, int Hp, int D, int n) {
  float* s = w.s.data();
  for (int c = 0; c < Hp; c += kL) {
    F mx = Vec::load(s + c);
    for (int j = 1; j < n; ++j) mx = Vec::max(mx, Vec::load(s + int64_t(j) * Hp + c));
    unsigned need = Vec::gtMask(mx, Vec::add(Vec::load(w.m.data() + c), Vec::set1(kRescaleAbove)));
    if (need) {
      alignas(64) float t[kL];
      Vec::store(t, mx);
      for (int i = 0; i < kL; ++i)
        if ((need >> i & 1) && c + i < H) rebase(w, c + i, D, t[i]);
    }
    const F mv = Vec::load(w.m.data() + c);
    F sum = Vec::zero();
    for (int j = 0; j < n; ++j) {
      float* sj = s + int64_t(j) * Hp + c;
      const F p = Vec::exp2(Vec::sub(Vec::load(sj), mv));
      Vec::store(sj, p);
      sum = Vec::add(sum, p);
    }
    Vec::store(w.l.data() + c, Vec::add(Vec::load(w.l.data() + c), sum));
  }
}

// Prefill: folds a window into the softmax of each of nq query vectors, scores at
// s[i * kWindow + j] (masked keys are -inf), n <= kWindow.
inline void softmaxRows(Work& w, int nq, int D, int n) {
  const int padded = (n + kL - 1) / kL * kL;
  for (int i = 0; i < nq; ++i) {
    float* s = w.s.data() + int64_t(i) * kWindow;
    for (int j = n; j < padded; ++j) s[j] = -INFINITY;
    F mx = Vec::load(s);
    for (int j = kL; j < padded; j += kL) mx = Vec::max(mx, Vec::load(s + j));
    const float m = Vec::hmax(mx);
    if (m > w.m[i] + kRescaleAbove || w.m[i] == -INFINITY) {
      if (m == -INFINITY) {  // every key so far masked: nothing to fold in
        std::fill_n(s, padded, 0.f);
        continue;
      }
      rebase(w, i, D, m);
    }
    const F mv = Vec::set1(w.m[i]);
    F sum = Vec::zero();
    for (int j = 0; j < padded; j += kL) {
      const F p = Vec::exp2(Vec::sub(Vec::load(s + j), mv));
      Vec::store(s + j, p);
      sum = Vec::add(sum, p);
    }
    w.l[i] += Vec::hsum(sum);
  }
}

}  // namespace kvcake::cpu::KVCAKE_CPU_NS
