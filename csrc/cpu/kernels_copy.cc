// Block copies between pools (swap-in / swap-out between tiers, copy-on-write forks).
// Pairs are sorted by destination and runs of consecutive source and destination blocks
// are merged into one copy; the resulting byte stream is then cut into equal ranges, one
// per task, so a few large copies or many small ones both keep every thread streaming.
#include <algorithm>
#include <cstring>
#include <vector>

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
  pool.parallelFor(tasks, [&](int64_t t) {
    const int64_t lo = total * t / tasks, hi = total * (t + 1) / tasks;
    // First run that ends after lo.
    size_t r = size_t(std::upper_bound(runs.begin(), runs.end(), lo,
                                       [](int64_t v, const Run& x) { return v < x.start + x.bytes; }) -
                      runs.begin());
    for (int64_t pos = lo; pos < hi && r < runs.size(); ++r) {
      const Run& x = runs[r];
      const int64_t from = pos - x.start, to = std::min(hi, x.start + x.bytes) - x.start;
      std::memcpy(a.dst + x.dst + from, a.src + x.src + from, size_t(to - from));
      pos = x.start + to;
    }
  });
}

}  // namespace kvcake::cpu
