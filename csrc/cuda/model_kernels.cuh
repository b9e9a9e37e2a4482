// The CUDA implementation of the model kernel set (core/kernel_set.h): launches on the
// compute stream during the issuing call. GEMMs go to cuBLAS (cublas.h; fp16/bf16 weights
// take activations rounded to the weights' dtype, fp32 runs in fp32); the elementwise ops
// are small kernels of this file; attention reuses the backend's paged kernels.
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/kernel_set.h"
#include "cuda/cublas.h"

namespace kvcake::cuda {

// What the backend lends one compute op: its stream, its staging, how to resolve memory,
// wait on and record events, and where to park temporary allocations until the op has
// completed (freed by the holder's destructor, on the completion thread).
struct CudaOpEnv {
  cudaStream_t stream = nullptr;
  int device = 0;
  int numSMs = 1;
  cublasHandle_t blas = nullptr;  // null when cuBLAS did not load
  void* hostStage = nullptr;      // pinned, for upload()
  size_t hostCap = 0;
  void* devStage = nullptr;       // device, for upload() and scratch()
  size_t devCap = 0;
  std::function<void*(const MemoryPtr&)> ptr;
  std::function<void(const Deps&)> wait;
  std::function<void(const EventPtr&)> signal;
};

// Temporary device / pinned allocations an op made beyond its staging.
struct CudaTemps {
  std::vector<void*> dev, host;
  ~CudaTemps();
};

std::unique_ptr<KernelSet> createCudaKernelSet(CudaOpEnv env, std::shared_ptr<CudaTemps> temps);

}  // namespace kvcake::cuda
