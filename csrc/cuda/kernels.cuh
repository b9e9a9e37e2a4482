// Launchers of the CUDA kernels, on plain device pointers and host-side shapes, so the
// backend and the standalone checker (tools/cuda-check) drive exactly the same code.
// Every launcher enqueues on `stream`, returns at once and reports launch errors through
// cudaGetLastError (the caller checks). Metadata pointers are device pointers.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/types.h"

namespace kvcake {
namespace cuda {

// append-KV: rows of K and V ([numTokens][numKvHeads][headDim]) into pool slots.
void launchAppend(const KVLayout& layout, void* pool, const void* k, const void* v,
                  const int32_t* slots, int32_t numTokens, cudaStream_t stream);

// One attention row for the split-KV decode kernel: query row `qRow` of q/out attends to
// the first `ctx` cached tokens of block-table row `tableRow`. Decode has one row per
// sequence (identity maps, passed as nullptr); the fp32 prefill path has one per query
// token, ctx = its position + 1.
struct DecodeRows {
  int32_t count = 0;
  const int32_t* ctx = nullptr;       // [count]
  const int32_t* tableRow = nullptr;  // [count] or nullptr = row index
  const int32_t* qRow = nullptr;      // [count] or nullptr = row index
  int32_t maxCtx = 0;                 // host-side max of ctx, sizes the split
};

struct DecodeArgs {
  KVLayout layout;
  const void* pool = nullptr;
  const void* q = nullptr;
  void* out = nullptr;
  const int32_t* blockTables = nullptr;
  int32_t tableStride = 0;
  int32_t numHeads = 0;
  float scale = 0.f;  // already resolved (> 0)
  DecodeRows rows;
};

// How decode splits each row's context across CTAs (split-KV). partitions == 1 writes the
// output directly; otherwise partial results go to a float workspace and a reduce kernel
// merges them by log-sum-exp.
struct DecodeSplit {
  int32_t partitions = 1;
  int32_t partitionKeys = 0;  // keys per partition
  size_t workspaceBytes = 0;
};
// Heuristic: split only when the (row, KV head) CTAs fill fewer than ~4 waves of resident
// CTAs (occupancy of the kernel the shape runs x numSMs) and each partition keeps >= 256
// keys; among the counts giving at least one wave, the smallest with a nearly full last
// wave. KVCAKE_CUDA_DECODE_PARTITIONS (an integer >= 1) forces the count, for tuning.
DecodeSplit planDecodeSplit(const DecodeArgs& a, int numSMs);
void launchDecode(const DecodeArgs& a, const DecodeSplit& split, void* workspace, cudaStream_t stream);

// One query tile of the tensor-core prefill kernel: sequence `seq`, rows
// m0 .. m0 + kPrefillTileM - 1 of its chunk.
struct PrefillTile {
  int32_t seq;
  int32_t m0;
};
struct PrefillArgs {
  KVLayout layout;
  const void* pool = nullptr;
  const void* q = nullptr;
  void* out = nullptr;
  const int32_t* blockTables = nullptr;
  int32_t tableStride = 0;
  const int32_t* qStartLoc = nullptr;    // [batch + 1]
  const int32_t* contextLens = nullptr;  // [batch]
  int32_t numHeads = 0;
  float scale = 0.f;
  const PrefillTile* tiles = nullptr;  // [numTiles]
  int32_t numTiles = 0;
};
constexpr int kPrefillTileM = 128;
// fp16 / bf16 only (the fp32 path goes through launchDecode with one row per query).
void launchPrefill(const PrefillArgs& a, cudaStream_t stream);

// Block copy through a kernel (16-byte vectors; either side may be device memory or
// mapped pinned host memory, which the kernel reads or writes over PCIe).
//   runs: [numRuns][3] = (srcByteOffset, dstByteOffset, bytes), all multiples of 16.
void launchCopyRuns(const void* src, void* dst, const int64_t* runs, int32_t numRuns,
                    int64_t maxRunBytes, cudaStream_t stream);

}  // namespace cuda
}  // namespace kvcake
