// Argument checks for the store's native ops, in the style of core/validate: the binding
// calls them before anything is queued, messages name the argument, the value and the limit.
#pragma once
#include <vector>

#include "core/ops.h"
#include "store/chunk_format.h"

namespace kvcake::store {

struct StoreLimits {
  static constexpr int32_t kMaxLayers = 4096;
  static constexpr int32_t kMaxBlocksPerLayer = 65536;
  static constexpr int64_t kMaxPayloadBytes = int64_t(1) << 40;
};

void validateChunkSpec(const char* op, const ChunkSpec& spec);
// blocks: the chunk's layer-blocks in `pool` (see ChunkBlocks), for a load or a save.
void validateChunkBlocks(const char* op, const ChunkSpec& spec, const Pool& pool, const std::vector<int32_t>& blocks);

}  // namespace kvcake::store
