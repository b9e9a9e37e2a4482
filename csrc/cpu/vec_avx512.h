// The AVX-512 (F/BW/VL/DQ) vector the attention kernels are written against (see
// vec_scalar.h for the interface). Include only from an *_avx512.cc file, after its target
// pragma, with KVCAKE_CPU_NS naming that file's namespace. With KVCAKE_CPU_BF16_DOT the
// file is compiled for AVX512_BF16 too and bf16 scores use vdpbf16ps.
#pragma once

namespace kvcake::cpu::KVCAKE_CPU_NS {

struct Vec {
  using F = __m512;
  static constexpr int kLanes = 16;
#ifdef KVCAKE_CPU_BF16_DOT
  static constexpr bool kBf16Dot = true;
#else
  static constexpr bool kBf16Dot = false;
#endif

  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  // Keeps v in a register: a value used by several FMAs is loaded once, not folded into
  // each of them as a memory operand (which costs a load per use).
  static void inRegister(F& v) { (void)v; }
  static F bcast(const float* p) { return _mm512_set1_ps(*p); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F abs(F a) { return _mm512_abs_ps(a); }
  // Lane i: c[i] < 0 ? a[i] : b[i].
  static F selectNeg(F c, F a, F b) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_LT_OQ), b, a); }
  static unsigned gtMask(F a, F b) { return unsigned(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)); }

  template <DType T>
  static F loadT(const void* p) {
    if constexpr (T == DType::F32) {
      return _mm512_loadu_ps(static_cast<const float*>(p));
    } else if constexpr (T == DType::F16) {
      return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    } else {
      const __m256i h = _mm256_loadu_si256(static_cast<const __m256i*>(p));
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }

  // bf16 rounding: nearest-even, NaN kept quiet (denormals kept, unlike vcvtneps2bf16).
  static __m256i toBf16(F v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
  }

  template <DType T>
  static void storeT(void* p, F v) {
    if constexpr (T == DType::F32) {
      _mm512_storeu_ps(static_cast<float*>(p), v);
    } else if constexpr (T == DType::F16) {
      _mm256_storeu_si256(static_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    } else {
      _mm256_storeu_si256(static_cast<__m256i*>(p), toBf16(v));
    }
  }

  // 2^x for x <= 64; x < -126 (including -inf) gives exactly 0. Relative error ~2e-7.
  KVCAKE_INLINE static F exp2(F x) {
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-126.f));
    const F n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const F f = _mm512_mul_ps(_mm512_sub_ps(x, n), _mm512_set1_ps(0.6931471805599453f));
    F p = _mm512_set1_ps(1.f / 5040.f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 720.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 120.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 24.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 6.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(keep, p, _mm512_castsi512_ps(e));
  }

  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
  static float hmax(F v) { return _mm512_reduce_max_ps(v); }

  // Lane i of the result is the horizontal sum of v[i], i < 16: a tree of in-lane unpacks,
  // then 128-bit lane shuffles, each level halving the registers.
  KVCAKE_INLINE static F hsums(const F* v) {
    F a[8], b[4], c[2];
    for (int i = 0; i < 8; ++i)
      a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; ++i) {
      const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
      b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    // b[i]: every 128-bit lane holds partial sums of v[4i .. 4i+3] in order.
    for (int i = 0; i < 2; ++i)
      c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
  }

#ifdef KVCAKE_CPU_BF16_DOT
  // acc + the pairwise products of 32 bf16 values at q and k (exact products, fp32 sums).
  static F dotBf16(F acc, const uint16_t* q, const uint16_t* k) {
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(q), (__m512bh)_mm512_loadu_si512(k));
  }
  // The same over 16 values (the tail of a head dim that is not a multiple of 32).
  static F dotBf16Half(F acc, const uint16_t* q, const uint16_t* k) {
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi16(0xffff, q),
                            (__m512bh)_mm512_maskz_loadu_epi16(0xffff, k));
  }
#endif
};

}  // namespace kvcake::cpu::KVCAKE_CPU_NS
