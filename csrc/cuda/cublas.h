// cuBLAS, loaded at run time with dlopen so that the addon builds without cuBLAS headers
// and loads on machines without it. The few entry points kvcake calls are declared here
// from cuBLAS's documented C API (stable across 12.x and 13.x). Search order, first that
// loads wins:
//   1. KVCAKE_CUBLAS_PATH: a libcublas file, or a directory holding one;
//   2. libcublas.so.13, then .so.12, by name (LD_LIBRARY_PATH, the loader's cache);
//   3. the CUDA toolkit: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda (lib64, targets/*/lib);
//   4. a Python nvidia-cublas install: nvidia/cublas/lib (and nvidia/cu13/lib) under the
//      site-packages of $VIRTUAL_ENV, $CONDA_PREFIX, $PYTHONPATH, ~/.local and /usr(/local).
// libcublasLt from the same directory is loaded first (libcublas needs it).
#pragma once
#include <string>
#include <vector>

namespace kvcake::cuda {

using cublasHandle_t = struct cublasContext*;
using cublasStatus_t = int;
using cudaStreamRaw = struct CUstream_st*;

enum : int { kCublasOpN = 0, kCublasOpT = 1 };
enum : int { kCudaR32F = 0, kCudaR16F = 2, kCudaR16BF = 14 };  // cudaDataType
enum : int { kCublasCompute32F = 68 };                          // cublasComputeType_t
enum : int { kCublasGemmDefault = -1 };                         // cublasGemmAlgo_t

struct CublasApi {
  bool loaded = false;
  std::string path;                   // the library that loaded
  std::vector<std::string> searched;  // every candidate tried, with why it failed
  std::string error;                  // why none loaded

  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*destroy)(cublasHandle_t) = nullptr;
  cublasStatus_t (*setStream)(cublasHandle_t, cudaStreamRaw) = nullptr;
  cublasStatus_t (*gemmEx)(cublasHandle_t, int transa, int transb, int m, int n, int k, const void* alpha,
                           const void* A, int Atype, int lda, const void* B, int Btype, int ldb, const void* beta,
                           void* C, int Ctype, int ldc, int computeType, int algo) = nullptr;
};

// Loaded once per process (thread-safe); never throws.
const CublasApi& cublas();

}  // namespace kvcake::cuda
