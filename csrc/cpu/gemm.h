// CPU GEMM for the model's linear layers: out[m][n] = a[m][k] . w[n][k] (+ bias[n]) with w
// in Hugging Face [out][in] layout (fp32, fp16 or bf16, converted in registers) and fp32
// accumulation. The ISA paths live in gemm_scalar.cc, gemm_avx2.cc and gemm_avx512.cc
// (declared in model_paths.h) and compute a block of the output; model_kernels.cc splits
// the output over the thread pool and picks the path under the backend's ISA ceiling.
//
// Every output element is one dot product in "dot-L" form: L lanes (8 for scalar and AVX2,
// 16 for AVX-512) each accumulate k = lane, lane + L, ... with one multiply-add per step in
// k order (fused on AVX2 and AVX-512, a product then a sum on the scalar path; the tail of
// k zero-padded), then a fixed halving tree sums the lanes, then the bias is added.
// Nothing in that sequence depends on m, on the tile an element falls in, on how the
// output is split across threads, or on which rows share the call, so a row's result is
// the same bits in a batch of 1 and of 512 (batch invariance). There is no split over k.
//
// This header is included by the ISA translation units (before their target pragma), so it
// holds only plain types.
#pragma once
#include <cstdint>

namespace kvcake::cpu {

struct GemmTask {
  const float* a;
  int64_t lda;
  const void* w;
  int32_t wType;  // DType: 0 fp32, 1 fp16, 2 bf16
  const float* bias;
  float* out;
  int64_t ldo;
  int64_t k;
};

}  // namespace kvcake::cpu
