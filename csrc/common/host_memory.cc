#include "common/host_memory.h"

#include <cstdlib>

#include <sys/mman.h>

namespace kvcake {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kPage = 4096;
constexpr size_t kHugePage = size_t(2) << 20;

size_t mappedSize(size_t bytes) {
  const size_t align = bytes >= kHugeMin ? kHugePage : kPage;
  return (bytes + align - 1) / align * align;
}

}  // namespace

// Under AddressSanitizer every block comes from malloc, which ASan surrounds with redzones:
// an out-of-bounds kernel access to a mapped pool would go unnoticed.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMap = false;
#else
constexpr bool kMap = true;
#endif

void* hostAlloc(size_t bytes) {
  if (!kMap || bytes < kMapMin) return std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign + (bytes ? 0 : kAlign));
  const size_t size = mappedSize(bytes);
  if (size < bytes) return nullptr;  // overflow
  if (bytes < kHugeMin) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  // Over-map by one huge page and unmap the ends, leaving a 2 MiB-aligned run.
  const size_t span = size + kHugePage;
  if (span < size) return nullptr;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = (base + kHugePage - 1) & ~(uintptr_t(kHugePage) - 1);
  if (start > base) munmap(raw, start - base);
  const uintptr_t end = start + size;
  if (base + span > end) munmap(reinterpret_cast<void*>(end), base + span - end);
  // Advisory: where THP is off or madvise fails, the memory is ordinary pages.
  madvise(reinterpret_cast<void*>(start), size, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(start);
}

void hostFree(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (!kMap || bytes < kMapMin) {
    std::free(p);
    return;
  }
  munmap(p, mappedSize(bytes));
}

}  // namespace kvcake
