// The model kernels of each ISA level, one namespace per level, as attention_paths.h has
// for attention: the elementwise kernels (model_kernels_impl.h, compiled in
// model_kernels_scalar.cc and model_kernels_avx2.cc) and the GEMM blocks with their FMA
// peak loops (gemm_scalar.cc, gemm_avx2.cc, gemm_avx512.cc). Only model_kernels.cc calls
// them, after choosing a level through cpu/isa.h; the level files include this before
// their target pragma.
#pragma once
#include <cstdint>

#include "common/types.h"
#include "core/kernel_set.h"
#include "cpu/gemm.h"

// Rows [r0, r1) of an RMSNorm (with its residual add); elements [b, e) of the flattened
// [rows][dim] output of a SiLU-and-multiply; n elements from src (type st) into dst (type
// dt), st != dt.
#define KVCAKE_CPU_MODEL_ELEMENTWISE_API                                    \
  void rmsnormRows(const RmsNormArgs& a, int64_t r0, int64_t r1);           \
  void siluMulRange(const SiluMulArgs& a, int64_t b, int64_t e);            \
  void convert(const void* src, DType st, void* dst, DType dt, int64_t n);

// Output rows [m0, m1) x columns [n0, n1) of a GEMM (gemm.h); `iters` rounds of
// independent FMA chains on the calling thread, returning the flops done.
#define KVCAKE_CPU_GEMM_API                                                         \
  void gemmBlock(const GemmTask& t, int64_t m0, int64_t m1, int64_t n0, int64_t n1); \
  double fmaLoop(int64_t iters);

namespace kvcake::cpu {

namespace scalar {
KVCAKE_CPU_MODEL_ELEMENTWISE_API
KVCAKE_CPU_GEMM_API
}  // namespace scalar

#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
KVCAKE_CPU_MODEL_ELEMENTWISE_API
KVCAKE_CPU_GEMM_API
}  // namespace avx2
namespace avx512 {
KVCAKE_CPU_GEMM_API
}  // namespace avx512
#endif

}  // namespace kvcake::cpu

#undef KVCAKE_CPU_MODEL_ELEMENTWISE_API
#undef KVCAKE_CPU_GEMM_API
