// Compiler spellings the CPU kernels share: a prefetch into L2 and a forced inline (for
// small vector helpers whose arrays must stay in registers, not go through the stack).
#pragma once

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define KVCAKE_PREFETCH_L2(p) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1)
#define KVCAKE_INLINE __forceinline
#else
#define KVCAKE_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#define KVCAKE_INLINE inline __attribute__((always_inline))
#endif
