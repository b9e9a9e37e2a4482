// Block-copy kernel: each CTA row (blockIdx.x) is one run of whole blocks; blockIdx.y
// splits long runs. Each thread moves 4 independent 16-byte vectors per step so enough
// loads are in flight, which matters most when one side is pinned host memory read or
// written over PCIe (zero-copy).
#include "cuda/kernels.cuh"

namespace kvcake {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;

__global__ void __launch_bounds__(kThreads) copyRunsKernel(const uint4* __restrict__ src, uint4* __restrict__ dst,
                                                           const int64_t* __restrict__ runs) {
  const int64_t* r = runs + int64_t(blockIdx.x) * 3;
  const uint4* s = src + r[0] / 16;
  uint4* d = dst + r[1] / 16;
  const int64_t n = r[2] / 16;
  const int64_t step = int64_t(gridDim.y) * kThreads * kUnroll;
  for (int64_t base = int64_t(blockIdx.y) * kThreads * kUnroll + threadIdx.x; base < n; base += step) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) v[u] = s[i];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) d[i] = v[u];
    }
  }
}

}  // namespace

void launchCopyRuns(const void* src, void* dst, const int64_t* runs, int32_t numRuns, int64_t maxRunBytes,
                    cudaStream_t stream) {
  if (numRuns <= 0) return;
  const int64_t perCta = int64_t(kThreads) * kUnroll * 16;
  int64_t splits = (maxRunBytes + perCta - 1) / perCta;
  if (splits < 1) splits = 1;
  if (splits > 65535) splits = 65535;
  const dim3 grid{unsigned(numRuns), unsigned(splits), 1u};
  copyRunsKernel<<<grid, kThreads, 0, stream>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst), runs);
}

}  // namespace cuda
}  // namespace kvcake
