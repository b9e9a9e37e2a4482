// The optional OpenBLAS GEMM path (gemm_blas.cc), present when the build found a static
// serial OpenBLAS (scripts/find-openblas.mjs).
#pragma once
#include <string>

#include "common/thread_pool.h"
#include "core/kernel_set.h"
#include "cpu/isa.h"

namespace kvcake::cpu {

bool openblasLinked();
// e.g. "OpenBLAS 0.3.21 (Cooperlake kernels, static, serial)"; empty when not linked.
std::string openblasName();
// 16-bit weights are widened at the conversion path of `isa`.
void gemmOpenblas(const GemmArgs& g, ThreadPool& pool, Isa isa);

}  // namespace kvcake::cpu
