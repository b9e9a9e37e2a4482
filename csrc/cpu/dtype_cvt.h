// Element conversions between the pool dtypes and fp32, scalar and 8-wide AVX2.
// Kernels accumulate in fp32 and convert at load/store time only.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "common/types.h"

namespace kvcake::cpu {

inline float bf16ToF32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays a (quiet) NaN instead of rounding into infinity.
inline uint16_t f32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16ToF32(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t f32ToF16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

inline float loadElem(const void* base, int64_t i, DType t) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F16: return f16ToF32(static_cast<const uint16_t*>(base)[i]);
    default: return bf16ToF32(static_cast<const uint16_t*>(base)[i]);
  }
}

inline void storeElem(void* base, int64_t i, DType t, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(base)[i] = v; break;
    case DType::F16: static_cast<uint16_t*>(base)[i] = f32ToF16(v); break;
    default: static_cast<uint16_t*>(base)[i] = f32ToBf16(v); break;
  }
}

}  // namespace kvcake::cpu
