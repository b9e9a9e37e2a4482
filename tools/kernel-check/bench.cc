// Microbenchmarks of the CPU kernels against memcpy and a streaming read of the same bytes,
// in the same run, by the same threads, on buffers allocated like the backend's pools.
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

namespace kvcake::kernel_check {
using namespace kvcake::cpu;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double bestOf(int reps, F&& f) {
  f();  // warm up: page faults, caches
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

// Best time of each function, running them round-robin so that load from other processes
// on a shared machine hits all of them alike and the ratios stay meaningful.
// With KC_CPU_TIME=1 the process CPU time is measured instead of wall time: on a machine
// shared with other jobs it shows what the code costs when it does get the cores.
double clockNow() {
  static const bool cpu = std::getenv("KC_CPU_TIME") != nullptr;
  if (!cpu) return now();
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::vector<double> interleavedBest(int reps, const std::vector<std::function<void()>>& fns) {
  std::vector<double> best(fns.size(), 1e30);
  for (auto& f : fns) f();
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < fns.size(); ++i) {
      const double t0 = clockNow();
      fns[i]();
      best[i] = std::min(best[i], clockNow() - t0);
    }
  return best;
}

// Benchmark buffers allocated the way the CPU backend allocates pools (cpu_backend.cc):
// large ones 2 MiB-aligned with MADV_HUGEPAGE, so the timings see the backend's TLB
// behaviour. KC_NO_HUGEPAGE=1 gives plain 4 KiB-page memory for comparison.
struct PoolBuf {
  uint8_t* p = nullptr;
  size_t n = 0;
  explicit PoolBuf(size_t bytes) : n(bytes) {
    constexpr size_t kHuge = size_t(2) << 20;
    const bool huge = !std::getenv("KC_NO_HUGEPAGE");
    const size_t align = huge ? kHuge : 64;
    p = static_cast<uint8_t*>(std::aligned_alloc(align, (bytes + align - 1) / align * align));
    if (!p) throw std::bad_alloc();
    if (huge) madvise(p, (bytes + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
    std::memset(p, 0, bytes);
  }
  PoolBuf(const PoolBuf&) = delete;
  PoolBuf& operator=(const PoolBuf&) = delete;
  ~PoolBuf() { std::free(p); }
  uint8_t* data() { return p; }
  size_t size() const { return n; }
  uint8_t& operator[](size_t i) { return p[i]; }
};

void poolMemcpy(uint8_t* dst, const uint8_t* src, int64_t bytes, ThreadPool& tp) {
  const int n = tp.size();
  tp.parallelFor(n, [&](int64_t i) {
    const int64_t lo = bytes * i / n, hi = bytes * (i + 1) / n;
    std::memcpy(dst + lo, src + lo, size_t(hi - lo));
  });
}

// Cache size in bytes at `level` (Linux sysfs, cpu0), the largest one for level 0; 0 if unknown.
int64_t cacheBytes(int level) {
  int64_t best = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    FILE* fs = std::fopen((dir + "size").c_str(), "r");
    if (!fs) continue;
    FILE* fl = std::fopen((dir + "level").c_str(), "r");
    long long v = 0;
    int lv = 0;
    char unit = 0;
    const bool ok = std::fscanf(fs, "%lld%c", &v, &unit) >= 1 && fl && std::fscanf(fl, "%d", &lv) == 1;
    std::fclose(fs);
    if (fl) std::fclose(fl);
    if (!ok || (level && lv != level)) continue;
    const int64_t bytes = v << (unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0);
    best = std::max(best, bytes);
  }
  return best;
}

}  // namespace

void benchDecode(ThreadPool& tp, bool full) {
  const int reps = full ? 15 : 7;
  // Cold as the addon's bench (bench/native.ts) makes it: replicas of each point's KV that
  // together are at least 4x the last-level cache, each timed op taking the next, so a small
  // point is read from memory as a large one is; the references read or copy replicas of
  // the same bytes. "hot" runs the same op with every table entry pointing into a few blocks
  // that stay in L2: the kernel's compute ceiling on this machine, for reading the cold
  // figure (near hot: compute bound; far below: waiting on memory).
  const int64_t llcFound = cacheBytes(0), l2Found = cacheBytes(2);
  const int64_t llc = llcFound > 0 ? llcFound : int64_t(32) << 20;
  const int64_t l2 = l2Found > 0 ? l2Found : int64_t(1) << 20;
  std::printf("\ndecode [%s] (%s KV, 8 KV heads x 128, block 16, shuffled block table), best of %d, interleaved;\n"
              "cold: replicas >= 4x the %lld MiB last-level cache, each op on the next; hot = the same op on\n"
              "blocks that fit in half the %lld KiB L2; memcpy = the same bytes copied by the same threads,\n"
              "read = the same bytes read by them; ident = identity block table:\n",
              isaName(g_isa), dtypeName(g_benchDtype), reps, (long long)(llc >> 20), (long long)(l2 >> 10));
  std::printf("%6s %6s %6s %8s %5s %10s %8s %8s %11s %9s %8s %8s %10s %8s\n", "heads", "batch", "ctx", "KV MiB", "repl",
              "paged GB/s", "hot GB/s", "/hot", "memcpy GB/s", "read GB/s", "/memcpy", "/read", "ident GB/s", "paged/id");
  std::mt19937_64 rng(7);
  // 32 query heads (GQA group 4) is compute-heavier: 4 flops per KV byte against 1 for 8.
  struct Shape { int numHeads, batch, ctxLen; };
  std::vector<Shape> grid = {{32, 1, 4096}, {32, 4, 4096}, {32, 16, 4096}, {32, 32, 4096}, {32, 1, 32768},
                             {8, 1, 4096}, {8, 8, 4096}, {8, 32, 4096}};
  if (full) grid.insert(grid.end(), {{32, 4, 16384}, {32, 8, 32768}, {32, 1, 131072}, {8, 8, 32768}});
  for (auto [numHeads, batch, ctxLen] : grid) {
    KVLayout L;
    L.dtype = g_benchDtype;
    L.headDim = 128;
    L.blockSize = 16;
    L.numKvHeads = 8;
    const int64_t blocksPerSeq = ctxLen / L.blockSize;
    const int64_t setBlocks = blocksPerSeq * batch;
    const int64_t setBytes = setBlocks * L.blockBytes();
    const int64_t want = (4 * llc + setBytes - 1) / setBytes;
    const int replicas = want <= 1 ? 1 : int(std::max<int64_t>(3, want));
    L.numBlocks = int32_t(setBlocks * replicas);
    PoolBuf pool(size_t(L.poolBytes()));
    for (size_t i = 0; i < pool.size(); i += 2) {
      // Small values of either sign: fp16 0.125..1, bf16 0.125..1 (two make one fp32 of modest size).
      const uint16_t h = L.dtype == DType::BF16 ? uint16_t(0x3e00 + (rng() & 0x7f)) | uint16_t((rng() & 1) << 15)
                                                 : uint16_t(0x3000 + (rng() & 0x7ff));
      std::memcpy(&pool[i], &h, 2);
    }
    // Replica r owns blocks [r * setBlocks, (r + 1) * setBlocks): shuffled within them, or in order.
    std::vector<int32_t> identity(L.numBlocks), hot(setBlocks);
    std::iota(identity.begin(), identity.end(), 0);
    std::vector<int32_t> shuffledIds = identity;
    for (int r = 0; r < replicas; ++r)
      std::shuffle(shuffledIds.begin() + r * setBlocks, shuffledIds.begin() + (r + 1) * setBlocks, rng);
    const int64_t hotBlocks = std::max<int64_t>(1, std::min<int64_t>(setBlocks, l2 / 2 / L.blockBytes()));
    for (int64_t i = 0; i < setBlocks; ++i) hot[i] = shuffledIds[i % hotBlocks];
    std::vector<int32_t> ctx(batch, ctxLen);
    std::vector<uint16_t> q(size_t(batch) * numHeads * L.headDim, L.dtype == DType::BF16 ? 0x3d80 : 0x2c00), out(q.size());
    PoolBuf dst(pool.size());
    // Each op walks the replicas from its own offset, so no op reads what another just pulled in.
    int next[4] = {0, replicas / 4, replicas / 2, (3 * replicas) / 4};
    auto decodeOn = [&](const int32_t* table) {
      DecodeArgs a{L, pool.data(), q.data(), out.data(), table, int32_t(blocksPerSeq), ctx.data(), batch, numHeads, 0.088f};
      decodeAttention(a, tp, g_isa);
    };
    const auto t = interleavedBest(
        reps, {[&] { decodeOn(shuffledIds.data() + int64_t(next[0]++ % replicas) * setBlocks); },
               [&] { decodeOn(identity.data() + int64_t(next[1]++ % replicas) * setBlocks); },
               [&] {
                 const int64_t off = int64_t(next[2]++ % replicas) * setBytes;
                 poolMemcpy(dst.data() + off, pool.data() + off, setBytes, tp);
               },
               [&] {
                 ReadArgs rd{L.blockBytes(), pool.data(), identity.data() + int64_t(next[3]++ % replicas) * setBlocks,
                             int32_t(setBlocks)};
                 referenceRead(rd, tp, g_isa);
               },
               [&] { decodeOn(hot.data()); }});
    const double tPaged = t[0], tIdent = t[1], tCopy = t[2], tRead = t[3], tHot = t[4];
    const double bytes = double(setBytes);
    std::printf("%6d %6d %6d %8.0f %5d %10.2f %8.2f %8.2f %11.2f %9.2f %8.2f %8.2f %10.2f %8.3f\n", numHeads, batch, ctxLen,
                bytes / (1 << 20), replicas, bytes / tPaged / 1e9, bytes / tHot / 1e9, tHot / tPaged, bytes / tCopy / 1e9,
                bytes / tRead / 1e9, tCopy / tPaged, tRead / tPaged, bytes / tIdent / 1e9, tPaged / tIdent);
  }
}

void benchPrefill(ThreadPool& tp, bool full) {
  const double peakIters = 2e7;
  const double peak = bestOf(3, [&] { referenceFma(int64_t(peakIters), tp, g_isa); });
  const double peakFlops = referenceFma(1, tp, g_isa) * peakIters / peak;
  std::printf("\nprefill [%s] (causal, fp16, 8 KV heads x 128, 32 query heads, block 16), best of 3;\n"
              "FMA peak of the same threads at the %s level: %.1f GFLOP/s\n", isaName(g_isa),
              isaName(referenceIsa(g_isa)), peakFlops / 1e9);
  std::printf("%6s %8s %8s %10s %10s %8s\n", "batch", "ctx", "qLen", "ms", "GFLOP/s", "/peak");
  std::mt19937_64 rng(11);
  struct Shape { int batch, ctx, qLen; };
  std::vector<Shape> grid = {{1, 2048, 2048}, {1, 4096, 512}, {4, 512, 512}};
  if (full) grid.insert(grid.end(), {{1, 8192, 8192}, {8, 16384, 256}});
  for (auto s : grid) {
    KVLayout L;
    L.dtype = DType::F16;
    L.headDim = 128;
    L.blockSize = 16;
    L.numKvHeads = 8;
    const int numHeads = 32;
    const int blocksPerSeq = (s.ctx + L.blockSize - 1) / L.blockSize;
    L.numBlocks = blocksPerSeq * s.batch;
    std::vector<uint16_t> pool(size_t(L.poolBytes() / 2));
    for (auto& h : pool) h = uint16_t(0x3000 + (rng() & 0x7ff)) | uint16_t((rng() & 1) << 15);
    std::vector<int32_t> table(L.numBlocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    std::vector<int32_t> ctx(s.batch, s.ctx), start(s.batch + 1);
    for (int b = 0; b <= s.batch; ++b) start[b] = b * s.qLen;
    std::vector<uint16_t> q(size_t(start[s.batch]) * numHeads * L.headDim), out(q.size());
    for (auto& h : q) h = uint16_t(0x3000 + (rng() & 0x7ff)) | uint16_t((rng() & 1) << 15);
    PrefillArgs a{L, pool.data(), q.data(), out.data(), start.data(), table.data(), blocksPerSeq,
                  ctx.data(), s.batch, numHeads, 0.088f};
    const double t = bestOf(3, [&] { prefillAttention(a, tp, g_isa); });
    // Attended (query, key) pairs: the chunk's rows see prefix + causal triangle.
    double pairs = 0;
    for (int i = 0; i < s.qLen; ++i) pairs += double(s.ctx - s.qLen + i + 1);
    const double flops = 4.0 * L.headDim * numHeads * pairs * s.batch;
    std::printf("%6d %8d %8d %10.2f %10.1f %8.2f\n", s.batch, s.ctx, s.qLen, t * 1e3, flops / t / 1e9, flops / t / peakFlops);
  }
}

void benchCopy(ThreadPool& tp, bool full) {
  std::printf("\ncopyBlocks, scattered pairs (shuffled, no runs) vs one contiguous memcpy of the same bytes\n"
              "(1T: one thread; pool: split across the pool's threads), %d MiB, best of 5, interleaved:\n", full ? 1024 : 256);
  std::printf("%10s %8s %12s %14s %14s %8s\n", "block KiB", "pairs", "copy GB/s", "1T memcpy GB/s",
              "pool memcpy", "ratio1T");
  std::mt19937_64 rng(5);
  const int64_t total = int64_t(full ? 1024 : 256) << 20;
  // Allocated as the backend allocates pools (huge pages unless KC_NO_HUGEPAGE).
  PoolBuf src(size_t(total) + (2 << 20)), dst(size_t(total) + (2 << 20));
  std::memset(src.data(), 1, src.size());
  std::memset(dst.data(), 2, dst.size());
  for (int64_t kib : {16, 64, 256, 1024, 2048}) {
    const int64_t bb = kib << 10;
    const int n = int(total / bb);
    std::vector<int32_t> s(n), d(n);
    std::iota(s.begin(), s.end(), 0);
    std::iota(d.begin(), d.end(), 0);
    std::shuffle(s.begin(), s.end(), rng);
    std::shuffle(d.begin(), d.end(), rng);
    std::vector<int32_t> pairs(2 * n);
    for (int i = 0; i < n; ++i) pairs[2 * i] = s[i], pairs[2 * i + 1] = d[i];
    CopyArgs a{bb, src.data(), dst.data(), pairs.data(), n};
    const auto ts = interleavedBest(5, {[&] { copyBlocks(a, tp); },
                                        [&] { std::memcpy(dst.data(), src.data(), size_t(total)); },
                                        [&] { poolMemcpy(dst.data(), src.data(), total, tp); }});
    const double t = ts[0], t1 = ts[1], tp2 = ts[2];
    std::printf("%10lld %8d %12.2f %14.2f %14.2f %8.2f\n", (long long)kib, n, total / t / 1e9, total / t1 / 1e9,
                total / tp2 / 1e9, t1 / t);
  }
}

void benchAppend(ThreadPool& tp) {
  std::printf("\nappendKV (fp16, 8 KV heads x 128, block 16, shuffled slots), best of 5:\n");
  std::mt19937_64 rng(3);
  KVLayout L;
  L.dtype = DType::F16;
  L.headDim = 128;
  L.blockSize = 16;
  L.numKvHeads = 8;
  for (int tokens : {32, 4096}) {
    L.numBlocks = std::max(64, tokens / L.blockSize * 2);
    std::vector<uint8_t> pool(size_t(L.poolBytes()), 0);
    std::vector<int32_t> perm(int64_t(L.numBlocks) * L.blockSize);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    perm.resize(tokens);
    const int64_t rowBytes = int64_t(L.numKvHeads) * L.headDim * 2;
    std::vector<uint8_t> k(size_t(tokens * rowBytes), 3), v(k.size(), 4);
    AppendArgs a{L, pool.data(), k.data(), v.data(), perm.data(), tokens};
    const double t = bestOf(5, [&] { appendKV(a, tp); });
    std::printf("  %5d tokens: %8.1f us, %6.2f GB/s written\n", tokens, t * 1e6, 2.0 * tokens * rowBytes / t / 1e9);
  }
}

}  // namespace kvcake::kernel_check
