// CPU kernels: synchronous, parallel over ThreadPool, AVX2/FMA/F16C. The CPU backend's
// queue workers call these; they assume validated arguments (core/validate.h).
#pragma once
#include <cstdint>

#include "common/thread_pool.h"
#include "common/types.h"

namespace kvcake::cpu {

struct AppendArgs {
  KVLayout layout;
  void* pool;
  const void* k;        // [numTokens][numKvHeads][headDim]
  const void* v;
  const int32_t* slots; // [numTokens], negative = skip
  int32_t numTokens;
};

struct DecodeArgs {
  KVLayout layout;
  const void* pool;
  const void* q;        // [batch][numHeads][headDim]
  void* out;            // [batch][numHeads][headDim]
  const int32_t* blockTables;
  int32_t tableStride;
  const int32_t* contextLens;
  int32_t batch;
  int32_t numHeads;
  float scale;          // already resolved (> 0)
};

struct PrefillArgs {
  KVLayout layout;
  const void* pool;
  const void* q;        // [totalQ][numHeads][headDim]
  void* out;
  const int32_t* qStartLoc;  // [batch + 1]
  const int32_t* blockTables;
  int32_t tableStride;
  const int32_t* contextLens;
  int32_t batch;
  int32_t numHeads;
  float scale;
};

struct CopyArgs {
  int64_t blockBytes;
  const uint8_t* src;
  uint8_t* dst;
  const int32_t* pairs;  // [numPairs][2]
  int32_t numPairs;
};

void appendKV(const AppendArgs& a, ThreadPool& pool);
void decodeAttention(const DecodeArgs& a, ThreadPool& pool);
void prefillAttention(const PrefillArgs& a, ThreadPool& pool);
void copyBlocks(const CopyArgs& a, ThreadPool& pool);

}  // namespace kvcake::cpu
