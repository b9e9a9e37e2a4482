// Standalone check and microbenchmark for the CPU kernels (csrc/cpu/kernels_*.cc).
// Every kernel is compared with a naive double-precision reference on randomized shapes
// (head dims, block sizes, GQA ratios, varlen batches, shuffled block tables, empty and
// long contexts); then bandwidth / throughput is measured against memcpy in the same run
// (bench.cc).
// Build and usage: see README.md next to this file.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>

#include "cpu/isa.h"
#include "cpu/kernels.h"
#include "tools/kernel-check/kernel_check.h"

using namespace kvcake;
using namespace kvcake::cpu;
using namespace kvcake::kernel_check;

namespace kvcake::kernel_check {
Isa g_isa = Isa::Scalar;
DType g_benchDtype = DType::F16;
}  // namespace kvcake::kernel_check

namespace {

// ---- reference element codecs (bit manipulation only, independent of the kernels) ----

double halfToDouble(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(double(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(double(m | 1024), e - 25);
  return s ? -v : v;
}

// Round to nearest even on the double value; only finite, modest inputs are encoded here.
uint16_t doubleToHalf(double x) {
  uint16_t sign = x < 0 ? 0x8000 : 0;
  double a = std::fabs(x);
  if (std::isnan(x)) return 0x7e00;
  if (a >= 65520.0) return sign | 0x7c00;
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  int exp = e - 1;    // a in [2^exp, 2^(exp+1))
  if (exp < -14) exp = -14;  // subnormal range: fixed quantum 2^-24
  const double q = std::ldexp(1.0, exp - 10);
  double m = std::nearbyint(a / q);  // default rounding mode is nearest-even
  uint32_t mant = uint32_t(m);
  int biased = exp + 15;
  if (mant >= 2048) { mant >>= 1; ++biased; }
  if (mant < 1024) return sign | uint16_t(mant);  // subnormal
  if (biased >= 31) return sign | 0x7c00;
  return sign | uint16_t(biased << 10) | uint16_t(mant & 1023);
}

double bf16ToDouble(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t doubleToBf16(double x) {
  if (std::isnan(x)) return 0x7fc0;
  const float f = float(x);  // exact for the values generated here (they come from floats)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t lower = u & 0xffff, upper = u >> 16;
  uint32_t r = upper;
  if (lower > 0x8000 || (lower == 0x8000 && (upper & 1))) ++r;
  return uint16_t(r);
}

double getRef(const void* base, int64_t i, DType t) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F16: return halfToDouble(static_cast<const uint16_t*>(base)[i]);
    default: return bf16ToDouble(static_cast<const uint16_t*>(base)[i]);
  }
}

void setRef(void* base, int64_t i, DType t, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(base)[i] = float(v); break;
    case DType::F16: static_cast<uint16_t*>(base)[i] = doubleToHalf(v); break;
    default: static_cast<uint16_t*>(base)[i] = doubleToBf16(v); break;
  }
}

// ---- test fixtures ----

struct Buf {
  std::vector<uint8_t> bytes;
  DType t;
  Buf(int64_t n, DType dt) : bytes(size_t(n) * dtypeSize(dt)), t(dt) {}
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
  int64_t n() const { return int64_t(bytes.size() / dtypeSize(t)); }
};

void fillRandom(Buf& b, std::mt19937_64& rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<float> u{float(lo), float(hi)};
  for (int64_t i = 0; i < b.n(); ++i) setRef(b.data(), i, b.t, u(rng));
}

void fillNaN(Buf& b) {
  for (int64_t i = 0; i < b.n(); ++i) setRef(b.data(), i, b.t, NAN);
}

// A pool with every sequence's blocks scattered at random; rows nobody may read hold NaN
// so a kernel that touches them produces NaN and fails the comparison.
struct PagedCase {
  KVLayout L;
  Buf pool;
  std::vector<int32_t> table;
  int32_t stride = 0;
  std::vector<int32_t> ctx;
  PagedCase(KVLayout l, const std::vector<int32_t>& ctxLens, std::mt19937_64& rng, bool shuffle = true)
      : L(l), pool(0, l.dtype), ctx(ctxLens) {
    int64_t need = 0;
    int32_t maxBlocks = 0;
    for (int32_t c : ctx) {
      const int32_t nb = (c + L.blockSize - 1) / L.blockSize;
      need += nb;
      maxBlocks = std::max(maxBlocks, nb);
    }
    L.numBlocks = int32_t(need + 1 + need / 8);
    pool = Buf(L.numBlocks * L.blockStride(), L.dtype);
    fillNaN(pool);
    std::vector<int32_t> ids(L.numBlocks);
    std::iota(ids.begin(), ids.end(), 0);
    if (shuffle) std::shuffle(ids.begin(), ids.end(), rng);
    stride = maxBlocks + int32_t(rng() % 3);
    table.assign(size_t(ctx.size()) * std::max(stride, 1), 0);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    int64_t next = 0;
    for (size_t b = 0; b < ctx.size(); ++b) {
      const int32_t nb = (ctx[b] + L.blockSize - 1) / L.blockSize;
      for (int32_t j = 0; j < stride; ++j) {
        // Entries past the last block are padding: garbage the kernel must ignore.
        table[b * stride + j] = j < nb ? ids[next++] : -int32_t(rng() % 1000000) - 1;
      }
      for (int64_t p = 0; p < ctx[b]; ++p) {
        const int64_t blk = table[b * stride + p / L.blockSize];
        for (int kv = 0; kv < 2; ++kv)
          for (int h = 0; h < L.numKvHeads; ++h) {
            const int64_t o = L.offset(blk, kv, h, int(p % L.blockSize));
            for (int d = 0; d < L.headDim; ++d) setRef(pool.data(), o + d, L.dtype, u(rng));
          }
      }
    }
  }
};

// softmax(q . k * scale) v over cache positions [0, n) of sequence b, in double.
void refAttend(const PagedCase& c, int64_t b, int kvh, const Buf& q, int64_t qOff, int64_t n,
               double scale, std::vector<double>& out) {
  const KVLayout& L = c.L;
  const int D = L.headDim;
  out.assign(D, 0.0);
  if (n <= 0) return;
  std::vector<double> s(n);
  double mx = -INFINITY;
  for (int64_t p = 0; p < n; ++p) {
    const int64_t blk = c.table[b * c.stride + p / L.blockSize];
    const int64_t o = L.offset(blk, 0, kvh, int(p % L.blockSize));
    double acc = 0;
    for (int d = 0; d < D; ++d) acc += getRef(q.data(), qOff + d, q.t) * getRef(c.pool.data(), o + d, L.dtype);
    s[p] = acc * scale;
    mx = std::max(mx, s[p]);
  }
  double sum = 0;
  for (int64_t p = 0; p < n; ++p) {
    const double w = std::exp(s[p] - mx);
    sum += w;
    const int64_t blk = c.table[b * c.stride + p / L.blockSize];
    const int64_t o = L.offset(blk, 1, kvh, int(p % L.blockSize));
    for (int d = 0; d < D; ++d) out[d] += w * getRef(c.pool.data(), o + d, L.dtype);
  }
  for (int d = 0; d < D; ++d) out[d] /= sum;
}

struct Tol {
  double abs, rel;
};
Tol tolFor(DType t) {
  switch (t) {
    // Inputs are the same dtype values on both sides, so the only differences are fp32
    // accumulation (absolute, grows slowly with context) and the output's final rounding.
    case DType::F32: return {2e-5, 1e-4};
    case DType::F16: return {2e-5, 1.1e-3};
    default: return {2e-5, 8e-3};
  }
}

int g_failures = 0;
bool expectClose(const char* what, const std::string& shape, const Buf& got, int64_t off,
                 const std::vector<double>& ref) {
  const Tol tol = tolFor(got.t);
  for (size_t d = 0; d < ref.size(); ++d) {
    const double g = getRef(got.data(), off + int64_t(d), got.t);
    if (!(std::fabs(g - ref[d]) <= tol.abs + tol.rel * std::fabs(ref[d]))) {
      if (g_failures < 20)
        std::printf("FAIL %s %s: element %zu got %.7g want %.7g\n", what, shape.c_str(), d, g, ref[d]);
      ++g_failures;
      return false;
    }
  }
  return true;
}

const int kHeadDims[] = {64, 80, 96, 128, 256};
const int kBlockSizes[] = {8, 16, 32, 64, 128, 256};
const int kKvHeads[] = {1, 2, 3, 4, 8};
const int kGroups[] = {1, 2, 3, 4, 5, 6, 7, 8, 12, 16};
const DType kDTypes[] = {DType::F32, DType::F16, DType::BF16};

template <class T, size_t N>
T pick(const T (&a)[N], std::mt19937_64& rng) { return a[rng() % N]; }

std::string shapeStr(const KVLayout& L, int numHeads, int batch, double scale) {
  char s[200];
  std::snprintf(s, sizeof s, "[%s D=%d bs=%d kv=%d heads=%d batch=%d scale=%.3g]", dtypeName(L.dtype),
                L.headDim, L.blockSize, L.numKvHeads, numHeads, batch, scale);
  return s;
}

KVLayout randomLayout(std::mt19937_64& rng) {
  KVLayout L;
  L.dtype = pick(kDTypes, rng);
  L.headDim = pick(kHeadDims, rng);
  L.blockSize = pick(kBlockSizes, rng);
  L.numKvHeads = pick(kKvHeads, rng);
  return L;
}

double randomScale(int D, std::mt19937_64& rng) {
  // Small scales give flat softmaxes; large ones peak hard and exercise the running max.
  const double opts[] = {1.0 / std::sqrt(double(D)), 0.5, 2.0};
  return opts[rng() % 3];
}

std::vector<int32_t> randomContexts(int batch, int maxCtx, std::mt19937_64& rng) {
  std::vector<int32_t> ctx(batch);
  for (auto& c : ctx) {
    const int r = int(rng() % 10);
    c = r == 0 ? 0 : r == 1 ? 1 + int(rng() % 3) : int(rng() % (maxCtx + 1));
  }
  return ctx;
}

void checkDecode(const KVLayout& L0, int G, const std::vector<int32_t>& ctx, double scale,
                 std::mt19937_64& rng, ThreadPool& tp, bool shuffle = true) {
  PagedCase c(L0, ctx, rng, shuffle);
  const KVLayout& L = c.L;
  const int batch = int(ctx.size()), numHeads = L.numKvHeads * G, D = L.headDim;
  Buf q(int64_t(batch) * numHeads * D, L.dtype), out(int64_t(batch) * numHeads * D, L.dtype);
  fillRandom(q, rng);
  fillNaN(out);
  DecodeArgs a{L, c.pool.data(), q.data(), out.data(), c.table.data(), c.stride, c.ctx.data(),
               batch, numHeads, float(scale)};
  decodeAttention(a, tp, g_isa);
  const std::string shape = shapeStr(L, numHeads, batch, scale);
  std::vector<double> ref;
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < numHeads; ++h) {
      const int64_t off = (int64_t(b) * numHeads + h) * D;
      refAttend(c, b, h / G, q, off, ctx[b], float(scale), ref);
      if (!expectClose("decode", shape + " b=" + std::to_string(b) + " ctx=" + std::to_string(ctx[b]) +
                                     " h=" + std::to_string(h), out, off, ref))
        return;
    }
}

void checkPrefill(const KVLayout& L0, int G, const std::vector<int32_t>& ctx,
                  const std::vector<int32_t>& qLens, double scale, std::mt19937_64& rng, ThreadPool& tp) {
  PagedCase c(L0, ctx, rng);
  const KVLayout& L = c.L;
  const int batch = int(ctx.size()), numHeads = L.numKvHeads * G, D = L.headDim;
  std::vector<int32_t> start(batch + 1, 0);
  for (int b = 0; b < batch; ++b) start[b + 1] = start[b] + qLens[b];
  const int64_t totalQ = start[batch];
  Buf q(std::max<int64_t>(1, totalQ * numHeads * D), L.dtype), out(std::max<int64_t>(1, totalQ * numHeads * D), L.dtype);
  fillRandom(q, rng);
  fillNaN(out);
  PrefillArgs a{L, c.pool.data(), q.data(), out.data(), start.data(), c.table.data(), c.stride,
                c.ctx.data(), batch, numHeads, float(scale)};
  prefillAttention(a, tp, g_isa);
  const std::string shape = shapeStr(L, numHeads, batch, scale);
  std::vector<double> ref;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < qLens[b]; ++i)
      for (int h = 0; h < numHeads; ++h) {
        const int64_t row = start[b] + i;
        const int64_t off = (row * numHeads + h) * D;
        const int64_t pos = ctx[b] - qLens[b] + i;
        refAttend(c, b, h / G, q, off, pos + 1, float(scale), ref);
        if (!expectClose("prefill", shape + " b=" + std::to_string(b) + " ctx=" + std::to_string(ctx[b]) +
                                        " qLen=" + std::to_string(qLens[b]) + " i=" + std::to_string(i) +
                                        " h=" + std::to_string(h), out, off, ref))
          return;
      }
}

void checkAppend(std::mt19937_64& rng, ThreadPool& tp) {
  KVLayout L = randomLayout(rng);
  L.numBlocks = 1 + int(rng() % 40);
  const int64_t slotsTotal = int64_t(L.numBlocks) * L.blockSize;
  const int numTokens = int(rng() % std::min<int64_t>(slotsTotal, 3000)) + 1;
  std::vector<int32_t> perm(slotsTotal);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> slots(numTokens);
  for (int i = 0; i < numTokens; ++i) slots[i] = rng() % 7 == 0 ? -1 - int(rng() % 5) : perm[i];
  const int64_t rowN = int64_t(L.numKvHeads) * L.headDim;
  Buf k(numTokens * rowN, L.dtype), v(numTokens * rowN, L.dtype);
  Buf pool(L.numBlocks * L.blockStride(), L.dtype);
  fillRandom(k, rng);
  fillRandom(v, rng);
  fillRandom(pool, rng);
  Buf want = pool;
  const size_t es = dtypeSize(L.dtype);
  for (int i = 0; i < numTokens; ++i) {
    if (slots[i] < 0) continue;
    const int64_t blk = slots[i] / L.blockSize;
    const int tok = slots[i] % L.blockSize;
    for (int h = 0; h < L.numKvHeads; ++h)
      for (int d = 0; d < L.headDim; ++d) {
        const int64_t src = (int64_t(i) * L.numKvHeads + h) * L.headDim + d;
        std::memcpy(&want.bytes[(L.offset(blk, 0, h, tok) + d) * es], &k.bytes[src * es], es);
        std::memcpy(&want.bytes[(L.offset(blk, 1, h, tok) + d) * es], &v.bytes[src * es], es);
      }
  }
  AppendArgs a{L, pool.data(), k.data(), v.data(), slots.data(), numTokens};
  appendKV(a, tp);
  if (pool.bytes != want.bytes) {
    std::printf("FAIL appendKV %s tokens=%d\n", shapeStr(L, 0, 0, 0).c_str(), numTokens);
    ++g_failures;
  }
}

void checkCopy(std::mt19937_64& rng, ThreadPool& tp) {
  const int64_t blockBytes = int64_t(16 + rng() % 3000) * 16;
  const int srcBlocks = 1 + int(rng() % 64), dstBlocks = 1 + int(rng() % 64);
  const int numPairs = int(rng() % (dstBlocks + 1));
  std::vector<uint8_t> src(srcBlocks * blockBytes), dst(dstBlocks * blockBytes);
  for (auto& x : src) x = uint8_t(rng());
  for (auto& x : dst) x = uint8_t(rng());
  std::vector<int32_t> dperm(dstBlocks);
  std::iota(dperm.begin(), dperm.end(), 0);
  // Half the cases use runs of consecutive blocks so coalescing is exercised.
  if (rng() % 2) std::shuffle(dperm.begin(), dperm.end(), rng);
  const int srcStart = int(rng() % srcBlocks);
  std::vector<int32_t> pairs(2 * numPairs);
  for (int i = 0; i < numPairs; ++i) {
    pairs[2 * i] = rng() % 3 ? (srcStart + i) % srcBlocks : int(rng() % srcBlocks);
    pairs[2 * i + 1] = dperm[i];
  }
  std::vector<uint8_t> want = dst;
  for (int i = 0; i < numPairs; ++i)
    std::memcpy(&want[pairs[2 * i + 1] * blockBytes], &src[pairs[2 * i] * blockBytes], blockBytes);
  CopyArgs a{blockBytes, src.data(), dst.data(), pairs.data(), numPairs};
  copyBlocks(a, tp);
  if (dst != want) {
    std::printf("FAIL copyBlocks blockBytes=%lld pairs=%d\n", (long long)blockBytes, numPairs);
    ++g_failures;
  }
}

// Copies past the size where copyBlocks streams its stores: block sizes that are not a
// multiple of 64 bytes (unaligned heads and tails), runs and scattered pairs.
void checkLargeCopy(std::mt19937_64& rng, ThreadPool& tp) {
  const int64_t blockBytes = int64_t(1000 + rng() % 9000) * 16;
  const int n = int((24 << 20) / blockBytes);
  std::vector<uint8_t> src(size_t(n) * blockBytes), dst(size_t(n + 3) * blockBytes, 0xee);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 2654435761u >> 13);
  std::vector<int32_t> d(n + 3);
  std::iota(d.begin(), d.end(), 0);
  std::shuffle(d.begin() + n / 2, d.end(), rng);  // first half: one run; second half scattered
  std::vector<int32_t> pairs(2 * n);
  for (int i = 0; i < n; ++i) pairs[2 * i] = i, pairs[2 * i + 1] = d[i];
  std::vector<uint8_t> want = dst;
  for (int i = 0; i < n; ++i) std::memcpy(&want[d[i] * blockBytes], &src[i * blockBytes], blockBytes);
  CopyArgs a{blockBytes, src.data(), dst.data(), pairs.data(), n};
  copyBlocks(a, tp);
  if (dst != want) {
    std::printf("FAIL copyBlocks (streamed) blockBytes=%lld pairs=%d\n", (long long)blockBytes, n);
    ++g_failures;
  }
}

void runChecks(uint64_t seed, int iters, bool longCtx, ThreadPool& tp) {
  std::mt19937_64 rng(seed);
  int decodeCases = 0, prefillCases = 0;
  for (int it = 0; it < iters; ++it) {
    {
      KVLayout L = randomLayout(rng);
      const int G = pick(kGroups, rng);
      // Mostly small batches with real contexts; sometimes thousands of short sequences.
      const bool wide = rng() % 8 == 0;
      const int batch = wide ? 500 + int(rng() % 1500) : 1 + int(rng() % 6);
      const int maxCtx = wide ? 24 : (rng() % 4 == 0 ? 3000 : 300);
      checkDecode(L, wide ? std::min(G, 2) : G, randomContexts(batch, maxCtx, rng), randomScale(L.headDim, rng), rng, tp);
      ++decodeCases;
    }
    {
      KVLayout L = randomLayout(rng);
      int G = pick(kGroups, rng);
      const bool longer = rng() % 4 == 0;
      // The reference is cubic-ish here; keep longer prompts to few heads.
      if (longer) L.numKvHeads = std::min(L.numKvHeads, 2), G = std::min(G, 4);
      const int batch = 1 + int(rng() % 4);
      std::vector<int32_t> ctx = randomContexts(batch, longer ? 700 : 150, rng), qLens(batch);
      for (int b = 0; b < batch; ++b) {
        const int r = int(rng() % 4);
        // Full prefill, single-token extend, or a chunk of a longer prompt.
        qLens[b] = r == 0 ? ctx[b] : r == 1 ? std::min(ctx[b], 1) : int(rng() % (ctx[b] + 1));
      }
      checkPrefill(L, G, ctx, qLens, randomScale(L.headDim, rng), rng, tp);
      ++prefillCases;
    }
    checkAppend(rng, tp);
    checkCopy(rng, tp);
  }
  for (int i = 0; i < 3; ++i) checkLargeCopy(rng, tp);
  // Long contexts: split-KV partitions and their merge, one sequence and few sequences.
  for (DType t : kDTypes) {
    KVLayout L;
    L.dtype = t;
    L.headDim = 128;
    L.blockSize = 16;
    L.numKvHeads = 1;
    checkDecode(L, 4, {70000}, 0.5, rng, tp);
    checkDecode(L, 2, {40000, 5, 0, 33333}, 1.0 / std::sqrt(128.0), rng, tp);
    decodeCases += 2;
  }
  if (longCtx) {
    // ~1M tokens in one sequence: element offsets pass 2^31 (8 KV heads x 128 x 256-token blocks).
    KVLayout L;
    L.dtype = DType::F16;
    L.headDim = 128;
    L.blockSize = 256;
    L.numKvHeads = 8;
    checkDecode(L, 1, {1 << 20}, 0.3, rng, tp, false);
    ++decodeCases;
  }
  std::printf("checks [%s]: %d decode, %d prefill, %d append, %d copy cases, seed %llu: %s (%d failures)\n",
              isaName(g_isa), decodeCases, prefillCases, iters, iters, (unsigned long long)seed,
              g_failures ? "FAILED" : "ok", g_failures);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 1;
  int iters = 150;
  bool bench = true, checks = true, full = false, longCtx = false;
  std::string isaArg;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (s == "--iters" && i + 1 < argc) iters = std::atoi(argv[++i]);
    else if (s == "--isa" && i + 1 < argc) isaArg = argv[++i];
    else if (s == "--dtype" && i + 1 < argc) {
      const std::string d = argv[++i];
      g_benchDtype = d == "bf16" ? DType::BF16 : d == "fp32" ? DType::F32 : DType::F16;
    }
    else if (s == "--no-bench") bench = false;
    else if (s == "--bench-only") checks = false;
    else if (s == "--full") full = true;
    else if (s == "--long") longCtx = true;
    else {
      std::fprintf(stderr,
                   "usage: kernel-check [--isa LEVEL] [--seed N] [--iters N] [--no-bench | --bench-only] [--full] [--long]\n"
                   "                    [--dtype fp16|bf16|fp32 (decode table)]\n");
      return 2;
    }
  }
  ThreadPool& tp = ThreadPool::global();
  std::vector<Isa> levels;
  try {
    // --isa (or KVCAKE_CPU_ISA) picks one level; without either the checks run every level
    // this CPU supports and the benchmarks the best one.
    if (!isaArg.empty() || std::getenv("KVCAKE_CPU_ISA")) levels.push_back(resolveIsa(isaArg, "--isa"));
    else
      for (Isa i : allIsas())
        if (isaSupported(i)) levels.push_back(i);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernel-check: %s\n", e.what());
    return 2;
  }
  std::printf("kernel-check: %d threads; CPU features: %s; levels: %s\n", tp.size(), featureList().c_str(),
              supportedIsaList().c_str());
  if (checks)
    for (Isa i : levels) {
      g_isa = i;
      runChecks(seed, iters, longCtx, tp);
    }
  if (bench) {
    g_isa = levels.back();
    benchDecode(tp, full);
    if (!std::getenv("KC_DECODE_ONLY")) benchPrefill(tp, full);
    if (!std::getenv("KC_DECODE_ONLY")) benchCopy(tp, full);
    if (!std::getenv("KC_DECODE_ONLY")) benchAppend(tp);
  }
  return g_failures ? 1 : 0;
}
