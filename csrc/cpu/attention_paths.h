// The attention entry points of each ISA level, one namespace per level (defined by
// attention_impl.h in attention_<level>.cc). Only attention.cc calls them, after choosing
// a level through cpu/isa.h.
#pragma once
#include "common/thread_pool.h"
#include "cpu/kernels.h"

#define KVCAKE_CPU_LEVEL_API                                           \
  void decode(const DecodeArgs& a, ThreadPool& pool);                  \
  void prefill(const PrefillArgs& a, ThreadPool& pool);                \
  float referenceRead(const ReadArgs& a, ThreadPool& pool);            \
  double referenceFma(int64_t iterations, ThreadPool& pool);

namespace kvcake::cpu {

namespace scalar {
KVCAKE_CPU_LEVEL_API
}

#if defined(__x86_64__) || defined(_M_X64)
#define KVCAKE_CPU_X86 1
namespace avx2 {
KVCAKE_CPU_LEVEL_API
}
namespace avx512 {
KVCAKE_CPU_LEVEL_API
}
// bf16 pools only: scores by vdpbf16ps.
namespace avx512bf16 {
void decode(const DecodeArgs& a, ThreadPool& pool);
void prefill(const PrefillArgs& a, ThreadPool& pool);
}
#endif

}  // namespace kvcake::cpu

#undef KVCAKE_CPU_LEVEL_API
