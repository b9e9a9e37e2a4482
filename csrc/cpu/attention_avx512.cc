// Attention kernels at the avx512 level (AVX-512 F/BW/VL/DQ, with FMA and F16C):
// attention_impl.h over the 16-lane vector of vec_avx512.h, in namespace
// kvcake::cpu::avx512. Headers first at the baseline, then the target pragma.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "cpu/attention_paths.h"
#include "cpu/paged_rows.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
// GCC 12 reports the _mm512_undefined_* idiom inside its own intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define KVCAKE_CPU_NS avx512
#include "cpu/vec_avx512.h"
#include "cpu/attention_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
