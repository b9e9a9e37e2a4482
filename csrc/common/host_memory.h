// Host memory that goes back to the operating system when it is freed. A server holds the
// library for days and creates and drops pools, tensors and staging buffers of every size;
// malloc keeps freed memory for reuse (glibc raises its mmap threshold each time a large
// block is freed, up to 32 MiB, so later blocks below it come from arenas that rarely
// shrink), and the process's RSS ratchets up. Blocks of at least kMapMin bytes are mapped
// directly with mmap and unmapped on free; smaller ones come from malloc.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <utility>

namespace kvcake {

// Direct mappings from this size up: a page-multiple, so the waste is under 6%.
constexpr size_t kMapMin = size_t(64) << 10;
// Mappings of at least this size are 2 MiB-aligned and marked MADV_HUGEPAGE so transparent
// huge pages back them where THP is 'madvise' or 'always': decode reads a pool through a
// shuffled block table in 4 KiB-per-head runs scattered over hundreds of MiB, and with 4 KiB
// pages nearly every run is a TLB miss. Smaller blocks do not pin a whole 2 MiB page.
constexpr size_t kHugeMin = size_t(4) << 20;

// 64-byte aligned (page-aligned when mapped; 2 MiB-aligned from kHugeMin). Null when the
// memory cannot be had. A zero-byte request returns a valid, unique pointer.
void* hostAlloc(size_t bytes);
// `bytes` must be the size given to hostAlloc.
void hostFree(void* p, size_t bytes) noexcept;

// std::allocator over hostAlloc, for byte buffers that may be large (op staging, reads).
template <typename T>
struct HostAllocator {
  using value_type = T;
  HostAllocator() = default;
  template <typename U>
  HostAllocator(const HostAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) throw std::bad_alloc();
    void* p = hostAlloc(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept { hostFree(p, n * sizeof(T)); }
  // Default-initialise (leave bytes as they are): buffers are filled by a copy right after.
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  template <typename U>
  bool operator==(const HostAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const HostAllocator<U>&) const noexcept { return false; }
};

}  // namespace kvcake
