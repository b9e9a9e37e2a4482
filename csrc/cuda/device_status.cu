// Whether CUDA is usable here, and cuBLAS's status: answered without creating a backend,
// so the addon can report why CUDA is unavailable on a machine without a driver.
#include <cuda_runtime.h>

#include <string>

#include "core/backend.h"
#include "cuda/cublas.h"

namespace kvcake {

namespace {

std::string driverReason(cudaError_t err) {
  std::string s = cudaGetErrorString(err);
  if (err == cudaErrorInsufficientDriver)
    return "no usable NVIDIA driver (missing, or older than this build's CUDA runtime needs): " + s;
  if (err == cudaErrorNoDevice) return "no CUDA device found: " + s;
  return "CUDA is not usable: " + s;
}

}  // namespace

bool cudaCompiledIn() { return true; }

OpsInfo cublasStatus() {
  const auto& api = cuda::cublas();
  OpsInfo i;
  i.blasLoaded = api.loaded;
  i.blasPath = api.path;
  i.blasSearched = api.searched;
  i.blasError = api.error;
  return i;
}

bool cudaUsable(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = driverReason(err);
    return false;
  }
  if (n <= 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

}  // namespace kvcake
