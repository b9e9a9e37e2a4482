// Stands in for the CUDA backend in a build without nvcc (node-gyp's binding.gyp, or
// cmake-js when no CUDA compiler or no CUDA sources are found).
#include "common/error.h"
#include "core/backend.h"

namespace kvcake {

namespace {
const char* kWhy =
    "this kvcake binary was built without the CUDA backend; build it with `npm run build:cuda` (needs nvcc)";
}

std::unique_ptr<Backend> createCudaBackend(int) { throw Error(kWhy); }

bool cudaCompiledIn() { return false; }

OpsInfo cublasStatus() {
  OpsInfo i;
  i.blasError = kWhy;
  return i;
}

bool cudaUsable(std::string* why) {
  if (why) *why = kWhy;
  return false;
}

}  // namespace kvcake
