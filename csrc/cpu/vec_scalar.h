// The portable vector the attention kernels are written against: eight fp32 lanes as a plain
// array, compiled for the architecture's baseline (x86-64 without AVX, arm64), where the
// compiler vectorizes the lane loops itself. The SIMD headers (vec_avx2.h, vec_avx512.h)
// provide the same members:
//   F, kLanes, kBf16Dot        the register type, its fp32 lanes, whether dotBf16 exists
//   zero set1 load store bcast add sub mul max fmadd gtMask
//   loadT<T>(p) / storeT<T>(p, v)   kLanes elements of dtype T <-> fp32
//   exp2(x)                    2^x for x <= 64, exactly 0 below -126
//   hsum hmax                  horizontal sum / max of one register
//   hsums(v)                   lane i = hsum(v[i]) for kLanes registers
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/types.h"

namespace kvcake::cpu::KVCAKE_CPU_NS {

struct Vec {
  static constexpr int kLanes = 8;
  static constexpr bool kBf16Dot = false;
  struct F {
    float v[kLanes];
  };

  static F zero() { return set1(0.f); }
  static F set1(float x) {
    F r;
    for (float& e : r.v) e = x;
    return r;
  }
  static F load(const float* p) {
    F r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static void store(float* p, F v) { std::memcpy(p, v.v, sizeof v.v); }
  // Keeps v in a register: a value used by several FMAs is loaded once, not folded into
  // each of them as a memory operand (which costs a load per use).
  static void inRegister(F& v) { (void)v; }
  static F bcast(const float* p) { return set1(*p); }
#define KVCAKE_LANEWISE(name, expr)          \
  static F name(F a, F b) {                  \
    F r;                                     \
    for (int i = 0; i < kLanes; ++i) {       \
      const float x = a.v[i], y = b.v[i];    \
      r.v[i] = (expr);                       \
    }                                        \
    return r;                                \
  }
  KVCAKE_LANEWISE(add, x + y)
  KVCAKE_LANEWISE(sub, x - y)
  KVCAKE_LANEWISE(mul, x * y)
  KVCAKE_LANEWISE(max, x > y ? x : y)
#undef KVCAKE_LANEWISE
  static F fmadd(F a, F b, F c) {
    F r;
    for (int i = 0; i < kLanes; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static unsigned gtMask(F a, F b) {
    unsigned m = 0;
    for (int i = 0; i < kLanes; ++i) m |= unsigned(a.v[i] > b.v[i]) << i;
    return m;
  }

  static float f16ToF32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 1023;
    uint32_t u;
    if (e == 31) {
      u = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
      u = sign | ((e + 112) << 23) | (m << 13);
    } else {
      float f = std::ldexp(float(m), -24);  // subnormal or zero, exact
      std::memcpy(&u, &f, 4);
      u |= sign;
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }

  // Round to nearest even, as vcvtps2ph does; NaN stays a quiet NaN.
  static uint16_t f32ToF16(float f) {
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

  static float bf16ToF32(uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }

  static uint16_t f32ToBf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
  }

  template <DType T>
  static F loadT(const void* p) {
    F r;
    if constexpr (T == DType::F32) {
      std::memcpy(r.v, p, sizeof r.v);
    } else {
      uint16_t h[kLanes];
      std::memcpy(h, p, sizeof h);
      for (int i = 0; i < kLanes; ++i) r.v[i] = T == DType::F16 ? f16ToF32(h[i]) : bf16ToF32(h[i]);
    }
    return r;
  }

  template <DType T>
  static void storeT(void* p, F v) {
    if constexpr (T == DType::F32) {
      std::memcpy(p, v.v, sizeof v.v);
    } else {
      uint16_t h[kLanes];
      for (int i = 0; i < kLanes; ++i) h[i] = T == DType::F16 ? f32ToF16(v.v[i]) : f32ToBf16(v.v[i]);
      std::memcpy(p, h, sizeof h);
    }
  }

  static F exp2(F x) {
    F r;
    for (int i = 0; i < kLanes; ++i) r.v[i] = x.v[i] < -126.f ? 0.f : std::exp2(x.v[i]);
    return r;
  }

  static float hsum(F v) {
    float s = 0.f;
    for (float e : v.v) s += e;
    return s;
  }
  static float hmax(F v) {
    float m = v.v[0];
    for (float e : v.v) m = e > m ? e : m;
    return m;
  }
  static F hsums(const F* v) {
    F r;
    for (int i = 0; i < kLanes; ++i) r.v[i] = hsum(v[i]);
    return r;
  }
};

}  // namespace kvcake::cpu::KVCAKE_CPU_NS
