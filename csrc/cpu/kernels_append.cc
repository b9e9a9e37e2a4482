#include <algorithm>
#include <cstring>

#include "cpu/kernels.h"

namespace kvcake::cpu {

// Each token's K (and V) is numKvHeads rows of headDim elements in the source, and each
// row lands in a different head's run inside the block, so the copy is per (token, head).
void appendKV(const AppendArgs& a, ThreadPool& pool) {
  const KVLayout& L = a.layout;
  const int64_t rowBytes = int64_t(L.headDim) * int64_t(dtypeSize(L.dtype));
  const int64_t tokenBytes = rowBytes * L.numKvHeads;
  const int64_t elem = int64_t(dtypeSize(L.dtype));
  auto* dst = static_cast<uint8_t*>(a.pool);
  const auto* k = static_cast<const uint8_t*>(a.k);
  const auto* v = static_cast<const uint8_t*>(a.v);
  // Enough tokens per task that each task copies tens of KiB.
  const int64_t perTask = std::max<int64_t>(1, (64 << 10) / std::max<int64_t>(1, 2 * tokenBytes));
  const int64_t tasks = (int64_t(a.numTokens) + perTask - 1) / perTask;
  pool.parallelFor(tasks, [&](int64_t t) {
    const int64_t end = std::min<int64_t>(a.numTokens, (t + 1) * perTask);
    for (int64_t i = t * perTask; i < end; ++i) {
      const int32_t slot = a.slots[i];
      if (slot < 0) continue;
      const int64_t block = slot / L.blockSize;
      const int token = slot % L.blockSize;
      for (int h = 0; h < L.numKvHeads; ++h) {
        std::memcpy(dst + L.offset(block, 0, h, token) * elem, k + i * tokenBytes + h * rowBytes,
                    size_t(rowBytes));
        std::memcpy(dst + L.offset(block, 1, h, token) * elem, v + i * tokenBytes + h * rowBytes,
                    size_t(rowBytes));
      }
    }
  });
}

}  // namespace kvcake::cpu
