#include "cuda/staging.cuh"

#include <string>

#include "cuda/check.cuh"

namespace kvcake {
namespace cuda {
namespace {

constexpr size_t kMinSlab = size_t(64) << 10;
constexpr size_t kMaxFreeSlabs = 32;
// Slabs above this size (bulk tensor reads and writes) are sized to fit (2 MiB granules)
// and freed after use rather than kept: pinned memory is a shared, limited resource.
constexpr size_t kMaxKeptSlab = size_t(64) << 20;

size_t roundCap(size_t n) {
  if (n == 0) return 0;
  if (n > kMaxKeptSlab) return (n + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
  size_t c = kMinSlab;
  while (c < n) c *= 2;
  return c;
}

}  // namespace

SlabPool::~SlabPool() {
  for (auto& s : free_) destroy(s);
}

void SlabPool::destroy(Slab& s) {
  cudaSetDevice(device_);
  if (s.host) cudaFreeHost(s.host);
  if (s.dev) cudaFree(s.dev);
  s = Slab{};
}

Slab SlabPool::acquire(size_t hostBytes, size_t devBytes) {
  {
    std::lock_guard<std::mutex> lk(m_);
    // Smallest free slab that fits both sides.
    int best = -1;
    for (size_t i = 0; i < free_.size(); ++i) {
      const Slab& s = free_[i];
      if (s.hostCap >= hostBytes && s.devCap >= devBytes &&
          (best < 0 || s.hostCap + s.devCap < free_[best].hostCap + free_[best].devCap))
        best = int(i);
    }
    if (best >= 0) {
      Slab s = free_[best];
      free_.erase(free_.begin() + best);
      return s;
    }
  }
  Slab s;
  s.hostCap = roundCap(hostBytes);
  s.devCap = roundCap(devBytes);
  KVCAKE_CUDA("set device", cudaSetDevice(device_));
  if (s.hostCap) {
    const cudaError_t err = cudaHostAlloc(&s.host, s.hostCap, cudaHostAllocPortable);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw Error("cuda staging: cannot allocate " + std::to_string(s.hostCap) +
                  " bytes of pinned host memory: " + cudaGetErrorString(err));
    }
  }
  if (s.devCap) {
    const cudaError_t err = cudaMalloc(&s.dev, s.devCap);
    if (err != cudaSuccess) {
      cudaGetLastError();
      if (s.host) cudaFreeHost(s.host);
      throw Error("cuda staging: cannot allocate " + std::to_string(s.devCap) +
                  " bytes of device memory: " + cudaGetErrorString(err));
    }
  }
  return s;
}

void SlabPool::release(Slab s) {
  if (!s.host && !s.dev) return;
  {
    std::lock_guard<std::mutex> lk(m_);
    if (free_.size() < kMaxFreeSlabs && s.hostCap <= kMaxKeptSlab && s.devCap <= kMaxKeptSlab) {
      free_.push_back(s);
      return;
    }
  }
  destroy(s);
}

}  // namespace cuda
}  // namespace kvcake
