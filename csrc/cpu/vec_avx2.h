// The AVX2/FMA/F16C vector the attention kernels are written against (see vec_scalar.h for
// the interface). Include only from an *_avx2.cc file, after its target pragma, with
// KVCAKE_CPU_NS naming that file's namespace.
#pragma once

namespace kvcake::cpu::KVCAKE_CPU_NS {

struct Vec {
  using F = __m256;
  static constexpr int kLanes = 8;
  static constexpr bool kBf16Dot = false;

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  // Keeps v in a register: a value used by several FMAs is loaded once, not folded into
  // each of them as a memory operand (which costs a load per use).
  static void inRegister(F& v) { __asm__("" : "+x"(v)); }
  static F bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  // Lane i: c[i] < 0 ? a[i] : b[i].
  static F selectNeg(F c, F a, F b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(c, _mm256_setzero_ps(), _CMP_LT_OQ)); }
  // Bit i set where a[i] > b[i].
  static unsigned gtMask(F a, F b) { return unsigned(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ))); }

  // kLanes elements of dtype T at p, as fp32.
  template <DType T>
  static F loadT(const void* p) {
    if constexpr (T == DType::F32) {
      return _mm256_loadu_ps(static_cast<const float*>(p));
    } else if constexpr (T == DType::F16) {
      return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    } else {
      const __m128i h = _mm_loadu_si128(static_cast<const __m128i*>(p));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
  }

  // bf16 rounding: nearest-even, NaN kept quiet.
  static __m128i toBf16(F v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
    r = _mm256_srli_epi32(r, 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, qnan, nan);
    // Values are < 2^16 now, so an unsigned-saturating pack is an exact narrowing.
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  }

  template <DType T>
  static void storeT(void* p, F v) {
    if constexpr (T == DType::F32) {
      _mm256_storeu_ps(static_cast<float*>(p), v);
    } else if constexpr (T == DType::F16) {
      _mm_storeu_si128(static_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    } else {
      _mm_storeu_si128(static_cast<__m128i*>(p), toBf16(v));
    }
  }

  // 2^x for x <= 64 (softmax arguments against a running reference max). Relative error
  // ~2e-7; x < -126 (including -inf) gives exactly 0.
  KVCAKE_INLINE static F exp2(F x) {
    const F under = _mm256_cmp_ps(x, _mm256_set1_ps(-126.f), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-126.f));
    const F n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const F f = _mm256_mul_ps(_mm256_sub_ps(x, n), _mm256_set1_ps(0.6931471805599453f));
    // e^f on |f| <= ln2/2, Taylor to degree 7 (truncation error < 1e-9).
    F p = _mm256_set1_ps(1.f / 5040.f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f / 720.f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f / 120.f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f / 24.f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f / 6.f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
  }

  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  static float hmax(F v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // Lane i of the result is the horizontal sum of v[i]: kLanes dot products finished at once.
  KVCAKE_INLINE static F hsums(const F* v) {
    const F a01 = _mm256_hadd_ps(v[0], v[1]), a23 = _mm256_hadd_ps(v[2], v[3]);
    const F a45 = _mm256_hadd_ps(v[4], v[5]), a67 = _mm256_hadd_ps(v[6], v[7]);
    const F b0 = _mm256_hadd_ps(a01, a23), b1 = _mm256_hadd_ps(a45, a67);
    // b0 = [s0l s1l s2l s3l | s0h s1h s2h s3h], b1 likewise for 4..7.
    return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
  }
};

}  // namespace kvcake::cpu::KVCAKE_CPU_NS
