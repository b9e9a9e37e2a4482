// CUDA error checking: every runtime call goes through KVCAKE_CUDA(op, call) so a failure
// becomes kvcake::Error "cuda <op>: <error string>", the wording the JS caller sees.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "common/error.h"

namespace kvcake {

inline std::string cudaMessage(const char* op, cudaError_t err) {
  return std::string("cuda ") + op + ": " + cudaGetErrorString(err);
}

inline void cudaCheck(const char* op, cudaError_t err) {
  if (err != cudaSuccess) throw Error(cudaMessage(op, err));
}

}  // namespace kvcake

#define KVCAKE_CUDA(op, call) ::kvcake::cudaCheck(op, (call))
