// The XXH3-128 streaming update of each ISA level above the baseline (checksum_avx2.cc,
// checksum_avx512.cc), one namespace per level as cpu/isa.h's build convention has it. Only
// checksum.cc calls them, after choosing a level; `state` is its XXH3_state_t. The hash is
// the same on every path, so a chunk written on one machine verifies on any other.
#pragma once
#include <cstddef>

namespace kvcake::store {

#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
void xxh3Update128(void* state, const void* data, size_t bytes);
}  // namespace avx2
namespace avx512 {
void xxh3Update128(void* state, const void* data, size_t bytes);
}  // namespace avx512
#endif

}  // namespace kvcake::store
