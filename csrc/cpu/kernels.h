// CPU kernels: synchronous, parallel over ThreadPool. The CPU backend's queue workers call
// these; they assume validated arguments (core/validate.h). Attention runs the path of the
// highest ISA level it implements at or below `isa` (cpu/isa.h); append and block copies
// are memcpy work and have one path.
#pragma once
#include <cstdint>

#include "common/thread_pool.h"
#include "common/types.h"
#include "cpu/isa.h"

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

// Benchmark reference: the listed blocks of a pool, each read once.
struct ReadArgs {
  int64_t blockBytes;
  const uint8_t* base;
  const int32_t* blocks;
  int32_t numBlocks;
};

void appendKV(const AppendArgs& a, ThreadPool& pool);
void decodeAttention(const DecodeArgs& a, ThreadPool& pool, Isa isa);
void prefillAttention(const PrefillArgs& a, ThreadPool& pool, Isa isa);
void copyBlocks(const CopyArgs& a, ThreadPool& pool);

// Benchmark references, run on the same pool of threads as the kernels at the same level:
// a streaming read of the listed blocks (returns a fold of the data, to be ignored), and
// `iterations` rounds of 12 FMA chains per thread (returns the flops done).
float referenceRead(const ReadArgs& a, ThreadPool& pool, Isa isa);
double referenceFma(int64_t iterations, ThreadPool& pool, Isa isa);

// The level referenceFma and referenceRead run at under `isa`.
Isa referenceIsa(Isa isa);

}  // namespace kvcake::cpu
