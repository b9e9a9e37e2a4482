#include "store/store_validate.h"

#include <unordered_map>

#include "common/error.h"

namespace kvcake::store {

namespace {

template <typename... T>
[[noreturn]] void fail(const T&... parts) {
  throwArgParts(parts...);
}

void range(const char* op, const char* name, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) fail(op, ": spec.", name, " = ", v, " is out of range [", lo, ", ", hi, "]");
}

}  // namespace

void validateChunkSpec(const char* op, const ChunkSpec& s) {
  range(op, "numLayers", s.numLayers, 1, StoreLimits::kMaxLayers);
  range(op, "numKvHeads", s.numKvHeads, 1, Limits::kMaxKvHeads);
  range(op, "headDim", s.headDim, 1, Limits::kMaxHeadDim);
  range(op, "blockSize", s.blockSize, 1, Limits::kMaxBlockSize);
  range(op, "blocksPerLayer", s.blocksPerLayer, 1, StoreLimits::kMaxBlocksPerLayer);
  if (s.architecture.size() >= kArchBytes)
    fail(op, ": spec.architecture is ", s.architecture.size(), " bytes, the limit is ", kArchBytes - 1);
  if (s.architecture.find('\0') != std::string::npos) fail(op, ": spec.architecture must not contain NUL characters");
  if (s.payloadBytes() > StoreLimits::kMaxPayloadBytes)
    fail(op, ": a chunk of this spec holds ", s.payloadBytes(), " payload bytes, over the limit of ",
         StoreLimits::kMaxPayloadBytes);
}

void validateChunkBlocks(const char* op, const ChunkSpec& spec, const Pool& pool, const std::vector<int32_t>& blocks) {
  if (!pool.mem || !pool.mem->data) fail(op, ": pool has been released");
  if (pool.mem->tier != Tier::Host)
    fail(op, ": pool must be a host-tier pool (the store moves chunks through host memory; copyBlocks moves them to the device)");
  const KVLayout& l = pool.layout;
  if (l.numKvHeads != spec.numKvHeads || l.headDim != spec.headDim || l.blockSize != spec.blockSize || l.dtype != spec.dtype)
    fail(op, ": the pool's layout (numKvHeads ", l.numKvHeads, ", headDim ", l.headDim, ", blockSize ", l.blockSize, ", ",
         dtypeName(l.dtype), ") does not match the store's chunks (numKvHeads ", spec.numKvHeads, ", headDim ",
         spec.headDim, ", blockSize ", spec.blockSize, ", ", dtypeName(spec.dtype), ")");
  if (int64_t(blocks.size()) != spec.blocksPerChunk())
    fail(op, ": blocks has ", blocks.size(), " entries, a chunk needs numLayers x blocksPerLayer = ", spec.numLayers,
         " x ", spec.blocksPerLayer, " = ", spec.blocksPerChunk());
  std::unordered_map<int32_t, size_t> seen;
  seen.reserve(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    const int32_t b = blocks[i];
    if (b < 0 || b >= l.numBlocks)
      fail(op, ": blocks[", i, "] = ", b, " is out of range [0, ", l.numBlocks, ") for this pool");
    auto [it, fresh] = seen.emplace(b, i);
    if (!fresh) fail(op, ": blocks[", i, "] = ", b, " repeats blocks[", it->second, "]: a chunk's blocks must be distinct");
  }
}

}  // namespace kvcake::store
