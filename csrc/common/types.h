// Plain C++ types shared by every backend. No Node, no CUDA headers here: this file is
// included from .cc and .cu sources alike.
#pragma once
#include <cstddef>
#include <cstdint>

// Lets CUDA kernels use the same layout arithmetic as the host (no-op for a C++ compiler).
#ifdef __CUDACC__
#define KVCAKE_HD __host__ __device__
#else
#define KVCAKE_HD
#endif

namespace kvcake {

enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2 };

KVCAKE_HD inline size_t dtypeSize(DType t) { return t == DType::F32 ? 4 : 2; }
inline const char* dtypeName(DType t) {
  return t == DType::F32 ? "fp32" : t == DType::F16 ? "fp16" : "bf16";
}

// device: HBM on CUDA, ordinary aligned memory with its own capacity on CPU.
// host:   pinned memory on CUDA, ordinary aligned memory on CPU.
enum class Tier : int32_t { Device = 0, Host = 1 };
inline const char* tierName(Tier t) { return t == Tier::Device ? "device" : "host"; }

// Geometry of one KV pool. A layer-block holds K and V of `blockSize` tokens of one layer
// of one sequence, laid out HND: [2][numKvHeads][blockSize][headDim]. Each KV head's rows
// are contiguous, so the thread (CPU) or CTA (CUDA) that owns a KV head streams one
// contiguous run of blockSize*headDim elements per block, and a whole block is one
// contiguous run of blockBytes() for copies between tiers.
// All layout arithmetic lives here (the FlashInfer paged_kv_t idea): kernels never
// compute offsets by hand.
struct KVLayout {
  int32_t numBlocks = 0;
  int32_t numKvHeads = 0;
  int32_t headDim = 0;
  int32_t blockSize = 0;
  DType dtype = DType::F16;

  KVCAKE_HD int64_t headStride() const { return int64_t(blockSize) * headDim; }        // elements
  KVCAKE_HD int64_t kvStride() const { return int64_t(numKvHeads) * headStride(); }    // K -> V
  KVCAKE_HD int64_t blockStride() const { return 2 * kvStride(); }                     // elements
  KVCAKE_HD int64_t blockBytes() const { return blockStride() * int64_t(dtypeSize(dtype)); }
  KVCAKE_HD int64_t poolBytes() const { return blockBytes() * numBlocks; }
  // Element offset of row `token` (0..blockSize-1) of head `head`, kv = 0 (K) or 1 (V).
  KVCAKE_HD int64_t offset(int64_t block, int kv, int head, int token) const {
    return block * blockStride() + kv * kvStride() + head * headStride() + int64_t(token) * headDim;
  }
};

// Limits checked at the boundary; kernels may rely on them.
struct Limits {
  static constexpr int32_t kMaxHeadDim = 256;
  static constexpr int32_t kMinBlockSize = 8;
  static constexpr int32_t kMaxBlockSize = 256;
  static constexpr int32_t kMaxKvHeads = 256;
  static constexpr int32_t kMaxHeads = 1024;
  static constexpr int32_t kMaxBatch = 65536;
  static constexpr int64_t kMaxContext = int64_t(1) << 24;  // tokens per sequence
};

inline bool isSupportedHeadDim(int d) {
  return d == 64 || d == 80 || d == 96 || d == 128 || d == 256;
}

}  // namespace kvcake
