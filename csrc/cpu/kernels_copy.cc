#include <cstring>

#include "cpu/kernels.h"

namespace kvcake::cpu {

void copyBlocks(const CopyArgs& a, ThreadPool& pool) {
  const int64_t bb = a.blockBytes;
  pool.parallelFor(a.numPairs, [&](int64_t i) {
    const int64_t s = a.pairs[2 * i], d = a.pairs[2 * i + 1];
    std::memcpy(a.dst + d * bb, a.src + s * bb, size_t(bb));
  });
}

}  // namespace kvcake::cpu
