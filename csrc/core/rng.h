// Counter-based random numbers: a value is a pure function of (seed, counter), so a draw
// never depends on how many other draws happened before it, on which thread, or in which
// batch. SplitMix64's finalizer (Steele, Lea, Flood 2014) mixes the pair; host and CUDA
// code compute the same bits.
#pragma once
#include <cstdint>

#include "common/types.h"

namespace kvcake {

KVCAKE_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// 64 random bits for (seed, counter).
KVCAKE_HD inline uint64_t randomBits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ull) ^ (counter * 0xd1b54a32d192ed03ull + 0x9e3779b97f4a7c15ull));
}

// Uniform in [0, 1) with 53 random bits.
KVCAKE_HD inline double uniform01(uint64_t seed, uint64_t counter) {
  return double(randomBits(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

// No fused multiply-add (nvcc contracts by default): host and device round alike.
KVCAKE_HD inline double uniformAt(uint64_t seed, uint64_t i, double low, double high) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(low, __dmul_rn(high - low, uniform01(seed, i)));
#else
  return low + (high - low) * uniform01(seed, i);
#endif
}

}  // namespace kvcake
