// XXH3-128's streaming update on the avx2 level: the vendored xxHash's own AVX2 stripe
// kernels (XXH3_accumulate_512_avx2, XXH3_scrambleAcc_avx2, defined under a function target
// attribute through XXH_DISPATCH_AVX2, as its xxh_x86dispatch.c does) inlined into one
// function of namespace kvcake::store::avx2. xxHash's C-linkage functions are all
// force-inlined there; check-isa-split confirms that none is left with AVX2 code outside
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
#define XXH_DISPATCH_AVX2 1
#define XXH_TARGET_AVX2 __attribute__((__target__("avx2")))
#include "third_party/xxhash/xxhash.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace kvcake::store::avx2 {

void xxh3Update128(void* state, const void* data, size_t bytes) {
  XXH3_update(static_cast<XXH3_state_t*>(state), static_cast<const xxh_u8*>(data), bytes, XXH3_accumulate_512_avx2,
              XXH3_scrambleAcc_avx2);
}

}  // namespace kvcake::store::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
