// How copyBlocks moves blocks on CUDA: chosen per call (auto), or forced with
// KVCAKE_CUDA_COPY for benchmarks and tests (batch: cudaMemcpyBatchAsync, memcpy: one
// cudaMemcpyAsync per block, kernel: a gather/scatter kernel).
#pragma once
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"

namespace kvcake::cuda {

enum class CopyMethod { Auto, Batch, Memcpy, Kernel };

inline CopyMethod copyMethodFromEnv() {
  const char* s = std::getenv("KVCAKE_CUDA_COPY");
  if (!s || !*s || std::strcmp(s, "auto") == 0) return CopyMethod::Auto;
  if (std::strcmp(s, "batch") == 0) return CopyMethod::Batch;
  if (std::strcmp(s, "memcpy") == 0) return CopyMethod::Memcpy;
  if (std::strcmp(s, "kernel") == 0) return CopyMethod::Kernel;
  throw Error(std::string("KVCAKE_CUDA_COPY must be auto, batch, memcpy or kernel, got '") + s + "'");
}

}  // namespace kvcake::cuda
