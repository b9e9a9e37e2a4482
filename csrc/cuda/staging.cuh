// Staging buffers for per-op metadata and host transfers: a slab is a pinned host buffer
// (what the op packs its block tables / bytes into) plus, optionally, a device buffer
// (where the metadata is copied with cudaMemcpyAsync on the op's stream, and where decode
// puts its split-KV workspace). An op holds its slab until its completion event fired,
// then hands it back for reuse, so a steady-state serving loop allocates nothing.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace kvcake {
namespace cuda {

struct Slab {
  void* host = nullptr;
  size_t hostCap = 0;
  void* dev = nullptr;
  size_t devCap = 0;
};

class SlabPool {
 public:
  explicit SlabPool(int device) : device_(device) {}
  ~SlabPool();
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;

  // A slab with at least these capacities (throws Error when CUDA cannot provide one).
  Slab acquire(size_t hostBytes, size_t devBytes);
  // Back to the free list (or freed, past a bound). Never called from a CUDA callback:
  // it may call cudaFree.
  void release(Slab s);

 private:
  void destroy(Slab& s);
  int device_;
  std::mutex m_;
  std::vector<Slab> free_;
};

// Packs several typed arrays into one staging region, each 256-byte aligned.
class MetaLayout {
 public:
  template <typename T>
  size_t add(size_t count) {
    const size_t off = (size_ + 255) / 256 * 256;
    size_ = off + count * sizeof(T);
    return off;
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
};

}  // namespace cuda
}  // namespace kvcake
