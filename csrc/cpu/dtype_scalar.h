// Element conversions between the pool dtypes and fp32 in portable C++, for code compiled at
// the baseline (file loads, fills, the scalar kernels, the tails of the SIMD loops). They
// round as the hardware conversions do (vcvtps2ph, and bf16 nearest-even with NaN kept
// quiet), so every ISA path produces the same bits for a conversion. Level translation
// units include this before their target pragma, like every other header.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/types.h"

namespace kvcake::cpu {

inline float bf16ToF32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
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

inline float f16ToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 1023;
  uint32_t u;
  if (e == 31) {
    u = sign | 0x7f800000u | (m << 13);
  } else if (e != 0) {
    u = sign | ((e + 112) << 23) | (m << 13);
  } else {
    const float f = std::ldexp(float(m), -24);  // subnormal or zero, exact
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as vcvtps2ph does; NaN stays a quiet NaN.
inline uint16_t f32ToF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00 | uint16_t((a >> 13) & 0x3ff);
  if (a >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: infinity
  if (a < 0x38800000u) {                      // below 2^-14: subnormal half
    const float m = std::nearbyint(std::fabs(f) * 16777216.f);  // units of 2^-24, exact
    return sign | uint16_t(m);
  }
  const uint32_t lsb = (a >> 13) & 1;
  const uint32_t r = a + 0xfffu + lsb;
  return sign | uint16_t(((r >> 13) - (112u << 10)) & 0x7fff);
}

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
