// Block copies between pools (swap-in / swap-out between tiers, copy-on-write forks).
// Pairs are sorted by destination and runs of consecutive source and destination blocks
// are merged into one copy; the resulting byte stream is then cut into equal ranges, one
// per task, so a few large copies or many small ones both keep every thread streaming.
// A call that moves more than the caches hold writes with non-temporal stores whatever the
// size of its runs: an ordinary store first reads the destination line in, a third more
// memory traffic, and the C library's memcpy streams only single copies larger than its
// own threshold, so scattered 64 KiB blocks would pay it while one contiguous copy of the
// same bytes would not.
#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define KVCAKE_STREAM_STORES 1
#endif

#include "cpu/compiler.h"
#include "cpu/kernels.h"

namespace kvcake::cpu {

namespace {

struct Run {
  int64_t src, dst;  // byte offsets
  int64_t bytes;
  int64_t start;     // offset of this run in the concatenated stream
};

// Below this, splitting a copy across threads costs more in wake-ups than it saves.
constexpr int64_t kMinBytesPerTask = 256 << 10;
// Calls moving at least this much use non-temporal stores (about half a server L3).
constexpr int64_t kStreamMinBytes = 16 << 20;

// memcpy with non-temporal stores for the 64-byte-aligned middle of the destination
// (SSE2, the x86-64 baseline). The caller fences before publishing the result.
void streamCopy(uint8_t* dst, const uint8_t* src, int64_t n, const uint8_t* next, int64_t nextBytes) {
#ifdef KVCAKE_STREAM_STORES
  const int64_t head = std::min<int64_t>(n, (64 - int64_t(reinterpret_cast<uintptr_t>(dst) & 63)) & 63);
  std::memcpy(dst, src, size_t(head));
  int64_t i = head;
  for (; i + 64 <= n; i += 64) {
    if (i < nextBytes) KVCAKE_PREFETCH_L2(next + i);
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  std::memcpy(dst + i, src + i, size_t(n - i));
#else
  (void)next, (void)nextBytes;
  std::memcpy(dst, src, size_t(n));
#endif
}

}  // namespace

void copyBlocks(const CopyArgs& a, ThreadPool& pool) {
  if (a.numPairs <= 0 || a.blockBytes <= 0) return;
  std::vector<std::pair<int32_t, int32_t>> p(size_t(a.numPairs));
  for (int32_t i = 0; i < a.numPairs; ++i) p[size_t(i)] = {a.pairs[2 * i + 1], a.pairs[2 * i]};  // (dst, src)
  std::sort(p.begin(), p.end());
  std::vector<Run> runs;
  int64_t total = 0;
  for (size_t i = 0; i < p.size();) {
    size_t j = i + 1;
    while (j < p.size() && p[j].first == p[j - 1].first + 1 && p[j].second == p[j - 1].second + 1) ++j;
    const int64_t bytes = int64_t(j - i) * a.blockBytes;
    runs.push_back(Run{p[i].second * a.blockBytes, p[i].first * a.blockBytes, bytes, total});
    total += bytes;
    i = j;
  }
  const int64_t tasks =
      std::max<int64_t>(1, std::min<int64_t>(int64_t(pool.size()) * 4, total / kMinBytesPerTask));
  const bool stream = total >= kStreamMinBytes;
  pool.parallelFor(tasks, [&](int64_t t) {
    const int64_t lo = total * t / tasks, hi = total * (t + 1) / tasks;
    // First run that ends after lo.
    size_t r = size_t(std::upper_bound(runs.begin(), runs.end(), lo,
                                       [](int64_t v, const Run& x) { return v < x.start + x.bytes; }) -
                      runs.begin());
    for (int64_t pos = lo; pos < hi && r < runs.size(); ++r) {
      const Run& x = runs[r];
      const int64_t from = pos - x.start, to = std::min(hi, x.start + x.bytes) - x.start;
      // The next run's source starts where the hardware prefetcher has no stream yet: it
      // is prefetched alongside this run, line for line.
      const uint8_t* next = r + 1 < runs.size() ? a.src + runs[r + 1].src : nullptr;
      const int64_t nextBytes = r + 1 < runs.size() ? runs[r + 1].bytes : 0;
      if (stream) streamCopy(a.dst + x.dst + from, a.src + x.src + from, to - from, next, nextBytes);
      else std::memcpy(a.dst + x.dst + from, a.src + x.src + from, size_t(to - from));
      pos = x.start + to;
    }
#ifdef KVCAKE_STREAM_STORES
    // Non-temporal stores are weakly ordered: drain them before the task counts as done.
    if (stream) _mm_sfence();
#endif
  });
}

}  // namespace kvcake::cpu
