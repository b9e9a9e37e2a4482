// XXH3-128's streaming update on the avx512 level: the vendored xxHash's own AVX-512 stripe
// kernels (XXH3_accumulate_512_avx512, XXH3_scrambleAcc_avx512, defined under a function target
// attribute through XXH_DISPATCH_AVX512, as its xxh_x86dispatch.c does) inlined into one
// function of namespace kvcake::store::avx512. xxHash's C-linkage functions are all
// force-inlined there; check-isa-split confirms that none is left with AVX-512 code outside
// the namespace. The header itself is included first, at the baseline (its own default
// path, SSE2, serves digests and the other functions).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cassert>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "store/checksum_paths.h"

#define XXH_INLINE_ALL
// As xxh_x86dispatch.c: 64-byte alignment of the accumulators on every path.
#define XXH_X86DISPATCH
#define XXH_DISPATCH_AVX512 1
#define XXH_TARGET_AVX512 __attribute__((__target__("avx512f")))
#include "third_party/xxhash/xxhash.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
// GCC 12 reports the _mm512_undefined_* idiom inside its own intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace kvcake::store::avx512 {

void xxh3Update128(void* state, const void* data, size_t bytes) {
  XXH3_update(static_cast<XXH3_state_t*>(state), static_cast<const xxh_u8*>(data), bytes, XXH3_accumulate_512_avx512,
              XXH3_scrambleAcc_avx512);
}

}  // namespace kvcake::store::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
