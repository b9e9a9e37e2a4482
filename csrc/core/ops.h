// The native ops, as plain structs. The binding fills them from JS arguments, core/validate
// checks them once for every backend, and a backend enqueues them. Each op owns its
// metadata (block tables, lengths, slot mappings are copied at enqueue time, so the caller
// may reuse its arrays at once) and holds shared_ptrs to the memory it touches, so a pool
// or tensor released by JS stays alive until the last op using it has finished.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/host_memory.h"
#include "common/types.h"

namespace kvcake {

// One allocation owned by a backend: a KV pool or a tensor, in either tier. The backend
// frees it (and lowers its live-byte count) when the last reference goes away.
class Memory {
 public:
  virtual ~Memory() = default;
  void* data = nullptr;
  size_t bytes = 0;
  Tier tier = Tier::Device;
};
using MemoryPtr = std::shared_ptr<Memory>;

// A dense tensor: queries, new K/V rows, attention outputs. Shapes are checked by the
// op that uses it; the tensor itself is a typed run of elements.
struct Tensor {
  MemoryPtr mem;
  DType dtype = DType::F16;
  int64_t numel = 0;
};

struct Pool {
  MemoryPtr mem;
  KVLayout layout;
};

// append-KV: write numTokens rows of K and V into the pool.
//   k, v:  [numTokens][numKvHeads][headDim], the pool's dtype
//   slots: [numTokens], slot = blockId * blockSize + offsetInBlock; -1 is a padding row and
//          is skipped (vLLM's slot-mapping convention); other negative slots are rejected.
struct AppendOp {
  Pool pool;
  Tensor k, v;
  std::vector<int32_t> slots;
};

// Decode attention: one query token per sequence, attending to contextLens[b] cached tokens
// found through blockTables[b][0 .. ceil(contextLens[b]/blockSize)).
//   q, out:      [batch][numHeads][headDim], the pool's dtype; numHeads % numKvHeads == 0
//                and query head h reads KV head h / (numHeads / numKvHeads) (GQA).
//   blockTables: exactly [batch][tableStride] block ids of this layer; entries past a
//                sequence's last block are ignored (pad with anything).
//   scale:       softmax scale, > 0; 0 means not given: 1/sqrt(headDim).
// A sequence with contextLen 0 writes zeros.
struct DecodeOp {
  Pool pool;
  Tensor q, out;
  std::vector<int32_t> blockTables;
  int32_t tableStride = 0;
  std::vector<int32_t> contextLens;
  int32_t batch = 0;
  int32_t numHeads = 0;
  float scale = 0.f;
};

// Prefill / extend attention (chunked prefill), causal, varlen batch. The chunk's own K/V
// must already be in the pool (append first, then attend). Sequence b has
//   qLen_b = qStartLoc[b+1] - qStartLoc[b] new tokens, contextLens[b] >= qLen_b tokens in
//   cache in total (the chunk occupies the last qLen_b positions), and query i of the chunk
//   (position contextLens[b] - qLen_b + i) attends to cache positions 0 .. that position.
//   q, out:    [totalQ][numHeads][headDim], totalQ = qStartLoc[batch]
//   qStartLoc: [batch + 1], qStartLoc[0] = 0, non-decreasing.
struct PrefillOp {
  Pool pool;
  Tensor q, out;
  std::vector<int32_t> qStartLoc;
  std::vector<int32_t> blockTables;
  int32_t tableStride = 0;
  std::vector<int32_t> contextLens;
  int32_t batch = 0;
  int32_t numHeads = 0;
  float scale = 0.f;
};

// Block copy between two pools of the same geometry (numBlocks may differ), any tiers.
//   pairs: [numPairs][2] = (srcBlock, dstBlock); every layer-block moves whole.
// Destination blocks must be distinct within one call.
struct CopyOp {
  Pool src, dst;
  std::vector<int32_t> pairs;
};

// Host bytes that op staging and reads carry: large ones are mapped directly, so they go
// back to the OS when the op (or the ArrayBuffer a read resolves to) lets go of them.
using HostBytes = std::vector<uint8_t, HostAllocator<uint8_t>>;

// Benchmark reference work, queued like a kernel so it runs on the same threads:
//   Read: every block in `blocks` of `pool` read once, in that order (a streaming read of
//         the bytes a decode over those blocks reads);
//   Fma:  `iterations` rounds of independent FMA chains on every thread (the arithmetic
//         peak of the path the kernels run).
// `result` receives the bytes read or the flops done.
struct ReferenceOp {
  enum class Kind : int32_t { Read = 0, Fma = 1 };
  Kind kind = Kind::Read;
  Pool pool;
  std::vector<int32_t> blocks;
  int64_t iterations = 0;
  std::shared_ptr<double> result = std::make_shared<double>(0.0);
};

// Tensor upload / download (host bytes <-> a Tensor's memory).
struct WriteOp {
  MemoryPtr dst;
  size_t offset = 0;
  std::shared_ptr<HostBytes> bytes;
};
struct ReadOp {
  MemoryPtr src;
  size_t offset = 0;
  size_t length = 0;
  std::shared_ptr<HostBytes> into;  // resized to length by the caller
};

}  // namespace kvcake
