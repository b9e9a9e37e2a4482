// The model's elementwise kernels at the avx2 level (AVX2 + FMA + F16C):
// model_kernels_impl.h over the vector of vec_avx2.h. The standard and project headers come
// first, compiled for the baseline; only what follows the target pragma may use these
// instructions, and it all lives in namespace kvcake::cpu::avx2.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/compiler.h"
#include "cpu/dtype_scalar.h"
#include "cpu/model_paths.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#define KVCAKE_CPU_NS avx2
#include "cpu/vec_avx2.h"
#include "cpu/model_kernels_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
