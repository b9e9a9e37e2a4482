// The portable vector the attention kernels are written against: eight fp32 lanes as a plain
// array, compiled for the architecture's baseline (x86-64 without AVX, arm64), where the
// compiler vectorizes the lane loops itself. The SIMD headers (vec_avx2.h, vec_avx512.h)
// provide the same members:
//   F, kLanes, kBf16Dot        the register type, its fp32 lanes, whether dotBf16 exists
//   zero set1 load store bcast add sub mul max fmadd gtMask
//   div abs selectNeg          (the model's elementwise kernels)
//   loadT<T>(p) / storeT<T>(p, v)   kLanes elements of dtype T <-> fp32
//   exp2(x)                    2^x for x <= 64, exactly 0 below -126
//   hsum hmax                  horizontal sum / max of one register
//   hsums(v)                   lane i = hsum(v[i]) for kLanes registers
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/types.h"
#include "cpu/dtype_scalar.h"

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
  KVCAKE_LANEWISE(div, x / y)
#undef KVCAKE_LANEWISE
  static F abs(F a) {
    for (float& e : a.v) e = std::fabs(e);
    return a;
  }
  // Lane i: c[i] < 0 ? a[i] : b[i].
  static F selectNeg(F c, F a, F b) {
    F r;
    for (int i = 0; i < kLanes; ++i) r.v[i] = c.v[i] < 0.f ? a.v[i] : b.v[i];
    return r;
  }
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

  static float f16ToF32(uint16_t h) { return cpu::f16ToF32(h); }
  static uint16_t f32ToF16(float f) { return cpu::f32ToF16(f); }
  static float bf16ToF32(uint16_t h) { return cpu::bf16ToF32(h); }
  static uint16_t f32ToBf16(float f) { return cpu::f32ToBf16(f); }

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
